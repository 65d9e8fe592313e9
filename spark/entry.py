"""``lakehouse-job <job> [arguments]``: run one job of ``lakehouse.spark.jobs`` in this process, on the Spark
session the platform gives it. It is the wheel's entry point for Databricks (a ``python_wheel_task``), where the
cluster's driver is already running; ``lakehouse-job gold build fct_orders_daily --start … --end …`` is what
``spark-submit spark/jobs/gold.py build …`` is elsewhere."""

from __future__ import annotations

import importlib
import pkgutil
import sys

from lakehouse.spark import jobs
from lakehouse.spark.jobs.common import run_job

# modules of lakehouse.spark.jobs that are jobs (they have a main)
NOT_JOBS = {"common"}


def job_names() -> list[str]:
    """The jobs ``lakehouse-job`` runs."""
    return sorted(m.name for m in pkgutil.iter_modules(jobs.__path__) if m.name not in NOT_JOBS)


def main(argv: list[str] | None = None) -> None:
    """Run ``argv[0]``'s main with the rest of ``argv`` (default: this process's arguments)."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in job_names():
        sys.exit(f"usage: lakehouse-job {{{','.join(job_names())}}} [arguments] (got {args[:1] or 'nothing'})")
    module = importlib.import_module(f"lakehouse.spark.jobs.{args[0]}")
    run_job(module.main, args[1:])
