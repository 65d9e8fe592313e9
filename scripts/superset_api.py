"""A client of Apache Superset's REST API (``/api/v1``), logged in as one user: JSON calls, multipart uploads (an
assets import) and downloads (an export)."""

from __future__ import annotations

import http.cookiejar
import io
import json
import secrets
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


class SupersetApi:
    """A client of Superset's REST API, logged in as one user (JWT plus the CSRF token its POSTs need)."""

    def __init__(self, url: str, username: str, password: str) -> None:
        self.url = url.rstrip("/")
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        login = self._send(
            "POST",
            "/api/v1/security/login",
            {"username": username, "password": password, "provider": "db", "refresh": False},
            {},
        )
        self._headers = {"Authorization": f"Bearer {login['access_token']}", "Referer": self.url}
        csrf = self._send("GET", "/api/v1/security/csrf_token/", None, self._headers)
        self._headers["X-CSRFToken"] = csrf["result"]

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One API call; its JSON answer (an HTTPError for a status of 400 or more)."""
        return self._send(method, path, body, self._headers)

    def _send(self, method: str, path: str, body: dict[str, Any] | None, headers: dict[str, str]) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        # a JSON content type without a body makes some endpoints (a chart's data) answer 400
        sent = {**headers, "Content-Type": "application/json"} if data is not None else headers
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method, headers=sent)  # noqa: S310
        with self._opener.open(request, timeout=120) as response:
            return json.loads(response.read() or b"null")

    def upload(self, path: str, fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> Any:
        """A multipart/form-data POST (``fields`` as text, ``files`` as name -> (file name, content)); its answer."""
        boundary = secrets.token_hex(16)
        body = io.BytesIO()
        for name, value in fields.items():
            body.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
            body.write(value.encode() + b"\r\n")
        for name, (file_name, content) in files.items():
            body.write(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{file_name}"\r\n'
                "Content-Type: application/zip\r\n\r\n".encode()
            )
            body.write(content + b"\r\n")
        body.write(f"--{boundary}--\r\n".encode())
        headers = {**self._headers, "Content-Type": f"multipart/form-data; boundary={boundary}"}
        request = urllib.request.Request(  # noqa: S310
            f"{self.url}{path}", data=body.getvalue(), method="POST", headers=headers
        )
        with self._opener.open(request, timeout=300) as response:
            return json.loads(response.read() or b"null")

    def download(self, path: str) -> bytes:
        """The raw body of a GET (an export's zip)."""
        request = urllib.request.Request(f"{self.url}{path}", method="GET", headers=self._headers)  # noqa: S310
        with self._opener.open(request, timeout=300) as response:
            return bytes(response.read())

    def import_assets(self, bundle: bytes, passwords: dict[str, str]) -> None:
        """Import an assets bundle (``/api/v1/assets/import/``: databases, datasets, charts and dashboards, each
        overwritten when its UUID exists); ``passwords`` maps a database file to its password."""
        self.upload(
            "/api/v1/assets/import/",
            {"passwords": json.dumps(passwords)},
            {"bundle": ("dashboards.zip", bundle)},
        )

    def dashboard_ids(self, uuid: str | None = None) -> list[int]:
        """The ids of the dashboards (of the one with ``uuid`` when given)."""
        filters = f"filters:!((col:uuid,opr:eq,value:'{uuid}'))," if uuid else ""
        query = urllib.parse.quote(f"({filters}page_size:100)")
        return [int(d["id"]) for d in self.request("GET", f"/api/v1/dashboard/?q={query}")["result"]]

    def dashboards_by_uuid(self, uuids: list[str]) -> dict[str, int]:
        """The ids of those of the dashboards ``uuids`` that exist, by UUID (one request)."""
        values = ",".join(f"'{u}'" for u in uuids)
        query = urllib.parse.quote(f"(columns:!(id,uuid),filters:!((col:uuid,opr:in,value:!({values}))),page_size:100)")
        return {str(d["uuid"]): int(d["id"]) for d in self.request("GET", f"/api/v1/dashboard/?q={query}")["result"]}

    def export_dashboards(self, ids: list[int]) -> bytes:
        """The export zip of the dashboards ``ids`` (with their charts, datasets and databases)."""
        query = urllib.parse.quote(f"!({','.join(str(i) for i in ids)})")
        return self.download(f"/api/v1/dashboard/export/?q={query}")

    def databases(self, name: str) -> list[dict[str, Any]]:
        """The database connections called ``name``."""
        query = urllib.parse.quote(f"(filters:!((col:database_name,opr:eq,value:'{name}')))")
        return list(self.request("GET", f"/api/v1/database/?q={query}")["result"])

    def ensure_database(self, name: str, sqlalchemy_uri: str) -> int:
        """The id of the database connection ``name``, created read-only (no DML, no CTAS, no uploads) for SQL Lab
        unless it exists."""
        found = self.databases(name)
        if found:
            return int(found[0]["id"])
        created = self.request(
            "POST",
            "/api/v1/database/",
            {
                "database_name": name,
                "sqlalchemy_uri": sqlalchemy_uri,
                "expose_in_sqllab": True,
                "allow_dml": False,
                "allow_ctas": False,
                "allow_cvas": False,
                "allow_file_upload": False,
                "allow_run_async": False,
            },
        )
        return int(created["id"])


def error_message(error: urllib.error.HTTPError) -> str:
    """The message of a Superset API error answer (its body's ``message``, or its first error's)."""
    try:
        body = json.loads(error.read())
    except ValueError:
        return error.reason
    errors = body.get("errors") or [{}]
    return str(body.get("message") or errors[0].get("message") or body)


def import_error(error: urllib.error.HTTPError) -> str:
    """What Superset said about a refused import, naming the file it refused when it says one."""
    try:
        body = json.loads(error.read())
    except ValueError:
        return error.reason
    problems = []
    for item in body.get("errors") or []:
        for key, value in (item.get("extra") or {}).items():
            if key.endswith(".yaml"):
                problems.append(f"{key}: {value}")
        if not problems:
            problems.append(str(item.get("message")))
    return "; ".join(problems) or str(body.get("message") or body)
