"""The posting calendar: slots in the channel's zone, across DST changes, skipping taken ones."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import islice

import pytest
from pydantic import ValidationError

from factory_core.posting_slots import (
    PostingCalendar,
    Weekday,
    describe_slot,
    next_free_slot,
    slots_from,
)


def test_three_a_day_in_moscow_come_in_order_in_utc() -> None:
    calendar = PostingCalendar(timezone="Europe/Moscow", times=["19:00", "9:00", "13:00"])
    start = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)  # 10:00 in Moscow (UTC+3)
    slots = list(islice(slots_from(calendar, start), 4))
    assert slots == [
        datetime(2026, 11, 25, 10, 0, tzinfo=UTC),  # 13:00 MSK
        datetime(2026, 11, 25, 16, 0, tzinfo=UTC),  # 19:00 MSK
        datetime(2026, 11, 26, 6, 0, tzinfo=UTC),  # 09:00 MSK next day
        datetime(2026, 11, 26, 10, 0, tzinfo=UTC),
    ]
    assert describe_slot(slots[2], calendar) == "2026-11-26 09:00 Europe/Moscow (06:00 UTC)"


def test_a_slot_exactly_now_is_still_usable() -> None:
    calendar = PostingCalendar(times=["12:00"])
    now = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    assert next_free_slot(calendar, now, []) == now


def test_weekdays_only_skip_the_weekend() -> None:
    calendar = PostingCalendar(times=["09:00"], weekdays=["mon", "tue", "wed", "thu", "fri"])
    friday_evening = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
    assert next_free_slot(calendar, friday_evening, []) == datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    assert calendar.weekdays[0] is Weekday.MON


def test_taken_slots_are_skipped() -> None:
    calendar = PostingCalendar(times=["09:00", "18:00"])
    now = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
    taken = [datetime(2026, 11, 25, 9, 0, tzinfo=UTC), datetime(2026, 11, 25, 18, 0, tzinfo=UTC)]
    assert next_free_slot(calendar, now, taken) == datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def test_wall_clock_time_is_kept_across_daylight_saving() -> None:
    calendar = PostingCalendar(timezone="Europe/Berlin", times=["09:00"])
    # 2026-10-25: Berlin goes from UTC+2 to UTC+1.
    before, after = islice(slots_from(calendar, datetime(2026, 10, 24, 0, 0, tzinfo=UTC)), 2)
    assert before == datetime(2026, 10, 24, 7, 0, tzinfo=UTC)
    assert after == datetime(2026, 10, 25, 8, 0, tzinfo=UTC)


def test_a_skipped_time_moves_forward_and_a_repeated_one_is_taken_once() -> None:
    spring = PostingCalendar(timezone="Europe/Berlin", times=["02:30"])
    # 2026-03-29 02:00 -> 03:00: 02:30 does not exist; it is posted at 03:30 local (01:30 UTC).
    slot = next(slots_from(spring, datetime(2026, 3, 29, 0, 0, tzinfo=UTC)))
    assert slot == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert slot.astimezone(spring.zone).hour == 3
    autumn = PostingCalendar(timezone="Europe/Berlin", times=["02:30"])
    slots = list(islice(slots_from(autumn, datetime(2026, 10, 25, 0, 0, tzinfo=UTC)), 2))
    # 02:30 happens twice on 2026-10-25; only the first (00:30 UTC) is a slot.
    assert slots == [
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        datetime(2026, 10, 26, 1, 30, tzinfo=UTC),
    ]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"timezone": "Moscow", "times": ["09:00"]}, "did you mean Europe/Moscow"),
        ({"timezone": "Mars/Olympus", "times": ["09:00"]}, "unknown time zone 'Mars/Olympus'"),
        ({"times": ["9am"]}, "'9am' is not HH:MM"),
        ({"times": ["24:00"]}, "is not HH:MM"),
        ({"times": []}, "at least 1"),
        ({"times": ["09:00"], "weekdays": ["funday"]}, "'funday' is not one of mon"),
    ],
)
def test_bad_calendars_say_what_to_write(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PostingCalendar.model_validate(fields)


def test_naive_start_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next(slots_from(PostingCalendar(times=["09:00"]), datetime(2026, 1, 1)))
