"""Environment settings: where data lives, which Kafka, Spark, PostgreSQL, MLflow and Superset to use.

One YAML file per environment under ``config/environments/`` (``local``, ``cluster``, ``databricks``), chosen by
``LAKEHOUSE_ENV``. Values may reference the process environment as ``${VAR}`` or ``${VAR:-default}``; that is
the only way secrets enter, so nothing secret is ever stored in the repository.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlparse

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lakehouse.config import log_masking
from lakehouse.config.bi import SupersetSettings
from lakehouse.config.errors import ConfigError

CONFIG_DIR_ENV = "LAKEHOUSE_CONFIG_DIR"
ENVIRONMENT_ENV = "LAKEHOUSE_ENV"
HOME_ENV = "LAKEHOUSE_HOME"
EMBEDDED_PG_PASSFILE = Path("postgres", "pgpass")  # under the state folder: the superuser's password, mode 0600
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}$]*))?\}")  # innermost first
_LITERAL_DOLLAR = "\x00dollar\x00"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ObjectStoreSettings(_Model):
    """An S3-compatible object store, reached through Hadoop's ``s3a://`` connector (hadoop-aws).

    ``endpoint`` is empty for AWS S3 itself. Credentials never appear here: Spark's S3 client takes them from
    ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY`` (or the rest of the AWS default chain, such as an
    instance profile); the local stack's store generates a pair into its state folder when they are unset."""

    endpoint: str = ""
    region: str = "us-east-1"
    path_style_access: bool = False
    # false: s3a deletes objects one request each (Hadoop's fs.s3a.multiobjectdelete.enable) for stores that
    # refuse DeleteObjects as the AWS SDK sends it now, with a CRC32 checksum header (s3proxy answers 501)
    bulk_delete: bool = True

    @property
    def host_port(self) -> tuple[str, int] | None:
        """Host and port of ``endpoint`` (None for AWS's own)."""
        if not self.endpoint:
            return None
        parsed = urlparse(self.endpoint)
        return parsed.hostname or "", parsed.port or (443 if parsed.scheme == "https" else 80)

    def hadoop_conf(self) -> dict[str, str]:
        """The Spark properties that point s3a:// at this store."""
        conf = {
            "spark.hadoop.fs.s3a.endpoint.region": self.region,
            "spark.hadoop.fs.s3a.path.style.access": str(self.path_style_access).lower(),
            "spark.hadoop.fs.s3a.multiobjectdelete.enable": str(self.bulk_delete).lower(),
        }
        if self.endpoint:
            conf["spark.hadoop.fs.s3a.endpoint"] = self.endpoint
            conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] = str(self.endpoint.startswith("https")).lower()
        return conf


@dataclass(frozen=True)
class LakeTable:
    """A Delta table of the lake: by ``name`` in a catalog (``lakehouse.silver.orders``), at ``path``, or both.
    A named table with a path is an external table there; a named table without one is managed by its catalog."""

    name: str | None
    path: str | None

    def __str__(self) -> str:
        return self.name or self.path or ""


class StorageSettings(_Model):
    """Roots of the Delta lake and of the streaming checkpoints (local paths, s3a://, abfss://, dbfs:/).
    ``s3`` describes the object store of ``s3a://`` roots.

    With ``catalog`` set, tables are addressed by three-level names, ``<catalog>.<layer>.<table>`` (Unity Catalog on
    Databricks): external tables under ``lake_root`` when it is set, else tables the catalog manages."""

    lake_root: str = ""
    checkpoint_root: str
    catalog: str | None = None
    s3: ObjectStoreSettings | None = None

    @field_validator("catalog")
    @classmethod
    def _unset_when_empty(cls, catalog: str | None) -> str | None:
        return catalog or None

    @model_validator(mode="after")
    def _tables_need_a_place(self) -> StorageSettings:
        if not self.lake_root and not self.catalog:
            raise ValueError("set lake_root (a path or URL), or catalog (tables by name), or both")
        return self

    @property
    def uses_s3a(self) -> bool:
        """True when the lake or the checkpoints are on ``s3a://``: Spark then needs hadoop-aws."""
        return any(root.startswith("s3a://") for root in (self.lake_root, self.checkpoint_root))

    @property
    def s3_buckets(self) -> list[str]:
        """The buckets the ``s3a://`` roots are in."""
        roots = (self.lake_root, self.checkpoint_root)
        return sorted({urlparse(r).netloc for r in roots if r.startswith("s3a://")})

    def table(self, layer: str, name: str) -> LakeTable:
        """A Delta table of the lake, e.g. ``table("silver", "orders")``."""
        return LakeTable(
            f"{self.catalog}.{layer}.{name}" if self.catalog else None,
            self.table_path(layer, name) if self.lake_root else None,
        )

    def table_path(self, layer: str, name: str) -> str:
        """Location of a Delta table under the lake root, e.g. ``table_path("silver", "orders")``."""
        return f"{self.lake_root.rstrip('/')}/{layer}/{name}"

    def checkpoint_path(self, query_name: str) -> str:
        """Checkpoint location of a streaming query."""
        return f"{self.checkpoint_root.rstrip('/')}/{query_name}"


class KafkaSettings(_Model):
    """Broker addresses, topic defaults and extra client properties (security, SASL) shared by every client.

    ``producer`` holds librdkafka properties of the producer alone (Azure Event Hubs refuses requests over
    1,046,528 bytes: ``message.max.bytes``). ``create_topics: false`` is for a service whose topics cannot be
    created through the Kafka AdminClient (Event Hubs: create them as event hubs); a missing topic then stops
    ``lakehouse topics`` with one line. ``java_login_module_prefix`` prefixes the JAAS login module Spark's Kafka
    client gets (``kafkashaded.`` on Databricks, whose Kafka client is shaded)."""

    bootstrap_servers: str
    topic_partitions: int = Field(ge=1)
    topic_replication: int = Field(ge=1)
    client: dict[str, str] = Field(default_factory=dict)
    producer: dict[str, str] = Field(default_factory=dict)
    create_topics: bool = True
    java_login_module_prefix: str = ""

    @model_validator(mode="before")
    @classmethod
    def _drop_empty_properties(cls, data: Any) -> Any:
        # a property set from an unset variable (``${KAFKA_SASL_USERNAME:-}``) is left out, not sent empty
        if isinstance(data, dict):
            for key in ("client", "producer"):
                if isinstance(data.get(key), dict):
                    data = {**data, key: {k: v for k, v in data[key].items() if v not in ("", None)}}
        return data


class SparkSettings(_Model):
    """Spark master and configuration; ``provided_jars`` means the platform already has Delta and Kafka.

    ``deploy`` says how batch jobs (Gold builds and loads, from Airflow tasks and the CLI) reach Spark:

    - ``spark-submit`` (default): one application per job, against ``master``;
    - ``connect``: the job's Python process is a Spark Connect client of the long-running server at
      ``connect_url`` (``sc://host:port``), so a job starts in about a second instead of starting a driver;
    - ``in-process``: the job's own Python process hosts the Spark driver.

    Streaming jobs always get a driver of their own (spark-submit, or in-process when so deployed)."""

    master: str
    conf: dict[str, str] = Field(default_factory=dict)
    provided_jars: bool = False
    deploy: Literal["spark-submit", "connect", "in-process"] = "spark-submit"
    connect_url: str = ""

    @model_validator(mode="after")
    def _connect_needs_url(self) -> SparkSettings:
        if self.deploy == "connect" and not self.connect_url.startswith("sc://"):
            raise ValueError(
                f"deploy: connect needs connect_url: sc://host:port (got {self.connect_url!r}); "
                "set LAKEHOUSE_SPARK_CONNECT_URL or choose deploy: spark-submit"
            )
        return self

    @property
    def connect_port(self) -> int:
        """Port of the Spark Connect server named by ``connect_url`` (15002 when it names none)."""
        authority = self.connect_url.removeprefix("sc://").split("/", 1)[0].split(";", 1)[0]
        host_port = authority.rsplit(":", 1)
        return int(host_port[1]) if len(host_port) == 2 and host_port[1].isdigit() else 15002


class PostgresSettings(_Model):
    """The serving database. An empty ``dsn`` means: the local stack's embedded server."""

    dsn: str = ""
    embedded_port: int
    database: str


class AirflowSettings(_Model):
    """Airflow api-server port and metadata database name (on the same PostgreSQL server)."""

    port: int
    metadata_database: str
    databricks_conn_id: str = "databricks_default"


class DatabricksSettings(_Model):
    """How jobs run as Databricks runs (``spark.master: databricks``): the ``lakehouse`` wheel (built with
    ``python -m build``) as a library, on the cluster ``existing_cluster_id`` names or, when it names none, on a
    job cluster ``new_cluster`` describes (the Jobs API's cluster spec), created per run.

    ``spark_env_vars`` go to a job cluster's environment: the job reads its ``LAKEHOUSE_*`` settings from there,
    and a secret is written as a Databricks secret reference, ``{{secrets/<scope>/<key>}}``, never as a value.
    An existing cluster must have them set already."""

    wheel: str
    existing_cluster_id: str = ""
    new_cluster: dict[str, Any] = Field(default_factory=dict)
    spark_env_vars: dict[str, str] = Field(default_factory=dict)
    timeout_seconds: int = Field(default=3600, ge=60)
    # The Unity Catalog objects the workspace must have (``lakehouse databricks check`` reads them, never creates
    # them): the catalog, its schemas, and the volume (``catalog.schema.volume``) the wheel is uploaded to.
    catalog: str = Field(default="lakehouse", pattern=r"^[^.\s/]+$")
    schemas: tuple[str, ...] = ("bronze", "silver", "gold")
    volume: str = Field(default="lakehouse.artifacts.wheels", pattern=r"^[^.\s/]+\.[^.\s/]+\.[^.\s/]+$")

    @property
    def volume_path(self) -> str:
        """The volume's files, as Databricks paths them: ``/Volumes/<catalog>/<schema>/<volume>``."""
        return "/Volumes/" + self.volume.replace(".", "/")

    @model_validator(mode="after")
    def _a_cluster(self) -> DatabricksSettings:
        if not self.existing_cluster_id and not self.new_cluster:
            raise ValueError("name a cluster: existing_cluster_id (LAKEHOUSE_DATABRICKS_CLUSTER_ID) or new_cluster")
        return self

    def cluster(self) -> dict[str, Any]:
        """The run's cluster, as the Jobs API takes it."""
        if self.existing_cluster_id:
            return {"existing_cluster_id": self.existing_cluster_id}
        return {"new_cluster": {**self.new_cluster, "spark_env_vars": dict(self.spark_env_vars)}}


class MlflowSettings(_Model):
    """Where runs, metrics and models are tracked (MLflow), as clients see it.

    ``tracking_uri`` is an ``http://`` tracking server (the local stack starts it when the address is on this
    machine) or ``databricks``; ``registry_uri`` is the model registry's (empty: the tracking server's own;
    ``databricks-uc`` for Unity Catalog). A server the stack starts keeps runs and the registry in the database
    ``backend_database`` of the stack's PostgreSQL, and artifacts under ``artifacts_destination`` (a folder on
    this machine), which it serves itself (``--serve-artifacts``): clients need no access to that storage."""

    tracking_uri: str = Field(min_length=1)
    registry_uri: str = ""
    backend_database: str = "mlflow"
    artifacts_destination: str = ""
    # the sentiment model in the registry, the alias of the version that scores and serves, and the experiment
    # its training runs are logged in (on Databricks, a workspace path such as /Shared/lakehouse_sentiment)
    model_name: str = Field(default="lakehouse_sentiment", min_length=1)
    champion_alias: str = Field(default="champion", min_length=1)
    experiment: str = Field(default="lakehouse_sentiment", min_length=1)

    @property
    def server_address(self) -> tuple[str, int] | None:
        """Host and port of an ``http(s)://`` tracking server (None for ``databricks`` and other schemes)."""
        parsed = urlparse(self.tracking_uri)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            return None
        return parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80)

    @property
    def server_on_this_machine(self) -> bool:
        """True when the tracking server is on this machine's loopback: the local stack runs it."""
        address = self.server_address
        return address is not None and is_local_host(address[0])

    @model_validator(mode="after")
    def _local_server_needs_artifacts(self) -> MlflowSettings:
        if self.server_on_this_machine and not self.artifacts_destination:
            raise ValueError(
                f"a tracking server on this machine ({self.tracking_uri}) needs artifacts_destination: "
                "the folder where it keeps artifacts"
            )
        return self

    def client_env(self) -> dict[str, str]:
        """``MLFLOW_TRACKING_URI`` (and ``MLFLOW_REGISTRY_URI`` when set) for an MLflow client's environment."""
        values = {"MLFLOW_TRACKING_URI": self.tracking_uri}
        if self.registry_uri:
            values["MLFLOW_REGISTRY_URI"] = self.registry_uri
        return values


class ModelServingSettings(_Model):
    """The REST endpoint of the registry's champion (``mlflow.model_name`` at ``mlflow.champion_alias``) at ``url``
    (the local stack runs it on this machine); it asks every ``reload_seconds`` which version the alias names (and
    loads a new one), and writes each ``latency_window_seconds`` window's latency to ``serving.ml_serving_latency``."""

    url: str = Field(pattern=r"^https?://[^/:]+(:\d+)?/?$")
    reload_seconds: float = Field(default=30, gt=0)
    latency_window_seconds: float = Field(default=60, ge=1)

    @property
    def address(self) -> tuple[str, int]:
        """Host and port the endpoint listens on."""
        parsed = urlparse(self.url)
        return parsed.hostname or "", parsed.port or (443 if parsed.scheme == "https" else 80)

    @property
    def on_this_machine(self) -> bool:
        """True when the endpoint is on this machine's loopback: the local stack runs it."""
        return is_local_host(self.address[0])


class LocalStackSettings(_Model):
    """Ports of the stack on this machine (the broker's plaintext, SASL_SSL and controller listeners), and the Spark
    standalone cluster it starts where ``spark.master`` names a ``spark://`` master here: ``spark_workers`` of
    ``spark_worker_cores`` cores and ``spark_worker_memory`` each."""

    kafka_port: int = 9092
    kafka_secure_port: int = 9094
    kafka_controller_port: int = 9093
    spark_workers: int = Field(default=2, ge=1)
    spark_worker_cores: int = Field(default=2, ge=1)
    spark_worker_memory: str = "3g"
    spark_master_web_port: int = 8090


class Settings(_Model):
    """Everything that differs between environments. Code never hard-codes any of it."""

    name: str
    home: Path
    storage: StorageSettings
    kafka: KafkaSettings
    spark: SparkSettings
    postgres: PostgresSettings
    airflow: AirflowSettings
    mlflow: MlflowSettings
    # None: no REST endpoint for the model in this environment (databricks: planned, Databricks Model Serving)
    model_serving: ModelServingSettings | None = None
    superset: SupersetSettings | None = None  # None: no BI tool in this environment (databricks)
    local_stack: LocalStackSettings = Field(default_factory=LocalStackSettings)
    databricks: DatabricksSettings | None = None

    @model_validator(mode="after")
    def _databricks_master_needs_its_section(self) -> Settings:
        if self.spark.master == "databricks" and self.databricks is None:
            raise ValueError("spark.master: databricks needs a databricks section (wheel, cluster)")
        return self

    @property
    def master_on_this_machine(self) -> bool:
        """True when ``spark.master`` names a ``spark://`` master on this machine."""
        address = self.spark_master_address
        return address is not None and is_local_host(address[0])

    @property
    def spark_master_address(self) -> tuple[str, int] | None:
        """Host and port of a ``spark://`` master (None for local[*], yarn, k8s or databricks)."""
        if not self.spark.master.startswith("spark://"):
            return None
        host, _, port = self.spark.master.removeprefix("spark://").split(",")[0].partition(":")
        return host, int(port or 7077)

    def object_store_credentials(self) -> dict[str, str]:
        """``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY`` for Spark's S3 client: from the environment, else
        the pair the local stack's object store generated (empty when neither exists: the AWS default chain)."""
        keys = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
        if all(os.environ.get(k) for k in keys):
            return {k: os.environ[k] for k in keys}
        generated = self.home / "object-store" / "credentials.json"
        if self.storage.s3 is not None and generated.is_file():
            values = json.loads(generated.read_text())
            return {k: str(values[k]) for k in keys}
        return {}

    @property
    def uses_embedded_postgres(self) -> bool:
        """True when no DSN was given, so the local stack runs its own server."""
        return not self.postgres.dsn

    def postgres_dsn(self, database: str | None = None) -> str:
        """libpq URI of the serving database (or ``database`` on its server); the embedded one's names its passfile."""
        db = database or self.postgres.database
        if self.postgres.dsn:
            return _replace_database(self.postgres.dsn, db) if database else self.postgres.dsn
        passfile = quote(str(self.home / EMBEDDED_PG_PASSFILE), safe="/")
        return f"postgresql://postgres@127.0.0.1:{self.postgres.embedded_port}/{db}?passfile={passfile}"


def is_local_host(host: str | None) -> bool:
    """True when ``host`` names this machine's loopback interface (a service the local stack may start)."""
    return host in ("127.0.0.1", "localhost", "::1")


def _replace_database(dsn: str, database: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(dsn).set(database=database).render_as_string(hide_password=False)


def project_root() -> Path | None:
    """The repository checkout this package runs from, or None when installed as a wheel."""
    candidate = Path(__file__).resolve().parents[1]
    return candidate if (candidate / "pyproject.toml").is_file() else None


def config_dir() -> Path:
    """Folder holding environments/, event_types/, contracts/ and marts/ (``LAKEHOUSE_CONFIG_DIR`` overrides)."""
    override = os.environ.get(CONFIG_DIR_ENV)
    return Path(override) if override else Path(__file__).resolve().parent


def lakehouse_home() -> Path:
    """Local state folder: jars cache pointers, broker data, embedded Postgres, Airflow home, local lake."""
    override = os.environ.get(HOME_ENV)
    if override:
        return Path(override).resolve()
    root = project_root()
    return (root / ".lakehouse") if root else Path.home() / ".lakehouse"


def interpolate(value: Any, environ: dict[str, str], where: str, problems: list[str]) -> Any:
    """Replace ``${VAR}``/``${VAR:-default}`` (defaults may nest) in every string of a parsed YAML document;
    ``$$`` stands for a literal ``$``."""
    if isinstance(value, dict):
        return {k: interpolate(v, environ, f"{where}.{k}" if where else str(k), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, environ, f"{where}[{i}]", problems) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if environ.get(name):
            return environ[name]
        if default is not None:
            return default
        problems.append(f"{where}: environment variable {name} is not set (export it, or use ${{{name}:-default}})")
        return ""

    text = value.replace("$$", _LITERAL_DOLLAR)
    while True:
        replaced = _PLACEHOLDER.sub(substitute, text)
        if replaced == text:
            return replaced.replace(_LITERAL_DOLLAR, "$")
        text = replaced


def load_settings(environment: str | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Read, interpolate and validate one environment file; every problem is reported at once."""
    env = dict(os.environ if environ is None else environ)
    name = environment or env.get(ENVIRONMENT_ENV, "local")
    home = Path(env[HOME_ENV]).resolve() if env.get(HOME_ENV) else lakehouse_home()
    env.setdefault(HOME_ENV, str(home))
    path = config_dir() / "environments" / f"{name}.yaml"
    if not path.is_file():
        available = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise ConfigError([f"{path}: no such environment {name!r} (set {ENVIRONMENT_ENV} to one of {available})"])
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {exc}"]) from exc
    problems: list[str] = []
    resolved = interpolate(raw, env, "", problems)
    if problems:
        raise ConfigError([f"{path}: {problem}" for problem in problems])
    try:
        return Settings(home=home, **resolved)
    except ValidationError as exc:
        raise ConfigError(
            [f"{path}: {'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()]
        ) from exc


@cache
def settings() -> Settings:
    """The settings of the current process's environment (read once)."""
    return load_settings()


def mask(value: str) -> str:
    """A DSN or URL with its password replaced by ``***``, safe to log."""
    return log_masking.mask_url(value)


def masked_mapping(values: dict[str, str]) -> dict[str, str]:
    """A copy of client properties with every secret-looking value replaced by ``***``."""
    return {k: (log_masking.MASK if log_masking.SECRET_NAME.search(k) else v) for k, v in values.items()}
