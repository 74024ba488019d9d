"""Users, API keys, plans, quotas and channels (factory_resources.tenancy), on SQLite (the
default FACTORY_HOME database, FACTORY_DB_URL unset) and on a fresh PostgreSQL database.

Covers: keys are stored only as digests, authenticate/revoke, last use written at most once a
minute, user name and plan validation, channel owner isolation (someone else's channel is not
found), names taken across users, deep-merge updates with errors naming the field, every
quota with month rollover, plans.yaml overrides and errors, and MediaStore.channel_profile
reading the database before channel.yaml. Not touched: the REST API that uses all this.
"""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from factory_core.models import ChannelProfile
from factory_resources.project_db import characters, metadata, project_engine, voices
from factory_resources.store import MediaStore
from factory_resources.tenancy import (
    DEFAULT_PLANS,
    ChannelNameTaken,
    InvalidChannelSettings,
    PlansFileError,
    QuotaExceeded,
    Tenancy,
    UnknownChannel,
    UnknownPlan,
    UnknownUser,
    UserExists,
    api_keys,
    load_plans,
)

from .test_postgres import postgres_url  # noqa: F401  (fixture)

NOV = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)


def _home() -> Path:
    return Path(os.environ["FACTORY_HOME"])


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def tenancy(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Tenancy:
    """The project database as the factory opens it: SQLite in FACTORY_HOME, or FACTORY_DB_URL."""
    if request.param == "postgresql":
        monkeypatch.setenv("FACTORY_DB_URL", request.getfixturevalue("postgres_url"))
    else:
        monkeypatch.delenv("FACTORY_DB_URL", raising=False)
    _home().mkdir(parents=True, exist_ok=True)
    return Tenancy(project_engine(), _home())


def _all_text(engine: sa.Engine) -> str:
    """Every value of every project table, as text."""
    with engine.connect() as conn:
        return "\n".join(
            repr(tuple(row)) for table in metadata.sorted_tables
            for row in conn.execute(sa.select(table))
        )  # fmt: skip


def test_keys_are_stored_as_digests_and_authenticate(tenancy: Tenancy) -> None:
    user, key = tenancy.create_user("alice")
    info, second = tenancy.issue_key("alice", label="laptop")
    assert key.startswith("vf_") and len(key) >= 43 and key != second
    stored = _all_text(tenancy.engine)
    assert key not in stored and second not in stored and key[9:20] not in stored
    assert hashlib.sha256(key.encode()).hexdigest() in stored
    assert info.prefix == second[:9] and info.label == "laptop"
    assert tenancy.authenticate(key) == user
    assert tenancy.authenticate(second) == user
    for wrong in (key[:-1] + ("A" if key[-1] != "A" else "B"), "", "vf_short", key.upper(),
                  "Bearer " + key):  # fmt: skip
        assert tenancy.authenticate(wrong) is None
    assert second not in repr(tenancy.list_keys("alice"))


def test_revoked_keys_stop_working_and_only_their_owner_can_revoke(tenancy: Tenancy) -> None:
    _, alice_key = tenancy.create_user("alice")
    _, bob_key = tenancy.create_user("bob")
    (alice_info,) = tenancy.list_keys("alice")
    assert tenancy.revoke_key("bob", alice_info.id) is False
    assert tenancy.authenticate(alice_key) is not None
    assert tenancy.revoke_key("alice", alice_info.id) is True
    assert tenancy.revoke_key("alice", alice_info.id) is True  # already revoked: still hers
    assert tenancy.revoke_key("alice", "nope") is False
    assert tenancy.authenticate(alice_key) is None
    assert tenancy.authenticate(bob_key).name == "bob"  # type: ignore[union-attr]
    assert [k.revoked for k in tenancy.list_keys("alice")] == [True]


def test_last_use_is_written_at_most_once_a_minute(tenancy: Tenancy) -> None:
    _, key = tenancy.create_user("alice")
    assert tenancy.list_keys("alice")[0].last_used_at is None
    tenancy.authenticate(key)
    first = tenancy.list_keys("alice")[0].last_used_at
    assert first is not None
    tenancy.authenticate(key)
    assert tenancy.list_keys("alice")[0].last_used_at == first
    with tenancy.engine.begin() as conn:
        conn.execute(api_keys.update().values(last_used_at=first - timedelta(minutes=2)))
    tenancy.authenticate(key)
    assert tenancy.list_keys("alice")[0].last_used_at >= first  # type: ignore[operator]


@pytest.mark.parametrize("name", ["Alice", "al ice", "-alice", "alice-", "", "a" * 41, "al/ice"])
def test_bad_user_names_are_refused_with_the_rule(name: str, tenancy: Tenancy) -> None:
    with pytest.raises(ValueError, match="lowercase letters, digits or dashes"):
        tenancy.create_user(name)


def test_users_plans_and_unknowns(tenancy: Tenancy) -> None:
    tenancy.create_user("alice")
    with pytest.raises(UserExists, match="'alice' already exists"):
        tenancy.create_user("alice")
    with pytest.raises(UnknownPlan, match="free, creator, pro, agency"):
        tenancy.create_user("bob", plan="gold")
    with pytest.raises(UnknownUser, match="factory users add"):
        tenancy.get_user("carol")
    assert tenancy.set_plan("alice", "pro").plan == "pro"
    assert tenancy.plan("alice") == DEFAULT_PLANS["pro"]
    with pytest.raises(UnknownUser):
        tenancy.set_plan("carol", "pro")


def _profile(name: str, **fields: object) -> ChannelProfile:
    return ChannelProfile.model_validate({"name": name, **fields})


def test_channels_belong_to_their_owner(tenancy: Tenancy) -> None:
    for user in ("alice", "bob"):
        tenancy.create_user(user)
    created = tenancy.create_channel("alice", _profile("demo", owner="mallory", style="facts"))
    assert created.owner == "alice"
    assert tenancy.get_channel("alice", "demo") == created
    assert tenancy.get_channel("bob", "demo") is None
    assert tenancy.list_channels("bob") == []
    with pytest.raises(UnknownChannel):
        tenancy.update_channel("bob", "demo", {"style": "mine now"})
    assert tenancy.delete_channel("bob", "demo") is False
    with pytest.raises(ChannelNameTaken, match="'demo' is taken"):
        tenancy.create_channel("bob", _profile("demo"))
    assert tenancy.channel_profile("demo") == created  # the pipeline sees every owner's
    assert tenancy.delete_channel("alice", "demo") is True
    assert tenancy.create_channel("bob", _profile("demo")).owner == "bob"


def test_updates_deep_merge_and_name_the_bad_field(tenancy: Tenancy) -> None:
    tenancy.create_user("alice")
    tenancy.create_channel("alice", _profile("demo", brand={"primary": "#000000",
                                                            "handle": "@demo"}))  # fmt: skip
    updated = tenancy.update_channel(
        "alice", "demo", {"brand": {"accent": "#FF0000"}, "providers": {"script": {"tone": "dry"}}}
    )
    assert (updated.brand.primary, updated.brand.handle, updated.brand.accent) == (
        "#000000", "@demo", "#FF0000")  # fmt: skip
    assert updated.providers.script.tone == "dry"
    assert updated.providers.script.chain == ["offline"]
    assert tenancy.get_channel("alice", "demo") == updated
    with pytest.raises(InvalidChannelSettings, match=r"captions\.size") as bad:
        tenancy.update_channel("alice", "demo", {"captions": {"size": 9}})
    assert bad.value.errors[0][0] == "captions.size"
    with pytest.raises(InvalidChannelSettings, match=r"brand\.logo"):
        tenancy.update_channel("alice", "demo", {"brand": {"logo": "x.png"}})
    with pytest.raises(InvalidChannelSettings, match="cannot be renamed"):
        tenancy.update_channel("alice", "demo", {"name": "other"})
    assert tenancy.get_channel("alice", "demo") == updated  # nothing written by the failures


def test_video_quota_per_calendar_month(tenancy: Tenancy) -> None:
    tenancy.create_user("alice")
    for i in range(5):
        tenancy.check_quota("alice", "videos", now=NOV)
        tenancy.record_video("alice", f"demo--t{i}", now=NOV)
    tenancy.record_video("alice", "demo--t0", now=NOV)  # a retried create counts once
    assert tenancy.usage("alice", now=NOV)["videos"] == 5
    with pytest.raises(QuotaExceeded) as full:
        tenancy.check_quota("alice", "videos", now=NOV)
    assert str(full.value) == (
        "the free plan allows 5 videos a month and 5 are used this month; upgrade the plan or "
        "wait until 2026-12-01"
    )
    assert (full.value.plan, full.value.limit, full.value.used) == ("free", 5, 5)
    december = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    tenancy.check_quota("alice", "videos", now=december)
    tenancy.check_quota("alice", "videos", adding=5, now=december)
    with pytest.raises(QuotaExceeded, match=r"6 more would pass the limit; .* 2027-01-01"):
        tenancy.check_quota("alice", "videos", adding=6, now=december)
    assert tenancy.usage("alice", now=NOV - timedelta(days=31))["videos"] == 0
    tenancy.set_plan("alice", "agency")
    tenancy.check_quota("alice", "videos", adding=10_000, now=NOV)


def test_clone_character_and_channel_quotas(tenancy: Tenancy) -> None:
    tenancy.create_user("alice")
    now = datetime.now(UTC)
    common = {"settings": {}, "samples": [], "usage_count": 0, "created_at": now,
              "updated_at": now}  # fmt: skip
    with tenancy.engine.begin() as conn:
        conn.execute(voices.insert(), [
            {"id": "v1", "owner": "alice", "name": "a", "provider": "elevenlabs",
             "status": "ready", **common},
            {"id": "v2", "owner": "alice", "name": "b", "provider": "offline", "status": "ready",
             **common},
            {"id": "v3", "owner": "alice", "name": "c", "provider": "elevenlabs",
             "status": "failed", **common},
            {"id": "v4", "owner": "bob", "name": "a", "provider": "elevenlabs",
             "status": "ready", **common},
        ])  # fmt: skip
        conn.execute(characters.insert(), [
            {"id": "c1", "owner": "alice", "name": "max", "description": "",
             "reference_file": "max.png", "status": "ready", "created_at": now},
            {"id": "c2", "owner": "bob", "name": "max", "description": "",
             "reference_file": "max.png", "status": "ready", "created_at": now},
        ])  # fmt: skip
    tenancy.create_channel("alice", _profile("demo"))
    assert tenancy.usage("alice") == {"videos": 0, "voice_clones": 1, "characters": 1,
                                      "channels": 1}  # fmt: skip
    messages = {}
    for resource in ("voice_clones", "characters", "channels"):
        with pytest.raises(QuotaExceeded) as full:
            tenancy.check_quota("alice", resource)  # type: ignore[arg-type]
        messages[resource] = str(full.value)
    assert messages["voice_clones"] == (
        "the free plan allows 1 voice clone and 1 is used; upgrade the plan or delete a "
        "cloned voice"
    )
    assert "1 character and 1 is used; upgrade the plan or delete a character" in messages[
        "characters"]  # fmt: skip
    with pytest.raises(QuotaExceeded, match="1 channel and 1 is used"):
        tenancy.create_channel("alice", _profile("second"))
    tenancy.set_plan("alice", "creator")
    for resource in ("voice_clones", "characters", "channels"):
        tenancy.check_quota("alice", resource)  # type: ignore[arg-type]
    tenancy.create_channel("alice", _profile("second"))


def test_plans_yaml_overrides_fields_and_adds_plans(tenancy: Tenancy) -> None:
    tenancy.create_user("alice")
    (_home() / "plans.yaml").write_text(
        "free:\n  videos_per_month: 2\n"
        "team: {videos_per_month: null, voice_clones: 4, characters: 4, channels: 2,"
        " watermark: false}\n",
        encoding="utf-8",
    )
    plans = load_plans(_home())
    assert plans["free"].videos_per_month == 2 and plans["free"].watermark is True
    assert plans["free"].voice_clones == DEFAULT_PLANS["free"].voice_clones
    assert plans["team"].videos_per_month is None and plans["team"].channels == 2
    tenancy.record_video("alice", "demo--a", now=NOV)
    tenancy.record_video("alice", "demo--b", now=NOV)
    with pytest.raises(QuotaExceeded, match="allows 2 videos a month"):
        tenancy.check_quota("alice", "videos", now=NOV)  # the running Tenancy sees the edit
    assert tenancy.set_plan("alice", "team").plan == "team"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("free: {videos_per_month: -1}", r"plan 'free': videos_per_month: .*greater than or equal"),
        ("free: {videos_per_mnth: 3}", r"plan 'free': videos_per_mnth: Extra inputs"),
        ("free: {watermark: perhaps}", r"plan 'free': watermark: .*valid boolean"),
        ("team: {videos_per_month: 3}", r"plan 'team': voice_clones: Field required"),
        ("free: [1, 2]", r"plan 'free' must be a mapping"),
        ("- free", r"must map plan names"),
        ("free: {videos_per_month: [", r"not valid YAML"),
    ],
)
def test_a_bad_plans_yaml_names_the_plan_and_field(text: str, expected: str) -> None:
    _home().mkdir(parents=True, exist_ok=True)
    (_home() / "plans.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(PlansFileError, match=expected) as bad:
        load_plans(_home())
    assert "plans.yaml" in str(bad.value)


def test_media_store_reads_the_database_before_channel_yaml(tenancy: Tenancy) -> None:
    store = MediaStore()
    for name, style in (("demo", "from-yaml"), ("files", "files-only")):
        folder = store.channel_dir(name)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "channel.yaml").write_text(f"style: {style}\n", encoding="utf-8")
    assert store.channel_profile("demo").style == "from-yaml"
    tenancy.create_user("alice")
    tenancy.create_channel("alice", _profile("demo", style="from-db"))
    profile = store.channel_profile("Demo")
    assert (profile.style, profile.owner) == ("from-db", "alice")
    assert store.channel_profile("files").style == "files-only"
    assert store.channel_profile("nothing").style == "explainer"  # neither: the defaults
