"""Silver parsing, contract checks, data-quality rules, deduplication and enrichment on tiny frames."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

from pyspark.sql import SparkSession

from lakehouse.config.specs import event_type
from lakehouse.spark.transforms import silver

ORDERS = event_type("orders")


def _order(i: int, **overrides: object) -> dict[str, object]:
    event: dict[str, object] = {
        "event_id": f"e{i}",
        "event_type": "ORDER_PLACED",
        "schema_version": 1,
        "tenant_id": "t1",
        "event_timestamp": "2026-11-20T10:15:00Z",
        "order_id": f"o{i}",
        "customer_id": "c1",
        "product_id": "P0001",
        "quantity": 2,
        "unit_price": 10.5,
        "total_price": 21.0,
        "currency": "USD",
        "region": "north",
    }
    event.update(overrides)
    return event


def _bronze(spark: SparkSession, events: list[dict[str, object]]):  # type: ignore[no-untyped-def]
    rows = [
        (
            json.dumps(e).encode(),
            "orders",
            0,
            i,
            datetime(2026, 11, 20, 11),
            date(2026, 11, 20),
            None,
            str(e.get("schema_version")),
        )
        for i, e in enumerate(events)
    ]
    schema = (
        "value binary, topic string, partition int, offset long, ingested_at timestamp, ingest_date date, "
        "error_class string, schema_version string"
    )
    return spark.createDataFrame(rows, schema)


def test_typed_columns_and_version_specific_fields(spark: SparkSession) -> None:
    events = [_order(1), _order(2, schema_version=2, channel="web", coupon_code=None)]
    parsed = silver.parse_events(_bronze(spark, events), ORDERS)
    rows = {r["event_id"]: r for r in parsed.collect()}
    assert rows["e1"]["quantity"] == 2 and rows["e1"]["unit_price"] == Decimal("10.50")
    assert rows["e1"]["event_timestamp"] == datetime(2026, 11, 20, 10, 15) and rows["e1"]["event_date"] == date(
        2026, 11, 20
    )
    assert rows["e1"]["channel"] is None, "v1 events get null for v2-only fields"
    assert rows["e2"]["channel"] == "web"
    assert rows["e1"]["_violations"] == [] and rows["e2"]["_violations"] == []


def test_contract_violations_are_all_named(spark: SparkSession) -> None:
    events = [
        _order(1, quantity="abc"),
        _order(2, region=None),
        _order(3, event_type="ORDER_SHIPPED", currency="usd"),
        _order(4, schema_version=2),  # v2 requires channel
        _order(5, quantity=2.5),
        # JSON types are strict: no string for a number, no number for a string; as in JSON Schema, 3.0 is an integer
        _order(6, region=5, event_timestamp=1763633700),
        _order(7, unit_price="10.5", quantity=3.0),
        _order(8, unit_price=10, total_price=20),  # an integer is a valid price
    ]
    parsed = silver.parse_events(_bronze(spark, events), ORDERS)
    got = {r["event_id"]: sorted(r["_violations"]) for r in parsed.collect()}
    assert got == {
        "e1": ["contract.type:quantity"],
        "e2": ["contract.required:region"],
        "e3": ["contract.enum:event_type", "contract.pattern:currency"],
        "e4": ["contract.required:channel"],
        "e5": ["contract.type:quantity"],
        "e6": ["contract.type:event_timestamp", "contract.type:region"],
        "e7": ["contract.type:unit_price"],
        "e8": [],
    }


def test_typed_values_round_overflow_and_unescape_as_spark_casts_do(spark: SparkSession) -> None:
    """Values read with ``from_json`` come out as Spark's own casts give them (half-up rounding to the contract's
    scale, null past the type's range), and text exactly as sent."""
    region = 'north "Zürich" \\ \u00e9 \u2603'
    events = [
        _order(1, unit_price=10.555, total_price=21.11, quantity=2),
        _order(2, quantity=2**63),  # one past bigint's range: an integer, but not a bigint
        _order(3, region=region, event_timestamp="2026-11-20T10:15:00+01:00", quantity=4.0),
        _order(4, unit_price=12345678901.994),  # rounds past decimal(12,2)'s 10 integer digits
    ]
    parsed = silver.parse_events(_bronze(spark, events), ORDERS)
    rows = {r["event_id"]: r for r in parsed.collect()}
    assert rows["e1"]["unit_price"] == Decimal("10.555").quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    assert rows["e1"]["_violations"] == []
    assert rows["e2"]["quantity"] is None and rows["e2"]["_violations"] == ["contract.type:quantity"]
    assert rows["e3"]["region"] == region and rows["e3"]["quantity"] == 4
    assert rows["e3"]["event_timestamp"] == datetime(2026, 11, 20, 9, 15), "the offset is applied (session zone UTC)"
    assert rows["e4"]["unit_price"] is None and rows["e4"]["_violations"] == ["contract.type:unit_price"]


def test_quality_rules_name_every_failure(spark: SparkSession) -> None:
    events = [_order(1, quantity=0, total_price=0.0), _order(2, total_price=99.0), _order(3)]
    checked = silver.apply_quality_rules(silver.parse_events(_bronze(spark, events), ORDERS), ORDERS)
    got = {r["event_id"]: sorted(r["_violations"]) for r in checked.collect()}
    assert got == {"e1": ["dq:quantity_positive"], "e2": ["dq:total_is_quantity_times_price"], "e3": []}
    quarantine = silver.quarantined(checked, "orders")
    assert sorted(r["event_id"] for r in quarantine.collect()) == ["e1", "e2"]
    assert sorted(r["event_id"] for r in silver.accepted(checked).collect()) == ["e3"]


def test_dedup_keeps_the_first_to_arrive_per_key_and_event_date_and_skips_known_keys(spark: SparkSession) -> None:
    from datetime import date, datetime

    d1, d2 = date(2026, 11, 20), date(2026, 11, 21)
    early, late = datetime(2026, 11, 20, 10), datetime(2026, 11, 20, 11)
    frame = spark.createDataFrame(
        [
            ("a", d1, early, 0, 5, "later offset"),
            ("a", d1, early, 0, 2, "first"),
            ("a", d1, late, 0, 1, "later batch"),
            ("a", d2, late, 0, 7, "other date"),
            ("b", d1, late, 1, 1, "only"),
            ("c", d1, early, 0, 3, "known"),
            ("c", d2, early, 0, 4, "known key, other date"),
        ],
        "event_id string, event_date date, _ingested_at timestamp, _kafka_partition int, _kafka_offset long, "
        "note string",
    )
    existing = spark.createDataFrame([("c", d1)], "event_id string, event_date date")
    result = silver.not_already_in(silver.first_per_key(frame, "event_id"), existing, "event_id")
    assert sorted(r["note"] for r in result.collect()) == ["first", "known key, other date", "only", "other date"]


def test_enrichment_flags_missing_reference_rows(spark: SparkSession) -> None:
    events = spark.createDataFrame(
        [("e1", "P1", "c1"), ("e2", "P9", "c1")], "event_id string, product_id string, customer_id string"
    )
    products = spark.createDataFrame(
        [("P1", "Lamp", "home", "Acme")], "product_id string, name string, category string, brand string"
    )
    customers = spark.createDataFrame(
        [("c1", "enterprise", "DE")], "customer_id string, segment string, country string"
    )
    result = silver.enrich(events, ORDERS, {"products": products, "customers": customers})
    got = {r["event_id"]: (r["product_category"], r["customer_segment"], r["_enriched"]) for r in result.collect()}
    assert got == {"e1": ("home", "enterprise", True), "e2": (None, "enterprise", False)}


def test_hostile_tenant_ids_are_contract_violations_never_partition_values(spark: SparkSession) -> None:
    hostile = [
        "t1'; DROP TABLE serving.fct_orders_daily; --",
        "../../etc",
        "tenant_01/../t2",
        "C:\\tenants",
        "x" * 10_240,
        "tenant_01\n",
        "ten ant",
        "t\u00001",
        "-t1",
    ]
    events = [_order(i, tenant_id=tenant) for i, tenant in enumerate(hostile)]
    events += [_order(100, tenant_id="tenant_01"), _order(101, tenant_id="T-9_x"), _order(102, currency="USD\n")]
    parsed = silver.parse_events(_bronze(spark, events), ORDERS)
    got = {r["event_id"]: sorted(r["_violations"]) for r in parsed.collect()}
    assert got == {
        **{f"e{i}": ["contract.pattern:tenant_id"] for i in range(len(hostile))},
        "e100": [],
        "e101": [],
        "e102": ["contract.pattern:currency"],  # JSON Schema's $ ends the input: no trailing line break
    }
    assert sorted(r["event_id"] for r in silver.accepted(parsed).collect()) == ["e100", "e101"]


def test_json_schema_patterns_become_java_patterns_anchored_at_the_end_of_input() -> None:
    assert silver.java_pattern("^[A-Z]{3}$") == "^[A-Z]{3}\\z"
    assert silver.java_pattern("^costs \\$") == "^costs \\$"  # an escaped dollar is a character
    assert silver.java_pattern("^a\\\\$") == "^a\\\\\\z"  # an escaped backslash, then the anchor
    assert silver.java_pattern("^ab") == "^ab"
