"""Silver's keys on the event dates of late events, kept in memory by a running stream query.

An event at or before the dedup watermark ("late") may be a copy of one the query's state has forgotten, so its batch
checks it against Silver's keys on its own event date. Read from Silver in every batch, that check makes Delta
rebuild the table's state for the version the batch before committed: seconds of a small batch on two cores, and
more as Silver's file list grows (docs/timings.md).

The index reads a date's keys from Silver once, the first time a batch has a late event on it, and then adds the
keys of the rows a batch writes to Silver on an indexed date, once that batch's Silver commit is done (an event it
accepts there and leaves out is a copy of a row Silver, and so the index, held already). So the index holds Silver's
keys on its dates as long as the query is the only writer that adds or removes Silver keys while it runs, which its
dedup state assumes too: the rebuild job runs with the stream stopped, and rescoring or compaction rewrite rows
without changing their keys. A restarted query reads the dates again.

The keys a batch adds are gathered by its Silver write (observed aggregates, so no job of their own) and held by the
driver as a small frame; when a batch adds many, or its write was skipped as already committed, they are read from
its rows instead. The frames read from Silver, and merges, are local checkpoints: held by the executors' block
managers, without lineage, so a batch reads them from memory and never runs the micro-batch that produced them
again. Each is kept in few partitions: a checkpoint keeps
the partitions of what it was made from (a batch's keys came in a partition per dedup-state partition, and a merge of
frames would add up their partitions), and every job over the index (a merge; the lookup, which reads them all in one
task) walks each of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from functools import reduce
from typing import cast

from pyspark.sql import Column, DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DateType, StringType, StructField, StructType

from lakehouse.spark.io.delta import Table, read_table

# frames of keys learnt from batches kept before they are merged into one (the keys read from Silver are merged only
# when a date is forgotten, so a merge copies few keys)
MAX_PARTS = 8
# partitions of a frame of keys read from Silver (a batch's learnt keys, a few late events, are kept in one)
READ_PARTITIONS = 4
# at most this many keys of a batch (its late events', or those it adds on the held dates) go through the driver
FEW_KEYS = 10_000


class LateKeyIndex:
    """Silver's keys (``key`` as a string, and ``event_date``) on at most ``max_dates`` event dates, the ones late
    events met most recently; ``max_dates`` 0 reads Silver in every batch instead."""

    def __init__(self, table: Table, key: str, max_dates: int) -> None:
        self.table = table
        self.key = key
        self.max_dates = max_dates
        # the dates' keys as read from Silver, and those learnt from batches since (merged when they are many)
        self._read: list[DataFrame] = []
        self._learnt: list[DataFrame] = []
        self._last_used: dict[date, int] = {}

    @property
    def dates(self) -> set[date]:
        """The event dates whose keys the index holds."""
        return set(self._last_used)

    def keys(
        self,
        spark: SparkSession,
        dates: list[date],
        batch_id: int,
        batch_tag: str,
        among: Sequence[str] | None = None,
    ) -> DataFrame | None:
        """Silver's keys on ``dates``, without the rows of ``batch_tag`` (an earlier attempt of this batch), or None
        when Silver has no table yet. Dates the index does not hold yet are read from Silver now.

        With ``among`` (a batch's late keys) of at most ``FEW_KEYS``, only those of Silver's keys, marked to be
        broadcast: the lookup then reads the index once and builds no hash table of every key it holds."""
        if not dates:
            return None
        if self.max_dates == 0:
            return _among(self._from_silver(spark, dates, batch_tag), self.key, among)
        missing = [day for day in dates if day not in self._last_used]
        if missing:
            loaded = self._from_silver(spark, missing, batch_tag)
            if loaded is not None:
                self._read.append(loaded.coalesce(READ_PARTITIONS).localCheckpoint())
        for day in dates:
            self._last_used[day] = batch_id
        self._evict(keep=len(dates))
        parts = self._read + self._learnt
        if not parts:
            return None
        return _among(_union(parts).where(F.col("event_date").isin(dates)), self.key, among)

    def new_keys(self, accepted: DataFrame, dates: Iterable[date]) -> DataFrame | None:
        """The keys of a batch's ``accepted`` events on those of ``dates`` the index holds, read now (a job), to
        ``add`` once the batch's Silver commit is done; None when the index holds none of the dates."""
        held = sorted(set(dates) & set(self._last_used))
        if not held:
            return None
        return _key_columns(accepted.where(F.col("event_date").isin(held)), self.key).coalesce(1).localCheckpoint()

    def observed(self, dates: Sequence[date]) -> dict[str, Column]:
        """Aggregates that gather the keys of a batch's Silver rows on ``dates`` (the held ones among the batch's) as
        they are written; ``from_observed`` turns their values into the frame ``new_keys`` would read."""
        on_dates = F.col("event_date").isin(list(dates))
        key = F.struct(F.col(self.key).cast("string").alias(self.key), F.col("event_date"))
        return {"rows": F.count(F.when(on_dates, 1)), "keys": F.collect_set(F.when(on_dates, key))}

    def from_observed(self, spark: SparkSession, values: dict[str, object]) -> DataFrame | None:
        """The keys ``observed`` gathered, as a frame held by the driver (no job), or None when none were observed
        (a write skipped as already committed) or too many (then read them with ``new_keys``)."""
        if not values or int(str(values["rows"])) > FEW_KEYS:
            return None
        schema = StructType([StructField(self.key, StringType()), StructField("event_date", DateType())])
        # one partition, as a frame new_keys reads (a classic session spreads a local list over its default parallelism)
        return spark.createDataFrame([tuple(row) for row in cast(list[Row], values["keys"])], schema).coalesce(1)

    def add(self, keys: DataFrame | None) -> None:
        """Hold ``keys`` (from ``new_keys``), now that they are in Silver."""
        if keys is None:
            return
        self._learnt.append(keys)
        if len(self._learnt) > MAX_PARTS:
            self._learnt = _merged(self._learnt, self._last_used, partitions=1)

    def _from_silver(self, spark: SparkSession, dates: list[date], batch_tag: str) -> DataFrame | None:
        table = read_table(spark, self.table)
        if table is None:
            return None
        rows = table.where(F.col("event_date").isin(dates) & (F.col("_silver_batch") != batch_tag))
        return _key_columns(rows, self.key)

    def _evict(self, keep: int) -> None:
        """Forget the dates used longest ago, down to ``max_dates`` (or ``keep``, the dates of the current batch)."""
        excess = len(self._last_used) - max(self.max_dates, keep)
        if excess <= 0:
            return
        for day in sorted(self._last_used, key=self._last_used.__getitem__)[:excess]:
            del self._last_used[day]
        self._read = _merged(self._read, self._last_used, READ_PARTITIONS)
        self._learnt = _merged(self._learnt, self._last_used, partitions=1)


def _merged(parts: list[DataFrame], dates: Iterable[date], partitions: int) -> list[DataFrame]:
    """``parts`` as one checkpointed frame of at most ``partitions`` partitions, with only the keys on ``dates``."""
    if not parts:
        return []
    return [_union(parts).where(F.col("event_date").isin(sorted(dates))).coalesce(partitions).localCheckpoint()]


def _among(keys: DataFrame | None, key: str, among: Sequence[str] | None) -> DataFrame | None:
    if keys is None or among is None or len(among) > FEW_KEYS:
        return keys
    return F.broadcast(keys.where(F.col(key).isin(list(among))))


def _key_columns(rows: DataFrame, key: str) -> DataFrame:
    return rows.select(F.col(key).cast("string").alias(key), "event_date")


def _union(parts: list[DataFrame]) -> DataFrame:
    return reduce(DataFrame.unionByName, parts)
