"""Idempotent Delta writes: the checkpoint's app id is stable, a replayed batch is written once, a MERGE of the same
rows changes nothing, a write refused for a concurrent commit is retried."""

from __future__ import annotations

import json
import pickle
import threading
import time
from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakehouse.spark.io.delta import (
    AppendLedger,
    append_once,
    checkpoint_app_id,
    checkpoint_app_id_and_is_new,
    ensure_table,
    merge_rows,
    replace_range,
)


def test_checkpoint_app_id_is_stable_per_checkpoint(spark: SparkSession, tmp_path: Path) -> None:
    first = checkpoint_app_id(spark, str(tmp_path / "chk_a"))
    assert checkpoint_app_id(spark, str(tmp_path / "chk_a")) == first
    assert checkpoint_app_id(spark, str(tmp_path / "chk_b")) != first


def test_only_the_start_that_creates_a_checkpoints_app_id_calls_it_new(spark: SparkSession, tmp_path: Path) -> None:
    app_id, new = checkpoint_app_id_and_is_new(spark, str(tmp_path / "chk"))
    assert new
    assert checkpoint_app_id_and_is_new(spark, str(tmp_path / "chk")) == (app_id, False)


def _txn_actions(path: str) -> list[dict[str, object]]:
    """The ``txn`` actions (Delta's own transaction ids) in the table's commit files."""
    actions = []
    for commit in sorted(Path(path, "_delta_log").glob("*.json")):
        actions += [a["txn"] for a in map(json.loads, commit.read_text().splitlines()) if "txn" in a]
    return actions


def test_a_new_app_ids_appends_look_up_nothing_and_still_skip_a_replay_of_their_run(
    spark: SparkSession, tmp_path: Path
) -> None:
    """A ledger told that its app id is new (the start created it) trusts that no commit names it or an id derived
    from it: its appends neither read the table's history nor hand Delta a transaction id to check."""
    path = str(tmp_path / "t")
    batch = spark.createDataFrame([(1, "a"), (2, "b")], "id int, v string")
    ledger = AppendLedger(new_app_id="app-1")
    assert ledger.last(spark, path, "app-1") == ledger.last(spark, path, "app-1:orders") == -1, "no table yet either"
    assert append_once(batch, path, "app-1", 0, ledger=ledger) == 2
    assert append_once(batch, path, "app-1:orders", 0, ledger=ledger) == 2
    assert append_once(batch, path, "app-1", 0, ledger=ledger) is None, "a batch Spark runs again in the same run"
    assert append_once(batch, path, "app-10", 0, ledger=ledger) == 2, "another id is looked up as before"
    assert append_once(batch, path, "app-10", 0, ledger=ledger) is None
    assert [(txn["appId"], txn["version"]) for txn in _txn_actions(path)] == [("app-10", 0)]
    # the trust is the ledger's alone: a later run, which does not call the id new, finds the run's batches
    assert append_once(batch, path, "app-1", 0, ledger=AppendLedger()) is None
    assert append_once(batch, path, "app-1:orders", 0, ledger=AppendLedger()) is None
    assert spark.read.format("delta").load(path).count() == 6


def test_a_replayed_batch_is_appended_once(spark: SparkSession, tmp_path: Path) -> None:
    path = str(tmp_path / "t")
    batch = spark.createDataFrame([(1, "a"), (2, "b"), (3, "c")], "id int, v string").where("id < 3")
    assert append_once(batch, path, "app-1", 0) == 2, "the rows appended are counted while writing"
    assert append_once(batch, path, "app-1", 0) is None, "the same batch again, as after a crash: skipped"
    assert append_once(batch, path, "app-1", 1) == 2
    assert append_once(batch, path, "app-2", 0) == 2, "a new checkpoint restarts batch ids at 0"
    assert spark.read.format("delta").load(path).count() == 6


def test_a_run_ledger_skips_what_an_earlier_run_committed_and_looks_back_past_other_writers(
    spark: SparkSession, tmp_path: Path
) -> None:
    path = str(tmp_path / "t")
    batch = spark.createDataFrame([(1, "a"), (2, "b")], "id int, v string")
    first_run = AppendLedger()
    for version in range(3):
        assert append_once(batch, path, "app-1", version, ledger=first_run) == 2
    # a shared table: another checkpoint's batches land after the first run's last one
    other = AppendLedger()
    for version in range(25):
        assert append_once(batch.limit(1), path, "app-2", version, ledger=other) == 1
    # the next run of app-1 starts by replaying its last batch, which was committed without Delta's transaction id
    second_run = AppendLedger()
    assert append_once(batch, path, "app-1", 2, ledger=second_run) is None
    assert append_once(batch, path, "app-1", 3, ledger=second_run) == 2
    assert append_once(batch, path, "app-1", 3, ledger=AppendLedger()) is None
    assert spark.read.format("delta").load(path).count() == 4 * 2 + 25
    history = spark.sql(f"DESCRIBE HISTORY delta.`{path}`").select("userMetadata").collect()
    marks = [json.loads(m) for (m,) in history if m]
    assert sorted(m["txn_version"] for m in marks if m["txn_app_id"] == "app-1") == [0, 1, 2, 3]


def test_a_local_tables_commits_are_read_as_describe_history_gives_them(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The look-up of an app id's last batch reads a local table's commit files; Delta's own history is the
    oracle, and the look-up through ``DESCRIBE HISTORY`` (a table on object storage) finds the same batches."""
    from lakehouse.spark.io import delta

    path = str(tmp_path / "t")
    batch = spark.createDataFrame([(1, "a")], "id int, v string")
    assert list(delta._local_commit_metadata(path) or ["not local"]) == [], "no table yet: no commit"
    for version in range(12):  # past Delta's checkpoint at version 10
        append_once(batch, path, "app-1" if version % 3 else "app-2", version, tags={"n": version})
    batch.write.format("delta").mode("append").save(path)  # a writer that names no batch
    history = [m for (m,) in spark.sql(f"DESCRIBE HISTORY delta.`{path}`").select("userMetadata").collect()]
    assert list(delta._local_commit_metadata(path) or []) == history
    found = {app: delta.marked_version(spark, path, app) for app in ("app-1", "app-2", "app-3")}
    assert found == {"app-1": 11, "app-2": 9, "app-3": None}
    monkeypatch.setattr(delta, "_local_commit_metadata", lambda table: None)
    assert {app: delta.marked_version(spark, path, app) for app in found} == found
    assert delta.marked_version(spark, str(tmp_path / "none"), "app-1") is None


def test_a_run_ledger_travels_pickled_as_a_spark_connect_handler_does(spark: SparkSession, tmp_path: Path) -> None:
    path = str(tmp_path / "t")
    ledger = AppendLedger()
    assert append_once(spark.createDataFrame([(1, "a")], "id int, v string"), path, "app-1", 0, ledger=ledger) == 1
    copy = pickle.loads(pickle.dumps(ledger))
    assert copy.last(spark, path, "app-1") == 0
    assert pickle.loads(pickle.dumps(AppendLedger(new_app_id="app-3"))).last(spark, path, "app-3:orders") == -1
    assert append_once(spark.createDataFrame([(2, "b")], "id int, v string"), path, "app-1", 0, ledger=copy) is None


def test_a_run_ledger_leaves_tables_written_before_commits_named_their_batch_to_delta(
    spark: SparkSession, tmp_path: Path
) -> None:
    path = str(tmp_path / "t")
    batch = spark.createDataFrame([(1, "a")], "id int, v string")
    writer = batch.write.format("delta").mode("append").option("txnAppId", "app-1")
    writer.option("txnVersion", "0").save(path)  # as the stream wrote before: Delta's transaction id only
    assert append_once(batch, path, "app-1", 0, ledger=AppendLedger()) is None
    assert append_once(batch, path, "app-1", 1, ledger=AppendLedger()) == 1
    assert spark.read.format("delta").load(path).count() == 2


def test_replace_range_rewrites_only_its_interval(spark: SparkSession, tmp_path: Path) -> None:
    path = str(tmp_path / "g")
    rows = [("2026-11-19", 1), ("2026-11-20", 2), ("2026-11-21", 3)]
    spark.createDataFrame(rows, "d string, n int").selectExpr("to_date(d) d", "n").write.format("delta").save(path)
    new = spark.createDataFrame([("2026-11-20", 20)], "d string, n int").selectExpr("to_date(d) d", "n")
    replace_range(new, path, "d", "2026-11-20", "2026-11-21")
    replace_range(new, path, "d", "2026-11-20", "2026-11-21")
    got = sorted((str(r["d"]), r["n"]) for r in spark.read.format("delta").load(path).collect())
    assert got == [("2026-11-19", 1), ("2026-11-20", 20), ("2026-11-21", 3)]


def test_ensure_table_recovers_from_a_creation_killed_before_its_first_commit(
    spark: SparkSession, tmp_path: Path
) -> None:
    """A process killed while creating a table leaves an empty _delta_log folder; the next start must create the
    table instead of failing on it for ever (seen in the streaming SIGKILL test)."""
    path = tmp_path / "bronze"
    (path / "_delta_log").mkdir(parents=True)
    ensure_table(spark, str(path), "id bigint, day date", ("day",))
    ensure_table(spark, str(path), "id bigint, day date", ("day",))
    table = spark.read.format("delta").load(str(path))
    assert table.schema.simpleString() == "struct<id:bigint,day:date>"
    assert table.count() == 0
    assert sorted(p.name for p in (path / "_delta_log").glob("*.json")) == ["00000000000000000000.json"]


def test_merge_rows_inserts_updates_and_never_lowers(spark: SparkSession, tmp_path: Path) -> None:
    path = str(tmp_path / "m")
    schema = "d date, k string, n bigint, v string"
    day, other = date(2026, 11, 20), date(2026, 11, 21)
    spark.createDataFrame([(day, "a", 5, "x"), (day, "b", 5, "x"), (other, "a", 1, "x")], schema).write.format(
        "delta"
    ).partitionBy("d").save(path)
    rows = spark.createDataFrame([(day, "a", 6, "y"), (day, "b", 4, "y"), (day, "c", 1, "y")], schema)
    for _ in range(2):  # the same rows again (a replayed batch) change nothing
        merge_rows(rows, path, ["d", "k"], "d", [day], never_lower=["n"])
        got = sorted(tuple(r) for r in spark.read.format("delta").load(path).collect())
        assert got == [(day, "a", 6, "y"), (day, "b", 5, "x"), (day, "c", 1, "y"), (other, "a", 1, "x")]


def test_a_delta_write_refused_for_a_concurrent_commit_is_retried(
    spark: SparkSession, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """replace_range while another writer commits to the same partition (a streaming MERGE during the daily
    build): Delta refuses the first commit, the replacement is computed and written again."""
    path = str(tmp_path / "r")
    day = date(2026, 11, 20)
    spark.createDataFrame([(day, 1)], "d date, n int").write.format("delta").partitionBy("d").save(path)
    slow = F.udf(lambda n: time.sleep(4) or n, "int")  # the build's query runs while the other writer commits
    replacement = spark.createDataFrame([(day, 2)], "d date, n int").select("d", slow("n").alias("n"))
    build = threading.Thread(target=replace_range, args=(replacement, path, "d", "2026-11-20", "2026-11-21", ("d",)))
    build.start()
    time.sleep(1.5)
    spark.createDataFrame([(day, 3)], "d date, n int").write.format("delta").mode("append").save(path)
    build.join()
    assert [tuple(r) for r in spark.read.format("delta").load(path).collect()] == [(day, 2)]
    assert any("a concurrent commit conflicted" in r.getMessage() for r in caplog.records)
