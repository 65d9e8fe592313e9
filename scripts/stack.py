"""The local stack as one unit: ``up``, ``down``, ``status`` and the shell exports a user needs."""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass
from pathlib import Path

from lakehouse.config.settings import Settings, is_local_host, mask
from lakehouse.scripts.airflow_stack import AirflowStack, airflow_env
from lakehouse.scripts.kafka_broker import KAFKA_JARS, KafkaBroker
from lakehouse.scripts.mlflow_server import MlflowServer
from lakehouse.scripts.model_server import ModelServer
from lakehouse.scripts.object_store import S3PROXY_JARS, ObjectStore
from lakehouse.scripts.postgres_server import EmbeddedPostgres, ensure_database
from lakehouse.scripts.process import port_open
from lakehouse.scripts.spark_cluster import SparkCluster
from lakehouse.scripts.spark_connect import SparkConnectServer
from lakehouse.scripts.superset_server import SupersetServer
from lakehouse.spark.jars import S3A_JARS, SPARK_JARS, resolve

log = logging.getLogger(__name__)

# in start order; "spark" is the Spark Connect server, "cluster" a Spark standalone master and workers and
# "object-store" s3proxy: the last two exist where the environment points at them on this machine (cluster);
# "mlflow" is the MLflow tracking server and model registry, where the tracking URI names this machine, and
# "model-server" the sentiment model's REST endpoint, where model_serving.url does; "superset" is Apache Superset,
# where the environment has a superset section, last: the data path does not need it
COMPONENTS = ("kafka", "object-store", "cluster", "postgres", "mlflow", "model-server", "spark", "airflow", "superset")


def resolve_jars(settings: Settings | None = None) -> dict[str, Path]:
    """Resolve every JVM jar set the stack needs (idempotent): Spark's runtime jars and the Kafka broker's, and
    for an environment on ``s3a://`` hadoop-aws and the local object store's; and place pyspark's distribution in
    the cache (``lakehouse.spark.distribution``), and compile the ``java.nio`` local file system
    (``lakehouse.spark.local_fs``) and the timer dedup (``lakehouse.spark.timer_dedup``)."""
    from lakehouse.spark import local_fs, timer_dedup
    from lakehouse.spark.distribution import ensure_distribution

    ensure_distribution()
    local_fs.ensure_jar()  # before the class archive, whose name depends on the drivers' class path
    timer_dedup.ensure_jar()
    sets = [SPARK_JARS, KAFKA_JARS]
    if settings is not None and settings.storage.uses_s3a:
        sets += [S3A_JARS, S3PROXY_JARS]
    return {jar_set.name: resolve(jar_set) for jar_set in sets}


def driver_class_archive(settings: Settings) -> Path | None:
    """The environment's Spark driver class archive, built unless it exists (``lakehouse.spark.class_archive``); a
    failure to build it is one warning: drivers then start without it."""
    from lakehouse.spark.class_archive import ensure_archive
    from lakehouse.spark.errors import SparkJobError

    try:
        return ensure_archive(settings)
    except SparkJobError as exc:
        log.warning("Spark drivers start without a class archive: %s", exc)
        return None


@dataclass(frozen=True)
class ComponentStatus:
    """One line of ``lakehouse stack status``."""

    name: str
    up: bool
    address: str


class LocalStack:
    """Kafka broker, PostgreSQL (embedded unless ``LAKEHOUSE_PG_DSN`` is set), the MLflow tracking server, the
    model server (the sentiment model over REST), the Spark Connect server that Gold jobs use (``spark.deploy:
    connect``), Airflow and Apache Superset."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.kafka = KafkaBroker(settings)
        self.postgres = EmbeddedPostgres(settings)
        self.spark = SparkConnectServer(settings)
        self.airflow = AirflowStack(settings)
        self.mlflow = MlflowServer(settings)
        self.model_server = ModelServer(settings)
        self.object_store = ObjectStore(settings)
        self.cluster = SparkCluster(settings)
        self.superset = SupersetServer(settings)
        self.local_kafka = is_local_host(settings.kafka.bootstrap_servers.split(",")[0].rsplit(":", 1)[0])

    def up(self, components: tuple[str, ...] = COMPONENTS) -> None:
        """Start the named components (and what they depend on); already running ones are left alone."""
        resolve_jars(self.settings)
        uses_spark = {"spark", "airflow"} & set(components)
        if uses_spark or "cluster" in components:
            driver_class_archive(self.settings)
        if "kafka" in components and self.local_kafka:
            self.kafka.start()
        if "object-store" in components or uses_spark:
            self.object_store.start()
        if "cluster" in components or uses_spark:
            self.cluster.start()
        # Airflow's tasks (the ML DAG's) log runs and models to the tracking server; the model server loads them
        uses_mlflow = bool({"mlflow", "model-server", "airflow"} & set(components)) and self.mlflow.configured
        uses_superset = "superset" in components and self.superset.configured
        if "postgres" in components or "airflow" in components or uses_mlflow or uses_superset:
            if self.settings.uses_embedded_postgres:
                self.postgres.start()
            else:
                ensure_database(self.settings.postgres_dsn(), self.settings.airflow.metadata_database)
        if uses_mlflow:
            ensure_database(self.settings.postgres_dsn(), self.settings.mlflow.backend_database)
            self.mlflow.start()
        if "model-server" in components:
            self.model_server.start()
        if "spark" in components or ("airflow" in components and self.settings.spark.deploy == "connect"):
            self.spark.start()
        if "airflow" in components:
            self.airflow.start()
        if uses_superset:
            self._start_superset()

    def _start_superset(self) -> None:
        from lakehouse.postgres.migrate import migrate

        ensure_database(self.settings.postgres_dsn(), self.superset.config.metadata_database)
        # its read-only login joins bi_reader, which the serving database's migrations create
        migrate(self.settings.postgres_dsn())
        self.superset.start()

    def down(self) -> None:
        """Stop everything this stack started (data stays in the state folder)."""
        self.superset.stop()
        self.airflow.stop()
        self.spark.stop()
        self.model_server.stop()
        self.mlflow.stop()
        self.cluster.stop()
        self.object_store.stop()
        self.kafka.stop()
        self.postgres.stop()

    def status(self) -> list[ComponentStatus]:
        """Each component with whether it is up and its address."""
        pg_address = mask(self.settings.postgres_dsn())
        pg_up = (
            self.postgres.running()
            if self.settings.uses_embedded_postgres
            else _dsn_reachable(self.settings.postgres_dsn())
        )
        airflow_up = all(self.airflow.running().values()) and port_open(self.settings.airflow.port)
        statuses = [
            ComponentStatus("kafka", self.kafka.running(), self.kafka.address),
            ComponentStatus("object-store", self.object_store.running(), self.object_store.address),
            ComponentStatus("cluster", self.cluster.running(), f"{self.cluster.address} (UI {self.cluster.web_url})"),
            ComponentStatus("postgres", pg_up, pg_address),
            ComponentStatus("mlflow", self.mlflow.running(), self.mlflow.address),
            ComponentStatus("model-server", self.model_server.running(), self.model_server.url),
            ComponentStatus("spark", self.spark.running(), self.spark.address),
            ComponentStatus("airflow", airflow_up, self.airflow.url),
            ComponentStatus("superset", self.superset.running(), self.superset.url),
        ]
        # the Connect server is part of the stack only where Gold jobs use it (or someone started it)
        needs_spark = self.settings.spark.deploy == "connect" or self.spark.running()
        return [
            s
            for s in statuses
            if (s.name != "spark" or needs_spark)
            and (s.name != "kafka" or self.local_kafka or s.up)
            and (s.name != "object-store" or self.object_store.configured)
            and (s.name != "cluster" or self.cluster.configured)
            and (s.name != "mlflow" or self.mlflow.configured)
            and (s.name != "model-server" or self.model_server.configured)
            and (s.name != "superset" or self.superset.configured)
        ]

    def env_exports(self, show_secrets: bool = False, secure_kafka: bool = False) -> str:
        """``export`` lines for a shell. Secrets are not printed (the DSN comes from your own environment) unless
        ``show_secrets``: then Superset's admin password is, and with ``secure_kafka`` the Kafka principals'."""
        values = {
            "LAKEHOUSE_HOME": str(self.settings.home),
            "LAKEHOUSE_ENV": self.settings.name,
            "KAFKA_BOOTSTRAP_SERVERS": self.settings.kafka.bootstrap_servers,
            "LAKEHOUSE_PG_DSN": self.settings.postgres_dsn() if self.settings.uses_embedded_postgres else None,
            **self.settings.mlflow.client_env(),
            "LAKEHOUSE_MODEL_SERVER_URL": self.model_server.url or None,
            **self.superset.client_env(with_password=show_secrets),
            **{
                k: v
                for k, v in airflow_env(self.settings).items()
                if not k.startswith("AIRFLOW_CONN_") and "SECRET" not in k and "SQL_ALCHEMY_CONN" not in k
            },
        }
        if secure_kafka:
            values.update(self._secure_kafka_env(show_secrets))
        return "\n".join(f"export {k}={shlex.quote(v)}" for k, v in values.items() if v is not None)

    def _secure_kafka_env(self, show_secrets: bool) -> dict[str, str | None]:
        streaming = self.kafka.security.client_properties("streaming", self.kafka.secure_address)
        producer = self.kafka.security.client_properties("producer", self.kafka.secure_address)
        return {
            "KAFKA_BOOTSTRAP_SERVERS": streaming["bootstrap.servers"],
            "KAFKA_SECURITY_PROTOCOL": streaming["security.protocol"],
            "KAFKA_SASL_MECHANISM": streaming["sasl.mechanism"],
            "KAFKA_SSL_CA_LOCATION": streaming["ssl.ca.location"],
            "KAFKA_SASL_USERNAME": streaming["sasl.username"],
            "KAFKA_SASL_PASSWORD": streaming["sasl.password"] if show_secrets else None,
            "KAFKA_PRODUCER_SASL_USERNAME": producer["sasl.username"],
            "KAFKA_PRODUCER_SASL_PASSWORD": producer["sasl.password"] if show_secrets else None,
        }


def _dsn_reachable(dsn: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(dsn, connect_timeout=3):
            return True
    except psycopg.Error:
        return False
