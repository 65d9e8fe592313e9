"""``fct_orders_daily`` as it must come out of generated order messages, computed in plain Python from the
messages and the products reference CSV, never by the code under test (the golden-data suite checks both
environments against it)."""

from __future__ import annotations

import csv
from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import psycopg

from lakehouse.kafka.generator import GeneratedMessage


def effective_faults(messages: list[GeneratedMessage]) -> list[str | None]:
    """A duplicate is a re-send of an earlier message, so it shares that message's fate."""
    fault_of = {m.value: m.fault for m in messages if m.fault != "duplicate"}
    return [fault_of.get(m.value) if m.fault == "duplicate" else m.fault for m in messages]


def _money(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def expected_mart(messages: list[GeneratedMessage], products_csv: Path) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """fct_orders_daily computed independently: clean events, first occurrence of each event_id."""
    categories = {row["product_id"]: row["category"] for row in csv.DictReader(products_csv.open())}
    events: dict[str, dict[str, Any]] = {}
    for message in messages:
        if message.fault is None and message.event is not None:
            events.setdefault(message.event["event_id"], message.event)
    groups: dict[tuple[Any, ...], dict[str, Any]] = defaultdict(
        lambda: {
            "placed": set(),
            "cancelled": set(),
            "units": 0,
            "gross": Decimal(0),
            "cancelled_rev": Decimal(0),
            "customers": set(),
            "coupons": set(),
        }
    )
    for event in events.values():
        if event["event_type"] not in ("ORDER_PLACED", "ORDER_CANCELLED"):
            continue  # updates change no count: a group of updates only has no row (docs/marts.md)
        day = datetime.fromisoformat(event["event_timestamp"].replace("Z", "+00:00")).astimezone(UTC).date()
        key = (
            event["tenant_id"],
            day,
            event["region"],
            event.get("channel") or "unknown",
            categories.get(event["product_id"], "unknown"),
        )
        group = groups[key]
        price = Decimal(str(event["total_price"]))
        if event["event_type"] == "ORDER_PLACED":
            group["placed"].add(event["order_id"])
            group["units"] += int(event["quantity"])
            group["gross"] += price
            group["customers"].add(event["customer_id"])
            if event.get("coupon_code"):
                group["coupons"].add(event["order_id"])
        elif event["event_type"] == "ORDER_CANCELLED":
            group["cancelled"].add(event["order_id"])
            group["cancelled_rev"] += price
    return {
        key: (
            len(g["placed"]),
            len(g["cancelled"]),
            g["units"],
            _money(g["gross"]),
            _money(g["cancelled_rev"]),
            _money(g["gross"] / len(g["placed"])) if g["placed"] else Decimal("0.00"),
            len(g["customers"]),
            len(g["coupons"]),
        )
        for key, g in groups.items()
    }


def serving_rows(dsn: str, day: date) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """The loaded mart rows of one day, keyed by grain."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT tenant_id, order_date, region, channel, product_category, orders_placed, orders_cancelled, "
            "units, gross_revenue, cancelled_revenue, avg_order_value, unique_customers, orders_with_coupon "
            "FROM serving.fct_orders_daily WHERE order_date = %s",
            (day,),
        ).fetchall()
    keyed = {tuple(r[:5]): tuple(r[5:]) for r in rows}
    assert len(keyed) == len(rows), "duplicate grain rows in serving"
    return keyed
