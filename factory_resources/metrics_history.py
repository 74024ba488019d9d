"""The metrics history: append-only snapshots of what each platform reported about each post.

One row per post per fetch, never updated: growth over time is the difference between
snapshots, and a platform that recounts (lowers views) stays visible as it happened. Each row
carries its `owner`; `frame` reads one owner's rows only.

`refresh` is what the metrics schedule runs: it asks each platform once per account for all
of that account's published posts and records what came back. One platform's failure (an
outage, a revoked token) is written into the summary and never stops the other platforms.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from pydantic import BaseModel, Field

from factory_core.analytics import SNAPSHOT_COLUMNS, snapshots_frame
from factory_core.publish_metadata import Platform
from factory_core.publishing import MetricsSource, PostMetrics, PublicationState
from factory_resources.faults import redact
from factory_resources.project_db import metadata
from factory_resources.publication_ledger import Publication

log = logging.getLogger(__name__)

post_metrics = sa.Table(
    "post_metrics", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("owner", sa.String(120), nullable=False, default=""),
    sa.Column("channel", sa.String(120), nullable=False, default=""),
    sa.Column("topic_key", sa.String(120), nullable=False, default=""),
    sa.Column("platform", sa.String(16), nullable=False),  # a Platform value
    sa.Column("post_id", sa.String(200), nullable=False),
    sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
    # None: the platform does not report it (or the account did not authorize it), not 0.
    sa.Column("views", sa.BigInteger),
    sa.Column("likes", sa.BigInteger),
    sa.Column("comments", sa.BigInteger),
    sa.Column("shares", sa.BigInteger),
    sa.Column("saves", sa.BigInteger),
    sa.Column("watch_time_s", sa.Float),
    sa.Column("avg_view_duration_s", sa.Float),
    sa.Index("ix_post_metrics_owner_channel", "owner", "channel"),
    sa.Index("ix_post_metrics_post", "platform", "post_id", "fetched_at"),
)  # fmt: skip

_SECRET_KEYS = ("access_token", "refresh_token", "client_secret", "token", "bot_token")


class PlatformRefresh(BaseModel):
    """One platform's part of a refresh, over all its accounts."""

    platform: Platform
    posts: int = 0  # published posts we asked about
    recorded: int = 0  # snapshots written
    missing: int = 0  # asked about but not returned (deleted on the platform, or failed)
    errors: list[str] = Field(default_factory=list)  # "<account>: <reason>", redacted


class RefreshSummary(BaseModel):
    """What a refresh did, per platform; safe to show (no secrets)."""

    platforms: dict[str, PlatformRefresh] = Field(default_factory=dict)

    @property
    def recorded(self) -> int:
        return sum(p.recorded for p in self.platforms.values())

    @property
    def errors(self) -> list[str]:
        return [f"{name}: {e}" for name, p in self.platforms.items() for e in p.errors]

    @property
    def ok(self) -> bool:
        return not self.errors


def _aware_utc(moment: datetime) -> datetime:
    # Sources should return aware times; a naive one is taken as UTC rather than local time.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _secrets(credentials: Mapping[str, Any]) -> list[str]:
    return [v for k, v in credentials.items() if k in _SECRET_KEYS and isinstance(v, str) and v]


class MetricsHistory:
    """The `post_metrics` table on the project's engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        # project_db.engine_for creates the tables it knew when the engine was made; this
        # module may have been imported later. create_all skips tables that exist.
        metadata.create_all(engine, tables=[post_metrics])

    def record(self, publication: Publication, metrics: list[PostMetrics]) -> int:
        """Appends one snapshot per entry of `metrics` (all about `publication`'s post) under
        the publication's owner, channel and topic. Returns how many were written."""
        for m in metrics:
            if Platform(m.platform) is not publication.platform or m.post_id != publication.post_id:
                raise ValueError(
                    f"metrics for {m.platform} post {m.post_id!r} do not belong to "
                    f"{publication.platform} post {publication.post_id!r}"
                )
        if not metrics:
            return 0
        rows = [
            {
                "owner": publication.owner,
                "channel": publication.channel,
                "topic_key": publication.topic_key,
                "platform": str(publication.platform),
                "post_id": m.post_id,
                "fetched_at": _aware_utc(m.fetched_at),
                "views": m.views,
                "likes": m.likes,
                "comments": m.comments,
                "shares": m.shares,
                "saves": m.saves,
                "watch_time_s": m.watch_time_s,
                "avg_view_duration_s": m.avg_view_duration_s,
            }
            for m in metrics
        ]
        with self.engine.begin() as conn:
            conn.execute(post_metrics.insert(), rows)
        return len(rows)

    def frame(self, owner: str, channel: str | None = None) -> pd.DataFrame:
        """The owner's snapshots (of one channel, or all), oldest first, as the frame that
        `factory_core.analytics` reads: SNAPSHOT_COLUMNS, UTC times, NaN = not reported."""
        query = sa.select(*(post_metrics.c[name] for name in SNAPSHOT_COLUMNS)).where(
            post_metrics.c.owner == owner
        )
        if channel is not None:
            query = query.where(post_metrics.c.channel == channel)
        query = query.order_by(post_metrics.c.fetched_at, post_metrics.c.id)
        with self.engine.connect() as conn:
            rows = [dict(row) for row in conn.execute(query).mappings()]
        return snapshots_frame(rows)

    def refresh(
        self,
        publications: list[Publication],
        sources: Mapping[Platform, MetricsSource],
        credentials_for: Callable[[Publication], dict[str, Any]],
    ) -> RefreshSummary:
        """Fetches and records metrics for every PUBLISHED publication: one
        `sources[platform].metrics(post_ids, credentials)` call per (owner, platform, account),
        with the credentials `credentials_for` gives for that account's first publication.
        Platforms without a source are listed with an error; any exception from a source (or
        from `credentials_for`) is recorded, redacted, and the next account goes on. Posts the
        platform did not return (deleted) count as `missing`."""
        groups: dict[tuple[str, Platform, str], list[Publication]] = {}
        for pub in publications:
            if pub.state is PublicationState.PUBLISHED and pub.post_id:
                groups.setdefault((pub.owner, pub.platform, pub.account), []).append(pub)
        summary = RefreshSummary()
        for (_owner, platform, account), pubs in groups.items():
            part = summary.platforms.setdefault(str(platform), PlatformRefresh(platform=platform))
            part.posts += len(pubs)
            source = sources.get(platform)
            if source is None:
                part.missing += len(pubs)
                part.errors.append(f"{account}: no metrics source for {platform}")
                continue
            secrets: list[str] = []
            try:
                credentials = credentials_for(pubs[0])
                secrets = _secrets(credentials)
                by_id = {pub.post_id: pub for pub in pubs}
                fetched = source.metrics(list(by_id), credentials)
            except Exception as exc:  # one platform's trouble must not stop the others
                reason = redact(f"{type(exc).__name__}: {exc}", *secrets)[:500]
                part.missing += len(pubs)
                part.errors.append(f"{account}: {reason}")
                log.warning("metrics for %s %s failed: %s", platform, account, reason)
                continue
            returned: dict[str, list[PostMetrics]] = {}
            for m in fetched:
                if m.post_id in by_id and Platform(m.platform) is platform:
                    returned.setdefault(m.post_id, []).append(m)
            for post_id, metrics in returned.items():
                part.recorded += self.record(by_id[post_id], metrics)
            part.missing += len(by_id) - len(returned)
        return summary
