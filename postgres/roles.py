"""Login roles of the serving database's groups (bi_reader, bi_all_tenants, lakehouse_loader)."""

from __future__ import annotations

from typing import Any

from psycopg import sql


def create_login(conn: Any, role: str, password: str, group: str) -> None:
    """Create the login role ``role`` with ``password`` as a member of ``group``, on ``conn`` (a psycopg connection
    of a role that may create roles)."""
    conn.execute(
        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE {}").format(
            sql.Identifier(role), sql.Literal(password), sql.Identifier(group)
        )
    )
