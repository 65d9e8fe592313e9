"""Event-type specs: one YAML file per event type under ``config/event_types/``, one JSON Schema per version.

``load_event_types()`` reads every file, validates it against the models below and the contracts against the
JSON Schema meta-schema, and reports every problem at once with its file and key. Adding an event type is a
YAML file and a JSON Schema: no code.
"""

from __future__ import annotations

import functools
import json
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lakehouse.config.errors import ConfigError
from lakehouse.config.settings import config_dir

SpecT = TypeVar("SpecT", bound=BaseModel)
ENVELOPE = ("event_id", "event_type", "schema_version", "tenant_id", "event_timestamp")
_JSON_TO_SPARK = {"string": "string", "integer": "bigint", "number": "double", "boolean": "boolean"}


# every event type's tenant_id, unless its contract says otherwise: it becomes a Silver partition folder and a value
# in SQL, so a path separator, a quote, whitespace or 10 KB of it is quarantined instead
TENANT_ID_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RangeRule(_Model):
    """``min <= column <= max`` (either bound optional)."""

    type: Literal["range"]
    name: str
    column: str
    min: float | None = None
    max: float | None = None


class NotNullRule(_Model):
    """The column is not null."""

    type: Literal["not_null"]
    name: str
    column: str


class AllowedValuesRule(_Model):
    """The column is one of ``values``."""

    type: Literal["allowed_values"]
    name: str
    column: str
    values: list[str | int | float]


class RegexRule(_Model):
    """The column matches ``pattern`` (Java regex, as Spark's ``rlike``)."""

    type: Literal["regex"]
    name: str
    column: str
    pattern: str


class ExpressionRule(_Model):
    """A Spark SQL boolean expression over the typed row (cross-field checks)."""

    type: Literal["expression"]
    name: str
    expression: str


QualityRule = Annotated[
    RangeRule | NotNullRule | AllowedValuesRule | RegexRule | ExpressionRule, Field(discriminator="type")
]


class Enrichment(_Model):
    """Left join of the current rows of a reference table on ``key``; adds ``columns`` as ``prefix + column``."""

    reference: str
    key: str
    columns: list[str] = Field(min_length=1)
    prefix: str = ""


class Tables(_Model):
    """Delta table names in each layer."""

    bronze: str
    silver: str


class ContractField(_Model):
    """A top-level field of an event type, merged over all contract versions."""

    name: str
    spark_type: str
    required_in: frozenset[int]
    present_in: frozenset[int]
    enum: tuple[Any, ...] | None = None
    pattern: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = None
    is_timestamp: bool = False


class SentimentScoring(_Model):
    """Which rows of an event type the sentiment model scores in Silver, and the column holding their text. Scored
    rows get ``sentiment_label``, ``sentiment_score`` and ``model_version``; the others keep them null."""

    text_column: str
    where: str = "true"


class EventTypeSpec(_Model):
    """Everything the pipeline needs to know about one event type."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    topic: str
    kafka_key: str
    event_types: list[str] = Field(min_length=1)
    contracts: dict[int, str] = Field(min_length=1)
    dedup_key: str = "event_id"
    dedup_watermark: str = Field(default="2 days", pattern=r"^\d+ (day|days|hour|hours)$")
    late_key_dates: int = Field(default=3, ge=0, le=31)
    partition_by: list[str] = Field(default_factory=lambda: ["tenant_id", "event_date"])
    quality_rules: list[QualityRule] = Field(default_factory=list)
    enrich: list[Enrichment] = Field(default_factory=list)
    sentiment: SentimentScoring | None = None
    tables: Tables
    max_message_bytes: int = 1_000_000
    source_file: Path = Path()
    config_root: Path = Path()

    @model_validator(mode="after")
    def _rule_names_unique(self) -> EventTypeSpec:
        names = [rule.name for rule in self.quality_rules]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"quality rule names must be unique, repeated: {duplicates}")
        return self

    @model_validator(mode="after")
    def _watermark_at_least_a_day(self) -> EventTypeSpec:
        if self.dedup_watermark_ms < 86_400_000:
            raise ValueError(
                f"dedup_watermark {self.dedup_watermark!r} is shorter than a day: a duplicate arriving later than "
                "the watermark on the same event date would land twice"
            )
        return self

    @property
    def dedup_watermark_ms(self) -> int:
        """``dedup_watermark`` in milliseconds."""
        count, unit = self.dedup_watermark.split()
        return int(count) * (86_400_000 if unit.startswith("day") else 3_600_000)

    def contract(self, version: int) -> dict[str, Any]:
        """The parsed JSON Schema of one version."""
        return self._contracts[version]

    @cached_property
    def _contracts(self) -> dict[int, dict[str, Any]]:
        return {v: json.loads((self.config_root / p).read_text()) for v, p in self.contracts.items()}

    @cached_property
    def fields(self) -> list[ContractField]:
        """Union of the top-level fields of every version, in first-seen order."""
        merged: dict[str, dict[str, Any]] = {}
        for version in sorted(self.contracts):
            schema = self.contract(version)
            required = set(schema.get("required", []))
            for name, prop in schema.get("properties", {}).items():
                entry = merged.setdefault(name, {"name": name, "required_in": set(), "present_in": set()})
                entry["present_in"].add(version)
                if name in required:
                    entry["required_in"].add(version)
                json_type = prop.get("type", "string")
                if isinstance(json_type, list):
                    json_type = next((t for t in json_type if t != "null"), "string")
                is_timestamp = prop.get("format") == "date-time"
                entry["spark_type"] = prop.get("x-spark-type") or (
                    "timestamp" if is_timestamp else _JSON_TO_SPARK.get(json_type, "string")
                )
                entry["is_timestamp"] = is_timestamp
                if name != "schema_version":
                    entry["enum"] = tuple(prop["enum"]) if "enum" in prop else entry.get("enum")
                entry["pattern"] = prop.get("pattern", entry.get("pattern"))
                entry["minimum"] = prop.get("minimum", entry.get("minimum"))
                entry["maximum"] = prop.get("maximum", entry.get("maximum"))
                entry["min_length"] = prop.get("minLength", entry.get("min_length"))
        if "tenant_id" in merged and merged["tenant_id"].get("pattern") is None:
            merged["tenant_id"]["pattern"] = TENANT_ID_PATTERN
        return [
            ContractField(**{**e, "required_in": frozenset(e["required_in"]), "present_in": frozenset(e["present_in"])})
            for e in merged.values()
        ]

    @property
    def versions(self) -> list[int]:
        """Known schema versions, ascending."""
        return sorted(self.contracts)


def read_specs(
    folder: Path, model: type[SpecT], problems: list[str], context: dict[str, Any] | None = None, **extra: Any
) -> list[tuple[Path, SpecT]]:
    """Every ``*.yaml`` file of ``folder`` validated as ``model`` (with ``source_file`` and ``extra`` set, and
    ``context`` for its validators), in file name order; each problem is appended to ``problems`` with its file
    and key instead of raised, so that a loader reports all of them at once."""
    specs: list[tuple[Path, SpecT]] = []
    for path in sorted(folder.glob("*.yaml")):
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            problems.append(f"{path}: not valid YAML: {exc}")
            continue
        if not isinstance(raw, dict):
            problems.append(f"{path}: expected a mapping of keys, got {type(raw).__name__}")
            continue
        try:
            specs.append((path, model.model_validate({**raw, "source_file": path, **extra}, context=context)))
        except ValidationError as exc:
            problems.extend(
                f"{path}: {'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()
            )
    return specs


def _check_contracts(spec: EventTypeSpec, where: str, problems: list[str]) -> None:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    for version, rel in spec.contracts.items():
        path = spec.config_root / rel
        key = f"{where}: contracts.{version}"
        if not path.is_file():
            problems.append(f"{key}: contract file {path} does not exist")
            continue
        try:
            schema = json.loads(path.read_text())
            Draft202012Validator.check_schema(schema)
        except (json.JSONDecodeError, SchemaError) as exc:
            problems.append(f"{key}: {path} is not a valid JSON Schema: {str(exc).splitlines()[0]}")
            continue
        properties = schema.get("properties", {})
        missing = [name for name in ENVELOPE if name not in properties]
        if missing:
            problems.append(f"{key}: {path} lacks envelope field(s) {missing}")
        for column in {spec.kafka_key, spec.dedup_key} - set(properties):
            problems.append(f"{key}: {path} has no property {column!r} named by kafka_key/dedup_key")


def _signature(base: Path, *patterns: str) -> tuple[tuple[str, int, int], ...]:
    """Name, size and modification time of the config files matching ``patterns``: a cache key that changes
    whenever one of them is edited, added or removed."""
    files = sorted(path for pattern in patterns for path in base.glob(pattern))
    return tuple((str(path), stat.st_size, stat.st_mtime_ns) for path in files for stat in [path.stat()])


def load_event_types(root: Path | None = None) -> dict[str, EventTypeSpec]:
    """All event types of a config folder, validated; raises ConfigError listing every problem.

    Parsed once per version of the files (a job asks for several event types; validating the contracts each
    time cost about 0.1 s)."""
    base = root or config_dir()
    return dict(_load_event_types(base, _signature(base, "event_types/*.yaml", "contracts/**/*.json")))


@functools.lru_cache(maxsize=8)
def _load_event_types(base: Path, signature: tuple[tuple[str, int, int], ...]) -> dict[str, EventTypeSpec]:
    problems: list[str] = []
    specs: dict[str, EventTypeSpec] = {}
    topics: dict[str, str] = {}
    folder = base / "event_types"
    if not any(folder.glob("*.yaml")):
        raise ConfigError([f"{folder}: no event type files (*.yaml) found"])
    for path, spec in read_specs(folder, EventTypeSpec, problems, config_root=base):
        _check_contracts(spec, str(path), problems)
        if spec.name in specs:
            problems.append(f"{path}: name: event type {spec.name!r} is defined twice")
        if spec.topic in topics:
            problems.append(f"{path}: topic: {spec.topic!r} is already used by event type {topics[spec.topic]!r}")
        specs[spec.name] = spec
        topics[spec.topic] = spec.name
    if problems:
        raise ConfigError(problems)
    return specs


def pick(specs: dict[str, SpecT], name: str, folder: Path, kind: str) -> SpecT:
    """``specs[name]``, or a ConfigError naming the folder and the known names."""
    if name not in specs:
        raise ConfigError([f"{folder}: unknown {kind} {name!r}; known: {sorted(specs)}"])
    return specs[name]


def event_type(name: str, root: Path | None = None) -> EventTypeSpec:
    """One event type by name; ConfigError naming the known ones if it does not exist."""
    return pick(load_event_types(root), name, (root or config_dir()) / "event_types", "event type")
