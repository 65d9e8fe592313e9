"""Every Spark job is a plain script with ``--help``, as the README says (``spark-submit spark/jobs/<job>.py
--help``): the help is printed before any Spark session starts, so the plain interpreter shows the same text."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

JOBS = Path(__file__).resolve().parents[2] / "spark" / "jobs"


@pytest.mark.parametrize("job", ["stream", "revenue_stream", "silver", "gold", "sentiment"])
def test_job_prints_its_usage(job: str) -> None:
    result = subprocess.run(
        [sys.executable, str(JOBS / f"{job}.py"), "--help"], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: ")
    assert "--help" in result.stdout
