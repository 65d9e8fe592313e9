"""
### Gold marts → PostgreSQL

Every mart in `config/marts/` gets a task group **build → dq_gate → load** for the run's data interval
`[data_interval_start, data_interval_end)` (one day):

* **build** recomputes, with Spark, the interval's days plus the days touched by Silver rows that arrived since
  the mart's last load (late data), replaces exactly those days of the Gold Delta table (`replaceWhere`), and
  evaluates the DQ checks (rows exist where Silver has events, the grain is unique, Gold totals reconcile with
  Silver), recording them in `lakehouse_meta.gold_checks`;
* **dq_gate** reads that record (no Spark) and stops the load when a check failed — failing the task without
  retries (the data will not change by waiting) — so serving keeps its previous data;
* **load** COPYs the rebuilt days into a staging table and swaps them into `serving.<mart>` in one transaction.

Backfill: `airflow backfill create --dag-id gold_marts --from-date 2026-11-01 --to-date 2026-11-07`.
Failures write a row to `serving.load_alerts`. build and load reach Spark as the environment's `spark.deploy`
says: as Spark Connect clients of the local stack's server (`connect`, the local default), with `spark-submit`
against the environment's master, or hosting the driver in the task's process (`in-process`). With
`LAKEHOUSE_ENV=databricks`, build and load are Databricks runs of the same job entry point
(`DatabricksSubmitRunOperator` on the connection `databricks_default`, or the configured id); the gate is unchanged.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Asset, TaskGroup, task
from airflow.timetables.interval import CronDataIntervalTimetable

from lakehouse.config.marts import load_marts
from lakehouse.config.settings import settings
from lakehouse.orchestration.airflow_tasks import run_dq_gate, run_gold_step, task_defaults
from lakehouse.orchestration.databricks import gold_run

environment = settings()
on_databricks = environment.spark.master == "databricks"

default_args = task_defaults(max_retry_delay=timedelta(minutes=10))

with DAG(
    dag_id="gold_marts",
    description="Build Gold marts from Silver for each day and load them into PostgreSQL",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
    tags=["lakehouse", "gold", "postgres"],
    doc_md=__doc__,
) as dag:
    for spec in load_marts().values():
        silver_assets = [Asset(f"lakehouse://silver/{source}") for source in spec.inputs.silver]
        serving_asset = Asset(f"lakehouse://serving/{spec.serving_table}")

        with TaskGroup(group_id=spec.name, tooltip=spec.description):

            @task(task_id="build", inlets=silver_assets)
            def build(mart: str, data_interval_start: datetime, data_interval_end: datetime) -> None:
                """Recompute the mart for the data interval from Silver."""
                run_gold_step("build", mart, data_interval_start, data_interval_end)

            @task(task_id="dq_gate")
            def dq_gate(mart: str, data_interval_start: datetime, data_interval_end: datetime) -> None:
                """Rows, key uniqueness and Silver-to-Gold reconciliation, as recorded by the build."""
                run_dq_gate(mart, data_interval_start, data_interval_end)

            @task(task_id="load", outlets=[serving_asset])
            def load(mart: str, data_interval_start: datetime, data_interval_end: datetime) -> None:
                """COPY the interval into PostgreSQL and swap it in atomically."""
                run_gold_step("load", mart, data_interval_start, data_interval_end)

            if on_databricks:
                from airflow.providers.databricks.operators.databricks import DatabricksSubmitRunOperator

                build_run, load_run = (
                    DatabricksSubmitRunOperator(
                        task_id=action,
                        json=gold_run(environment, action, spec.name),
                        databricks_conn_id=environment.airflow.databricks_conn_id,
                        doc_md=f"`lakehouse-job gold {action} {spec.name}` for the data interval, as a Databricks run",
                        **assets,
                    )
                    for action, assets in (("build", {"inlets": silver_assets}), ("load", {"outlets": [serving_asset]}))
                )
                build_run >> dq_gate(spec.name) >> load_run  # type: ignore[call-arg]
            else:
                build(spec.name) >> dq_gate(spec.name) >> load(spec.name)  # type: ignore[call-arg]
