"""Intake: a topic file becomes validated, recorded topic requests. Shared by the sensor and CLI."""

import shutil
import time
import uuid
from pathlib import Path

import dagster as dg

from factory_assets.partitions import topics
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
    for request in batch.accepted:
        store.save_request(request)
    # A known topic whose folder was removed gets its record back, so it can be made again.
    for request in batch.known:
        if not (store.topic_dir(request.key) / "request.json").exists():
            store.save_request(request)
    return batch


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
