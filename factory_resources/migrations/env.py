"""Alembic's environment for the project database (see this package's docstring).

Run from code: `alembic_config()` puts the connection (inside the caller's transaction and
lock) and, for autogenerate, the full metadata into `config.attributes`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from factory_resources.migrations import VERSION_TABLE, translated_schema

config = context.config


def _configure(**kwargs: object) -> None:
    url = kwargs.get("url")
    connection = kwargs.get("connection")
    dialect = connection.dialect.name if isinstance(connection, sa.Connection) else str(url)
    context.configure(
        target_metadata=config.attributes.get("target_metadata"),
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=dialect.startswith("sqlite"),
        compare_type=True,
        compare_server_default=True,
        version_table=VERSION_TABLE,
        **kwargs,  # type: ignore[arg-type]
    )


def run_offline() -> None:
    _configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        # Under a schema_translate_map the version table lives in the translated schema too;
        # alembic looks for it by name, so it must be told where.
        _configure(connection=connection, version_table_schema=translated_schema(connection))
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = sa.create_engine(config.get_main_option("sqlalchemy.url") or "", poolclass=sa.NullPool)
    with engine.begin() as conn:
        _configure(connection=conn)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
