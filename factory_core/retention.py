"""What `factory media prune` removes: old topics' media, never what a live post points to.

Pure: the command gathers the facts (topic folders and manifests, runs in progress, the
publication ledger, outbox posts, the bucket's objects) and this module decides.

A topic is kept when any of these holds, checked in this order (the first is its reason):
  1. a live post points to it (a published ledger row, or an outbox post on disk);
  2. it is still in progress (a run queued or running, a post being sent, a posting slot
     reserved and not yet released);
  3. it changed within the retention window.
Otherwise its local folder and its manifest go. Objects are content-addressed and shared, so an
object goes only when no kept topic's manifest refers to it: either a removed topic's manifest
did (it is garbage now), or no manifest does and it is older than the window (a manifest not
yet written refers to younger ones: an upload in progress).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field


class TopicFacts(BaseModel):
    key: str
    last_changed: datetime  # the newest of its files (local mtimes, the manifest's updated_at)
    local_bytes: int = 0
    object_keys: set[str] = Field(default_factory=set)  # from its manifest
    live_posts: list[str] = Field(default_factory=list)  # "youtube vf1234 (https://...)"
    in_progress: list[str] = Field(default_factory=list)  # "run 1a2b3c4d is STARTED"


class BucketObject(BaseModel):
    key: str
    size: int
    last_modified: datetime


class TopicVerdict(BaseModel):
    key: str
    action: Literal["remove", "keep"]
    reason: str
    local_bytes: int


class ObjectVerdict(BaseModel):
    key: str
    size: int
    reason: str


class PrunePlan(BaseModel):
    cutoff: datetime
    topics: list[TopicVerdict]
    remove_objects: list[ObjectVerdict]
    kept_objects: int

    @property
    def removed_topics(self) -> list[TopicVerdict]:
        return [t for t in self.topics if t.action == "remove"]

    @property
    def bytes_freed(self) -> int:
        return sum(t.local_bytes for t in self.removed_topics) + sum(
            o.size for o in self.remove_objects
        )


def _age(now: datetime, then: datetime) -> str:
    days = (now - then).total_seconds() / 86400
    return f"{days:.1f} days ago"


def topic_verdict(topic: TopicFacts, now: datetime, cutoff: datetime) -> TopicVerdict:
    def verdict(action: Literal["remove", "keep"], reason: str) -> TopicVerdict:
        return TopicVerdict(
            key=topic.key, action=action, reason=reason, local_bytes=topic.local_bytes
        )

    if topic.live_posts:
        return verdict("keep", "a live post points to it: " + "; ".join(topic.live_posts))
    if topic.in_progress:
        return verdict("keep", "still in progress: " + "; ".join(topic.in_progress))
    if topic.last_changed > cutoff:
        return verdict("keep", f"changed {_age(now, topic.last_changed)}, within the window")
    return verdict("remove", f"not posted, last changed {_age(now, topic.last_changed)}")


def plan_prune(
    topics: list[TopicFacts],
    objects: list[BucketObject],
    now: datetime,
    older_than_days: float,
) -> PrunePlan:
    if older_than_days < 0:
        raise ValueError(f"--older-than must be 0 days or more, not {older_than_days}")
    cutoff = now - timedelta(days=older_than_days)
    verdicts = [topic_verdict(t, now, cutoff) for t in sorted(topics, key=lambda t: t.key)]
    removed = {v.key for v in verdicts if v.action == "remove"}
    kept_refs: set[str] = set()
    removed_refs: dict[str, str] = {}
    for topic in topics:
        if topic.key in removed:
            for key in topic.object_keys:
                removed_refs.setdefault(key, topic.key)
        else:
            kept_refs |= topic.object_keys
    remove: list[ObjectVerdict] = []
    kept = 0
    for obj in sorted(objects, key=lambda o: o.key):
        if obj.key in kept_refs:
            kept += 1
        elif obj.key in removed_refs:
            remove.append(
                ObjectVerdict(
                    key=obj.key, size=obj.size, reason=f"only {removed_refs[obj.key]} used it"
                )
            )
        elif obj.last_modified <= cutoff:
            remove.append(
                ObjectVerdict(
                    key=obj.key,
                    size=obj.size,
                    reason=f"no manifest refers to it, stored {_age(now, obj.last_modified)}",
                )
            )
        else:
            kept += 1  # young and unreferenced: a push whose manifest is not written yet
    return PrunePlan(cutoff=cutoff, topics=verdicts, remove_objects=remove, kept_objects=kept)
