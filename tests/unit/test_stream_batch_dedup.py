"""The streaming handler's choice of Silver rows from one micro-batch (``stream.first_new_per_key``), on a hand-made
batch shaped as the dedup operator gives it: message rows (``_row``) and key rows (``_k1``, ``_k2``)."""

from __future__ import annotations

from datetime import date, datetime

from pyspark.sql import DataFrame, SparkSession

from lakehouse.spark.jobs.stream import first_new_per_key

DAY = date(2026, 11, 20)
BATCH_TIME = datetime(2026, 11, 21, 9, 0)
WATERMARK = datetime(2026, 11, 20, 6, 0)
ROW_SCHEMA = (
    "_bronze struct<error_class: string>, _violations array<string>, order_id string, event_date date, "
    "event_timestamp timestamp, _ingested_at timestamp, _kafka_partition int, _kafka_offset bigint, "
    "ingest_date date, amount int"
)
BATCH_SCHEMA = f"_k1 string, _k2 date, _t timestamp, _row struct<{ROW_SCHEMA}>"


def _message(
    order_id: str, offset: int, *, hour: int = 10, violations: tuple[str, ...] = (), error: str | None = None
) -> tuple[object, ...]:
    row = (
        (error,),
        list(violations),
        order_id,
        DAY,
        datetime(2026, 11, 20, hour),
        BATCH_TIME,
        0,
        offset,
        BATCH_TIME.date(),
        offset * 10,
    )
    return (f"0:{offset}", None, None, row)


def _key(order_id: str) -> tuple[object, ...]:
    return (order_id, DAY, datetime(2026, 11, 20, 10), None)


def _batch(spark: SparkSession, rows: list[tuple[object, ...]]) -> DataFrame:
    """A persisted frame over an RDD, as foreachBatch hands a micro-batch to its handler."""
    made = spark.createDataFrame(rows, BATCH_SCHEMA)
    return spark.createDataFrame(made.rdd, made.schema).persist()


def test_first_copy_of_keys_the_state_let_through_and_late_events_silver_does_not_hold(spark: SparkSession) -> None:
    batch = _batch(
        spark,
        [
            _message("o1", 5),
            _message("o1", 3),  # the first copy of o1 in Kafka order
            _key("o1"),
            _message("o2", 6),  # the state knew o2 already: no key row
            _message("o3", 7, hour=5),  # late, unknown to Silver
            _message("o4", 8, hour=4),  # late, already in Silver
            _message("o5", 9, violations=("amount_positive",)),  # quarantined
            _key("o6"),  # a key row whose event was rejected cannot happen, and selects nothing
            _message("o7", 10, error="NOT_JSON"),  # a dead letter
        ],
    )
    silver_keys = spark.createDataFrame([("o4", DAY), ("o9", DAY)], "order_id string, event_date date")

    selected = first_new_per_key(batch, "order_id", WATERMARK, silver_keys)

    assert sorted((r.order_id, r._kafka_offset) for r in selected.collect()) == [("o1", 3), ("o3", 7)]
    assert selected.columns == [
        "order_id",
        "event_date",
        "event_timestamp",
        "_ingested_at",
        "_kafka_partition",
        "_kafka_offset",
        "amount",
    ]
    batch.unpersist()


def test_before_the_first_watermark_no_event_is_late(spark: SparkSession) -> None:
    batch = _batch(spark, [_message("o3", 7, hour=5), _message("o8", 11), _key("o8")])

    selected = first_new_per_key(batch, "order_id", None, None)

    assert [r.order_id for r in selected.collect()] == ["o8"]
    batch.unpersist()


def test_the_micro_batch_is_read_once_from_its_cache(spark: SparkSession) -> None:
    """A second reference to the batch (a self-join) missed the cache and ran the micro-batch again."""
    batch = _batch(spark, [_message("o1", 3), _key("o1")])
    silver_keys = spark.createDataFrame([("o4", DAY)], "order_id string, event_date date")

    plan = first_new_per_key(batch, "order_id", WATERMARK, silver_keys)._jdf.queryExecution().executedPlan()
    text = plan.toString()

    assert text.count("InMemoryTableScan") == 1
    # the batch's own scan appears once: as the cached relation's child, shown under it
    assert text.count("Scan ExistingRDD[_k1") == 1
    batch.unpersist()


def test_a_key_the_late_event_lookup_holds_twice_still_gives_one_row_without_a_shuffle(spark: SparkSession) -> None:
    """The late-event index may hold a key twice (read from Silver and learnt from a batch), in many partitions: the
    lookup joins it as it is (broadcast, being small), without a shuffle to make it distinct, and a key still gives
    one row."""
    batch = _batch(
        spark,
        [
            _message("o3", 7, hour=5),
            _message("o3", 6, hour=5),  # the first copy of a late event Silver does not hold
            _message("o4", 8, hour=4),  # late, held twice by the lookup
            _message("o1", 3),
            _key("o1"),
        ],
    )
    silver_keys = spark.createDataFrame(
        [("o4", DAY), ("o4", DAY), ("o9", DAY), ("o4", DAY)], "order_id string, event_date date"
    ).repartition(3)

    selected = first_new_per_key(batch, "order_id", WATERMARK, silver_keys)

    assert sorted((r.order_id, r._kafka_offset) for r in selected.collect()) == [("o1", 3), ("o3", 6)]
    plan = selected._jdf.queryExecution().executedPlan().toString()
    assert "BroadcastExchange" in plan
    assert "HashAggregate" not in plan
    batch.unpersist()
