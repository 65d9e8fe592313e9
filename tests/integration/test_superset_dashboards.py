"""The dashboards of config/dashboards/ in the stack's real Superset: imported at start once each with their charts
and one connection, not imported again while unchanged, re-imported without duplicates when changed; the Revenue and
Pipeline health charts answer, through their saved query contexts, what the rows inserted here add up to."""

from __future__ import annotations

import json
import re
import shutil
import urllib.parse
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from lakehouse.config.settings import config_dir
from lakehouse.scripts.errors import StackError
from lakehouse.scripts.superset_api import SupersetApi
from lakehouse.scripts.superset_dashboards import export_dashboards
from lakehouse.scripts.superset_server import SupersetServer
from tests.integration.test_superset import run_lakehouse

pytestmark = pytest.mark.integration
CONNECTION = "lakehouse serving"
BUNDLE = config_dir() / "dashboards"


def _load(kind: str) -> list[dict[str, Any]]:
    return [yaml.safe_load(p.read_text()) for p in sorted((BUNDLE / kind).rglob("*.yaml"))]


DASHBOARDS = {d["dashboard_title"]: d for d in _load("dashboards")}
CHARTS = {c["slice_name"]: c for c in _load("charts")}


def chart_uuids(dashboard: dict[str, Any]) -> set[str]:
    """The charts a dashboard's layout places."""
    return {v["meta"]["uuid"] for v in dashboard["position"].values() if isinstance(v, dict) and v["type"] == "CHART"}


def chart_id(superset_api: SupersetApi, uuid: str) -> int:
    """The id of the chart with ``uuid``."""
    query = urllib.parse.quote(f"(filters:!((col:uuid,opr:eq,value:'{uuid}')))")
    found = superset_api.request("GET", f"/api/v1/chart/?q={query}")["result"]
    assert len(found) == 1, found
    return int(found[0]["id"])


def _inventory(superset_api: SupersetApi) -> dict[str, Any]:
    """Each bundle dashboard's ids, changed_on and charts, and the connections called CONNECTION."""
    dashboards = {}
    for title, dashboard in DASHBOARDS.items():
        ids = superset_api.dashboard_ids(str(dashboard["uuid"]))
        shown = [superset_api.request("GET", f"/api/v1/dashboard/{i}")["result"] for i in ids]
        charts = [
            sorted(c["id"] for c in superset_api.request("GET", f"/api/v1/dashboard/{i}/charts")["result"]) for i in ids
        ]
        dashboards[title] = {"ids": ids, "changed_on": [s["changed_on"] for s in shown], "charts": charts}
    connections = [(d["id"], d["changed_on"]) for d in superset_api.databases(CONNECTION)]
    return {"dashboards": dashboards, "connections": connections}


def test_every_dashboard_is_imported_once_with_its_charts_and_one_connection(superset_api: SupersetApi) -> None:
    assert sorted(DASHBOARDS) == ["Customers", "Devices", "Pipeline health", "Revenue", "Reviews"]
    state = _inventory(superset_api)
    for title, dashboard in DASHBOARDS.items():
        found = state["dashboards"][title]
        assert len(found["ids"]) == 1, title
        assert len(found["charts"][0]) == len(chart_uuids(dashboard)), title
        shown = superset_api.request("GET", f"/api/v1/dashboard/{found['ids'][0]}")["result"]
        metadata = json.loads(shown["json_metadata"])
        filters = {f["filterType"] for f in metadata["native_filter_configuration"]}
        assert "filter_time" in filters, title
        assert ("filter_select" in filters) == (title != "Pipeline health"), title
    assert len(state["connections"]) == 1
    revenue = superset_api.request("GET", f"/api/v1/dashboard/{state['dashboards']['Revenue']['ids'][0]}")["result"]
    assert json.loads(revenue["json_metadata"])["refresh_frequency"] == 30
    # every chart's saved query answers
    for name, chart in CHARTS.items():
        answer = superset_api.request("GET", f"/api/v1/chart/{chart_id(superset_api, chart['uuid'])}/data/")
        assert answer["result"][0]["status"] == "success", name


def test_an_unchanged_bundle_is_not_imported_again_and_a_changed_one_duplicates_nothing(
    superset_server: SupersetServer, superset_api: SupersetApi
) -> None:
    before = _inventory(superset_api)
    assert superset_server.digest_file.is_file()
    assert superset_server.import_dashboards(superset_api) is False
    assert _inventory(superset_api) == before

    # another digest (as after an edit of config/dashboards/): imported again, over the same objects
    superset_server.digest_file.write_text("0" * 64 + "\n")
    assert superset_server.import_dashboards(superset_api) is True
    after = _inventory(superset_api)
    assert {t: (d["ids"], d["charts"]) for t, d in after["dashboards"].items()} == {
        t: (d["ids"], d["charts"]) for t, d in before["dashboards"].items()
    }
    assert [c[0] for c in after["connections"]] == [c[0] for c in before["connections"]]
    assert superset_server.import_dashboards(superset_api) is False


def test_an_edit_in_superset_survives_a_start_and_the_export_writes_the_bundle_back(
    superset_server: SupersetServer, superset_api: SupersetApi, tmp_path: Path
) -> None:
    # what a start with the same bundle finds: its dashboards as Superset exports them are the files, byte for byte
    exported_by_cli = run_lakehouse("stack", "export-dashboards", "--to", str(tmp_path))
    assert exported_by_cli.returncode == 0, exported_by_cli.stderr[-3000:]
    written = [line.removeprefix(f"{tmp_path}/") for line in exported_by_cli.stdout.split()]
    assert sorted(written) == sorted(p.relative_to(BUNDLE).as_posix() for p in BUNDLE.rglob("*/**/*.yaml"))
    assert all((tmp_path / path).read_bytes() == (BUNDLE / path).read_bytes() for path in written)
    assert not (tmp_path / "databases").exists()

    chart = CHARTS["Channel mix (gross revenue)"]
    renamed = f"Channel mix, edited {uuid.uuid4().hex[:6]}"
    superset_api.request("PUT", f"/api/v1/chart/{chart_id(superset_api, chart['uuid'])}", {"slice_name": renamed})
    try:
        assert superset_server.import_dashboards(superset_api) is False
        assert (
            superset_api.request("GET", f"/api/v1/chart/{chart_id(superset_api, chart['uuid'])}")["result"][
                "slice_name"
            ]
            == renamed
        )
        export_dashboards(superset_api, tmp_path)
        exported = [yaml.safe_load(path.read_text()) for path in (tmp_path / "charts").glob("*.yaml")]
        [edited] = [c for c in exported if c["uuid"] == chart["uuid"]]
        assert edited["slice_name"] == renamed
    finally:
        superset_server.digest_file.unlink()
        assert superset_server.import_dashboards(superset_api) is True
    assert (
        superset_api.request("GET", f"/api/v1/chart/{chart_id(superset_api, chart['uuid'])}")["result"]["slice_name"]
        == chart["slice_name"]
    )


def test_a_refused_bundle_is_one_error_naming_the_file_and_changes_nothing(
    superset_server: SupersetServer, superset_api: SupersetApi, tmp_path: Path
) -> None:
    broken = tmp_path / "dashboards"
    shutil.copytree(BUNDLE, broken)
    chart = broken / "charts" / "Freshness_per_mart.yaml"
    chart.write_text(re.sub(r"(?m)^slice_name: ", "slice_title: ", chart.read_text()))
    before, digest = _inventory(superset_api), superset_server.digest_file.read_text()

    with pytest.raises(StackError) as refused:
        SupersetServer(superset_server.settings, dashboards=broken).import_dashboards(superset_api)
    message = str(refused.value)
    assert "\n" not in message
    assert f"{chart}: {{'slice_name': ['Missing data for required field.']" in message
    assert (_inventory(superset_api), superset_server.digest_file.read_text()) == (before, digest)


def test_a_connection_made_by_an_older_start_is_kept(
    superset_server: SupersetServer, superset_api: SupersetApi
) -> None:
    """Before dashboards, the start made the connection through the API, with a random UUID."""
    [connection] = superset_api.databases(CONNECTION)
    older = str(uuid.uuid4())
    with psycopg.connect(
        superset_server.settings.postgres_dsn(superset_server.config.metadata_database), autocommit=True
    ) as conn:
        conn.execute("UPDATE dbs SET uuid = %s WHERE id = %s", (older, connection["id"]))
        datasets = conn.execute("SELECT count(*) FROM tables WHERE database_id = %s", (connection["id"],)).fetchone()
        assert superset_server.import_dashboards(superset_api) is True
        assert conn.execute("SELECT id, uuid::text FROM dbs WHERE database_name = %s", (CONNECTION,)).fetchall() == [
            (connection["id"], older)
        ]
        assert conn.execute("SELECT count(*) FROM tables").fetchone() == datasets
    assert superset_server.import_dashboards(superset_api) is False


def chart_data(superset_api: SupersetApi, name: str, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of the chart ``name``, from its saved query context with ``filters`` added to its query."""
    saved = superset_api.request("GET", f"/api/v1/chart/{chart_id(superset_api, CHARTS[name]['uuid'])}")["result"]
    context = json.loads(saved["query_context"])
    for query in context["queries"]:
        query["filters"] = [*query["filters"], *filters]
    answer = superset_api.request("POST", "/api/v1/chart/data", context)
    return list(answer["result"][0]["data"])


@pytest.fixture
def revenue_rows(
    superset_server: SupersetServer, unique: str
) -> Iterator[tuple[str, list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
    """Known rows of a new tenant in order_revenue_5min and fct_orders_daily (as the migrating role)."""
    tenant = f"t_dash_{unique}"
    start = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    windows = [
        (start, "north", "home", Decimal("10.50")),
        (start, "north", "toys", Decimal("4.25")),
        (start, "south", "home", Decimal("7.00")),
        (start + timedelta(minutes=5), "north", "home", Decimal("1.10")),
        (start + timedelta(minutes=5), "east", "books", Decimal("3.30")),
    ]
    daily = [
        # order_date, region, channel, category, orders, units, gross revenue
        (date(2026, 11, 29), "north", "web", "home", 2, 3, Decimal("30.01")),
        (date(2026, 11, 29), "south", "app", "home", 1, 1, Decimal("9.99")),
        (date(2026, 11, 30), "north", "web", "toys", 3, 7, Decimal("45.00")),
        (date(2026, 11, 30), "north", "store", "home", 1, 2, Decimal("12.50")),
    ]
    with psycopg.connect(superset_server.settings.postgres_dsn(), autocommit=True) as conn:
        added = day_partitions(
            conn, {"order_revenue_5min": [w[0].date() for w in windows], "fct_orders_daily": [d[0] for d in daily]}
        )
        for ws, region, category, revenue in windows:
            conn.execute(
                "INSERT INTO serving.order_revenue_5min (tenant_id, window_date, window_start, window_end, region, "
                "product_category, orders_placed, units_sold, total_revenue, avg_order_value, unique_customers) "
                "VALUES (%s, %s, %s, %s, %s, %s, 1, 1, %s, %s, 1)",
                (tenant, ws.date(), ws, ws + timedelta(minutes=5), region, category, revenue, revenue),
            )
        for day, region, channel, category, orders, units, revenue in daily:
            conn.execute(
                "INSERT INTO serving.fct_orders_daily (tenant_id, order_date, region, channel, product_category, "
                "orders_placed, orders_cancelled, units, gross_revenue, cancelled_revenue, avg_order_value, "
                "unique_customers) VALUES (%s, %s, %s, %s, %s, %s, 0, %s, %s, 0, %s, 1)",
                (tenant, day, region, channel, category, orders, units, revenue, round(revenue / orders, 2)),
            )
        rollups = fill_rollups(conn, tenant)
        try:
            yield tenant, windows, daily
        finally:
            conn.execute("DELETE FROM serving.order_revenue_5min WHERE tenant_id = %s", (tenant,))
            conn.execute("DELETE FROM serving.fct_orders_daily WHERE tenant_id = %s", (tenant,))
            for table in rollups:
                conn.execute(f"DELETE FROM serving.{table} WHERE tenant_id = %s", (tenant,))
            for partition in added:
                conn.execute(f"DROP TABLE serving.{partition}")


def fill_rollups(conn: psycopg.Connection[Any], tenant: str) -> list[str]:
    """The rollups of fct_orders_daily for the tenant's rows inserted above, as a load keeps them (the charts that
    read them are compared with SQL on the facts); the rollup tables."""
    from psycopg import sql

    from lakehouse.config.marts import mart
    from lakehouse.postgres.loader import rollup_query

    facts = sql.SQL("(SELECT * FROM serving.fct_orders_daily WHERE tenant_id = {}) AS facts").format(tenant)
    rollups = mart("fct_orders_daily").rollups
    for rollup in rollups:
        conn.execute(
            sql.SQL("INSERT INTO {} {}").format(sql.Identifier("serving", rollup.table), rollup_query(rollup, facts))
        )
    return [rollup.table for rollup in rollups]


def day_partitions(conn: psycopg.Connection[Any], days: dict[str, list[date]]) -> list[str]:
    """Create the missing day partitions of these interval marts for these days (as loads bring their own);
    the names of those created, to drop afterwards."""
    added = []
    for table, dates in days.items():
        for day in sorted(set(dates)):
            partition = f"{table}_p{day:%Y%m%d}"
            if conn.execute("SELECT to_regclass(%s)", (f"serving.{partition}",)).fetchone() == (None,):
                conn.execute(
                    "SELECT lakehouse_meta.add_day_partitions(%s::regclass, %s, %s)",
                    (f"serving.{table}", day, day + timedelta(days=1)),
                )
                added.append(partition)
    return added


def _ms(day: date | datetime) -> int:
    moment = day if isinstance(day, datetime) else datetime(day.year, day.month, day.day, tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def test_revenue_charts_add_up_the_inserted_rows(
    superset_api: SupersetApi, revenue_rows: tuple[str, list[tuple[Any, ...]], list[tuple[Any, ...]]]
) -> None:
    tenant, windows, daily = revenue_rows
    by_tenant = [{"col": "tenant_id", "op": "==", "val": tenant}]

    expected: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
    for ws, region, _, revenue in windows:
        expected[(_ms(ws), region)] += revenue
    rows = chart_data(superset_api, "Revenue by region, 5-minute windows", by_tenant)
    got = {
        (row["window_start"], region): Decimal(str(value))
        for row in rows
        for region, value in row.items()
        if region != "window_start" and value is not None
    }
    assert got == dict(expected)

    per_day: dict[int, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0), Decimal(0)])
    for day, _, _, _, orders, units, revenue in daily:
        per_day[_ms(day)][0] += orders
        per_day[_ms(day)][1] += units
        per_day[_ms(day)][2] += revenue
    rows = chart_data(superset_api, "Daily orders, units and AOV", by_tenant)
    assert {row["order_date"]: (row["orders"], row["units"], Decimal(str(row["aov"]))) for row in rows} == {
        day: (o, u, round(r / o, 2)) for day, (o, u, r) in per_day.items()
    }

    channels: dict[str, Decimal] = defaultdict(Decimal)
    for _, _, channel, _, _, _, revenue in daily:
        channels[channel] += revenue
    rows = chart_data(superset_api, "Channel mix (gross revenue)", by_tenant)
    assert {row["channel"]: Decimal(str(row["revenue"])) for row in rows} == dict(channels)


@pytest.fixture
def health_rows(
    superset_server: SupersetServer, unique: str
) -> Iterator[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
    """Known loads of two new marts in freshness and alerts of a new DAG in load_alerts."""
    now = datetime.now(UTC).replace(microsecond=0)
    marts = [f"m1_{unique}", f"m2_{unique}"]
    loads = [
        (marts[0], date(2026, 11, 28), date(2026, 11, 29), 5, now - timedelta(hours=3)),
        (marts[0], date(2026, 11, 29), date(2026, 11, 30), 7, now - timedelta(minutes=90)),
        (marts[1], date(2026, 11, 29), date(2026, 11, 30), 2, now - timedelta(minutes=20)),
    ]
    alerts = [
        (f"dag_{unique}", "load", "run_1", marts[0], "row count check failed", now - timedelta(minutes=30)),
        (f"dag_{unique}", "gold", "run_2", None, "task failed", now - timedelta(minutes=10)),
    ]
    with psycopg.connect(superset_server.settings.postgres_dsn(), autocommit=True) as conn:
        for mart, start, end, rows, loaded_at in loads:
            conn.execute(
                "INSERT INTO serving.freshness (mart, interval_start, interval_end, rows, silver_watermark, loaded_at) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (mart, start, end, rows, loaded_at - timedelta(minutes=1), loaded_at),
            )
        conn.execute("INSERT INTO serving.mart_sla (mart, sla_minutes) VALUES (%s, 60)", (marts[0],))
        for dag_id, task_id, run_id, mart, reason, created_at in alerts:
            conn.execute(
                "INSERT INTO serving.load_alerts (dag_id, task_id, run_id, mart, reason, created_at) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (dag_id, task_id, run_id, mart, reason, created_at),
            )
        try:
            yield loads, alerts
        finally:
            conn.execute("DELETE FROM serving.freshness WHERE mart = ANY(%s)", (marts,))
            conn.execute("DELETE FROM serving.mart_sla WHERE mart = ANY(%s)", (marts,))
            conn.execute("DELETE FROM serving.load_alerts WHERE dag_id = %s", (f"dag_{unique}",))


def test_pipeline_health_charts_show_the_inserted_loads_and_alerts(
    superset_api: SupersetApi, health_rows: tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]
) -> None:
    loads, alerts = health_rows
    latest: dict[str, datetime] = {}
    for mart, _, _, _, loaded_at in loads:
        latest[mart] = max(latest.get(mart, loaded_at), loaded_at)
    rows = chart_data(superset_api, "Freshness per mart", [{"col": "mart", "op": "IN", "val": sorted(latest)}])
    assert {row["mart"]: row["latest_loaded_at"] for row in rows} == {m: _ms(t) for m, t in latest.items()}
    now = datetime.now(UTC)
    for row in rows:
        age = (now - latest[row["mart"]]).total_seconds() / 60
        assert abs(row["age_minutes"] - age) <= 2, row
    # the oldest load first
    assert [row["mart"] for row in rows] == sorted(latest, key=lambda m: latest[m])
    # the first mart's SLA is 60 minutes and its latest load 90 minutes old; the second has no SLA
    first, second = sorted(latest)
    assert {row["mart"]: (row["sla_minutes"], row["over_sla"]) for row in rows} == {
        first: (60, True),
        second: (None, None),
    }

    dag_id = alerts[0][0]
    rows = chart_data(superset_api, "Recent load alerts", [{"col": "dag_id", "op": "==", "val": dag_id}])
    newest_first = sorted(alerts, key=lambda a: a[5], reverse=True)
    assert [(r["task_id"], r["run_id"], r["mart"], r["reason"], r["created_at"]) for r in rows] == [
        (task, run, mart, reason, _ms(created)) for _, task, run, mart, reason, created in newest_first
    ]


def test_a_repeated_chart_request_reads_the_data_cache_and_a_forced_one_the_database(
    superset_api: SupersetApi, revenue_rows: tuple[str, list[tuple[Any, ...]], list[tuple[Any, ...]]]
) -> None:
    tenant, _, _ = revenue_rows
    saved = superset_api.request(
        "GET", f"/api/v1/chart/{chart_id(superset_api, CHARTS['Channel mix (gross revenue)']['uuid'])}"
    )
    context = json.loads(saved["result"]["query_context"])
    for query in context["queries"]:
        query["filters"] = [*query["filters"], {"col": "tenant_id", "op": "==", "val": tenant}]

    def answer(force: bool) -> tuple[bool, list[dict[str, Any]]]:
        [result] = superset_api.request("POST", "/api/v1/chart/data", {**context, "force": force})["result"]
        return bool(result.get("is_cached")), result["data"]

    first = answer(force=False)
    assert first[0] is False and first[1], "a new tenant's first request queries the database"
    assert answer(force=False) == (True, first[1])
    assert answer(force=True) == (False, first[1])
