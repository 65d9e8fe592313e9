"""Mart contracts: one YAML file per Gold mart under ``config/marts/``, the whole contract in one place, as a dbt
model's YAML: what it reads (``inputs``), its grain, its ``columns`` (type, description, tests), its DQ gate
(``checks``) and small given/expect cases (``unit_tests``).

``load_marts()`` validates every file against the models below and reports every problem at once with its file
and key. The transform is found by name (``transform``, by default ``lakehouse.spark.transforms.gold:<name>``);
its parameters are the mart's inputs (see ``lakehouse.spark.marts``).
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from lakehouse.config.errors import ConfigError
from lakehouse.config.settings import config_dir
from lakehouse.config.specs import load_event_types, pick, read_specs

# the Spark SQL types a mart column may have: those the serving loader writes (lakehouse.postgres.loader)
SPARK_TYPE = re.compile(r"^(string|bigint|int|smallint|double|float|boolean|date|timestamp|decimal\(\d+,\d+\))$")
NUMERIC_TYPE = re.compile(r"^(bigint|int|smallint|double|float|decimal\(\d+,\d+\))$")
DEFAULT_TRANSFORM_MODULE = "lakehouse.spark.transforms.gold"
# parameter names a transform may take besides its inputs: the interval being built
INTERVAL_PARAMETERS = ("start", "end")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AcceptedValues(_Model):
    """Column test: every non-null value is one of ``accepted_values``."""

    accepted_values: list[str | int | float] = Field(min_length=1)


ColumnTest = Literal["not_null", "unique"] | AcceptedValues


class MartColumn(_Model):
    """One column of the mart: Gold table and serving table alike, in this order."""

    name: str = Field(pattern=r"^[a-z_][a-z0-9_]*$")
    type: str
    description: str = Field(min_length=1)
    tests: list[ColumnTest] = Field(default_factory=list)

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        normalized = value.replace(" ", "")
        if not SPARK_TYPE.match(normalized):
            raise ValueError(
                f"type {value!r} is not one the serving loader writes: string, bigint, int, smallint, double, "
                "float, boolean, date, timestamp or decimal(p,s)"
            )
        return normalized

    @property
    def accepted_values(self) -> list[str | int | float] | None:
        """The values of its ``accepted_values`` test, if it has one."""
        return next((t.accepted_values for t in self.tests if isinstance(t, AcceptedValues)), None)


class Calendar(_Model):
    """A day spine ``first..last`` (both inclusive): the transform's ``calendar`` input, one ``date_key`` a day."""

    first: date
    last: date

    @model_validator(mode="after")
    def _ordered(self) -> Calendar:
        if self.last < self.first:
            raise ValueError(f"last ({self.last}) is before first ({self.first})")
        return self


class MartInputs(_Model):
    """What a mart reads. Each input reaches the transform as the parameter of the same name.

    ``silver``: event types whose Silver rows with ``event_date`` in ``[start - lookback_days, end)`` are read
    (a type with no Silver table yet reads as no rows). ``references``: reference tables, their ``current`` rows
    or every one of their ``versions`` (with ``_valid_from``, ``_is_current``). ``late_data_span_days``: a late
    Silver row of day ``e`` makes the build rebuild ``e .. e + span - 1`` (a rolling feature over 30 days needs
    30).
    """

    silver: list[str] = Field(default_factory=list)
    references: dict[str, Literal["current", "versions"]] = Field(default_factory=dict)
    calendar: Calendar | None = None
    lookback_days: int = Field(default=0, ge=0)
    late_data_span_days: int = Field(default=1, ge=1)

    @property
    def names(self) -> list[str]:
        """Every input's parameter name."""
        return [*self.silver, *self.references, *(["calendar"] if self.calendar else [])]


class Reconciliation(_Model):
    """A Gold aggregate that must equal an aggregate over the Silver rows of the same interval."""

    gold: str
    silver_source: str
    silver: str
    tolerance: float = 0.0


class MartChecks(_Model):
    """The DQ gate in front of a mart's load (besides the column tests)."""

    expect_rows: bool = True
    unique_keys: bool = True
    reconcile: Reconciliation | None = None


class Rollup(_Model):
    """A coarser serving table that the load keeps in step with the mart's, in the same transaction: ``sums`` of
    the mart's rows per ``grain``. Charts that need no finer grain read it instead of the mart's table."""

    table: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    grain: list[str] = Field(min_length=1)
    sums: list[str] = Field(min_length=1)


class MartUnitTest(_Model):
    """A given/expect case: the transform on the ``given`` rows of its inputs gives exactly the ``expect`` rows
    (a row lists the columns it checks; every row of a case lists the same ones)."""

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    description: str = ""
    start: date | None = None
    end: date | None = None
    given: dict[str, list[dict[str, Any]]]
    expect: list[dict[str, Any]]


class MartSpec(_Model):
    """A Gold mart's contract.

    ``load_mode: interval`` (the default) marts are built and loaded per date interval of ``date_column``, which
    must be part of the grain; ``load_mode: full`` marts (dimensions) are rebuilt and replaced as a whole on
    every run, may have no ``date_column`` and may read no Silver input.
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    transform: str = ""
    inputs: MartInputs = Field(default_factory=MartInputs)
    grain: list[str] = Field(min_length=1)
    date_column: str | None = None
    serving_table: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    load_mode: Literal["interval", "full"] = "interval"
    columns: list[MartColumn] = Field(min_length=1)
    sinks: list[str] = Field(default_factory=lambda: ["postgres"], min_length=1)
    checks: MartChecks = Field(default_factory=MartChecks)
    # how old the mart's latest load may be (serving.v_mart_freshness flags it over); None: no SLA
    freshness_sla_minutes: int | None = Field(default=None, gt=0)
    rollups: list[Rollup] = Field(default_factory=list)
    unit_tests: list[MartUnitTest] = Field(default_factory=list)
    source_file: Path = Path()

    @field_validator("sinks")
    @classmethod
    def _sink_names(cls, sinks: list[str]) -> list[str]:
        bad = [s for s in sinks if not re.match(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*$", s)]
        if bad or len(set(sinks)) != len(sinks):
            raise ValueError(f"sinks {sinks}: each a format of lakehouse.spark.io (postgres) or a module path, once")
        return sinks

    @property
    def is_full_refresh(self) -> bool:
        """True for marts rebuilt and replaced as a whole (dimensions)."""
        return self.load_mode == "full" or self.date_column is None

    @property
    def transform_path(self) -> tuple[str, str]:
        """(module, function) of the transform: ``transform`` as ``module:function``, by default the function
        named like the mart in ``lakehouse.spark.transforms.gold``."""
        module, _, function = (self.transform or f"{DEFAULT_TRANSFORM_MODULE}:{self.name}").partition(":")
        return module, function or self.name

    @property
    def column_names(self) -> list[str]:
        """The contract's column names, in table order."""
        return [c.name for c in self.columns]

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> MartSpec:
        problems = _unknown_inputs(self.inputs, info.context or {})
        names = self.column_names
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            problems.append(f"columns: repeated column name(s) {repeated}")
        for key in sorted(set(self.grain) - set(names)):
            problems.append(f"grain: {key!r} is not one of the columns")
        if self.load_mode == "interval":
            if not self.inputs.silver:
                problems.append("inputs.silver: an interval mart must read at least one event type")
            if self.date_column is None:
                problems.append("date_column: an interval mart needs one (or set load_mode: full)")
            elif self.date_column not in self.grain:
                problems.append(f"date_column {self.date_column!r} must be part of the grain {self.grain}")
        if self.checks.reconcile and self.checks.reconcile.silver_source not in self.inputs.silver:
            problems.append(
                f"checks.reconcile.silver_source: {self.checks.reconcile.silver_source!r} is not in inputs.silver"
            )
        for rollup in self.rollups:
            problems.extend(_rollup_problems(rollup, self))
        for case in self.unit_tests:
            problems.extend(_unit_test_problems(case, self.inputs.names, names))
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _rollup_problems(rollup: Rollup, spec: MartSpec) -> list[str]:
    types = {c.name: c.type for c in spec.columns}
    where = f"rollups.{rollup.table}"
    problems = [f"{where}: {c!r} is not one of the columns" for c in [*rollup.grain, *rollup.sums] if c not in types]
    problems += [
        f"{where}.sums: {c!r} is a {types[c]}, not a number"
        for c in rollup.sums
        if c in types and not NUMERIC_TYPE.match(types[c])
    ]
    if spec.date_column is not None and not spec.is_full_refresh and spec.date_column not in rollup.grain:
        problems.append(f"{where}.grain: must hold the date column {spec.date_column!r}, by which loads replace rows")
    if rollup.table == spec.serving_table:
        problems.append(f"{where}: the mart's own serving table")
    return problems


def _unknown_inputs(inputs: MartInputs, context: dict[str, Any]) -> list[str]:
    """Inputs that name no known event type or reference table (when the loader passes what is known)."""
    problems = []
    known: set[str] | None = context.get("event_types")
    if known is not None:
        for source in inputs.silver:
            if source not in known:
                problems.append(f"inputs.silver: unknown event type {source!r}; known: {sorted(known)}")
    folder: Path | None = context.get("reference_folder")
    if folder is not None:
        for table in inputs.references:
            if not (folder / table).is_dir():
                problems.append(f"inputs.references: no reference table {table!r} in {folder}")
    return problems


def _unit_test_problems(case: MartUnitTest, inputs: list[str], columns: list[str]) -> list[str]:
    where = f"unit_tests.{case.name}"
    problems = [
        f"{where}.given: {n!r} is not an input of the mart ({inputs})" for n in sorted(set(case.given) - set(inputs))
    ]
    checked = {tuple(row) for row in case.expect}
    if len(checked) > 1:
        problems.append(f"{where}.expect: every row must list the same columns")
    for column in sorted({c for row in case.expect for c in row} - set(columns)):
        problems.append(f"{where}.expect: {column!r} is not a column of the mart")
    return problems


def load_marts(root: Path | None = None) -> dict[str, MartSpec]:
    """All mart contracts of a config folder, validated (every problem at once, with file and key)."""
    base = root or config_dir()
    context = {"event_types": set(load_event_types(base)), "reference_folder": base / "reference"}
    problems: list[str] = []
    marts: dict[str, MartSpec] = {}
    for path, spec in read_specs(base / "marts", MartSpec, problems, context):
        if spec.name in marts:
            problems.append(f"{path}: name: mart {spec.name!r} is defined twice")
        marts[spec.name] = spec
    if problems:
        raise ConfigError(problems)
    return marts


def mart(name: str, root: Path | None = None) -> MartSpec:
    """One mart by name; ConfigError naming the known marts if it does not exist."""
    return pick(load_marts(root), name, (root or config_dir()) / "marts", "mart")


def unit_test_cases(root: Path | None = None) -> list[tuple[MartSpec, MartUnitTest]]:
    """Every mart's given/expect cases, for a parametrized test."""
    return [(spec, case) for spec in load_marts(root).values() for case in spec.unit_tests]
