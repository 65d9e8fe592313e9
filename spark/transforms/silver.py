"""Silver transforms: Bronze rows -> typed events validated against the contract of their version, checked
against the event type's data-quality rules, deduplicated and enriched. Pure ``DataFrame -> DataFrame``."""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import Column, DataFrame, Observation, Window
from pyspark.sql import functions as F

from lakehouse.config.specs import (
    AllowedValuesRule,
    ContractField,
    EventTypeSpec,
    ExpressionRule,
    NotNullRule,
    QualityRule,
    RangeRule,
    RegexRule,
)
from lakehouse.ml.scoring import ModelVersion
from lakehouse.spark.transforms import sentiment
from lakehouse.spark.transforms.bronze import BRONZE_COLUMNS, PARSED
from lakehouse.spark.transforms.literals import batch_value

BRONZE = "_bronze"
LINEAGE_COLUMNS = ("_kafka_topic", "_kafka_partition", "_kafka_offset", "_ingested_at")
QUARANTINE_SCHEMA = (
    "source string, event_id string, tenant_id string, event_type string, schema_version bigint, "
    "violations array<string>, value string, _kafka_topic string, _kafka_partition int, _kafka_offset long, "
    "_ingested_at timestamp, ingest_date date"
)
QUARANTINE_COLUMNS = (
    "source",
    "event_id",
    "tenant_id",
    "event_type",
    "schema_version",
    "violations",
    "value",
    "_kafka_topic",
    "_kafka_partition",
    "_kafka_offset",
    "_ingested_at",
    "ingest_date",
)
_INTEGER_TYPES = ("BIGINT", "INT", "SMALLINT", "TINYINT")
# joins the labels of a row's violations (no label holds a control character)
_LABEL_SEPARATOR = "\u0001"


def _no_labels() -> Column:
    return F.array().cast("array<string>")


def _violation(condition: Column, label: str) -> Column:
    """``label`` where ``condition`` holds, else null (also when the condition is null)."""
    return F.when(condition, F.lit(label))


def _labels(violations: list[Column]) -> Column:
    """The labels of every violation, in rule order: the non-null ones joined into one string, split again.
    ``array_compact`` (a lambda over the array) would make Spark evaluate every check row by row, outside its
    generated code: a fifth of the rules' time (docs/timings.md)."""
    if not violations:
        return _no_labels()
    joined = F.concat_ws(_LABEL_SEPARATOR, *violations)
    return F.when(joined == "", _no_labels()).otherwise(F.split(joined, _LABEL_SEPARATOR))


def _json_type_fits(json_type: Column, spark_type: str) -> Column:
    """Whether a JSON value of type ``json_type`` (as ``schema_of_variant`` names it) may fill a ``spark_type``
    field: strings and timestamps only from JSON strings, booleans from booleans, integers from numbers without a
    fraction, other types from any number."""
    if spark_type in ("string", "timestamp"):
        return json_type == "STRING"
    if spark_type == "boolean":
        return json_type == "BOOLEAN"
    decimal = json_type.startswith("DECIMAL(")
    if spark_type in ("bigint", "int"):
        return json_type.isin(*_INTEGER_TYPES) | (decimal & json_type.endswith(",0)"))
    return json_type.isin(*_INTEGER_TYPES, "DOUBLE", "FLOAT") | decimal


def _field_checks(field: ContractField, json_type: Column, typed: Column, version: Column) -> list[Column]:
    present = json_type.isNotNull() & (json_type != "VOID")
    in_version = version.isin(sorted(field.present_in))
    checks = [
        _violation(version.isin(sorted(field.required_in)) & ~present, f"contract.required:{field.name}")
        if field.required_in
        else None,
        _violation(
            in_version & present & (~_json_type_fits(json_type, field.spark_type) | typed.isNull()),
            f"contract.type:{field.name}",
        ),
        _violation(typed.isNotNull() & ~typed.isin(list(field.enum)), f"contract.enum:{field.name}")
        if field.enum
        else None,
        _violation(typed.isNotNull() & ~typed.rlike(java_pattern(field.pattern)), f"contract.pattern:{field.name}")
        if field.pattern
        else None,
        _violation(typed < F.lit(field.minimum), f"contract.minimum:{field.name}")
        if field.minimum is not None
        else None,
        _violation(typed > F.lit(field.maximum), f"contract.maximum:{field.name}")
        if field.maximum is not None
        else None,
        _violation(F.length(typed) < field.min_length, f"contract.minLength:{field.name}")
        if field.min_length
        else None,
    ]
    return [c for c in checks if c is not None]


def java_pattern(pattern: str) -> str:
    """A JSON Schema (ECMA-262) ``pattern`` as a Java regex for ``rlike``. ECMA's ``$`` ends the input; Java's
    also matches before a final line break, so ``^[A-Z]{3}$`` would take ``"USD\\n"``: an unescaped final ``$``
    becomes ``\\z``."""
    trailing_backslashes = len(pattern[:-1]) - len(pattern[:-1].rstrip("\\"))
    if pattern.endswith("$") and trailing_backslashes % 2 == 0:
        return pattern[:-1] + "\\z"
    return pattern


def _json_type(field: ContractField) -> str:
    return f"_json_type_{field.name}"


def _text_type(spark_type: str) -> str:
    """The type ``from_json`` reads a contract field as: the field's own, but text for timestamps (cast as Spark
    casts a string) and integers (JSON Schema takes ``3.0`` as an integer, which Spark's JSON reader refuses)."""
    return "string" if spark_type == "timestamp" or spark_type.upper() in _INTEGER_TYPES else spark_type


def _typed_from_text(value: Column, spark_type: str) -> Column:
    """A field as ``from_json`` read it (``_text_type``), in its contract type; null where it does not fit."""
    if _text_type(spark_type) == spark_type:
        return value
    if spark_type.upper() in _INTEGER_TYPES:
        value = value.try_cast("decimal(38,0)")
    return value.try_cast(spark_type)


def parse_events(bronze: DataFrame, spec: EventTypeSpec, *, carry_bronze: bool = False) -> DataFrame:
    """Accepted Bronze rows -> one typed column per contract field (null where the event's version lacks it),
    lineage columns, ``event_date`` and ``_violations`` (every contract rule the row breaks).

    The stream passes the rows ``bronze.classify(..., keep_parsed=True)`` returns, whose ``_parsed`` column holds
    the value already parsed; rows read back from a Bronze table are parsed here. With ``carry_bronze`` every row
    is kept, rejected ones too, with its Bronze columns in a ``_bronze`` struct (see ``bronze_rows``)."""
    variant = F.col(PARSED) if PARSED in bronze.columns else F.try_parse_json(F.col("value").cast("string"))
    version = F.col("schema_version").cast("int")
    carried = [F.struct(*BRONZE_COLUMNS).alias(BRONZE)] if carry_bronze else []
    rows = bronze if carry_bronze else bronze.where(F.col("error_class").isNull())
    # the contract's fields taken out of the object once, each as a variant of its own, for their JSON types: a
    # path lookup per field and per use costs more per row. The typed values come from from_json with the
    # contract's types, a second read of the text in the same projection: a cast out of the variant builds Spark
    # expressions for every row and field, which took a third of the rules' time (docs/timings.md)
    field_variants = ", ".join(f"`{field.name}`: variant" for field in spec.fields)
    field_texts = ", ".join(f"`{field.name}`: {_text_type(field.spark_type)}" for field in spec.fields)
    base = rows.select(
        *carried,
        F.col("value").alias("_raw_value"),
        F.try_variant_get(variant, "$", f"struct<{field_variants}>").alias("_s"),
        # a dead letter (oversized, not JSON, too deeply nested, ...) is not read again
        F.when(
            F.col("error_class").isNull(), F.from_json(F.col("value").cast("string"), f"struct<{field_texts}>")
        ).alias("_text"),
        version.alias("_version"),
        F.col("topic").alias("_kafka_topic"),
        F.col("partition").alias("_kafka_partition"),
        F.col("offset").alias("_kafka_offset"),
        F.col("ingested_at").alias("_ingested_at"),
        F.col("ingest_date"),
    )
    typed_columns: list[Column] = []
    json_types: list[Column] = []
    for field in spec.fields:
        typed_columns.append(
            F.when(
                F.col("_version").isin(sorted(field.present_in)),
                _typed_from_text(F.col("_text").getField(field.name), field.spark_type),
            ).alias(field.name)
        )
        json_types.append(F.schema_of_variant(F.col("_s").getField(field.name)).alias(_json_type(field)))
    # typed values and JSON types in their own projection: Spark then computes each once per row, rather than
    # once per check that reads it
    fields = base.select("*", *typed_columns, *json_types)
    checks = [
        check
        for field in spec.fields
        for check in _field_checks(field, F.col(_json_type(field)), F.col(field.name), F.col("_version"))
    ]
    violations = _labels(checks)
    return fields.select(
        # the carried Bronze row holds the raw value already (candidate_events takes it from there)
        *([F.col(BRONZE)] if carry_bronze else [F.col("_raw_value")]),
        *[F.col(field.name) for field in spec.fields],
        *LINEAGE_COLUMNS,
        F.col("ingest_date"),
        violations.alias("_violations"),
    ).withColumn("event_date", F.to_date("event_timestamp"))


def bronze_rows(events: DataFrame) -> DataFrame:
    """The Bronze rows carried by ``parse_events(..., carry_bronze=True)``."""
    return events.select(f"{BRONZE}.*")


def candidate_events(events: DataFrame) -> DataFrame:
    """The rows of ``parse_events(..., carry_bronze=True)`` that are events (not dead letters), as
    ``parse_events`` returns them without ``carry_bronze``."""
    return (
        events.where(F.col(f"{BRONZE}.error_class").isNull())
        .withColumn("_raw_value", F.col(f"{BRONZE}.value"))
        .drop(BRONZE)
    )


def is_accepted_row() -> Column:
    """True for a row of ``parse_events(..., carry_bronze=True)`` that goes to Silver: an event breaking no rule."""
    return F.col(f"{BRONZE}.error_class").isNull() & (F.size("_violations") == 0)


def _rule_failure(rule: QualityRule) -> Column:
    if isinstance(rule, RangeRule):
        col = F.col(rule.column)
        low = col < F.lit(rule.min) if rule.min is not None else F.lit(False)
        high = col > F.lit(rule.max) if rule.max is not None else F.lit(False)
        return F.coalesce(low | high, F.lit(False))
    if isinstance(rule, NotNullRule):
        return F.col(rule.column).isNull()
    if isinstance(rule, AllowedValuesRule):
        return F.coalesce(~F.col(rule.column).isin(rule.values), F.lit(False))
    if isinstance(rule, RegexRule):
        return F.coalesce(~F.col(rule.column).rlike(rule.pattern), F.lit(False))
    if isinstance(rule, ExpressionRule):
        # a rule that cannot be evaluated (null inputs) counts as failed
        return ~F.coalesce(F.expr(rule.expression), F.lit(False))
    raise TypeError(f"unknown rule type {type(rule).__name__}")


def apply_quality_rules(events: DataFrame, spec: EventTypeSpec) -> DataFrame:
    """Append the name of every failed data-quality rule to ``_violations`` (rows with contract violations
    are not checked further: their typed values are not trustworthy)."""
    if not spec.quality_rules:
        return events
    dq = _labels([_violation(_rule_failure(rule), f"dq:{rule.name}") for rule in spec.quality_rules])
    return events.withColumn("_violations", F.when(F.size("_violations") > 0, F.col("_violations")).otherwise(dq))


def quarantined(events: DataFrame, source: str) -> DataFrame:
    """Rows with at least one violation, in the shared quarantine table's layout (raw value kept for replay)."""
    return events.where(F.size("_violations") > 0).select(
        F.lit(source).alias("source"),
        F.col("event_id"),
        F.col("tenant_id"),
        F.col("event_type"),
        F.col("schema_version"),
        F.col("_violations").alias("violations"),
        F.col("_raw_value").cast("string").alias("value"),
        *LINEAGE_COLUMNS,
        F.col("ingest_date"),
    )


# the checking columns of a parsed event that Silver does not keep
CHECK_COLUMNS = ("_violations", "_raw_value", "ingest_date")
# the order in which the stream saw the copies of an event (see first_per_key)
ARRIVAL_ORDER = ("_ingested_at", "_kafka_partition", "_kafka_offset")


def accepted(events: DataFrame) -> DataFrame:
    """Rows without violations, without the raw value and the violations column."""
    return events.where(F.size("_violations") == 0).drop(*CHECK_COLUMNS)


def first_per_key(events: DataFrame, key: str) -> DataFrame:
    """One row per ``key`` and ``event_date``: the first to arrive, in ingest then Kafka order (``_ingested_at``,
    partition, offset). The stream stamps one ``_ingested_at`` per micro-batch, so this is the order in which the
    stream saw the copies, and a rebuild from Bronze keeps the same copy; deterministic on replay."""
    order = Window.partitionBy(key, "event_date").orderBy(*ARRIVAL_ORDER)
    return events.withColumn("_rank", F.row_number().over(order)).where("_rank = 1").drop("_rank")


def not_already_in(events: DataFrame, existing: DataFrame, key: str) -> DataFrame:
    """Rows whose ``key`` and ``event_date`` are absent from ``existing`` (cross-batch deduplication)."""
    return events.join(existing.select(key, "event_date").distinct(), on=[key, "event_date"], how="left_anti")


def silver_rows(
    events: DataFrame,
    spec: EventTypeSpec,
    references: Mapping[str, DataFrame],
    batch_tag: str,
    model: ModelVersion | None = None,
    scoring_timing: Observation | None = None,
) -> DataFrame:
    """Deduplicated events as Silver stores them: enriched, scored by the sentiment ``model`` where the event type
    has ``sentiment`` scoring (``scoring_timing`` observes how long that took), stamped with the batch that wrote
    them (``_silver_batch``) and the time (``_processed_at``)."""
    rows = enrich(events, spec, references)
    if spec.sentiment is not None:
        rows = sentiment.scored(rows, spec.sentiment, model, scoring_timing)
    return rows.withColumns({"_silver_batch": F.lit(batch_tag), "_processed_at": batch_value(F.current_timestamp())})


def enrich(events: DataFrame, spec: EventTypeSpec, references: Mapping[str, DataFrame]) -> DataFrame:
    """Left-join the current reference rows; a missing reference row leaves the added columns null and
    ``_enriched`` false (Gold joins its dimensions again at build time, so late reference data is picked up)."""
    enriched = events
    matched: list[Column] = []
    for join in spec.enrich:
        ref = references[join.reference]
        flag = f"_has_{join.reference}"
        columns = [F.col(c).alias(f"{join.prefix}{c}") for c in join.columns]
        ref_side = ref.select(F.col(join.key), *columns, F.lit(True).alias(flag))
        enriched = enriched.join(F.broadcast(ref_side), on=join.key, how="left")
        matched.append(F.coalesce(F.col(flag), F.lit(False)))
    if not matched:
        return enriched.withColumn("_enriched", F.lit(True))
    all_matched = matched[0]
    for flag_col in matched[1:]:
        all_matched = all_matched & flag_col
    return enriched.withColumn("_enriched", all_matched).drop(*[f"_has_{j.reference}" for j in spec.enrich])
