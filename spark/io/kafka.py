"""Kafka as a Spark source: the environment's bootstrap servers and client security, by configuration."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession

from lakehouse.config.settings import Settings

_JAAS_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}


def java_client_options(client: dict[str, str], login_module_prefix: str = "") -> dict[str, str]:
    """librdkafka-style client properties -> Java client properties (``sasl.username``/``sasl.password``
    become ``sasl.jaas.config``, as the Java client and Azure Event Hubs expect; the login module's class name
    gets ``login_module_prefix``, ``kafkashaded.`` where the Kafka client is shaded; ``ssl.ca.location`` becomes
    a PEM truststore)."""
    options = {k: v for k, v in client.items() if k not in ("sasl.username", "sasl.password", "ssl.ca.location")}
    if "ssl.ca.location" in client:  # librdkafka's CA file: a PEM truststore to the Java client
        options.update({"ssl.truststore.type": "PEM", "ssl.truststore.location": client["ssl.ca.location"]})
    if "sasl.username" in client and "sasl.jaas.config" not in client:
        module = _JAAS_MODULES.get(client.get("sasl.mechanism", "PLAIN").upper(), _JAAS_MODULES["PLAIN"])
        module = login_module_prefix + module
        user = client["sasl.username"].replace('"', '\\"')
        password = client.get("sasl.password", "").replace('"', '\\"')
        options["sasl.jaas.config"] = f'{module} required username="{user}" password="{password}";'
    return options


def source_options(settings: Settings, topic: str, max_offsets_per_trigger: int | None) -> dict[str, str]:
    """Options of the Spark Kafka source for one topic (every client property prefixed with ``kafka.``)."""
    options = {
        "kafka.bootstrap.servers": settings.kafka.bootstrap_servers,
        "subscribe": topic,
        "startingOffsets": "earliest",
        "failOnDataLoss": "true",
        "includeHeaders": "false",
    }
    if max_offsets_per_trigger:
        options["maxOffsetsPerTrigger"] = str(max_offsets_per_trigger)
    java = java_client_options(settings.kafka.client, settings.kafka.java_login_module_prefix)
    options.update({f"kafka.{k}": v for k, v in java.items()})
    return options


def read_stream(
    spark: SparkSession, settings: Settings, topic: str, max_offsets_per_trigger: int | None = None
) -> DataFrame:
    """A streaming DataFrame over one topic, from the earliest offset the checkpoint has not processed."""
    return spark.readStream.format("kafka").options(**source_options(settings, topic, max_offsets_per_trigger)).load()
