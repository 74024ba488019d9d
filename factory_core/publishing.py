"""Publishing contracts: what a publisher is asked to post, what it reports back, and the states
a publication goes through in the ledger. Pure.

Exactly once: the ledger records the intent (with a `marker` unique to this topic, platform
and account) before any upload, and the platform's id after. A publisher must be able to
`find` a post by its marker, or resume by the state it saved (an upload session, a publish
id), so a retry after a crash at any step reconciles instead of posting again.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, Field

from factory_core.publish_metadata import Platform, PostMetadata


class PublicationState(StrEnum):
    INTENDED = "intended"  # recorded, nothing sent yet
    UPLOADING = "uploading"  # the platform knows an upload/session/publish id (in `progress`)
    PUBLISHED = "published"  # the platform's post id is known
    FAILED = "failed"  # for good: a policy rejection, a bad token; says why


def publication_marker(topic_key: str, platform: Platform | str, account: str) -> str:
    """A short tag that identifies this post on the platform (put in its caption/description
    or as a client reference where the platform has one) and in the ledger."""
    digest = hashlib.sha256(f"{topic_key}|{Platform(platform)}|{account}".encode()).hexdigest()
    return f"vf{digest[:10]}"


class PublishRequest(BaseModel):
    """One post of one topic's video to one platform account."""

    topic_key: str
    platform: Platform
    account: str
    marker: str
    video: Path
    thumbnail: Path | None = None
    metadata: PostMetadata
    width: int = 1080
    height: int = 1920
    duration_s: float
    # What an earlier attempt saved (an upload session URI, a publish id, bytes confirmed):
    # the publisher resumes from it instead of starting over.
    progress: dict[str, Any] = Field(default_factory=dict)


class PublishedPost(BaseModel):
    platform: Platform
    post_id: str
    url: str | None = None
    published_at: datetime | None = None


class PublishFailure(RuntimeError):
    """A post that will not succeed by retrying (policy rejection, bad token, bad file)."""

    def __init__(self, platform: Platform | str, reason: str) -> None:
        self.platform = Platform(platform)
        self.reason = reason
        super().__init__(f"{self.platform}: {reason}")


class Publisher(Protocol):
    """One platform. `publish` may raise ProviderError (retryable or not) or PublishFailure;
    it calls `save_progress` with anything it needs to resume before each step that the
    platform will remember (a session, a publish id)."""

    platform: Platform

    def publish(
        self,
        request: PublishRequest,
        credentials: dict[str, Any],
        save_progress: Any,  # Callable[[dict[str, Any]], None]
    ) -> PublishedPost: ...

    def find(self, request: PublishRequest, credentials: dict[str, Any]) -> PublishedPost | None:
        """The post carrying `request.marker`, if the platform already has it."""
        ...


class PostMetrics(BaseModel):
    """What a platform reports about one post at one moment. None: the platform does not
    report it (or the account did not authorize it), which is not the same as 0."""

    platform: Platform
    post_id: str
    fetched_at: datetime
    views: int | None = None
    likes: int | None = None
    comments: int | None = None
    shares: int | None = None
    saves: int | None = None
    watch_time_s: float | None = None  # total watch time over all views
    avg_view_duration_s: float | None = None


class MetricsSource(Protocol):
    """One platform's statistics. Publishers that can read their posts back implement it;
    `metrics` returns one entry per post id the platform still knows (deleted posts are left
    out, not an error), and raises ProviderError / PublishFailure like `publish`."""

    platform: Platform

    def metrics(self, post_ids: list[str], credentials: dict[str, Any]) -> list[PostMetrics]: ...
