"""The DDL files: naming, ordering, checksums, and what the shipped files promise (no database needed)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from lakehouse.postgres.errors import ServingError
from lakehouse.postgres.migrate import DDL_DIR, migration_files

FCT_COLUMNS = [
    "tenant_id",
    "order_date",
    "region",
    "channel",
    "product_category",
    "orders_placed",
    "orders_cancelled",
    "units",
    "gross_revenue",
    "cancelled_revenue",
    "avg_order_value",
    "unique_customers",
    "orders_with_coupon",
]


def test_files_are_ordered_by_version_number_not_by_name(tmp_path: Path) -> None:
    for name in ("V10__ten.sql", "V2__two.sql", "V001__one.sql"):
        (tmp_path / name).write_text(f"-- {name}\n")
    files = migration_files(tmp_path)
    assert [(m.version, m.name) for m in files] == [(1, "V001__one.sql"), (2, "V2__two.sql"), (10, "V10__ten.sql")]
    assert files[0].checksum == hashlib.sha256(b"-- V001__one.sql\n").hexdigest()


def test_badly_named_and_duplicate_files_are_all_reported(tmp_path: Path) -> None:
    for name in ("V1__one.sql", "V01__again.sql", "v2__lower.sql", "V3-dash.sql", "V4__Upper.sql"):
        (tmp_path / name).write_text("SELECT 1;\n")
    with pytest.raises(ServingError) as error:
        migration_files(tmp_path)
    message = str(error.value)
    for name in ("V01__again.sql", "v2__lower.sql", "V3-dash.sql", "V4__Upper.sql"):
        assert name in message
    assert "renumber" in message


def test_shipped_files_are_contiguous_from_v001() -> None:
    files = migration_files(DDL_DIR)
    assert [m.version for m in files] == list(range(1, len(files) + 1))
    assert files[0].name == "V001__serving_schema.sql"


def test_every_column_of_the_fact_table_is_documented() -> None:
    text = "\n".join(m.path.read_text() for m in migration_files(DDL_DIR))
    assert "COMMENT ON TABLE serving.fct_orders_daily IS" in text
    for column in FCT_COLUMNS:
        assert re.search(rf"COMMENT ON COLUMN serving\.fct_orders_daily\.{column} IS", text), column
