"""batch_pages_sensor: keeps every batch's HTML page current while its runs finish.

The pages are files (reports/batches/*.html) that reload themselves in the browser; rewriting
them from the sensor, in the code server that is already running, costs a fraction of a second,
where a `refresh_batch_report` run per tick would cost a run's start-up (seconds of CPU on 2
cores, taken from the batch it reports on). The `batch_report` asset still writes the same pages
when materialized, with report.json and report.md beside them.
"""

from datetime import UTC, datetime

import dagster as dg

from factory_assets.report import write_batch_pages
from factory_assets.status import all_statuses
from factory_resources.store import MediaStore
from factory_sensors.jobs import produce_topic

FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Rewrites the batch pages (reports/batches/*.html) when topic runs have finished.",
)
def batch_pages_sensor(context: dg.SensorEvaluationContext, store: MediaStore) -> dg.SkipReason:
    since = float(context.cursor) if context.cursor else 0.0
    finished = context.instance.get_run_records(
        filters=dg.RunsFilter(
            job_name=produce_topic.name,
            statuses=FINISHED,
            updated_after=datetime.fromtimestamp(since, UTC) if since else None,
        ),
        limit=500,
    )
    if not finished:
        return dg.SkipReason("no topic run has finished since the pages were last written")
    newest = max(r.update_timestamp.replace(tzinfo=r.update_timestamp.tzinfo or UTC).timestamp()
                 for r in finished)  # fmt: skip
    statuses = all_statuses(context.instance, store)
    pages = write_batch_pages(context.instance, store, statuses, store.root / "reports" / "batches")
    context.update_cursor(str(newest))
    return dg.SkipReason(
        f"rewrote {len(pages) - 1} batch pages after {len(finished)} finished runs; "
        f"index: {pages[0]}"
    )
