"""publications: the finished video posted once to each of the channel's platforms.

Offline (the default) every post goes to the platform's outbox folder, for review; with
`publisher: accounts` it goes to the channel's connected accounts. Each post goes through the
publication ledger (`publish_once`), so re-running this asset after a crash or a partial failure
posts only what is missing, never a duplicate. One platform failing does not stop the others;
the asset fails at the end with every reason, keeping the posts that went out.

With a posting calendar the first run reserves the topic's slot and records "scheduled"; the
`posting_slots` sensor runs this asset again when the slot comes, and that run posts.
"""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import yaml

# PartitionKeyFilter is not exported at the top level in 1.13; the event log needs it to read
# one partition's check evaluations.
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from factory_assets.common import load_stage, topic_context
from factory_assets.partitions import topics
from factory_assets.thumbnail import thumbnail
from factory_assets.video import video
from factory_core.models import Script
from factory_core.posting_slots import describe_slot
from factory_core.publish_metadata import Platform, fit_for, post_overrides
from factory_core.publishing import Publisher, PublishRequest, publication_marker
from factory_resources.faults import redact
from factory_resources.ffmpeg import probe
from factory_resources.outbox import OUTBOX_ACCOUNT, OutboxPublisher
from factory_resources.platform_clients import PlatformClients
from factory_resources.post_schedule import PostSchedule
from factory_resources.project_db import project_engine
from factory_resources.publication_ledger import PublicationLedger, publish_once
from factory_resources.store import MediaStore

POST_FILE = "post.yaml"  # a topic's own post overrides, beside its media
PUBLISH_TAG = "factory/publish"  # "now": post at once, whatever the channel's calendar says
VIDEO_CHECK = dg.AssetCheckKey(dg.AssetKey("video"), "video_meets_spec")
_DONE = {AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED}


def gate_refusal(
    passed: bool | None, checked_at: float | None, rendered_at: float | None, problems: str = ""
) -> str | None:
    """Why the video may not be posted, or None. It may only when video_meets_spec passed on
    the latest render: a pass from before a re-render says nothing about the new file."""
    if passed is None or checked_at is None:
        return "video_meets_spec has not been evaluated for this video; run it first"
    if rendered_at is not None and checked_at < rendered_at:
        return "video_meets_spec last ran before the latest render; run it again first"
    if not passed:
        return f"video_meets_spec failed ({problems or 'no reason recorded'}); fix the video first"
    return None


def video_gate(instance: dg.DagsterInstance, partition_key: str) -> str | None:
    """Reads the latest completed evaluation of video_meets_spec for this topic and the latest
    render of its video from the event log, and asks `gate_refusal`."""
    history = instance.event_log_storage.get_asset_check_execution_history(
        VIDEO_CHECK, limit=1, status=_DONE, partition_filter=PartitionKeyFilter(key=partition_key)
    )
    passed = checked_at = None
    problems = ""
    if history and history[0].event is not None and history[0].event.dagster_event is not None:
        entry = history[0].event
        evaluation = entry.dagster_event.event_specific_data  # an AssetCheckEvaluation
        passed = bool(getattr(evaluation, "passed", False))
        checked_at = entry.timestamp
        problems = str(getattr(getattr(evaluation, "metadata", {}).get("problems"), "value", ""))
    renders = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=video.key, asset_partitions=[partition_key]), limit=1
    ).records
    rendered_at = renders[0].event_log_entry.timestamp if renders else None
    return gate_refusal(passed, checked_at, rendered_at, problems)


def _topic_post_file(topic_dir: Path) -> dict[str, object]:
    """The topic's own post.yaml (per-post overrides), or nothing."""
    path = topic_dir / POST_FILE
    if not path.is_file():
        return {}
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise dg.Failure(description=f"{path} is not valid YAML: {exc}; fix or delete it") from None
    if not isinstance(loaded, dict):
        raise dg.Failure(description=f"{path} must be a mapping of fields, e.g. privacy: public")
    return loaded


@dg.asset(
    partitions_def=topics,
    deps=[video, thumbnail],
    # In the production group so the produce_topic job publishes (to the outbox by default).
    group_name="production",
    code_version="2",
    description="One post per platform in the channel's publishing settings (default: the "
    "outbox folders of YouTube, TikTok, Instagram, X and Telegram), each exactly once; at the "
    "channel's next posting slot when it has a calendar. Tag a run `factory/publish: now` to "
    "post at once.",
)
def publications(
    context: dg.AssetExecutionContext, store: MediaStore, platforms: PlatformClients
) -> dg.MaterializeResult:
    topic = topic_context(context, store)
    refusal = video_gate(context.instance, topic.key)
    if refusal:
        raise dg.Failure(description=f"not publishing {topic.key}: {refusal}", allow_retries=False)
    written = load_stage(topic, "script.json", Script, "script")
    # With a media bucket the posted bytes are the bucket's objects (by the topic's manifest),
    # not whatever this machine's folder holds; without one, the topic folder's files.
    video_file = store.media_file(topic.key, "video.mp4")
    if video_file is None:
        raise dg.Failure(description=f"{topic.key}: video.mp4 is missing; materialize video first")
    settings = topic.channel.publishing
    owner, channel = topic.channel.owner, topic.request.channel
    engine = project_engine(store.root)
    now = datetime.now(UTC)
    schedule = PostSchedule(engine)
    if settings.calendar is not None and context.run.tags.get(PUBLISH_TAG) != "now":
        slot = schedule.reserve(topic.key, owner, channel, settings.calendar, now)
        if not slot.due(now):
            when = describe_slot(slot.slot_at, settings.calendar)
            context.log.info(f"{topic.key} posts at its slot, {when}")
            return dg.MaterializeResult(
                metadata={
                    "state": "scheduled",
                    "slot": when,
                    "slot_utc": slot.slot_at.isoformat(),
                    "publisher": settings.publisher,
                }
            )
    cover = store.media_file(topic.key, "cover_9x16.jpg")
    info = probe(video_file)
    topic_post = _topic_post_file(topic.dir)
    ledger = PublicationLedger(engine)
    metadata: dict[str, object] = {"state": "published", "publisher": settings.publisher}
    failures: list[str] = []
    for name in settings.platforms:
        platform = Platform(name)
        try:
            if settings.publisher == "outbox":
                publisher: Publisher = OutboxPublisher(store.root, channel, platform)
                account, credentials = OUTBOX_ACCOUNT, {}
            else:
                publisher = platforms.publisher(platform)
                account, credentials = platforms.account(store.root, owner, channel, platform)
            overrides = post_overrides(settings.post, topic_post, platform)
            request = PublishRequest(
                topic_key=topic.key,
                platform=platform,
                account=account,
                marker=publication_marker(topic.key, platform, account),
                video=video_file,
                thumbnail=cover,
                metadata=fit_for(platform, written, overrides, link=settings.link),
                width=info.width,
                height=info.height,
                duration_s=info.duration_s,
            )
            post = publish_once(
                ledger, publisher, request, credentials, owner=owner, channel=channel
            )
        except Exception as exc:  # one platform's trouble must not stop the others
            reason = redact(str(exc))
            failures.append(f"{platform}: {reason}")
            metadata[f"{platform}_state"] = "failed"
            metadata[f"{platform}_error"] = reason[:300]
            continue
        metadata[f"{platform}_state"] = "published"
        metadata[f"{platform}_post_id"] = post.post_id
        if isinstance(publisher, OutboxPublisher):
            metadata[f"{platform}_post"] = dg.MetadataValue.path(str(publisher.folder(request)))
        elif post.url:
            metadata[f"{platform}_post"] = dg.MetadataValue.url(post.url)
    metadata["markers"] = ", ".join(
        f"{row.platform}={row.marker}" for row in ledger.for_topic(topic.key)
    )
    metadata["cost_usd"] = 0.0
    if failures:
        raise dg.Failure(
            description=f"publishing {topic.key} failed for {len(failures)} of "
            f"{len(settings.platforms)} platforms: "
            + "; ".join(failures)
            + ". The posts that went out stay; run publications again to retry the rest.",
            metadata=metadata,
        )
    schedule.mark_released(topic.key, now)
    return dg.MaterializeResult(metadata=metadata)
