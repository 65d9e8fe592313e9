"""Bronze classification on tiny frames; expected classes are written out by hand."""

from __future__ import annotations

import json
from datetime import datetime

from pyspark.sql import SparkSession

from lakehouse.spark.transforms import bronze

EVENT_TYPES = ["ORDER_PLACED", "ORDER_CANCELLED"]


def _kafka_rows(spark: SparkSession, values: list[bytes | None]):  # type: ignore[no-untyped-def]
    rows = [(None, v, "orders", 0, i, datetime(2026, 11, 20, 12, 0, 0)) for i, v in enumerate(values)]
    return spark.createDataFrame(
        rows, "key binary, value binary, topic string, partition int, offset long, timestamp timestamp"
    )


def _event(**overrides: object) -> bytes:
    event = {"event_id": "e1", "event_type": "ORDER_PLACED", "schema_version": 1, "tenant_id": "t1"}
    event.update(overrides)
    return json.dumps(event).encode()


def test_every_message_is_kept_and_bad_ones_are_classified(spark: SparkSession) -> None:
    values = [
        _event(),
        b"not json at all",
        b"[1, 2, 3]",
        b"{'event_type': 'ORDER_PLACED'}",
        b'{"event_type": "ORDER_PLACED", "tenant_id": "\xff\xfe"}',
        _event(event_type="ORDER_EXPLODED"),
        _event(schema_version=9),
        None,
        b'{"event_type": "ORDER_PLACED", "schema_version": 1, "pad": "' + b"x" * 300 + b'"}',
        _event(schema_version=2, event_type="ORDER_CANCELLED"),
    ]
    out = bronze.classify(bronze.from_kafka(_kafka_rows(spark, values)), EVENT_TYPES, [1, 2], 200)
    got = {r["offset"]: r["error_class"] for r in out.select("offset", "error_class").collect()}
    assert got == {
        0: None,
        1: "NOT_A_JSON_OBJECT",
        2: "NOT_A_JSON_OBJECT",
        3: "NOT_A_JSON_OBJECT",
        4: "INVALID_UTF8",
        5: "UNKNOWN_EVENT_TYPE",
        6: "UNKNOWN_SCHEMA_VERSION",
        7: "EMPTY_VALUE",
        8: "OVERSIZED",
        9: None,
    }
    raw = {r["offset"]: r["value"] for r in out.select("offset", "value").collect()}
    assert [raw[i] for i in range(len(values))] == [bytearray(v) if v is not None else None for v in values]


def test_dead_letters_carry_reason_and_coordinates(spark: SparkSession) -> None:
    out = bronze.classify(bronze.from_kafka(_kafka_rows(spark, [_event(), b"{oops"])), EVENT_TYPES, [1], 1000)
    dead = bronze.dead_letters(out).collect()
    assert len(dead) == 1
    row = dead[0]
    assert (row["topic"], row["partition"], row["offset"], bytes(row["value"])) == ("orders", 0, 1, b"{oops")
    assert row["error_class"] == "NOT_A_JSON_OBJECT" and "JSON object" in row["error_message"]


def test_nul_and_unpaired_surrogate_escapes_are_dead_lettered_and_real_pairs_are_not(spark: SparkSession) -> None:
    values = [
        _event(note="x\u0000y"),  # json.dumps writes the escape \u0000
        _event(note="\ud800 alone"),
        _event(note="alone \udc00"),
        _event(note="\ude00\ud83d"),  # a pair in the wrong order
        _event(note="\U0001f600 and é"),  # a real pair: an emoji
        _event(note="\\u0000"),  # an escaped backslash, then the text u0000
        b'{"event_id": "e1", "event_type": "ORDER_PLACED", "schema_version": 1, "note": "\x00"}',  # a raw NUL byte
    ]
    out = bronze.classify(bronze.from_kafka(_kafka_rows(spark, values)), EVENT_TYPES, [1], 10_000)
    got = {r["offset"]: (r["error_class"], r["error_message"]) for r in out.collect()}
    forbidden = [offset for offset, (error, _) in got.items() if error == "FORBIDDEN_CHARACTER"]
    assert forbidden == [0, 1, 2, 3]
    assert "NUL" in got[0][1] and "surrogate" in got[0][1]
    assert got[4][0] is None and got[5][0] is None
    assert got[6][0] == "NOT_A_JSON_OBJECT"  # a raw control character is not JSON


def _nested(levels: int) -> object:
    """``levels`` objects and arrays, one inside the other."""
    value: object = {}
    for level in range(levels - 1):
        value = [value] if level % 2 else {"a": value}
    return value


def test_documents_nested_past_the_limit_are_dead_lettered(spark: SparkSession) -> None:
    limit = bronze.MAX_NESTING_DEPTH
    values = [
        _event(deep=_nested(limit - 1)),  # with the event's own object: exactly the limit
        _event(deep=_nested(limit)),  # one level past it
        _event(note="[{" * 500),  # brackets inside a string are text
        _event(note='a \\" [[[ quote', deep=_nested(limit - 1)),  # an escaped quote does not end the string
        _event(rows=[{"a": [1, 2]} for _ in range(1_000)]),  # wide, not deep: 3,000 opening brackets, depth 4
        b'{"event_id": "e1", "x": ' + b"[" * 2_000 + b"]" * 2_000 + b"}",  # past Spark's own parser limit
    ]
    out = bronze.classify(bronze.from_kafka(_kafka_rows(spark, values)), EVENT_TYPES, [1], 1_000_000)
    got = {r["offset"]: (r["error_class"], r["error_message"]) for r in out.collect()}
    assert [got[i][0] for i in range(len(values))] == [
        None,
        "TOO_DEEPLY_NESTED",
        None,
        None,
        None,
        "TOO_DEEPLY_NESTED",
    ]
    assert got[1][1] == f"objects and arrays are nested {limit + 1} levels deep; the limit is {limit}"
    assert got[5][1].startswith("objects and arrays are nested 2001 levels deep")


def test_each_envelope_field_is_read_from_the_parsed_value_once_per_row(spark: SparkSession) -> None:
    # over an RDD, as the stream's rows are: Spark would compute a projection of local rows before planning
    local = _kafka_rows(spark, [_event(), _event(event_type="ORDER_EXPLODED"), _event(schema_version=9)])
    rows = spark.createDataFrame(local.rdd, local.schema)
    out = bronze.classify(bronze.from_kafka(rows), EVENT_TYPES, [1], 1000)
    plan = out._jdf.queryExecution().executedPlan().toString()
    assert [plan.count(f"$.{field}") for field in ("event_type", "schema_version", "tenant_id")] == [1, 1, 1]
    got = {r["offset"]: (r["error_class"], r["event_type"], r["schema_version"]) for r in out.collect()}
    assert got == {
        0: (None, "ORDER_PLACED", "1"),
        1: ("UNKNOWN_EVENT_TYPE", "ORDER_EXPLODED", "1"),
        2: ("UNKNOWN_SCHEMA_VERSION", "ORDER_PLACED", "9"),
    }
