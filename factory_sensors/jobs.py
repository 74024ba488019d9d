"""Jobs the sensors and the CLI launch."""

import dagster as dg

# One run per topic: a failure stays with its topic, and each can be retried alone from the UI.
produce_topic = dg.define_asset_job(
    "produce_topic",
    selection=dg.AssetSelection.groups("production"),
    description="Script to video and covers for one topic (one partition).",
    tags={"factory/kind": "topic"},
)

report_job = dg.define_asset_job(
    "refresh_batch_report", selection=dg.AssetSelection.assets("batch_report")
)

# Posting a topic alone, when its slot comes or when asked (tag factory/publish=now).
publish_topic = dg.define_asset_job(
    "publish_topic",
    selection=dg.AssetSelection.assets("publications"),
    description="Posts one topic's finished video to its channel's platforms, exactly once.",
    tags={"factory/kind": "publish"},
)

refresh_analytics = dg.define_asset_job(
    "refresh_analytics",
    selection=dg.AssetSelection.groups("analytics"),
    description="Pulls every published post's metrics, then rolls them up per channel.",
    tags={"factory/kind": "analytics"},
)

# Every 6 hours: fresh enough to see a post take off, far inside every platform's API quota.
analytics_schedule = dg.ScheduleDefinition(
    name="analytics_every_6h",
    job=refresh_analytics,
    cron_schedule="0 */6 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
