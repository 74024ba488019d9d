"""`factory users`: the people who use the factory's API, their keys and plans.

factory users add NAME [--plan P]        a new user and their first API key (shown once)
factory users key NAME [--label L]       another API key for NAME (shown once)
factory users keys NAME [--json]         NAME's keys: id, prefix, label, use (never the key)
factory users revoke NAME KEY_ID         the key stops working at once
factory users plan NAME PLAN             move NAME to another plan (free, creator, pro, agency)
factory users usage NAME [--json]        what NAME uses of their plan this month
factory users list                       every user and plan

Plans and their limits: defaults, overridden in $FACTORY_HOME/plans.yaml. The database:
FACTORY_DB_URL, else $FACTORY_HOME/factory.db. Exit codes: 0 done, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from factory_resources.tenancy import Tenancy

RESOURCES = ("videos", "voice_clones", "characters", "channels")


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _tenancy() -> Tenancy:
    # Imported here: `factory --help` should not pay for sqlalchemy and alembic.
    from factory_resources.project_db import project_engine
    from factory_resources.store import MediaStore
    from factory_resources.tenancy import Tenancy

    home = MediaStore().root
    return Tenancy(project_engine(home), home)


def _run(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Unknown users, bad names and plans, a broken plans.yaml: bad input (2)."""

    def wrapped(args: argparse.Namespace) -> int:
        try:
            return int(handler(args))
        except (LookupError, ValueError) as exc:
            _err(f"error: {exc.args[0] if exc.args else exc}")
            return 2

    return wrapped


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "never"


def _print_key(key_id: str, api_key: str) -> None:
    print(f"API key (id {key_id}): {api_key}")
    _err(
        "warning: this is the only time the key is shown; store it now (it is kept only as a "
        "hash). Lost keys cannot be recovered: revoke them and issue another."
    )


def cmd_add(args: argparse.Namespace) -> int:
    tenancy = _tenancy()
    user, api_key = tenancy.create_user(args.name, plan=args.plan)
    (info,) = tenancy.list_keys(user.name)
    print(f"created user {user.name} on the {user.plan} plan")
    _print_key(info.id, api_key)
    return 0


def cmd_key(args: argparse.Namespace) -> int:
    info, api_key = _tenancy().issue_key(args.name, label=args.label)
    print(f"new key for {args.name}" + (f" ({info.label})" if info.label else ""))
    _print_key(info.id, api_key)
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    keys = _tenancy().list_keys(args.name)
    if args.json:
        print(json.dumps([{"id": k.id, "prefix": k.prefix, "label": k.label,
                           "created_at": k.created_at.isoformat(),
                           "last_used_at": k.last_used_at.isoformat() if k.last_used_at else None,
                           "revoked": k.revoked} for k in keys], indent=2))  # fmt: skip
        return 0
    for k in keys:
        state = "revoked" if k.revoked else "active"
        print(f"{k.id}  {k.prefix}…  {state:<7}  created {_when(k.created_at)}  "
              f"last used {_when(k.last_used_at)}  {k.label}")  # fmt: skip
    print(f"{args.name}: {len(keys)} keys, {sum(not k.revoked for k in keys)} active")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    if not _tenancy().revoke_key(args.name, args.key_id):
        _err(f"error: {args.name} has no key {args.key_id!r}; see `factory users keys {args.name}`")
        return 2
    print(f"revoked key {args.key_id} of {args.name}; it no longer authenticates")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    user = _tenancy().set_plan(args.name, args.plan)
    print(f"{user.name} is on the {user.plan} plan")
    return 0


def cmd_usage(args: argparse.Namespace) -> int:
    tenancy = _tenancy()
    plan = tenancy.plan(args.name)
    used = tenancy.usage(args.name)
    if args.json:
        limits = {r: plan.limit(r) for r in RESOURCES}  # type: ignore[arg-type]
        print(json.dumps({"user": args.name, "plan": plan.name, "watermark": plan.watermark,
                          "used": used, "limits": limits}, indent=2))  # fmt: skip
        return 0
    print(f"{args.name}: {plan.name} plan" + (" (videos carry the watermark)" if plan.watermark
                                              else ""))  # fmt: skip
    for resource in RESOURCES:
        limit = plan.limit(resource)  # type: ignore[arg-type]
        shown = "unlimited" if limit is None else str(limit)
        period = " this month" if resource == "videos" else ""
        print(f"  {resource.replace('_', ' '):<13} {used[resource]} of {shown}{period}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    users = _tenancy().list_users()
    for user in users:
        print(f"{user.name:<40} {user.plan:<10} since {_when(user.created_at)}")
    print(f"{len(users)} users")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    users = subparsers.add_parser(
        "users", help="API users: add, keys, revoke, plan, usage",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    sub = users.add_subparsers(dest="users_command", required=True)

    add = sub.add_parser("add", help="a new user and their first API key")
    add.add_argument("name")
    add.add_argument("--plan", default="free", help="free (default), creator, pro, agency")
    add.set_defaults(func=_run(cmd_add))

    key = sub.add_parser("key", help="issue another API key")
    key.add_argument("name")
    key.add_argument("--label", default="", help="what the key is for, e.g. 'laptop'")
    key.set_defaults(func=_run(cmd_key))

    keys = sub.add_parser("keys", help="a user's keys (no secrets)")
    keys.add_argument("name")
    keys.add_argument("--json", action="store_true")
    keys.set_defaults(func=_run(cmd_keys))

    revoke = sub.add_parser("revoke", help="revoke one of a user's keys")
    revoke.add_argument("name")
    revoke.add_argument("key_id")
    revoke.set_defaults(func=_run(cmd_revoke))

    plan = sub.add_parser("plan", help="move a user to another plan")
    plan.add_argument("name")
    plan.add_argument("plan")
    plan.set_defaults(func=_run(cmd_plan))

    usage = sub.add_parser("usage", help="what a user uses of their plan")
    usage.add_argument("name")
    usage.add_argument("--json", action="store_true")
    usage.set_defaults(func=_run(cmd_usage))

    listing = sub.add_parser("list", help="every user")
    listing.set_defaults(func=_run(cmd_list))
