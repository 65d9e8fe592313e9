"""The one SparkSession factory: reuses an active session, merges defaults, environment and per-job settings,
and adds Delta Lake plus the pinned local jars (unless the platform provides them, as Databricks does)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

from pyspark.sql import SparkSession

from lakehouse.config.settings import Settings
from lakehouse.config.settings import settings as current_settings

log = logging.getLogger(__name__)

DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}
DEFAULT_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.ansi.enabled": "true",
    "spark.databricks.delta.schema.autoMerge.enabled": "false",
    "spark.sql.sources.partitionOverwriteMode": "static",
    "spark.sql.streaming.stopGracefullyOnShutdown": "true",
    "spark.ui.showConsoleProgress": "false",
}


def session_conf(settings: Settings, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every Spark property a lakehouse session gets, lowest precedence first: defaults, env, job."""
    conf = {**DEFAULT_CONF, **DELTA_CONF, **settings.spark.conf, **(extra or {})}
    if not settings.spark.provided_jars:
        from lakehouse.scripts.jars import spark_jars

        conf["spark.jars"] = ",".join(str(p) for p in spark_jars())
    return conf


def get_spark(
    app_name: str, extra_conf: Mapping[str, str] | None = None, settings: Settings | None = None
) -> SparkSession:
    """The active SparkSession, or a new one configured for this environment."""
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    env = settings or current_settings()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    if env.spark.master != "databricks":
        builder = builder.master(env.spark.master)
    for key, value in session_conf(env, extra_conf).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    log.info("spark session %s on %s (%s)", app_name, spark.sparkContext.master, spark.version)
    return spark
