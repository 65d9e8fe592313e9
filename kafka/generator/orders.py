"""Orders of the web shop, the app and the POS terminals: placed, then sometimes cancelled or updated.

Products and prices come from the ``products`` reference data, customers from ``customers`` (by tenant);
cancellations and updates refer to an earlier, still open order. ``schema_version`` 2 adds the sales channel
and a coupon code.
"""

from __future__ import annotations

import random
from typing import Any

from lakehouse.config.specs import EventTypeSpec
from lakehouse.kafka.generator.base import GeneratorOptions, Model, customers_by_tenant, picker, read_reference

# how many open orders are kept for later cancellations and updates
_OPEN_ORDERS = 2000

# order_id, tenant_id, customer_id, product_id, quantity, unit_price, region, channel, coupon_code
_Order = tuple[str, str, str, str, int, float, str, str, str | None]


class Orders(Model):
    """The ``orders`` event type."""

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
        self.customers = customers_by_tenant(self.tenants)
        self.region = picker(rng, ("north", "south", "east", "west"), (0.35, 0.25, 0.2, 0.2))
        self.quantity = picker(rng, (1, 2, 3, 4, 5), (0.45, 0.25, 0.15, 0.1, 0.05))
        self.channel = picker(rng, ("web", "mobile", "pos"), (0.55, 0.35, 0.1))
        self.coupon = picker(rng, (None, *self._COUPONS), (0.75, 0.07, 0.07, 0.05, 0.03, 0.03))
        self.kind = picker(rng, ("ORDER_PLACED", "ORDER_CANCELLED", "ORDER_UPDATED"), (0.86, 0.07, 0.07))
        self.open_orders: list[_Order] = []

    def clean(self, tenant: str, ms: int, ts: str, remember: bool) -> dict[str, Any]:
        """A placed order, or a cancellation or update of an open one."""
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
        event = self.envelope(kind, version, tenant_id, ts)
        event.update(
            order_id=order_id,
            customer_id=customer_id,
            product_id=product_id,
            quantity=quantity,
            unit_price=unit_price,
            total_price=round(quantity * unit_price, 2),
            currency="USD",
            region=region,
        )
        if version == 2:
            event["channel"] = channel
            event["coupon_code"] = coupon
        return event

    def _remember(self, order: _Order) -> None:
        if len(self.open_orders) >= _OPEN_ORDERS:
            self.open_orders[int(self.rng.random() * _OPEN_ORDERS)] = order
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
        """Adds wrong types (``quantity``, ``unit_price``) and broken totals or quantities (``rule_break``)."""
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
        """The region, as a Latin-1 city name."""
        return "region", "Montréal".encode("latin-1")
