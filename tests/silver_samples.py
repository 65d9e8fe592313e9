"""A tiny, hand-checked day of Silver rows for every event type, and the Gold rows they must give.

Used by the per-mart load tests and by the backfill test: each day's rows go to a tenant of the caller's
choosing, so several days and tests can share a lake without their expectations mixing.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from lakehouse.config.settings import Settings
from lakehouse.config.specs import event_type
from lakehouse.spark.marts import silver_schema

# Gold rows of one day of the Silver rows of ``silver_rows``, counted by hand (see the comments there).
EXPECTED_ROWS = {
    "fct_orders_daily": 2,  # (north, web, electronics) with o1 placed and cancelled; (south, unknown, unknown): o2
    "order_revenue_5min": 2,  # 10:00-10:05 north electronics (o1); 10:05-10:10 south unknown (o2)
    "customer_behavior_daily": 2,  # c1, c2 (c3 was active 10 days before)
    "product_reviews_daily": 1,  # P0001 with two reviews
    "customer_features": 3,  # c1, c2 and c3 (c3's page view is 10 days old: inside the 30-day lookback)
    "device_metrics_minute": 3,  # dev1 temperature 10:00, dev1 humidity 10:00, dev2 pressure 10:05
}
# Hand-made totals of the same rows: one column summed over the loaded table.
EXPECTED_TOTALS = {
    "fct_orders_daily": ("gross_revenue", Decimal("25.00")),
    "order_revenue_5min": ("total_revenue", Decimal("25.00")),
    "customer_behavior_daily": ("revenue", Decimal("25.00")),
    "product_reviews_daily": ("review_count", 2),
    "customer_features": ("orders_30d", 3),  # c1: o1 and o3 (3 days before), c2: o2
    "device_metrics_minute": ("readings", 4),
}
# Rows per dimension, from config/reference/README.md: 120 products; 1,500 customers of whom 150 changed segment
# or country in the second version; 2024-01-01..2027-12-31 is 366 + 3 * 365 days.
EXPECTED_FULL_ROWS = {"dim_product": 120, "dim_customer": 1650, "dim_date": 1461}


def at(day: date, hour: int, minute: int, second: int = 0) -> datetime:
    """A UTC time on ``day``."""
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=UTC)


def silver_rows(day: date) -> dict[str, list[dict[str, Any]]]:
    """Silver rows of the three event types: the contract fields that matter; the rest stay null."""
    before3, before10 = day - timedelta(days=3), day - timedelta(days=10)

    def order(when: datetime, kind: str, order_id: str, customer: str, product: str, region: str, **kw: Any) -> dict:
        quantity, price = kw.pop("quantity", 1), Decimal(kw.pop("price"))
        return {
            "event_type": kind, "schema_version": kw.pop("version", 2), "event_timestamp": when,
            "order_id": order_id, "customer_id": customer, "product_id": product, "region": region,
            "channel": kw.pop("channel", "web"), "quantity": quantity, "unit_price": price / quantity,
            "total_price": price, "currency": "USD",
        }  # fmt: skip

    def click(when: datetime, kind: str, customer: str, product: str | None = None, **kw: Any) -> dict:
        return {
            "event_type": kind, "schema_version": 1, "event_timestamp": when, "customer_id": customer,
            "session_id": "s1", "product_id": product, "page": "/p", **kw,
        }  # fmt: skip

    def reading(when: datetime, device: str, metric: str, value: float, unit: str) -> dict:
        return {
            "event_type": "reading", "schema_version": 1, "event_timestamp": when, "device_id": device,
            "metric": metric, "value": value, "unit": unit,
        }  # fmt: skip

    return {
        "orders": [
            order(at(day, 10, 1), "ORDER_PLACED", "o1", "c1", "P0001", "north", quantity=2, price="20.00"),
            # a v1 order: no channel
            order(at(day, 10, 7), "ORDER_PLACED", "o2", "c2", "P9999", "south", price="5.00", version=1, channel=None),
            order(at(day, 11, 0), "ORDER_CANCELLED", "o1", "c1", "P0001", "north", quantity=2, price="20.00"),
            order(at(before3, 9, 0), "ORDER_PLACED", "o3", "c1", "P0002", "north", price="30.00"),
        ],
        "customer_events": [
            click(at(day, 9, 0), "page_view", "c1"),
            click(at(day, 9, 5), "add_to_cart", "c1", "P0001", quantity=1),
            click(at(day, 12, 0), "review", "c1", "P0001", rating=5),
            click(at(day, 13, 0), "review", "c2", "P0001", rating=2),
            click(at(before10, 8, 0), "page_view", "c3"),
        ],
        "device_metrics": [
            reading(at(day, 10, 0, 10), "dev1", "temperature", 21.5, "C"),
            reading(at(day, 10, 0, 40), "dev1", "temperature", 22.5, "C"),
            reading(at(day, 10, 0, 20), "dev1", "humidity", 45.0, "%"),
            reading(at(day, 10, 5, 0), "dev2", "pressure", 1013.0, "hPa"),
        ],
    }  # fmt: skip


def write_silver(spark: Any, settings: Settings, tenant: str, day: date) -> None:
    """Append the sample rows of ``day``, for ``tenant``, to the Silver tables of ``settings``' lake (ingested
    at the end of ``day``, as a stream would have landed them)."""
    for name, rows in silver_rows(day).items():
        spec = event_type(name)
        columns = [field.name for field in spec.fields]
        unscored = (None, None, None) if spec.sentiment is not None else ()  # the sentiment model's columns
        values = [
            (
                *({**row, "event_id": str(uuid.uuid4()), "tenant_id": tenant}.get(c) for c in columns),
                row["event_timestamp"].date(),
                at(day, 23, 30),
                *unscored,
            )
            for row in rows
        ]
        frame = spark.createDataFrame(values, silver_schema(name))
        frame.write.format("delta").mode("append").partitionBy("tenant_id", "event_date").save(
            settings.storage.table_path("silver", spec.tables.silver)
        )
