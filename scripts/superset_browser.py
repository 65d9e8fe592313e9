"""Superset's dashboards in a real browser: headless Chromium from the system's packages, driven by Playwright.

Nothing here downloads a browser: Playwright drives the Chromium that ``ensure_chromium`` finds on the ``PATH``
(Debian's package ``chromium``, installed by ``make setup`` when this process may run ``apt-get``).

A dashboard counts as rendered when every chart's loading indicator is gone; each chart is then either drawn
(Superset gives the drawn chart the element ``#chart-id-<id>``), empty ("No results"), or an error banner, whose
text is kept. The ``/api/v1/chart/data`` answers the page fetched are kept per chart, so a caller can check the
numbers the page drew.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from lakehouse.scripts.errors import PrerequisiteError, StackError

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright, Response

    from lakehouse.scripts.superset_api import SupersetApi

log = logging.getLogger(__name__)
# the element that holds one chart of a dashboard
CHART_HOLDER = '[data-test="chart-grid-component"]'
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
# as root Chromium needs --no-sandbox; the background-networking flags keep it off the (closed) internet
CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
CHROMIUM_FIX = "install Debian's Chromium (apt-get install chromium) or put a Chromium on the PATH"
LOGIN_TIMEOUT_S = 90
# a login that neither left the login page nor was refused within this time is tried again (CI saw one stay on the
# page for a minute once, cause unknown)
LOGIN_ATTEMPT_S = 20
# what the login page tells a user: toasts and the form's field errors
LOGIN_MESSAGES = '[role="alert"], .ant-form-item-explain-error, [data-test="toast-container"]'
# every chart holder has settled: no loading indicator, and each shows a drawn chart, an error or an empty state
SETTLED_JS = """() => {
  const charts = [...document.querySelectorAll('[data-test="chart-grid-component"]')];
  return charts.length > 0 && charts.every(c =>
    !c.querySelector('[data-test="loading-indicator"]') &&
    (c.querySelector('#chart-id-' + c.dataset.testChartId) || c.querySelector('[role="alert"]') ||
     c.innerText.includes('No results')));
}"""


def find_chromium() -> Path | None:
    """The system's Chromium, if any is on the PATH."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


def ensure_chromium() -> Path:
    """The system's Chromium; installed from Debian's packages when missing and this process may (root, apt-get)."""
    found = find_chromium()
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise PrerequisiteError(f"Chromium not found: {CHROMIUM_FIX}")
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(install, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:  # a fresh machine may have no package lists yet
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env, check=False)
        done = subprocess.run(install, capture_output=True, text=True, env=env, check=False)
    found = find_chromium()
    if done.returncode != 0 or found is None:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise PrerequisiteError(f"Chromium could not be installed ({last}): {CHROMIUM_FIX}")
    return found


@dataclass(frozen=True)
class RenderedChart:
    """One chart of a rendered dashboard: drawn, empty, or an error banner with its text."""

    chart_id: int
    name: str
    viz_type: str
    drawn: bool
    error: str | None


@dataclass
class RenderedDashboard:
    """A dashboard as the browser showed it: its charts, the chart data the page fetched, and how long it took."""

    url: str
    seconds: float
    charts: list[RenderedChart]
    chart_data: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    failed_requests: list[str] = field(default_factory=list)

    @property
    def errors(self) -> dict[str, str]:
        """Chart name -> error banner text, for the charts that show one."""
        return {c.name: c.error for c in self.charts if c.error is not None}


class DashboardBrowser:
    """A logged-in headless Chromium session on a Superset (a context manager)."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        chromium: Path | None = None,
        viewport: tuple[int, int] = (1600, 1000),
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self.chromium = chromium
        self.viewport = viewport
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._page: Page | None = None

    def __enter__(self) -> DashboardBrowser:
        from playwright.sync_api import sync_playwright

        chromium = self.chromium or ensure_chromium()
        self._playwright = sync_playwright().start()
        try:
            self._browser = self._playwright.chromium.launch(
                executable_path=str(chromium), headless=True, args=list(CHROMIUM_FLAGS)
            )
            width, height = self.viewport
            self._page = self._browser.new_context(viewport={"width": width, "height": height}).new_page()
            self._login()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the browser and Playwright's driver."""
        if self._browser is not None:
            self._browser.close()
            self._browser = None
        if self._playwright is not None:
            self._playwright.stop()
            self._playwright = None

    @property
    def page(self) -> Page:
        """The session's page."""
        if self._page is None:
            raise RuntimeError("DashboardBrowser is used outside its `with` block")
        return self._page

    def _login(self) -> None:
        page = self.page
        login_url = f"{self.base_url}/login/"
        answers: list[tuple[int, str]] = []  # (status, location) of each answer to the form

        def keep(response: Response) -> None:
            if response.request.method == "POST" and urllib.parse.urlparse(response.url).path.startswith("/login"):
                answers.append((response.status, response.headers.get("location", "")))

        page.on("response", keep)
        deadline = time.monotonic() + LOGIN_TIMEOUT_S
        messages: list[str] = []
        try:
            while True:
                page.goto(login_url, wait_until="networkidle")
                page.locator("#username").fill(self.username)
                page.locator("#password").fill(self.password)
                answered = len(answers)
                page.get_by_role("button", name="Sign in").click()
                outcome = self._login_outcome(answers, answered, min(LOGIN_ATTEMPT_S, deadline - time.monotonic()))
                if outcome == "in":
                    return
                if outcome == "refused":
                    page.wait_for_load_state("networkidle")
                    raise StackError(
                        f"Superset at {self.base_url} refused the login of {self.username!r} "
                        f"(the page said: {self._page_messages() or 'nothing'}): check the password it was given"
                    )
                messages += self._page_messages()
                if time.monotonic() >= deadline:
                    break
        finally:
            page.remove_listener("response", keep)
        raise StackError(
            f"Superset at {self.base_url} did not accept the login of {self.username!r} within {LOGIN_TIMEOUT_S} s "
            f"(still on {page.url}; answers to the form: {answers or 'none'}; the page said: {messages or 'nothing'})"
        )

    def _page_messages(self) -> list[str]:
        """What the page tells its user now: toasts and the form's field errors, one line each."""
        return [" ".join(m.split()) for m in self.page.locator(LOGIN_MESSAGES).all_inner_texts() if m.strip()]

    def _login_outcome(self, answers: list[tuple[int, str]], answered: int, wait_s: float) -> str:
        """``in`` once the page left the login page, ``refused`` once the form's answer led back to it, else
        ``pending`` after ``wait_s``."""
        end = time.monotonic() + max(1.0, wait_s)
        while time.monotonic() < end:
            if not self._on_login_page():
                return "in"
            if any(
                300 <= status < 400 and urllib.parse.urlparse(location).path.startswith("/login")
                for status, location in answers[answered:]
            ):
                return "refused"
            self.page.wait_for_timeout(200)
        return "pending"

    def render(self, dashboard: int | str, timeout_s: float = 90, *, force: bool = False) -> RenderedDashboard:
        """Open a dashboard (id or slug) and wait until every chart settled; what it showed, and its wall time.
        ``force``: every chart queries the database, past Superset's data cache."""
        page = self.page
        url = f"{self.base_url}/superset/dashboard/{dashboard}/" + ("?force=true" if force else "")
        responses: list[Response] = []

        def keep(response: Response) -> None:
            if urllib.parse.urlparse(response.url).path.rstrip("/") == "/api/v1/chart/data":
                responses.append(response)

        page.on("response", keep)
        try:
            started = time.perf_counter()
            page.goto(url)
            if self._on_login_page():
                # the session was dropped since the login (CI saw every dashboard of a logged-in browser sent to the
                # login page once, after Superset had restarted): log in again, then open the dashboard
                log.warning("Superset sent %s to its login page: logging in again", url)
                self._login()
                started = time.perf_counter()
                page.goto(url)
            self._wait_settled(url, timeout_s, responses)
            seconds = time.perf_counter() - started
            # a dashboard first viewed by its owner saves the labels it drew and may draw its grid again
            page.wait_for_load_state("networkidle", timeout=timeout_s * 1000)
            self._wait_settled(url, timeout_s, responses)
            charts = [_chart(holder) for holder in page.locator(CHART_HOLDER).all()]
            chart_data, failed = _chart_data(responses)
        finally:
            page.remove_listener("response", keep)
        return RenderedDashboard(url, seconds, charts, chart_data, failed)

    def _on_login_page(self) -> bool:
        return urllib.parse.urlparse(self.page.url).path.startswith("/login")

    def _wait_settled(self, url: str, timeout_s: float, responses: list[Response]) -> None:
        """Wait until every chart of the open dashboard settled; StackError saying what the page shows if none
        did within ``timeout_s``."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

        page = self.page
        try:
            page.wait_for_function(SETTLED_JS, timeout=timeout_s * 1000)
        except PlaywrightTimeoutError as exc:
            holders = page.locator(CHART_HOLDER)
            loading = holders.locator('[data-test="loading-indicator"]').count()
            statuses = sorted({r.status for r in responses})
            raise StackError(
                f"{url}: the charts did not settle within {timeout_s:.0f} s (the page is at {page.url}, titled "
                f"{page.title()!r}; {holders.count()} charts, {loading} loading; {len(responses)} chart data "
                f"answers, statuses {statuses or 'none'})"
            ) from exc

    def screenshot(self, path: Path) -> Path:
        """The whole page as a PNG."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path), full_page=True)
        return path


def _chart(holder: Any) -> RenderedChart:
    chart_id = int(holder.get_attribute("data-test-chart-id"))
    alert = holder.locator('[role="alert"]')
    error = " ".join(alert.first.inner_text().split()) if alert.count() else None
    return RenderedChart(
        chart_id,
        str(holder.get_attribute("data-test-chart-name")),
        str(holder.get_attribute("data-test-viz-type")),
        holder.locator(f"#chart-id-{chart_id}").count() > 0,
        error,
    )


def _chart_data(responses: list[Response]) -> tuple[dict[int, list[dict[str, Any]]], list[str]]:
    """The rows of each chart's first query, by chart id (from the request's ``form_data.slice_id``)."""
    data: dict[int, list[dict[str, Any]]] = {}
    failed: list[str] = []
    for response in responses:
        query = urllib.parse.parse_qs(urllib.parse.urlparse(response.url).query)
        form_data = json.loads(query.get("form_data", ["{}"])[0])
        slice_id = form_data.get("slice_id")
        if not response.ok:
            failed.append(f"{response.status} {response.url}")
        elif slice_id is not None:
            data[int(slice_id)] = list(response.json()["result"][0]["data"])
    return data, failed


def bundle_dashboards(folder: Path) -> dict[str, str]:
    """Title -> UUID of the dashboards of an export bundle (``config/dashboards/``)."""
    import yaml

    found = [yaml.safe_load(path.read_text()) for path in sorted((folder / "dashboards").glob("*.yaml"))]
    return {str(d["dashboard_title"]): str(d["uuid"]) for d in found}


def screenshot_dashboards(
    browser: DashboardBrowser, api: SupersetApi, dashboards: dict[str, str], folder: Path
) -> list[tuple[Path, RenderedDashboard]]:
    """Render each dashboard (title -> UUID) and save it as ``<folder>/<slugged title>.png``; a dashboard that is
    missing, or that shows an error banner, stops with one error naming it."""
    ids = api.dashboards_by_uuid(list(dashboards.values()))
    shots = []
    for title, dashboard_uuid in dashboards.items():
        if dashboard_uuid not in ids:
            raise StackError(f"dashboard {title!r} ({dashboard_uuid}) is not in Superset: start it with the bundle")
        shown = browser.render(ids[dashboard_uuid])
        if shown.errors:
            raise StackError(f"dashboard {title!r} shows errors: {shown.errors}")
        slug = "-".join("".join(ch if ch.isalnum() else " " for ch in title.lower()).split())
        shots.append((browser.screenshot(folder / f"{slug}.png"), shown))
    return shots
