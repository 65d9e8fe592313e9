"""serving.v_stream_health, what BI reads of the streams' accounting: per hour and query, the batches, the rows
and where they went, the fault shares and the source lag, against the same figures computed here from the rows
inserted into lakehouse_meta.stream_batches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest

from lakehouse.config.settings import Settings

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def test_the_view_sums_each_hour_and_query_and_reads_as_bi_reader(postgres_stack: Settings, unique: str) -> None:
    query = f"stream_health_{unique}"
    # batch id, minutes after T0 it finished, rows read, landed, dead-lettered, quarantined, deduplicated, lag ms
    batches = [
        (0, 5, 100, 90, 4, 3, 3, 1200),
        (1, 20, 50, 50, 0, 0, 0, 800),
        (2, 50, 10, 7, 0, 1, 2, 3000),
        (3, 70, 0, 0, 0, 0, 0, None),  # an empty batch: no rows, no event time, no lag
    ]
    dsn = postgres_stack.postgres_dsn()
    with psycopg.connect(dsn, autocommit=True) as conn:
        try:
            for batch, minutes, read, landed, dead, quarantined, dedup, lag in batches:
                finished = T0 + timedelta(minutes=minutes)
                conn.execute(
                    "INSERT INTO lakehouse_meta.stream_batches (query, app_id, batch_id, layer, source, status, "
                    "offset_ranges, input_rows, output_rows, dead_letter_rows, quarantined_rows, deduplicated_rows, "
                    "finished_at, processing_ms, source_lag_ms) "
                    "VALUES (%s, 'app', %s, 'silver', 'orders', 'ok', '{}', %s, %s, %s, %s, %s, %s, 100, %s)",
                    (query, batch, read, landed, dead, quarantined, dedup, finished, lag),
                )
            conn.execute("SET ROLE bi_reader")
            found = conn.execute(
                "SELECT hour, batches, input_rows, output_rows, dead_letter_rows, quarantined_rows, deduplicated_rows, "
                "dead_letter_share, quarantined_share, max_source_lag_s, p95_source_lag_s, latest_batch_at "
                "FROM serving.v_stream_health WHERE query = %s ORDER BY hour",
                (query,),
            ).fetchall()
            conn.execute("RESET ROLE")
        finally:
            conn.execute("RESET ROLE")
            conn.execute("DELETE FROM lakehouse_meta.stream_batches WHERE query = %s", (query,))

    expected = []
    for hour in sorted({(T0 + timedelta(minutes=b[1])).replace(minute=0) for b in batches}):
        rows = [b for b in batches if (T0 + timedelta(minutes=b[1])).replace(minute=0) == hour]
        read, dead, quarantined = (sum(b[i] for b in rows) for i in (2, 4, 5))
        lags = sorted(b[7] for b in rows if b[7] is not None)
        p95 = None
        if lags:  # percentile_cont: linear between the closest ranks
            rank = 0.95 * (len(lags) - 1)
            low = int(rank)
            p95 = lags[low] + (lags[min(low + 1, len(lags) - 1)] - lags[low]) * (rank - low)
        expected.append(
            (
                hour,
                len(rows),
                read,
                sum(b[3] for b in rows),
                dead,
                quarantined,
                sum(b[6] for b in rows),
                dead / read if read else None,
                quarantined / read if read else None,
                max(lags) / 1000 if lags else None,
                p95 / 1000 if p95 is not None else None,
                T0 + timedelta(minutes=max(b[1] for b in rows)),
            )
        )
    assert [tuple(_rounded(v) for v in row) for row in found] == [tuple(_rounded(v) for v in row) for row in expected]


def _rounded(value: object) -> object:
    """Numbers as floats to 9 decimals (PostgreSQL gives the lag as numeric, the shares as double)."""
    return round(float(value), 9) if isinstance(value, int | float | Decimal) and not isinstance(value, bool) else value
