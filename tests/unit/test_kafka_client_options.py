"""librdkafka-style client properties as the Java Kafka client (Spark's) takes them; expected values by hand."""

from __future__ import annotations

from lakehouse.spark.io.kafka import java_client_options


def test_scram_credentials_become_a_jaas_login_and_the_ca_file_a_pem_truststore() -> None:
    client = {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "streaming",
        "sasl.password": 'p"w',
        "ssl.ca.location": "/state/kafka/security/ca.pem",
    }
    assert java_client_options(client) == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.jaas.config": 'org.apache.kafka.common.security.scram.ScramLoginModule required username="streaming" '
        'password="p\\"w";',
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": "/state/kafka/security/ca.pem",
    }


def test_a_shaded_client_gets_the_prefixed_plain_login_module() -> None:
    client = {"sasl.mechanism": "PLAIN", "sasl.username": "$ConnectionString", "sasl.password": "Endpoint=sb://x/"}
    assert java_client_options(client, "kafkashaded.") == {
        "sasl.mechanism": "PLAIN",
        "sasl.jaas.config": "kafkashaded.org.apache.kafka.common.security.plain.PlainLoginModule required "
        'username="$ConnectionString" password="Endpoint=sb://x/";',
    }
