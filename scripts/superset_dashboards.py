"""The dashboards as code: ``config/dashboards/`` (Superset export files) as an assets bundle for Superset's import,
its digest, and the export of a running Superset's dashboards back into that folder."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import zipfile
from pathlib import Path
from typing import Any

import yaml

from lakehouse.scripts.errors import StackError
from lakehouse.scripts.superset_api import SupersetApi

# the connection's UUID in config/dashboards/ (and the connection's own when an import creates it)
DASHBOARDS_DATABASE_UUID = "5e0f2a3b-7c1d-4e8f-9a0b-1c2d3e4f5a6b"
# what Superset writes in place of a password in an exported URL (superset.constants.PASSWORD_MASK)
PASSWORD_MASK = "X" * 10
BUNDLE_FOLDER = "lakehouse_dashboards"
BUNDLE_KINDS = ("datasets", "charts", "dashboards")


def bundle_files(folder: Path) -> dict[str, bytes]:
    """The bundle's export files under ``folder`` (``datasets/``, ``charts/``, ``dashboards/``), by relative path."""
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for kind in BUNDLE_KINDS
        for path in sorted((folder / kind).rglob("*.yaml"))
    }


def bundle_digest(files: dict[str, bytes]) -> str:
    """SHA-256 over the bundle's paths and contents (no password is in them)."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.encode() + b"\0" + files[path] + b"\0")
    return digest.hexdigest()


def bundle_zip(files: dict[str, bytes]) -> bytes:
    """An assets bundle of ``files``: one top folder with its ``metadata.yaml``, built in memory."""
    metadata = {"version": "1.0.0", "type": "assets", "timestamp": "1970-01-01T00:00:00+00:00"}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr(f"{BUNDLE_FOLDER}/metadata.yaml", yaml.safe_dump(metadata))
        for path, content in sorted(files.items()):
            bundle.writestr(f"{BUNDLE_FOLDER}/{path}", content)
    return out.getvalue()


def export_dashboards(api: SupersetApi, folder: Path) -> list[str]:
    """Write the dashboards of the running Superset (with their charts and datasets) into ``folder`` as export
    files, replacing its ``datasets/``, ``charts/`` and ``dashboards/``; the database files are left out (the stack
    owns its connection) and datasets name the bundle's connection UUID. Returns the written paths."""
    ids = api.dashboard_ids()
    if not ids:
        raise StackError(f"Superset on {api.url} has no dashboard to export")
    written: dict[str, bytes] = {}
    with zipfile.ZipFile(io.BytesIO(api.export_dashboards(ids))) as exported:
        for member in exported.namelist():
            path = member.split("/", 1)[1]
            kind = path.split("/", 1)[0]
            if kind not in BUNDLE_KINDS or not path.endswith(".yaml"):
                continue
            config = without_instance_ids(kind, yaml.safe_load(exported.read(member)))
            written[_export_path(kind, config)] = yaml.safe_dump(config, sort_keys=False, width=120).encode()
    for kind in BUNDLE_KINDS:
        shutil.rmtree(folder / kind, ignore_errors=True)
    for path, content in written.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(content)
    return sorted(written)


def without_instance_ids(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """An exported file without the ids of the Superset it came from (the import sets them again): a re-export of
    unchanged dashboards writes the same files, whichever Superset they come from."""
    if kind == "datasets":
        config["database_uuid"] = DASHBOARDS_DATABASE_UUID
    elif kind == "charts":
        _chart_form_data(config.get("params") or {})
        if config.get("query_context"):
            context = json.loads(config["query_context"])
            context["datasource"] = {"id": 0, "type": "table"}
            _chart_form_data(context.get("form_data") or {})
            for query in context.get("queries", []):
                if "datasource" in query:
                    query["datasource"] = context["datasource"]
            config["query_context"] = json.dumps(context, separators=(",", ":"))
    else:
        for item in (config.get("position") or {}).values():
            if isinstance(item, dict) and item.get("type") == "CHART":
                item["meta"]["chartId"] = 0
        metadata = config.get("metadata") or {}
        for native_filter in metadata.get("native_filter_configuration", []):
            native_filter.pop("chartsInScope", None)
        metadata.pop("chart_configuration", None)
        metadata.pop("global_chart_configuration", None)
    return config


def _chart_form_data(form_data: dict[str, Any]) -> None:
    if "datasource" in form_data:
        form_data["datasource"] = "0__table"
    form_data.pop("slice_id", None)
    if "dashboards" in form_data:
        form_data["dashboards"] = []


def _export_path(kind: str, config: dict[str, Any]) -> str:
    """A stable file name (Superset's own export puts ids in them, which differ between Superset instances)."""
    if kind == "datasets":
        return f"datasets/lakehouse_serving/{file_name(config['table_name'])}.yaml"
    title = config["slice_name"] if kind == "charts" else config["dashboard_title"]
    return f"{kind}/{file_name(title)}.yaml"


def file_name(title: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", title).strip("_")


def with_database_uuid(files: dict[str, bytes], database_uuid: str) -> dict[str, bytes]:
    """The bundle with its datasets pointing at the connection ``database_uuid``."""
    line = re.compile(rb"^database_uuid: .*$", re.MULTILINE)
    return {
        path: line.sub(f"database_uuid: {database_uuid}".encode(), content) if path.startswith("datasets/") else content
        for path, content in files.items()
    }


def load_yaml(content: bytes) -> Any:
    """``yaml.safe_load`` with libyaml's parser when PyYAML has it (the bundle's charts are long lines of JSON)."""
    return yaml.load(content, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506


def refused_files(log_file: Path, offset: int) -> list[tuple[str, str]]:
    """The bundle files Superset's log says it refused after ``offset``, with its reason."""
    if not log_file.is_file():
        return []
    with log_file.open("rb") as lines:
        lines.seek(offset)
        text = lines.read().decode(errors="replace")
    return re.findall(r"Schema validation failed for (\S+) \(prefix: \w+\): (.*)", text)
