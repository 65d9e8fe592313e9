"""The loader benchmark: the COPY loader (``lakehouse.spark.io.postgres.load_frame``) against pandas ``to_sql``
(row INSERTs, and with the COPY ``method=`` of the pandas docs), all three starting from the same Gold Delta table
read over Spark Connect, as a Gold task reads it.

Protocol: the synthetic fact rows are written to a Delta table once; each side then reads that table over the
Spark Connect server (the pandas sides include ``toPandas()``), loads one day into an empty day of the same
partitioned DDL and is checked (row count, sum of units computed in closed form). After one untimed run of each
side, the sides alternate (A B C A B C ...) ``repeats`` times; the medians and every raw time are reported."""

from __future__ import annotations

import csv
import io
import shutil
import statistics
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from lakehouse.scripts.bench_common import bench_dsn, connect_spark, expected_units, fact_frame, pg_settings
from lakehouse.scripts.bench_env import bench_home
from lakehouse.scripts.errors import BenchError

SIDES = ("copy_loader", "to_sql", "to_sql_copy")
TO_SQL_TABLE = "fct_orders_daily_to_sql"


def psql_insert_copy(table: Any, conn: Any, keys: list[str], data_iter: Iterable[Any]) -> None:
    """The pandas docs' ``method=`` callable for ``to_sql`` ("Insertion method"): the rows as CSV through psycopg2's
    ``copy_expert``."""
    dbapi_conn = conn.connection
    with dbapi_conn.cursor() as cur:
        buffer = io.StringIO()
        csv.writer(buffer).writerows(data_iter)
        buffer.seek(0)
        columns = ", ".join(f'"{k}"' for k in keys)
        name = f"{table.schema}.{table.name}" if table.schema else table.name
        cur.copy_expert(sql=f"COPY {name} ({columns}) FROM STDIN WITH CSV", file=buffer)


def bench_loader(rows: int, repeats: int = 5) -> dict[str, Any]:
    """COPY loader vs pandas ``to_sql`` (INSERT and COPY methods), same Gold Delta table, same DDL, alternated."""
    from lakehouse.config.settings import settings

    dsn = bench_dsn(settings())
    gold = bench_home() / f"loader-{uuid.uuid4().hex[:6]}" / "fct_orders_daily"
    try:
        with connect_spark() as spark:
            return _alternate(spark, dsn, gold, rows, repeats)
    finally:
        shutil.rmtree(gold.parent, ignore_errors=True)


def _alternate(spark: Any, dsn: str, gold: Path, rows: int, repeats: int) -> dict[str, Any]:
    """The loader benchmark's protocol on a Spark Connect session (see the module docstring)."""
    import psycopg
    from sqlalchemy import create_engine

    from lakehouse.spark.io.postgres import load_frame

    day = date(2026, 1, 1)
    next_day = day + timedelta(days=1)
    table = "serving.fct_orders_daily"
    started = time.perf_counter()
    fact_frame(spark, rows, day).write.format("delta").mode("overwrite").save(str(gold))
    write_s = time.perf_counter() - started
    with psycopg.connect(dsn, autocommit=True) as conn:
        # the same DDL: partitioned by day, the day's partition there, the same primary key and indexes
        conn.execute(
            f"CREATE TABLE serving.{TO_SQL_TABLE} (LIKE serving.fct_orders_daily INCLUDING ALL) "
            "PARTITION BY RANGE (order_date)"
        )
        conn.execute("SELECT lakehouse_meta.add_day_partitions(%s, %s, %s)", (f"serving.{TO_SQL_TABLE}", day, next_day))
    engine = create_engine(dsn.replace("postgresql://", "postgresql+psycopg2://", 1))
    units = expected_units(rows)

    def gold_rows() -> Any:
        return spark.read.format("delta").load(str(gold))

    def check(target: str) -> None:
        with psycopg.connect(dsn) as conn:
            found = conn.execute(f"SELECT count(*), sum(units) FROM {target}").fetchone()
        if found is None or (found[0], found[1]) != (rows, units):
            raise BenchError(f"{target} holds {found} after a load, expected ({rows}, {units})")

    def copy_loader() -> float:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}_p{day:%Y%m%d}")  # an empty day: the swap creates it
        t0 = time.perf_counter()
        load_frame(gold_rows(), dsn, table, "order_date", day, next_day)
        elapsed = time.perf_counter() - t0
        check(table)
        return elapsed

    def pandas_side(method: Callable[..., None] | None) -> Callable[[], float]:
        def run() -> float:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f"TRUNCATE serving.{TO_SQL_TABLE}")
            t0 = time.perf_counter()
            pdf = gold_rows().toPandas()
            pdf.to_sql(
                TO_SQL_TABLE, engine, schema="serving", if_exists="append", index=False, chunksize=10_000, method=method
            )
            elapsed = time.perf_counter() - t0
            check(f"serving.{TO_SQL_TABLE}")
            return elapsed

        return run

    sides: dict[str, Callable[[], float]] = {
        "copy_loader": copy_loader,
        "to_sql": pandas_side(None),
        "to_sql_copy": pandas_side(psql_insert_copy),
    }
    untimed = {name: run() for name, run in sides.items()}
    raw: dict[str, list[float]] = {name: [] for name in SIDES}
    order: list[str] = []
    for _ in range(repeats):
        for name in SIDES:
            raw[name].append(sides[name]())
            order.append(name)
    postgres = pg_settings(dsn)
    engine.dispose()
    medians = {name: statistics.median(times) for name, times in raw.items()}
    return {
        "rows": rows,
        "source": "Gold Delta table read over Spark Connect by every side",
        "gold_write_s": write_s,
        "repeats": repeats,
        "order": order,
        "untimed_s": untimed,
        "raw_s": raw,
        "median_s": medians,
        "rows_per_s": {name: rows / s for name, s in medians.items()},
        "ratio_to_sql": medians["to_sql"] / medians["copy_loader"],
        "ratio_to_sql_copy": medians["to_sql_copy"] / medians["copy_loader"],
        "postgres": postgres,
    }
