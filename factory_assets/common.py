"""What every topic asset does first (find its topic, its folder and its channel, with the
topic's files pulled from the media bucket when there is one) and last (`push_media`)."""

import base64
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import dagster as dg
from pydantic import BaseModel

from factory_core.models import ChannelProfile, TopicRequest
from factory_resources.object_store import ObjectStoreError
from factory_resources.store import MediaStore

M = TypeVar("M", bound=BaseModel)

# Provider-backed stages retry transient faults; bad input raises Failure(allow_retries=False).
PROVIDER_RETRY = dg.RetryPolicy(
    max_retries=2, delay=2, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


@dataclass(frozen=True)
class TopicContext:
    key: str
    request: TopicRequest
    channel: ChannelProfile
    dir: Path


def topic_context(context: dg.AssetExecutionContext, store: MediaStore) -> TopicContext:
    key = context.partition_key
    try:
        # On a machine that has not seen this topic (a worker elsewhere), the folder is empty
        # until the bucket's files are here; with no bucket this does nothing.
        pulled = store.pull_topic(key)
        request = store.load_request(key)
        channel = store.channel_profile(request.channel)
    except (FileNotFoundError, ValueError) as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    except ObjectStoreError as exc:
        raise dg.Failure(description=str(exc), allow_retries=exc.retryable) from None
    if pulled is not None and pulled.transferred:
        context.log.info(f"pulled {pulled.transferred} files of {key} from {pulled.manifest_uri}")
    # A topic without its own style takes the channel's.
    request = request.model_copy(update={"style": request.style or channel.style})
    return TopicContext(key=key, request=request, channel=channel, dir=store.topic_dir(key))


def push_media(context: dg.AssetExecutionContext, store: MediaStore, topic: TopicContext) -> None:
    """The last thing a topic asset does: its files go to the media bucket under their
    content's keys (unchanged ones are skipped) and the manifest records them; the asset's
    metadata names the manifest. Without a bucket this does nothing."""
    try:
        synced = store.push_topic(topic.key)
    except ObjectStoreError as exc:
        raise dg.Failure(description=str(exc), allow_retries=exc.retryable) from None
    if synced is not None:
        context.add_output_metadata(synced.metadata())


def load_stage(topic: TopicContext, filename: str, model: type[M], upstream: str) -> M:
    path = topic.dir / filename
    if not path.exists():
        raise dg.Failure(
            description=f"{upstream} for topic {topic.key!r} is missing ({path.name}); "
            f"materialize {upstream} for this partition first",
            allow_retries=False,
        )
    return model.model_validate_json(path.read_text(encoding="utf-8"))


def image_preview(path: Path, width: int = 180) -> dg.MetadataValue:
    """A small inline JPEG for the UI (metadata lives in the event log, so keep it a few KB)."""
    from PIL import Image

    with Image.open(path) as source:
        small = source.convert("RGB")
    small.thumbnail((width, width * 2))
    buf = io.BytesIO()
    small.save(buf, format="JPEG", quality=60)
    data = base64.b64encode(buf.getvalue()).decode()
    return dg.MetadataValue.md(f"![preview](data:image/jpeg;base64,{data})")


def record_costs(topic: TopicContext, lines: list, stage: str) -> float:  # list[CostLine]
    """Writes a stage's paid calls to the ledger (the project's tables) and returns their sum,
    for the asset's `cost_usd` metadata. Lines without a stage get this one."""
    from factory_core.costs import total_usd
    from factory_resources.project_db import price_table, project_engine, repriced
    from factory_resources.project_db import record_costs as write_lines

    if not lines:
        return 0.0
    # The topic folder is <home>/topics/<key>: the ledger and price overrides live there too.
    home = topic.dir.parent.parent
    stamped = [
        line.model_copy(update={"topic_key": topic.key, "stage": line.stage or stage})
        for line in lines
    ]
    stamped = repriced(stamped, price_table(home))
    write_lines(project_engine(home), stamped, owner=topic.channel.owner)
    return total_usd(stamped)
