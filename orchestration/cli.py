"""The ``lakehouse`` command: local stack, producing events, streaming jobs, Gold marts and loads."""

from __future__ import annotations

import logging
import sys
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from lakehouse.config import log_masking
from lakehouse.config.errors import LakehouseError
from lakehouse.config.settings import settings

app = typer.Typer(help=__doc__, no_args_is_help=True, pretty_exceptions_enable=False)
stack_app = typer.Typer(
    help="Start, stop and inspect the local stack (Kafka, PostgreSQL, the MLflow tracking server, the model server, "
    "Spark Connect, Airflow, Superset; with LAKEHOUSE_ENV=cluster also a Spark standalone cluster and an "
    "S3-compatible object store).",
    no_args_is_help=True,
)
app.add_typer(stack_app, name="stack")
databricks_app = typer.Typer(
    help="Databricks: write the asset bundle (databricks.yml) and check the workspace (read-only).",
    no_args_is_help=True,
)
app.add_typer(databricks_app, name="databricks")
console = Console()
REVENUE_STREAM_JOB = "lakehouse.spark.jobs.revenue_stream"


@app.command()
def setup(
    environments: Annotated[
        list[str] | None,
        typer.Option(
            "--environment",
            "-e",
            help="Also prepare this environment's jars and class archive (repeatable; `make test` adds cluster, "
            "the golden-data suite's second environment).",
        ),
    ] = None,
) -> None:
    """Resolve the pinned JVM jars (Delta, Spark Kafka connector, Kafka broker; hadoop-aws and s3proxy where the
    environment's lake is on s3a://) into the local cache, build the Spark drivers' class archive and the virtualenvs
    of the MLflow tracking server (where the environment's tracking server is on this machine) and of Superset there,
    and the system's Chromium for the dashboards' browser tests (Debian's package, when missing and this process may
    install it). The class archives are built while the virtualenvs install. Superset or Chromium failing to install
    is one warning line: the rest of the stack runs without them."""
    from concurrent.futures import ThreadPoolExecutor

    from lakehouse.config.settings import load_settings
    from lakehouse.scripts.errors import PrerequisiteError
    from lakehouse.scripts.mlflow_server import mlflow_venv
    from lakehouse.scripts.stack import driver_class_archive, resolve_jars
    from lakehouse.scripts.superset_browser import ensure_chromium
    from lakehouse.scripts.superset_server import superset_venv

    targets = [settings()] + [load_settings(name) for name in environments or [] if name != settings().name]
    # first, so that an unreachable Maven repository is reported at once
    jar_sets = {name: folder for target in targets for name, folder in resolve_jars(target).items()}
    for jar_set, folder in jar_sets.items():
        console.print(f"{jar_set:9} jars: {folder}")
    with ThreadPoolExecutor(max_workers=1) as jvm_work:
        archives = jvm_work.submit(lambda: [driver_class_archive(target) for target in targets])
        if settings().mlflow.server_on_this_machine:
            console.print(f"{'mlflow':9} venv: {mlflow_venv().ensure()}")
        if settings().superset is not None:
            try:
                console.print(f"{'superset':9} venv: {superset_venv().ensure()}")
            except PrerequisiteError as exc:
                console.print(f"[bold yellow]warning:[/] Superset is not installed: {exc}", highlight=False)
            try:
                console.print(f"{'chromium':9} : {ensure_chromium()}")
            except PrerequisiteError as exc:
                console.print(f"[bold yellow]warning:[/] the dashboard browser tests and screenshots need it: {exc}")
        for target, archive in zip(targets, archives.result(), strict=True):
            if archive is not None:
                console.print(f"{'spark':9} classes: {archive} ({target.name})", soft_wrap=True)


@stack_app.command("up")
def stack_up(
    components: Annotated[
        list[str] | None,
        typer.Argument(
            help="kafka, object-store, cluster, postgres, mlflow, model-server, spark, airflow, superset (default: all "
            "the environment has)"
        ),
    ] = None,
) -> None:
    """Start the local stack (idempotent: running components are left alone)."""
    from lakehouse.scripts.stack import COMPONENTS, LocalStack

    stack = LocalStack(settings())
    stack.up(tuple(components) if components else COMPONENTS)
    _print_status(stack)


@stack_app.command("down")
def stack_down() -> None:
    """Stop every component of the local stack; data stays under $LAKEHOUSE_HOME."""
    from lakehouse.scripts.stack import LocalStack

    LocalStack(settings()).down()
    console.print("local stack stopped")


@stack_app.command("status")
def stack_status() -> None:
    """Each component, up or down, with its address. Exit code 1 if anything is down."""
    from lakehouse.scripts.stack import LocalStack

    if not _print_status(LocalStack(settings())):
        raise typer.Exit(1)


@stack_app.command("env")
def stack_env(
    show_secrets: Annotated[
        bool,
        typer.Option("--show-secrets", help="Also print the passwords (Superset's admin, the Kafka principals')."),
    ] = False,
    secure_kafka: Annotated[
        bool,
        typer.Option(
            "--secure-kafka",
            help="Point the Kafka clients at the local broker's SASL_SSL listener: the streaming principal for every "
            "client, the producer principal for the producer.",
        ),
    ] = False,
) -> None:
    """Shell exports for using the stack: eval "$(lakehouse stack env)"."""
    from lakehouse.scripts.stack import LocalStack

    typer.echo(LocalStack(settings()).env_exports(show_secrets=show_secrets, secure_kafka=secure_kafka))


@stack_app.command("export-dashboards")
def stack_export_dashboards(
    to: Annotated[
        Path | None, typer.Option(help="Folder to write the export files to (default: config/dashboards/).")
    ] = None,
) -> None:
    """Write the running Superset's dashboards, with their charts and datasets, back into config/dashboards/ as
    export files (without its connection and its instance ids)."""
    from lakehouse.scripts.superset_dashboards import export_dashboards
    from lakehouse.scripts.superset_server import SupersetServer

    server = SupersetServer(settings())
    if not server.configured:
        raise LakehouseError(f"the environment {settings().name!r} has no superset section: no dashboards to export")
    api = server.admin_api()
    folder = to or server.dashboards_dir
    for path in export_dashboards(api, folder):
        typer.echo(folder / path)


@stack_app.command("screenshot-dashboards")
def stack_screenshot_dashboards(
    to: Annotated[Path, typer.Option(help="Folder to write one PNG per dashboard to.")] = Path("docs/img/dashboards"),
) -> None:
    """Render every dashboard of config/dashboards/ in headless Chromium on the running Superset, as its admin, and
    save each as a PNG (with how long it took to draw)."""
    from lakehouse.scripts.superset_browser import bundle_dashboards, screenshot_dashboards
    from lakehouse.scripts.superset_server import SupersetServer

    server = SupersetServer(settings())
    if not server.configured:
        raise LakehouseError(f"the environment {settings().name!r} has no superset section: no dashboards to render")
    with server.admin_browser() as browser:
        shots = screenshot_dashboards(browser, server.admin_api(), bundle_dashboards(server.dashboards_dir), to)
    for path, shown in shots:
        typer.echo(f"{path}  ({len(shown.charts)} charts drawn in {shown.seconds:.1f} s)")


def _print_status(stack: object) -> bool:
    table = Table("component", "state", "address")
    rows = stack.status()  # type: ignore[attr-defined]
    for row in rows:
        table.add_row(row.name, "[green]up[/]" if row.up else "[red]down[/]", row.address)
    console.print(table)
    return all(row.up for row in rows)


@app.command()
def topics() -> None:
    """Create every event type's topic (partitions and replication from the environment config)."""
    from lakehouse.kafka.admin import ensure_topics

    for topic, created in ensure_topics(settings()).items():
        console.print(f"{topic}: {'created' if created else 'exists'}")


@app.command()
def produce(
    event_type: Annotated[str | None, typer.Option(help="Generate synthetic events of this type.")] = None,
    count: Annotated[int, typer.Option(help="How many events to generate.")] = 1000,
    rate: Annotated[float, typer.Option(help="Messages per second, steady (0 = as fast as possible).")] = 0,
    tenants: Annotated[
        int | None, typer.Option(help="Number of tenants, named tenant_01, tenant_02, ... (default 5).")
    ] = None,
    tenant_id: Annotated[
        list[str] | None,
        typer.Option(
            help="Tenant id of the generated events; repeat it or separate ids by commas (not with --tenants)."
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed, for reproducible data.")] = None,
    topic: Annotated[str | None, typer.Option(help="With --file: the topic to send to.")] = None,
    file: Annotated[
        Path | None, typer.Option(help="Send each line of this file as one message, byte for byte.")
    ] = None,
    key_field: Annotated[
        str | None,
        typer.Option(help="With --file: the message key is this field of each line's JSON object (default: no key)."),
    ] = None,
) -> None:
    """Publish events to Kafka: synthetic ones (--event-type) or the lines of a file (--topic --file).

    Event types without a hand-written model get events made from their JSON Schema contracts."""
    from lakehouse.kafka.producer import EventProducer

    if file is not None:
        if not topic:
            raise typer.BadParameter("--file needs --topic")
        with EventProducer(settings()) as producer:
            producer.send_file(topic, file, key_field=key_field, rate=rate)
        return
    from lakehouse.kafka.generator import GeneratorOptions, generate

    if not event_type:
        raise typer.BadParameter("give --event-type (synthetic events) or --topic with --file")
    if key_field:
        raise typer.BadParameter("--key-field goes with --file: generated events are keyed by their kafka_key")
    ids = [name.strip() for value in tenant_id or [] for name in value.split(",") if name.strip()]
    if ids and tenants is not None:
        raise typer.BadParameter("give --tenants or --tenant-id, not both")
    options = GeneratorOptions(tenants=5 if tenants is None else tenants, tenant_ids=ids, seed=seed)
    messages = generate(event_type, count, options)
    with EventProducer(settings()) as producer:
        # the producer logs what it sent
        producer.send_events(event_type, messages, rate=rate, total=count)


@app.command()
def stream(
    event_type: Annotated[list[str] | None, typer.Option(help="Event types (default: all).")] = None,
    available_now: Annotated[bool, typer.Option(help="Process what is there, then exit.")] = False,
    trigger_seconds: Annotated[
        float | None, typer.Option(help="Micro-batch interval when running continuously (the job's default: 2).")
    ] = None,
    max_records_per_batch: Annotated[
        int | None, typer.Option(help="Most Kafka records per micro-batch and event type (the job's default).")
    ] = None,
) -> None:
    """Run the streaming job through spark-submit (or in this process, when so deployed): one query per event
    type, Kafka -> Bronze and Silver."""
    from lakehouse.spark.submit import job_exit_code

    args = [f"--event-type={name}" for name in event_type or []]
    if available_now:
        args.append("--available-now")
    if trigger_seconds is not None:
        args.append(f"--trigger-seconds={trigger_seconds}")
    if max_records_per_batch is not None:
        args.append(f"--max-records-per-batch={max_records_per_batch}")
    raise typer.Exit(job_exit_code(settings(), "lakehouse.spark.jobs.stream", args, streaming=True))


@app.command("stream-revenue")
def stream_revenue(
    available_now: Annotated[bool, typer.Option(help="Process what is there, then exit.")] = False,
    trigger_seconds: Annotated[
        float, typer.Option(help="Micro-batch interval when running continuously (seconds).")
    ] = 5.0,
) -> None:
    """Run the streaming Gold query of order_revenue_5min through spark-submit (or in this process, when so
    deployed): Silver orders -> 5-minute revenue windows, MERGEd into Gold and upserted into PostgreSQL."""
    from lakehouse.spark.submit import job_exit_code

    args = [f"--trigger-seconds={trigger_seconds}"]
    if available_now:
        args.append("--available-now")
    raise typer.Exit(job_exit_code(settings(), REVENUE_STREAM_JOB, args, streaming=True))


@app.command("rebuild-silver")
def rebuild_silver(
    event_type: Annotated[list[str] | None, typer.Option(help="Event types (default: all).")] = None,
) -> None:
    """Recompute Silver and the quarantine from Bronze with the current rules and contracts (stop the stream
    first)."""
    from lakehouse.spark.submit import job_exit_code

    args = [f"--event-type={name}" for name in event_type or []]
    raise typer.Exit(job_exit_code(settings(), "lakehouse.spark.jobs.silver", args))


@app.command()
def gold(
    mart: Annotated[str, typer.Argument(help="Mart name, e.g. fct_orders_daily")],
    start: Annotated[str, typer.Option(help="First day (YYYY-MM-DD), inclusive.")],
    end: Annotated[
        str, typer.Option(help="Day after the last day to build (YYYY-MM-DD): the interval is [start, end).")
    ],
    load: Annotated[bool, typer.Option(help="Also load the result into PostgreSQL.")] = True,
) -> None:
    """Build one Gold mart for [start, end) and check it (the DQ gate), then load it into PostgreSQL: what the
    mart's task group in the gold_marts DAG does, as one command. Spark runs as ``spark.deploy`` says."""
    from lakehouse.spark.submit import job_exit_code

    for value in (start, end):
        try:
            date.fromisoformat(value)
        except ValueError as exc:
            raise typer.BadParameter(f"{value!r} is not a date: use YYYY-MM-DD") from exc
    action = "all" if load else "build"
    raise typer.Exit(
        job_exit_code(settings(), "lakehouse.spark.jobs.gold", [action, mart, f"--start={start}", f"--end={end}"])
    )


@app.command()
def migrate() -> None:
    """Apply the versioned serving DDL in postgres/ddl to the serving database."""
    from lakehouse.postgres.migrate import migrate as apply

    applied = apply(settings().postgres_dsn())
    console.print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")


@app.command()
def demo() -> None:
    """Set up, start the stack, produce demo events, stream them, run the Gold DAG in Airflow, query Postgres."""
    from lakehouse.scripts.demo import run_demo

    run_demo(settings(), console)


@databricks_app.command("bundle")
def databricks_bundle(
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 if a bundle file is out of date.")
    ] = False,
    environment: Annotated[
        str, typer.Option(help="Environment file whose databricks section the jobs get.")
    ] = "databricks",
) -> None:
    """Write databricks.yml and config/databricks/*.job.yml from the configuration: the wheel, a continuous
    streaming job per event type and a Gold job per mart (commit the result)."""
    from lakehouse.config.settings import project_root
    from lakehouse.orchestration.databricks_bundle import build_bundle, outdated, write_bundle

    root = project_root()
    if root is None:
        raise LakehouseError("the bundle is written into a checkout of the repository: run this command from one")
    files = build_bundle(environment).files()
    if check:
        stale = outdated(root, files)
        for name in stale:
            typer.echo(f"out of date: {name}")
        if stale:
            typer.echo("run `lakehouse databricks bundle` and commit the result", err=True)
            raise typer.Exit(1)
        typer.echo(f"the bundle is up to date ({len(files)} files)")
        return
    changed = write_bundle(root, files)
    typer.echo(f"wrote {len(changed)} of {len(files)} bundle files" + (f": {', '.join(changed)}" if changed else ""))


@databricks_app.command("check")
def databricks_check(
    target: Annotated[
        str | None, typer.Option(help="A bundle target (dev, prod): also check the volume it deploys the wheel to.")
    ] = None,
    environment: Annotated[str, typer.Option(help="Environment file naming the catalog, schemas and volume.")] = (
        "databricks"
    ),
) -> None:
    """Read-only check of the workspace at DATABRICKS_HOST, with the token DATABRICKS_TOKEN: list the clusters and
    check that the configured Unity Catalog catalog, schemas and volume exist. Creates nothing. Exit code 1 when
    something is missing, 2 when the workspace cannot be asked."""
    import os

    from lakehouse.config.settings import load_settings
    from lakehouse.orchestration.databricks_bundle import build_bundle
    from lakehouse.orchestration.databricks_check import check_workspace, credentials

    credentials(os.environ)
    # the check reports what fails; the SDK's warnings (e.g. its start-up probe of an unreachable host) would repeat it
    logging.getLogger("databricks.sdk").setLevel(logging.ERROR)
    volumes: list[str] = []
    if target is not None:
        artifact_path = str(build_bundle(environment).target(target).get("workspace", {}).get("artifact_path", ""))
        if artifact_path.startswith("/Volumes/"):
            volumes.append(".".join(artifact_path.removeprefix("/Volumes/").split("/")[:3]))
    databricks = load_settings(environment).databricks
    if databricks is None:
        raise LakehouseError(f"environment {environment!r} has no databricks section: pass --environment databricks")
    result = check_workspace(databricks, os.environ, volumes)
    typer.echo(f"workspace {result.host}: {len(result.clusters)} cluster(s)")
    for cluster in result.clusters:
        typer.echo(f"  cluster {cluster.name} ({cluster.cluster_id}): {cluster.state}")
    for finding in result.findings:
        typer.echo(
            f"{'ok' if finding.present else 'problem':8}{finding.kind} {finding.name}"
            + ("" if finding.present else f": {finding.fix}")
        )
    problems = sum(not finding.present for finding in result.findings)
    if problems:
        typer.echo(f"{problems} of {len(result.findings)} checked objects are missing or unreadable")
        raise typer.Exit(1)
    typer.echo(f"all {len(result.findings)} checked objects exist")


def main() -> None:
    """Console-script entry point: a LakehouseError becomes one red line and exit code 2."""
    log_masking.install()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    try:
        app()
    except LakehouseError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {log_masking.mask_text(str(exc))}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
