"""Gold transforms: marts built from Silver events and reference dimensions. Pure ``DataFrame -> DataFrame``.

Each mart's transform is the function named like it; its parameters are the inputs its contract declares
(``config/marts/<name>.yaml``), and its result has the contract's columns (``lakehouse.spark.marts``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

UNKNOWN = "unknown"


def _money(column: F.Column) -> F.Column:
    return F.coalesce(column, F.lit(0)).cast("decimal(18,2)")


def fct_orders_daily(orders: DataFrame, products: DataFrame) -> DataFrame:
    """Orders per tenant, order date, region, channel and product category.

    ORDER_PLACED events count as placed orders (units, gross revenue, customers); ORDER_CANCELLED events as
    cancellations on the day they happen; ORDER_UPDATED events change no count and are not read, so a group
    with only updates has no row. v1 events have no channel and products missing from the reference data have
    no category: both report as ``unknown``. A placed order with a coupon code counts in ``orders_with_coupon``.
    """
    categories = products.select("product_id", F.col("category").alias("_category"))
    placed = F.col("event_type") == "ORDER_PLACED"
    cancelled = F.col("event_type") == "ORDER_CANCELLED"
    facts = (
        orders.where(placed | cancelled)
        .join(F.broadcast(categories), on="product_id", how="left")
        .select(
            "tenant_id",
            F.col("event_date").alias("order_date"),
            F.coalesce("region", F.lit(UNKNOWN)).alias("region"),
            F.coalesce("channel", F.lit(UNKNOWN)).alias("channel"),
            F.coalesce("_category", F.lit(UNKNOWN)).alias("product_category"),
            "order_id",
            "customer_id",
            "quantity",
            "total_price",
            "coupon_code",
            placed.alias("_placed"),
            cancelled.alias("_cancelled"),
        )
        .groupBy("tenant_id", "order_date", "region", "channel", "product_category")
        # FILTER, not count(DISTINCT when(...)): both order counts then share one distinct column, so Spark
        # expands each row 3 times instead of 4 (a 30-day build ~20% faster)
        .agg(
            F.expr("count(DISTINCT order_id) FILTER (WHERE _placed)").alias("orders_placed"),
            F.expr("count(DISTINCT order_id) FILTER (WHERE _cancelled)").alias("orders_cancelled"),
            F.coalesce(F.expr("sum(quantity) FILTER (WHERE _placed)"), F.lit(0)).cast("bigint").alias("units"),
            _money(F.expr("sum(total_price) FILTER (WHERE _placed)")).alias("gross_revenue"),
            _money(F.expr("sum(total_price) FILTER (WHERE _cancelled)")).alias("cancelled_revenue"),
            F.expr("count(DISTINCT customer_id) FILTER (WHERE _placed)").alias("unique_customers"),
            F.expr("count(DISTINCT order_id) FILTER (WHERE _placed AND coupon_code IS NOT NULL)").alias(
                "orders_with_coupon"
            ),
        )
    )
    return facts.select(
        "tenant_id",
        "order_date",
        "region",
        "channel",
        "product_category",
        F.col("orders_placed").cast("bigint").alias("orders_placed"),
        F.col("orders_cancelled").cast("bigint").alias("orders_cancelled"),
        "units",
        "gross_revenue",
        "cancelled_revenue",
        F.when(F.col("orders_placed") > 0, F.round(F.col("gross_revenue") / F.col("orders_placed"), 2))
        .otherwise(F.lit(0))
        .cast("decimal(18,2)")
        .alias("avg_order_value"),
        F.col("unique_customers").cast("bigint").alias("unique_customers"),
        F.col("orders_with_coupon").cast("bigint").alias("orders_with_coupon"),
    )


def _placed() -> F.Column:
    return F.col("event_type") == "ORDER_PLACED"


def order_revenue_5min(orders: DataFrame, products: DataFrame) -> DataFrame:
    """Placed orders per tenant, 5-minute event-time window, region and product category.

    Only ORDER_PLACED events count. Windows are tumbling ``[window_start, window_end)`` windows of the event
    time; ``window_date`` is the event date of the window (a window never spans two UTC days). A late event
    belongs to the window of its event time: rebuilding its day recomputes that window with it. Missing
    regions and products without a category report as ``unknown``.
    """
    return _order_revenue(orders, products, F.count_distinct)


REVENUE_WATERMARK = "10 minutes"


def order_revenue_5min_stream(orders: DataFrame, products: DataFrame, watermark: str = REVENUE_WATERMARK) -> DataFrame:
    """``order_revenue_5min`` over a stream of Silver orders: the same rows, columns and types, for the windows
    the stream has seen, with a ``watermark`` on the placed orders' ``event_timestamp`` (the newest one the stream
    has read, minus ``watermark``).

    Streams cannot count distinct values, so orders and customers are counted as the size of the set of their
    ids (exact, like ``count_distinct``: both leave nulls out). In update mode each micro-batch emits the windows
    it changed with their values over every order the stream has read for them; an order whose window ends at or
    before the watermark when it arrives is dropped (its day's daily build counts it).
    """
    return _order_revenue(orders, products, lambda c: F.size(F.collect_set(c)), watermark)


def _order_revenue(
    orders: DataFrame, products: DataFrame, distinct: Callable[[str], F.Column], watermark: str | None = None
) -> DataFrame:
    """The grain, measures and columns of ``order_revenue_5min``; ``distinct`` counts the distinct values of a
    column (batch and stream differ only there, and in the stream's ``watermark``)."""
    categories = products.select("product_id", F.col("category").alias("_category"))
    placed = orders.where(_placed())
    if watermark is not None:
        # on the placed orders, explicitly: the optimizer would push the filter below it anyway
        placed = placed.withWatermark("event_timestamp", watermark)
    facts = (
        placed.join(F.broadcast(categories), on="product_id", how="left")
        .groupBy(
            "tenant_id",
            F.col("event_date").alias("window_date"),
            F.window("event_timestamp", "5 minutes").alias("_window"),
            F.coalesce("region", F.lit(UNKNOWN)).alias("region"),
            F.coalesce("_category", F.lit(UNKNOWN)).alias("product_category"),
        )
        .agg(
            distinct("order_id").alias("orders_placed"),
            F.coalesce(F.sum("quantity"), F.lit(0)).cast("bigint").alias("units_sold"),
            _money(F.sum("total_price")).alias("total_revenue"),
            distinct("customer_id").alias("unique_customers"),
        )
    )
    return facts.select(
        "tenant_id",
        "window_date",
        F.col("_window.start").alias("window_start"),
        F.col("_window.end").alias("window_end"),
        "region",
        "product_category",
        F.col("orders_placed").cast("bigint").alias("orders_placed"),
        "units_sold",
        "total_revenue",
        F.round(F.col("total_revenue") / F.col("orders_placed"), 2).cast("decimal(18,2)").alias("avg_order_value"),
        F.col("unique_customers").cast("bigint").alias("unique_customers"),
    )


def customer_behavior_daily(customer_events: DataFrame, orders: DataFrame) -> DataFrame:
    """Each customer's activity per tenant and day, from the click-stream and the order events.

    Page views, cart adds (add_to_cart events) and reviews count click-stream events; ``orders`` counts
    distinct placed orders and ``revenue`` their total price; ``avg_rating`` is null without reviews.
    ``first_event_at``/``last_event_at`` span every event of the customer that day, of either source.
    """
    clicks = customer_events.select(
        "tenant_id",
        F.col("event_date").alias("activity_date"),
        "customer_id",
        "event_timestamp",
        F.col("event_type").alias("_click"),
        F.col("rating").cast("double").alias("_rating"),
        F.lit(None).cast("string").alias("_placed_order"),
        F.lit(None).cast("decimal(14,2)").alias("_placed_price"),
    )
    purchases = orders.select(
        "tenant_id",
        F.col("event_date").alias("activity_date"),
        "customer_id",
        "event_timestamp",
        F.lit(None).cast("string").alias("_click"),
        F.lit(None).cast("double").alias("_rating"),
        F.when(_placed(), F.col("order_id")).alias("_placed_order"),
        F.when(_placed(), F.col("total_price")).cast("decimal(14,2)").alias("_placed_price"),
    )
    click = F.col("_click")
    return (
        clicks.unionByName(purchases)
        .groupBy("tenant_id", "activity_date", "customer_id")
        .agg(
            F.count(F.when(click == "page_view", F.lit(1))).alias("page_views"),
            F.count(F.when(click == "add_to_cart", F.lit(1))).alias("cart_adds"),
            F.count_distinct("_placed_order").alias("orders"),
            _money(F.sum("_placed_price")).alias("revenue"),
            F.count(F.when(click == "review", F.lit(1))).alias("reviews"),
            F.avg(F.when(click == "review", F.col("_rating"))).alias("avg_rating"),
            F.min("event_timestamp").alias("first_event_at"),
            F.max("event_timestamp").alias("last_event_at"),
        )
        .select(
            "tenant_id",
            "activity_date",
            "customer_id",
            F.col("page_views").cast("bigint").alias("page_views"),
            F.col("cart_adds").cast("bigint").alias("cart_adds"),
            F.col("orders").cast("bigint").alias("orders"),
            "revenue",
            F.col("reviews").cast("bigint").alias("reviews"),
            F.col("avg_rating").cast("double").alias("avg_rating"),
            "first_event_at",
            "last_event_at",
        )
    )


def product_reviews_daily(customer_events: DataFrame) -> DataFrame:
    """Reviews per tenant, product and day: count, average rating and the shares of positive (rating >= 4)
    and negative (rating <= 2) reviews. Reviews without a product report under product ``unknown``.
    ``sentiment_score`` is the average of the reviews' model scores (Silver ``sentiment_score``, -1..1), over the
    scored reviews only: null when none was scored."""
    rating = F.col("rating")
    return (
        customer_events.where(F.col("event_type") == "review")
        .groupBy(
            "tenant_id",
            F.col("event_date").alias("review_date"),
            F.coalesce("product_id", F.lit(UNKNOWN)).alias("product_id"),
        )
        .agg(
            F.count(F.lit(1)).alias("review_count"),
            F.avg(rating.cast("double")).alias("avg_rating"),
            F.count(F.when(rating >= 4, F.lit(1))).alias("_positive"),
            F.count(F.when(rating <= 2, F.lit(1))).alias("_negative"),
            F.avg("sentiment_score").alias("_sentiment"),
        )
        .select(
            "tenant_id",
            "review_date",
            "product_id",
            F.col("review_count").cast("bigint").alias("review_count"),
            F.col("avg_rating").cast("double").alias("avg_rating"),
            (F.col("_positive") / F.col("review_count")).cast("double").alias("positive_share"),
            (F.col("_negative") / F.col("review_count")).cast("double").alias("negative_share"),
            F.round("_sentiment", 6).cast("double").alias("sentiment_score"),
        )
    )


LOOKBACK_DAYS = 30
RECENT_DAYS = 7


def customer_features(orders: DataFrame, customer_events: DataFrame, start: date, end: date) -> DataFrame:
    """Features per tenant and customer as of each day ``d`` in ``[start, end)``, over the events of the
    ``LOOKBACK_DAYS`` days ``[d - 29, d]`` (events after ``d`` never count).

    ``recency_days`` is the number of days since the last placed order in the lookback (null without one);
    ``orders_30d``/``monetary_30d`` count the distinct placed orders and their total price; ``page_views_7d``
    and ``cart_adds_7d`` cover the ``RECENT_DAYS`` days ``[d - 6, d]``; ``avg_rating`` averages the reviews
    of the lookback; ``last_seen_at`` is the latest event of either source. A customer has a row for ``d``
    only when it has an event in the lookback. The inputs must cover ``[start - 29, end)``.
    """
    last_day = end - timedelta(days=1)
    clicks = customer_events.select(
        "tenant_id",
        "customer_id",
        "event_date",
        "event_timestamp",
        F.col("event_type").alias("_click"),
        F.col("rating").cast("double").alias("_rating"),
        F.lit(None).cast("string").alias("_placed_order"),
        F.lit(None).cast("decimal(14,2)").alias("_placed_price"),
    )
    purchases = orders.select(
        "tenant_id",
        "customer_id",
        "event_date",
        "event_timestamp",
        F.lit(None).cast("string").alias("_click"),
        F.lit(None).cast("double").alias("_rating"),
        F.when(_placed(), F.col("order_id")).alias("_placed_order"),
        F.when(_placed(), F.col("total_price")).cast("decimal(14,2)").alias("_placed_price"),
    )
    # every event counts towards the as-of days d with event_date <= d <= event_date + 29, inside [start, end)
    first = F.greatest(F.col("event_date"), F.lit(start))
    last = F.least(F.date_add(F.col("event_date"), LOOKBACK_DAYS - 1), F.lit(last_day))
    activity = (
        clicks.unionByName(purchases)
        .where(first <= last)
        .withColumn("as_of_date", F.explode(F.sequence(first, last)))
        .withColumn("_recent", F.datediff("as_of_date", "event_date") < RECENT_DAYS)
    )
    click = F.col("_click")
    features = activity.groupBy("tenant_id", "as_of_date", "customer_id").agg(
        F.max(F.when(F.col("_placed_order").isNotNull(), F.col("event_date"))).alias("_last_order_date"),
        F.count_distinct("_placed_order").alias("orders_30d"),
        _money(F.sum("_placed_price")).alias("monetary_30d"),
        F.count(F.when((click == "page_view") & F.col("_recent"), F.lit(1))).alias("page_views_7d"),
        F.count(F.when((click == "add_to_cart") & F.col("_recent"), F.lit(1))).alias("cart_adds_7d"),
        F.avg(F.when(click == "review", F.col("_rating"))).alias("avg_rating"),
        F.max("event_timestamp").alias("last_seen_at"),
    )
    return features.select(
        "tenant_id",
        "as_of_date",
        "customer_id",
        F.datediff("as_of_date", "_last_order_date").cast("int").alias("recency_days"),
        F.col("orders_30d").cast("bigint").alias("orders_30d"),
        "monetary_30d",
        F.col("page_views_7d").cast("bigint").alias("page_views_7d"),
        F.col("cart_adds_7d").cast("bigint").alias("cart_adds_7d"),
        F.col("avg_rating").cast("double").alias("avg_rating"),
        "last_seen_at",
    )


def device_metrics_minute(device_metrics: DataFrame) -> DataFrame:
    """Readings per tenant, device, metric and minute: count, minimum, maximum and average value."""
    return (
        device_metrics.groupBy(
            "tenant_id",
            F.col("event_date").alias("metric_date"),
            F.date_trunc("minute", "event_timestamp").alias("minute_start"),
            "device_id",
            "metric",
        )
        .agg(
            F.count(F.lit(1)).alias("readings"),
            F.min("value").alias("min_value"),
            F.max("value").alias("max_value"),
            F.avg("value").alias("avg_value"),
        )
        .select(
            "tenant_id",
            "metric_date",
            "minute_start",
            "device_id",
            "metric",
            F.col("readings").cast("bigint").alias("readings"),
            F.col("min_value").cast("double").alias("min_value"),
            F.col("max_value").cast("double").alias("max_value"),
            F.col("avg_value").cast("double").alias("avg_value"),
        )
    )


def scd2(versions: DataFrame, key: str, tracked: list[str], carried: list[str]) -> DataFrame:
    """Slowly changing dimension type 2 over full snapshots of a reference table (``read_versions`` layout:
    one row per key and ``_valid_from``).

    A key gets a new row when one of the ``tracked`` columns changes (nulls compare equal) or when it
    reappears after missing from a snapshot; the ``carried`` columns come from the first snapshot of the row.
    ``valid_from`` is that snapshot's date, ``valid_to`` the date of the first snapshot that no longer has the
    row's values (exclusive; null while it is current); ``is_current`` is true for the rows of the latest
    snapshot.
    """
    everything = Window.partitionBy(F.lit(1))
    numbered = versions.select(
        key,
        *tracked,
        *carried,
        "_valid_from",
        F.dense_rank().over(everything.orderBy("_valid_from")).alias("_n"),
    ).withColumn("_latest_n", F.max("_n").over(everything))
    history = Window.partitionBy(key).orderBy("_n")
    changed = F.lag("_n").over(history).isNull() | (F.col("_n") - F.lag("_n").over(history) > 1)
    for column in tracked:
        changed = changed | ~F.lag(column).over(history).eqNullSafe(F.col(column))
    runs = (
        numbered.withColumn("_changed", changed.cast("int"))
        .withColumn("_run", F.sum("_changed").over(history.rowsBetween(Window.unboundedPreceding, 0)))
        .groupBy(key, "_run")
        .agg(
            *[F.min_by(column, "_n").alias(column) for column in [*tracked, *carried]],
            F.min("_valid_from").alias("valid_from"),
            F.max("_n").alias("_last_n"),
            F.max("_latest_n").alias("_latest_n"),
        )
    )
    snapshots = numbered.select(F.col("_n").alias("_next_n"), F.col("_valid_from").alias("valid_to")).distinct()
    return (
        runs.join(snapshots, on=F.col("_last_n") + 1 == F.col("_next_n"), how="left")
        .withColumn("is_current", F.col("_last_n") == F.col("_latest_n"))
        .select(key, *tracked, *carried, "valid_from", "valid_to", "is_current")
    )


def dim_product(products: DataFrame) -> DataFrame:
    """The current products, each with the date its current values took effect (``valid_from``).

    ``products`` holds every version of the products reference table (``read_versions`` layout).
    """
    history = scd2(
        products.withColumn("list_price", F.col("list_price").cast("decimal(12,2)")),
        "product_id",
        tracked=["name", "category", "brand", "list_price"],
        carried=[],
    )
    return history.where("is_current").select(
        F.col("product_id").cast("string").alias("product_id"),
        F.col("name").cast("string").alias("name"),
        F.col("category").cast("string").alias("category"),
        F.col("brand").cast("string").alias("brand"),
        "list_price",
        "valid_from",
    )


def dim_customer(customers: DataFrame) -> DataFrame:
    """Customers as an SCD type 2 dimension: a new row only when ``segment`` or ``country`` changes.

    ``customers`` holds every version of the customers reference table (``read_versions`` layout);
    ``tenant_id`` and ``signup_date`` come from the first version of each row.
    """
    history = scd2(
        customers.withColumn("signup_date", F.col("signup_date").cast("date")),
        "customer_id",
        tracked=["segment", "country"],
        carried=["tenant_id", "signup_date"],
    )
    return history.select(
        F.col("customer_id").cast("string").alias("customer_id"),
        F.col("tenant_id").cast("string").alias("tenant_id"),
        F.col("segment").cast("string").alias("segment"),
        F.col("country").cast("string").alias("country"),
        "signup_date",
        "valid_from",
        "valid_to",
        "is_current",
    )


def dim_date(calendar: DataFrame) -> DataFrame:
    """Calendar attributes of each ``date_key``: ISO week and ISO week-year, ISO day of week (1 = Monday
    .. 7 = Sunday), weekend flag (Saturday, Sunday) and the English month name."""
    day = F.col("date_key")
    return calendar.select(
        day.alias("date_key"),
        F.year(day).alias("year"),
        F.quarter(day).alias("quarter"),
        F.month(day).alias("month"),
        F.dayofmonth(day).alias("day"),
        F.extract(F.lit("YEAROFWEEK"), day).cast("int").alias("iso_year"),
        F.weekofyear(day).alias("iso_week"),
        (F.weekday(day) + 1).cast("int").alias("day_of_week"),
        (F.weekday(day) >= 5).alias("is_weekend"),
        F.date_format(day, "MMMM").alias("month_name"),
    )
