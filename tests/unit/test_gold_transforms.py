"""fct_orders_daily on a hand-made frame; the expected rows are worked out by hand in the test."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from lakehouse.spark.transforms import gold

SCHEMA = (
    "tenant_id string, event_date date, region string, channel string, product_id string, event_type string, "
    "order_id string, customer_id string, quantity long, total_price decimal(14,2)"
)
D = date(2026, 11, 20)


def test_fct_orders_daily(spark: SparkSession) -> None:
    orders = spark.createDataFrame(
        [
            ("t1", D, "north", "web", "P1", "ORDER_PLACED", "o1", "c1", 2, Decimal("20.00")),
            ("t1", D, "north", "web", "P1", "ORDER_PLACED", "o2", "c1", 1, Decimal("10.01")),
            ("t1", D, "north", "web", "P1", "ORDER_CANCELLED", "o1", "c1", 2, Decimal("20.00")),
            ("t1", D, "north", "web", "P1", "ORDER_UPDATED", "o2", "c1", 1, Decimal("10.01")),
            ("t1", D, "north", None, "P9", "ORDER_PLACED", "o3", "c2", 3, Decimal("7.50")),
        ],
        SCHEMA,
    )
    products = spark.createDataFrame([("P1", "home")], "product_id string, category string")
    result = gold.fct_orders_daily(orders, products)
    expected = spark.createDataFrame(
        [
            ("t1", D, "north", "web", "home", 2, 1, 3, Decimal("30.01"), Decimal("20.00"), Decimal("15.01"), 1),
            ("t1", D, "north", "unknown", "unknown", 1, 0, 3, Decimal("7.50"), Decimal("0.00"), Decimal("7.50"), 1),
        ],
        "tenant_id string, order_date date, region string, channel string, product_category string, "
        "orders_placed long, orders_cancelled long, units long, gross_revenue decimal(18,2), "
        "cancelled_revenue decimal(18,2), avg_order_value decimal(18,2), unique_customers long",
    )
    assertDataFrameEqual(result, expected)
