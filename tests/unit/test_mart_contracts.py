"""Every mart contract's given/expect cases (``unit_tests`` in config/marts/*.yaml), run through the same entry
point the Gold job uses (``lakehouse.spark.marts.compute``). The expected rows are written by hand in the YAML.

Given rows list only the columns a case needs; the others are null. Each input gets the schema the job reads
it with: a Silver table's columns, a reference table's columns as its CSV files give them, the calendar's
``date_key``.
"""

from __future__ import annotations

from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType
from pyspark.testing import assertDataFrameEqual

from lakehouse.config.marts import MartSpec, MartUnitTest, load_marts, mart, unit_test_cases
from lakehouse.spark.io.reference import read_versions
from lakehouse.spark.marts import compute, date_spine, silver_schema

CASES = unit_test_cases()


def _text(value: Any) -> str | None:
    """A YAML scalar as the text Spark casts to the column's type (dates and timestamps in ISO 8601)."""
    if value is None:
        return None
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _frame(spark: SparkSession, schema: StructType, rows: list[dict[str, Any]]) -> DataFrame:
    """``rows`` as a frame of ``schema``: each value cast from its text, absent columns null."""
    unknown = sorted({c for row in rows for c in row} - set(schema.fieldNames()))
    assert not unknown, f"columns {unknown} are not in the input's schema {schema.simpleString()}"
    names = schema.fieldNames()
    text = spark.createDataFrame(
        [tuple(_text(row.get(n)) for n in names) for row in rows], ", ".join(f"`{n}` string" for n in names)
    )
    return text.select(*[F.col(f"`{f.name}`").cast(f.dataType).alias(f.name) for f in schema.fields])


@cache
def _reference_schema(spark: SparkSession, table: str) -> StructType:
    return read_versions(spark, table).schema


def _input_schema(spark: SparkSession, spec: MartSpec, name: str) -> StructType:
    if name in spec.inputs.silver:
        return spark.createDataFrame([], silver_schema(name)).schema
    if name in spec.inputs.references:
        return _reference_schema(spark, name)
    return date_spine(spark, date(2024, 1, 1), date(2024, 1, 1)).schema


@pytest.mark.parametrize(("spec", "case"), CASES, ids=[f"{spec.name}-{case.name}" for spec, case in CASES])
def test_mart_contract_case(spark: SparkSession, spec: MartSpec, case: MartUnitTest) -> None:
    inputs = {name: _frame(spark, _input_schema(spark, spec, name), rows) for name, rows in case.given.items()}
    missing = [name for name in spec.inputs.names if name not in inputs]
    assert not missing, f"{spec.source_file}: unit_tests.{case.name}: give every input, missing {missing}"

    result = compute(spec, inputs, case.start, case.end)

    columns = list(case.expect[0])
    types = {c.name: c.type for c in spec.columns}
    expected_schema = StructType.fromDDL(", ".join(f"`{c}` {types[c]}" for c in columns))
    expected = _frame(spark, expected_schema, case.expect)
    assertDataFrameEqual(result.select(*columns), expected, checkRowOrder=False)


def test_every_mart_has_a_case() -> None:
    without = sorted(set(load_marts()) - {spec.name for spec, _ in CASES})
    assert not without, f"marts without unit_tests in their contract: {without}"


def test_the_calendar_spans_the_configured_days(spark: SparkSession) -> None:
    calendar = mart("dim_date").inputs.calendar
    assert calendar is not None
    days = date_spine(spark, calendar.first, calendar.last)
    assert days.count() == (calendar.last - calendar.first).days + 1
    assert days.agg(F.min("date_key"), F.max("date_key")).first() == (calendar.first, calendar.last)


REVENUE_CASES = [(spec, case) for spec, case in CASES if spec.name == "order_revenue_5min"]


@pytest.mark.parametrize(("spec", "case"), REVENUE_CASES, ids=[case.name for _, case in REVENUE_CASES])
def test_the_streaming_revenue_transform_gives_the_contract_cases(
    spark: SparkSession, tmp_path: Path, spec: MartSpec, case: MartUnitTest
) -> None:
    """The streaming variant of order_revenue_5min (what spark/jobs/revenue_stream.py runs) over the case's orders
    read as a Delta stream, in update mode, gives the rows the contract expects of the daily build."""
    from lakehouse.spark.marts import conform
    from lakehouse.spark.transforms.gold import order_revenue_5min_stream

    orders = _frame(spark, _input_schema(spark, spec, "orders"), case.given["orders"])
    orders.write.format("delta").save(str(tmp_path / "orders"))
    products = _frame(spark, _input_schema(spark, spec, "products"), case.given["products"])
    stream = conform(
        order_revenue_5min_stream(spark.readStream.format("delta").load(str(tmp_path / "orders")), products), spec
    )
    emitted: list[Row] = []
    query = (
        stream.writeStream.outputMode("update")
        .option("checkpointLocation", str(tmp_path / "checkpoint"))
        .foreachBatch(lambda batch, _: emitted.extend(batch.collect()))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    latest = {tuple(row[c] for c in spec.grain): row for row in emitted}  # a later batch's row replaces an earlier's
    result = spark.createDataFrame(list(latest.values()), stream.schema)

    columns = list(case.expect[0])
    types = {c.name: c.type for c in spec.columns}
    expected_schema = StructType.fromDDL(", ".join(f"`{c}` {types[c]}" for c in columns))
    assertDataFrameEqual(result.select(*columns), _frame(spark, expected_schema, case.expect), checkRowOrder=False)
