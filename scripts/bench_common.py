"""Helpers the loader, BI and incremental benchmarks share: a fresh serving database, the synthetic Gold fact rows,
percentiles, and the PostgreSQL settings a run measured with (read from the server with ``SHOW``)."""

from __future__ import annotations

import os
import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

CONNECT_MODE_ENV = "SPARK_CONNECT_MODE_ENABLED"
# what a run reports of the server it measured: durability, memory, and the WAL's size before a checkpoint
PG_SETTINGS = (
    "server_version",
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "wal_level",
    "shared_buffers",
    "effective_cache_size",
    "work_mem",
    "max_wal_size",
)


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (0..1) of ``values``: the value at rank ``round(q * (n - 1))`` in order."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latency_summary(ms: list[float]) -> dict[str, Any]:
    """Runs, p50, p95, p99 and max of latencies in milliseconds."""
    return {
        "runs": len(ms),
        "p50_ms": statistics.median(ms),
        "p95_ms": percentile(ms, 0.95),
        "p99_ms": percentile(ms, 0.99),
        "max_ms": max(ms),
    }


def pg_settings(dsn: str) -> dict[str, str]:
    """The settings in ``PG_SETTINGS`` as the server at ``dsn`` reports them now (``SHOW``)."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        return {name: str(conn.execute(f"SHOW {name}").fetchone()[0]) for name in PG_SETTINGS}  # type: ignore[index]


def bench_dsn(env: Any) -> str:
    """A fresh ``lakehouse_bench`` database on the environment's server, migrated; its DSN."""
    import psycopg

    from lakehouse.postgres.migrate import migrate
    from lakehouse.scripts.postgres_server import ensure_database

    with psycopg.connect(env.postgres_dsn("postgres"), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS lakehouse_bench WITH (FORCE)")
    ensure_database(env.postgres_dsn("postgres"), "lakehouse_bench")
    dsn = str(env.postgres_dsn("lakehouse_bench"))
    migrate(dsn)
    return dsn


def fact_frame(spark: Any, rows: int, day: date) -> Any:
    """``rows`` synthetic rows of serving.fct_orders_daily for ``day``, row ``id`` made from ``id`` alone (97
    tenants, 4 regions, 4 channels; units = id % 120)."""
    return spark.range(rows).selectExpr(
        "concat('tenant_', lpad(cast(id % 97 AS string), 3, '0')) AS tenant_id",
        f"date'{day.isoformat()}' AS order_date",
        "element_at(array('north','south','east','west'), cast(id % 4 AS int) + 1) AS region",
        "element_at(array('web','mobile','pos','unknown'), cast((id div 4) % 4 AS int) + 1) AS channel",
        "concat('category_', cast(id div 16 AS string)) AS product_category",
        "id % 50 AS orders_placed",
        "id % 7 AS orders_cancelled",
        "id % 120 AS units",
        "cast(id % 100000 / 100.0 AS decimal(18,2)) AS gross_revenue",
        "cast(id % 3000 / 100.0 AS decimal(18,2)) AS cancelled_revenue",
        "cast(id % 9000 / 100.0 AS decimal(18,2)) AS avg_order_value",
        "id % 40 AS unique_customers",
        "id % 13 AS orders_with_coupon",
    )


def expected_units(rows: int) -> int:
    """sum(units) of ``fact_frame(rows)``, in closed form: full cycles of 0..119, then the partial cycle."""
    cycles, rest = divmod(rows, 120)
    return cycles * (119 * 120 // 2) + rest * (rest - 1) // 2


@contextmanager
def connect_spark() -> Iterator[Any]:
    """A new Spark Connect session on the environment's server with the lakehouse's runtime properties (as
    ``lakehouse.spark.session.connect_session`` makes one), stopped on exit.

    PySpark's functions (``F.col``) dispatch to Spark Connect only while ``SPARK_CONNECT_MODE_ENABLED`` is set in
    the process, and the classic builder would then refuse to make a driver of this process's own (the
    incremental benchmark's, the stream benchmark's) or hand it to the jobs it launches: the variable is set only
    inside the block and restored after it."""
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    from lakehouse.config.settings import settings
    from lakehouse.spark.session import DEFAULT_CONF, runtime_conf

    before = os.environ.get(CONNECT_MODE_ENV)
    os.environ[CONNECT_MODE_ENV] = "1"
    spark = ConnectSession.builder.remote(settings().spark.connect_url).create()
    try:
        for key, value in runtime_conf(DEFAULT_CONF).items():
            spark.conf.set(key, value)
        yield spark
    finally:
        spark.stop()
        if before is None:
            os.environ.pop(CONNECT_MODE_ENV, None)
        else:
            os.environ[CONNECT_MODE_ENV] = before
