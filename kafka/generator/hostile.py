"""Input meant to hurt the stream, built from one valid event of any type: a 10 MB message and a million-element
array (dead-lettered as ``OVERSIZED``), a NUL and an unpaired surrogate escape (``FORBIDDEN_CHARACTER``), tenant
ids made of SQL, a path and 10 KB (quarantined by the tenant rule), and a field nested 100 levels deep
(``TOO_DEEPLY_NESTED``)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

HOSTILE_TENANTS = ("t1'; DROP TABLE serving.fct_orders_daily; --", "../../etc/passwd", "x" * 10_240)
# what the stream must make of hostile_documents(): dead letters by reason, and quarantined messages
HOSTILE_DEAD_LETTERS = {"OVERSIZED": 2, "FORBIDDEN_CHARACTER": 2, "TOO_DEEPLY_NESTED": 1}
HOSTILE_QUARANTINED = len(HOSTILE_TENANTS)


def hostile_documents(valid: Mapping[str, Any], text_field: str) -> list[bytes]:
    """The hostile set as Kafka values: ``valid`` (a valid event) with a new ``event_id`` each and one hostile
    change; ``text_field`` names a string field of the type for the NUL and the surrogate."""
    nested: dict[str, Any] = {}
    for _ in range(100):
        nested = {"a": nested}

    def variant(**fields: Any) -> bytes:
        return json.dumps({**valid, "event_id": str(uuid.uuid4()), **fields}).encode()

    return [
        variant(padding="x" * 10_000_000),
        variant(items=[0] * 1_000_000),
        variant(**{text_field: "S-\u0000"}),  # json.dumps writes the escape
        variant(**{text_field: "S-\ud800"}),
        *(variant(tenant_id=tenant) for tenant in HOSTILE_TENANTS),
        variant(deep=nested),
    ]
