"""Reference data (customers, products): versioned CSV files under ``config/reference/<table>/<YYYY-MM-DD>.csv``,
loaded as Delta tables with every version kept (``_valid_from``) and the newest flagged ``_is_current``."""

from __future__ import annotations

import hashlib
import logging
from datetime import date
from pathlib import Path

from pyarrow import csv as pyarrow_csv
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from lakehouse.config.settings import Settings, config_dir
from lakehouse.spark.errors import SparkJobError
from lakehouse.spark.io.delta import Table, load, read_table, save

log = logging.getLogger(__name__)


def reference_folder(root: Path | None = None) -> Path:
    """Folder of the reference tables in the config directory."""
    return (root or config_dir()) / "reference"


def read_versions(spark: SparkSession, table: str, root: Path | None = None) -> DataFrame:
    """Every version of one reference table, with ``_valid_from`` (the file's date) and ``_is_current``."""
    folder = reference_folder(root) / table
    files = sorted(folder.glob("*.csv"))
    if not files:
        raise SparkJobError(f"no reference files for {table!r}: expected {folder}/<YYYY-MM-DD>.csv")
    frames = []
    for path in files:
        try:
            valid_from = date.fromisoformat(path.stem)
        except ValueError as exc:
            raise SparkJobError(
                f"{path}: reference files must be named by their effective date, e.g. 2026-01-01.csv"
            ) from exc
        # small files that live with the config, not on the cluster: parsed here, sent as one Arrow table
        frame = spark.createDataFrame(pyarrow_csv.read_csv(path))
        frames.append(frame.withColumn("_valid_from", F.lit(valid_from)))
    versions = frames[0]
    for frame in frames[1:]:
        versions = versions.unionByName(frame)
    latest = F.max("_valid_from").over(Window.partitionBy(F.lit(1)))
    return versions.withColumn("_is_current", F.col("_valid_from") == latest)


def _fingerprint(table: str, root: Path | None) -> str:
    digest = hashlib.sha256()
    for path in sorted((reference_folder(root) / table).glob("*.csv")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


# the metadata key, on the _valid_from column, holding the fingerprint of the files a reference table was built from
FINGERPRINT_KEY = "lakehouse.source_fingerprint"


def loaded_fingerprint(spark: SparkSession, table: Table) -> str | None:
    """The fingerprint of the files the reference table ``table`` was built from (None: no such table)."""
    frame = read_table(spark, table)
    if frame is None or "_valid_from" not in frame.columns:
        return None
    value = frame.schema["_valid_from"].metadata.get(FINGERPRINT_KEY)
    return str(value) if value is not None else None


def refresh(spark: SparkSession, settings: Settings, tables: list[str], root: Path | None = None) -> None:
    """Rewrite the Delta copies of the reference tables from the config folder when the files changed.

    The files' fingerprint is kept in the table's schema (metadata of ``_valid_from``), written in the same
    commit as the rows, so an unchanged table costs one snapshot load and no Spark job."""
    for table in sorted(set(tables)):
        location = settings.storage.table("reference", table)
        fingerprint = _fingerprint(table, root)
        if loaded_fingerprint(spark, location) == fingerprint:
            continue
        versions = read_versions(spark, table, root)
        save(
            spark,
            versions.withColumn(
                "_valid_from", F.col("_valid_from").alias("_valid_from", metadata={FINGERPRINT_KEY: fingerprint})
            )
            .write.format("delta")
            .mode("overwrite")
            .option("overwriteSchema", "true"),
            location,
        )
        log.info("reference table %s refreshed", table)


def versions(spark: SparkSession, settings: Settings, table: str) -> DataFrame:
    """Every version of one reference table (its Delta copy), with ``_valid_from`` and ``_is_current``."""
    return load(spark.read, settings.storage.table("reference", table))


def current(spark: SparkSession, settings: Settings, table: str) -> DataFrame:
    """The current rows of one reference table."""
    return versions(spark, settings, table).where("_is_current")


class CurrentReferences:
    """The current rows of reference tables, for a stream that joins them in every micro-batch. Each is read once per
    rewrite of its Delta table (``refresh`` names the files it was built from in the table's schema, which loading
    the table's snapshot gives without a Spark job) and held as a local checkpoint, so a batch does not list the
    table's files again (two Spark jobs per table and batch). A table without that name is read in every batch."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._held: dict[str, tuple[str, DataFrame]] = {}

    def current(self, spark: SparkSession, table: str) -> DataFrame:
        """The current rows of the reference table ``table``, as its latest version holds them."""
        fingerprint = loaded_fingerprint(spark, self.settings.storage.table("reference", table))
        held = self._held.get(table)
        if held is not None and held[0] == fingerprint:
            return held[1]
        if fingerprint is None:
            return current(spark, self.settings, table)
        rows = current(spark, self.settings, table).localCheckpoint()
        self._held[table] = (fingerprint, rows)
        return rows
