"""Gold transforms: marts built from Silver events and reference dimensions. Pure ``DataFrame -> DataFrame``."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

UNKNOWN = "unknown"


def _money(column: F.Column) -> F.Column:
    return F.coalesce(column, F.lit(0)).cast("decimal(18,2)")


def fct_orders_daily(orders: DataFrame, products: DataFrame) -> DataFrame:
    """Orders per tenant, order date, region, channel and product category.

    ORDER_PLACED events count as placed orders (units, gross revenue, customers); ORDER_CANCELLED events as
    cancellations on the day they happen; ORDER_UPDATED events do not change the counts. v1 events have no
    channel and products missing from the reference data have no category: both report as ``unknown``.
    """
    categories = products.select("product_id", F.col("category").alias("_category"))
    placed = F.col("event_type") == "ORDER_PLACED"
    cancelled = F.col("event_type") == "ORDER_CANCELLED"
    facts = (
        orders.join(F.broadcast(categories), on="product_id", how="left")
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
            placed.alias("_placed"),
            cancelled.alias("_cancelled"),
        )
        .groupBy("tenant_id", "order_date", "region", "channel", "product_category")
        .agg(
            F.count_distinct(F.when(F.col("_placed"), F.col("order_id"))).alias("orders_placed"),
            F.count_distinct(F.when(F.col("_cancelled"), F.col("order_id"))).alias("orders_cancelled"),
            F.coalesce(F.sum(F.when(F.col("_placed"), F.col("quantity"))), F.lit(0)).cast("bigint").alias("units"),
            _money(F.sum(F.when(F.col("_placed"), F.col("total_price")))).alias("gross_revenue"),
            _money(F.sum(F.when(F.col("_cancelled"), F.col("total_price")))).alias("cancelled_revenue"),
            F.count_distinct(F.when(F.col("_placed"), F.col("customer_id"))).alias("unique_customers"),
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
    )
