"""The project database's schema history (Alembic), driven from code: no alembic.ini.

`upgrade(engine)` brings a database to the newest revision; `project_db.engine_for` calls it
once per URL per process. Concurrent starters wait for each other: PostgreSQL through an
advisory lock held for the migration's transaction, a SQLite file through a lock file beside
it, threads of one process through a lock here. A database made by `metadata.create_all`
before migrations existed (its tables there, no version table) is stamped at the baseline
and then upgraded, keeping its rows.

The version table is `factory_alembic_version`, not Alembic's default `alembic_version`: the
project's tables may share a database with Dagster's own storage (one PostgreSQL database in
the production profile), and Dagster keeps its schema revision in `alembic_version`. A database
that recorded our revision there (before this name) has it moved on first upgrade.

Adding a migration: change the table in its module, then, against a database at head,

    .venv/bin/python -m factory_resources.migrations revision --autogenerate -m "what changed"

read the file it writes in versions/ (autogenerate misses renames and server-side details),
and commit it. Env: FACTORY_DB_URL (else $FACTORY_HOME/factory.db).
"""

from __future__ import annotations

import fcntl
import importlib
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent
BASELINE = "0001_baseline"
# Every table that existed when migrations began: a database holding all of them without an
# version table was made by create_all and is stamped at the baseline.
BASELINE_TABLES = (
    "voices", "characters", "character_images", "cost_lines", "platform_accounts",
    "publications", "post_slots", "post_metrics",
)  # fmt: skip
# Every module that adds tables to project_db.metadata; autogenerate must see all of them.
TABLE_MODULES = (
    "factory_resources.project_db",
    "factory_resources.account_vault",
    "factory_resources.publication_ledger",
    "factory_resources.post_schedule",
    "factory_resources.metrics_history",
    "factory_resources.tenancy",
)
VERSION_TABLE = "factory_alembic_version"
LEGACY_VERSION_TABLE = "alembic_version"
# pg_advisory_xact_lock key: any fixed 64-bit number, the same in every process.
PG_LOCK_KEY = 0x7646_6D69_6772_6174  # "vfmigrat"

_local_lock = threading.Lock()
_migrated: weakref.WeakSet[sa.Engine] = weakref.WeakSet()


def target_metadata() -> sa.MetaData:
    """project_db.metadata with every table module imported (what autogenerate compares)."""
    for name in TABLE_MODULES:
        importlib.import_module(name)
    from factory_resources.project_db import metadata

    return metadata


def alembic_config(
    connection: sa.Connection | None = None, url: str | None = None, *, autogenerate: bool = False
) -> Config:
    """An Alembic Config over this folder, on `connection` (or `url`). The table modules are
    imported only with `autogenerate`: upgrades run the revision files and need none of them,
    and importing them all (pandas among them) would slow every command that opens the DB."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["connection"] = connection
    config.attributes["target_metadata"] = target_metadata() if autogenerate else None
    return config


def translated_schema(conn: sa.Connection) -> str | None:
    """The schema that unqualified tables land in under a schema_translate_map (tests give
    each run its own PostgreSQL schema that way), else None: the default schema."""
    mapping = conn.get_execution_options().get("schema_translate_map") or {}
    return mapping.get(None)


@contextmanager
def _migration_connection(engine: sa.Engine) -> Iterator[sa.Connection]:
    """One transaction that no other process migrates the same database during."""
    url = engine.url
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        lock_path = Path(f"{url.database}.migrate.lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)  # released when the file closes
            with engine.begin() as conn:
                yield conn
        return
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Held until this transaction ends, so it covers the whole upgrade and its commit.
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(PG_LOCK_KEY)))
        yield conn


def _adopt_legacy_version(conn: sa.Connection, tables: set[str], config: Config) -> set[str]:
    """Moves our revision out of `alembic_version` (where Dagster keeps its own) into
    VERSION_TABLE; a row that is not one of our revisions (Dagster's) is left alone."""
    if VERSION_TABLE in tables or LEGACY_VERSION_TABLE not in tables:
        return tables
    from alembic.script import ScriptDirectory

    ours = {rev.revision for rev in ScriptDirectory.from_config(config).walk_revisions()}
    legacy = sa.Table(LEGACY_VERSION_TABLE, sa.MetaData(), sa.Column("version_num", sa.String),
                      schema=translated_schema(conn))  # fmt: skip
    found = [v for v in conn.execute(sa.select(legacy.c.version_num)).scalars() if v in ours]
    if not found:
        return tables
    command.stamp(config, found[0])
    conn.execute(legacy.delete().where(legacy.c.version_num.in_(found)))
    if conn.execute(sa.select(sa.func.count()).select_from(legacy)).scalar_one() == 0:
        legacy.drop(conn)
        tables = tables - {LEGACY_VERSION_TABLE}
    return tables | {VERSION_TABLE}


def _run(conn: sa.Connection, revision: str) -> None:
    tables = set(sa.inspect(conn).get_table_names(schema=translated_schema(conn)))
    config = alembic_config(conn)
    tables = _adopt_legacy_version(conn, tables, config)
    if VERSION_TABLE not in tables and set(BASELINE_TABLES) <= tables:
        command.stamp(config, BASELINE)
    # A database holding only some baseline tables (made by one module's create_all) gets the
    # missing ones from the baseline revision, which skips tables that exist.
    command.upgrade(config, revision)


def upgrade(engine: sa.Engine, revision: str = "head", *, force: bool = False) -> None:
    """Brings the engine's database to `revision`; a no-op for an engine already done."""
    with _local_lock:
        if engine in _migrated and revision == "head" and not force:
            return
        with _migration_connection(engine) as conn:
            _run(conn, revision)
        if revision == "head":
            _migrated.add(engine)


def downgrade(engine: sa.Engine, revision: str) -> None:
    with _local_lock:
        _migrated.discard(engine)
        with _migration_connection(engine) as conn:
            command.downgrade(alembic_config(conn), revision)


def current(engine: sa.Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        opts = {"version_table_schema": translated_schema(conn), "version_table": VERSION_TABLE}
        return MigrationContext.configure(conn, opts=opts).get_current_revision()
