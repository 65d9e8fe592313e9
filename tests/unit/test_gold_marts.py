"""The Gold marts besides fct_orders_daily, on hand-made frames; every expected row is worked out by hand here."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from lakehouse.spark.transforms import gold

ORDERS = (
    "tenant_id string, event_date date, event_timestamp timestamp, event_type string, order_id string, "
    "customer_id string, product_id string, region string, channel string, quantity bigint, "
    "total_price decimal(14,2), _ingested_at timestamp"
)
CLICKS = (
    "tenant_id string, event_date date, event_timestamp timestamp, event_type string, customer_id string, "
    "product_id string, rating bigint"
)
D = date(2024, 2, 10)


def ts(day: date, hour: int, minute: int, second: int = 0) -> datetime:
    """An event time (UTC) on ``day``."""
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=UTC)


def test_order_revenue_5min(spark: SparkSession) -> None:
    late = ts(D, 11, 30)  # ingested 88 minutes after it happened
    orders = spark.createDataFrame(
        [
            ("t1", D, ts(D, 10, 1), "ORDER_PLACED", "o1", "c1", "P1", "north", "web", 2, Decimal("20.00"), late),
            # a v1 order: no channel; the mart does not need one
            ("t1", D, ts(D, 10, 3, 30), "ORDER_PLACED", "o2", "c2", "P1", "north", None, 1, Decimal("10.00"), late),
            ("t1", D, ts(D, 10, 4, 59), "ORDER_CANCELLED", "o1", "c1", "P1", "north", "web", 2, Decimal("20.00"), late),
            ("t1", D, ts(D, 10, 4), "ORDER_UPDATED", "o2", "c2", "P1", "north", "web", 1, Decimal("10.00"), late),
            # on a window boundary: belongs to the window it starts
            ("t1", D, ts(D, 10, 5), "ORDER_PLACED", "o3", "c1", "P1", "north", "web", 1, Decimal("5.50"), late),
            # late: happened at 10:02, arrived at 11:30 -> counted in 10:00-10:05, product not in the reference data
            ("t1", D, ts(D, 10, 2), "ORDER_PLACED", "o4", "c3", "P9", "north", "web", 3, Decimal("9.00"), late),
            ("t2", D, ts(D, 23, 58), "ORDER_PLACED", "o5", "c1", "P1", None, "pos", 1, Decimal("1.00"), late),
        ],
        ORDERS,
    )
    products = spark.createDataFrame([("P1", "home")], "product_id string, category string")

    result = gold.order_revenue_5min(orders, products)

    expected = spark.createDataFrame(
        [
            ("t1", D, ts(D, 10, 0), ts(D, 10, 5), "north", "home", 2, 3, Decimal("30.00"), Decimal("15.00"), 2),
            ("t1", D, ts(D, 10, 0), ts(D, 10, 5), "north", "unknown", 1, 3, Decimal("9.00"), Decimal("9.00"), 1),
            ("t1", D, ts(D, 10, 5), ts(D, 10, 10), "north", "home", 1, 1, Decimal("5.50"), Decimal("5.50"), 1),
            ("t2", D, ts(D, 23, 55), ts(date(2024, 2, 11), 0, 0), "unknown", "home", 1, 1, Decimal("1.00"),
             Decimal("1.00"), 1),
        ],
        "tenant_id string, window_date date, window_start timestamp, window_end timestamp, region string, "
        "product_category string, orders_placed bigint, units_sold bigint, total_revenue decimal(18,2), "
        "avg_order_value decimal(18,2), unique_customers bigint",
    )  # fmt: skip
    assertDataFrameEqual(result, expected, checkRowOrder=False)
    assert result.dtypes == expected.dtypes


def test_order_revenue_5min_rounds_the_average_to_cents(spark: SparkSession) -> None:
    orders = spark.createDataFrame(
        [
            ("t1", D, ts(D, 8, m), "ORDER_PLACED", f"o{m}", "c1", "P1", "east", "web", 1, Decimal(price), ts(D, 9, 0))
            for m, price in ((0, "10.00"), (1, "10.00"), (2, "0.01"))
        ],
        ORDERS,
    )
    products = spark.createDataFrame([], "product_id string, category string")

    row = gold.order_revenue_5min(orders, products).first()

    assert row is not None
    assert (row["orders_placed"], row["total_revenue"], row["avg_order_value"]) == (
        3,
        Decimal("20.01"),
        Decimal("6.67"),
    )


def test_customer_behavior_daily(spark: SparkSession) -> None:
    d2 = date(2024, 2, 11)
    clicks = spark.createDataFrame(
        [
            ("t1", D, ts(D, 9, 0), "page_view", "c1", "P1", None),
            ("t1", D, ts(D, 9, 10), "page_view", "c1", None, None),
            ("t1", D, ts(D, 9, 15), "add_to_cart", "c1", "P1", None),
            ("t1", D, ts(D, 9, 20), "review", "c1", "P1", 4),
            ("t1", D, ts(D, 9, 25), "review", "c1", "P2", 5),
            ("t1", D, ts(D, 12, 0), "page_view", "c2", None, None),  # no reviews: avg_rating stays null
            ("t1", d2, ts(d2, 7, 0), "page_view", "c1", None, None),
        ],
        CLICKS,
    )
    orders = spark.createDataFrame(
        [
            ("t1", D, ts(D, 8, 30), "ORDER_PLACED", "o1", "c1", "P1", "north", "web", 2, Decimal("20.00"), None),
            ("t1", D, ts(D, 10, 0), "ORDER_PLACED", "o2", "c1", "P2", "north", "web", 1, Decimal("5.00"), None),
            ("t1", D, ts(D, 11, 0), "ORDER_CANCELLED", "o1", "c1", "P1", "north", "web", 2, Decimal("20.00"), None),
            ("t1", D, ts(D, 12, 30), "ORDER_PLACED", "o3", "c2", "P1", "south", None, 1, Decimal("7.00"), None),
            ("t1", D, ts(D, 13, 0), "ORDER_UPDATED", "o9", "c3", "P1", "south", "web", 1, Decimal("3.00"), None),
        ],
        ORDERS,
    )

    result = gold.customer_behavior_daily(clicks, orders)

    expected = spark.createDataFrame(
        [
            ("t1", D, "c1", 2, 1, 2, Decimal("25.00"), 2, 4.5, ts(D, 8, 30), ts(D, 11, 0)),
            ("t1", D, "c2", 1, 0, 1, Decimal("7.00"), 0, None, ts(D, 12, 0), ts(D, 12, 30)),
            ("t1", D, "c3", 0, 0, 0, Decimal("0.00"), 0, None, ts(D, 13, 0), ts(D, 13, 0)),
            ("t1", d2, "c1", 1, 0, 0, Decimal("0.00"), 0, None, ts(d2, 7, 0), ts(d2, 7, 0)),
        ],
        "tenant_id string, activity_date date, customer_id string, page_views bigint, cart_adds bigint, "
        "orders bigint, revenue decimal(18,2), reviews bigint, avg_rating double, first_event_at timestamp, "
        "last_event_at timestamp",
    )
    assertDataFrameEqual(result, expected, checkRowOrder=False)
    assert result.dtypes == expected.dtypes


def test_product_reviews_daily(spark: SparkSession) -> None:
    clicks = spark.createDataFrame(
        [
            ("t1", D, ts(D, 9, 0), "review", "c1", "P1", 5),
            ("t1", D, ts(D, 9, 1), "review", "c2", "P1", 4),
            ("t1", D, ts(D, 9, 2), "review", "c3", "P1", 2),
            ("t1", D, ts(D, 9, 3), "review", "c4", "P1", 1),
            ("t1", D, ts(D, 9, 4), "page_view", "c4", "P1", None),
            ("t1", D, ts(D, 9, 5), "review", "c1", "P2", 3),
            ("t1", D, ts(D, 9, 6), "review", "c1", None, 5),
        ],
        CLICKS,
    )

    result = gold.product_reviews_daily(clicks)

    expected = spark.createDataFrame(
        [
            ("t1", D, "P1", 4, 3.0, 0.5, 0.5, None),
            ("t1", D, "P2", 1, 3.0, 0.0, 0.0, None),
            ("t1", D, "unknown", 1, 5.0, 1.0, 0.0, None),
        ],
        "tenant_id string, review_date date, product_id string, review_count bigint, avg_rating double, "
        "positive_share double, negative_share double, sentiment_score double",
    )
    assertDataFrameEqual(result, expected, checkRowOrder=False)
    assert result.dtypes == expected.dtypes


def test_customer_features_look_back_30_and_7_days_from_each_as_of_day(spark: SparkSession) -> None:
    # as-of days 2024-03-01 and 2024-03-02 (2024 is a leap year): their 30-day lookbacks are
    # [02-01, 03-01] and [02-02, 03-02], their 7-day windows [02-24, 03-01] and [02-25, 03-02]
    start, end = date(2024, 3, 1), date(2024, 3, 3)
    day = date.fromisoformat
    orders = spark.createDataFrame(
        [
            ("t1", day("2024-01-31"), ts(day("2024-01-31"), 9, 0), "ORDER_PLACED", "o0", "c1", "P1", "n", "web", 1,
             Decimal("99.00"), None),
            ("t1", day("2024-02-01"), ts(day("2024-02-01"), 9, 0), "ORDER_PLACED", "o1", "c1", "P1", "n", "web", 1,
             Decimal("10.00"), None),
            ("t1", day("2024-02-20"), ts(day("2024-02-20"), 9, 0), "ORDER_PLACED", "o2", "c1", "P1", "n", "web", 2,
             Decimal("20.00"), None),
            ("t1", day("2024-02-21"), ts(day("2024-02-21"), 8, 0), "ORDER_CANCELLED", "o2", "c1", "P1", "n", "web",
             2, Decimal("20.00"), None),
        ],
        ORDERS,
    )  # fmt: skip
    clicks = spark.createDataFrame(
        [
            ("t1", day("2024-02-10"), ts(day("2024-02-10"), 9, 0), "review", "c1", "P1", 4),
            ("t1", day("2024-02-23"), ts(day("2024-02-23"), 9, 0), "page_view", "c1", None, None),
            ("t1", day("2024-02-24"), ts(day("2024-02-24"), 9, 0), "page_view", "c1", None, None),
            ("t1", day("2024-03-02"), ts(day("2024-03-02"), 18, 0), "add_to_cart", "c1", "P1", None),
            ("t1", day("2024-03-03"), ts(day("2024-03-03"), 1, 0), "page_view", "c1", None, None),  # after end
            ("t1", day("2024-03-02"), ts(day("2024-03-02"), 7, 0), "page_view", "c2", None, None),
            ("t1", day("2024-01-15"), ts(day("2024-01-15"), 7, 0), "page_view", "c3", None, None),  # too old
        ],
        CLICKS,
    )

    result = gold.customer_features(orders, clicks, start, end)

    expected = spark.createDataFrame(
        [
            # o0 is 30 days old on 03-01: outside; last order o2 on 02-20 is 10 days before 03-01
            ("t1", day("2024-03-01"), "c1", 10, 2, Decimal("30.00"), 1, 0, 4.0, ts(day("2024-02-24"), 9, 0)),
            ("t1", day("2024-03-02"), "c1", 11, 1, Decimal("20.00"), 0, 1, 4.0, ts(day("2024-03-02"), 18, 0)),
            ("t1", day("2024-03-02"), "c2", None, 0, Decimal("0.00"), 1, 0, None, ts(day("2024-03-02"), 7, 0)),
        ],
        "tenant_id string, as_of_date date, customer_id string, recency_days int, orders_30d bigint, "
        "monetary_30d decimal(18,2), page_views_7d bigint, cart_adds_7d bigint, avg_rating double, "
        "last_seen_at timestamp",
    )
    assertDataFrameEqual(result, expected, checkRowOrder=False)
    assert result.dtypes == expected.dtypes


def test_device_metrics_minute(spark: SparkSession) -> None:
    readings = spark.createDataFrame(
        [
            ("t1", D, ts(D, 10, 0, 5), "dev1", "temperature", 20.0),
            ("t1", D, ts(D, 10, 0, 50), "dev1", "temperature", 22.0),
            ("t1", D, ts(D, 10, 1, 0), "dev1", "temperature", 25.0),
            ("t1", D, ts(D, 10, 0, 10), "dev1", "humidity", 40.0),
            ("t1", D, ts(D, 10, 0, 30), "dev2", "temperature", 18.5),
        ],
        "tenant_id string, event_date date, event_timestamp timestamp, device_id string, metric string, value double",
    )

    result = gold.device_metrics_minute(readings)

    expected = spark.createDataFrame(
        [
            ("t1", D, ts(D, 10, 0), "dev1", "temperature", 2, 20.0, 22.0, 21.0),
            ("t1", D, ts(D, 10, 1), "dev1", "temperature", 1, 25.0, 25.0, 25.0),
            ("t1", D, ts(D, 10, 0), "dev1", "humidity", 1, 40.0, 40.0, 40.0),
            ("t1", D, ts(D, 10, 0), "dev2", "temperature", 1, 18.5, 18.5, 18.5),
        ],
        "tenant_id string, metric_date date, minute_start timestamp, device_id string, metric string, "
        "readings bigint, min_value double, max_value double, avg_value double",
    )
    assertDataFrameEqual(result, expected, checkRowOrder=False)
    assert result.dtypes == expected.dtypes


V1, V2, V3 = date(2024, 1, 1), date(2024, 6, 1), date(2024, 9, 1)


def test_dim_customer_keeps_a_row_per_segment_or_country_change(spark: SparkSession) -> None:
    def version(valid_from: date, rows: list[tuple[str, str, str, str, date]]) -> list[tuple[object, ...]]:
        return [(*row, valid_from, valid_from == V3) for row in rows]

    c1_v1 = ("c1", "t1", "consumer", "DE", date(2023, 5, 1))
    c1_v2 = ("c1", "t1", "small_business", "DE", date(2023, 5, 1))  # segment changed in V2
    c2 = ("c2", "t1", "enterprise", "US", date(2022, 1, 1))  # never changes
    c4 = ("c4", "t2", "consumer", "FR", date(2023, 1, 1))  # no longer in V3
    versions = spark.createDataFrame(
        version(V1, [c1_v1, c2, c4]) + version(V2, [c1_v2, c2, c4]) + version(V3, [c1_v2, c2]),
        "customer_id string, tenant_id string, segment string, country string, signup_date date, "
        "_valid_from date, _is_current boolean",
    )

    result = gold.dim_customer(versions)

    expected = spark.createDataFrame(
        [
            ("c1", "t1", "consumer", "DE", date(2023, 5, 1), V1, V2, False),
            ("c1", "t1", "small_business", "DE", date(2023, 5, 1), V2, None, True),
            ("c2", "t1", "enterprise", "US", date(2022, 1, 1), V1, None, True),
            ("c4", "t2", "consumer", "FR", date(2023, 1, 1), V1, V3, False),
        ],
        "customer_id string, tenant_id string, segment string, country string, signup_date date, "
        "valid_from date, valid_to date, is_current boolean",
    )
    assertDataFrameEqual(result, expected, checkRowOrder=False)
    assert result.dtypes == expected.dtypes


def test_dim_customer_ignores_changes_of_untracked_columns(spark: SparkSession) -> None:
    versions = spark.createDataFrame(
        [
            ("c1", "t1", "consumer", "DE", "2023-05-01", V1, False),
            ("c1", "t1", "consumer", "DE", "2023-05-02", V2, True),  # only signup_date differs
        ],
        "customer_id string, tenant_id string, segment string, country string, signup_date string, "
        "_valid_from date, _is_current boolean",
    )

    rows = gold.dim_customer(versions).collect()

    assert [(r["valid_from"], r["valid_to"], r["signup_date"], r["is_current"]) for r in rows] == [
        (V1, None, date(2023, 5, 1), True)
    ]


def test_dim_product_has_the_current_products_since_their_current_values(spark: SparkSession) -> None:
    # list_price as the CSV reader infers it (double)
    versions = spark.createDataFrame(
        [
            ("P1", "Lamp", "home", "Lumo", 10.0, V1, False),
            ("P2", "Kite", "toys", "Sky", 5.0, V1, False),
            ("P9", "Gone", "toys", "Sky", 1.0, V1, False),
            ("P1", "Lamp", "home", "Lumo", 10.0, V2, True),
            ("P2", "Kite", "toys", "Sky", 6.0, V2, True),
            ("P3", "Mug", "kitchen", "Cuppa", 3.5, V2, True),
        ],
        "product_id string, name string, category string, brand string, list_price double, "
        "_valid_from date, _is_current boolean",
    )

    result = gold.dim_product(versions)

    expected = spark.createDataFrame(
        [
            ("P1", "Lamp", "home", "Lumo", Decimal("10.00"), V1),
            ("P2", "Kite", "toys", "Sky", Decimal("6.00"), V2),
            ("P3", "Mug", "kitchen", "Cuppa", Decimal("3.50"), V2),
        ],
        "product_id string, name string, category string, brand string, list_price decimal(12,2), valid_from date",
    )
    assertDataFrameEqual(result, expected, checkRowOrder=False)
    assert result.dtypes == expected.dtypes


def test_dim_date(spark: SparkSession) -> None:
    calendar = gold.date_spine(spark, date(2024, 1, 1), date(2027, 12, 31))
    # 2024 is a leap year: 366 + 3 * 365
    assert calendar.count() == 1461
    days = spark.createDataFrame(
        [(date(2024, 2, 29),), (date(2024, 12, 28),), (date(2024, 12, 29),), (date(2024, 12, 30),)], "date_key date"
    )

    result = gold.dim_date(days)

    expected = spark.createDataFrame(
        [
            (date(2024, 2, 29), 2024, 1, 2, 29, 2024, 9, 4, False, "February"),  # a Thursday
            (date(2024, 12, 28), 2024, 4, 12, 28, 2024, 52, 6, True, "December"),  # Saturday
            (date(2024, 12, 29), 2024, 4, 12, 29, 2024, 52, 7, True, "December"),  # Sunday
            (date(2024, 12, 30), 2024, 4, 12, 30, 2025, 1, 1, False, "December"),  # Monday of ISO week 2025-W01
        ],
        "date_key date, year int, quarter int, month int, day int, iso_year int, iso_week int, day_of_week int, "
        "is_weekend boolean, month_name string",
    )
    assertDataFrameEqual(result, expected, checkRowOrder=False)
    assert result.dtypes == expected.dtypes
