"""The streaming Gold query of order_revenue_5min (spark/jobs/revenue_stream.py) on the real stack: Kafka -> Silver
(the stream job) -> 5-minute windows MERGEd into Gold and upserted into PostgreSQL, then the daily build and load of
the same day. Expected rows are computed here, in plain Python, from the generated messages and the products
reference CSV; never by the code under test.

Two waves of orders of one past day: the first on time, the second arriving after the stream's watermark has
passed most of the day. The stream counts the first wave and the second wave's orders in windows still open
(ending after the watermark) and drops the rest; the daily build counts them all."""

from __future__ import annotations

import csv
import threading
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from lakehouse.config.marts import mart
from lakehouse.config.settings import Settings
from lakehouse.kafka.generator import GeneratedMessage, GeneratorOptions, generate

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
DAY = date(2025, 5, 6)
WINDOW = timedelta(minutes=5)
WATERMARK_DELAY = timedelta(minutes=10)
Key = tuple[Any, ...]


def _time(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["event_timestamp"]).astimezone(UTC)


def _window(at: datetime) -> datetime:
    return at - timedelta(minutes=at.minute % 5, seconds=at.second, microseconds=at.microsecond)


def _cents(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def expected_windows(events: list[dict[str, Any]], categories: dict[str, str]) -> dict[Key, tuple[Any, ...]]:
    """order_revenue_5min of ``events``, keyed by grain: placed orders only, unknown region/category if missing."""
    groups: dict[Key, dict[str, Any]] = defaultdict(
        lambda: {"orders": set(), "units": 0, "revenue": Decimal(0), "customers": set()}
    )
    for event in events:
        if event["event_type"] != "ORDER_PLACED":
            continue
        at = _time(event)
        key = (
            event["tenant_id"],
            at.date(),
            _window(at),
            event.get("region") or "unknown",
            categories.get(event["product_id"], "unknown"),
        )
        group = groups[key]
        group["orders"].add(event["order_id"])
        group["units"] += int(event["quantity"])
        group["revenue"] += Decimal(str(event["total_price"]))
        group["customers"].add(event["customer_id"])
    return {
        key: (
            key[2] + WINDOW,
            len(g["orders"]),
            g["units"],
            _cents(g["revenue"]),
            _cents(g["revenue"] / len(g["orders"])),
            len(g["customers"]),
        )
        for key, g in groups.items()
    }


# the grain first, then the values
COLUMNS = (
    "tenant_id", "window_date", "window_start", "region", "product_category", "window_end", "orders_placed",
    "units_sold", "total_revenue", "avg_order_value", "unique_customers",
)  # fmt: skip


def _keyed(rows: list[tuple[Any, ...]]) -> dict[Key, tuple[Any, ...]]:
    keyed = {tuple(r[:5]): tuple(r[5:]) for r in rows}
    assert len(keyed) == len(rows), "one row per grain"
    return keyed


def _serving(dsn: str) -> dict[Key, tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return _keyed(conn.execute(f"SELECT {', '.join(COLUMNS)} FROM serving.order_revenue_5min").fetchall())


def _gold(spark: Any, env: Settings) -> dict[Key, tuple[Any, ...]]:
    """The Gold table's rows (through Arrow: time zone-aware timestamps, as psycopg's)."""
    table = spark.read.format("delta").load(env.storage.table_path("gold", "order_revenue_5min")).select(*COLUMNS)
    return _keyed([tuple(row.values()) for row in table.toArrow().to_pylist()])


def _clean(messages: list[GeneratedMessage]) -> list[dict[str, Any]]:
    return [m.event for m in messages if m.fault is None and m.event is not None]


def test_the_revenue_stream_gives_the_daily_builds_rows_and_the_build_corrects_late_orders(
    kafka_stack: Settings, isolated_serving: Settings, spark: Any
) -> None:
    from lakehouse.kafka.admin import ensure_topics
    from lakehouse.kafka.producer import EventProducer
    from lakehouse.spark.jobs import revenue_stream, stream
    from lakehouse.spark.jobs.gold import build_and_check, load

    env, dsn = isolated_serving, isolated_serving.postgres_dsn()
    products = sorted((ROOT / "config" / "reference" / "products").glob("*.csv"))[-1]
    categories = {row["product_id"]: row["category"] for row in csv.DictReader(products.open())}
    start = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)
    # orders up to 20:00 arrive on time; later the rest of the day arrives, with stragglers from any time of it
    on_time = [
        m
        for m in generate("orders", 400, GeneratorOptions(tenants=2, seed=5, start=start))
        if m.event and _time(m.event) < start + timedelta(hours=20)
    ]
    late = list(generate("orders", 120, GeneratorOptions(tenants=2, seed=6, start=start)))
    ensure_topics(env)

    def arrive(messages: list[GeneratedMessage]) -> None:
        """Produce, then Kafka -> Silver and Silver -> revenue windows, each until caught up (in this process)."""
        with EventProducer(env) as producer:
            assert producer.send_events("orders", messages) == len(messages)
        stream.main(["--event-type=orders", "--available-now"])
        revenue_stream.main(["--available-now"])

    # wave 1: on time; the stream's rows are the day's rows
    arrive(on_time)
    first = _clean(on_time)
    assert _serving(dsn) == expected_windows(first, categories)
    assert _gold(spark, env) == _serving(dsn)

    # the batch replayed, as after a crash between its writes and its checkpoint commit: nothing changes
    checkpoint = Path(env.storage.checkpoint_path(revenue_stream.QUERY))
    for name in ("commits/0", "commits/.0.crc", "commits/1", "commits/.1.crc", "offsets/1", "offsets/.1.crc"):
        (checkpoint / name).unlink(missing_ok=True)
    revenue_stream.main(["--available-now"])
    assert _serving(dsn) == expected_windows(first, categories)
    assert _gold(spark, env) == _serving(dsn)

    # wave 2: the whole day, after the watermark (newest placed order's time - 10 minutes) passed most of it
    arrive(late)
    watermark = max(_time(e) for e in first if e["event_type"] == "ORDER_PLACED") - WATERMARK_DELAY
    counted = [e for e in _clean(late) if _window(_time(e)) + WINDOW > watermark]
    dropped = [e for e in _clean(late) if e not in counted and e["event_type"] == "ORDER_PLACED"]
    assert dropped and counted, "the second wave should have orders on both sides of the watermark"
    after_stream = _serving(dsn)
    assert after_stream == expected_windows(first + counted, categories)
    assert _gold(spark, env) == after_stream, "Gold and serving get the same windows"

    # again, with nothing new: nothing changes (no MERGE, no upsert)
    gold_path = env.storage.table_path("gold", "order_revenue_5min")
    version = spark.sql(f"DESCRIBE HISTORY delta.`{gold_path}`").agg({"version": "max"}).first()[0]
    revenue_stream.main(["--available-now"])
    assert _serving(dsn) == after_stream
    assert spark.sql(f"DESCRIBE HISTORY delta.`{gold_path}`").agg({"version": "max"}).first()[0] == version

    # the daily build and load of the day: every order counted, the stream's windows unchanged where no
    # dropped order falls
    spec = mart("order_revenue_5min")
    assert build_and_check(spark, env, spec, DAY, DAY + timedelta(days=1), dsn).passed
    load(spark, env, spec, DAY, DAY + timedelta(days=1), dsn)
    after_build = _serving(dsn)
    everything = expected_windows(first + _clean(late), categories)
    assert after_build == everything
    touched = set(expected_windows(dropped, categories))
    assert {k: v for k, v in after_stream.items() if k not in touched} == {
        k: v for k, v in after_build.items() if k not in touched
    }
    assert all(after_stream.get(k) != after_build[k] for k in touched), "dropped orders are counted by the build"

    # each batch in the audit: every Silver order read once; the second wave's batch ran with the watermark
    with psycopg.connect(dsn) as conn:
        read = conn.execute(
            "SELECT sum(input_rows), count(*) FILTER (WHERE output_rows > 0), "
            "max(watermark) FILTER (WHERE input_rows > 0) FROM lakehouse_meta.stream_batches "
            "WHERE query = 'revenue_5min'"
        ).fetchone()
    assert read == (len(first) + len(_clean(late)), 2, watermark)


def test_a_load_and_a_streaming_batch_of_one_table_take_turns(isolated_serving: Settings, spark: Any) -> None:
    """The serving lock: a daily load waits for a streaming batch holding it (between its Gold MERGE and its
    upsert) and then replaces the day; a streaming batch cannot take it while a load holds it."""
    import pyarrow as pa

    from lakehouse.postgres.errors import ServingError
    from lakehouse.postgres.upsert import serving_lock, upsert
    from lakehouse.spark.io.postgres import load_frame

    dsn, table, spec = isolated_serving.postgres_dsn(), "serving.order_revenue_5min", mart("order_revenue_5min")
    at = datetime(DAY.year, DAY.month, DAY.day, 10, tzinfo=UTC)
    loaded = (("t1", DAY, at, "north", "home"), (at + WINDOW, 3, 3, Decimal("3.00"), Decimal("1.00"), 2))
    streamed = (("t1", DAY, at, "north", "home"), (at + WINDOW, 1, 1, Decimal("1.00"), Decimal("1.00"), 1))
    types = {column.name: column.type for column in spec.columns}
    frame = spark.createDataFrame([loaded[0] + loaded[1]], ", ".join(f"{c} {types[c]}" for c in COLUMNS))
    batch = pa.Table.from_pylist(
        [dict(zip(COLUMNS, streamed[0] + streamed[1], strict=True))],
        pa.schema(
            [
                ("tenant_id", pa.string()), ("window_date", pa.date32()), ("window_start", pa.timestamp("us", "UTC")),
                ("region", pa.string()), ("product_category", pa.string()), ("window_end", pa.timestamp("us", "UTC")),
                ("orders_placed", pa.int64()), ("units_sold", pa.int64()), ("total_revenue", pa.decimal128(18, 2)),
                ("avg_order_value", pa.decimal128(18, 2)), ("unique_customers", pa.int64()),
            ]
        ),
    )  # fmt: skip
    with serving_lock(dsn, table, exclusive=True) as conn:  # a streaming batch, between its MERGE and its upsert
        load = threading.Thread(target=load_frame, args=(frame, dsn, table, "window_date", DAY, DAY + timedelta(1)))
        load.start()
        waiting = 0
        for _ in range(120):
            waiting = conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            ).fetchone()[0]
            if waiting:
                break
            time.sleep(0.5)
        assert waiting == 1 and load.is_alive(), "the load waits for the batch"
        assert upsert(conn, table, spec.grain, batch, date_column="window_date") == 1
        assert _serving(dsn) == dict([streamed])
    load.join(120)
    assert _serving(dsn) == dict([loaded]), "then the load replaces the day"

    with (
        serving_lock(dsn, table, exclusive=False),
        pytest.raises(ServingError, match="a load of it holds it"),
        serving_lock(dsn, table, exclusive=True, lock_timeout="1s"),
    ):
        pass


def test_before_silver_has_orders_an_available_now_run_has_nothing_to_do(
    isolated_serving: Settings, spark: Any
) -> None:
    from lakehouse.spark.io.delta import table_exists
    from lakehouse.spark.jobs import revenue_stream

    revenue_stream.main(["--available-now"])
    assert not table_exists(spark, isolated_serving.storage.table_path("gold", "order_revenue_5min"))
