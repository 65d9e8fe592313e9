"""``shipments``: an event type onboarded by configuration alone, as docs/onboarding.md shows (a YAML file and a
JSON Schema, no code), for the tests that stream it and produce it. The weight is checked by a DQ rule of the
YAML, not by the contract: the streaming test expects its rule name in the quarantine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SHIPMENTS_YAML = """\
name: shipments
topic: shipments_{unique}
kafka_key: shipment_id
event_types: [SHIPPED, DELIVERED]
contracts:
  1: contracts/shipments/v1.json
quality_rules:
  - {{name: weight_positive, type: range, column: weight_kg, min: 0.001}}
tables: {{bronze: shipments, silver: shipments}}
"""
SHIPMENTS_V1: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["event_id", "event_type", "schema_version", "tenant_id", "event_timestamp", "shipment_id"],
    "properties": {
        "event_id": {"type": "string", "format": "uuid"},
        "event_type": {"type": "string", "enum": ["SHIPPED", "DELIVERED"]},
        "schema_version": {"type": "integer", "const": 1},
        "tenant_id": {"type": "string", "minLength": 1},
        "event_timestamp": {"type": "string", "format": "date-time"},
        "shipment_id": {"type": "string", "minLength": 1},
        "weight_kg": {"type": "number", "x-spark-type": "decimal(8,3)"},
        "carrier": {"type": ["string", "null"], "enum": ["DHL", "UPS", None]},
    },
}


def onboard_shipments(config: Path, unique: str) -> str:
    """Write the event type and its contract into the config folder ``config``; returns its topic."""
    (config / "event_types" / "shipments.yaml").write_text(SHIPMENTS_YAML.format(unique=unique))
    (config / "contracts" / "shipments").mkdir()
    (config / "contracts" / "shipments" / "v1.json").write_text(json.dumps(SHIPMENTS_V1))
    return f"shipments_{unique}"
