"""The synthetic generator: deterministic, exact counts, honoured fractions, realistic and contract-valid clean
events, and faults that really are what their label says. Expected values are computed here from the raw
bytes and the reference CSVs, never by the generator."""

from __future__ import annotations

import csv
import json
import re
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from lakehouse.config.specs import EventTypeSpec, load_event_types
from lakehouse.kafka.errors import GeneratorError
from lakehouse.kafka.generator import (
    INVALID_FAULTS,
    MALFORMED_FAULTS,
    GeneratedMessage,
    GeneratorOptions,
    generate,
)

REFERENCE = Path(__file__).resolve().parents[2] / "config" / "reference"
TYPES = ("orders", "customer_events", "device_metrics")
START = datetime(2026, 11, 20, tzinfo=UTC)
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
FAULTY = GeneratorOptions(
    seed=11, duplicate_fraction=0.1, late_fraction=0.1, malformed_fraction=0.1, invalid_fraction=0.1
)


@pytest.fixture(scope="module")
def specs() -> dict[str, EventTypeSpec]:
    return load_event_types()


@pytest.fixture(scope="module")
def faulty() -> dict[str, list[GeneratedMessage]]:
    """5000 messages of each type, 10% each duplicates, late, malformed and invalid."""
    return {name: list(generate(name, 5000, FAULTY)) for name in TYPES}


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _parse_ts(text: str) -> datetime:
    assert TIMESTAMP.match(text), text
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _contract_errors(spec: EventTypeSpec, event: dict[str, Any]) -> list[Any]:
    schema = spec.contract(event["schema_version"])
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    return list(validator.iter_errors(event))


def _rules_broken(name: str, e: dict[str, Any]) -> list[str]:
    """The quality rules of config/event_types/<name>.yaml, re-stated in Python (except not_in_future)."""
    broken = []
    if name == "orders":
        if e["quantity"] < 1:
            broken.append("quantity_positive")
        if e["unit_price"] < 0:
            broken.append("unit_price_non_negative")
        if abs(e["total_price"] - e["quantity"] * e["unit_price"]) > 0.01:
            broken.append("total_is_quantity_times_price")
    elif name == "customer_events":
        kind = e["event_type"]
        if kind == "review" and e["rating"] is None:
            broken.append("review_has_rating")
        if kind != "review" and e["rating"] is not None:
            broken.append("rating_only_on_reviews")
        if kind == "add_to_cart" and e["product_id"] is None:
            broken.append("cart_has_product")
        if kind == "add_to_cart" and (e["quantity"] is None or e["quantity"] < 1):
            broken.append("cart_quantity_positive")
        if not e["page"].startswith("/"):
            broken.append("page_is_a_path")
    else:
        low, high = {"temperature": (-40, 85), "humidity": (0, 100), "pressure": (870, 1085), "battery": (0, 100)}[
            e["metric"]
        ]
        if not low <= e["value"] <= high:
            broken.append("plausible_range")
        units = {"temperature": "C", "humidity": "%", "pressure": "hPa", "battery": "%"}
        if e["unit"] != units[e["metric"]]:
            broken.append("unit_matches_metric")
    return broken


@pytest.mark.parametrize("name", TYPES)
def test_same_seed_gives_the_same_bytes(name: str) -> None:
    first = [(m.key, m.value, m.fault, m.late) for m in generate(name, 1500, FAULTY)]
    again = [(m.key, m.value, m.fault, m.late) for m in generate(name, 1500, FAULTY)]
    other = [(m.key, m.value, m.fault, m.late) for m in generate(name, 1500, GeneratorOptions(seed=12))]
    assert first == again
    assert first != other


@pytest.mark.parametrize("count", [0, 1, 2, 999])
def test_yields_exactly_count_messages(count: int) -> None:
    options = GeneratorOptions(seed=1, duplicate_fraction=0.5, malformed_fraction=0.2, invalid_fraction=0.2)
    assert sum(1 for _ in generate("orders", count, options)) == count


@pytest.mark.parametrize("name", TYPES)
def test_fractions_are_roughly_honoured(name: str, faulty: dict[str, list[GeneratedMessage]]) -> None:
    messages = faulty[name]
    labels = Counter(
        "duplicate"
        if m.fault == "duplicate"
        else "malformed"
        if m.fault in MALFORMED_FAULTS
        else "invalid"
        if m.fault in INVALID_FAULTS
        else "late"
        if m.late
        else "clean"
        for m in messages
    )
    # 5000 draws at p=0.1: standard deviation ~21, so +-100 is far outside chance
    for label in ("duplicate", "malformed", "invalid", "late"):
        assert abs(labels[label] - 500) < 100, (label, labels)
    assert abs(labels["clean"] - 3000) < 150


def test_v2_fraction_of_orders() -> None:
    def v2_share(fraction: float) -> float:
        events = [m.event for m in generate("orders", 4000, GeneratorOptions(seed=5, v2_fraction=fraction))]
        return sum(1 for e in events if e and e["schema_version"] == 2) / len(events)

    assert v2_share(0.0) == 0.0
    assert v2_share(1.0) == 1.0
    assert abs(v2_share(0.3) - 0.3) < 0.04


@pytest.mark.parametrize("name", TYPES)
def test_duplicates_resend_earlier_clean_messages(name: str, faulty: dict[str, list[GeneratedMessage]]) -> None:
    seen: dict[str, bytes] = {}
    duplicates = 0
    for message in faulty[name]:
        if message.fault == "duplicate":
            duplicates += 1
            event_id = json.loads(message.value)["event_id"]
            assert seen[event_id] == message.value
            assert message.key is not None
        elif message.fault is None:
            event_id = json.loads(message.value)["event_id"]
            assert event_id not in seen, "clean messages must have unique event ids"
            seen[event_id] = message.value
    assert duplicates > 0


@pytest.mark.parametrize("name", TYPES)
def test_clean_events_follow_their_contract_and_rules(
    name: str, specs: dict[str, EventTypeSpec], faulty: dict[str, list[GeneratedMessage]]
) -> None:
    spec = specs[name]
    clean = [m for m in faulty[name] if m.fault is None]
    assert len(clean) > 3000
    for message in clean:
        event = json.loads(message.value.decode("utf-8"))
        assert isinstance(event, dict)
        assert event == message.event
        assert message.key == str(event[spec.kafka_key]).encode()
        assert _contract_errors(spec, event) == []
        assert _rules_broken(name, event) == []
        assert event["event_type"] in spec.event_types
        assert uuid.UUID(event["event_id"]).version == 4
        assert str(uuid.UUID(event["event_id"])) == event["event_id"]
        assert event["tenant_id"] in {f"tenant_{t:02d}" for t in range(1, 6)}
        _parse_ts(event["event_timestamp"])


def test_tenants_option_limits_the_tenants() -> None:
    events = [m.event for m in generate("device_metrics", 600, GeneratorOptions(seed=2, tenants=3))]
    assert {e["tenant_id"] for e in events if e} == {"tenant_01", "tenant_02", "tenant_03"}


def test_orders_are_priced_from_the_product_reference() -> None:
    products = {p["product_id"]: float(p["list_price"]) for p in _csv(REFERENCE / "products" / "2026-01-01.csv")}
    customers = {c["customer_id"]: c["tenant_id"] for c in _csv(REFERENCE / "customers" / "2026-06-01.csv")}
    events = [m.event for m in generate("orders", 3000, GeneratorOptions(seed=3))]
    assert all(e is not None for e in events)
    kinds = Counter(e["event_type"] for e in events if e)
    assert kinds["ORDER_PLACED"] > 2 * (kinds["ORDER_CANCELLED"] + kinds["ORDER_UPDATED"])
    assert kinds["ORDER_CANCELLED"] > 0 and kinds["ORDER_UPDATED"] > 0
    regions = Counter(e["region"] for e in events if e)
    assert set(regions) <= {"north", "south", "east", "west"}
    assert regions.most_common(1)[0][0] == "north"
    for e in events:
        assert e is not None
        list_price = products[e["product_id"]]
        assert 0.85 * list_price - 0.005 <= e["unit_price"] <= 1.15 * list_price + 0.005
        assert e["unit_price"] == round(e["unit_price"], 2)
        assert 1 <= e["quantity"] <= 5
        assert abs(e["total_price"] - e["quantity"] * e["unit_price"]) < 0.005 + 1e-9
        assert e["currency"] == "USD"
        assert customers[e["customer_id"]] == e["tenant_id"]
        if e["schema_version"] == 2:
            assert e["channel"] in {"web", "mobile", "pos"}
            assert e["coupon_code"] is None or isinstance(e["coupon_code"], str)
        else:
            assert "channel" not in e and "coupon_code" not in e


def test_cancellations_and_updates_refer_to_earlier_orders() -> None:
    placed: dict[str, dict[str, Any]] = {}
    cancelled = set()
    for message in generate("orders", 3000, GeneratorOptions(seed=4)):
        e = message.event
        assert e is not None
        same = ("tenant_id", "customer_id", "product_id", "unit_price", "region")
        if e["event_type"] == "ORDER_PLACED":
            placed[e["order_id"]] = e
            continue
        original = placed[e["order_id"]]
        assert original["event_timestamp"] <= e["event_timestamp"]
        assert all(e[k] == original[k] for k in same)
        assert e["order_id"] not in cancelled
        if e["event_type"] == "ORDER_CANCELLED":
            assert e["quantity"] == original["quantity"]
            cancelled.add(e["order_id"])
        else:
            assert e["quantity"] != original["quantity"]
            placed[e["order_id"]] = e


def test_customer_events_shape() -> None:
    products = {p["product_id"] for p in _csv(REFERENCE / "products" / "2026-01-01.csv")}
    events = [m.event for m in generate("customer_events", 3000, GeneratorOptions(seed=6))]
    kinds = Counter(e["event_type"] for e in events if e)
    assert kinds["page_view"] > kinds["add_to_cart"] > kinds["review"] > 0
    for e in events:
        assert e is not None
        if e["event_type"] == "page_view":
            assert e["quantity"] is None and e["rating"] is None
            assert (e["product_id"] is None) != e["page"].startswith("/product/")
        if e["product_id"] is not None:
            assert e["product_id"] in products
        if e["event_type"] == "review":
            assert 1 <= e["rating"] <= 5
    sessions = Counter(e["session_id"] for e in events if e)
    assert sessions.most_common(1)[0][1] > 1, "customers browse several pages per session"


def test_device_metrics_shape() -> None:
    events = [m.event for m in generate("device_metrics", 3000, GeneratorOptions(seed=7))]
    by_metric: dict[str, list[float]] = {}
    for e in events:
        assert e is not None
        assert e["device_id"].startswith(e["tenant_id"] + "-D")
        by_metric.setdefault(e["metric"], []).append(e["value"])
    assert set(by_metric) == {"temperature", "humidity", "pressure", "battery"}
    assert all(15 <= v <= 35 for v in by_metric["temperature"])
    assert all(0 <= v <= 100 for v in by_metric["humidity"] + by_metric["battery"])
    assert all(980 <= v <= 1040 for v in by_metric["pressure"])


def test_timestamps_are_ordered_with_a_daily_cycle() -> None:
    events = [m.event for m in generate("orders", 20_000, GeneratorOptions(seed=8, days=2))]
    stamps = [_parse_ts(e["event_timestamp"]) for e in events if e]
    assert stamps == sorted(stamps)
    assert stamps[0] >= START and stamps[-1] < START + timedelta(days=2)
    per_hour = Counter(ts.hour for ts in stamps)
    night = sum(per_hour[h] for h in range(1, 6)) / 5
    evening = sum(per_hour[h] for h in range(17, 22)) / 5
    assert evening > 4 * night
    per_day = Counter(ts.date() for ts in stamps)
    assert len(per_day) == 2 and min(per_day.values()) > 8000


def test_late_events_are_hours_or_days_behind() -> None:
    newest = None
    late = 0
    for message in generate("orders", 5000, GeneratorOptions(seed=9, late_fraction=0.1)):
        assert message.fault is None
        ts = _parse_ts(json.loads(message.value)["event_timestamp"])
        if message.late and newest is not None:
            late += 1
            assert newest - ts >= timedelta(hours=1)
            assert newest - ts <= timedelta(days=3)
        else:
            newest = ts
    assert 400 < late < 600


@pytest.mark.parametrize("name", TYPES)
def test_every_fault_is_what_its_label_says(name: str, specs: dict[str, EventTypeSpec]) -> None:
    spec = specs[name]
    options = GeneratorOptions(seed=10, malformed_fraction=0.45, invalid_fraction=0.45)
    seen: Counter[str | None] = Counter()
    future = datetime.now(UTC) + timedelta(days=1)
    for message in generate(name, 6000, options):
        fault = message.fault
        seen[fault] += 1
        if fault is None:
            continue
        if fault == "malformed_json":
            with pytest.raises(ValueError):
                json.loads(message.value)
            assert message.event is None
            continue
        if fault == "invalid_utf8":
            with pytest.raises(UnicodeDecodeError):
                message.value.decode("utf-8")
            assert message.event is None
            continue
        parsed = json.loads(message.value.decode("utf-8"))
        if fault == "not_an_object":
            assert not isinstance(parsed, dict)
            assert message.event is None
            continue
        assert isinstance(parsed, dict) and parsed == message.event
        if fault == "oversized":
            assert len(message.value) > spec.max_message_bytes
        elif fault == "unknown_event_type":
            assert parsed["event_type"] not in spec.event_types
        elif fault == "unknown_schema_version":
            assert parsed["schema_version"] not in spec.versions
        else:
            errors = _contract_errors(spec, parsed)
            validators = {error.validator for error in errors}
            if fault in ("wrong_type", "null_required"):
                # a null also fails an enum, if the field has one
                assert "type" in validators and validators <= {"type", "enum"}, (fault, parsed)
                if fault == "null_required":
                    assert any(parsed.get(f) is None for f in spec.contract(1)["required"])
            elif fault == "out_of_range":
                assert validators and validators <= {"minimum", "maximum"}, parsed
            elif fault == "rule_break":
                assert errors == []
                assert _rules_broken(name, parsed), parsed
            elif fault == "future_timestamp":
                assert errors == []
                assert _parse_ts(parsed["event_timestamp"]) > future
            else:
                pytest.fail(f"unexpected fault label {fault!r}")
    expected = set(MALFORMED_FAULTS) | {"wrong_type", "null_required", "rule_break", "future_timestamp"}
    if name == "customer_events":
        expected.add("out_of_range")
    assert set(seen) - {None} == expected


def test_bad_options_and_unknown_types_are_rejected() -> None:
    with pytest.raises(GeneratorError, match="tenants"):
        GeneratorOptions(tenants=11)
    with pytest.raises(GeneratorError, match="add up to"):
        GeneratorOptions(duplicate_fraction=0.6, invalid_fraction=0.6)
    with pytest.raises(GeneratorError, match="no_such_type"):
        list(generate("no_such_type", 1, GeneratorOptions()))


def test_tenant_ids_name_the_tenants() -> None:
    events = [m.event for m in generate("device_metrics", 600, GeneratorOptions(seed=2, tenant_ids=("acme", "globex")))]
    assert {e["tenant_id"] for e in events if e} == {"acme", "globex"}
    assert all(e["device_id"].startswith(e["tenant_id"] + "-D") for e in events if e)
    # orders and customer events pick customers of the tenant from the reference data
    with pytest.raises(GeneratorError, match=r"no customers for tenant\(s\) \['acme'\].*config/reference/customers"):
        generate("orders", 1, GeneratorOptions(tenant_ids=["tenant_01", "acme"]))
    with pytest.raises(GeneratorError, match="distinct"):
        GeneratorOptions(tenant_ids=["a", "a"])
    with pytest.raises(GeneratorError, match="blank"):
        GeneratorOptions(tenant_ids=["a", " "])
