"""Events made from an event type's JSON Schema contracts alone, for event types without a hand-written model.

Each contract version becomes a list of value makers, one per property:

- the envelope: a uuid4 ``event_id``; an ``event_type`` of the spec's ``event_types`` (within the contract's
  ``enum``); the ``schema_version``; a ``tenant_id`` of the options' tenants; the clock's ``event_timestamp``;
- ``const`` and ``enum``: one of the values;
- ``integer`` and ``number``: uniform within ``minimum``/``maximum`` (or their exclusive forms; 0..1000 where
  unbounded); numbers get 2 decimals, ``"x-spark-type": "decimal(p,s)"`` gives s decimals and at most p-s digits
  before the point;
- ``string``: ``format`` ``date-time`` (within the two days before the event), ``date`` or ``uuid``; a simple
  ``pattern`` (see ``patterns.py``); else ``<field>_<n>``, unique ids for the Kafka key, and values of the
  reference data for the key of an ``enrich`` entry; ``minLength``/``maxLength`` are kept;
- ``boolean`` and ``null``.

Required fields are always there; optional ones are left out of 30% of the events; a field that may be null is
null in 20% of those that have it. Quality rules of type ``range``, ``allowed_values``, ``not_null`` and
(simple) ``regex`` are kept too; ``expression`` rules are not: for data that keeps them, write a model module.
With several versions, ``options.v2_fraction`` of the events are of the newest one, the rest spread evenly.
"""

from __future__ import annotations

import logging
import random
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from jsonschema import Draft202012Validator

from lakehouse.config.specs import ENVELOPE, AllowedValuesRule, EventTypeSpec, NotNullRule, RangeRule, RegexRule
from lakehouse.kafka.errors import GeneratorError
from lakehouse.kafka.generator.base import DAY_MS, GeneratorOptions, Model, iso, read_reference
from lakehouse.kafka.generator.numbers import NumericRange, numeric_range
from lakehouse.kafka.generator.patterns import UnsupportedError, string_maker

log = logging.getLogger(__name__)

OPTIONAL_ABSENT = 0.3
NULL_SHARE = 0.2
_ANNOTATIONS = {"title", "description", "$comment", "examples", "default", "deprecated", "readOnly", "writeOnly"}
_KEYWORDS = {"type", "enum", "const", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}
_KEYWORDS |= {"minLength", "maxLength", "pattern", "format"}
_TOP_LEVEL = {"$schema", "$id", "$comment", "title", "description", "type", "required", "properties"}
_TOP_LEVEL |= {"additionalProperties", "unevaluatedProperties", "examples"}
_STRING_POOL = 20
_WRONG_FOR_NUMBERS = ("abc", "12,50", "n/a")

Make = Callable[[str, int], Any]  # (tenant, event epoch ms) -> value


@dataclass(frozen=True)
class _Field:
    name: str
    make: Make
    required: bool
    nullable: bool  # the model sometimes makes it null
    json_type: str | None  # the declared JSON type other than null (the first, if several)
    single_type: bool  # one JSON type other than null: a value of another type breaks it
    null_valid: bool  # the contract accepts null
    numeric: NumericRange | None = None
    rule_null: bool = False  # a not_null rule the contract does not enforce: null breaks the rule only


@dataclass
class _Layout:
    version: int
    kinds: list[str]
    fields: list[_Field] = field(default_factory=list)


class GenericModel(Model):
    """Contract-valid events of any event type (see the module's docstring for what each keyword gives)."""

    unknown_event_types = ("UNKNOWN_EVENT_TYPE",)

    def __init__(self, spec: EventTypeSpec, options: GeneratorOptions, rng: random.Random) -> None:
        super().__init__(spec, options, rng)
        self.rules_kept: set[str] = set()
        problems: list[str] = []
        self.layouts = {version: self._layout(version, problems) for version in spec.versions}
        if problems:
            raise GeneratorError(
                f"cannot generate {spec.name!r} events from its contracts:\n  - "
                + "\n  - ".join(problems)
                + f"\nfix the contract, or write a model module for {spec.name!r} (kafka/generator/{spec.name}.py, "
                "added to MODELS in kafka/generator/registry.py; see docs/onboarding.md)"
            )
        ignored = [rule.name for rule in spec.quality_rules if rule.name not in self.rules_kept]
        if ignored:
            log.info(
                "%s: the generic generator does not keep the quality rule(s) %s: some clean events may break them "
                "(a model module can keep them, see docs/onboarding.md)",
                spec.source_file,
                ignored,
            )
        self.supports = {
            fault: [v for v, layout in self.layouts.items() if self._candidates(fault, layout)]
            for fault in ("wrong_type", "null_required", "out_of_range", "rule_break")
        }
        self.invalid_faults = (*(f for f, versions in self.supports.items() if versions), "future_timestamp")

    def clean(self, tenant: str, ms: int, ts: str, remember: bool, version: int | None = None) -> dict[str, Any]:
        """A contract-valid event (of ``version``, else of a random one)."""
        layout = self.layouts[version if version is not None else self._version()]
        rand = self.rng.random
        kinds = layout.kinds
        kind = kinds[0] if len(kinds) == 1 else kinds[int(rand() * len(kinds))]
        event = self.envelope(kind, layout.version, tenant, ts)
        for f in layout.fields:
            if not f.required and rand() < OPTIONAL_ABSENT:
                continue
            event[f.name] = None if f.nullable and rand() < NULL_SHARE else f.make(tenant, ms)
        return event

    def invalid(self, fault: str, tenant: str, ms: int, ts: str) -> dict[str, Any]:
        """A clean event with one field broken as ``fault`` says."""
        if fault == "future_timestamp":
            return super().invalid(fault, tenant, ms, ts)
        rng = self.rng
        version = self._version()
        if version not in self.supports[fault]:
            version = rng.choice(self.supports[fault])
        event = self.clean(tenant, ms, ts, False, version)
        target = rng.choice(self._candidates(fault, self.layouts[version]))
        if fault == "wrong_type":
            event[target.name] = rng.randint(1, 999) if target.json_type == "string" else rng.choice(_WRONG_FOR_NUMBERS)
        elif fault == "null_required":
            event[target.name] = None
        elif target.numeric is not None and fault == "out_of_range":
            r = target.numeric
            step = rng.randint(1, 10 * 10**r.scale)
            below = r.contract_low is not None and (r.contract_high is None or rng.random() < 0.5)
            units = r.contract_low - step if below and r.contract_low is not None else (r.contract_high or 0) + step
            event[target.name] = r.value(units)
        elif target.numeric is not None:  # rule_break by a value outside a range rule
            low, high = rng.choice(target.numeric.breaks_rule)
            event[target.name] = target.numeric.value(rng.randint(low, high))
        else:  # rule_break by a null where a not_null rule wants a value
            event[target.name] = None
        return event

    def latin1(self, event: dict[str, Any]) -> tuple[str, bytes]:
        """The tenant id, with a Latin-1 city name."""
        return "tenant_id", f"{event['tenant_id']}-Zürich".encode("latin-1")

    def _version(self) -> int:
        versions = self.spec.versions
        if len(versions) == 1:
            return versions[0]
        rand = self.rng.random
        if rand() < self.options.v2_fraction:
            return versions[-1]
        return versions[int(rand() * (len(versions) - 1))]

    @staticmethod
    def _candidates(fault: str, layout: _Layout) -> list[_Field]:
        """The fields of a version that can carry ``fault``."""
        fields = layout.fields
        if fault == "wrong_type":
            return [f for f in fields if f.single_type and f.json_type in ("string", "integer", "number", "boolean")]
        if fault == "null_required":
            return [f for f in fields if f.required and f.json_type and not f.null_valid]
        if fault == "out_of_range":
            return [
                f for f in fields if f.numeric and (f.numeric.contract_low, f.numeric.contract_high) != (None, None)
            ]
        return [f for f in fields if (f.numeric and f.numeric.breaks_rule) or f.rule_null]

    # building the layouts ------------------------------------------------------------------------------------

    def _layout(self, version: int, problems: list[str]) -> _Layout:
        spec = self.spec
        where = spec.config_root / spec.contracts[version]
        schema = spec.contract(version)
        problems += [
            f"{where}: top-level keyword {key!r} is beyond the generic generator"
            for key in schema
            if key not in _TOP_LEVEL and not key.startswith("x-")
        ]
        properties: dict[str, Any] = schema.get("properties", {})
        required = set(schema.get("required", []))
        layout = _Layout(version, self._kinds(properties.get("event_type", {})))
        if not layout.kinds:
            problems.append(
                f"{where}: properties.event_type: the contract allows none of the event types {spec.event_types} "
                f"of {spec.source_file}"
            )
        problems += self._envelope_problems(str(where), properties, version, layout.kinds)
        for name, prop in properties.items():
            if name in ENVELOPE:
                continue
            try:
                layout.fields.append(self._field(f"{where}: properties.{name}", name, prop, name in required))
            except UnsupportedError as exc:
                problems.append(f"{where}: properties.{name}: {exc}")
        return layout

    def _kinds(self, prop: dict[str, Any]) -> list[str]:
        allowed = prop.get("enum", [prop["const"]] if "const" in prop else None)
        return [kind for kind in self.spec.event_types if allowed is None or kind in allowed]

    def _envelope_problems(self, where: str, properties: dict[str, Any], version: int, kinds: list[str]) -> list[str]:
        """The envelope's values are the pipeline's: check once that the contract accepts what will be sent."""
        samples: dict[str, list[Any]] = {
            "event_id": ["00000000-0000-4000-8000-000000000000"],
            "event_type": kinds,
            "schema_version": [version],
            "tenant_id": self.tenants,
            "event_timestamp": [iso(int(self.options.start.timestamp() * 1000))],
        }
        problems = []
        for name, values in samples.items():
            schema = properties.get(name, {})
            validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
            for value in values:
                error = next(iter(validator.iter_errors(value)), None)
                if error is not None:
                    fix = " (choose tenant ids that fit it: --tenant-id)" if name == "tenant_id" else ""
                    problems.append(f"{where}: properties.{name}: the value {value!r} breaks it: {error.message}{fix}")
        return problems

    def _field(self, where: str, name: str, prop: dict[str, Any], required: bool) -> _Field:
        unknown = sorted(k for k in prop if k not in _KEYWORDS and k not in _ANNOTATIONS and not k.startswith("x-"))
        if unknown:
            raise UnsupportedError(f"keyword(s) {unknown} are beyond the generic generator")
        declared = prop.get("type")
        types = [declared] if isinstance(declared, str) else list(declared or [])
        not_null_types = [t for t in types if t != "null"]
        json_type = not_null_types[0] if not_null_types else None
        if json_type in ("object", "array"):
            raise UnsupportedError(f"type {json_type!r} is beyond the generic generator")
        spec = self.spec
        rules = [r for r in spec.quality_rules if getattr(r, "column", None) == name]
        has_not_null_rule = any(isinstance(r, NotNullRule) for r in rules)
        values = prop.get("enum")
        for rule in rules:
            if isinstance(rule, AllowedValuesRule):
                values = [v for v in values if v in rule.values] if values is not None else list(rule.values)
                self.rules_kept.add(rule.name)
            elif isinstance(rule, NotNullRule):
                self.rules_kept.add(rule.name)
        null_valid = "null" in types and (values is None or None in values) and prop.get("const") is None
        numeric = None
        if "const" not in prop and values is None and json_type in ("integer", "number"):
            range_rules = [r for r in rules if isinstance(r, RangeRule)]
            numeric = numeric_range(prop, json_type, range_rules)
            self.rules_kept.update(r.name for r in range_rules)
        if "const" in prop or values is not None or numeric is not None or json_type == "boolean" or types == ["null"]:
            make = self._value(prop, values, numeric, json_type)
        else:
            make = self._string(where, name, prop, [r for r in rules if isinstance(r, RegexRule)])
        not_null = has_not_null_rule or name in (spec.kafka_key, spec.dedup_key)
        return _Field(
            name,
            make,
            required=required or not_null,
            nullable=null_valid and not not_null,
            json_type=json_type,
            single_type=len(not_null_types) == 1,
            null_valid=null_valid,
            numeric=numeric,
            rule_null=null_valid and has_not_null_rule,
        )

    def _value(
        self, prop: dict[str, Any], values: list[Any] | None, numeric: NumericRange | None, json_type: str | None
    ) -> Make:
        """The ``const``, one of ``values``, a number of the range, a boolean, or null (type ``null``)."""
        rand = self.rng.random
        if "const" in prop:
            const = prop["const"]
            return lambda _t, _ms: const
        if values is not None:
            choices = [v for v in values if v is not None]
            if not choices:
                raise UnsupportedError("no value is allowed by both its enum and its allowed_values rule")
            return lambda _t, _ms: choices[int(rand() * len(choices))]
        if numeric is not None:
            low, high, value, randint = numeric.low, numeric.high, numeric.value, self.rng.randint
            return lambda _t, _ms: value(randint(low, high))
        if json_type == "boolean":
            return lambda _t, _ms: rand() < 0.5
        return lambda _t, _ms: None

    def _string(self, where: str, name: str, prop: dict[str, Any], rules: list[RegexRule]) -> Make:
        """A string of the property's format or pattern (or else of a simple regex rule on it), else a plain one;
        within minLength and maxLength."""
        rng = self.rng
        min_length, max_length = prop.get("minLength", 0), prop.get("maxLength")
        if max_length is not None and max_length < min_length:
            raise UnsupportedError(f"maxLength {max_length} < minLength {min_length}")
        fmt = prop.get("format")
        if fmt == "date-time":
            return lambda _t, ms: iso(ms - rng.randrange(2 * DAY_MS))
        if fmt == "date":
            return lambda _t, ms: f"{datetime.fromtimestamp((ms - rng.randrange(2 * DAY_MS)) / 1000, UTC):%Y-%m-%d}"
        if fmt == "uuid":
            return lambda _t, _ms: self.uuid4()
        if fmt is not None:
            raise UnsupportedError(f"format {fmt!r} is beyond the generic generator (it makes date-time, date, uuid)")
        pattern = prop.get("pattern")
        if pattern is None:
            pattern = next((r.pattern for r in rules if _makes_strings(r.pattern)), None)
            self.rules_kept.update(r.name for r in rules if r.pattern == pattern)
        if pattern is not None:
            return _sized_pattern(where, pattern, string_maker(pattern), rng, min_length, max_length)
        plain = self._plain_string(name)

        def sized(tenant: str, ms: int) -> str:
            value = plain(tenant, ms)
            if len(value) < min_length:
                value += "".join(rng.choices(string.ascii_lowercase, k=min_length - len(value)))
            return value if max_length is None else value[:max_length]

        return sized

    def _plain_string(self, name: str) -> Make:
        """A new id per event for the Kafka key, a reference value for an ``enrich`` key, else ``<name>_<n>``."""
        rng, spec = self.rng, self.spec
        if name in (spec.kafka_key, spec.dedup_key):
            stem, bits = name.removesuffix("_id"), rng.getrandbits
            return lambda _t, _ms: f"{stem}-{bits(48):012x}"
        return self._reference_values(name) or (lambda _t, _ms: f"{name}_{rng.randint(1, _STRING_POOL)}")

    def _reference_values(self, name: str) -> Make | None:
        """Values of the reference table an ``enrich`` entry joins on this field (the tenant's, where it has
        a ``tenant_id`` column and rows of the tenant)."""
        enrichment = next((e for e in self.spec.enrich if e.key == name), None)
        if enrichment is None:
            return None
        rows = read_reference(enrichment.reference)
        every = [row[name] for row in rows if row.get(name)]
        if not every:
            return None
        by_tenant = {
            t: [row[name] for row in rows if row.get("tenant_id") == t and row.get(name)] for t in self.tenants
        }
        rand = self.rng.random

        def pick(tenant: str, _ms: int) -> str:
            values = by_tenant.get(tenant) or every
            return values[int(rand() * len(values))]

        return pick


def _makes_strings(pattern: str) -> bool:
    try:
        string_maker(pattern)
    except UnsupportedError:
        return False
    return True


def _sized_pattern(
    where: str, pattern: str, maker: Callable[[random.Random], str], rng: random.Random, low: int, high: int | None
) -> Make:
    """Strings of the pattern within minLength/maxLength, drawn again until one fits."""

    def fits(value: str) -> bool:
        return low <= len(value) and (high is None or len(value) <= high)

    check = random.Random(1)
    if sum(fits(maker(check)) for _ in range(50)) < 10:
        raise UnsupportedError(f"strings of pattern {pattern!r} rarely fit minLength {low} / maxLength {high}")

    def make(_tenant: str, _ms: int) -> str:
        for _ in range(200):
            value = maker(rng)
            if fits(value):
                return value
        raise GeneratorError(f"{where}: 200 strings of pattern {pattern!r} in a row missed minLength/maxLength")

    return make
