"""The offline publisher: each post becomes a folder to review, nothing leaves the machine.

`$FACTORY_HOME/outbox/<channel>/<platform>/<marker>/` holds `video.mp4` (a hard link to the
rendered file where the filesystem allows, else a copy), `thumbnail.jpg` and `post.json` (the
fitted metadata, the marker and the topic). The folder is built under a temporary name and
renamed into place in one step, so a crash never leaves half a post, and a folder with
`post.json` is a finished post: that is what `find` looks for. The post id is the marker.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from factory_core.publish_metadata import Platform
from factory_core.publishing import PublishedPost, PublishRequest
from factory_core.slugs import channel_slug

POST_FILE = "post.json"
OUTBOX_ACCOUNT = "outbox"  # the account name outbox posts are recorded under in the ledger


def outbox_dir(home: Path, channel: str, platform: Platform | str) -> Path:
    return home / "outbox" / channel_slug(channel) / str(Platform(platform))


class OutboxPublisher:
    """Stands in for one platform: writes what would be posted there into its outbox folder."""

    def __init__(self, home: Path, channel: str, platform: Platform | str) -> None:
        self.platform = Platform(platform)
        self.channel = channel
        self.base = outbox_dir(home, channel, self.platform)

    def folder(self, request: PublishRequest) -> Path:
        return self.base / request.marker

    def find(self, request: PublishRequest, credentials: dict[str, Any]) -> PublishedPost | None:
        post_file = self.folder(request) / POST_FILE
        if not post_file.is_file():
            return None
        saved = json.loads(post_file.read_text(encoding="utf-8"))
        return self._post(request, datetime.fromisoformat(saved["published_at"]))

    def publish(
        self,
        request: PublishRequest,
        credentials: dict[str, Any],
        save_progress: Any,  # Callable[[dict[str, Any]], None]
    ) -> PublishedPost:
        found = self.find(request, credentials)
        if found is not None:  # already written: posting again would be the duplicate
            return found
        target = self.folder(request)
        # Before the step that leaves a trace: a crash after the rename is then reconciled.
        save_progress({"outbox": str(target)})
        self.base.mkdir(parents=True, exist_ok=True)
        for stale in self.base.glob(f".{request.marker}.*"):
            shutil.rmtree(stale, ignore_errors=True)  # a crashed attempt's unfinished folder
        tmp = self.base / f".{request.marker}.{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            _link_or_copy(request.video, tmp / "video.mp4")
            has_thumbnail = request.thumbnail is not None and request.thumbnail.is_file()
            if has_thumbnail:
                shutil.copyfile(request.thumbnail, tmp / "thumbnail.jpg")  # type: ignore[arg-type]
            published_at = datetime.now(UTC)
            (tmp / POST_FILE).write_text(
                json.dumps(
                    _post_document(request, published_at, self.channel, has_thumbnail),
                    ensure_ascii=False,
                    indent=2,
                ),
                encoding="utf-8",
            )
            if target.exists():
                # A folder without post.json is not a post (someone emptied it by hand).
                shutil.rmtree(target)
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return self._post(request, published_at)

    def _post(self, request: PublishRequest, published_at: datetime) -> PublishedPost:
        return PublishedPost(
            platform=self.platform,
            post_id=request.marker,
            url=self.folder(request).as_uri(),
            published_at=published_at,
        )


def _post_document(
    request: PublishRequest, published_at: datetime, channel: str, has_thumbnail: bool
) -> dict[str, Any]:
    return {
        "marker": request.marker,
        "topic_key": request.topic_key,
        "channel": channel,
        "platform": str(request.platform),
        "account": request.account,
        "video": "video.mp4",
        "thumbnail": "thumbnail.jpg" if has_thumbnail else None,
        "width": request.width,
        "height": request.height,
        "duration_s": request.duration_s,
        "published_at": published_at.isoformat(),
        "metadata": request.metadata.model_dump(mode="json"),
    }


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link costs no space and keeps the posted bytes even if the topic is re-rendered
    (renders replace video.mp4 with a new file); other filesystems get a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
