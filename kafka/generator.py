"""Synthetic events of every event type, shaped like production traffic, with faults on demand.

``generate(event_type, count, options)`` yields exactly ``count`` messages as the producer sends them (key and
value bytes). Timestamps follow a daily cycle over ``options.days`` days; tenants, customers and products come
from the reference data in ``config/reference``. Fractions of the messages can be faulty, each labelled in
``GeneratedMessage.fault`` (see ``FAULTS``) so tests know what the pipeline must do with it:

- ``duplicate``: a re-send of an earlier clean message (same event_id, identical bytes);
- malformed (``MALFORMED_FAULTS``): not JSON, invalid UTF-8, not a JSON object, larger than the event type's
  ``max_message_bytes``, an unknown ``event_type`` or ``schema_version``;
- invalid (``INVALID_FAULTS``): a JSON object breaking its contract (wrong type, null required field, value out
  of the contract's range) or a quality rule (``rule_break``, ``future_timestamp``).

Late events (``late=True``) are clean events whose timestamp lies hours or days before the others'.
Same seed and options, same bytes.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import random
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from itertools import accumulate
from pathlib import Path
from typing import Any

from lakehouse.config.errors import ConfigError
from lakehouse.config.settings import config_dir
from lakehouse.config.specs import EventTypeSpec
from lakehouse.config.specs import event_type as load_event_type
from lakehouse.kafka.errors import GeneratorError

log = logging.getLogger(__name__)

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

_MALFORMED_WEIGHTS = (0.3, 0.2, 0.15, 0.005, 0.15, 0.195)
# relative traffic per hour of day (UTC): quiet nights, a lunch bump and an evening peak
_HOURLY = (
    0.2,
    0.12,
    0.08,
    0.07,
    0.08,
    0.12,
    0.25,
    0.45,
    0.7,
    0.85,
    0.95,
    1.05,
    1.15,
    1.1,
    1.0,
    0.95,
    1.0,
    1.1,
    1.3,
    1.45,
    1.4,
    1.1,
    0.7,
    0.4,
)
_HOUR_MS = 3_600_000
_DAY_MS = 24 * _HOUR_MS
_FUTURE_ANCHOR_MS = int(datetime(2100, 1, 1, tzinfo=UTC).timestamp() * 1000)
_RECENT = 2000
_V4_CLEAR = ~((0xF << 76) | (0x3 << 62)) & ((1 << 128) - 1)
_V4_SET = (0x4 << 76) | (0x2 << 62)


@dataclass
class GeneratorOptions:
    """What to generate. Every fraction is of ``count``; together they must not exceed 1."""

    tenants: int = 5
    seed: int | None = None
    start: datetime = field(default_factory=lambda: datetime(2026, 11, 20, tzinfo=UTC))
    days: int = 1
    v2_fraction: float = 0.5
    duplicate_fraction: float = 0.0
    late_fraction: float = 0.0
    malformed_fraction: float = 0.0
    invalid_fraction: float = 0.0

    def __post_init__(self) -> None:
        problems = []
        if not 1 <= self.tenants <= MAX_TENANTS:
            problems.append(f"tenants must be 1..{MAX_TENANTS}, got {self.tenants}")
        if self.days < 1:
            problems.append(f"days must be >= 1, got {self.days}")
        fractions = {
            name: getattr(self, name)
            for name in ("v2_fraction", "duplicate_fraction", "late_fraction", "malformed_fraction", "invalid_fraction")
        }
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


@dataclass(frozen=True, slots=True)
class GeneratedMessage:
    """One Kafka message: ``event`` is the JSON object sent (None if the value is not one), ``fault`` its label."""

    key: bytes | None
    value: bytes
    event: dict[str, Any] | None
    fault: str | None = None
    late: bool = False


def generate(
    event_type: str | EventTypeSpec, count: int, options: GeneratorOptions | None = None
) -> Iterator[GeneratedMessage]:
    """Exactly ``count`` messages of one event type (duplicates included), in event-time order."""
    spec = event_type if isinstance(event_type, EventTypeSpec) else _spec(event_type)
    opts = options or GeneratorOptions()
    if count < 0:
        raise GeneratorError(f"count must be >= 0, got {count}")
    model_class = _MODELS.get(spec.name)
    if model_class is None:
        raise GeneratorError(f"no synthetic generator for event type {spec.name!r}; available: {sorted(_MODELS)}")
    log.debug("generating %d %s message(s) with %s", count, spec.name, opts)
    rng = random.Random(opts.seed)
    return _Run(spec, opts, rng, model_class(spec, opts, rng)).messages(count)


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


def _spec(name: str) -> EventTypeSpec:
    try:
        return load_event_type(name)
    except ConfigError as exc:
        raise GeneratorError(str(exc)) from exc


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _dumps(value: Any) -> bytes:
    return _ENCODER.encode(value).encode()


def _cumulative(weights: Sequence[float]) -> list[float]:
    total = sum(weights)
    cum = [w / total for w in accumulate(weights)]
    cum[-1] = 1.0
    return cum


def _picker(rng: random.Random, values: Sequence[Any], weights: Sequence[float]) -> Callable[[], Any]:
    """A fast weighted choice (bisect over precomputed cumulative weights)."""
    cum, rand = _cumulative(weights), rng.random
    return lambda: values[bisect_left(cum, rand())]


class _Clock:
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
        return self.start_ms + b * _HOUR_MS + int(min(max(into, 0.0), 0.999999) * _HOUR_MS)

    def iso(self, ms: int) -> str:
        """ISO-8601 UTC with milliseconds and 'Z', e.g. 2026-11-20T13:45:12.123Z."""
        minute, rest = divmod(ms, 60_000)
        prefix = self._prefixes.get(minute)
        if prefix is None:
            prefix = datetime.fromtimestamp(minute * 60, UTC).strftime("%Y-%m-%dT%H:%M:")
            self._prefixes[minute] = prefix
        second, milli = divmod(rest, 1000)
        return f"{prefix}{second:02d}.{milli:03d}Z"


class _Model:
    """Clean and faulty events of one event type; subclasses know its fields."""

    unknown_event_types: tuple[str, ...] = ()
    null_fields: tuple[str, ...] = ()
    invalid_faults: tuple[str, ...] = ("wrong_type", "null_required", "rule_break", "future_timestamp")

    def __init__(self, spec: EventTypeSpec, options: GeneratorOptions, rng: random.Random) -> None:
        self.spec, self.options, self.rng = spec, options, rng
        self.tenants = [f"tenant_{t:02d}" for t in range(1, options.tenants + 1)]
        bits = rng.getrandbits

        def uuid4() -> str:
            h = "%032x" % (bits(128) & _V4_CLEAR | _V4_SET)
            return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

        self.uuid4 = uuid4

    def clean(self, tenant: str, ms: int, ts: str, remember: bool) -> dict[str, Any]:
        """A valid event; ``remember`` lets it be referred to by later events (e.g. a cancellation)."""
        raise NotImplementedError

    def invalid(self, fault: str, tenant: str, ms: int, ts: str) -> dict[str, Any]:
        """An event breaking its contract or a quality rule as ``fault`` says."""
        event = self.clean(tenant, ms, ts, remember=False)
        if fault == "null_required":
            event[self.rng.choice(self.null_fields)] = None
        elif fault == "future_timestamp":
            event["event_timestamp"] = self._future(ms)
        return event

    def latin1(self, event: dict[str, Any]) -> tuple[str, bytes]:
        """A string field and a Latin-1 (so not UTF-8) value for it."""
        raise NotImplementedError

    def _future(self, ms: int) -> str:
        # far in the future of both the event's own time and the moment it is ingested; a fixed anchor instead of
        # the wall clock keeps the output a function of the seed alone
        days = self.rng.randint(400, 3650)
        base = max(ms, _FUTURE_ANCHOR_MS)
        return datetime.fromtimestamp((base + days * _DAY_MS) / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


# order_id, tenant_id, customer_id, product_id, quantity, unit_price, region, channel, coupon_code
_Order = tuple[str, str, str, str, int, float, str, str, str | None]


class _Orders(_Model):
    unknown_event_types = ("ORDER_SHIPPED", "ORDER_REFUNDED")
    null_fields = (
        "tenant_id",
        "event_timestamp",
        "customer_id",
        "product_id",
        "quantity",
        "unit_price",
        "total_price",
        "currency",
        "region",
    )
    _COUPONS = ("WELCOME10", "BLACKFRIDAY25", "FREESHIP", "LOYAL5", "SPRING15")

    def __init__(self, spec: EventTypeSpec, options: GeneratorOptions, rng: random.Random) -> None:
        super().__init__(spec, options, rng)
        self.products = [(p["product_id"], float(p["list_price"])) for p in read_reference("products")]
        self.customers = _customers_by_tenant(self.tenants)
        self.region = _picker(rng, ("north", "south", "east", "west"), (0.35, 0.25, 0.2, 0.2))
        self.quantity = _picker(rng, (1, 2, 3, 4, 5), (0.45, 0.25, 0.15, 0.1, 0.05))
        self.channel = _picker(rng, ("web", "mobile", "pos"), (0.55, 0.35, 0.1))
        self.coupon = _picker(rng, (None, *self._COUPONS), (0.75, 0.07, 0.07, 0.05, 0.03, 0.03))
        self.kind = _picker(rng, ("ORDER_PLACED", "ORDER_CANCELLED", "ORDER_UPDATED"), (0.86, 0.07, 0.07))
        self.open_orders: list[_Order] = []

    def clean(self, tenant: str, ms: int, ts: str, remember: bool) -> dict[str, Any]:
        rng = self.rng
        kind = self.kind()
        if kind != "ORDER_PLACED" and self.open_orders:
            order = self._earlier_order(kind, remember)
        else:
            kind = "ORDER_PLACED"
            product_id, list_price = self.products[int(rng.random() * len(self.products))]
            customers = self.customers[tenant]
            order = (
                f"ORD-{rng.getrandbits(64):016X}",
                tenant,
                customers[int(rng.random() * len(customers))],
                product_id,
                self.quantity(),
                round(list_price * (0.85 + 0.3 * rng.random()), 2),
                self.region(),
                self.channel(),
                self.coupon(),
            )
            if remember:
                self._remember(order)
        order_id, tenant_id, customer_id, product_id, quantity, unit_price, region, channel, coupon = order
        version = 2 if rng.random() < self.options.v2_fraction else 1
        event = {
            "event_id": self.uuid4(),
            "event_type": kind,
            "schema_version": version,
            "tenant_id": tenant_id,
            "event_timestamp": ts,
            "order_id": order_id,
            "customer_id": customer_id,
            "product_id": product_id,
            "quantity": quantity,
            "unit_price": unit_price,
            "total_price": round(quantity * unit_price, 2),
            "currency": "USD",
            "region": region,
        }
        if version == 2:
            event["channel"] = channel
            event["coupon_code"] = coupon
        return event

    def _remember(self, order: _Order) -> None:
        if len(self.open_orders) >= _RECENT:
            self.open_orders[int(self.rng.random() * _RECENT)] = order
        else:
            self.open_orders.append(order)

    def _earlier_order(self, kind: str, remember: bool) -> _Order:
        """An open order to cancel or update; only a clean event (``remember``) changes the open orders."""
        orders, index = self.open_orders, self.rng.randrange(len(self.open_orders))
        order = orders[index]
        if kind == "ORDER_CANCELLED":
            if remember:
                orders[index] = orders[-1]
                orders.pop()
            return order
        quantity = self.rng.choice([q for q in range(1, 6) if q != order[4]])
        changed = (*order[:4], quantity, *order[5:])
        if remember:
            orders[index] = changed
        return changed

    def invalid(self, fault: str, tenant: str, ms: int, ts: str) -> dict[str, Any]:
        event = super().invalid(fault, tenant, ms, ts)
        rng = self.rng
        if fault == "wrong_type":
            field_name, bad = rng.choice([("quantity", "abc"), ("unit_price", "12,50"), ("quantity", "2.5")])
            event[field_name] = bad
        elif fault == "rule_break":
            if rng.random() < 0.5:
                event["total_price"] = round(event["total_price"] + rng.choice((-1, 1)) * rng.uniform(1, 50), 2)
            else:
                event["quantity"] = rng.choice((0, -1, -3))
                event["total_price"] = round(event["quantity"] * event["unit_price"], 2)
        return event

    def latin1(self, event: dict[str, Any]) -> tuple[str, bytes]:
        return "region", "Montréal".encode("latin-1")


class _CustomerEvents(_Model):
    unknown_event_types = ("wishlist_add", "checkout_started")
    null_fields = ("tenant_id", "event_timestamp", "session_id", "page")
    invalid_faults = ("wrong_type", "null_required", "out_of_range", "rule_break", "future_timestamp")
    _PAGES = ("/", "/search", "/deals", "/cart", "/account", "/help", "/category/{}")
    _REVIEWS = {
        1: ("Broke after two days.", "Not as described.", None),
        2: ("Disappointing quality.", "Arrived late and scratched.", None),
        3: ("Okay for the price.", "Does the job.", None, None),
        4: ("Good value, would buy again.", "Très bon produit.", None, None),
        5: ("Excellent!", "Sehr gut, schnelle Lieferung ✓", "Love it.", None, None),
    }
    _SESSION_MS = 30 * 60_000

    def __init__(self, spec: EventTypeSpec, options: GeneratorOptions, rng: random.Random) -> None:
        super().__init__(spec, options, rng)
        products = read_reference("products")
        self.products = [p["product_id"] for p in products]
        self.categories = sorted({p["category"] for p in products})
        self.customers = _customers_by_tenant(self.tenants)
        self.kind = _picker(rng, ("page_view", "add_to_cart", "review"), (0.78, 0.15, 0.07))
        self.rating = _picker(rng, (1, 2, 3, 4, 5), (0.05, 0.07, 0.13, 0.35, 0.4))
        self.cart_quantity = _picker(rng, (1, 2, 3), (0.75, 0.18, 0.07))
        self.sessions: dict[str, tuple[str, int]] = {}

    def clean(self, tenant: str, ms: int, ts: str, remember: bool, kind: str | None = None) -> dict[str, Any]:
        rng = self.rng
        customers = self.customers[tenant]
        customer = customers[int(rng.random() * len(customers))]
        session = self.sessions.get(customer)
        if session is None or ms - session[1] > self._SESSION_MS:
            session = (f"S-{rng.getrandbits(64):016x}", ms)
        self.sessions[customer] = (session[0], ms)
        kind = kind or self.kind()
        product: str | None = self.products[int(rng.random() * len(self.products))]
        quantity = rating = text = None
        if kind == "page_view":
            if rng.random() < 0.45:
                page = f"/product/{product}"
            else:
                page = rng.choice(self._PAGES).format(rng.choice(self.categories))
                product = None
        elif kind == "add_to_cart":
            page, quantity = f"/product/{product}", self.cart_quantity()
        else:
            page, rating = f"/product/{product}/reviews", self.rating()
            text = rng.choice(self._REVIEWS[rating])
        return {
            "event_id": self.uuid4(),
            "event_type": kind,
            "schema_version": 1,
            "tenant_id": tenant,
            "event_timestamp": ts,
            "customer_id": customer,
            "session_id": session[0],
            "product_id": product,
            "page": page,
            "quantity": quantity,
            "rating": rating,
            "review_text": text,
        }

    def invalid(self, fault: str, tenant: str, ms: int, ts: str) -> dict[str, Any]:
        rng = self.rng
        if fault == "wrong_type":
            kind = rng.choice(("add_to_cart", "review"))
            event = self.clean(tenant, ms, ts, False, kind)
            if kind == "add_to_cart":
                event["quantity"] = "abc"
            else:
                event["rating"] = "five"
        elif fault == "out_of_range":
            event = self.clean(tenant, ms, ts, False, "review")
            event["rating"] = rng.choice((0, 6, 9, 10))
        elif fault == "rule_break":
            if rng.random() < 0.5:
                event = self.clean(tenant, ms, ts, False, "review")
                event["rating"] = None
            else:
                event = self.clean(tenant, ms, ts, False, "add_to_cart")
                event["quantity"] = rng.choice((0, -1))
        else:
            event = super().invalid(fault, tenant, ms, ts)
        return event

    def latin1(self, event: dict[str, Any]) -> tuple[str, bytes]:
        return "page", "/caf\xe9".encode("latin-1")


class _DeviceMetrics(_Model):
    unknown_event_types = ("calibration", "heartbeat")
    null_fields = ("tenant_id", "event_timestamp", "metric", "value", "unit")
    _UNITS = {"temperature": "C", "humidity": "%", "pressure": "hPa", "battery": "%"}
    _IMPLAUSIBLE = {
        "temperature": (150.0, -90.0),
        "humidity": (140.0, -5.0),
        "pressure": (1500.0, 200.0),
        "battery": (180.0, -5.0),
    }
    _DEVICES_PER_TENANT = 12

    def __init__(self, spec: EventTypeSpec, options: GeneratorOptions, rng: random.Random) -> None:
        super().__init__(spec, options, rng)
        self.devices: dict[str, list[tuple[str, dict[str, float]]]] = {
            tenant: [
                (
                    f"{tenant}-D{n:03d}",
                    {
                        "temperature": rng.uniform(19, 24),
                        "humidity": rng.uniform(35, 60),
                        "pressure": rng.uniform(1005, 1020),
                        "battery": rng.uniform(60, 100),
                        "drain": rng.uniform(0.5, 3.0),
                    },
                )
                for n in range(1, self._DEVICES_PER_TENANT + 1)
            ]
            for tenant in self.tenants
        }
        self.metric = _picker(rng, tuple(self._UNITS), (1, 1, 1, 1))
        self.start_ms = int(options.start.timestamp() * 1000)

    def clean(self, tenant: str, ms: int, ts: str, remember: bool, metric: str | None = None) -> dict[str, Any]:
        rng = self.rng
        devices = self.devices[tenant]
        device_id, base = devices[int(rng.random() * len(devices))]
        metric = metric or self.metric()
        if metric == "temperature":
            hour = (ms % _DAY_MS) / _HOUR_MS
            value = base["temperature"] + 4 * math.sin((hour - 9) / 24 * 2 * math.pi) + rng.gauss(0, 0.4)
            value = round(min(max(value, 15.0), 35.0), 2)
        elif metric == "humidity":
            value = round(min(max(base["humidity"] + rng.gauss(0, 3), 0.0), 100.0), 1)
        elif metric == "pressure":
            value = round(min(max(base["pressure"] + rng.gauss(0, 2), 980.0), 1040.0), 1)
        else:
            days = (ms - self.start_ms) / _DAY_MS
            value = round(min(max(base["battery"] - base["drain"] * days, 0.0), 100.0), 1)
        return {
            "event_id": self.uuid4(),
            "event_type": "reading",
            "schema_version": 1,
            "tenant_id": tenant,
            "event_timestamp": ts,
            "device_id": device_id,
            "metric": metric,
            "value": value,
            "unit": self._UNITS[metric],
        }

    def invalid(self, fault: str, tenant: str, ms: int, ts: str) -> dict[str, Any]:
        event = super().invalid(fault, tenant, ms, ts)
        rng = self.rng
        if fault == "wrong_type":
            event["value"] = rng.choice(("n/a", "23,5", "NaN"))
        elif fault == "rule_break":
            if rng.random() < 0.8:
                event["value"] = rng.choice(self._IMPLAUSIBLE[event["metric"]])
            else:
                event["unit"] = "hPa" if event["metric"] != "pressure" else "%"
        return event

    def latin1(self, event: dict[str, Any]) -> tuple[str, bytes]:
        return "device_id", f"{event['device_id']}-Kühlraum".encode("latin-1")


_MODELS: dict[str, type[_Model]] = {
    "orders": _Orders,
    "customer_events": _CustomerEvents,
    "device_metrics": _DeviceMetrics,
}


def _customers_by_tenant(tenants: list[str]) -> dict[str, list[str]]:
    by_tenant: dict[str, list[str]] = {tenant: [] for tenant in tenants}
    for row in read_reference("customers"):
        if row["tenant_id"] in by_tenant:
            by_tenant[row["tenant_id"]].append(row["customer_id"])
    empty = [tenant for tenant, ids in by_tenant.items() if not ids]
    if empty:
        raise GeneratorError(
            f"the customers reference data has no customers for tenant(s) {empty}; "
            "add them to the latest file in config/reference/customers/"
        )
    return by_tenant


class _Run:
    """One generate() call: draws each message's category, then builds it."""

    def __init__(self, spec: EventTypeSpec, options: GeneratorOptions, rng: random.Random, model: _Model) -> None:
        self.spec, self.options, self.rng, self.model = spec, options, rng, model
        self.key_field = spec.kafka_key
        self.unknown_types = [t for t in model.unknown_event_types if t not in spec.event_types]
        self.malformed = _picker(rng, MALFORMED_FAULTS, _MALFORMED_WEIGHTS)
        self.oversized = 0

    def messages(self, count: int) -> Iterator[GeneratedMessage]:
        opts, rng, model = self.options, self.rng, self.model
        clock = _Clock(rng, opts, count)
        tenants = model.tenants
        dup_end = opts.duplicate_fraction
        malformed_end = dup_end + opts.malformed_fraction
        invalid_end = malformed_end + opts.invalid_fraction
        late_end = invalid_end + opts.late_fraction
        recent: list[GeneratedMessage] = []
        key_field, rand, randrange, dumps = self.key_field, rng.random, rng.randrange, _dumps
        for index in range(count):
            ms = clock.at(index)
            draw = rand()
            if draw < dup_end and recent:
                original = recent[int(rand() * len(recent))]
                yield GeneratedMessage(original.key, original.value, original.event, DUPLICATE, original.late)
                continue
            tenant = tenants[int(rand() * len(tenants))]
            if dup_end <= draw < malformed_end:
                yield self._malformed(tenant, ms, clock.iso(ms))
                continue
            if malformed_end <= draw < invalid_end:
                fault = rng.choice(model.invalid_faults)
                event = model.invalid(fault, tenant, ms, clock.iso(ms))
                yield GeneratedMessage(self._key(event), dumps(event), event, fault)
                continue
            late = invalid_end <= draw < late_end
            if late:
                ms -= randrange(2 * _HOUR_MS, 3 * _DAY_MS)
            event = model.clean(tenant, ms, clock.iso(ms), remember=True)
            key = event[key_field]
            message = GeneratedMessage(key.encode(), dumps(event), event, None, late)
            if len(recent) < _RECENT:
                recent.append(message)
            else:
                recent[int(rand() * _RECENT)] = message
            yield message

    def _key(self, event: dict[str, Any]) -> bytes | None:
        key = event.get(self.key_field)
        return None if key is None else str(key).encode()

    def _malformed(self, tenant: str, ms: int, ts: str) -> GeneratedMessage:
        rng, model, spec = self.rng, self.model, self.spec
        fault = self.malformed()
        if fault == "oversized" and self.oversized >= MAX_OVERSIZED:
            fault = "malformed_json"
        if fault == "unknown_event_type" and not self.unknown_types:
            fault = "unknown_schema_version"
        event = model.clean(tenant, ms, ts, remember=False)
        key = self._key(event)
        if fault == "malformed_json":
            text = _dumps(event)
            # cut off mid-write, or a Python repr (single quotes, None) instead of JSON
            value = text[: rng.randrange(1, len(text) - 1)] if rng.random() < 0.5 else repr(event).encode()
            return GeneratedMessage(key, value, None, fault)
        if fault == "invalid_utf8":
            name, raw = model.latin1(event)
            value = _dumps({**event, name: "\x00"}).replace(b'"\\u0000"', b'"' + raw + b'"', 1)
            return GeneratedMessage(key, value, None, fault)
        if fault == "not_an_object":
            wrapped: Any = [event] if rng.random() < 0.5 else _dumps(event).decode()  # array, or JSON in a string
            return GeneratedMessage(key, _dumps(wrapped), None, fault)
        if fault == "oversized":
            self.oversized += 1
            event["padding"] = "x" * (spec.max_message_bytes + 1024)
        elif fault == "unknown_event_type":
            event["event_type"] = rng.choice(self.unknown_types)
        else:
            event["schema_version"] = max(spec.versions) + 1
        return GeneratedMessage(key, _dumps(event), event, fault)
