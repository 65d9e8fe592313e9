"""Bronze and Silver in one Spark application: Kafka -> Bronze -> Silver for every event type, with the same
checkpoints (and so the same exactly-once guarantees) as running the two jobs separately.

spark-submit spark/jobs/pipeline.py [--event-type orders] [--available-now]
"""

from __future__ import annotations

from lakehouse.config.settings import settings as current_settings
from lakehouse.spark.io import reference
from lakehouse.spark.jobs import bronze, silver
from lakehouse.spark.jobs.common import await_queries, run_job, selected_specs, streaming_arguments
from lakehouse.spark.session import get_spark


def main(argv: list[str]) -> None:
    """Start the Bronze queries (which create missing Bronze tables), then the Silver queries on top."""
    args = streaming_arguments("pipeline", __doc__ or "").parse_args(argv)
    settings = current_settings()
    specs = selected_specs(args.event_type)
    spark = get_spark("lakehouse-pipeline", own_driver=True)
    reference.refresh(spark, settings, [j.reference for spec in specs for j in spec.enrich])
    bronze_queries = [
        bronze.start(spark, settings, spec, args.available_now, args.trigger_seconds, args.max_records_per_batch)
        for spec in specs
    ]
    if args.available_now:
        # Silver must see everything Bronze took in this run
        await_queries(spark, bronze_queries, available_now=True)
    silver_queries = [silver.start(spark, settings, spec, args.available_now, args.trigger_seconds) for spec in specs]
    await_queries(spark, [*bronze_queries, *silver_queries], args.available_now)


if __name__ == "__main__":
    run_job(main)
