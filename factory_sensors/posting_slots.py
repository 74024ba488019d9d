"""posting_slots_sensor: when a topic's posting slot comes, its publications run.

The publications asset reserves the slot (see factory_resources/post_schedule.py); this sensor
only watches the clock. The run key is the topic and its slot, so a re-evaluated tick or a
restarted daemon never launches a slot twice; a failed run is retried from the UI (the ledger
makes that safe) rather than re-launched here every minute.
"""

from datetime import UTC, datetime

import dagster as dg

from factory_resources.post_schedule import PostSchedule
from factory_resources.project_db import project_engine
from factory_resources.store import MediaStore
from factory_sensors.jobs import publish_topic

MAX_RELEASES_PER_TICK = 50


@dg.sensor(
    job=publish_topic,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Publishes each scheduled topic when its channel's posting slot comes.",
)
def posting_slots_sensor(
    context: dg.SensorEvaluationContext, store: MediaStore
) -> dg.SensorResult | dg.SkipReason:
    now = datetime.now(UTC)
    due = PostSchedule(project_engine(store.root)).due(now, limit=MAX_RELEASES_PER_TICK)
    if not due:
        return dg.SkipReason("no posting slot has come")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"{slot.topic_key}@{slot.slot_at.isoformat()}",
                partition_key=slot.topic_key,
                tags={
                    "factory/channel": slot.channel,
                    "factory/owner": slot.owner,
                    "factory/slot": slot.slot_at.isoformat(),
                },
            )
            for slot in due
        ]
    )
