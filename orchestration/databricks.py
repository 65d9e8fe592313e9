"""The ``gold_marts`` tasks as Databricks runs (``LAKEHOUSE_ENV=databricks``): each build and load is a one-task
run submitted through ``apache-airflow-providers-databricks`` (``DatabricksSubmitRunOperator``, Jobs API
``runs/submit``) that runs the same job entry point with the same arguments as elsewhere, from the ``lakehouse``
wheel: ``lakehouse-job gold build <mart> --start … --end …``. The DQ gate between them stays an Airflow task that
reads what the build recorded in PostgreSQL, so a failed check still stops the load."""

from __future__ import annotations

import re
from typing import Any

from lakehouse.config.settings import Settings

PACKAGE = "lakehouse"
ENTRY_POINT = "lakehouse-job"
# the task's data interval, rendered by Airflow: the same days as elsewhere
INTERVAL = ["--start={{ data_interval_start | ds }}", "--end={{ data_interval_end | ds }}"]
_SECRET = re.compile(r"\{\{\s*(secrets/[^}\s]+)\s*\}\}")


def gold_run(settings: Settings, action: str, mart: str) -> dict[str, Any]:
    """The ``runs/submit`` payload of one Gold step (``build`` or ``load``) of ``mart``, as a template of the
    task's data interval (Airflow renders it; Databricks secret references pass through unrendered)."""
    if settings.databricks is None:
        raise ValueError(f"environment {settings.name} has no databricks section")
    databricks = settings.databricks
    task = {
        "task_key": f"{mart}_{action}",
        "python_wheel_task": {
            "package_name": PACKAGE,
            "entry_point": ENTRY_POINT,
            "parameters": ["gold", action, mart, *INTERVAL],
        },
        "libraries": [{"whl": databricks.wheel}],
        **_literal_secrets(databricks.cluster()),
    }
    return {
        "run_name": f"lakehouse gold_marts {mart} {action} {{{{ data_interval_start | ds }}}}",
        "timeout_seconds": databricks.timeout_seconds,
        "tasks": [task],
    }


def _literal_secrets(value: Any) -> Any:
    """``value`` with each Databricks secret reference ``{{secrets/scope/key}}`` written so that Airflow's Jinja
    renders it as itself: Databricks resolves it on the cluster, and its value never reaches Airflow."""
    if isinstance(value, dict):
        return {key: _literal_secrets(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_literal_secrets(item) for item in value]
    if isinstance(value, str):
        return _SECRET.sub(lambda found: "{{ '{{" + found.group(1) + "}}' }}", value)
    return value
