"""A single-node Apache Kafka broker in KRaft mode (broker + controller in one JVM), started with ``java``."""

from __future__ import annotations

import base64
import logging
import os
import uuid
from pathlib import Path

from lakehouse.config.settings import Settings
from lakehouse.config.specs import load_event_types
from lakehouse.scripts.errors import StackError
from lakehouse.scripts.kafka_security import KafkaSecurity
from lakehouse.scripts.process import JDK_FIX, Service, port_open, require_command, require_free_port, wait_until
from lakehouse.spark.jars import JarSet, resolve

log = logging.getLogger(__name__)

_LOG4J2 = """\
Configuration:
  name: lakehouse-kafka
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: WARN
      AppenderRef:
        ref: STDOUT
    Logger:
      - name: kafka.server.KafkaRaftServer
        level: INFO
      - name: kafka.server.BrokerServer
        level: INFO
"""

KAFKA_JARS = JarSet("kafka", Path(__file__).resolve().parent / "maven" / "kafka" / "pom.xml")


def kafka_classpath() -> str:
    """Classpath of the Kafka broker (its jars resolved into the cache first)."""
    return os.pathsep.join(str(p) for p in sorted(resolve(KAFKA_JARS).glob("*.jar")))


def new_cluster_id() -> str:
    """A random KRaft cluster id: 16 random bytes in URL-safe base64 without padding, as Kafka's own ``Uuid``."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


class KafkaBroker:
    """The local stack's broker: data under ``$LAKEHOUSE_HOME/kafka``, on localhost: a plaintext listener for
    quick local use and a SASL_SSL one (SCRAM-SHA-512, ACLs) for the principals of ``kafka_security``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state_dir = settings.home / "kafka"
        self.service = Service("kafka", settings.home / "run")
        self.port = settings.local_stack.kafka_port
        self.secure_port = settings.local_stack.kafka_secure_port
        self.controller_port = settings.local_stack.kafka_controller_port
        self.security = KafkaSecurity(self.state_dir / "security")

    @property
    def address(self) -> str:
        """Bootstrap servers of the broker's plaintext listener."""
        return f"localhost:{self.port}"

    @property
    def secure_address(self) -> str:
        """Bootstrap servers of the broker's SASL_SSL listener."""
        return f"localhost:{self.secure_port}"

    def _properties(self) -> Path:
        props = self.state_dir / "server.properties"
        props.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@localhost:{self.controller_port}",
                    f"listeners=PLAINTEXT://localhost:{self.port},SASL_SSL://localhost:{self.secure_port},"
                    f"CONTROLLER://localhost:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://localhost:{self.port},SASL_SSL://localhost:{self.secure_port}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL",
                    *self.security.broker_properties(self.secure_port),
                    f"log.dirs={self.state_dir / 'data'}",
                    f"num.partitions={self.settings.kafka.topic_partitions}",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=3",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=false",
                    # 16 MiB: a message far above any event type's max_message_bytes (a 10 MB one, a
                    # million-element array) reaches the stream, which dead-letters it as OVERSIZED
                    "message.max.bytes=16777216",
                    "log.retention.hours=168",
                    "",
                ]
            )
        )
        props.chmod(0o600)  # it holds the keystore's password
        (self.state_dir / "log4j2.yaml").write_text(_LOG4J2)
        return props

    def _java(self, main_class: str, *args: str) -> list[str]:
        java = require_command("java", JDK_FIX)
        return [
            java,
            "-Xms256m",
            "-Xmx1g",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.state_dir / 'log4j2.yaml'}",
            "-cp",
            kafka_classpath(),
            main_class,
            *args,
        ]

    def _format_storage(self, props: Path, cluster_id: str | None = None) -> None:
        if (self.state_dir / "data" / "meta.properties").exists():
            return
        import subprocess

        cluster_id = cluster_id or new_cluster_id()
        result = subprocess.run(
            # "--cluster-id=ID", not "-t ID": a base64 id may start with "-", which argparse reads as an option.
            self._java("kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "--config", str(props)),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(f"formatting Kafka storage in {self.state_dir} failed: {result.stdout}{result.stderr}")

    def running(self) -> bool:
        """True when our broker process is alive and its port answers."""
        return self.service.pid() is not None and port_open(self.port)

    def start(self) -> None:
        """Start the broker unless it runs already; wait until it accepts clients."""
        if self.running():
            return
        require_free_port(self.port, "the Kafka broker", "LAKEHOUSE_KAFKA_PORT")
        require_free_port(self.secure_port, "the Kafka broker's SASL_SSL listener", "LAKEHOUSE_KAFKA_SECURE_PORT")
        require_free_port(self.controller_port, "the Kafka controller", "LAKEHOUSE_KAFKA_CONTROLLER_PORT")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.security.ensure_certificates()
        props = self._properties()
        self._format_storage(props)
        self.service.start(self._java("kafka.Kafka", str(props)))
        wait_until(self._ready, 90, f"Kafka broker on {self.address}", self.service.log_file)
        topics = sorted({spec.topic for spec in load_event_types().values()})
        self.security.create_principals(self.address, topics)
        log.info("Kafka broker up on %s (plaintext) and %s (SASL_SSL)", self.address, self.secure_address)

    def _ready(self) -> bool:
        if self.service.pid() is None:
            raise StackError(f"the Kafka broker exited during start-up; see {self.service.log_file}")
        if not port_open(self.port):
            return False
        from confluent_kafka.admin import AdminClient

        try:
            metadata = AdminClient({"bootstrap.servers": self.address}).list_topics(timeout=2)
        except Exception:  # noqa: BLE001 - any client error here just means "not ready yet"
            return False
        return bool(metadata.brokers)

    def stop(self) -> None:
        """Stop the broker (controlled shutdown)."""
        self.service.stop(timeout=45)
