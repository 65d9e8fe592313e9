"""The dashboards of config/dashboards/ rendered in headless Chromium (Debian's package, driven by Playwright) on the
stack's real Superset and PostgreSQL: every chart drawn with no error banner, as many charts as the export places,
the numbers the page fetched equal to what Superset's REST API answers, and each chart's data, through that API,
equal to the same aggregate computed here by SQL on serving over rows inserted for a new tenant."""

from __future__ import annotations

import json
import logging
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from lakehouse.scripts.superset_api import SupersetApi
from lakehouse.scripts.superset_browser import DashboardBrowser
from lakehouse.scripts.superset_server import SupersetServer
from tests.integration.test_superset import run_lakehouse
from tests.integration.test_superset_dashboards import (
    CHARTS,
    DASHBOARDS,
    chart_id,
    chart_uuids,
    day_partitions,
    fill_rollups,
)

pytestmark = pytest.mark.integration
DAY_1, DAY_2, DAY_3 = date(2026, 11, 29), date(2026, 11, 30), date(2026, 12, 1)
T0 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Seed:
    """The keys of the rows inserted for one run: a tenant, marts, a DAG and a stream query of its own."""

    tenant: str
    product: str
    marts: tuple[str, str]
    dag_id: str
    query: str


def _insert(conn: psycopg.Connection[Any], table: str, rows: list[tuple[Any, ...]]) -> None:
    columns = f"({', '.join(['%s'] * len(rows[0]))})"
    for row in rows:
        conn.execute(f"INSERT INTO {table} VALUES {columns}", row)


def _seed_rows(conn: psycopg.Connection[Any], seed: Seed) -> None:
    t, p = seed.tenant, seed.product
    _insert(
        conn,
        "serving.order_revenue_5min (tenant_id, window_date, window_start, window_end, region, product_category, "
        "orders_placed, units_sold, total_revenue, avg_order_value, unique_customers)",
        [
            (t, DAY_2, T0, T0 + timedelta(minutes=5), "north", "home", 2, 3, Decimal("10.50"), Decimal("5.25"), 2),
            (t, DAY_2, T0, T0 + timedelta(minutes=5), "north", "toys", 1, 1, Decimal("4.25"), Decimal("4.25"), 1),
            (t, DAY_2, T0 + timedelta(minutes=5), T0 + timedelta(minutes=10), "east", "home", 1, 2, Decimal("7"), 7, 1),
        ],
    )
    _insert(
        conn,
        "serving.fct_orders_daily (tenant_id, order_date, region, channel, product_category, orders_placed, "
        "orders_cancelled, units, gross_revenue, cancelled_revenue, avg_order_value, unique_customers, "
        "orders_with_coupon)",
        [
            (t, DAY_1, "north", "web", "home", 2, 0, 3, Decimal("30.01"), 0, Decimal("15.01"), 2, 1),
            (t, DAY_2, "north", "mobile", "toys", 3, 1, 7, Decimal("45.00"), Decimal("5"), Decimal("15.00"), 3, 2),
            (t, DAY_2, "north", "mobile", "home", 1, 0, 1, Decimal("8.00"), 0, Decimal("8.00"), 1, 0),
            (t, DAY_2, "south", "pos", "home", 1, 0, 2, Decimal("12.50"), 0, Decimal("12.50"), 1, 0),
        ],
    )
    fill_rollups(conn, t)
    _insert(
        conn,
        "serving.customer_behavior_daily (tenant_id, activity_date, customer_id, page_views, cart_adds, orders, "
        "revenue, reviews, avg_rating, first_event_at, last_event_at)",
        [
            (t, DAY_1, f"{t}_c1", 5, 1, 1, Decimal("20.00"), 0, None, T0 - timedelta(days=1), T0 - timedelta(days=1)),
            (t, DAY_2, f"{t}_c1", 3, 2, 1, Decimal("9.99"), 1, 4.0, T0, T0 + timedelta(hours=1)),
            (t, DAY_2, f"{t}_c2", 8, 0, 0, Decimal("0"), 1, 2.0, T0, T0 + timedelta(hours=2)),
        ],
    )
    _insert(
        conn,
        "serving.dim_customer (customer_id, tenant_id, segment, country, signup_date, valid_from, valid_to, "
        "is_current)",
        [
            (f"{t}_c1", t, "new", "PT", date(2026, 1, 5), date(2026, 1, 5), DAY_1, False),
            (f"{t}_c1", t, "loyal", "PT", date(2026, 1, 5), DAY_1, None, True),
            (f"{t}_c2", t, "new", "ES", date(2026, 6, 1), date(2026, 6, 1), None, True),
        ],
    )
    _insert(
        conn,
        "serving.customer_features (tenant_id, as_of_date, customer_id, recency_days, orders_30d, monetary_30d, "
        "page_views_7d, cart_adds_7d, avg_rating, last_seen_at)",
        [
            (t, DAY_2, f"{t}_c1", 0, 2, Decimal("29.99"), 8, 3, 4.0, T0 + timedelta(hours=1)),
            (t, DAY_2, f"{t}_c2", 0, 0, Decimal("0"), 8, 0, 2.0, T0 + timedelta(hours=2)),
        ],
    )
    m1, m2 = T0, T0 + timedelta(minutes=1)
    _insert(
        conn,
        "serving.device_metrics_minute (tenant_id, metric_date, minute_start, device_id, metric, readings, "
        "min_value, max_value, avg_value)",
        [
            (t, DAY_2, m1, f"{t}_d1", "temperature", 4, 20.0, 23.0, 21.5),
            (t, DAY_2, m1, f"{t}_d2", "temperature", 2, 18.0, 19.0, 18.5),
            (t, DAY_2, m2, f"{t}_d1", "temperature", 3, 22.0, 24.0, 23.0),
            (t, DAY_2, m2, f"{t}_d1", "battery", 1, 80.0, 80.0, 80.0),
        ],
    )
    _insert(
        conn,
        "serving.dim_product (product_id, name, category, brand, list_price, valid_from)",
        [(p, f"Kettle {p[-6:]}", "home", "Acme", Decimal("39.90"), DAY_1)],
    )
    _insert(
        conn,
        "serving.product_reviews_daily (tenant_id, review_date, product_id, review_count, avg_rating, positive_share, "
        "negative_share, sentiment_score)",
        [(t, DAY_1, p, 4, 4.5, 0.75, 0.0, 0.6), (t, DAY_2, p, 2, 2.0, 0.0, 0.5, -0.4)],
    )
    now = datetime.now(UTC).replace(microsecond=0)
    _insert(
        conn,
        "serving.freshness (mart, interval_start, interval_end, rows, silver_watermark, loaded_at)",
        [
            (seed.marts[0], DAY_1, DAY_2, 5, now - timedelta(hours=2), now - timedelta(hours=1)),
            (seed.marts[0], DAY_2, DAY_3, 7, now - timedelta(minutes=30), now - timedelta(minutes=20)),
            (seed.marts[1], DAY_2, DAY_3, 2, None, now - timedelta(minutes=5)),
        ],
    )
    _insert(conn, "serving.mart_sla (mart, sla_minutes)", [(seed.marts[0], 10), (seed.marts[1], 60)])
    _insert(
        conn,
        "serving.load_alerts (dag_id, task_id, run_id, mart, reason, created_at)",
        [
            (seed.dag_id, "load", "run_1", seed.marts[0], "row count check failed", now - timedelta(minutes=30)),
            (seed.dag_id, "gold", "run_2", None, "task failed", now - timedelta(minutes=10)),
        ],
    )
    _insert(
        conn,
        "lakehouse_meta.stream_batches (query, app_id, batch_id, layer, source, status, offset_ranges, input_rows, "
        "output_rows, dead_letter_rows, quarantined_rows, deduplicated_rows, started_at, finished_at, processing_ms, "
        "source_lag_ms, model_version, scored_rows, scoring_ms)",
        [
            (seed.query, "app", batch, "silver", "customer_interactions", "ok", "{}", read, landed, dead, quarantined,
             read - landed - dead - quarantined, T0, T0 + timedelta(minutes=batch * 40), 100, lag, version, scored, ms)
            for batch, read, landed, dead, quarantined, lag, version, scored, ms in [
                (0, 10, 9, 1, 0, 1500, "1", 10, 25.0),
                (1, 20, 16, 0, 2, 4200, "1", 4, 20.0),
                (2, 8, 8, 0, 0, 900, "2", 5, 5.0),
            ]
        ],
    )  # fmt: skip


@pytest.fixture(scope="module")
def seed(superset_server: SupersetServer) -> Iterator[Seed]:
    """Rows in every table the dashboards read, for a new tenant (and marts, a DAG and a stream query of its own)."""
    unique = uuid.uuid4().hex[:8]
    seed = Seed(f"t_web_{unique}", f"p_web_{unique}", (f"m1_{unique}", f"m2_{unique}"), f"dag_{unique}", f"q_{unique}")
    interval_marts = ["order_revenue_5min", "fct_orders_daily", "customer_behavior_daily", "customer_features"]
    with psycopg.connect(superset_server.settings.postgres_dsn(), autocommit=True) as conn:
        added = day_partitions(
            conn,
            {**{m: [DAY_1, DAY_2] for m in interval_marts}, "device_metrics_minute": [DAY_2]}
            | {"product_reviews_daily": [DAY_1, DAY_2]},
        )
        try:
            _seed_rows(conn, seed)
            yield seed
        finally:
            rollups = ["fct_orders_daily_by_channel"]
            for table in [*interval_marts, *rollups, "device_metrics_minute", "product_reviews_daily", "dim_customer"]:
                conn.execute(f"DELETE FROM serving.{table} WHERE tenant_id = %s", (seed.tenant,))
            conn.execute("DELETE FROM serving.dim_product WHERE product_id = %s", (seed.product,))
            conn.execute("DELETE FROM serving.freshness WHERE mart = ANY(%s)", (list(seed.marts),))
            conn.execute("DELETE FROM serving.mart_sla WHERE mart = ANY(%s)", (list(seed.marts),))
            conn.execute("DELETE FROM serving.load_alerts WHERE dag_id = %s", (seed.dag_id,))
            conn.execute("DELETE FROM lakehouse_meta.stream_batches WHERE query = %s", (seed.query,))
            for partition in added:
                conn.execute(f"DROP TABLE serving.{partition}")


@pytest.fixture(scope="module", autouse=True)
def bundle_restored(superset_server: SupersetServer) -> Iterator[None]:
    """A dashboard viewed by its owner saves the labels it drew into its metadata: afterwards the bundle is imported
    again, so the dashboards are as exported for the tests that follow."""
    yield
    superset_server.digest_file.unlink(missing_ok=True)
    assert superset_server.import_dashboards(superset_server.admin_api()) is True


@pytest.fixture(scope="module")
def browser(superset_server: SupersetServer) -> Iterator[DashboardBrowser]:
    """Headless Chromium, logged in to the stack's Superset as its admin."""
    with superset_server.admin_browser() as session:
        yield session


# Each chart's data as SQL on serving computes it from its meaning (the labels are the chart's), for the seeded rows:
# (the filter that keeps only them, the SQL).
TENANT = "tenant_id = %(tenant)s"
BY_TENANT = {"col": "tenant_id", "val": "tenant"}
PER_REVIEW = "SUM({0} * review_count) / NULLIF(SUM(review_count), 0)"
EXPECTED_SQL: dict[str, tuple[dict[str, str], str]] = {
    "Revenue by region, 5-minute windows": (
        BY_TENANT,
        f"SELECT window_start, region, SUM(total_revenue) AS revenue FROM serving.order_revenue_5min WHERE {TENANT} "
        "GROUP BY 1, 2",
    ),
    "Daily orders, units and AOV": (
        BY_TENANT,
        "SELECT order_date, SUM(orders_placed) AS orders, SUM(units) AS units, "
        "ROUND(SUM(gross_revenue) / SUM(orders_placed), 2) AS aov "
        f"FROM serving.fct_orders_daily WHERE {TENANT} GROUP BY 1",
    ),
    "Channel mix (gross revenue)": (
        BY_TENANT,
        f"SELECT channel, SUM(gross_revenue) AS revenue FROM serving.fct_orders_daily WHERE {TENANT} GROUP BY 1",
    ),
    "Coupon use per day by channel": (
        BY_TENANT,
        "SELECT order_date, channel, SUM(orders_with_coupon)::float8 / SUM(orders_placed) AS coupon_share "
        f"FROM serving.fct_orders_daily WHERE {TENANT} GROUP BY 1, 2",
    ),
    "Customer activity per day": (
        BY_TENANT,
        "SELECT activity_date, COUNT(DISTINCT customer_id) AS active_customers, SUM(page_views) AS page_views, "
        f"SUM(cart_adds) AS cart_adds, SUM(orders) AS orders FROM serving.customer_behavior_daily WHERE {TENANT} "
        "GROUP BY 1",
    ),
    "Customer features (latest)": (
        BY_TENANT,
        "SELECT customer_id, as_of_date, recency_days, orders_30d, monetary_30d, page_views_7d, cart_adds_7d, "
        f"avg_rating, last_seen_at FROM serving.customer_features WHERE {TENANT}",
    ),
    "Customer history (SCD2)": (
        BY_TENANT,
        "SELECT customer_id, segment, country, signup_date, valid_from, valid_to, is_current "
        f"FROM serving.dim_customer WHERE {TENANT}",
    ),
    "Average rating per day": (
        BY_TENANT,
        f"SELECT review_date, {PER_REVIEW.format('avg_rating')} AS avg_rating, SUM(review_count) AS reviews "
        f"FROM serving.product_reviews_daily WHERE {TENANT} GROUP BY 1",
    ),
    "Sentiment per day": (
        BY_TENANT,
        f"SELECT review_date, {PER_REVIEW.format('positive_share')} AS positive_share, "
        f"{PER_REVIEW.format('negative_share')} AS negative_share, "
        f"{PER_REVIEW.format('sentiment_score')} AS sentiment_score "
        f"FROM serving.product_reviews_daily WHERE {TENANT} GROUP BY 1",
    ),
    "Ratings and sentiment per product": (
        BY_TENANT,
        f"SELECT p.name AS product_name, p.brand, SUM(r.review_count) AS reviews, "
        f"{PER_REVIEW.format('r.avg_rating')} AS avg_rating, {PER_REVIEW.format('r.sentiment_score')} AS "
        f"sentiment_score, {PER_REVIEW.format('r.positive_share')} AS positive_share, "
        f"{PER_REVIEW.format('r.negative_share')} AS negative_share FROM serving.product_reviews_daily r "
        f"JOIN serving.dim_product p USING (product_id) WHERE r.{TENANT} GROUP BY 1, 2",
    ),
    "Readings per minute": (
        BY_TENANT,
        f"SELECT minute_start, metric, SUM(readings) AS readings FROM serving.device_metrics_minute WHERE {TENANT} "
        "GROUP BY 1, 2",
    ),
    "Average value per minute by metric": (
        BY_TENANT,
        "SELECT minute_start, metric, SUM(avg_value * readings) / SUM(readings) AS avg_value "
        f"FROM serving.device_metrics_minute WHERE {TENANT} GROUP BY 1, 2",
    ),
    "Range per device and metric": (
        BY_TENANT,
        "SELECT device_id, metric, SUM(readings) AS readings, MIN(min_value) AS min_value, MAX(max_value) AS "
        "max_value, SUM(avg_value * readings) / SUM(readings) AS avg_value FROM serving.device_metrics_minute "
        f"WHERE {TENANT} GROUP BY 1, 2",
    ),
    "Freshness per mart": (  # its age_minutes moves with the clock: compared apart, within a minute
        {"col": "mart", "val": "marts"},
        "SELECT f.mart, max(f.loaded_at) AS latest_loaded_at, max(f.silver_watermark) AS silver_watermark, "
        "max(f.interval_end) AS latest_interval_end, s.sla_minutes, "
        "CASE WHEN s.sla_minutes IS NOT NULL THEN now() - max(f.loaded_at) > s.sla_minutes * interval '1 minute' END "
        "AS over_sla FROM serving.freshness f LEFT JOIN serving.mart_sla s ON s.mart = f.mart "
        "WHERE f.mart = ANY(%(marts)s) GROUP BY f.mart, s.sla_minutes",
    ),
    "Stream health per query": (
        {"col": "query", "val": "query"},
        "SELECT query, layer, count(*) AS batches, sum(input_rows) AS rows_read, "
        "sum(dead_letter_rows)::float8 / sum(input_rows) AS dead_letter_share, "
        "sum(quarantined_rows)::float8 / sum(input_rows) AS quarantined_share, "
        "max(source_lag_ms) / 1000.0 AS max_source_lag_s, max(finished_at) AS latest_batch_at "
        "FROM lakehouse_meta.stream_batches WHERE query = %(query)s GROUP BY 1, 2",
    ),
    "Recent load alerts": (
        {"col": "dag_id", "val": "dag_id"},
        "SELECT created_at, dag_id, task_id, run_id, mart, reason FROM serving.load_alerts WHERE dag_id = %(dag_id)s",
    ),
    "Review scoring latency p95 (ms per review)": (
        {"col": "query", "val": "query"},
        "SELECT (finished_at AT TIME ZONE 'UTC')::date AS day, model_version, "
        "percentile_cont(0.95) WITHIN GROUP (ORDER BY scoring_ms / scored_rows) AS p95_ms_per_review "
        "FROM lakehouse_meta.stream_batches WHERE query = %(query)s GROUP BY 1, 2",
    ),
}


def _value(value: Any) -> Any:
    """A value as Superset's chart data JSON carries it: temporal values in epoch milliseconds, numbers as floats."""
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, date):
        return int(datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp() * 1000)
    if isinstance(value, Decimal | float):
        return round(float(value), 6)
    return value


def _rows(rows: list[dict[str, Any]]) -> list[tuple[tuple[str, Any], ...]]:
    return sorted((tuple(sorted((k, _value(v)) for k, v in row.items())) for row in rows), key=repr)


def test_every_chart_answers_what_sql_on_serving_computes(
    superset_server: SupersetServer, superset_api: SupersetApi, seed: Seed
) -> None:
    assert sorted(EXPECTED_SQL) == sorted(CHARTS)
    values = {"tenant": seed.tenant, "marts": list(seed.marts), "dag_id": seed.dag_id, "query": seed.query}
    with psycopg.connect(superset_server.settings.postgres_dsn(), autocommit=True) as conn:
        for name, (keep, sql) in EXPECTED_SQL.items():
            cursor = conn.execute(sql, values)
            columns = [c.name for c in cursor.description or []]
            expected = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
            assert expected, name
            saved = superset_api.request("GET", f"/api/v1/chart/{chart_id(superset_api, CHARTS[name]['uuid'])}")
            context = json.loads(saved["result"]["query_context"])
            value = values[keep["val"]]
            condition = {"col": keep["col"], "op": "IN" if isinstance(value, list) else "==", "val": value}
            for query in context["queries"]:
                query["filters"] = [*query["filters"], condition]
                query["post_processing"] = []  # the query's own rows, before Superset pivots them for the chart
            [answer] = superset_api.request("POST", "/api/v1/chart/data", context)["result"]
            got = answer["data"]
            if name == "Freshness per mart":
                ages = {row["mart"]: row.pop("age_minutes") for row in got}
                assert ages.keys() == {row["mart"] for row in expected}
                for row in expected:
                    minutes = (datetime.now(UTC) - row["latest_loaded_at"]).total_seconds() / 60
                    assert abs(ages[row["mart"]] - minutes) <= 1, (row["mart"], ages)
            assert _rows(got) == _rows(expected), name


@pytest.mark.parametrize("title", sorted(DASHBOARDS))
def test_every_dashboard_renders_all_its_charts_in_chromium(
    browser: DashboardBrowser, superset_api: SupersetApi, seed: Seed, title: str
) -> None:
    dashboard = DASHBOARDS[title]
    [dashboard_id] = superset_api.dashboard_ids(str(dashboard["uuid"]))
    shown = browser.render(dashboard_id)
    placed = {chart_id(superset_api, u) for u in chart_uuids(dashboard)}
    assert sorted(c.chart_id for c in shown.charts) == sorted(placed)
    assert shown.errors == {}
    assert [c.name for c in shown.charts if not c.drawn] == []
    assert shown.failed_requests == []
    # the page drew what the REST API answers for each chart, on the columns both have (the page's own post-processing
    # may name a derived column differently; age_minutes moves with the clock)
    assert sorted(shown.chart_data) == sorted(placed)
    for chart in shown.charts:
        answer = superset_api.request("GET", f"/api/v1/chart/{chart.chart_id}/data/")["result"][0]["data"]
        page = shown.chart_data[chart.chart_id]
        common = (set(page[0]) & set(answer[0])) - {"age_minutes"}
        assert len(common) >= 2, (chart.name, page[0], answer[0])
        assert _rows([{k: r[k] for k in common} for r in page]) == _rows([{k: r[k] for k in common} for r in answer]), (
            chart.name
        )


def test_a_chart_whose_query_fails_shows_its_error_banner(
    browser: DashboardBrowser, superset_server: SupersetServer, superset_api: SupersetApi, seed: Seed
) -> None:
    """The check is not blind: with SELECT on fct_orders_daily_by_channel revoked from bi_reader, its charts show
    the error (forced past the data cache, which holds what an earlier render drew)."""
    [dashboard_id] = superset_api.dashboard_ids(str(DASHBOARDS["Revenue"]["uuid"]))
    with psycopg.connect(superset_server.settings.postgres_dsn(), autocommit=True) as conn:
        conn.execute("REVOKE SELECT ON serving.fct_orders_daily_by_channel FROM bi_reader")
        try:
            shown = browser.render(dashboard_id, force=True)
        finally:
            conn.execute("GRANT SELECT ON serving.fct_orders_daily_by_channel TO bi_reader")
    assert shown.errors == {
        name: "Data error Error: permission denied for table fct_orders_daily_by_channel"
        for name in ("Daily orders, units and AOV", "Channel mix (gross revenue)", "Coupon use per day by channel")
    }
    assert [c.name for c in shown.charts if c.drawn] == ["Revenue by region, 5-minute windows"]


def test_a_browser_whose_session_was_dropped_logs_in_again(
    browser: DashboardBrowser, superset_api: SupersetApi, seed: Seed, caplog: pytest.LogCaptureFixture
) -> None:
    """A session Superset no longer knows (here: its cookie gone) sends a dashboard to the login page: the browser
    logs in again and draws the dashboard, instead of waiting for charts on the login page."""
    [dashboard_id] = superset_api.dashboard_ids(str(DASHBOARDS["Devices"]["uuid"]))
    browser.page.context.clear_cookies()

    with caplog.at_level(logging.WARNING, logger=DashboardBrowser.__module__):
        shown = browser.render(dashboard_id)

    assert "to its login page: logging in again" in caplog.text
    assert urllib.parse.urlparse(browser.page.url).path == f"/superset/dashboard/{dashboard_id}/"
    assert shown.charts and shown.errors == {}
    assert [c.name for c in shown.charts if not c.drawn] == []


def test_the_screenshot_command_writes_one_png_per_dashboard(seed: Seed, tmp_path: Path) -> None:
    done = run_lakehouse("stack", "screenshot-dashboards", "--to", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    slugs = ["customers", "devices", "pipeline-health", "revenue", "reviews"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{s}.png" for s in slugs]
    for path in tmp_path.iterdir():
        png = path.read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n", path
        assert int.from_bytes(png[16:20], "big") == 1600, path  # IHDR width: the browser's viewport
    assert len(done.stdout.splitlines()) == 5
