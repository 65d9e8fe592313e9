"""What every event type's generator shares: options, the message type, the envelope, tenants, reference data,
the seeded random helpers (uuid4, weighted picks) and the daily-cycle clock.

A model (``Model`` subclass) makes the events of one event type; ``lakehouse.kafka.generator.run`` turns a model
into messages, faults included.
"""

from __future__ import annotations

import csv
import json
import random
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from itertools import accumulate
from pathlib import Path
from typing import Any

from lakehouse.config.settings import config_dir
from lakehouse.config.specs import EventTypeSpec
from lakehouse.kafka.errors import GeneratorError

MAX_TENANTS = 10
DUPLICATE = "duplicate"
MALFORMED_FAULTS = (
    "malformed_json",
    "invalid_utf8",
    "not_an_object",
    "oversized",
    "unknown_event_type",
    "unknown_schema_version",
)
INVALID_FAULTS = ("wrong_type", "null_required", "out_of_range", "rule_break", "future_timestamp")
FAULTS = (DUPLICATE, *MALFORMED_FAULTS, *INVALID_FAULTS)
# oversized messages are > 1 MB each: rare, and at most this many per generate() call
MAX_OVERSIZED = 10

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
# relative traffic per hour of day (UTC): quiet nights, a lunch bump and an evening peak
_HOURLY: tuple[float, ...] = (0.2, 0.12, 0.08, 0.07, 0.08, 0.12, 0.25, 0.45, 0.7, 0.85, 0.95, 1.05)
_HOURLY += (1.15, 1.1, 1.0, 0.95, 1.0, 1.1, 1.3, 1.45, 1.4, 1.1, 0.7, 0.4)
_FUTURE_ANCHOR_MS = int(datetime(2100, 1, 1, tzinfo=UTC).timestamp() * 1000)
_V4_CLEAR = ~((0xF << 76) | (0x3 << 62)) & ((1 << 128) - 1)
_V4_SET = (0x4 << 76) | (0x2 << 62)
_FRACTIONS = ("v2_fraction", "duplicate_fraction", "late_fraction", "malformed_fraction", "invalid_fraction")


@dataclass
class GeneratorOptions:
    """What to generate. Every fraction is of ``count``; together they must not exceed 1.

    Events belong to ``tenants`` tenants named ``tenant_01``, ``tenant_02``, ...; ``tenant_ids``, when given,
    names them instead (and ``tenants`` is ignored). ``v2_fraction`` is the share of events of an event type's
    newest contract version when it has several.
    """

    tenants: int = 5
    seed: int | None = None
    start: datetime = field(default_factory=lambda: datetime(2026, 11, 20, tzinfo=UTC))
    days: int = 1
    v2_fraction: float = 0.5
    duplicate_fraction: float = 0.0
    late_fraction: float = 0.0
    malformed_fraction: float = 0.0
    invalid_fraction: float = 0.0
    tenant_ids: Sequence[str] = ()

    def __post_init__(self) -> None:
        problems = []
        self.tenant_ids = tuple(self.tenant_ids)
        if self.tenant_ids:
            blank = [t for t in self.tenant_ids if not t.strip()]
            repeated = sorted({t for t in self.tenant_ids if self.tenant_ids.count(t) > 1})
            if blank:
                problems.append(f"tenant_ids must not be blank, got {list(self.tenant_ids)}")
            if repeated:
                problems.append(f"tenant_ids must be distinct, repeated: {repeated}")
        elif not 1 <= self.tenants <= MAX_TENANTS:
            problems.append(f"tenants must be 1..{MAX_TENANTS}, got {self.tenants}")
        if self.days < 1:
            problems.append(f"days must be >= 1, got {self.days}")
        fractions = {name: getattr(self, name) for name in _FRACTIONS}
        problems += [
            f"{name} must be within 0..1, got {value}" for name, value in fractions.items() if not 0.0 <= value <= 1.0
        ]
        share = sum(v for k, v in fractions.items() if k != "v2_fraction")
        if share > 1.0:
            problems.append(f"duplicate + late + malformed + invalid fractions add up to {share:.3f} > 1")
        if problems:
            raise GeneratorError("invalid generator options: " + "; ".join(problems))
        if self.start.tzinfo is None:
            self.start = self.start.replace(tzinfo=UTC)

    @property
    def tenant_names(self) -> list[str]:
        """The tenant ids events are spread over."""
        return list(self.tenant_ids) or [f"tenant_{t:02d}" for t in range(1, self.tenants + 1)]


@dataclass(frozen=True, slots=True)
class GeneratedMessage:
    """One Kafka message: ``event`` is the JSON object sent (None if the value is not one), ``fault`` its label."""

    key: bytes | None
    value: bytes
    event: dict[str, Any] | None
    fault: str | None = None
    late: bool = False


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def dumps(value: Any) -> bytes:
    """Compact JSON, UTF-8, as the messages carry it."""
    return _ENCODER.encode(value).encode()


def iso(ms: int) -> str:
    """ISO-8601 UTC with milliseconds and 'Z' of epoch milliseconds, e.g. 2026-11-20T13:45:12.123Z."""
    seconds, milli = divmod(ms, 1000)
    return f"{datetime.fromtimestamp(seconds, UTC):%Y-%m-%dT%H:%M:%S}.{milli:03d}Z"


def picker(rng: random.Random, values: Sequence[Any], weights: Sequence[float]) -> Callable[[], Any]:
    """A fast weighted choice (bisect over precomputed cumulative weights)."""
    total = sum(weights)
    cum = [w / total for w in accumulate(weights)]
    cum[-1] = 1.0
    rand = rng.random
    return lambda: values[bisect_left(cum, rand())]


def read_reference(table: str, root: Path | None = None) -> list[dict[str, str]]:
    """Rows of the current (latest) version of a reference table in ``config/reference/<table>/``."""
    folder = (root or config_dir()) / "reference" / table
    files = sorted(folder.glob("*.csv"))
    if not files:
        raise GeneratorError(
            f"no reference data for {table!r}: expected {folder}/<YYYY-MM-DD>.csv (see config/reference/README.md)"
        )
    return _read_csv(files[-1])


@cache
def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def customers_by_tenant(tenants: list[str]) -> dict[str, list[str]]:
    """The reference customers of each tenant; GeneratorError naming the file to extend if a tenant has none."""
    by_tenant: dict[str, list[str]] = {tenant: [] for tenant in tenants}
    rows = read_reference("customers")
    for row in rows:
        if row["tenant_id"] in by_tenant:
            by_tenant[row["tenant_id"]].append(row["customer_id"])
    empty = [tenant for tenant, ids in by_tenant.items() if not ids]
    if empty:
        known = sorted({row["tenant_id"] for row in rows})
        raise GeneratorError(
            f"the customers reference data has no customers for tenant(s) {empty}; "
            f"add them to the latest file in config/reference/customers/, or use tenants it has ({', '.join(known)})"
        )
    return by_tenant


class Clock:
    """Event times: quantiles of the daily-cycle intensity over ``days`` days, so they come out ordered."""

    def __init__(self, rng: random.Random, options: GeneratorOptions, count: int) -> None:
        self.rng = rng
        self.count = max(count, 1)
        self.start_ms = int(options.start.timestamp() * 1000)
        first_hour = options.start.hour
        self.weights = [_HOURLY[(first_hour + h) % 24] for h in range(options.days * 24)]
        self.cum = list(accumulate(self.weights))
        self.total = self.cum[-1]
        self.bin = 0
        self._prefixes: dict[int, str] = {}

    def at(self, index: int) -> int:
        """Epoch milliseconds of the ``index``-th event (non-decreasing in ``index``)."""
        target = (index + self.rng.random()) / self.count * self.total
        cum, b = self.cum, self.bin
        while b < len(cum) - 1 and cum[b] < target:
            b += 1
        self.bin = b
        into = (target - (cum[b] - self.weights[b])) / self.weights[b]
        return self.start_ms + b * HOUR_MS + int(min(max(into, 0.0), 0.999999) * HOUR_MS)

    def iso(self, ms: int) -> str:
        """As ``iso(ms)``, with the minute's prefix cached (this runs once per event)."""
        minute, rest = divmod(ms, 60_000)
        prefix = self._prefixes.get(minute)
        if prefix is None:
            prefix = datetime.fromtimestamp(minute * 60, UTC).strftime("%Y-%m-%dT%H:%M:")
            self._prefixes[minute] = prefix
        second, milli = divmod(rest, 1000)
        return f"{prefix}{second:02d}.{milli:03d}Z"


class Model:
    """Clean and faulty events of one event type; a subclass per event type knows its fields.

    A subclass implements ``clean`` and ``latin1``, and may refine ``invalid``; the class attributes say which
    faults it can make: ``invalid_faults`` (a subset of INVALID_FAULTS), the fields ``null_required`` may empty,
    and event types that are not the spec's (for ``unknown_event_type``).
    """

    unknown_event_types: tuple[str, ...] = ()
    null_fields: tuple[str, ...] = ()
    invalid_faults: tuple[str, ...] = ("wrong_type", "null_required", "rule_break", "future_timestamp")

    def __init__(self, spec: EventTypeSpec, options: GeneratorOptions, rng: random.Random) -> None:
        self.spec, self.options, self.rng = spec, options, rng
        self.tenants = options.tenant_names
        bits = rng.getrandbits

        def uuid4() -> str:
            h = "%032x" % (bits(128) & _V4_CLEAR | _V4_SET)
            return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

        self.uuid4 = uuid4

    def envelope(self, event_type: str, version: int, tenant: str, ts: str) -> dict[str, Any]:
        """The fields every event starts with (a fresh random ``event_id`` each call)."""
        return {
            "event_id": self.uuid4(),
            "event_type": event_type,
            "schema_version": version,
            "tenant_id": tenant,
            "event_timestamp": ts,
        }

    def clean(self, tenant: str, ms: int, ts: str, remember: bool) -> dict[str, Any]:
        """A valid event; ``remember`` lets it be referred to by later events (e.g. a cancellation)."""
        raise NotImplementedError

    def invalid(self, fault: str, tenant: str, ms: int, ts: str) -> dict[str, Any]:
        """An event breaking its contract or a quality rule as ``fault`` says."""
        event = self.clean(tenant, ms, ts, remember=False)
        if fault == "null_required":
            event[self.rng.choice(self.null_fields)] = None
        elif fault == "future_timestamp":
            event["event_timestamp"] = self.future(ms)
        return event

    def latin1(self, event: dict[str, Any]) -> tuple[str, bytes]:
        """A string field and a Latin-1 (so not UTF-8) value for it."""
        raise NotImplementedError

    def future(self, ms: int) -> str:
        """A timestamp years after ``ms`` and after 2100, whatever the wall clock says."""
        # far in the future of both the event's own time and the moment it is ingested; a fixed anchor instead of
        # the wall clock keeps the output a function of the seed alone
        days = self.rng.randint(400, 3650)
        base = max(ms, _FUTURE_ANCHOR_MS)
        return datetime.fromtimestamp((base + days * DAY_MS) / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
