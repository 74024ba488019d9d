"""Which topic posts in which of its channel's slots (the `post_slots` table).

A topic takes a slot when its video is ready and its channel has a posting calendar; the
`posting_slots` sensor launches the topic's publications when the slot comes. One row per topic,
and a slot belongs to at most one topic of a channel (a unique key), so two runs reserving at
the same moment cannot take the same slot: the loser of the race moves to the next one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from factory_core.posting_slots import PostingCalendar, next_free_slot
from factory_resources.project_db import metadata


def _now() -> datetime:
    return datetime.now(UTC)


post_slots = sa.Table(
    "post_slots", metadata,
    sa.Column("topic_key", sa.String(120), primary_key=True),
    sa.Column("owner", sa.String(120), nullable=False, default="", index=True),
    sa.Column("channel", sa.String(120), nullable=False),
    sa.Column("slot_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("released_at", sa.DateTime(timezone=True)),  # when its posts went out
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, default=_now),
    sa.UniqueConstraint("channel", "slot_at", name="uq_post_slots_channel_slot"),
)  # fmt: skip

_RACE_ATTEMPTS = 20


def _utc(value: datetime) -> datetime:
    # Everything is written in UTC, because SQLite stores the wall time and drops the zone; it
    # hands back naive datetimes, which are therefore UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class SlotReservation:
    topic_key: str
    owner: str
    channel: str
    slot_at: datetime
    released_at: datetime | None

    def due(self, now: datetime) -> bool:
        return self.slot_at <= now


def _reservation(row: sa.RowMapping) -> SlotReservation:
    released = row["released_at"]
    return SlotReservation(
        topic_key=row["topic_key"],
        owner=row["owner"],
        channel=row["channel"],
        slot_at=_utc(row["slot_at"]),
        released_at=_utc(released) if released is not None else None,
    )


class PostSchedule:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        metadata.create_all(engine, tables=[post_slots])

    def get(self, topic_key: str) -> SlotReservation | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(post_slots).where(post_slots.c.topic_key == topic_key))
                .mappings()
                .first()
            )
        return _reservation(row) if row is not None else None

    def reserve(
        self, topic_key: str, owner: str, channel: str, calendar: PostingCalendar, now: datetime
    ) -> SlotReservation:
        """The topic's slot: the one it already holds, or the channel's next free one."""
        now = _utc(now)
        for _ in range(_RACE_ATTEMPTS):
            held = self.get(topic_key)
            if held is not None:
                return held
            with self.engine.connect() as conn:
                taken = [
                    _utc(at)
                    for (at,) in conn.execute(
                        sa.select(post_slots.c.slot_at).where(
                            post_slots.c.channel == channel, post_slots.c.slot_at >= now
                        )
                    )
                ]
            slot = next_free_slot(calendar, now, taken)
            try:
                with self.engine.begin() as conn:
                    conn.execute(
                        post_slots.insert().values(
                            topic_key=topic_key, owner=owner, channel=channel, slot_at=slot
                        )
                    )
            except sa.exc.IntegrityError:
                continue  # another topic (or this one, in another run) took it first: look again
            return SlotReservation(topic_key, owner, channel, slot, None)
        raise RuntimeError(f"could not reserve a posting slot for {topic_key}: too much contention")

    def due(self, now: datetime, limit: int = 100) -> list[SlotReservation]:
        """Slots that have come and whose posts have not gone out, oldest first."""
        now = _utc(now)
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(post_slots)
                .where(post_slots.c.slot_at <= now, post_slots.c.released_at.is_(None))
                .order_by(post_slots.c.slot_at)
                .limit(limit)
            ).mappings()
            return [_reservation(row) for row in rows]

    def upcoming(self, channel: str, now: datetime) -> list[SlotReservation]:
        now = _utc(now)
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(post_slots)
                .where(post_slots.c.channel == channel, post_slots.c.slot_at > now)
                .order_by(post_slots.c.slot_at)
            ).mappings()
            return [_reservation(row) for row in rows]

    def mark_released(self, topic_key: str, at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                post_slots.update()
                .where(post_slots.c.topic_key == topic_key, post_slots.c.released_at.is_(None))
                .values(released_at=_utc(at))
            )
