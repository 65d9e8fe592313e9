"""Where a mart's load writes: sinks by format, named in its contract (``sinks: [postgres]``, the default).

A sink is a module with a function ``write_mart(run: SinkRun) -> LoadResult``: ``postgres`` is
``lakehouse.spark.io.postgres``; a name with a dot is a module path of its own (``my_company.sinks.clickhouse``).
The load reads the interval's Gold rows once and hands them to every sink of the mart, in the contract's order.
Adding a sink is that module and its name in the contracts of the marts it serves: nothing else changes.
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.config.marts import MartSpec
from lakehouse.config.settings import Settings
from lakehouse.postgres.errors import ServingError
from lakehouse.postgres.loader import LoadResult
from lakehouse.spark.errors import SparkJobError
from lakehouse.spark.io.delta import read_table

log = logging.getLogger(__name__)
SINK_PACKAGE = "lakehouse.spark.io"
SINK_FUNCTION = "write_mart"


@dataclass(frozen=True)
class SinkRun:
    """One load of a mart's interval ``[start, end)``, as every sink gets it: the Gold ``rows`` of the interval
    (all of them for a full-refresh mart), the serving ``dsn`` and the Silver watermark the build saw."""

    settings: Settings
    spec: MartSpec
    start: date
    end: date
    rows: DataFrame
    dsn: str
    silver_watermark: datetime | None = None


Sink = Callable[[SinkRun], LoadResult]


@functools.lru_cache(maxsize=32)
def sink_for(name: str) -> Sink:
    """The ``write_mart`` function of the sink ``name`` (a format of ``lakehouse.spark.io``, or a module path)."""
    module_name = name if "." in name else f"{SINK_PACKAGE}.{name}"
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SparkJobError(
            f"sink {name!r}: cannot import {module_name} ({exc}); check `sinks:` in the contract"
        ) from exc
    function = getattr(module, SINK_FUNCTION, None)
    if not callable(function):
        raise SparkJobError(f"sink {name!r}: {module_name} has no function {SINK_FUNCTION}(run: SinkRun)")
    return function


def gold_rows(spark: SparkSession, settings: Settings, spec: MartSpec, start: date, end: date) -> DataFrame:
    """The mart's Gold rows of ``[start, end)`` (every row of a full-refresh mart)."""
    gold = settings.storage.table("gold", spec.name)
    frame = read_table(spark, gold)
    if frame is None:
        raise ServingError(
            f"mart {spec.name}: no Gold Delta table at {gold}: build it first "
            f"(`lakehouse gold {spec.name} --start {start} --end {end}`)"
        )
    if spec.is_full_refresh:
        return frame
    column = F.col(str(spec.date_column))
    return frame.where((column >= F.lit(start)) & (column < F.lit(end)))


def write(
    spark: SparkSession,
    settings: Settings,
    spec: MartSpec,
    start: date,
    end: date,
    dsn: str,
    silver_watermark: datetime | None = None,
) -> list[LoadResult]:
    """Write ``[start, end)`` of the mart to each of its sinks; one result per sink, in the contract's order."""
    run = SinkRun(settings, spec, start, end, gold_rows(spark, settings, spec, start, end), dsn, silver_watermark)
    results = []
    for name in spec.sinks:
        result = sink_for(name)(run)
        log.info("%s (sink %s)", result.summary(), name)
        results.append(result)
    return results
