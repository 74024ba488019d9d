"""Users, their API keys, plans and quotas, and the channels they own (project tables).

- A user has a unique `name` (a slug; it is the `owner` string every other project table uses:
  voices, characters, platform_accounts, publications, post_metrics, cost_lines, post_slots).
- API keys are random (`vf_` + 32 url-safe bytes), shown once, stored as SHA-256 digests (keys
  are high-entropy, so a fast hash is right; compare with hmac.compare_digest) beside a short
  prefix that is safe to show; each key has an id, a label, created/last-used times and can be
  revoked. The last use is written at most once a minute, so authenticating stays one read.
- A channel belongs to one user. Its settings are a `ChannelProfile` stored as JSON; channel
  names are slugs, unique across users (a taken name is `ChannelNameTaken`). Someone else's
  channel behaves as one that does not exist. `MediaStore.channel_profile` reads a channel
  from here first and falls back to `$FACTORY_HOME/channels/<name>/channel.yaml`.
- Plans: free (5 videos a month, 1 voice clone, 1 character, 1 channel, watermark), creator,
  pro, agency (unlimited); each field overridable in `$FACTORY_HOME/plans.yaml`, e.g.

      free: {videos_per_month: 10}
      team: {videos_per_month: 100, voice_clones: 5, characters: 5, channels: 5, watermark: false}

  `check_quota` raises `QuotaExceeded`, whose message names the plan, the limit, the usage and
  what to do. Videos count per calendar month (UTC) in `video_usage`, once per topic key.

The tables are created by the Alembic migrations (factory_resources/migrations), which
`project_db.engine_for` runs; `Tenancy` runs them too when handed another engine.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from factory_core.models import ChannelProfile
from factory_core.slugs import InvalidChannelError, channel_slug
from factory_resources import project_db
from factory_resources.project_db import metadata

QuotaResource = Literal["videos", "voice_clones", "characters", "channels"]

KEY_PREFIX = "vf_"
# What a listing may show of a key: "vf_" and 6 of its 43 random characters (still ~220 bits
# unknown), enough for a person to tell their keys apart.
_SHOWN_CHARS = len(KEY_PREFIX) + 6
_KEY_PATTERN = re.compile(r"^vf_[A-Za-z0-9_-]{40,60}$")
_USER_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")
_PLAN_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
# Writing last_used_at on every request would turn each authentication into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes for timezone=True columns; everything here is UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


users = sa.Table(
    "users", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(120), nullable=False, unique=True),
    sa.Column("plan", sa.String(40), nullable=False, server_default="free"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, default=_now),
)  # fmt: skip

api_keys = sa.Table(
    "api_keys", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id", ondelete="CASCADE"),
              nullable=False, index=True),
    sa.Column("label", sa.String(120), nullable=False, default=""),
    sa.Column("prefix", sa.String(16), nullable=False),  # shown in listings; not enough to use
    sa.Column("digest", sa.String(64), nullable=False, unique=True),  # SHA-256 hex of the key
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, default=_now),
    sa.Column("last_used_at", sa.DateTime(timezone=True)),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
)  # fmt: skip

channels = sa.Table(
    "channels", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("owner", sa.String(120), nullable=False, index=True),
    sa.Column("name", sa.String(40), nullable=False, unique=True),  # unique across owners
    sa.Column("profile", sa.JSON, nullable=False),  # a ChannelProfile, as JSON
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, default=_now),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, default=_now, onupdate=_now),
)  # fmt: skip

video_usage = sa.Table(
    "video_usage", metadata,
    # One row per topic an owner asked for: a retried create of the same topic counts once.
    sa.Column("owner", sa.String(120), primary_key=True),
    sa.Column("topic_key", sa.String(120), primary_key=True),
    sa.Column("counted_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_video_usage_owner_counted_at", "owner", "counted_at"),
)  # fmt: skip


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    videos_per_month: int | None = Field(ge=0)  # None: unlimited
    voice_clones: int | None = Field(ge=0)
    characters: int | None = Field(ge=0)
    channels: int | None = Field(ge=0)
    watermark: bool  # the factory's mark on every video (free plan)

    def limit(self, resource: QuotaResource) -> int | None:
        return self.videos_per_month if resource == "videos" else getattr(self, resource)


DEFAULT_PLANS: dict[str, Plan] = {
    p.name: p
    for p in (
        Plan(name="free", videos_per_month=5, voice_clones=1, characters=1, channels=1,
             watermark=True),
        Plan(name="creator", videos_per_month=60, voice_clones=3, characters=5, channels=3,
             watermark=False),
        Plan(name="pro", videos_per_month=300, voice_clones=10, characters=20, channels=10,
             watermark=False),
        Plan(name="agency", videos_per_month=None, voice_clones=None, characters=None,
             channels=None, watermark=False),
    )
}  # fmt: skip

_PLAN_FIELDS_HELP = (
    "the fields are videos_per_month, voice_clones, characters and channels (a whole number, "
    "or null for unlimited) and watermark (true or false)"
)

# How each resource reads in a sentence: (one, many, what frees one).
_NOUNS: dict[str, tuple[str, str, str]] = {
    "videos": ("video", "videos", ""),
    "voice_clones": ("voice clone", "voice clones", "delete a cloned voice"),
    "characters": ("character", "characters", "delete a character"),
    "channels": ("channel", "channels", "delete a channel"),
}


class QuotaExceeded(Exception):
    def __init__(
        self,
        plan: str,
        resource: QuotaResource,
        limit: int,
        used: int,
        hint: str,
        adding: int = 1,
    ):
        self.plan, self.resource, self.limit, self.used, self.hint = (
            plan,
            resource,
            limit,
            used,
            hint,
        )
        self.adding = adding
        one, many, _ = _NOUNS.get(resource, (resource, resource, ""))
        allowed = f"{limit} {one if limit == 1 else many}"
        verb = "is" if used == 1 else "are"
        if resource == "videos":
            said = f"the {plan} plan allows {allowed} a month and {used} {verb} used this month"
        else:
            said = f"the {plan} plan allows {allowed} and {used} {verb} used"
        if adding > 1:
            said += f"; {adding} more would pass the limit"
        super().__init__(f"{said}; {hint}")


class ChannelNameTaken(ValueError):
    """Another user (or this one) already has a channel of this name."""


class UnknownUser(LookupError):
    pass


class UnknownChannel(LookupError):
    """No channel of that name belongs to the caller (it may be someone else's)."""


class UserExists(ValueError):
    pass


class UnknownPlan(ValueError):
    pass


class PlansFileError(ValueError):
    """`$FACTORY_HOME/plans.yaml` cannot be used; the message names the plan and the field."""


class InvalidChannelSettings(ValueError):
    """A channel's settings fail validation; `errors` holds (field path, reason) pairs."""

    def __init__(self, channel: str, errors: list[tuple[str, str]]) -> None:
        self.channel, self.errors = channel, errors
        detail = "; ".join(f"{field}: {reason}" for field, reason in errors)
        super().__init__(f"channel {channel!r} settings are invalid: {detail}")


@dataclass(frozen=True)
class User:
    id: str
    name: str
    plan: str
    created_at: datetime


@dataclass(frozen=True)
class ApiKeyInfo:
    id: str
    label: str
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool
    prefix: str = ""  # the key's first characters, e.g. "vf_Ab12Cd", for telling keys apart


def _validation_errors(exc: ValidationError) -> list[tuple[str, str]]:
    return [(".".join(str(p) for p in e["loc"]) or "(root)", e["msg"]) for e in exc.errors()]


def load_plans(home: Path | None = None) -> dict[str, Plan]:
    """The default plans with `$FACTORY_HOME/plans.yaml` overrides (per field; a new plan
    names every field)."""
    from factory_resources.store import default_home

    plans = dict(DEFAULT_PLANS)
    path = (home or default_home()) / "plans.yaml"
    if not path.is_file():
        return plans
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PlansFileError(f"{path} is not valid YAML ({exc}); fix it or remove it") from None
    if data is None:
        return plans
    if not isinstance(data, dict):
        raise PlansFileError(
            f"{path} must map plan names to their limits, e.g. 'free: {{videos_per_month: 10}}'"
        )
    for name, fields in data.items():
        if not isinstance(name, str) or not _PLAN_PATTERN.match(name):
            raise PlansFileError(
                f"{path}: plan name {name!r} is not usable; use lowercase letters, digits, "
                "'-' or '_'"
            )
        if not isinstance(fields, dict):
            raise PlansFileError(f"{path}: plan {name!r} must be a mapping; {_PLAN_FIELDS_HELP}")
        if "name" in fields:
            raise PlansFileError(f"{path}: plan {name!r}: 'name' comes from the key; remove it")
        base = plans[name].model_dump() if name in plans else {}
        try:
            plans[name] = Plan.model_validate({**base, **fields, "name": name})
        except ValidationError as exc:
            detail = "; ".join(f"{f}: {r}" for f, r in _validation_errors(exc))
            raise PlansFileError(f"{path}: plan {name!r}: {detail} ({_PLAN_FIELDS_HELP})") from None
    return plans


def validate_user_name(name: str) -> str:
    if not isinstance(name, str) or not _USER_PATTERN.match(name):
        raise ValueError(
            f"user name {name!r} is not usable: use 1-40 lowercase letters, digits or dashes "
            "(not at the start or end), for example 'alice' or 'studio-9'"
        )
    return name


def _digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def _month(now: datetime) -> tuple[datetime, datetime]:
    start = _utc(now).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return start, end


def _deep_merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _user(row: sa.RowMapping) -> User:
    return User(
        id=row["id"], name=row["name"], plan=row["plan"], created_at=_utc(row["created_at"])
    )


def _key_info(row: sa.RowMapping) -> ApiKeyInfo:
    last = row["last_used_at"]
    return ApiKeyInfo(
        id=row["id"],
        label=row["label"],
        created_at=_utc(row["created_at"]),
        last_used_at=_utc(last) if last is not None else None,
        revoked=row["revoked_at"] is not None,
        prefix=row["prefix"],
    )


def _profile(row: sa.RowMapping) -> ChannelProfile:
    # The columns are the truth for name and owner; the JSON holds the rest.
    try:
        return ChannelProfile.model_validate({**row["profile"], "name": row["name"],
                                              "owner": row["owner"]})  # fmt: skip
    except ValidationError as exc:
        raise InvalidChannelSettings(row["name"], _validation_errors(exc)) from None


def stored_channel_profile(engine: sa.Engine, name: str) -> ChannelProfile | None:
    """Any owner's channel of that (slug) name: one read by the unique name index."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(channels.c.name, channels.c.owner, channels.c.profile).where(
                channels.c.name == name
            )
        ).mappings().first()  # fmt: skip
    return _profile(row) if row is not None else None


class Tenancy:
    """Users, keys, plans, channels and quotas on the project database (SQLite or PostgreSQL).
    Every method that reads a resource takes its owner and never returns another's."""

    def __init__(self, engine: sa.Engine, home: Path | None = None) -> None:
        from factory_resources.migrations import upgrade

        self.engine = engine
        self.home = home
        upgrade(engine)  # once per engine; engines from project_db.engine_for are at head already
        self._plans_cache: tuple[tuple[int, int] | None, dict[str, Plan]] | None = None

    def __repr__(self) -> str:
        return f"Tenancy({self.engine.url!r})"

    # plans
    @property
    def plans(self) -> dict[str, Plan]:
        """The plans, re-read when plans.yaml changes (a long-running API sees edits)."""
        from factory_resources.store import default_home

        path = (self.home or default_home()) / "plans.yaml"
        try:
            stat = path.stat()
            stamp: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            stamp = None
        if self._plans_cache is None or self._plans_cache[0] != stamp:
            self._plans_cache = (stamp, load_plans(self.home))
        return self._plans_cache[1]

    def _plan(self, name: str) -> Plan:
        plans = self.plans
        if name not in plans:
            raise UnknownPlan(f"unknown plan {name!r}; use one of {', '.join(plans)}")
        return plans[name]

    def plan(self, user: str) -> Plan:
        """The user's plan with its limits (and whether their videos carry the watermark)."""
        return self._plan(self.get_user(user).plan)

    # users and keys
    def create_user(self, name: str, plan: str = "free") -> tuple[User, str]:
        """The new user and their first API key (plaintext, shown once)."""
        validate_user_name(name)
        self._plan(plan)
        row = {"id": uuid.uuid4().hex, "name": name, "plan": plan, "created_at": _now()}
        try:
            with self.engine.begin() as conn:
                conn.execute(users.insert().values(**row))
        except sa.exc.IntegrityError:
            raise UserExists(f"a user named {name!r} already exists; choose another name") from None
        _, key = self.issue_key(name, "first key")
        return User(**row), key

    def get_user(self, name: str) -> User:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(users).where(users.c.name == name)).mappings().first()
        if row is None:
            raise UnknownUser(f"no user named {name!r}; create one with `factory users add NAME`")
        return _user(row)

    def list_users(self) -> list[User]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(users).order_by(users.c.name)).mappings().all()
        return [_user(r) for r in rows]

    def set_plan(self, name: str, plan: str) -> User:
        self._plan(plan)
        with self.engine.begin() as conn:
            done = conn.execute(users.update().where(users.c.name == name).values(plan=plan))
        if done.rowcount == 0:
            self.get_user(name)  # raises UnknownUser with the usual message
        return self.get_user(name)

    def issue_key(self, user: str, label: str = "") -> tuple[ApiKeyInfo, str]:
        owner = self.get_user(user)
        if len(label) > 120:
            raise ValueError(f"key label is {len(label)} characters; use at most 120")
        api_key = KEY_PREFIX + secrets.token_urlsafe(32)
        row = {"id": uuid.uuid4().hex[:12], "user_id": owner.id, "label": label,
               "prefix": api_key[:_SHOWN_CHARS], "digest": _digest(api_key),
               "created_at": _now(), "last_used_at": None, "revoked_at": None}  # fmt: skip
        with self.engine.begin() as conn:
            conn.execute(api_keys.insert().values(**row))
        return _key_info(row), api_key  # type: ignore[arg-type]

    def list_keys(self, user: str) -> list[ApiKeyInfo]:
        owner = self.get_user(user)
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(api_keys)
                .where(api_keys.c.user_id == owner.id)
                .order_by(api_keys.c.created_at, api_keys.c.id)
            ).mappings()
            return [_key_info(r) for r in rows]

    def revoke_key(self, user: str, key_id: str) -> bool:
        """True when the user has that key (revoked now, or already); False when they don't."""
        owner = self.get_user(user)
        mine = sa.and_(api_keys.c.id == key_id, api_keys.c.user_id == owner.id)
        with self.engine.begin() as conn:
            conn.execute(
                api_keys.update()
                .where(mine, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=_now())
            )
            return conn.execute(sa.select(api_keys.c.id).where(mine)).first() is not None

    def authenticate(self, api_key: str) -> User | None:
        """The key's user, or None (unknown, revoked, malformed); records last use."""
        if not isinstance(api_key, str) or not _KEY_PATTERN.match(api_key):
            return None
        digest = _digest(api_key)
        query = (
            sa.select(users, api_keys.c.id.label("key_id"), api_keys.c.digest,
                      api_keys.c.last_used_at, api_keys.c.revoked_at)
            .join(api_keys, api_keys.c.user_id == users.c.id)
            .where(api_keys.c.digest == digest)
        )  # fmt: skip
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        # The lookup is by digest already; compare_digest keeps the final check constant-time.
        if row is None or not hmac.compare_digest(row["digest"], digest):
            return None
        if row["revoked_at"] is not None:
            return None
        now = _now()
        last = row["last_used_at"]
        if last is None or now - _utc(last) >= LAST_USED_RESOLUTION:
            stale = sa.or_(
                api_keys.c.last_used_at.is_(None),
                api_keys.c.last_used_at < now - LAST_USED_RESOLUTION,
            )
            with self.engine.begin() as conn:
                conn.execute(
                    api_keys.update()
                    .where(api_keys.c.id == row["key_id"], stale)
                    .values(last_used_at=now)
                )
        return _user(row)

    # channels
    def create_channel(self, owner: str, profile: ChannelProfile) -> ChannelProfile:
        """Stores `profile` as `owner`'s channel (its owner field is set to `owner`). Raises
        ChannelNameTaken, InvalidChannelError (a name that is no slug), QuotaExceeded."""
        self.get_user(owner)
        name = channel_slug(profile.name)
        self.check_quota(owner, "channels")
        stored = profile.model_copy(update={"name": name, "owner": owner})
        now = _now()
        try:
            with self.engine.begin() as conn:
                conn.execute(channels.insert().values(
                    id=uuid.uuid4().hex, owner=owner, name=name,
                    profile=stored.model_dump(mode="json"), created_at=now, updated_at=now,
                ))  # fmt: skip
        except sa.exc.IntegrityError:
            raise ChannelNameTaken(
                f"the channel name {name!r} is taken; choose another name"
            ) from None
        return stored

    def _own_row(self, conn: sa.Connection, owner: str, name: str) -> sa.RowMapping | None:
        try:
            slug = channel_slug(name)
        except InvalidChannelError:
            return None
        return (
            conn.execute(
                sa.select(channels).where(channels.c.name == slug, channels.c.owner == owner)
            )
            .mappings()
            .first()
        )

    def update_channel(self, owner: str, name: str, changes: dict[str, object]) -> ChannelProfile:
        """Deep-merges `changes` into the stored profile and validates the result. Raises
        UnknownChannel (also for someone else's), InvalidChannelSettings naming the fields."""
        with self.engine.begin() as conn:
            row = self._own_row(conn, owner, name)
            if row is None:
                raise UnknownChannel(f"you have no channel named {name!r}")
            current = _profile(row)
            if "name" in changes and changes["name"] != current.name:
                raise InvalidChannelSettings(current.name, [(
                    "name", "a channel cannot be renamed; create a new channel instead"
                )])  # fmt: skip
            if "owner" in changes and changes["owner"] != owner:
                raise InvalidChannelSettings(current.name, [(
                    "owner", "a channel cannot be given to another user"
                )])  # fmt: skip
            merged = _deep_merge(current.model_dump(mode="json"), dict(changes))
            try:
                updated = ChannelProfile.model_validate(merged)
            except ValidationError as exc:
                raise InvalidChannelSettings(current.name, _validation_errors(exc)) from None
            conn.execute(
                channels.update()
                .where(channels.c.id == row["id"])
                .values(profile=updated.model_dump(mode="json"), updated_at=_now())
            )
        return updated

    def get_channel(self, owner: str, name: str) -> ChannelProfile | None:
        """None when the channel does not exist or belongs to someone else."""
        with self.engine.connect() as conn:
            row = self._own_row(conn, owner, name)
        return _profile(row) if row is not None else None

    def list_channels(self, owner: str) -> list[ChannelProfile]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(channels).where(channels.c.owner == owner).order_by(channels.c.name)
            ).mappings()
            return [_profile(r) for r in rows]

    def delete_channel(self, owner: str, name: str) -> bool:
        with self.engine.begin() as conn:
            row = self._own_row(conn, owner, name)
            if row is None:
                return False
            conn.execute(channels.delete().where(channels.c.id == row["id"]))
        return True

    def channel_profile(self, name: str) -> ChannelProfile | None:
        """Any owner's channel, for the pipeline (which runs for every user)."""
        try:
            slug = channel_slug(name)
        except InvalidChannelError:
            return None
        return stored_channel_profile(self.engine, slug)

    # quotas
    def _used(self, conn: sa.Connection, user: str, resource: QuotaResource, now: datetime) -> int:
        if resource == "videos":
            start, end = _month(now)
            t = video_usage.c
            where = sa.and_(t.owner == user, t.counted_at >= start, t.counted_at < end)
            table: sa.Table = video_usage
        elif resource == "voice_clones":
            # A clone the provider refused stays as a `failed` row until retried: not a clone.
            t = project_db.voices.c
            where = sa.and_(t.owner == user, t.provider == "elevenlabs", t.status != "failed")
            table = project_db.voices
        elif resource == "characters":
            t = project_db.characters.c
            where = sa.and_(t.owner == user, t.status != "failed")
            table = project_db.characters
        elif resource == "channels":
            where, table = channels.c.owner == user, channels
        else:
            raise ValueError(
                f"unknown quota resource {resource!r}; use videos, voice_clones, characters "
                "or channels"
            )
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(table).where(where)).scalar_one()
        )

    def check_quota(
        self, user: str, resource: QuotaResource, adding: int = 1, now: datetime | None = None
    ) -> None:
        """Raises QuotaExceeded when `adding` more would pass the plan's limit. Videos count
        the topics recorded with `record_video` in the current calendar month (UTC)."""
        now = _utc(now or _now())
        plan = self.plan(user)
        limit = plan.limit(resource)
        if limit is None:
            return
        with self.engine.connect() as conn:
            used = self._used(conn, user, resource, now)
        if used + adding <= limit:
            return
        if resource == "videos":
            hint = f"upgrade the plan or wait until {_month(now)[1].date().isoformat()}"
        else:
            hint = f"upgrade the plan or {_NOUNS[resource][2]}"
        raise QuotaExceeded(plan.name, resource, limit, used, hint, adding)

    def record_video(self, user: str, topic_key: str, now: datetime | None = None) -> None:
        """Counts one video against the month (idempotent per topic_key)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(video_usage.insert().values(
                    owner=user, topic_key=topic_key, counted_at=_utc(now or _now())
                ))  # fmt: skip
        except sa.exc.IntegrityError:
            pass  # counted already: a retried create of the same topic

    def usage(self, user: str, now: datetime | None = None) -> dict[str, int]:
        now = _utc(now or _now())
        self.get_user(user)
        with self.engine.connect() as conn:
            return {
                r: self._used(conn, user, r, now)
                for r in ("videos", "voice_clones", "characters", "channels")
            }
