"""The streaming jobs as Spark Connect clients, the way they run on serverless or shared compute: the stack's Spark
Connect server is the driver, the client process only plans the queries, and each micro-batch's foreachBatch runs
on the server. Kafka -> Bronze/Silver (with malformed and contract-invalid messages), then Silver -> the revenue
windows in Gold and PostgreSQL; expected values come from the generated messages, computed here.

As on Unity Catalog, the jobs address their tables by three-level names (``storage.catalog``): here the server's
own catalog, ``spark_catalog``, with the tables external at the lake's paths."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest

from lakehouse.config.settings import Settings
from lakehouse.kafka.generator import INVALID_FAULTS, MALFORMED_FAULTS, GeneratorOptions, generate
from tests.integration.test_revenue_stream import DAY, ROOT, _clean, _serving, expected_windows

pytestmark = pytest.mark.integration

# a client: a Spark Connect session made active first, so the job's get_spark() uses it instead of a driver of its own
CLIENT = """
import sys
from lakehouse.config.settings import settings
from lakehouse.spark.session import connect_session
import importlib
spark = connect_session("streams-over-spark-connect", settings())
importlib.import_module("lakehouse.spark.jobs." + sys.argv[1]).main(sys.argv[2:])
assert type(spark).__module__.startswith("pyspark.sql.connect"), type(spark)
print("ran as a Spark Connect client")
"""


CATALOG = "spark_catalog"
LAYERS = ("bronze", "silver", "gold", "reference")


def _forget_catalog_tables(server: Any) -> None:
    """Drop the catalog's tables an earlier run registered (external: their files stay)."""
    for layer in LAYERS:
        if server.catalog.databaseExists(f"{CATALOG}.{layer}"):
            for table in server.catalog.listTables(f"{CATALOG}.{layer}"):
                server.sql(f"DROP TABLE IF EXISTS {CATALOG}.{layer}.{table.name}").collect()


def test_the_streams_run_as_spark_connect_clients(
    kafka_stack: Settings, spark_connect: Settings, isolated_serving: Settings, spark: Any
) -> None:
    from lakehouse.kafka.admin import ensure_topics
    from lakehouse.kafka.producer import EventProducer

    env = isolated_serving
    options = GeneratorOptions(
        tenants=2,
        seed=41,
        start=datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC),
        malformed_fraction=0.04,
        invalid_fraction=0.04,
    )
    messages = [m for m in generate("orders", 300, options) if m.fault != "oversized"]
    assert any(m.fault in MALFORMED_FAULTS for m in messages) and any(m.fault in INVALID_FAULTS for m in messages)
    ensure_topics(env)
    with EventProducer(env) as producer:
        assert producer.send_events("orders", messages) == len(messages)
    # the Spark Connect client class itself: this process also has a classic session (the ``spark`` fixture)
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    server = ConnectSession.builder.remote(env.spark.connect_url).getOrCreate()
    _forget_catalog_tables(server)

    for job, args in (("stream", ["--event-type=orders", "--available-now"]), ("revenue_stream", ["--available-now"])):
        run = subprocess.run(
            [sys.executable, "-c", CLIENT, job, *args],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
            env={**os.environ, "LAKEHOUSE_SPARK_DEPLOY": "connect", "LAKEHOUSE_CATALOG": CATALOG},
        )
        assert run.returncode == 0 and "ran as a Spark Connect client" in run.stdout, (run.stdout + run.stderr)[-4000:]

    lake = env.storage
    registered = {f"{layer}.{t.name}": t for layer in LAYERS for t in server.catalog.listTables(f"{CATALOG}.{layer}")}
    assert set(registered) == {
        "bronze.orders",
        "bronze._dead_letters",
        "silver.orders",
        "silver._quarantine",
        "gold.order_revenue_5min",
        "reference.products",
        "reference.customers",
    }
    for name in registered:
        layer, table = name.split(".")
        location = server.sql(f"DESCRIBE DETAIL {CATALOG}.{name}").first()
        assert location is not None and location["location"].removeprefix("file:") == lake.table_path(layer, table)
        assert location["format"] == "delta"

    def count(layer: str, table: str) -> int:
        return int(spark.read.format("delta").load(lake.table_path(layer, table)).count())

    assert count("bronze", "orders") == len(messages)
    assert count("bronze", "_dead_letters") == sum(m.fault in MALFORMED_FAULTS for m in messages)
    assert count("silver", "_quarantine") == sum(m.fault in INVALID_FAULTS for m in messages)
    silver = spark.read.format("delta").load(lake.table_path("silver", "orders"))
    silver_ids = [r[0] for r in silver.select("event_id").collect()]
    assert sorted(silver_ids) == sorted(e["event_id"] for e in _clean(messages))

    products = sorted((ROOT / "config" / "reference" / "products").glob("*.csv"))[-1]
    categories = {row["product_id"]: row["category"] for row in csv.DictReader(products.open())}
    assert _serving(env.postgres_dsn()) == expected_windows(_clean(messages), categories)
