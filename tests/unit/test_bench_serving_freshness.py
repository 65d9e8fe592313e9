"""The pure parts of the produce -> serving.order_revenue_5min benchmark: which Silver commit holds a batch's rows,
and when a revenue micro-batch first read a Silver version."""

from __future__ import annotations

import json
from pathlib import Path

from lakehouse.scripts.bench_serving import silver_versions, visible_at


def test_a_silver_version_is_visible_at_the_end_of_the_first_revenue_batch_that_read_it() -> None:
    # (Silver version range read, batch end in epoch ms), in no particular order; an empty batch read nothing
    batches = [([5, 7], 12_000.0), ([1, 3], 5_000.0), ([], 4_000.0), ([4, 4], 9_000.0)]
    assert visible_at(batches, {2, 4, 6, 9}) == {2: 5_000.0, 4: 9_000.0, 6: 12_000.0}


def test_silver_versions_come_from_the_commits_user_metadata(tmp_path: Path) -> None:
    log = tmp_path / "_delta_log"
    log.mkdir()

    def commit(version: int, user_metadata: str | None) -> None:
        info: dict[str, object] = {"timestamp": 1}
        if user_metadata is not None:
            info["userMetadata"] = user_metadata
        lines = [json.dumps({"commitInfo": info}), json.dumps({"add": {"path": "x.parquet"}})]
        (log / f"{version:020d}.json").write_text("\n".join(lines))

    commit(0, None)  # the table's creation
    commit(1, json.dumps({"query": "stream_orders", "app_id": "a", "batch_id": 0}))
    commit(2, "not json")
    commit(3, json.dumps({"query": "stream_orders", "app_id": "a", "batch_id": 1}))
    assert silver_versions(str(tmp_path)) == {"a:0": 1, "a:1": 3}
