"""From a mart's contract (``config/marts/<name>.yaml``) to its rows: the one registry of transforms, the one
reader of their inputs, and the check that a transform's result has the contract's columns and types.

A transform is a pure ``DataFrame -> DataFrame`` function whose parameters are named after the mart's inputs
(each Silver event type, each reference table, ``calendar``), plus ``start``/``end`` if it needs the interval.
Adding a mart is its YAML, its transform and its serving table's migration: nothing here changes.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
from collections.abc import Callable, Mapping
from datetime import date, timedelta
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.config.marts import INTERVAL_PARAMETERS, MartSpec
from lakehouse.config.settings import Settings
from lakehouse.config.specs import event_type
from lakehouse.spark.errors import SparkJobError
from lakehouse.spark.io import reference
from lakehouse.spark.io.delta import read_table

log = logging.getLogger(__name__)
Transform = Callable[..., DataFrame]


def transform_for(spec: MartSpec) -> Transform:
    """The mart's transform (the registry: ``transform`` of its contract, by default the function named like the
    mart in ``lakehouse.spark.transforms.gold``), after checking that it takes exactly the inputs it declares."""
    module_name, function_name = spec.transform_path
    return _transform(spec.source_file, spec.name, module_name, function_name, tuple(spec.inputs.names))


@functools.lru_cache(maxsize=64)
def _transform(source: Any, mart: str, module_name: str, function_name: str, inputs: tuple[str, ...]) -> Transform:
    where = f"{source}: transform"
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SparkJobError(f"{where}: cannot import {module_name!r} for mart {mart!r} ({exc})") from exc
    function = getattr(module, function_name, None)
    if not callable(function):
        raise SparkJobError(
            f"{where}: {module_name} has no function {function_name!r}: write it there, or point `transform` "
            "at the module:function that builds the mart"
        )
    parameters = list(inspect.signature(function).parameters)
    unknown = [p for p in parameters if p not in inputs and p not in INTERVAL_PARAMETERS]
    unused = [name for name in inputs if name not in parameters]
    if unknown or unused:
        raise SparkJobError(
            f"{where}: {module_name}.{function_name}{tuple(parameters)} must take the mart's inputs {list(inputs)} "
            f"(and optionally {list(INTERVAL_PARAMETERS)}): "
            + "; ".join(
                [
                    *([f"parameters {unknown} are not inputs (add them under inputs:)"] if unknown else []),
                    *([f"inputs {unused} are not parameters"] if unused else []),
                ]
            )
        )
    return function


SCORE_SCHEMA = "sentiment_label string, sentiment_score double, model_version string"


def silver_schema(source: str) -> str:
    """The DDL schema of an event type's Silver columns that every contract version defines, plus ``event_date``
    and ``_ingested_at`` (and the sentiment model's columns where the event type is scored): what a mart may read
    of it."""
    spec = event_type(source)
    fields = [f"`{f.name}` {f.spark_type}" for f in spec.fields]
    scores = [SCORE_SCHEMA] if spec.sentiment is not None else []
    return ", ".join([*fields, "event_date date", "_ingested_at timestamp", *scores])


def silver_rows(spark: SparkSession, settings: Settings, source: str, start: date, end: date) -> DataFrame:
    """Silver rows of one event type with ``start <= event_date < end`` (partition-pruned). An event type with no
    Silver table yet (nothing streamed) reads as no rows, with the contract's columns, so every mart builds."""
    spec = event_type(source)
    silver = read_table(spark, settings.storage.table("silver", spec.tables.silver))
    if silver is None:
        log.warning("no Silver table for %s yet: building as if it had no events", source)
        silver = spark.createDataFrame([], silver_schema(source))
    elif spec.sentiment is not None and "sentiment_score" not in silver.columns:
        # a Silver table written before its event type was scored
        silver = silver.select("*", *[F.lit(None).cast(t).alias(c) for c, t in _score_columns()])
    return silver.where((F.col("event_date") >= F.lit(start)) & (F.col("event_date") < F.lit(end)))


def _score_columns() -> list[tuple[str, str]]:
    return [tuple(column.split()) for column in SCORE_SCHEMA.split(", ")]  # type: ignore[misc]


def read_inputs(
    spark: SparkSession, settings: Settings, spec: MartSpec, start: date, end: date
) -> dict[str, DataFrame]:
    """Every input of the mart for building ``[start, end)``: Silver from ``start - lookback_days``, reference
    tables (refreshed from the config folder first if their files changed) and the calendar."""
    inputs = spec.inputs
    first = start - timedelta(days=inputs.lookback_days)
    frames = {source: silver_rows(spark, settings, source, first, end) for source in inputs.silver}
    if inputs.references:
        reference.refresh(spark, settings, list(inputs.references))
    for table, rows in inputs.references.items():
        read = reference.current if rows == "current" else reference.versions
        frames[table] = read(spark, settings, table)
    if inputs.calendar is not None:
        frames["calendar"] = date_spine(spark, inputs.calendar.first, inputs.calendar.last)
    return frames


def date_spine(spark: SparkSession, first: date, last: date) -> DataFrame:
    """One row per day ``first..last`` (both inclusive) in column ``date_key``."""
    days = (last - first).days + 1
    return spark.range(days).select(F.date_add(F.lit(first), F.col("id").cast("int")).alias("date_key"))


def compute(spec: MartSpec, inputs: Mapping[str, DataFrame], start: date | None, end: date | None) -> DataFrame:
    """The mart's rows from its inputs: its transform, then the contract's check of the columns and types."""
    transform = transform_for(spec)
    interval = {"start": start, "end": end}
    arguments = {
        name: inputs[name] if name in inputs else interval[name] for name in inspect.signature(transform).parameters
    }
    return conform(transform(**arguments), spec)


def conform(frame: DataFrame, spec: MartSpec) -> DataFrame:
    """``frame`` if it has exactly the contract's columns, in order, with the contract's types; else a
    SparkJobError listing every difference (the serving table's DDL is checked against the same contract)."""
    actual = [(name, kind.replace(" ", "")) for name, kind in frame.dtypes]
    expected = [(c.name, c.type) for c in spec.columns]
    if actual == expected:
        return frame
    differences = [
        f"column {i + 1}: contract {want[0]} {want[1]}, transform gives {got[0]} {got[1]}"
        for i, (want, got) in enumerate(zip(expected, actual, strict=False))
        if want != got
    ]
    if len(actual) != len(expected):
        differences.append(f"{len(expected)} columns in the contract, {len(actual)} from the transform")
    raise SparkJobError(
        f"{spec.source_file}: mart {spec.name}: the transform's result does not match the contract's columns: "
        + "; ".join(differences)
        + "; change the transform or the contract (and the serving table's migration)"
    )


def build_frame(spark: SparkSession, settings: Settings, spec: MartSpec, start: date, end: date) -> DataFrame:
    """The mart's rows for ``[start, end)`` (all of them for a full-refresh mart), read from the lake."""
    return compute(spec, read_inputs(spark, settings, spec, start, end), start, end)
