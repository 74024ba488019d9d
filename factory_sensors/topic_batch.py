"""topic_batch_sensor: topic files dropped into `$FACTORY_HOME/inbox/<channel>/` become runs.

Each accepted topic becomes a dynamic partition and one run of `produce_topic` with the topic's
key as run_key, so a re-evaluated tick or a restarted daemon never submits a topic twice; a
handled file moves to processed/ (or rejected/) with a per-row report. Each file is a batch: its
runs carry a `factory/batch` tag and its rows are recorded under $FACTORY_HOME/batches/, which
the batch report's HTML pages group by.
"""

import json

import dagster as dg

from factory_assets.partitions import topics
from factory_core.run_tags import new_batch_id, topic_run_tags
from factory_core.slugs import InvalidChannelError, channel_slug
from factory_core.topics_file import TopicFileError, check_file_type
from factory_resources.store import MediaStore
from factory_sensors.intake import file_away, read_batch, record_batch
from factory_sensors.jobs import produce_topic
from factory_sensors.pools import ensure_pool_rows

MAX_FILES_PER_TICK = 10


@dg.sensor(
    job=produce_topic,
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Picks up topic files (CSV, TXT, YAML) from $FACTORY_HOME/inbox/<channel>/.",
)
def topic_batch_sensor(
    context: dg.SensorEvaluationContext, store: MediaStore
) -> dg.SensorResult | dg.SkipReason:
    inbox = store.inbox_dir()
    files = sorted(
        (p for p in inbox.glob("*/*") if p.is_file() and not p.name.startswith(".")),
        key=lambda p: (p.stat().st_mtime, p.name),
    )[:MAX_FILES_PER_TICK]
    if not files:
        return dg.SkipReason(f"no topic files in {inbox}")
    new_keys: list[str] = []
    tags_of: dict[str, dict[str, str]] = {}
    for path in files:
        try:
            channel = channel_slug(path.parent.name)
        except InvalidChannelError as exc:
            context.log.warning(f"skipping {path.parent.name}/: {exc}")
            continue
        try:
            check_file_type(path.name)  # before reading: a video dropped here is not read
        except TopicFileError as exc:
            file_away(path, "rejected", json.dumps({"error": str(exc)}), store)
            continue
        try:
            batch = read_batch(path, channel, store, context.instance)
        except TopicFileError as exc:
            file_away(path, "rejected", json.dumps({"error": str(exc)}), store)
            context.log.warning(str(exc))
            continue
        keys = [r.key for r in batch.accepted if r.key not in new_keys]
        new_keys.extend(keys)
        report: dict[str, object] = {"channel": channel, "encoding": batch.encoding}
        if keys:  # a file of nothing new (dropped again) is no batch
            owner = store.channel_profile(channel).owner
            batch_id = new_batch_id(channel, path.name)
            record_batch(store, batch, batch_id, owner, source="inbox")
            tags_of.update(dict.fromkeys(keys, topic_run_tags(owner, channel, batch_id)))
            report["batch"] = batch_id
        report["rows"] = [v.model_dump() for v in batch.verdicts]
        file_away(path, "processed", json.dumps(report, indent=2, ensure_ascii=False), store)
        context.log.info(
            f"{path.name}: {len(keys)} new topics, {len(batch.rejected)} rejected or duplicate"
        )
    if not new_keys:
        return dg.SkipReason("no new topics in the files read")
    ensure_pool_rows(context.instance)
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(partition_key=key, run_key=key, tags=tags_of[key]) for key in new_keys
        ],
        dynamic_partitions_requests=[topics.build_add_request(new_keys)],
    )
