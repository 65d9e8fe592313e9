"""``lakehouse databricks check``: a read-only look at the Databricks workspace the ``databricks`` environment deploys
to, through ``databricks-sdk`` with ``DATABRICKS_HOST`` and ``DATABRICKS_TOKEN``. It lists the clusters and checks that
the configured Unity Catalog catalog, schemas and volume exist (and the cluster ``existing_cluster_id`` names, if
any). It only reads: every request is a GET, and nothing is created or changed.

A missing host or token, a host that cannot be reached, or a token the workspace refuses (401, or 403 on the first
request) raises WorkspaceAccessError naming the setting to fix."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lakehouse.config.settings import DatabricksSettings
from lakehouse.orchestration.errors import WorkspaceAccessError

HOST_ENV = "DATABRICKS_HOST"
TOKEN_ENV = "DATABRICKS_TOKEN"  # noqa: S105 - the variable's name, not a token
# how long the SDK retries a request (it retries an unreachable host too): 15 s instead of its default five minutes
RETRY_TIMEOUT_SECONDS = 15


@dataclass(frozen=True)
class Cluster:
    """One cluster of the workspace, as listed."""

    cluster_id: str
    name: str
    state: str


@dataclass(frozen=True)
class Finding:
    """Whether one object the configuration names exists; ``fix`` says what to do when it does not."""

    kind: str
    name: str
    present: bool
    fix: str = ""


@dataclass
class WorkspaceCheck:
    """What the check found in the workspace at ``host``."""

    host: str
    clusters: list[Cluster] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every object the configuration names exists."""
        return all(finding.present for finding in self.findings)


def credentials(environ: Mapping[str, str]) -> tuple[str, str]:
    """``DATABRICKS_HOST`` and ``DATABRICKS_TOKEN``; WorkspaceAccessError naming the one that is not set."""
    host, token = environ.get(HOST_ENV, "").strip(), environ.get(TOKEN_ENV, "").strip()
    if not host:
        raise WorkspaceAccessError(
            f"{HOST_ENV} is not set: export the workspace URL, e.g. {HOST_ENV}=https://adb-<id>.<n>.azuredatabricks.net"
        )
    if not token:
        raise WorkspaceAccessError(
            f"{TOKEN_ENV} is not set: export a personal access token of the workspace at {host} "
            "(Settings > Developer > Access tokens)"
        )
    return host, token


def check_workspace(
    databricks: DatabricksSettings, environ: Mapping[str, str], volumes: Iterable[str] = ()
) -> WorkspaceCheck:
    """List the clusters and look up the catalog, the schemas and the volumes (the configured one and ``volumes``)
    of ``databricks``, with GET requests only."""
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.config import Config

    host, token = credentials(environ)
    try:
        config = Config(host=host, token=token, auth_type="pat", retry_timeout_seconds=RETRY_TIMEOUT_SECONDS)
        client = WorkspaceClient(config=config)
    except ValueError as exc:
        raise WorkspaceAccessError(f"{HOST_ENV}={host} cannot be used: {_first_line(exc)}") from exc
    result = WorkspaceCheck(host=host)
    listed = _call(host, lambda: list(client.clusters.list()), first=True)
    result.clusters = [Cluster(c.cluster_id or "", c.cluster_name or "", _state(c.state)) for c in listed]
    if databricks.existing_cluster_id:
        result.findings.append(
            Finding(
                "cluster",
                databricks.existing_cluster_id,
                any(c.cluster_id == databricks.existing_cluster_id for c in result.clusters),
                "no such cluster: set LAKEHOUSE_DATABRICKS_CLUSTER_ID to a cluster listed above, or unset it",
            )
        )
    catalog = databricks.catalog
    lookups: list[tuple[str, str, Callable[[], Any], str]] = [
        ("catalog", catalog, lambda: client.catalogs.get(catalog), f"CREATE CATALOG {catalog}"),
    ]
    for schema in databricks.schemas:
        full_name = f"{catalog}.{schema}"
        lookups.append(("schema", full_name, _bind(client.schemas.get, full_name), f"CREATE SCHEMA {full_name}"))
    for volume in dict.fromkeys([databricks.volume, *volumes]):
        lookups.append(("volume", volume, _bind(client.volumes.read, volume), f"CREATE VOLUME {volume}"))
    for kind, name, lookup, create in lookups:
        result.findings.append(_find(host, kind, name, lookup, create))
    return result


def _bind(method: Callable[[str], Any], name: str) -> Callable[[], Any]:
    return lambda: method(name)


def _find(host: str, kind: str, name: str, lookup: Callable[[], Any], create: str) -> Finding:
    from databricks.sdk.errors import DatabricksError, NotFound, PermissionDenied

    setting = {"catalog": "databricks.catalog", "schema": "databricks.schemas", "volume": "databricks.volume"}[kind]
    try:
        _call(host, lookup, first=False)
    except NotFound:
        return Finding(kind, name, False, f"does not exist: {create}, or change {setting} in the environment file")
    except PermissionDenied as exc:
        return Finding(kind, name, False, f"this token may not read it ({_first_line(exc)}): ask for USE/READ on it")
    except DatabricksError as exc:
        return Finding(kind, name, False, f"could not be read ({_first_line(exc)})")
    return Finding(kind, name, True)


def _call(host: str, request: Callable[[], Any], first: bool) -> Any:
    """``request()``; credentials the workspace refuses (401 anywhere, 403 on the first request) and an unreachable
    host become WorkspaceAccessError."""
    from databricks.sdk.errors import DatabricksError, PermissionDenied, Unauthenticated
    from requests.exceptions import RequestException

    try:
        return request()
    except Unauthenticated as exc:
        raise _refused(host, 401, exc) from exc
    except PermissionDenied as exc:
        if first:
            raise _refused(host, 403, exc) from exc
        raise
    # the workspace answered (DatabricksError is an OSError too): the caller decides
    except DatabricksError:
        raise
    except (RequestException, TimeoutError, OSError) as exc:
        raise WorkspaceAccessError(
            f"{host} could not be reached ({_first_line(exc)}): check {HOST_ENV} (the workspace URL)"
        ) from exc


def _refused(host: str, status: int, exc: Exception) -> WorkspaceAccessError:
    return WorkspaceAccessError(
        f"{host} refused {TOKEN_ENV} ({status}: {_first_line(exc)}): set {TOKEN_ENV} to a valid personal access "
        f"token of this workspace"
    )


def _state(state: Any) -> str:
    return str(getattr(state, "value", state) or "UNKNOWN")


def _first_line(exc: BaseException) -> str:
    """The error's message, without the client configuration the SDK appends to 401 and 403 errors."""
    text = str(exc).strip().split(" Config: ", 1)[0].rstrip(".")
    return (text.splitlines() or [type(exc).__name__])[0][:200]
