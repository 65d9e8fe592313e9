"""The one SparkSession factory: reuses an active session, merges defaults, environment and per-job settings,
and adds Delta Lake plus the pinned local jars (unless the platform provides them, as Databricks does).

With ``spark.deploy: connect`` a batch job gets a Spark Connect session on the environment's server instead
(the server was started with the same settings, see ``lakehouse.scripts.spark_connect`` for the local one)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

from pyspark.sql import SparkSession

from lakehouse.config.settings import Settings
from lakehouse.config.settings import settings as current_settings
from lakehouse.spark.class_archive import with_archive
from lakehouse.spark.distribution import spark_home
from lakehouse.spark.local_fs import with_local_fs
from lakehouse.spark.timer_dedup import with_timer_dedup

log = logging.getLogger(__name__)

DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}
# set by spark-submit launches: the job has a driver of its own even when the environment deploys with connect
OWN_DRIVER_ENV = "LAKEHOUSE_OWN_DRIVER"
DEFAULT_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.ansi.enabled": "true",
    "spark.databricks.delta.schema.autoMerge.enabled": "false",
    "spark.sql.sources.partitionOverwriteMode": "static",
    "spark.ui.showConsoleProgress": "false",
    # on: each DataFrame/Column call makes ~5 extra JVM round trips to record its Python call site for error
    # messages, half of the time a Gold build spends composing its plan; set it to "true" in spark.conf to debug
    "spark.python.sql.dataFrameDebugging.enabled": "false",
    # Int.MaxValue turns off Spark's byte cap on the Arrow batches it sends to Python (mapInArrow: the loader's
    # COPY), which recomputes the batch's size after every row: a quarter of the executors' time in a load.
    # Batches stay capped at spark.sql.execution.arrow.maxRecordsPerBatch rows (10,000 by default).
    "spark.sql.execution.arrow.maxBytesPerBatch": "2147483647",
    # the JVM's half of lakehouse.config.log_masking: Spark's default key pattern plus a JAAS config, and in plans
    # and SQL text a JAAS password or a URL's password
    "spark.redaction.regex": "(?i)secret|password|token|access[.]?key|jaas",
    "spark.sql.redaction.string.regex": r'(?i)password\s*=\s*"[^"]*"|://[^:/@\s]+:[^@\s]+@',
}


def session_conf(settings: Settings, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every Spark property a lakehouse session gets, lowest precedence first: defaults, env, job."""
    store = settings.storage.s3.hadoop_conf() if settings.storage.s3 is not None else {}
    conf = {**DEFAULT_CONF, **DELTA_CONF, **store, **settings.spark.conf, **(extra or {})}
    if not settings.spark.provided_jars:
        from lakehouse.spark.jars import S3A_JARS, spark_jars

        jars = [str(p) for p in spark_jars()]
        s3a = [str(p) for p in spark_jars(S3A_JARS)] if settings.storage.uses_s3a else []
        if s3a and settings.master_on_this_machine:
            # its workers are on this machine too: they read hadoop-aws and its shaded AWS SDK (600 MB) in place
            # instead of copying them into each application's folder on each worker. Only these: a class path
            # entry comes before Spark's own jars, and delta-kernel-api carries an older unshaded Jackson.
            conf["spark.driver.extraClassPath"] = conf["spark.executor.extraClassPath"] = os.pathsep.join(s3a)
            s3a = []
        conf["spark.jars"] = ",".join([*jars, *s3a])
        conf = with_timer_dedup(conf)
        if settings.spark.master.startswith("local") or settings.master_on_this_machine:
            conf = with_local_fs(conf, local_executors=settings.master_on_this_machine)
        conf = with_archive(conf, local_executors=settings.master_on_this_machine)
    return conf


def runtime_conf(conf: Mapping[str, str]) -> dict[str, str]:
    """The SQL and Delta properties of ``conf`` that a session may set after the driver started."""
    return {
        key: value
        for key, value in conf.items()
        if key.startswith(("spark.sql.", "spark.databricks.")) and key not in DELTA_CONF
    }


def connect_session(app_name: str, env: Settings, extra_conf: Mapping[str, str] | None = None) -> SparkSession:
    """A Spark Connect session on the environment's server, with this job's runtime properties."""
    from urllib.parse import urlsplit

    from lakehouse.spark.errors import SparkUnavailableError

    url = env.spark.connect_url
    host = urlsplit(url.replace("sc://", "http://", 1)).hostname or "localhost"
    if not _reachable(host, env.spark.connect_port):
        raise SparkUnavailableError(
            f"no Spark Connect server answers at {url}: start it with `lakehouse stack up spark`, "
            "or run jobs with their own driver: `export LAKEHOUSE_SPARK_DEPLOY=spark-submit`"
        )
    spark = SparkSession.builder.remote(url).getOrCreate()
    for key, value in runtime_conf({**DEFAULT_CONF, **(extra_conf or {})}).items():
        spark.conf.set(key, value)
    log.info("spark connect session %s on %s (%s)", app_name, url, spark.version)
    return spark


def _reachable(host: str, port: int) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=3):
            return True
    except OSError:
        return False


def get_spark(
    app_name: str,
    extra_conf: Mapping[str, str] | None = None,
    settings: Settings | None = None,
    *,
    own_driver: bool = False,
) -> SparkSession:
    """The active SparkSession, or a new one configured for this environment: a Spark Connect session when the
    environment deploys batch jobs with ``connect``, unless ``own_driver`` (streaming jobs) or this process was
    launched by spark-submit."""
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    env = settings or current_settings()
    if env.spark.deploy == "connect" and not own_driver and os.environ.get(OWN_DRIVER_ENV) != "1":
        return connect_session(app_name, env, extra_conf)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ["SPARK_HOME"] = str(spark_home())  # the driver JVM pyspark starts, and the archive it maps
    for key, value in env.object_store_credentials().items():
        os.environ.setdefault(key, value)  # the driver JVM this process starts reads them
    builder = SparkSession.builder.appName(app_name)
    if env.spark.master != "databricks":
        builder = builder.master(env.spark.master)
    for key, value in session_conf(env, extra_conf).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    log.info("spark session %s on %s (%s)", app_name, spark.sparkContext.master, spark.version)
    return spark
