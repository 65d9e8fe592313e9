"""The dashboards of config/dashboards/ as Superset's importer reads them: each file parses with the keys its
import schema requires, every UUID is unique, every reference (chart -> dataset, dashboard -> chart, filter ->
dataset) resolves, and the bundle the start sends holds no password."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from lakehouse.config.settings import config_dir, load_settings
from lakehouse.scripts.superset_dashboards import (
    DASHBOARDS_DATABASE_UUID,
    PASSWORD_MASK,
    bundle_digest,
    bundle_files,
    bundle_zip,
    with_database_uuid,
    without_instance_ids,
)
from lakehouse.scripts.superset_server import SupersetServer

BUNDLE = config_dir() / "dashboards"
# the required fields of Superset 6.1's ImportV1DatasetSchema, ImportV1ChartSchema and ImportV1DashboardSchema
REQUIRED = {
    "datasets": {"table_name", "uuid", "version", "database_uuid"},
    "charts": {"slice_name", "viz_type", "uuid", "version", "dataset_uuid"},
    "dashboards": {"dashboard_title", "uuid", "version"},
}
TITLES = ["Customers", "Devices", "Pipeline health", "Revenue", "Reviews"]


def _load(kind: str) -> dict[str, dict[str, Any]]:
    return {p.relative_to(BUNDLE).as_posix(): yaml.safe_load(p.read_text()) for p in (BUNDLE / kind).rglob("*.yaml")}


DATASETS, CHARTS, DASHBOARDS = _load("datasets"), _load("charts"), _load("dashboards")
DATASET_BY_UUID = {d["uuid"]: d for d in DATASETS.values()}
CHART_BY_UUID = {c["uuid"]: c for c in CHARTS.values()}


def placed_charts(dashboard: dict[str, Any]) -> list[str]:
    """The chart UUIDs of a dashboard's layout."""
    return [v["meta"]["uuid"] for v in dashboard["position"].values() if isinstance(v, dict) and v["type"] == "CHART"]


def columns(dataset: dict[str, Any]) -> set[str]:
    """A dataset's column names."""
    return {c["column_name"] for c in dataset["columns"]}


def test_every_file_has_the_keys_superset_requires_and_the_uuids_are_unique() -> None:
    everything = {**DATASETS, **CHARTS, **DASHBOARDS}
    for path, config in everything.items():
        missing = REQUIRED[path.split("/", 1)[0]] - set(config)
        assert not missing, (path, missing)
        assert config["version"] == "1.0.0", path
    uuids = [c["uuid"] for c in everything.values()]
    assert len(set(uuids)) == len(uuids)
    assert sorted(d["dashboard_title"] for d in DASHBOARDS.values()) == TITLES
    assert not (BUNDLE / "databases").exists()  # the stack owns the connection


def test_datasets_are_tables_of_serving_on_the_bundles_connection() -> None:
    for path, dataset in DATASETS.items():
        assert dataset["schema"] == "serving" and dataset["sql"] is None, path
        assert dataset["database_uuid"] == DASHBOARDS_DATABASE_UUID, path
        assert dataset["main_dttm_col"] in columns(dataset), path


def _metric_columns(metrics: list[Any]) -> set[str]:
    return {m["column"]["column_name"] for m in metrics if isinstance(m, dict) and m["expressionType"] == "SIMPLE"}


def test_every_chart_reads_an_existing_dataset_with_a_saved_query_on_its_columns() -> None:
    for path, chart in CHARTS.items():
        dataset = DATASET_BY_UUID.get(chart["dataset_uuid"])
        assert dataset is not None, path
        context = json.loads(chart["query_context"])
        assert context["form_data"]["viz_type"] == chart["viz_type"], path
        for query in context["queries"]:
            named = {c for c in query["columns"] if isinstance(c, str)}
            named |= {c["sqlExpression"] for c in query["columns"] if isinstance(c, dict)}
            named |= _metric_columns(query.get("metrics") or [])
            named |= {f["col"] for f in query["filters"]}
            assert named <= columns(dataset), (path, named - columns(dataset))


def test_every_dashboard_places_existing_charts_three_to_five_and_every_chart_is_placed() -> None:
    placed: list[str] = []
    for path, dashboard in DASHBOARDS.items():
        charts = placed_charts(dashboard)
        assert 3 <= len(charts) <= 5, path
        assert set(charts) <= set(CHART_BY_UUID), path
        placed += charts
    assert sorted(placed) == sorted(CHART_BY_UUID)


@pytest.mark.parametrize("title", TITLES)
def test_every_dashboard_filters_by_date_range_and_by_tenant_where_its_tables_have_one(title: str) -> None:
    dashboard = next(d for d in DASHBOARDS.values() if d["dashboard_title"] == title)
    filters = {f["filterType"]: f for f in dashboard["metadata"]["native_filter_configuration"]}
    assert "filter_time" in filters
    tables = {DATASET_BY_UUID[CHART_BY_UUID[u]["dataset_uuid"]]["table_name"] for u in placed_charts(dashboard)}
    with_tenant = {
        t for t in tables if "tenant_id" in columns(next(d for d in DATASETS.values() if d["table_name"] == t))
    }
    if title == "Pipeline health":
        # v_mart_freshness, load_alerts, ml_stream_scoring_latency and v_stream_health have no tenant
        assert not with_tenant and "filter_select" not in filters
        return
    assert with_tenant == tables
    [target] = filters["filter_select"]["targets"]
    assert target["column"]["name"] == "tenant_id"
    assert "tenant_id" in columns(DATASET_BY_UUID[target["datasetUuid"]])


def test_revenue_refreshes_every_30_seconds() -> None:
    [revenue] = [d for d in DASHBOARDS.values() if d["dashboard_title"] == "Revenue"]
    assert revenue["metadata"]["refresh_frequency"] == 30


def test_the_bundle_sent_at_start_has_one_top_folder_a_masked_connection_and_no_password(tmp_path: Path) -> None:
    server = SupersetServer(load_settings("local", environ={"LAKEHOUSE_HOME": str(tmp_path)}))
    password = server.credentials().reader_password
    database = server.database_file("0f0e0d0c-0b0a-4908-8706-050403020100")
    assert PASSWORD_MASK in database["sqlalchemy_uri"] and password not in json.dumps(database)
    assert (database["allow_dml"], database["allow_ctas"], database["allow_cvas"]) == (False, False, False)
    assert (database["allow_file_upload"], database["expose_in_sqllab"]) == (False, True)

    files = bundle_files(BUNDLE)
    files["databases/lakehouse_serving.yaml"] = yaml.safe_dump(database).encode()
    with zipfile.ZipFile(io.BytesIO(bundle_zip(files))) as bundle:
        names = bundle.namelist()
        assert {n.split("/", 1)[0] for n in names} == {"lakehouse_dashboards"}
        assert yaml.safe_load(bundle.read("lakehouse_dashboards/metadata.yaml"))["type"] == "assets"
        assert len(names) == len(files) + 1
        assert all(password.encode() not in bundle.read(n) for n in names)


def test_the_digest_follows_the_content_and_the_connection_uuid() -> None:
    files = bundle_files(BUNDLE)
    assert bundle_digest(files) == bundle_digest(dict(reversed(list(files.items()))))
    other = "0f0e0d0c-0b0a-4908-8706-050403020100"
    moved = with_database_uuid(files, other)
    assert all(yaml.safe_load(v)["database_uuid"] == other for k, v in moved.items() if k.startswith("datasets/"))
    assert bundle_digest(moved) != bundle_digest(files)
    assert with_database_uuid(files, DASHBOARDS_DATABASE_UUID) == files


def test_an_export_loses_the_ids_of_the_superset_it_came_from() -> None:
    chart = next(iter(CHARTS.values()))
    exported = json.loads(json.dumps(chart))
    context = json.loads(exported["query_context"])
    context["datasource"]["id"] = 12
    context["form_data"].update(datasource="12__table", slice_id=7)
    exported["query_context"] = json.dumps(context)
    exported["params"].update(datasource="12__table", slice_id=7)
    assert without_instance_ids("charts", exported) == chart
