"""Configuration: environment interpolation, typed specs, and errors that list every problem with file and key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lakehouse.config.errors import ConfigError
from lakehouse.config.marts import load_marts
from lakehouse.config.settings import interpolate, load_settings, mask, masked_mapping
from lakehouse.config.specs import load_event_types

CONFIG = Path(__file__).resolve().parents[2] / "config"


def test_interpolation_with_nested_defaults_and_literal_dollar() -> None:
    problems: list[str] = []
    doc = {"a": "${ROOT:-${HOME_DIR}/lake}", "b": "$$ConnectionString", "c": ["${PORT:-9092}"]}
    assert interpolate(doc, {"HOME_DIR": "/h"}, "f.yaml", problems) == {
        "a": "/h/lake",
        "b": "$ConnectionString",
        "c": ["9092"],
    }
    assert problems == []


def test_every_missing_variable_is_reported_with_its_key() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings("databricks", environ={"LAKEHOUSE_HOME": "/tmp/x"})
    message = str(err.value)
    for variable in (
        "LAKEHOUSE_CHECKPOINT_ROOT",
        "EVENTHUBS_NAMESPACE",
        "EVENTHUBS_CONNECTION_STRING",
        "LAKEHOUSE_PG_DSN",
    ):
        assert variable in message
    assert "databricks.yaml: storage.checkpoint_root" in message


def test_cluster_environment_defaults_to_the_cluster_stack_on_this_machine() -> None:
    settings = load_settings("cluster", environ={"LAKEHOUSE_HOME": "/tmp/x", "LAKEHOUSE_S3_PORT": "9100"})
    assert settings.spark_master_address == ("127.0.0.1", 7077)
    assert settings.spark.deploy == "connect"
    assert settings.storage.table_path("bronze", "orders") == "s3a://lakehouse/lake/bronze/orders"
    assert settings.storage.uses_s3a and settings.storage.s3_buckets == ["lakehouse"]
    assert settings.storage.s3 is not None
    assert settings.storage.s3.hadoop_conf() == {
        "spark.hadoop.fs.s3a.endpoint": "http://127.0.0.1:9100",
        "spark.hadoop.fs.s3a.endpoint.region": "us-east-1",
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.multiobjectdelete.enable": "false",
        "spark.hadoop.fs.s3a.connection.ssl.enabled": "false",
    }
    # a plaintext local broker: the SASL properties of an unset variable are left out, not sent empty
    assert settings.kafka.client == {"security.protocol": "PLAINTEXT"}
    assert settings.local_stack.spark_workers == 2
    # no credentials in the environment and none generated under this home: the AWS default chain
    assert settings.object_store_credentials() == {}


def test_cluster_environment_swaps_endpoints_by_configuration() -> None:
    env = {
        "LAKEHOUSE_HOME": "/tmp/x",
        "LAKEHOUSE_LAKE_ROOT": "s3a://bucket/lake",
        "LAKEHOUSE_CHECKPOINT_ROOT": "s3a://bucket/chk",
        "LAKEHOUSE_S3_ENDPOINT": "https://s3.eu-west-1.amazonaws.com",
        "LAKEHOUSE_S3_PATH_STYLE": "false",
        "LAKEHOUSE_S3_BULK_DELETE": "true",
        "AWS_REGION": "eu-west-1",
        "KAFKA_BOOTSTRAP_SERVERS": "b1:9093",
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": "svc",
        "KAFKA_SASL_PASSWORD": "s3cret",
        "LAKEHOUSE_SPARK_MASTER": "spark://m:7077",
        "LAKEHOUSE_SPARK_CONNECT_URL": "sc://connect.internal:15002",
        "LAKEHOUSE_PG_DSN": "postgresql://loader:pw@db:5432/lakehouse",
    }
    settings = load_settings("cluster", environ=env)
    assert settings.storage.table_path("silver", "orders") == "s3a://bucket/lake/silver/orders"
    assert settings.storage.s3 is not None
    assert settings.storage.s3.hadoop_conf()["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "true"
    assert settings.storage.s3.hadoop_conf()["spark.hadoop.fs.s3a.path.style.access"] == "false"
    assert settings.storage.s3.hadoop_conf()["spark.hadoop.fs.s3a.multiobjectdelete.enable"] == "true"
    assert settings.spark.master == "spark://m:7077"
    assert settings.spark_master_address == ("m", 7077)
    assert settings.spark.connect_url == "sc://connect.internal:15002"
    assert settings.kafka.client["security.protocol"] == "SASL_SSL"
    assert settings.kafka.client["sasl.mechanism"] == "SCRAM-SHA-512"
    assert masked_mapping(settings.kafka.client)["sasl.password"] == "***"
    assert mask(settings.postgres_dsn()) == "postgresql://loader:***@db:5432/lakehouse"
    assert settings.postgres_dsn("airflow") == "postgresql://loader:pw@db:5432/airflow"


def test_unknown_environment_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="databricks"):
        load_settings("nope", environ={})


def test_shipped_config_is_valid() -> None:
    assert {"orders", "customer_events", "device_metrics"} <= set(load_event_types())
    assert "fct_orders_daily" in load_marts()


def test_all_problems_of_a_bad_event_type_are_listed_at_once(tmp_path: Path) -> None:
    shutil.copytree(CONFIG, tmp_path / "config", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    bad = tmp_path / "config" / "event_types" / "broken.yaml"
    bad.write_text(
        "name: Broken-Name\n"
        "topic: orders\n"
        "kafka_key: id\n"
        "event_types: []\n"
        "contracts: {1: contracts/missing.json}\n"
        "quality_rules:\n  - {name: r, type: range}\n"
        "tables: {bronze: b}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_event_types(tmp_path / "config")
    problems = err.value.problems
    assert all(str(bad) in p for p in problems)
    joined = "\n".join(problems)
    for key in ("name", "event_types", "quality_rules.0.range.column", "tables.silver"):
        assert f": {key}:" in joined, key


def test_contract_problems_name_the_file(tmp_path: Path) -> None:
    shutil.copytree(CONFIG, tmp_path / "config", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (tmp_path / "config" / "contracts" / "orders" / "v2.json").write_text('{"type": 12}')
    with pytest.raises(ConfigError) as err:
        load_event_types(tmp_path / "config")
    assert any("contracts.2" in p and "v2.json" in p for p in err.value.problems)


def test_event_types_are_read_again_when_a_file_changes(tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    assert load_event_types(config)["orders"].topic == "orders"
    orders = config / "event_types" / "orders.yaml"
    orders.write_text(orders.read_text().replace("topic: orders\n", "topic: orders_renamed\n"))
    assert load_event_types(config)["orders"].topic == "orders_renamed"
    (config / "contracts" / "orders" / "v2.json").write_text('{"type": 12}')
    with pytest.raises(ConfigError):
        load_event_types(config)


def test_mart_with_unknown_source_fails_before_any_write(tmp_path: Path) -> None:
    shutil.copytree(CONFIG, tmp_path / "config", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (tmp_path / "config" / "marts" / "bad.yaml").write_text(
        "name: bad\ndescription: x\ninputs: {silver: [shipments]}\ngrain: [tenant_id]\ndate_column: day\n"
        "serving_table: bad\ncolumns: [{name: tenant_id, type: string, description: t}]\n"
    )
    with pytest.raises(ConfigError) as err:
        load_marts(tmp_path / "config")
    joined = "\n".join(err.value.problems)
    assert "bad.yaml" in joined and "shipments" in joined and "date_column" in joined


def test_mart_contract_problems_are_all_listed_with_file_and_key(tmp_path: Path) -> None:
    shutil.copytree(CONFIG, tmp_path / "config", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (tmp_path / "config" / "marts" / "bad.yaml").write_text(
        """
name: bad
description: x
inputs: {silver: [orders], references: {nowhere: current}}
grain: [tenant_id, day, missing_key]
date_column: day
serving_table: bad
columns:
  - {name: tenant_id, type: string, description: t}
  - {name: day, type: date, description: d}
unit_tests:
  - name: case
    given: {clicks: []}
    expect: [{tenant_id: t1, nope: 1}]
"""
    )
    with pytest.raises(ConfigError) as err:
        load_marts(tmp_path / "config")
    joined = "\n".join(err.value.problems)
    assert "inputs.references: no reference table 'nowhere'" in joined
    assert "'missing_key' is not one of the columns" in joined
    assert "unit_tests.case.given: 'clicks' is not an input" in joined
    assert "unit_tests.case.expect: 'nope' is not a column" in joined


def test_mart_column_types_are_the_ones_the_loader_writes(tmp_path: Path) -> None:
    shutil.copytree(CONFIG, tmp_path / "config", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    contract = tmp_path / "config" / "marts" / "dim_date.yaml"
    contract.write_text(
        contract.read_text().replace("{name: month_name, type: string", "{name: month_name, type: text")
    )
    with pytest.raises(ConfigError) as err:
        load_marts(tmp_path / "config")
    assert "dim_date.yaml: columns.9.type: Value error, type 'text' is not one the serving loader writes" in str(
        err.value
    )


DATABRICKS_ENVIRONMENT = {
    "LAKEHOUSE_HOME": "/tmp/x",
    "LAKEHOUSE_LAKE_ROOT": "abfss://lake@acme.dfs.core.windows.net/lakehouse",
    "LAKEHOUSE_CHECKPOINT_ROOT": "abfss://lake@acme.dfs.core.windows.net/checkpoints",
    "EVENTHUBS_NAMESPACE": "acme-events",
    "EVENTHUBS_CONNECTION_STRING": "Endpoint=sb://acme-events.servicebus.windows.net/;SharedAccessKey=k",
    "LAKEHOUSE_PG_DSN": "postgresql://loader:s3cret-pw@db:5432/lakehouse",
}


def test_databricks_environment_fits_event_hubs_and_the_shaded_kafka_client() -> None:
    from lakehouse.kafka.producer import producer_config
    from lakehouse.spark.io.kafka import source_options

    settings = load_settings("databricks", environ=DATABRICKS_ENVIRONMENT)
    assert settings.kafka.bootstrap_servers == "acme-events.servicebus.windows.net:9093"
    # Event Hubs refuses a request over 1,046,528 bytes; the producer's request cap is what the service takes
    assert int(producer_config(settings)["message.max.bytes"]) <= 1_046_528
    assert settings.kafka.create_topics is False
    jaas = source_options(settings, "orders", None)["kafka.sasl.jaas.config"]
    assert jaas == (
        'kafkashaded.org.apache.kafka.common.security.plain.PlainLoginModule required username="$ConnectionString" '
        'password="Endpoint=sb://acme-events.servicebus.windows.net/;SharedAccessKey=k";'
    )
    # the local and cluster environments keep the plain Kafka client's module and create their topics
    assert load_settings("local", environ={"LAKEHOUSE_HOME": "/tmp/x"}).kafka.create_topics is True


def test_databricks_addresses_tables_by_unity_catalog_names() -> None:
    from lakehouse.config.settings import LakeTable

    managed = {k: v for k, v in DATABRICKS_ENVIRONMENT.items() if k != "LAKEHOUSE_LAKE_ROOT"}
    settings = load_settings("databricks", environ=managed)
    assert settings.storage.table("bronze", "orders") == LakeTable("lakehouse.bronze.orders", None)
    assert settings.storage.table("gold", "fct_orders_daily") == LakeTable("lakehouse.gold.fct_orders_daily", None)
    # the workspace check looks for every schema the tables are in
    assert settings.databricks is not None
    assert settings.databricks.catalog == "lakehouse"
    assert set(settings.databricks.schemas) >= {"bronze", "silver", "gold", "reference"}
    # with a lake root: external tables there, still by name
    external = load_settings("databricks", environ={**DATABRICKS_ENVIRONMENT, "LAKEHOUSE_CATALOG": "prod"})
    assert external.storage.table("silver", "orders") == LakeTable(
        "prod.silver.orders", "abfss://lake@acme.dfs.core.windows.net/lakehouse/silver/orders"
    )
    assert external.databricks is not None and external.databricks.catalog == "prod"
    # local and cluster: paths, unless a catalog is named
    local = load_settings("local", environ={"LAKEHOUSE_HOME": "/tmp/x"})
    assert local.storage.table("silver", "orders") == LakeTable(None, "/tmp/x/lake/silver/orders")
    assert load_settings("cluster", environ={"LAKEHOUSE_HOME": "/tmp/x"}).storage.table("silver", "orders") == (
        LakeTable(None, "s3a://lakehouse/lake/silver/orders")
    )


def test_a_lake_needs_a_root_or_a_catalog() -> None:
    from pydantic import ValidationError

    from lakehouse.config.settings import StorageSettings

    with pytest.raises(ValidationError, match="set lake_root"):
        StorageSettings(checkpoint_root="/c", catalog="")


def test_databricks_runs_use_a_job_cluster_unless_a_cluster_is_named() -> None:
    settings = load_settings("databricks", environ=DATABRICKS_ENVIRONMENT)
    assert settings.databricks is not None
    cluster = settings.databricks.cluster()["new_cluster"]
    assert cluster["spark_env_vars"]["LAKEHOUSE_PG_DSN"] == "{{secrets/lakehouse/pg_dsn}}"
    assert "s3cret-pw" not in str(cluster)
    named = load_settings("databricks", environ={**DATABRICKS_ENVIRONMENT, "LAKEHOUSE_DATABRICKS_CLUSTER_ID": "c-1"})
    assert named.databricks is not None and named.databricks.cluster() == {"existing_cluster_id": "c-1"}


def test_every_mart_has_a_freshness_sla_and_a_non_positive_one_is_refused(tmp_path: Path) -> None:
    assert {name: spec.freshness_sla_minutes for name, spec in load_marts().items()} == dict.fromkeys(
        load_marts(), 1500
    )
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config)
    contract = config / "marts" / "dim_date.yaml"
    contract.write_text(contract.read_text().replace("freshness_sla_minutes: 1500", "freshness_sla_minutes: 0"))
    with pytest.raises(ConfigError, match="freshness_sla_minutes"):
        load_marts(config)


def test_a_rollup_names_columns_of_its_mart_sums_numbers_and_keeps_the_date_column(tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config)
    contract = config / "marts" / "fct_orders_daily.yaml"
    text = contract.read_text()
    good = "    grain: [tenant_id, order_date, channel]\n    sums: [orders_placed,"
    assert good in text
    contract.write_text(text.replace(good, "    grain: [tenant_id, channel, shop]\n    sums: [region, orders_placed,"))
    with pytest.raises(ConfigError) as error:
        load_marts(config)
    message = str(error.value)
    assert "rollups.fct_orders_daily_by_channel: 'shop' is not one of the columns" in message
    assert "rollups.fct_orders_daily_by_channel.sums: 'region' is a string, not a number" in message
    assert "rollups.fct_orders_daily_by_channel.grain: must hold the date column 'order_date'" in message


def test_a_contract_without_a_tenant_pattern_gets_the_platforms(tmp_path: Path) -> None:
    from lakehouse.config.specs import TENANT_ID_PATTERN
    from tests.shipments import onboard_shipments

    config = tmp_path / "config"
    shutil.copytree(CONFIG, config, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    onboard_shipments(config, "x")  # its contract's tenant_id has only minLength
    specs = load_event_types(config)
    patterns = {name: {f.name: f.pattern for f in spec.fields}["tenant_id"] for name, spec in specs.items()}
    assert patterns == dict.fromkeys(specs, TENANT_ID_PATTERN)
