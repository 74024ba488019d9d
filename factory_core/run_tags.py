"""The tags every topic run carries, however it was launched (sensor, CLI, API), so the Dagster
UI's run list filters by user, by channel and by batch. Pure: the API imports it without Dagster."""

import re
import uuid
from datetime import UTC, datetime
from pathlib import PurePath

from slugify import slugify

OWNER_TAG = "factory/owner"
CHANNEL_TAG = "factory/channel"
# One id per submitted topic file or API batch; the batch report groups topics by it.
BATCH_TAG = "factory/batch"
# Safe as a file name and in a URL: batch pages are written as reports/batches/<id>.html.
BATCH_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")
_STEM_MAX = 30


def topic_run_tags(owner: str, channel: str, batch_id: str | None = None) -> dict[str, str]:
    tags = {OWNER_TAG: owner, CHANNEL_TAG: channel}
    if batch_id is not None:
        tags[BATCH_TAG] = batch_id
    return tags


def new_batch_id(
    channel: str, file_name: str, now: datetime | None = None, nonce: str | None = None
) -> str:
    """`<channel>-<file stem>-<YYYYmmdd-HHMMSS>-<4 hex>`: readable in the UI's tag filter, and
    the random tail keeps two drops of the same file in one second apart."""
    stem = slugify(PurePath(file_name).stem, max_length=_STEM_MAX, word_boundary=True) or "topics"
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    batch_id = f"{channel}-{stem}-{stamp}-{nonce or uuid.uuid4().hex[:4]}"
    assert is_batch_id(batch_id), batch_id
    return batch_id


def is_batch_id(value: str) -> bool:
    return bool(BATCH_ID_PATTERN.match(value))
