"""Reference tables are rewritten from the config folder only when its files change."""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import SparkSession

from lakehouse.config.settings import Settings
from lakehouse.spark.io import reference


def _commits(table: Path) -> int:
    return len(list((table / "_delta_log").glob("*.json")))


def test_refresh_rewrites_a_reference_table_only_when_its_files_change(
    spark: SparkSession, lakehouse_settings: Settings, tmp_path: Path
) -> None:
    root = tmp_path / "config"
    (root / "reference" / "products").mkdir(parents=True)
    (root / "reference" / "products" / "2026-01-01.csv").write_text("product_id,category\nP1,books\nP2,toys\n")
    settings = lakehouse_settings.model_copy(
        update={"storage": lakehouse_settings.storage.model_copy(update={"lake_root": str(tmp_path / "lake")})}
    )
    table = tmp_path / "lake" / "reference" / "products"

    reference.refresh(spark, settings, ["products"], root)
    reference.refresh(spark, settings, ["products"], root)
    assert _commits(table) == 1

    (root / "reference" / "products" / "2026-06-01.csv").write_text("product_id,category\nP1,media\n")
    reference.refresh(spark, settings, ["products"], root)
    reference.refresh(spark, settings, ["products"], root)
    assert _commits(table) == 2

    rows = spark.read.format("delta").load(str(table)).collect()
    got = sorted((r["product_id"], r["category"], str(r["_valid_from"]), r["_is_current"]) for r in rows)
    assert got == [
        ("P1", "books", "2026-01-01", False),
        ("P1", "media", "2026-06-01", True),
        ("P2", "toys", "2026-01-01", False),
    ]
