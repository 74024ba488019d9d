"""Alembic migrations of the project database, on SQLite and on a fresh PostgreSQL database.

Covers: a fresh database upgraded to head matches every table module's metadata exactly
(autogenerate finds no difference, server defaults included); downgrade to base and upgrade
again; a database made by create_all before migrations is stamped and upgraded with its rows
kept (also one holding only some tables); the modules' own create_all calls stay no-ops; a
schema_translate_map engine migrates inside its schema; PostgreSQL upgrades wait on the
advisory lock. Not touched: the data in any table beyond a few sample rows.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from factory_resources import migrations
from factory_resources.metrics_history import MetricsHistory
from factory_resources.migrations import (
    BASELINE,
    BASELINE_TABLES,
    PG_LOCK_KEY,
    VERSION_TABLE,
    alembic_config,
    current,
    downgrade,
    target_metadata,
    upgrade,
)
from factory_resources.project_db import engine_for, voices
from factory_resources.publication_ledger import PublicationLedger

from .test_postgres import postgres_url  # noqa: F401  (fixture)

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()
TENANCY_TABLES = {"users", "api_keys", "channels", "video_usage"}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'factory.db'}"
    return request.getfixturevalue("postgres_url")


def _differences(engine: sa.Engine) -> list[object]:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "compare_server_default": True,
                "version_table": VERSION_TABLE,
            },
        )
        return list(compare_metadata(context, target_metadata()))


def _tables(engine: sa.Engine, schema: str | None = None) -> set[str]:
    return set(sa.inspect(engine).get_table_names(schema=schema))


def test_head_is_the_tenancy_revision_after_the_baseline() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert [r.revision for r in script.walk_revisions()] == [HEAD, BASELINE]
    assert set(BASELINE_TABLES) | TENANCY_TABLES == set(target_metadata().tables)


def test_fresh_database_matches_the_metadata(url: str) -> None:
    engine = engine_for(url)
    assert engine_for(url) is engine  # once per URL per process
    assert current(engine) == HEAD
    assert _differences(engine) == []
    with engine.begin() as conn:  # server defaults came along: language defaults to "en"
        conn.execute(voices.insert().values(
            id="v1", owner="alice", name="calm", provider="offline", status="ready",
            settings={}, samples=[], usage_count=0,
            created_at=datetime.now(UTC), updated_at=datetime.now(UTC),
        ))  # fmt: skip
        conn.execute(sa.text("insert into users (id, name, created_at) values ('u1', 'alice', :t)"),
                     {"t": datetime.now(UTC)})  # fmt: skip
        assert conn.execute(sa.select(voices.c.language)).scalar_one() == "en"
        assert conn.execute(sa.text("select plan from users")).scalar_one() == "free"


def test_downgrade_to_base_and_upgrade_again(url: str) -> None:
    engine = engine_for(url)
    downgrade(engine, BASELINE)
    assert not (_tables(engine) & TENANCY_TABLES)
    assert set(BASELINE_TABLES) <= _tables(engine)
    downgrade(engine, "base")
    assert _tables(engine) <= {"factory_alembic_version"}
    assert current(engine) is None
    upgrade(engine)
    assert current(engine) == HEAD
    assert _differences(engine) == []


def _baseline_metadata() -> sa.MetaData:
    """The tables as create_all made them before migrations existed."""
    full, old = target_metadata(), sa.MetaData()
    for name in BASELINE_TABLES:
        full.tables[name].to_metadata(old)
    return old


def test_a_create_all_database_is_stamped_and_upgraded_with_its_rows(url: str) -> None:
    raw = sa.create_engine(url)
    _baseline_metadata().create_all(raw)
    now = datetime.now(UTC)
    with raw.begin() as conn:
        conn.execute(voices.insert().values(
            id="v1", owner="alice", name="calm", provider="elevenlabs", status="ready",
            settings={"stability": 0.5}, samples=["a.wav"], usage_count=3,
            created_at=now, updated_at=now,
        ))  # fmt: skip
    raw.dispose()
    assert "factory_alembic_version" not in _tables(sa.create_engine(url))

    engine = engine_for(url)
    assert current(engine) == HEAD
    assert TENANCY_TABLES <= _tables(engine)
    assert _differences(engine) == []
    with engine.connect() as conn:
        row = conn.execute(sa.select(voices)).mappings().one()
    assert (row["owner"], row["settings"], row["usage_count"]) == ("alice", {"stability": 0.5}, 3)


def test_stamping_happens_only_for_a_complete_create_all_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stamped: list[str] = []
    real_stamp = migrations.command.stamp
    monkeypatch.setattr(migrations.command, "stamp",
                        lambda cfg, rev: (stamped.append(rev), real_stamp(cfg, rev)))  # fmt: skip
    legacy = f"sqlite:///{tmp_path / 'legacy.db'}"
    _baseline_metadata().create_all(sa.create_engine(legacy))
    engine_for(legacy)
    engine_for(f"sqlite:///{tmp_path / 'fresh.db'}")
    assert stamped == [BASELINE]


def test_a_database_with_only_some_tables_gets_the_missing_ones(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'factory.db'}"
    MetricsHistory(sa.create_engine(url))  # its own create_all: post_metrics only
    engine = engine_for(url)
    assert current(engine) == HEAD
    assert _differences(engine) == []


def test_the_modules_create_all_is_a_no_op_after_migrations(url: str) -> None:
    engine = engine_for(url)
    PublicationLedger(engine)
    MetricsHistory(engine)
    assert current(engine) == HEAD
    assert _differences(engine) == []


@pytest.fixture
def pg_schema_engine() -> Iterator[sa.Engine]:
    engine = sa.create_engine("postgresql://postgres@127.0.0.1:5432/test")
    schema = f"mig_{uuid.uuid4().hex[:12]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f"create schema {schema}"))
    try:
        yield engine.execution_options(schema_translate_map={None: schema})  # type: ignore[misc]
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"drop schema {schema} cascade"))
        engine.dispose()


@pytest.mark.postgres
def test_a_schema_translated_engine_migrates_inside_its_schema(pg_schema_engine: sa.Engine) -> None:
    upgrade(pg_schema_engine)
    schema = pg_schema_engine.get_execution_options()["schema_translate_map"][None]
    assert set(BASELINE_TABLES) | TENANCY_TABLES | {"factory_alembic_version"} == _tables(
        pg_schema_engine, schema
    )
    assert current(pg_schema_engine) == HEAD
    # A second process (a new engine object) finds the schema at head and changes nothing.
    again = pg_schema_engine.execution_options()
    upgrade(again)
    assert current(again) == HEAD


@pytest.mark.postgres
def test_postgres_upgrades_wait_for_the_advisory_lock(postgres_url: str) -> None:  # noqa: F811
    engine = sa.create_engine(postgres_url)
    done = threading.Event()
    with engine.connect() as holder:
        # Another process migrating: it holds the lock for its transaction.
        holder.execute(sa.select(sa.func.pg_advisory_xact_lock(PG_LOCK_KEY)))
        worker = threading.Thread(target=lambda: (upgrade(engine), done.set()))
        worker.start()
        assert not done.wait(1.0), "the upgrade ran while another holder had the lock"
        holder.rollback()  # ends the transaction, releasing the lock
        worker.join(30)
    assert done.is_set()
    assert current(engine) == HEAD
    engine.dispose()


def test_a_revision_recorded_in_alembic_version_is_moved_to_our_table(url: str) -> None:
    """Databases migrated before the version table had its own name keep their history."""
    engine = engine_for(url)
    with engine.begin() as conn:
        conn.execute(sa.text("create table alembic_version (version_num varchar(32) not null)"))
        conn.execute(sa.text("insert into alembic_version values (:v)"), {"v": HEAD})
        conn.execute(sa.text("drop table factory_alembic_version"))
    upgrade(engine, force=True)
    assert current(engine) == HEAD
    assert "alembic_version" not in _tables(engine)


@pytest.mark.postgres
def test_project_tables_share_a_database_with_dagster_storage(postgres_url: str) -> None:  # noqa: F811
    """The production profile may point DAGSTER_PG_URL and FACTORY_DB_URL at one database:
    Dagster's own revision in alembic_version must neither block nor be touched by ours."""
    from dagster_postgres import PostgresEventLogStorage

    PostgresEventLogStorage(postgres_url)  # creates Dagster's tables and stamps alembic_version
    with sa.create_engine(postgres_url).connect() as conn:
        dagster_revision = conn.execute(sa.text("select version_num from alembic_version")).scalar()
    assert dagster_revision

    engine = engine_for(postgres_url)
    assert current(engine) == HEAD
    with engine.connect() as conn:
        assert conn.execute(sa.text("select version_num from alembic_version")).scalar() == (
            dagster_revision
        )
