"""`factory accounts`: connect through a real loopback redirect (a subprocess waiting for the
browser, a test playing the user), Telegram from an environment variable, list, disconnect and
key rotation; no token or secret is ever printed."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from factory_cli.main import main
from factory_resources.account_vault import AccountStatus, account_vault, key_file

from .fakes.oauth import BOT_TOKEN, CLIENT_ID, CLIENT_SECRET, FakeAuthServer, FakeTelegramBot
from .fakes.oauth import play_user as _play_user

OWNER = "alice"


def _home() -> Path:
    return Path(os.environ["FACTORY_HOME"])


def _x_env(fake: FakeAuthServer) -> dict[str, str]:
    return {
        "FACTORY_X_CLIENT_ID": CLIENT_ID,
        "FACTORY_X_CLIENT_SECRET": CLIENT_SECRET,
        "FACTORY_OAUTH_X_AUTHORIZE_URL": fake.authorize_url,
        "FACTORY_OAUTH_X_TOKEN_URL": fake.token_url,
    }


def test_connect_prints_the_url_and_finishes_on_the_loopback_redirect(
    httpserver: HTTPServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeAuthServer(httpserver, "x", rotate_refresh_tokens=True)
    for name, value in _x_env(fake).items():
        monkeypatch.setenv(name, value)
    argv = ["accounts", "connect", "--owner", OWNER, "--channel", "demo", "--platform", "x",
            "--no-browser", "--timeout", "20"]  # fmt: skip
    codes: list[int] = []
    # The command blocks on its loopback server, as it does for a person; it runs in a thread
    # while this test reads the URL it printed and plays the user in the "browser".
    command = threading.Thread(target=lambda: codes.append(main(argv)))
    command.start()
    printed, url = "", ""
    deadline = time.monotonic() + 20
    while not url and time.monotonic() < deadline:
        time.sleep(0.05)
        printed += capsys.readouterr().out
        url = next((ln for ln in printed.splitlines() if ln.startswith("http")), "")
    assert url.startswith(fake.authorize_url), printed
    _play_user()(url)
    command.join(20)
    captured = capsys.readouterr()
    printed += captured.out + captured.err
    assert codes == [0], printed
    assert "connected x account" in printed and "offline.access" in printed
    creds = account_vault(_home()).load(OWNER, "demo", "x").credentials
    assert creds["access_token"] == fake.issued_access[-1]
    for secret in (creds["access_token"], creds["refresh_token"], CLIENT_SECRET):
        assert secret not in printed


def test_connect_without_a_client_says_which_variables_to_set(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FACTORY_TIKTOK_CLIENT_ID", raising=False)
    monkeypatch.delenv("FACTORY_TIKTOK_CLIENT_SECRET", raising=False)
    code = main(["accounts", "connect", "--owner", OWNER, "--channel", "demo",
                 "--platform", "tiktok", "--no-browser", "--timeout", "1"])  # fmt: skip
    assert code == 2
    assert "FACTORY_TIKTOK_CLIENT_ID and FACTORY_TIKTOK_CLIENT_SECRET" in capsys.readouterr().err


def test_telegram_list_disconnect_and_rotate_key(
    httpserver: HTTPServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bot = FakeTelegramBot(httpserver)
    monkeypatch.setenv("FACTORY_TELEGRAM_BASE_URL", bot.base_url)
    monkeypatch.delenv("FACTORY_VAULT_KEYS", raising=False)
    telegram = ["accounts", "telegram", "--owner", OWNER, "--channel", "demo",
                "--bot-token-env", "VF_BOT_TOKEN", "--chat-id", "@vf_demo"]  # fmt: skip

    monkeypatch.delenv("VF_BOT_TOKEN", raising=False)
    assert main(telegram) == 2
    assert "set VF_BOT_TOKEN" in capsys.readouterr().err

    monkeypatch.setenv("VF_BOT_TOKEN", "7012345678:AAH-revokedToken_000000000000000000")
    assert main(telegram) == 1
    assert "refused the bot token" in capsys.readouterr().err

    monkeypatch.setenv("VF_BOT_TOKEN", BOT_TOKEN)
    assert main(telegram) == 0
    printed = capsys.readouterr().out
    assert "@vf_demo_bot" in printed

    # A second account with tokens, so the listing has something to hide.
    vault = account_vault(_home())
    vault.save(OWNER, "demo", "x", "vf_x", {"access_token": "at-x-SECRET-0123456789",
               "refresh_token": "rt-x-SECRET-9876543210"}, scopes=["tweet.write"])  # fmt: skip
    vault.mark_needs_reconnect(OWNER, "demo", "x", "invalid_grant: revoked")
    assert main(["accounts", "list", "--owner", OWNER]) == 0
    listing = capsys.readouterr().out
    assert "telegram" in listing and "needs_reconnect" in listing and "invalid_grant" in listing
    assert main(["accounts", "list", "--owner", OWNER, "--json"]) == 0
    listing += capsys.readouterr().out
    assert '"platform": "x"' in listing
    for secret in (BOT_TOKEN, "at-x-SECRET-0123456789", "rt-x-SECRET-9876543210"):
        assert secret not in printed + listing
    assert main(["accounts", "list", "--owner", "bob"]) == 0
    assert "0 accounts" in capsys.readouterr().out

    old_key = key_file(_home()).read_bytes()
    assert main(["accounts", "rotate-key"]) == 0
    assert "2 accounts re-encrypted" in capsys.readouterr().out
    assert key_file(_home()).read_bytes() != old_key
    rotated = account_vault(_home())  # reads the new key file only
    assert rotated.load(OWNER, "demo", "telegram").credentials["bot_token"] == BOT_TOKEN

    assert main(["accounts", "disconnect", "--owner", OWNER, "--channel", "demo",
                 "--platform", "x"]) == 0  # fmt: skip
    assert main(["accounts", "disconnect", "--owner", OWNER, "--channel", "demo",
                 "--platform", "x"]) == 2  # fmt: skip
    capsys.readouterr()
    summaries = account_vault(_home()).list(OWNER)
    assert [(s.platform.value, s.status) for s in summaries] == [
        ("telegram", AccountStatus.CONNECTED)
    ]
