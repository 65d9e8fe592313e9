"""Bronze transforms: keep every Kafka message raw with its coordinates, and classify the ones that cannot
become events (they also go to the dead-letter table). Pure ``DataFrame -> DataFrame`` functions."""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.spark.transforms.literals import batch_value

BRONZE_COLUMNS = (
    "key",
    "value",
    "topic",
    "partition",
    "offset",
    "kafka_timestamp",
    "ingested_at",
    "ingest_date",
    "value_bytes",
    "event_type",
    "schema_version",
    "tenant_id",
    "error_class",
    "error_message",
)
BRONZE_SCHEMA = (
    "key string, value binary, topic string, partition int, offset long, kafka_timestamp timestamp, "
    "ingested_at timestamp, ingest_date date, value_bytes int, event_type string, schema_version string, "
    "tenant_id string, error_class string, error_message string"
)
PARSED = "_parsed"
# A JSON escape of NUL, or of a UTF-16 surrogate without its pair (as a Java regex; a backslash run of even length
# before ``\u`` is escaped backslashes, not an escape). Neither can be stored as text: PostgreSQL refuses NUL, and
# UTF-8 has no surrogates (the writer would silently put ``?`` in its place).
_ESCAPE = r"(?<!\\)(?:\\\\)*"
FORBIDDEN_ESCAPE = "|".join(
    (
        _ESCAPE + r"\\u0000",
        _ESCAPE + r"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})",
        _ESCAPE + r"(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}",
    )
)
# Deeper than any event a contract describes; a document nested deeper is built to hurt a parser. Spark's JSON
# reader refuses only past 1,000 levels, and a message 100 levels deep would otherwise land.
MAX_NESTING_DEPTH = 32
# a JSON string literal, unrolled with possessive loops so that a long string does not recurse per character
_JSON_STRING = r'"[^"\\]*+(?:\\.[^"\\]*+)*+"'
DEAD_LETTER_SCHEMA = (
    "topic string, partition int, offset long, key string, value binary, value_bytes int, error_class string, "
    "error_message string, kafka_timestamp timestamp, ingested_at timestamp, ingest_date date, source string"
)
DEAD_LETTER_COLUMNS = (
    "topic",
    "partition",
    "offset",
    "key",
    "value",
    "value_bytes",
    "error_class",
    "error_message",
    "kafka_timestamp",
    "ingested_at",
    "ingest_date",
)


def from_kafka(df: DataFrame, ingested_at: Column | None = None) -> DataFrame:
    """Kafka source rows -> raw Bronze rows: bytes untouched, coordinates kept, ingest time stamped."""
    stamp = ingested_at if ingested_at is not None else batch_value(F.current_timestamp())
    return df.select(
        F.col("key").cast("string").alias("key"),
        F.col("value"),
        F.col("topic"),
        F.col("partition"),
        F.col("offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        stamp.alias("ingested_at"),
    ).withColumn("ingest_date", F.to_date("ingested_at"))


def nesting_depth(text: Column) -> Column:
    """The deepest nesting of objects and arrays in a JSON text (brackets inside strings do not count)."""
    brackets = F.regexp_replace(F.regexp_replace(text, _JSON_STRING, ""), r"[^\[\]{}]", "")

    def step(acc: Column, bracket: Column) -> Column:
        depth = acc["depth"] + F.when(bracket.isin("[", "{"), 1).otherwise(-1)
        return F.struct(depth.alias("depth"), F.greatest(acc["deepest"], depth).alias("deepest"))

    start = F.struct(F.lit(0).alias("depth"), F.lit(0).alias("deepest"))
    return F.aggregate(F.split(brackets, ""), start, step, lambda acc: acc["deepest"])


def opening_brackets(text: Column) -> Column:
    """How many ``{`` and ``[`` a text holds (in strings too)."""
    without = F.replace(F.replace(text, F.lit("{"), F.lit("")), F.lit("["), F.lit(""))
    return F.octet_length(text) - F.octet_length(without)


def classify(
    df: DataFrame,
    event_types: Sequence[str],
    versions: Sequence[int],
    max_message_bytes: int,
    keep_parsed: bool = False,
    max_nesting_depth: int = MAX_NESTING_DEPTH,
) -> DataFrame:
    """Add envelope hints and, for a message that cannot be an event, ``error_class`` and ``error_message``.

    Classes, first match wins: EMPTY_VALUE, OVERSIZED, INVALID_UTF8, FORBIDDEN_CHARACTER (a NUL or unpaired surrogate
    escape; Spark's parser refuses the second as well, this names why), TOO_DEEPLY_NESTED (objects and arrays more
    than ``max_nesting_depth`` levels deep), NOT_A_JSON_OBJECT (malformed JSON or any
    other JSON value), UNKNOWN_EVENT_TYPE, UNKNOWN_SCHEMA_VERSION. A null ``error_class`` means: goes to Silver.
    With ``keep_parsed`` the parsed value stays in a ``_parsed`` variant column, for Silver to read rather than
    parse the JSON again.
    """
    text = F.col("value").cast("string")
    valid_utf8 = F.col("_valid_utf8")
    parsed = F.col("_parsed")
    # strict JSON (no single quotes, no duplicate keys) whose top level is an object: once the text parses, its
    # first character tells (reading the parsed value's type would walk the whole object)
    is_object = parsed.isNotNull() & text.rlike(r"^\s*\{")

    def envelope(field: str) -> Column:
        return F.expr(f"try_variant_get(_parsed, '$.{field}', 'string')")

    # read once per row, in a projection of their own: the checks below read each two or three times, and every read
    # is a path lookup in the parsed value that builds a Spark literal (and for a number, a cast)
    event_type = F.col("_event_type")
    version = F.col("_schema_version")
    size = F.coalesce(F.length("value"), F.lit(0))
    known_types = F.lit(list(event_types)) if event_types else F.array().cast("array<string>")
    known_versions = [str(v) for v in versions]
    error = (
        F.when(F.col("value").isNull(), F.struct(F.lit("EMPTY_VALUE"), F.lit("message has no value (tombstone)")))
        .when(
            size > max_message_bytes,
            F.struct(
                F.lit("OVERSIZED"),
                F.format_string(
                    "message is %d bytes; the limit for this event type is %d", size, F.lit(max_message_bytes)
                ),
            ),
        )
        .when(~valid_utf8, F.struct(F.lit("INVALID_UTF8"), F.lit("message value is not valid UTF-8")))
        .when(
            # most messages hold no escape at all: the regex runs only on those that do
            text.contains("\\u") & text.rlike(FORBIDDEN_ESCAPE),
            F.struct(
                F.lit("FORBIDDEN_CHARACTER"),
                F.lit("message holds a NUL (\\u0000) or an unpaired UTF-16 surrogate escape, which text cannot store"),
            ),
        )
        .when(
            # only a message with more opening brackets than the limit can be nested past it: the others skip the walk.
            # Counted by two plain replaces, cheaper per row than a regex split or translate (docs/timings.md)
            (opening_brackets(text) > max_nesting_depth) & (nesting_depth(text) > max_nesting_depth),
            F.struct(
                F.lit("TOO_DEEPLY_NESTED"),
                F.format_string(
                    "objects and arrays are nested %d levels deep; the limit is %d",
                    nesting_depth(text),
                    F.lit(max_nesting_depth),
                ),
            ),
        )
        .when(~is_object, F.struct(F.lit("NOT_A_JSON_OBJECT"), F.lit("message value is not a JSON object")))
        .when(
            event_type.isNull() | ~F.array_contains(known_types, event_type),
            F.struct(
                F.lit("UNKNOWN_EVENT_TYPE"),
                F.format_string(
                    "event_type %s is not one of %s",
                    F.coalesce(event_type, F.lit("<missing>")),
                    F.lit(", ".join(event_types)),
                ),
            ),
        )
        .when(
            version.isNull() | ~version.isin(known_versions),
            F.struct(
                F.lit("UNKNOWN_SCHEMA_VERSION"),
                F.format_string(
                    "schema_version %s is not one of %s",
                    F.coalesce(version, F.lit("<missing>")),
                    F.lit(", ".join(known_versions)),
                ),
            ),
        )
    )
    usable = valid_utf8 & (size <= max_message_bytes)
    return (
        # parsed and checked once, in their own projection, for every expression that reads them
        df.withColumn("_parsed", F.try_parse_json(text))
        .withColumn("_valid_utf8", F.expr("is_valid_utf8(value)"))
        .withColumns({"_event_type": envelope("event_type"), "_schema_version": envelope("schema_version")})
        .withColumn("_error", error)
        .withColumn("value_bytes", size)
        .withColumn("event_type", F.when(usable, event_type))
        .withColumn("schema_version", F.when(usable, version))
        .withColumn("tenant_id", F.when(usable, envelope("tenant_id")))
        .withColumn("error_class", F.col("_error").getField("col1"))
        .withColumn("error_message", F.col("_error").getField("col2"))
        .drop("_error", "_event_type", "_schema_version")
        .select(*BRONZE_COLUMNS, *([PARSED] if keep_parsed else []))
    )


def dead_letters(bronze: DataFrame) -> DataFrame:
    """The classified Bronze rows that cannot become events, with raw bytes, reason and coordinates."""
    return bronze.where(F.col("error_class").isNotNull()).select(*DEAD_LETTER_COLUMNS)
