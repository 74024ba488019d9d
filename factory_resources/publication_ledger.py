"""The publication ledger and the exactly-once driver.

Every post is one row, keyed by its marker (one per topic, platform and account). The row is
written before the platform hears of the post, updated with whatever the publisher needs to
resume before each step the platform remembers, and closed with the platform's post id. A
crash anywhere leaves a row that tells the next attempt what to do: nothing was sent (start
over), something was sent (ask the platform with `find`, then resume from the saved progress),
or it is done (return it). So a retry never posts twice and never loses a post.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from factory_core.publish_metadata import Platform
from factory_core.publishing import (
    PublicationState,
    PublishedPost,
    Publisher,
    PublishFailure,
    PublishRequest,
    publication_marker,
)
from factory_resources.faults import ProviderError, redact
from factory_resources.project_db import metadata


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime | None) -> datetime | None:
    """SQLite drops the zone of timezone=True columns; what was written is UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


publications = sa.Table(
    "publications", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("owner", sa.String(120), nullable=False, default="", index=True),
    sa.Column("channel", sa.String(120), nullable=False, default=""),
    sa.Column("topic_key", sa.String(120), nullable=False, index=True),
    sa.Column("platform", sa.String(16), nullable=False),  # a Platform value
    sa.Column("account", sa.String(200), nullable=False),
    sa.Column("marker", sa.String(40), nullable=False, unique=True),
    sa.Column("state", sa.String(16), nullable=False),  # a PublicationState value
    sa.Column("progress", sa.JSON, nullable=False, default=dict),
    sa.Column("post_id", sa.String(200)),
    sa.Column("url", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("published_at", sa.DateTime(timezone=True)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, default=_now),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, default=_now, onupdate=_now),
    sa.UniqueConstraint("topic_key", "platform", "account", name="uq_publications_post"),
)  # fmt: skip


class UnknownPublicationError(KeyError):
    """No ledger row carries this marker: `intend` must come first."""


@dataclass(frozen=True)
class Publication:
    """One ledger row, as read."""

    marker: str
    owner: str
    channel: str
    topic_key: str
    platform: Platform
    account: str
    state: PublicationState
    progress: dict[str, Any] = field(default_factory=dict)
    post_id: str | None = None
    url: str | None = None
    error: str | None = None
    attempts: int = 0
    published_at: datetime | None = None

    @property
    def post(self) -> PublishedPost | None:
        """The platform's post, once published."""
        if self.state is not PublicationState.PUBLISHED or self.post_id is None:
            return None
        return PublishedPost(
            platform=self.platform,
            post_id=self.post_id,
            url=self.url,
            published_at=self.published_at,
        )

    @classmethod
    def from_row(cls, row: sa.RowMapping) -> Publication:
        return cls(
            marker=row["marker"],
            owner=row["owner"],
            channel=row["channel"],
            topic_key=row["topic_key"],
            platform=Platform(row["platform"]),
            account=row["account"],
            state=PublicationState(row["state"]),
            progress=dict(row["progress"] or {}),
            post_id=row["post_id"],
            url=row["url"],
            error=row["error"],
            attempts=row["attempts"],
            published_at=_utc(row["published_at"]),
        )


class PublicationLedger:
    """The `publications` table. Every write is one short transaction, so what the ledger
    says is what the last completed step did, whatever happens after."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        # project_db.engine_for creates the tables it knew when the engine was made; this one
        # may have been imported later. create_all skips tables that exist.
        metadata.create_all(engine, tables=[publications])

    def intend(self, request: PublishRequest, owner: str = "", channel: str = "") -> Publication:
        """Records the intent to post `request` (state INTENDED), or returns the row already
        there: asking twice is the same as asking once."""
        expected = publication_marker(request.topic_key, request.platform, request.account)
        if request.marker != expected:
            # The marker must follow from (topic, platform, account), or the two unique keys
            # of the table could disagree about what "the same post" is.
            raise ValueError(f"marker {request.marker!r} is not this post's ({expected!r})")
        existing = self.find(request.marker)
        if existing is not None:
            return existing
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    publications.insert().values(
                        owner=owner,
                        channel=channel,
                        topic_key=request.topic_key,
                        platform=str(request.platform),
                        account=request.account,
                        marker=request.marker,
                        state=str(PublicationState.INTENDED),
                        progress={},
                        attempts=0,
                    )
                )
        except sa.exc.IntegrityError:
            pass  # another worker recorded it between our read and our insert: theirs stands
        return self.get(request.marker)

    def find(self, marker: str) -> Publication | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(publications).where(publications.c.marker == marker))
                .mappings()
                .first()
            )
        return Publication.from_row(row) if row is not None else None

    def get(self, marker: str) -> Publication:
        found = self.find(marker)
        if found is None:
            raise UnknownPublicationError(marker)
        return found

    def for_topic(self, topic_key: str) -> list[Publication]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(publications)
                .where(publications.c.topic_key == topic_key)
                .order_by(publications.c.platform, publications.c.account)
            ).mappings()
            return [Publication.from_row(row) for row in rows]

    def published(self, exclude_accounts: tuple[str, ...] = ()) -> list[Publication]:
        """Every post the platforms hold (state PUBLISHED), oldest first, for metrics."""
        query = sa.select(publications).where(
            publications.c.state == str(PublicationState.PUBLISHED),
            publications.c.post_id.is_not(None),
        )
        if exclude_accounts:
            query = query.where(publications.c.account.not_in(exclude_accounts))
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(publications.c.published_at)).mappings()
            return [Publication.from_row(row) for row in rows]

    def _update(self, marker: str, **values: Any) -> Publication:
        with self.engine.begin() as conn:
            done = conn.execute(
                publications.update()
                .where(publications.c.marker == marker)
                .values(updated_at=_now(), **values)
            )
        if done.rowcount == 0:
            raise UnknownPublicationError(marker)
        return self.get(marker)

    def start_attempt(self, marker: str) -> Publication:
        """Counts an attempt (for the UI and for deciding to reconcile on the next one)."""
        with self.engine.begin() as conn:
            conn.execute(
                publications.update()
                .where(publications.c.marker == marker)
                .values(attempts=publications.c.attempts + 1, updated_at=_now())
            )
        return self.get(marker)

    def save_progress(self, marker: str, progress: dict[str, Any]) -> Publication:
        """Merges `progress` into the row and marks it UPLOADING: from now on the platform may
        know about this post, so a retry must ask it before sending anything."""
        current = self.get(marker)
        if current.state is PublicationState.PUBLISHED:
            return current  # a late callback must not reopen a finished post
        return self._update(
            marker,
            progress={**current.progress, **progress},
            state=str(PublicationState.UPLOADING),
        )

    def mark_published(self, marker: str, post: PublishedPost) -> Publication:
        return self._update(
            marker,
            state=str(PublicationState.PUBLISHED),
            post_id=post.post_id,
            url=post.url,
            published_at=post.published_at or _now(),
            error=None,
        )

    def mark_failed(self, marker: str, reason: str) -> Publication:
        """FAILED keeps the progress: if the platform did take something, the next attempt
        (after the user fixed the cause) still reconciles before sending again."""
        return self._update(marker, state=str(PublicationState.FAILED), error=redact(reason)[:2000])


def publish_once(
    ledger: PublicationLedger,
    publisher: Publisher,
    request: PublishRequest,
    credentials: dict[str, Any],
    owner: str = "",
    channel: str = "",
) -> PublishedPost:
    """Posts `request` exactly once, however many times it is called and wherever an earlier
    call crashed.

    Published rows are returned as they are. A row that an earlier attempt touched is first
    reconciled with `publisher.find` (the platform may have accepted the post just before a
    crash), then resumed from its saved progress. PublishFailure and non-retryable
    ProviderError mark the row FAILED with the reason; a retryable ProviderError (or any other
    crash) leaves it as it is, so the next attempt resumes. Both re-raise.
    """
    row = ledger.intend(request, owner=owner, channel=channel)
    if row.state is PublicationState.PUBLISHED and row.post is not None:
        return row.post
    resumed = request.model_copy(update={"progress": dict(row.progress)})
    touched = row.attempts > 0 or bool(row.progress) or row.state is not PublicationState.INTENDED
    try:
        if touched:
            found = publisher.find(resumed, credentials)
            if found is not None:
                return _published(ledger, request.marker, found)
        ledger.start_attempt(request.marker)
        post = publisher.publish(
            resumed, credentials, lambda progress: ledger.save_progress(request.marker, progress)
        )
    except PublishFailure as exc:
        ledger.mark_failed(request.marker, exc.reason)
        raise
    except ProviderError as exc:
        if not exc.retryable:
            ledger.mark_failed(request.marker, str(exc))
        raise
    return _published(ledger, request.marker, post)


def _published(ledger: PublicationLedger, marker: str, post: PublishedPost) -> PublishedPost:
    saved = ledger.mark_published(marker, post).post
    assert saved is not None  # just written
    return saved
