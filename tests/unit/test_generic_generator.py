"""The generic generator: an event type onboarded by YAML and JSON Schema alone (``shipments``, in a temporary
config folder) can be generated. The oracle is independent of the generator: every event is validated against
its contract with jsonschema (Draft 2020-12, formats checked), the quality rules are re-stated here, and the
reference customers are read from the CSV; Silver's own contract checks run on the events too."""

from __future__ import annotations

import csv
import json
import random
import re
import shutil
import textwrap
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from lakehouse.config.settings import settings
from lakehouse.config.specs import EventTypeSpec, event_type
from lakehouse.kafka.errors import GeneratorError
from lakehouse.kafka.generator import MALFORMED_FAULTS, GeneratedMessage, GeneratorOptions, generate
from lakehouse.kafka.generator.generic import GenericModel
from lakehouse.kafka.generator.orders import Orders
from lakehouse.kafka.generator.patterns import UnsupportedError, string_maker
from lakehouse.kafka.generator.registry import MODELS, model_for

CONFIG = Path(__file__).resolve().parents[2] / "config"
ENVELOPE = {
    "event_id": {"type": "string", "format": "uuid"},
    "event_type": {"type": "string", "enum": ["SHIPPED", "DELIVERED"]},
    "tenant_id": {"type": "string", "minLength": 1},
    "event_timestamp": {"type": "string", "format": "date-time"},
}
REQUIRED_ENVELOPE = ["event_id", "event_type", "schema_version", "tenant_id", "event_timestamp"]
V1 = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Shipment event, version 1",
    "type": "object",
    "required": [*REQUIRED_ENVELOPE, "shipment_id", "carrier", "parcels", "weight_kg", "country", "shipped_at"],
    "properties": {
        **ENVELOPE,
        "schema_version": {"type": "integer", "const": 1},
        "shipment_id": {"type": "string", "minLength": 1},
        "carrier": {"type": "string", "enum": ["DHL", "UPS", "FEDEX"]},
        "parcels": {"type": "integer", "minimum": 1, "maximum": 20},
        "weight_kg": {"type": "number", "x-spark-type": "decimal(8,3)", "minimum": 0, "maximum": 500},
        "shipping_cost": {"type": "number", "x-spark-type": "decimal(10,2)", "description": "optional"},
        "distance_km": {"type": "number", "exclusiveMinimum": 0},
        "country": {"type": "string", "pattern": "^[A-Z]{2}$"},
        "tracking_code": {"type": ["string", "null"], "pattern": "^TRK-[0-9]{8}$"},
        "shipped_at": {"type": "string", "format": "date-time"},
        "delivered_at": {"type": ["string", "null"], "format": "date-time"},
        "signed": {"type": ["boolean", "null"]},
        "note": {"type": ["string", "null"], "minLength": 3, "maxLength": 12},
    },
}
V2 = {
    **V1,
    "title": "Shipment event, version 2: adds the customer and a priority",
    "required": [*V1["required"], "customer_id", "priority"],
    "properties": {
        **V1["properties"],
        "schema_version": {"type": "integer", "const": 2},
        "customer_id": {"type": "string", "minLength": 1},
        "priority": {"type": "string", "enum": ["low", "normal", "high"]},
    },
}
SHIPMENTS_YAML = """\
name: shipments
topic: shipments
kafka_key: shipment_id
event_types: [SHIPPED, DELIVERED]
contracts:
  1: contracts/shipments/v1.json
  2: contracts/shipments/v2.json
quality_rules:
  - {name: weight_positive, type: range, column: weight_kg, min: 0.001}
  - {name: not_in_future, type: expression, expression: "event_timestamp <= _ingested_at + INTERVAL 1 DAY"}
enrich:
  - {reference: customers, key: customer_id, columns: [segment], prefix: customer_}
tables: {bronze: shipments, silver: shipments}
"""
OPTIONAL = ("shipping_cost", "distance_km", "tracking_code", "delivered_at", "signed", "note")
NULLABLE = ("tracking_code", "delivered_at", "signed", "note")


def _write_shipments(config: Path, v1: dict[str, Any] = V1, v2: dict[str, Any] = V2) -> None:
    (config / "event_types" / "shipments.yaml").write_text(SHIPMENTS_YAML)
    folder = config / "contracts" / "shipments"
    folder.mkdir(exist_ok=True)
    (folder / "v1.json").write_text(json.dumps(v1))
    (folder / "v2.json").write_text(json.dumps(v2))


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private copy of config/ with the YAML-only event type ``shipments``."""
    folder = tmp_path / "config"
    shutil.copytree(CONFIG, folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    _write_shipments(folder)
    monkeypatch.setenv("LAKEHOUSE_CONFIG_DIR", str(folder))
    settings.cache_clear()
    yield folder
    settings.cache_clear()


@pytest.fixture
def shipments(config: Path) -> EventTypeSpec:
    return event_type("shipments")


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _errors(event: dict[str, Any]) -> list[Any]:
    return list(_validator(V2 if event["schema_version"] == 2 else V1).iter_errors(event))


def _decimals(value: float) -> int:
    return max(0, -int(Decimal(str(value)).as_tuple().exponent))


def _events(messages: list[GeneratedMessage]) -> list[dict[str, Any]]:
    return [json.loads(m.value) for m in messages]


def test_every_event_follows_its_contract(shipments: EventTypeSpec) -> None:
    options = GeneratorOptions(seed=3, tenants=3, v2_fraction=0.3)
    messages = list(generate("shipments", 2000, options))
    events = _events(messages)

    for message, event in zip(messages, events, strict=True):
        assert _errors(event) == [], event
        assert message.fault is None and message.event == event
        assert message.key == event["shipment_id"].encode()
        assert event["weight_kg"] >= 0.001, "the range rule weight_positive"
        assert _decimals(event["weight_kg"]) <= 3
        if "shipping_cost" in event:  # decimal(10,2)
            assert _decimals(event["shipping_cost"]) <= 2 and abs(event["shipping_cost"]) < 10**8
    assert len({e["shipment_id"] for e in events}) == len(events)
    assert len({e["event_id"] for e in events}) == len(events)
    assert {e["tenant_id"] for e in events} == {"tenant_01", "tenant_02", "tenant_03"}
    assert {e["event_type"] for e in events} == {"SHIPPED", "DELIVERED"}
    assert {e["carrier"] for e in events} == {"DHL", "UPS", "FEDEX"}
    assert {e["parcels"] for e in events} == set(range(1, 21))
    versions = Counter(e["schema_version"] for e in events)
    assert abs(versions[2] / len(events) - 0.3) < 0.05
    stamps = [e["event_timestamp"] for e in events]
    assert stamps == sorted(stamps) and stamps[0] >= "2026-11-20T00:00:00.000Z" and stamps[-1] < "2026-11-21"
    for name in OPTIONAL:
        present = sum(name in e for e in events)
        assert 0.6 * len(events) < present < 0.8 * len(events), (name, present)
    for name in NULLABLE:
        assert any(e.get(name) is None and name in e for e in events), name
    for name in ("shipment_id", "carrier", "weight_kg", "country", "shipped_at"):
        assert all(e[name] is not None for e in events)


def test_customers_come_from_the_reference_data_of_their_tenant(shipments: EventTypeSpec) -> None:
    with (CONFIG / "reference" / "customers" / "2026-06-01.csv").open(newline="") as handle:
        tenant_of = {row["customer_id"]: row["tenant_id"] for row in csv.DictReader(handle)}
    events = _events(list(generate("shipments", 500, GeneratorOptions(seed=4, v2_fraction=1.0))))
    assert all(tenant_of[e["customer_id"]] == e["tenant_id"] for e in events)
    assert len({e["customer_id"] for e in events}) > 50


def test_same_seed_same_bytes_and_another_seed_differs(shipments: EventTypeSpec) -> None:
    faulty = GeneratorOptions(seed=7, duplicate_fraction=0.1, malformed_fraction=0.1, invalid_fraction=0.1)

    def run(options: GeneratorOptions) -> list[tuple[bytes | None, bytes, str | None]]:
        return [(m.key, m.value, m.fault) for m in generate(shipments, 1000, options)]

    assert run(faulty) == run(faulty)
    assert run(faulty) != run(replace(faulty, seed=8))


def test_tenant_ids_option(shipments: EventTypeSpec) -> None:
    events = _events(list(generate("shipments", 300, GeneratorOptions(seed=1, tenant_ids=["acme", "globex"]))))
    assert {e["tenant_id"] for e in events} == {"acme", "globex"}
    assert all(_errors(e) == [] for e in events)


def test_generate_uses_the_model_if_there_is_one(shipments: EventTypeSpec) -> None:
    orders = event_type("orders")
    assert model_for(shipments) is GenericModel
    assert model_for(orders) is Orders
    # what only the orders model makes: its own order ids, and prices from the product reference
    events = _events(list(generate("orders", 200, GeneratorOptions(seed=2))))
    assert all(e["order_id"].startswith("ORD-") and e["currency"] == "USD" for e in events)


def test_faults_are_what_their_label_says(shipments: EventTypeSpec) -> None:
    options = GeneratorOptions(seed=9, malformed_fraction=0.3, invalid_fraction=0.6, duplicate_fraction=0.05)
    seen: Counter[str | None] = Counter()
    for message in generate(shipments, 3000, options):
        seen[message.fault] += 1
        if message.fault in MALFORMED_FAULTS or message.fault in (None, "duplicate"):
            continue  # malformed ones: the same code as the models', tested in test_generator.py
        event = json.loads(message.value)
        validators = {error.validator for error in _errors(event)}
        if message.fault == "wrong_type":
            assert "type" in validators and validators <= {"type", "enum"}, event
        elif message.fault == "null_required":
            assert validators == {"type"} or validators == {"type", "enum"}, event
            required = V2["required"] if event["schema_version"] == 2 else V1["required"]
            assert any(event.get(name, "") is None for name in required)
        elif message.fault == "out_of_range":
            assert validators and validators <= {"minimum", "maximum"}, event
        elif message.fault == "rule_break":
            assert validators == set() and event["weight_kg"] < 0.001
        else:
            assert message.fault == "future_timestamp"
            assert validators == set()
            assert datetime.fromisoformat(event["event_timestamp"]) > datetime(2100, 1, 1, tzinfo=UTC)
    assert set(seen) == {None, "duplicate", *MALFORMED_FAULTS} | {
        "wrong_type",
        "null_required",
        "out_of_range",
        "rule_break",
        "future_timestamp",
    }


def test_what_it_cannot_make_is_named_with_file_field_and_fix(config: Path) -> None:
    v1: dict[str, Any] = json.loads(json.dumps(V1))
    v1["properties"]["country"]["pattern"] = "^(?=D)[A-Z]{2}$"
    v1["properties"]["parcels"]["multipleOf"] = 2
    v1["properties"]["tenant_id"]["pattern"] = "^t[0-9]+$"
    _write_shipments(config, v1=v1)
    contract = config / "contracts" / "shipments" / "v1.json"

    with pytest.raises(GeneratorError) as raised:
        generate("shipments", 10, GeneratorOptions(seed=1))

    message = str(raised.value)
    assert f"{contract}: properties.country: group modifier '(?=' is not supported" in message
    assert f"{contract}: properties.parcels: keyword(s) ['multipleOf']" in message
    assert f"{contract}: properties.tenant_id: the value 'tenant_01' breaks it" in message
    assert "--tenant-id" in message
    assert "kafka/generator/shipments.py" in message and "MODELS in kafka/generator/registry.py" in message
    # tenant ids that fit the contract's pattern leave the two other problems
    with pytest.raises(GeneratorError) as again:
        generate("shipments", 10, GeneratorOptions(seed=1, tenant_ids=["t1", "t2"]))
    assert "tenant_id" not in str(again.value) and "properties.country" in str(again.value)


def test_silver_accepts_the_clean_events_and_flags_the_broken_ones(shipments: EventTypeSpec, spark: Any) -> None:
    from pyspark.sql import functions as F

    from lakehouse.spark.transforms import bronze, silver

    options = GeneratorOptions(seed=5, malformed_fraction=0.1, invalid_fraction=0.2)
    messages = [m for m in generate(shipments, 400, options) if m.fault != "oversized"]
    rows = [(m.key, m.value, "shipments", 0, i, datetime(2026, 11, 20, 12)) for i, m in enumerate(messages)]
    kafka = spark.createDataFrame(
        rows, "key binary, value binary, topic string, partition int, offset long, timestamp timestamp"
    )
    landed = bronze.classify(
        bronze.from_kafka(kafka, F.lit(datetime(2026, 11, 21, 8))),
        shipments.event_types,
        shipments.versions,
        shipments.max_message_bytes,
    )
    checked = silver.apply_quality_rules(silver.parse_events(landed, shipments), shipments)

    # Silver parses the rows Bronze accepts: the others are the dead letters
    flagged = {r["_kafka_offset"]: r["_violations"] for r in checked.select("_kafka_offset", "_violations").collect()}
    for offset, message in enumerate(messages):
        if message.fault in MALFORMED_FAULTS:
            assert offset not in flagged, message.fault
        elif message.fault is None:
            assert flagged[offset] == [], (flagged[offset], message.value)
        else:
            assert flagged[offset], (message.fault, message.value)
    assert sum(m.fault is None for m in messages) > 250


def _doc_blocks(language: str) -> list[str]:
    """The code blocks of docs/onboarding.md in ``language``, dedented."""
    text = (CONFIG.parent / "docs" / "onboarding.md").read_text()
    return [textwrap.dedent(b) for b in re.findall(rf"^ *```{language}\n(.*?)^ *```", text, re.MULTILINE | re.DOTALL)]


def test_the_onboarding_example_runs_as_documented(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    contract = json.loads(_doc_blocks("json")[0])
    folder = tmp_path / "config"
    shutil.copytree(CONFIG, folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (folder / "event_types" / "shipments.yaml").write_text(_doc_blocks("yaml")[0])
    (folder / "contracts" / "shipments").mkdir()
    (folder / "contracts" / "shipments" / "v1.json").write_text(json.dumps(contract))
    monkeypatch.setenv("LAKEHOUSE_CONFIG_DIR", str(folder))
    settings.cache_clear()
    validator = _validator(contract)
    try:
        generic = _events(list(generate("shipments", 300, GeneratorOptions(seed=1))))
        assert all(list(validator.iter_errors(e)) == [] for e in generic)

        module: dict[str, Any] = {"__name__": "shipments_from_the_docs"}
        exec(compile(_doc_blocks("python")[0], "docs/onboarding.md", "exec"), module)
        monkeypatch.setitem(MODELS, "shipments", module["Shipments"])
        assert model_for(event_type("shipments")) is module["Shipments"]
        options = GeneratorOptions(seed=1, malformed_fraction=0.1, invalid_fraction=0.1)
        messages = list(generate("shipments", 300, options))
        assert [m.value for m in messages] == [m.value for m in generate("shipments", 300, options)]
    finally:
        settings.cache_clear()
    clean = [json.loads(m.value) for m in messages if m.fault is None]
    assert len(clean) > 200
    for e in clean:  # the contract, and the quality rules of the documented YAML
        assert list(validator.iter_errors(e)) == [], e
        assert e["weight_kg"] >= 0.001
        assert e["delivered_at"] is None or e["delivered_at"] >= e["shipped_at"]
    assert {e["event_type"] for e in clean} == {"SHIPPED", "DELIVERED"}


@pytest.mark.parametrize(
    "pattern",
    [
        r"^[A-Z]{3}$",
        r"^(SHP|RET)-[0-9]{8}$",
        r"^/",
        r"^\d{3}-\d{2,}$",
        r"^(?:ab|c)?x*\.y+$",
        r"^[^,;]{1,4}$",
        r"^[-a-c_]$",
    ],
)
def test_patterns_make_matching_strings(pattern: str) -> None:
    make, rng = string_maker(pattern), random.Random(0)
    samples = [make(rng) for _ in range(200)]
    assert all(re.search(pattern, s) for s in samples)
    assert len(set(samples)) > 1 or pattern == r"^/"


@pytest.mark.parametrize("pattern", [r"^(?=A)\w+$", r"\bword", r"(a)\1", r"^a$b", r"a+?", r"\p{L}+"])
def test_patterns_beyond_the_generator_are_refused(pattern: str) -> None:
    with pytest.raises(UnsupportedError):
        string_maker(pattern)
