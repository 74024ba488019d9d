"""`factory accounts`: connect a channel's platform accounts; tokens live encrypted in the vault.

factory accounts connect --owner O --channel C --platform youtube|tiktok|instagram|x
                         [--no-browser] [--account-name NAME] [--timeout 300]
factory accounts telegram --owner O --channel C --bot-token-env VAR --chat-id ID
factory accounts list --owner O [--json]
factory accounts disconnect --owner O --channel C --platform P
factory accounts rotate-key

Env: FACTORY_<PLATFORM>_CLIENT_ID and FACTORY_<PLATFORM>_CLIENT_SECRET (the platform app's OAuth
client; the secret is never stored); FACTORY_OAUTH_<PLATFORM>_AUTHORIZE_URL / _TOKEN_URL /
_GRAPH_URL (other endpoints, e.g. local fakes); FACTORY_TELEGRAM_BASE_URL (another Bot API
server); FACTORY_VAULT_KEYS or $FACTORY_HOME/secrets/vault.key (the vault key). The bot token is
read from the variable named by --bot-token-env, never from the command line (where `ps` and
shell history would keep it). Nothing printed here holds a token or a secret.
Exit codes: 0 done, 1 the platform failed (try again), 2 bad input or configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import webbrowser
from typing import TYPE_CHECKING, Any

from factory_core.publish_metadata import Platform

if TYPE_CHECKING:
    from factory_resources.account_vault import AccountVault

OAUTH_CHOICES = ["youtube", "tiktok", "instagram", "x"]


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _vault() -> AccountVault:
    # Imported here: `factory --help` should not pay for sqlalchemy and cryptography.
    from factory_resources.account_vault import account_vault
    from factory_resources.store import MediaStore

    return account_vault(MediaStore().root)


def _channel(value: str) -> str:
    from factory_core.slugs import InvalidChannelError, channel_slug

    try:
        return channel_slug(value)
    except InvalidChannelError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _run(handler: Any) -> Any:
    """Vault and connect errors are bad input (2); platform outages are failures (1)."""

    def wrapped(args: argparse.Namespace) -> int:
        from factory_resources.account_oauth import OAuthConfigError, OAuthError
        from factory_resources.account_vault import VaultError
        from factory_resources.faults import ProviderError, redact

        try:
            return int(handler(args))
        except (VaultError, OAuthConfigError, ValueError, argparse.ArgumentTypeError) as exc:
            _err(f"error: {redact(str(exc))}")
            return 2
        except OAuthError as exc:
            _err(f"error: {redact(str(exc))}")
            return 1
        except ProviderError as exc:
            _err(f"error: {exc} (try again)")
            return 1

    return wrapped


def cmd_connect(args: argparse.Namespace) -> int:
    from factory_resources.account_oauth import connect_via_loopback

    channel = _channel(args.channel)

    def open_browser(url: str) -> None:
        print(f"Open this URL to let the factory post to {args.platform} for {channel}:\n{url}")
        print(f"Waiting up to {args.timeout:.0f}s for the redirect to 127.0.0.1 ...", flush=True)
        if not args.no_browser:
            webbrowser.open(url)

    connected = connect_via_loopback(
        _vault(), args.owner, channel, args.platform, open_browser=open_browser,
        timeout_s=args.timeout, account_name=args.account_name,
    )  # fmt: skip
    expires = connected.expires_at.isoformat(timespec="minutes") if connected.expires_at else "-"
    print(
        f"connected {connected.platform.value} account {connected.account_name or '(unnamed)'} "
        f"to channel {channel} for {args.owner}; token expires {expires}, scopes: "
        f"{' '.join(connected.scopes)}"
    )
    return 0


def cmd_telegram(args: argparse.Namespace) -> int:
    from factory_resources.account_oauth import TELEGRAM_BASE_URL, connect_telegram

    channel = _channel(args.channel)
    token = os.environ.get(args.bot_token_env, "").strip()
    if not token:
        _err(f"error: set {args.bot_token_env} to the bot token from @BotFather, then run again")
        return 2
    base_url = os.environ.get("FACTORY_TELEGRAM_BASE_URL") or TELEGRAM_BASE_URL
    connected = connect_telegram(_vault(), args.owner, channel, token, args.chat_id,
                                 base_url=base_url)  # fmt: skip
    print(
        f"connected Telegram bot {connected.account_name} to channel {channel} for "
        f"{args.owner}, posting to chat {args.chat_id}"
    )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    accounts = _vault().list(args.owner)
    rows = [
        {
            "channel": a.channel,
            "platform": a.platform.value,
            "account_name": a.account_name,
            "status": a.status.value,
            "expires_at": a.expires_at.isoformat() if a.expires_at else None,
            "scopes": a.scopes,
            "error": a.error,
        }
        for a in accounts
    ]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    for row in rows:
        expires = (row["expires_at"] or "-")[:16]
        error = f"  ({row['error']})" if row["error"] else ""
        print(f"{row['channel']:<20} {row['platform']:<10} {row['status']:<16} "
              f"{expires:<16} {row['account_name']}{error}")  # fmt: skip
    print(f"{len(rows)} accounts for owner {args.owner!r}")
    return 0


def cmd_disconnect(args: argparse.Namespace) -> int:
    channel = _channel(args.channel)
    if not _vault().delete(args.owner, channel, args.platform):
        _err(f"error: no {args.platform} account is connected to channel {channel}")
        return 2
    print(
        f"disconnected {args.platform} from channel {channel}; the platform still lists the app "
        "under the account's connected apps until you remove it there"
    )
    return 0


def cmd_rotate_key(args: argparse.Namespace) -> int:
    from factory_resources.account_vault import key_file, rotate_key
    from factory_resources.project_db import project_engine
    from factory_resources.store import MediaStore

    home = MediaStore().root
    count = rotate_key(home, project_engine(home))
    print(f"new vault key in {key_file(home)}; {count} accounts re-encrypted with it")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    accounts = subparsers.add_parser(
        "accounts", help="connect platform accounts (tokens encrypted at rest)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    sub = accounts.add_subparsers(dest="accounts_command", required=True)
    platforms = [p.value for p in Platform]

    connect = sub.add_parser("connect", help="connect with OAuth through a loopback redirect")
    connect.add_argument("--owner", required=True)
    connect.add_argument("--channel", required=True)
    connect.add_argument("--platform", required=True, choices=OAUTH_CHOICES)
    connect.add_argument("--no-browser", action="store_true", help="only print the URL")
    connect.add_argument("--account-name", help="a label for the account (default: the platform's)")
    connect.add_argument("--timeout", type=float, default=300.0, help="seconds to wait")
    connect.set_defaults(func=_run(cmd_connect))

    telegram = sub.add_parser("telegram", help="connect a Telegram bot and chat")
    telegram.add_argument("--owner", required=True)
    telegram.add_argument("--channel", required=True)
    telegram.add_argument("--bot-token-env", required=True, metavar="VAR",
                          help="the environment variable holding the bot token")  # fmt: skip
    telegram.add_argument("--chat-id", required=True, help="@channelname or a numeric chat id")
    telegram.set_defaults(func=_run(cmd_telegram))

    listing = sub.add_parser("list", help="an owner's accounts (no secrets)")
    listing.add_argument("--owner", required=True)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=_run(cmd_list))

    disconnect = sub.add_parser("disconnect", help="forget an account's tokens")
    disconnect.add_argument("--owner", required=True)
    disconnect.add_argument("--channel", required=True)
    disconnect.add_argument("--platform", required=True, choices=platforms)
    disconnect.set_defaults(func=_run(cmd_disconnect))

    rotate = sub.add_parser("rotate-key", help="re-encrypt every account under a new vault key")
    rotate.set_defaults(func=_run(cmd_rotate_key))
