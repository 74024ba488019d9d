"""A channel's posting calendar: at which moments its posts go out. Pure.

A calendar is a time zone, local times of day and weekdays ("09:00, 13:00 and 19:00 in
Europe/Moscow, Monday to Friday"). Topics take the calendar's slots in the order they become
ready, one topic per slot; every platform of that topic posts in that slot.

Local times are wall-clock times in the channel's zone, so a 09:00 slot stays at 09:00 across a
daylight-saving change. A time the clocks skip (02:30 on a spring-forward night) moves forward
by the gap, to 03:30; a time that happens twice (01:30 on a fall-back night) is taken once, at
its first occurrence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from enum import IntEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import BaseModel, ConfigDict, Field, field_validator

_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


class Weekday(IntEnum):
    MON = 0
    TUE = 1
    WED = 2
    THU = 3
    FRI = 4
    SAT = 5
    SUN = 6


_WEEKDAY_NAMES = {w.name.lower(): w for w in Weekday} | {
    "monday": Weekday.MON, "tuesday": Weekday.TUE, "wednesday": Weekday.WED,
    "thursday": Weekday.THU, "friday": Weekday.FRI, "saturday": Weekday.SAT,
    "sunday": Weekday.SUN,
}  # fmt: skip


class PostingCalendar(BaseModel):
    """When a channel's posts go out. `times` are local "HH:MM" in `timezone`."""

    model_config = ConfigDict(extra="forbid")

    timezone: str = Field("UTC", description="An IANA zone name, e.g. Europe/Moscow.")
    times: list[str] = Field(
        min_length=1, description='Local times of day, e.g. ["09:00", "19:00"].'
    )
    weekdays: list[Weekday] = Field(
        default_factory=lambda: list(Weekday),
        min_length=1,
        description="Days with slots: mon..sun (default: every day).",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            close = sorted(z for z in available_timezones() if value.lower() in z.lower())[:3]
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ValueError(
                f"unknown time zone {value!r}{hint}; use an IANA name such as Europe/Moscow"
            ) from None
        return value

    @field_validator("times")
    @classmethod
    def _clock_times(cls, values: list[str]) -> list[str]:
        parsed = set()
        for value in values:
            match = _CLOCK.match(value.strip())
            if not match:
                raise ValueError(f"posting time {value!r} is not HH:MM (24-hour), e.g. 09:30")
            parsed.add(f"{int(match[1]):02d}:{match[2]}")
        return sorted(parsed)

    @field_validator("weekdays", mode="before")
    @classmethod
    def _weekday_names(cls, values: object) -> object:
        if not isinstance(values, list):
            return values
        out = []
        for value in values:
            if isinstance(value, str):
                day = _WEEKDAY_NAMES.get(value.strip().lower())
                if day is None:
                    raise ValueError(f"weekday {value!r} is not one of mon, tue, ..., sun")
                out.append(day)
            else:
                out.append(value)
        return out

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def clock_times(self) -> list[time]:
        return [time(int(t[:2]), int(t[3:])) for t in self.times]


def _local_instant(day: date, clock: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of wall-clock `clock` on `day` in `zone`. fold=0 reads a repeated time
    as its first occurrence, and a skipped time with the offset from before the change, which
    moves it forward by the length of the gap (02:30 on a one-hour spring-forward is 03:30)."""
    return datetime.combine(day, clock).replace(tzinfo=zone, fold=0).astimezone(UTC)


def slots_from(calendar: PostingCalendar, start: datetime) -> Iterator[datetime]:
    """Every slot at or after `start` (aware), in order, as UTC datetimes. Endless."""
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    zone = calendar.zone
    # From the day before: a slot near midnight may fall on the previous local date.
    day = start.astimezone(zone).date() - timedelta(days=1)
    clocks = calendar.clock_times()
    weekdays = set(calendar.weekdays)
    # weekdays has at least one day, so every week yields slots and the loop never starves.
    while True:
        if day.weekday() in weekdays:
            for instant in sorted({_local_instant(day, clock, zone) for clock in clocks}):
                if instant >= start:
                    yield instant
        day += timedelta(days=1)


def next_free_slot(calendar: PostingCalendar, now: datetime, taken: Iterable[datetime]) -> datetime:
    """The first slot at or after `now` that no other topic of the channel holds."""
    held = {t.astimezone(UTC) for t in taken}
    for slot in slots_from(calendar, now):
        if slot not in held:
            return slot
    raise AssertionError("unreachable: slots_from is endless")


def describe_slot(slot: datetime, calendar: PostingCalendar) -> str:
    """`2026-11-26 09:00 Europe/Moscow (06:00 UTC)`, for metadata and the CLI."""
    local = slot.astimezone(calendar.zone)
    utc = slot.astimezone(UTC)
    return f"{local:%Y-%m-%d %H:%M} {calendar.timezone} ({utc:%H:%M} UTC)"
