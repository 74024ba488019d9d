"""`python -m factory_resources.migrations upgrade|downgrade REV|current|history|revision`.

The database is FACTORY_DB_URL, else $FACTORY_HOME/factory.db (as for the factory itself).
"""

from __future__ import annotations

import argparse
import sys

import sqlalchemy as sa
from alembic import command

from factory_resources.migrations import alembic_config, current, downgrade, upgrade


def main(argv: list[str] | None = None) -> int:
    from factory_resources.project_db import database_url

    parser = argparse.ArgumentParser(prog="python -m factory_resources.migrations")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("upgrade", help="bring the database to REV (default: head)")
    up.add_argument("revision", nargs="?", default="head")
    down = sub.add_parser("downgrade", help="take the database back to REV (base: empty)")
    down.add_argument("revision")
    sub.add_parser("current", help="the database's revision")
    sub.add_parser("history", help="every revision, newest first")
    rev = sub.add_parser("revision", help="write a new revision file in versions/")
    rev.add_argument("-m", "--message", required=True)
    rev.add_argument("--autogenerate", action="store_true",
                     help="diff the tables' definitions against the database (at head)")  # fmt: skip
    args = parser.parse_args(argv)

    url = database_url()
    engine = sa.create_engine(url)
    try:
        if args.command == "upgrade":
            upgrade(engine, args.revision, force=True)
        elif args.command == "downgrade":
            downgrade(engine, args.revision)
        elif args.command == "current":
            sys.stdout.write(f"{current(engine) or '(empty: no revision)'}\n")
        elif args.command == "history":
            command.history(alembic_config(url=url))
        else:
            with engine.begin() as conn:
                command.revision(
                    alembic_config(conn, autogenerate=args.autogenerate),
                    message=args.message,
                    autogenerate=args.autogenerate,
                )
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
