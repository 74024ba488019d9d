"""Slot reservations: one topic per slot per channel, stable on retry, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from factory_core.posting_slots import PostingCalendar
from factory_resources.post_schedule import PostSchedule

CALENDAR = PostingCalendar(timezone="Europe/Moscow", times=["09:00", "13:00", "19:00"])
NOW = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)  # 10:00 in Moscow


def _schedule(tmp_path: Path) -> PostSchedule:
    return PostSchedule(sa.create_engine(f"sqlite:///{tmp_path / 'slots.db'}"))


def _check_reservations(schedule: PostSchedule) -> None:
    first = schedule.reserve("demo--a", "erin", "demo", CALENDAR, NOW)
    second = schedule.reserve("demo--b", "erin", "demo", CALENDAR, NOW)
    other_channel = schedule.reserve("news--a", "erin", "news", CALENDAR, NOW)
    assert first.slot_at == datetime(2026, 11, 25, 10, 0, tzinfo=UTC)  # 13:00 MSK
    assert second.slot_at == datetime(2026, 11, 25, 16, 0, tzinfo=UTC)  # 19:00 MSK
    assert other_channel.slot_at == first.slot_at  # slots are per channel
    # Asking again (a retried run) keeps the slot, even a day later.
    again = schedule.reserve("demo--a", "erin", "demo", CALENDAR, NOW + timedelta(days=1))
    assert again.slot_at == first.slot_at
    assert [r.topic_key for r in schedule.upcoming("demo", NOW)] == ["demo--a", "demo--b"]
    assert schedule.due(NOW) == []
    at_one = NOW + timedelta(hours=3, minutes=1)
    assert {r.topic_key for r in schedule.due(at_one)} == {"demo--a", "news--a"}
    schedule.mark_released("demo--a", at_one)
    assert [r.topic_key for r in schedule.due(at_one)] == ["news--a"]
    assert schedule.get("demo--a").released_at == at_one  # type: ignore[union-attr]


def test_topics_take_the_next_free_slots_of_their_channel(tmp_path: Path) -> None:
    _check_reservations(_schedule(tmp_path))


@pytest.fixture
def pg_engine() -> Iterator[sa.Engine]:
    """The real PostgreSQL, in a schema of its own so parallel runs do not meet."""
    engine = sa.create_engine("postgresql://postgres@127.0.0.1:5432/test", pool_size=10)
    schema = f"slots_{uuid.uuid4().hex[:12]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f"create schema {schema}"))
    try:
        yield engine.execution_options(schema_translate_map={None: schema})  # type: ignore[misc]
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"drop schema {schema} cascade"))
        engine.dispose()


@pytest.mark.postgres
def test_reservations_on_postgresql(pg_engine: sa.Engine) -> None:
    _check_reservations(PostSchedule(pg_engine))


@pytest.mark.postgres
def test_concurrent_reservations_never_share_a_slot(pg_engine: sa.Engine) -> None:
    schedule = PostSchedule(pg_engine)
    keys = [f"demo--t{i}" for i in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        slots = list(pool.map(lambda k: schedule.reserve(k, "erin", "demo", CALENDAR, NOW), keys))
    assert len({r.slot_at for r in slots}) == len(keys)
    # The eight earliest slots, none skipped: losers of a race take the next one, not a later one.
    assert max(r.slot_at for r in slots) == datetime(2026, 11, 27, 16, 0, tzinfo=UTC)
