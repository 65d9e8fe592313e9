"""``lakehouse gold`` end to end as a user runs it: a separate process building, gating and loading one mart for
one day, as a Spark Connect client of the stack's server (``spark.deploy: connect``, the local default) and as a
spark-submit application of its own (``spark.deploy: spark-submit``)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from lakehouse.config.settings import Settings
from tests.silver_samples import EXPECTED_ROWS, EXPECTED_TOTALS, write_silver

pytestmark = pytest.mark.integration
LAKEHOUSE = str(Path(sys.executable).parent / "lakehouse")


@pytest.mark.parametrize(
    ("deploy", "marker"),
    [("connect", "(connect)"), ("spark-submit", "spark-submit lakehouse.spark.jobs.gold")],
    ids=["connect", "spark-submit"],
)
def test_gold_command_builds_gates_and_loads(
    isolated_serving: Settings, spark_connect: Settings, spark: Any, unique: str, deploy: str, marker: str
) -> None:
    env, tenant = isolated_serving, f"t-{unique}"
    day = date(2023, 6, 1) + timedelta(days=int(unique, 16) % 200)
    write_silver(spark, env, tenant, day)

    result = subprocess.run(
        [LAKEHOUSE, "gold", "fct_orders_daily", "--start", str(day), "--end", str(day + timedelta(days=1))],
        env={**os.environ, "LAKEHOUSE_SPARK_DEPLOY": deploy},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    assert marker in result.stderr, f"the job should have run with spark.deploy: {deploy}"
    with psycopg.connect(env.postgres_dsn()) as conn:
        row = conn.execute(
            "SELECT count(*), sum(gross_revenue) FROM serving.fct_orders_daily "
            "WHERE tenant_id = %s AND order_date = %s",
            (tenant, day),
        ).fetchone()
        gate = conn.execute(
            "SELECT problems, loaded_at IS NOT NULL FROM lakehouse_meta.gold_checks WHERE mart = 'fct_orders_daily'"
        ).fetchone()
    assert row == (EXPECTED_ROWS["fct_orders_daily"], EXPECTED_TOTALS["fct_orders_daily"][1])
    assert gate == ([], True)
