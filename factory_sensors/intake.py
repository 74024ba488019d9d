"""Intake: a topic file becomes validated, recorded topic requests. Shared by the sensor and CLI."""

import shutil
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from factory_assets.partitions import topics
from factory_core.batch_page import BatchRecord
from factory_core.topics_file import TopicBatch, TopicFileError, parse_topic_file
from factory_resources.store import MediaStore


def existing_topic_keys(instance: dg.DagsterInstance) -> set[str]:
    return set(instance.get_dynamic_partitions(topics.name))


def read_batch(
    path: Path, channel: str, store: MediaStore, instance: dg.DagsterInstance
) -> TopicBatch:
    """Parse and validate; record every accepted topic. Raises TopicFileError for a bad file."""
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise TopicFileError(f"{path.name}: cannot be read ({exc.strerror})") from exc
    batch = parse_topic_file(
        path.name, content, channel=channel, existing_keys=existing_topic_keys(instance)
    )
    batch = _reject_missing_recordings(batch, store)
    for request in batch.accepted:
        store.save_request(request)
    # A known topic whose folder was removed gets its record back, so it can be made again.
    for request in batch.known:
        if not (store.topic_dir(request.key) / "request.json").exists():
            store.save_request(request)
    return batch


def _reject_missing_recordings(batch: TopicBatch, store: MediaStore) -> TopicBatch:
    """A row naming a recording that is not in the channel's narration/ folder is rejected
    (its neighbours go on)."""
    folder = store.channel_dir(batch.channel) / "narration"
    missing = {
        r.key: r.narration_file
        for r in batch.accepted
        if r.narration_file and not (folder / r.narration_file).is_file()
    }
    if not missing:
        return batch
    verdicts = [
        v.model_copy(update={
            "status": "rejected",
            "reason": f"narration {missing[v.key]!r} is not in {folder}; put the recording "
            "there, or leave the narration column empty for a synthetic voice",
        })
        if v.status == "accepted" and v.key in missing
        else v
        for v in batch.verdicts
    ]  # fmt: skip
    accepted = [r for r in batch.accepted if r.key not in missing]
    return batch.model_copy(update={"accepted": accepted, "verdicts": verdicts})


def file_away(path: Path, folder: str, report: str, store: MediaStore) -> Path:
    """Move a handled file to processed/ or rejected/ beside it, with its report next to it."""
    target_dir = path.parent / folder
    target_dir.mkdir(exist_ok=True)
    # A timestamp for people, a random part so two batches in one second never collide.
    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    target = target_dir / f"{stamp}-{path.name}"
    shutil.move(str(path), target)
    store.write_text(target.with_name(target.name + ".report.json"), report)
    return target


def batches_dir(store: MediaStore) -> Path:
    """Where batch records live: one JSON file per topic file taken in (sensor or CLI)."""
    return store.root / "batches"


def record_batch(
    store: MediaStore, batch: TopicBatch, batch_id: str, owner: str, source: str
) -> Path:
    """Write down which rows a batch had (its topics' keys, and rejected rows with their reason),
    so the batch report lists topics whose runs have not started yet."""
    record = BatchRecord(
        id=batch_id,
        owner=owner,
        channel=batch.channel,
        source=source,
        file=batch.source_file,
        created_at=datetime.now(UTC),
        rows=batch.verdicts,
    )
    return store.write_model(batches_dir(store) / f"{batch_id}.json", record)
