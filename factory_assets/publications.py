"""publications: the finished video posted once to each of the channel's platforms.

Offline (the default) every post goes to the platform's outbox folder, for review. Each post
goes through the publication ledger (`publish_once`), so re-running this asset after a crash or
a partial failure posts only what is missing, never a duplicate. One platform failing does not
stop the others; the asset fails at the end with every reason, keeping the posts that went out.
"""

import dagster as dg

# PartitionKeyFilter is not exported at the top level in 1.13; the event log needs it to read
# one partition's check evaluations.
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from factory_assets.common import load_stage, topic_context
from factory_assets.partitions import topics
from factory_assets.thumbnail import thumbnail
from factory_assets.video import video
from factory_core.models import Script
from factory_core.publish_metadata import Platform, fit_for
from factory_core.publishing import PublishRequest, publication_marker
from factory_resources.ffmpeg import probe
from factory_resources.outbox import OUTBOX_ACCOUNT, OutboxPublisher
from factory_resources.project_db import project_engine
from factory_resources.publication_ledger import PublicationLedger, publish_once
from factory_resources.store import MediaStore

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


@dg.asset(
    partitions_def=topics,
    deps=[video, thumbnail],
    # In the production group so the produce_topic job publishes (to the outbox by default).
    group_name="production",
    code_version="1",
    description="One post per platform in the channel's publishing settings (default: the "
    "outbox folders of YouTube, TikTok, Instagram, X and Telegram), each exactly once.",
)
def publications(context: dg.AssetExecutionContext, store: MediaStore) -> dg.MaterializeResult:
    topic = topic_context(context, store)
    refusal = video_gate(context.instance, topic.key)
    if refusal:
        raise dg.Failure(description=f"not publishing {topic.key}: {refusal}", allow_retries=False)
    written = load_stage(topic, "script.json", Script, "script")
    video_file = topic.dir / "video.mp4"
    if not video_file.is_file():
        raise dg.Failure(description=f"{video_file} is missing; materialize video first")
    cover = topic.dir / "cover_9x16.jpg"
    info = probe(video_file)
    settings = topic.channel.publishing
    ledger = PublicationLedger(project_engine(store.root))
    metadata: dict[str, object] = {}
    failures: list[str] = []
    for name in settings.platforms:
        platform = Platform(name)
        publisher = OutboxPublisher(store.root, topic.request.channel, platform)
        marker = publication_marker(topic.key, platform, OUTBOX_ACCOUNT)
        try:
            request = PublishRequest(
                topic_key=topic.key,
                platform=platform,
                account=OUTBOX_ACCOUNT,
                marker=marker,
                video=video_file,
                thumbnail=cover if cover.is_file() else None,
                metadata=fit_for(platform, written, link=settings.link),
                width=info.width,
                height=info.height,
                duration_s=info.duration_s,
            )
            post = publish_once(
                ledger,
                publisher,
                request,
                credentials={},  # the outbox needs none
                owner=topic.channel.owner,
                channel=topic.request.channel,
            )
        except Exception as exc:  # one platform's trouble must not stop the others
            failures.append(f"{platform}: {exc}")
            metadata[f"{platform}_state"] = "failed"
            metadata[f"{platform}_error"] = str(exc)[:300]
            continue
        metadata[f"{platform}_state"] = "published"
        metadata[f"{platform}_post"] = dg.MetadataValue.path(str(publisher.folder(request)))
        metadata[f"{platform}_post_id"] = post.post_id
    metadata["markers"] = ", ".join(
        f"{row.platform}={row.marker}" for row in ledger.for_topic(topic.key)
    )
    metadata["publisher"] = settings.publisher
    metadata["cost_usd"] = 0.0
    if failures:
        raise dg.Failure(
            description=f"publishing {topic.key} failed for {len(failures)} of "
            f"{len(settings.platforms)} platforms: " + "; ".join(failures),
            metadata=metadata,
        )
    return dg.MaterializeResult(metadata=metadata)
