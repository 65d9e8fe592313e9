"""The web shop's click-stream: page views, items added to the cart and product reviews, in sessions.

Customers come from the ``customers`` reference data (by tenant), products and categories from ``products``;
a customer's events share a session id until they pause for 30 minutes. Review texts follow the rating, with the
noise real reviews have (``review_text.ReviewWriter``); some reviews have none.
"""

from __future__ import annotations

import random
from typing import Any

from lakehouse.config.specs import EventTypeSpec
from lakehouse.kafka.generator.base import GeneratorOptions, Model, customers_by_tenant, picker, read_reference
from lakehouse.kafka.generator.review_text import RATING_MIX, ReviewWriter


class CustomerEvents(Model):
    """The ``customer_events`` event type."""

    unknown_event_types = ("wishlist_add", "checkout_started")
    null_fields = ("tenant_id", "event_timestamp", "session_id", "page")
    invalid_faults = ("wrong_type", "null_required", "out_of_range", "rule_break", "future_timestamp")
    _PAGES = ("/", "/search", "/deals", "/cart", "/account", "/help", "/category/{}")
    _SESSION_MS = 30 * 60_000

    def __init__(self, spec: EventTypeSpec, options: GeneratorOptions, rng: random.Random) -> None:
        super().__init__(spec, options, rng)
        products = read_reference("products")
        self.products = [p["product_id"] for p in products]
        self.categories = sorted({p["category"] for p in products})
        self.customers = customers_by_tenant(self.tenants)
        self.kind = picker(rng, ("page_view", "add_to_cart", "review"), (0.78, 0.15, 0.07))
        self.rating = picker(rng, tuple(RATING_MIX), tuple(RATING_MIX.values()))
        self.cart_quantity = picker(rng, (1, 2, 3), (0.75, 0.18, 0.07))
        self.sessions: dict[str, tuple[str, int]] = {}
        # texts draw on a stream of their own, seeded from the model's: a change to how texts are written leaves
        # every other field as it was
        self.reviews = ReviewWriter(random.Random(rng.getrandbits(64)), products)

    def clean(self, tenant: str, ms: int, ts: str, remember: bool, kind: str | None = None) -> dict[str, Any]:
        """One event of a customer's session (of the given ``kind``, else a random one)."""
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
            text = self.reviews.write(product, rating)
        event = self.envelope(kind, 1, tenant, ts)
        event.update(
            customer_id=customer,
            session_id=session[0],
            product_id=product,
            page=page,
            quantity=quantity,
            rating=rating,
            review_text=text,
        )
        return event

    def invalid(self, fault: str, tenant: str, ms: int, ts: str) -> dict[str, Any]:
        """Wrong types and out-of-range ratings on the events that carry them; reviews without a rating and
        empty carts (``rule_break``)."""
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
        """The page, as a Latin-1 path."""
        return "page", "/caf\xe9".encode("latin-1")
