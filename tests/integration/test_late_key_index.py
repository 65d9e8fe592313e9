"""The stream's index of Silver's keys on late events' dates (``spark/jobs/late_keys.py``), on a real Delta table,
in a classic session and over Spark Connect (where the stream's foreachBatch runs on serverless compute)."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import Observation

from lakehouse.config.settings import Settings
from lakehouse.spark.jobs import late_keys
from lakehouse.spark.jobs.late_keys import LateKeyIndex

pytestmark = pytest.mark.integration

D1, D2, D3 = date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)
SCHEMA = "event_id string, event_date date, _silver_batch string"
CLIENT = """
import sys
from lakehouse.config.settings import settings
from lakehouse.spark.session import connect_session
from tests.integration.test_late_key_index import exercise
spark = connect_session("late-key-index", settings())
assert type(spark).__module__.startswith("pyspark.sql.connect"), type(spark)
exercise(spark, sys.argv[1])
print("ran over Spark Connect")
"""


def _append(session: Any, table: str, rows: list[tuple[str, date, str]]) -> None:
    session.createDataFrame(rows, SCHEMA).write.format("delta").mode("append").partitionBy("event_date").save(table)


def _keys(frame: Any) -> set[tuple[str, date]]:
    return {(r["event_id"], r["event_date"]) for r in frame.collect()} if frame is not None else set()


def exercise(session: Any, table: str) -> None:
    """The index's whole life on an empty folder ``table``, in ``session``: asserts as it goes."""
    index = LateKeyIndex(table, "event_id", max_dates=2)
    assert index.keys(session, [D1], 6, "app:6") is None  # no Silver table yet

    _append(session, table, [("a1", D1, "app:1"), ("a2", D1, "app:1"), ("b1", D2, "app:1"), ("d1", D3, "app:1")])
    _append(session, table, [("c1", D1, "app:7")])  # written by an earlier attempt of batch 7
    index = LateKeyIndex(table, "event_id", max_dates=2)
    assert _keys(index.keys(session, [D1], 7, "app:7")) == {("a1", D1), ("a2", D1)}

    # held in memory: a row another writer adds to Silver is not seen ...
    _append(session, table, [("z9", D1, "other:1")])
    assert _keys(index.keys(session, [D1], 8, "app:8")) == {("a1", D1), ("a2", D1)}
    # ... but the keys a batch accepted on a held date are, once added
    accepted = session.createDataFrame([("e1", D1, "app:8"), ("f1", D3, "app:8")], SCHEMA)
    index.add(index.new_keys(accepted, [D1, D3]))
    assert _keys(index.keys(session, [D1], 9, "app:9")) == {("a1", D1), ("a2", D1), ("e1", D1)}
    assert index.new_keys(accepted, [D3]) is None  # D3 is not held

    # two more dates: D1, used longest ago, is forgotten, and read from Silver again when a late event needs it
    assert _keys(index.keys(session, [D2, D3], 10, "app:10")) == {("b1", D2), ("d1", D3)}
    assert index.dates == {D2, D3}
    assert _keys(index.keys(session, [D1], 11, "app:11")) == {("a1", D1), ("a2", D1), ("c1", D1), ("z9", D1)}
    assert index.dates == {D1, D3}

    # many batches' keys are merged into one frame, with the same keys
    for n in range(late_keys.MAX_PARTS + 1):
        index.add(index.new_keys(session.createDataFrame([(f"n{n}", D1, "app:12")], SCHEMA), [D1]))
    assert len(index._learnt) <= 2
    silver_d1 = {("a1", D1), ("a2", D1), ("c1", D1), ("z9", D1)}
    expected = silver_d1 | {(f"n{n}", D1) for n in range(late_keys.MAX_PARTS + 1)}
    assert _keys(index.keys(session, [D1], 13, "app:13")) == expected

    # the keys a Silver write adds on a held date, observed as it runs, held by the driver; none observed (a write
    # skipped as already committed) or too many: None, and the stream reads them from the batch's rows instead
    seen = Observation("learnt")
    written = session.createDataFrame([("o1", D1, "app:14"), ("o2", D2, "app:14")], SCHEMA)
    observed = [aggregate.alias(name) for name, aggregate in index.observed([D1]).items()]
    written.observe(seen, *observed).write.format("noop").mode("overwrite").save()
    index.add(index.from_observed(session, seen.get))
    assert _keys(index.keys(session, [D1], 14, "app:14")) == expected | {("o1", D1)}
    assert index.from_observed(session, {}) is None
    assert index.from_observed(session, {"rows": late_keys.FEW_KEYS + 1, "keys": []}) is None
    # narrowed to a batch's late keys: those of them the index holds
    assert _keys(index.keys(session, [D1], 13, "app:13", among=["a1", "n0", "x0"])) == {("a1", D1), ("n0", D1)}

    # no dates held: Silver is read in every batch
    direct = LateKeyIndex(table, "event_id", max_dates=0)
    assert _keys(direct.keys(session, [D1], 14, "app:14")) == {("a1", D1), ("a2", D1), ("c1", D1), ("z9", D1)}
    _append(session, table, [("z8", D1, "other:2")])
    assert ("z8", D1) in _keys(direct.keys(session, [D1], 15, "app:15"))
    assert _keys(direct.keys(session, [D1], 16, "app:16", among=["z8", "x0"])) == {("z8", D1)}
    assert direct.dates == set()


def test_the_index_reads_a_date_once_then_learns_keys_from_batches_and_forgets_the_oldest_date(
    spark: Any, tmp_path: Path
) -> None:
    exercise(spark, str(tmp_path / "silver"))


def test_a_lookup_runs_few_tasks_however_many_batches_the_index_learnt_from(spark: Any, tmp_path: Path) -> None:
    """A lookup runs a task per partition of the index's frames: their count stays bounded as batches are learnt
    and merged, although each batch's keys arrive in several partitions (one per dedup-state partition)."""
    table = str(tmp_path / "silver")
    _append(spark, table, [(f"s{n}", D1, "app:1") for n in range(50)])
    index = LateKeyIndex(table, "event_id", max_dates=2)
    learnt: set[tuple[str, date]] = set()
    for batch in range(2, 40):
        keys = index.keys(spark, [D1], batch, f"app:{batch}")
        assert keys is not None
        # at most: the keys read from Silver (4 partitions), a merged frame and the frames learnt since (one each)
        assert keys.rdd.getNumPartitions() <= 4 + 1 + 8, batch
        rows = [(f"b{batch}-{n}", D1, f"app:{batch}") for n in range(4)]
        accepted = spark.createDataFrame(rows, SCHEMA).repartition(4)
        index.add(index.new_keys(accepted, [D1]))
        learnt |= {(key, day) for key, day, _ in rows}
    assert _keys(index.keys(spark, [D1], 40, "app:40")) == {(f"s{n}", D1) for n in range(50)} | learnt


def test_the_index_over_spark_connect(spark_connect: Settings, tmp_path: Path) -> None:
    """As the stream's foreachBatch runs on a Spark Connect server: a client process of its own (this one has a
    classic session, which would give the functions module classic columns)."""
    run = subprocess.run(
        [sys.executable, "-c", CLIENT, str(tmp_path / "silver")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0 and "ran over Spark Connect" in run.stdout, (run.stdout + run.stderr)[-4000:]
