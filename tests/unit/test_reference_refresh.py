"""Reference tables are rewritten from the config folder only when its files change."""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import SparkSession

from lakehouse.config.settings import Settings
from lakehouse.spark.io import reference


def _commits(table: Path) -> int:
    return len(list((table / "_delta_log").glob("*.json")))


def _products(lakehouse_settings: Settings, tmp_path: Path) -> tuple[Path, Settings]:
    """A config folder with one version of the products, and settings whose lake is under ``tmp_path``."""
    root = tmp_path / "config"
    (root / "reference" / "products").mkdir(parents=True)
    (root / "reference" / "products" / "2026-01-01.csv").write_text("product_id,category\nP1,books\nP2,toys\n")
    settings = lakehouse_settings.model_copy(
        update={"storage": lakehouse_settings.storage.model_copy(update={"lake_root": str(tmp_path / "lake")})}
    )
    return root, settings


def test_refresh_rewrites_a_reference_table_only_when_its_files_change(
    spark: SparkSession, lakehouse_settings: Settings, tmp_path: Path
) -> None:
    root, settings = _products(lakehouse_settings, tmp_path)
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


def test_a_stream_reads_a_reference_table_again_only_once_it_was_rewritten(
    spark: SparkSession, lakehouse_settings: Settings, tmp_path: Path
) -> None:
    root, settings = _products(lakehouse_settings, tmp_path)
    reference.refresh(spark, settings, ["products"], root)
    held = reference.CurrentReferences(settings)
    first = held.current(spark, "products")
    assert sorted((r["product_id"], r["category"]) for r in first.collect()) == [("P1", "books"), ("P2", "toys")]

    spark.sparkContext.setJobGroup("unchanged-reference", "a batch on the same version")
    try:
        assert held.current(spark, "products") is first
        assert spark.sparkContext.statusTracker().getJobIdsForGroup("unchanged-reference") == []
    finally:
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]

    (root / "reference" / "products" / "2026-06-01.csv").write_text("product_id,category\nP1,media\n")
    reference.refresh(spark, settings, ["products"], root)
    second = held.current(spark, "products")
    assert second is not first
    assert [(r["product_id"], r["category"]) for r in second.collect()] == [("P1", "media")]
