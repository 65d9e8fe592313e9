"""Class-data sharing for the Spark drivers this project starts on this machine.

A Spark driver loads, parses and verifies some 15,000 classes before its first job; on two cores that is a third of
the CPU a short job spends (a Delta write and read: 23 to 25 CPU-s without, 15 to 16 with; docs/timings.md). The JVM can
map the classes it loaded in one run from an archive in the next (``-XX:ArchiveClassesAtExit``, then
``-XX:SharedArchiveFile``). ``lakehouse setup`` builds the archive once per JVM, Spark and jar set, by running
``train`` below under spark-submit; every driver started through ``session_conf`` (pyspark in this process,
``spark-submit`` jobs, the Spark Connect server) maps it from then on. A missing archive only costs that time; a
stale one is never picked, because its name is a digest of what the JVM checks (the java binary and every class
path jar). ``LAKEHOUSE_CLASS_ARCHIVE=off`` turns it off (drivers neither build nor map one)."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from lakehouse.config.settings import Settings
from lakehouse.spark.errors import SparkJobError

log = logging.getLogger(__name__)
DRIVER_OPTIONS = "spark.driver.extraJavaOptions"
EXECUTOR_OPTIONS = "spark.executor.extraJavaOptions"
# the JVM says, per class, why it could not archive it; and at run time why it does not map an archive (a
# mismatch only costs start-up time, which is the state without an archive)
QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"


def _java() -> Path | None:
    """The java binary spark-submit runs (``$JAVA_HOME/bin/java``, else the one on PATH)."""
    home = os.environ.get("JAVA_HOME")
    found = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    return Path(found).resolve() if found and Path(found).exists() else None


def _stamp(path: Path) -> str:
    try:
        stat = path.stat()
    except OSError:
        return f"{path}:absent"
    return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"


def _fingerprint(conf: Mapping[str, str]) -> list[str] | None:
    """What the JVM checks an archive against, one line each: the java binary and every class path jar, with size
    and modification time (None without a java binary, or when turned off)."""
    from lakehouse.spark.distribution import spark_home

    java = _java()
    if java is None or os.environ.get("LAKEHOUSE_CLASS_ARCHIVE", "on").lower() in ("off", "0", "false", "no"):
        return None
    home = spark_home()
    lines = [_stamp(java), "conf:" + os.environ.get("SPARK_CONF_DIR", str(home / "conf"))]
    lines += sorted(_stamp(jar) for jar in (home / "jars").glob("*.jar"))
    for key in ("spark.driver.extraClassPath", "spark.jars"):
        entries = conf.get(key, "").replace(",", os.pathsep).split(os.pathsep)
        lines += [_stamp(Path(entry)) for entry in entries if entry]
    return lines


def archive_path(conf: Mapping[str, str]) -> Path | None:
    """Where the archive for a driver with these Spark properties lives: named by a digest of the java binary, the
    Spark distribution's jars, the driver's extra class path and ``spark.jars`` (None without a java binary, or
    when turned off)."""
    from lakehouse.spark.jars import cache_root

    lines = _fingerprint(conf)
    if lines is None:
        return None
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
    return cache_root() / "class-archives" / f"spark-driver-{digest}.jsa"


def _still_valid(inputs: Path) -> bool:
    """True while every file an archive was built from is unchanged (its ``.inputs`` beside it)."""
    try:
        lines = inputs.read_text().splitlines()
    except OSError:
        return False
    stamps = [line for line in lines if not line.startswith("conf:")]
    return all(_stamp(Path(line.rsplit(":", 1 if line.endswith(":absent") else 2)[0])) == line for line in stamps)


def prune(folder: Path, keep: Path) -> list[Path]:
    """Delete the archives in ``folder`` (but ``keep``) built from a java binary or jars that changed or are gone:
    a deleted checkout or a rebuilt venv leaves one of about 200 MB. Returns the deleted archives."""
    stale = [p for p in folder.glob("*.jsa") if p != keep and not _still_valid(p.with_suffix(".inputs"))]
    for path in stale:
        path.unlink(missing_ok=True)
        path.with_suffix(".inputs").unlink(missing_ok=True)
    return stale


def with_archive(conf: dict[str, str], *, local_executors: bool = False) -> dict[str, str]:
    """``conf`` with the driver mapping its class archive, when one was built for it and the driver's Java options
    do not already name an archive; with ``local_executors`` (workers on this machine, with this Spark and these
    jars: the same class path) the executors map it too."""
    path = archive_path(conf)
    if path is None or not path.is_file():
        return conf
    conf = dict(conf)
    for key in (DRIVER_OPTIONS, EXECUTOR_OPTIONS) if local_executors else (DRIVER_OPTIONS,):
        options = conf.get(key, "")
        if "SharedArchiveFile" not in options and "ArchiveClassesAtExit" not in options:
            conf[key] = f"-XX:SharedArchiveFile={path} {QUIET} {options}".strip()
    return conf


def ensure_archive(settings: Settings) -> Path | None:
    """Build the driver class archive for ``settings``' Spark properties unless it exists (about 30 s, once);
    None where this machine does not start the driver (a platform with its own Spark, such as Databricks)."""
    from lakehouse.spark.session import session_conf
    from lakehouse.spark.submit import submit_base, submit_env

    if settings.spark.provided_jars:
        return None
    conf = session_conf(settings)
    path = archive_path(conf)
    if path is None or path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.stem}.{os.getpid()}.partial")
    user_options = conf.get(DRIVER_OPTIONS, "")
    dump = {DRIVER_OPTIONS: f"-XX:ArchiveClassesAtExit={partial} {QUIET} {user_options}".strip()}
    with tempfile.TemporaryDirectory(prefix="lakehouse-class-archive-") as scratch:
        argv = [*submit_base(settings, "lakehouse-class-archive", dump), __file__, scratch]
        # in the scratch folder: the training run's session would leave an empty spark-warehouse/ in the caller's
        run = subprocess.run(argv, env=submit_env(settings), cwd=scratch, capture_output=True, text=True, check=False)
    if run.returncode != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        tail = (run.stdout + run.stderr).strip().splitlines()[-5:]
        raise SparkJobError(f"building the driver class archive failed (exit {run.returncode}): {' | '.join(tail)}")
    path.with_suffix(".inputs").write_text("\n".join(_fingerprint(conf) or []) + "\n")
    partial.replace(path)
    log.info("driver class archive %s", path)
    for stale in prune(path.parent, keep=path):
        log.info("deleted the class archive %s: what it was built from changed or is gone", stale)
    return path


def train(scratch: str) -> None:
    """What the archive holds: the classes of a driver's usual work here (Delta writes, reads, MERGE and history; a
    streaming query with RocksDB state and foreachBatch; Python workers over Arrow; the Kafka source's planning)."""
    from pyspark.sql import DataFrame
    from pyspark.sql import functions as F

    from lakehouse.spark.jobs.common import STATE_STORE_CONF
    from lakehouse.spark.session import get_spark

    # on local[2] whatever the environment's master: the class path, not the master, decides what the archive fits
    spark = get_spark("lakehouse-class-archive", {**STATE_STORE_CONF, "spark.master": "local[2]"}, own_driver=True)
    root = Path(scratch)
    events = spark.range(2000).select(
        F.col("id"),
        (F.col("id") % 7).alias("tenant"),
        F.to_json(F.struct(F.col("id").alias("event_id"), F.current_timestamp().alias("ts"))).alias("value"),
        F.date_add(F.lit("2026-01-01").cast("date"), (F.col("id") % 3).cast("int")).alias("event_date"),
    )
    table = str(root / "events")
    events.write.format("delta").partitionBy("event_date").save(table)
    spark.sql(f"CREATE TABLE IF NOT EXISTS class_archive_events USING delta LOCATION '{table}'")
    spark.sql(
        f"MERGE INTO delta.`{table}` t USING (SELECT * FROM delta.`{table}` WHERE id < 10) s ON t.id = s.id "
        "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"
    )
    spark.sql(f"DESCRIBE HISTORY delta.`{table}`").collect()
    parsed = (
        spark.read.format("delta")
        .load(table)
        .select("tenant", F.from_json("value", "event_id LONG, ts TIMESTAMP").alias("e"))
    )
    parsed.groupBy("tenant", F.window("e.ts", "5 minutes")).agg(F.count("*"), F.sum("e.event_id")).collect()
    parsed.mapInArrow(lambda batches: batches, parsed.schema).count()
    kafka = spark.readStream.format("kafka").option("kafka.bootstrap.servers", "localhost:9")
    kafka.option("subscribe", "class-archive").load().printSchema()  # planning the source loads its classes

    source = root / "incoming"
    source.mkdir()
    lines = (f'{{"event_id": {i % 50}, "ts": "2026-01-01T00:00:0{i % 10}Z"}}' for i in range(200))
    (source / "part.json").write_text("\n".join(lines))

    def append(batch: DataFrame, batch_id: int) -> None:
        batch.write.format("delta").mode("append").option("txnAppId", "class-archive").option(
            "txnVersion", batch_id
        ).save(str(root / "deduplicated"))

    (
        spark.readStream.schema("event_id LONG, ts TIMESTAMP")
        .json(str(source))
        .withWatermark("ts", "1 hour")
        .dropDuplicatesWithinWatermark(["event_id"])
        .writeStream.foreachBatch(append)
        .option("checkpointLocation", str(root / "checkpoint"))
        .trigger(availableNow=True)
        .start()
        .awaitTermination()
    )
    spark.stop()


if __name__ == "__main__":
    train(sys.argv[1])
