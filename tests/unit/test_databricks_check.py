"""``lakehouse databricks check`` against a local HTTP server that stands in for the workspace at the API boundary:
it answers each GET with a response in the documented shape from tests/fixtures/databricks/ (see its README) and
records every request. The command runs as a user runs it (the console script, in a process of its own) with
``databricks-sdk`` doing the HTTP; no workspace is needed. What needs a real workspace (the SDK against the real
service, real permissions) is listed in docs/deploy.md."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "databricks"
LAKEHOUSE = str(Path(sys.executable).parent / "lakehouse")
TOKEN = "dapi-not-a-real-token"
# what config/environments/databricks.yaml names, read here without the code under test
_SECTION = yaml.safe_load((ROOT / "config" / "environments" / "databricks.yaml").read_text())["databricks"]
# the catalog's default: "${LAKEHOUSE_CATALOG:-lakehouse}"
CATALOG = re.fullmatch(r"\$\{LAKEHOUSE_CATALOG:-(\w+)\}", _SECTION["catalog"]).group(1)  # type: ignore[union-attr]
SCHEMAS, VOLUME = _SECTION["schemas"], _SECTION["volume"]
WELL_KNOWN = "/.well-known/databricks-config"
CLUSTERS = "/api/2.1/clusters/list"
UC = "/api/2.1/unity-catalog"
ALL_PRESENT = {
    WELL_KNOWN: (200, "well_known_databricks_config.json"),
    CLUSTERS: (200, "clusters_list.json"),
    f"{UC}/catalogs/{CATALOG}": (200, f"catalog_{CATALOG}.json"),
    **{f"{UC}/schemas/{CATALOG}.{name}": (200, f"schema_{CATALOG}.{name}.json") for name in SCHEMAS},
    f"{UC}/volumes/{VOLUME}": (200, f"volume_{VOLUME}.json"),
}
# settings the databricks environment file needs; made up, none is a credential
ENVIRONMENT = {
    "LAKEHOUSE_LAKE_ROOT": "abfss://lake@acme.dfs.core.windows.net/lakehouse",
    "LAKEHOUSE_CHECKPOINT_ROOT": "abfss://lake@acme.dfs.core.windows.net/checkpoints",
    "EVENTHUBS_NAMESPACE": "acme-events",
    "EVENTHUBS_CONNECTION_STRING": "Endpoint=sb://acme-events.servicebus.windows.net/;SharedAccessKey=not-a-real-key",
    "LAKEHOUSE_PG_DSN": "postgresql://loader:not-a-real-password@db.example.com:5432/lakehouse",
}


class Workspace(ThreadingHTTPServer):
    """Answers GETs from ``routes`` (path -> status and fixture file), 404 otherwise, and records every request."""

    def __init__(self, routes: dict[str, tuple[int, str]]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes = routes
        self.requests: list[tuple[str, str, str]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def methods(self) -> set[str]:
        return {method for method, _, _ in self.requests}

    def paths(self) -> set[str]:
        return {path for _, path, _ in self.requests}


class _Handler(BaseHTTPRequestHandler):
    server: Workspace

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _record(self) -> str:
        path = urlsplit(self.path).path
        self.server.requests.append((self.command, path, self.headers.get("Authorization", "")))
        return path

    def do_GET(self) -> None:
        path = self._record()
        if path not in self.server.routes:
            self._answer(404, b'{"error_code": "ENDPOINT_NOT_FOUND", "message": "No API found"}')
            return
        status, name = self.server.routes[path]
        self._answer(status, (FIXTURES / name).read_bytes())

    def _refuse(self) -> None:
        self._record()
        self._answer(405, b'{"error_code": "BAD_REQUEST", "message": "the test workspace answers GET only"}')

    def do_POST(self) -> None:
        self._refuse()

    def do_PUT(self) -> None:
        self._refuse()

    def do_PATCH(self) -> None:
        self._refuse()

    def do_DELETE(self) -> None:
        self._refuse()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def workspace(request: pytest.FixtureRequest) -> Iterator[Workspace]:
    server = Workspace(dict(getattr(request, "param", ALL_PRESENT)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    keep = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LAKEHOUSE_", "AIRFLOW", "DATABRICKS_", "BUNDLE_VAR_")) and "proxy" not in k.lower()
    }
    return {
        **keep,
        **ENVIRONMENT,
        "HOME": str(tmp_path),
        "LAKEHOUSE_HOME": str(tmp_path / "lakehouse"),
        "DATABRICKS_CONFIG_FILE": str(tmp_path / "no-databrickscfg"),
        "NO_PROXY": "127.0.0.1,localhost",
        "COLUMNS": "200",
        **extra,
    }


def _check(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LAKEHOUSE, "databricks", "check", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def _error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_everything_present_exits_0_with_a_summary_after_get_requests_only(
    workspace: Workspace, tmp_path: Path
) -> None:
    result = _check(_env(tmp_path, DATABRICKS_HOST=workspace.url, DATABRICKS_TOKEN=TOKEN))

    assert result.returncode == 0, result.stdout + result.stderr
    clusters = json.loads((FIXTURES / "clusters_list.json").read_text())["clusters"]
    for cluster in clusters:
        assert f"cluster {cluster['cluster_name']} ({cluster['cluster_id']}): {cluster['state']}" in result.stdout
    assert f"{len(clusters)} cluster(s)" in result.stdout
    expected = [f"catalog {CATALOG}", *(f"schema {CATALOG}.{s}" for s in SCHEMAS), f"volume {VOLUME}"]
    ok_lines = [line.split(None, 1)[1] for line in result.stdout.splitlines() if line.startswith("ok ")]
    assert ok_lines == expected
    assert f"all {len(expected)} checked objects exist" in result.stdout
    assert workspace.methods() == {"GET"}
    assert workspace.paths() == set(ALL_PRESENT)
    assert {auth for _, path, auth in workspace.requests if path != WELL_KNOWN} == {f"Bearer {TOKEN}"}
    assert TOKEN not in result.stdout + result.stderr


MISSING_GOLD = {
    **ALL_PRESENT,
    f"{UC}/schemas/{CATALOG}.gold": (404, "error_schema_does_not_exist.json"),
}


@pytest.mark.parametrize("workspace", [MISSING_GOLD], indirect=True)
def test_a_missing_schema_fails_naming_it_and_how_to_create_it(workspace: Workspace, tmp_path: Path) -> None:
    result = _check(_env(tmp_path, DATABRICKS_HOST=workspace.url, DATABRICKS_TOKEN=TOKEN))

    assert result.returncode == 1, result.stdout + result.stderr
    problems = [line for line in result.stdout.splitlines() if line.startswith("problem")]
    assert len(problems) == 1
    assert f"schema {CATALOG}.gold" in problems[0] and f"CREATE SCHEMA {CATALOG}.gold" in problems[0]
    assert f"ok      schema {CATALOG}.bronze" in result.stdout
    assert f"1 of {len(SCHEMAS) + 2} checked objects are missing or unreadable" in result.stdout
    assert workspace.methods() == {"GET"}


@pytest.mark.parametrize("missing", ["DATABRICKS_HOST", "DATABRICKS_TOKEN"])
def test_a_missing_host_or_token_is_one_line_naming_it(workspace: Workspace, tmp_path: Path, missing: str) -> None:
    given = {"DATABRICKS_HOST": workspace.url, "DATABRICKS_TOKEN": TOKEN}
    del given[missing]

    line = _error_line(_check(_env(tmp_path, **given)))

    assert f"{missing} is not set" in line
    assert workspace.requests == []


@pytest.mark.parametrize(
    ("workspace", "status"),
    [
        ({**ALL_PRESENT, CLUSTERS: (401, "error_unauthenticated.json")}, 401),
        ({**ALL_PRESENT, CLUSTERS: (403, "error_permission_denied.json")}, 403),
    ],
    indirect=["workspace"],
)
def test_refused_credentials_are_one_line_naming_the_token(workspace: Workspace, tmp_path: Path, status: int) -> None:
    line = _error_line(_check(_env(tmp_path, DATABRICKS_HOST=workspace.url, DATABRICKS_TOKEN=TOKEN)))

    assert f"refused DATABRICKS_TOKEN ({status}" in line and "set DATABRICKS_TOKEN" in line
    assert TOKEN not in line
    assert workspace.methods() == {"GET"}


def test_an_unknown_bundle_target_is_one_line_naming_the_targets(workspace: Workspace, tmp_path: Path) -> None:
    env = _env(tmp_path, DATABRICKS_HOST=workspace.url, DATABRICKS_TOKEN=TOKEN)

    line = _error_line(_check(env, "--target", "staging"))

    assert "no target 'staging'" in line and "dev, prod" in line
    assert workspace.requests == []


def test_the_prod_target_checks_the_volume_it_deploys_the_wheel_to(workspace: Workspace, tmp_path: Path) -> None:
    bundle = yaml.safe_load((ROOT / "databricks.yml").read_text())
    artifact_path = bundle["targets"]["prod"]["workspace"]["artifact_path"]
    volume = ".".join(artifact_path.removeprefix("/Volumes/").split("/"))

    result = _check(_env(tmp_path, DATABRICKS_HOST=workspace.url, DATABRICKS_TOKEN=TOKEN), "--target", "prod")

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{UC}/volumes/{volume}" in workspace.paths()
    assert f"ok      volume {volume}" in result.stdout
    assert workspace.methods() == {"GET"}
