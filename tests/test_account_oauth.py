"""OAuth connect and refresh against fake authorization servers: google-auth-oauthlib for
YouTube (over HTTPS, as oauthlib insists), authlib's httpx client for TikTok, Instagram and X,
through a real loopback redirect; tokens land encrypted in the vault and refresh before expiry."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from pytest_httpserver import HTTPServer

from factory_resources.account_oauth import (
    OAuthConfigError,
    OAuthError,
    connect_telegram,
    connect_via_loopback,
    finish_connect,
    fresh_credentials,
    start_connect,
)
from factory_resources.account_vault import (
    AccountNotConnectedError,
    AccountStatus,
    AccountVault,
    ReconnectNeededError,
    platform_accounts,
)
from factory_resources.faults import ProviderError, call_with_retries
from factory_resources.project_db import engine_for

from .fakes.oauth import (
    BOT_TOKEN,
    CLIENT_ID,
    CLIENT_SECRET,
    IG_USER_ID,
    FakeAuthServer,
    FakeTelegramBot,
    TlsServer,
    play_user,
    tls_httpserver,
)

OWNER, CHANNEL = "alice", "demo"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "vault.db"


@pytest.fixture
def vault(db_path: Path) -> AccountVault:
    return AccountVault(engine_for(f"sqlite:///{db_path}"), [Fernet.generate_key()])


@pytest.fixture
def lock_dir(tmp_path: Path) -> Path:
    return tmp_path / "locks"


def _env(platform: str, fake: FakeAuthServer) -> dict[str, str]:
    up = platform.upper()
    return {
        f"FACTORY_{up}_CLIENT_ID": CLIENT_ID,
        f"FACTORY_{up}_CLIENT_SECRET": CLIENT_SECRET,
        f"FACTORY_OAUTH_{up}_AUTHORIZE_URL": fake.authorize_url,
        f"FACTORY_OAUTH_{up}_TOKEN_URL": fake.token_url,
        f"FACTORY_OAUTH_{up}_GRAPH_URL": fake.graph_url,
    }


@pytest.fixture
def tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TlsServer]:
    server = tls_httpserver(tmp_path / "tls")
    # requests (under oauthlib and google-auth) trusts the fake's certificate through this.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.cert_path))
    yield server
    server.server.clear()
    server.server.stop()


def _connect(vault: AccountVault, platform: str, fake: FakeAuthServer, verify=True) -> None:
    connect_via_loopback(
        vault, OWNER, CHANNEL, platform, open_browser=play_user(verify), timeout_s=10,
        env=_env(platform, fake),
    )  # fmt: skip


def _no_token_text(db_path: Path, vault: AccountVault, *tokens: str) -> None:
    blob = db_path.read_bytes()
    with vault.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(sa.select(platform_accounts)).mappings()]
    assert rows
    for token in tokens:
        assert token.encode() not in blob
        assert all(token not in repr(row) for row in rows)


def _secrets_absent(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text


# --- connect ----------------------------------------------------------------------------------


def test_youtube_connects_through_google_flow_on_a_loopback_redirect(
    tls: TlsServer, vault: AccountVault, db_path: Path
) -> None:
    fake = FakeAuthServer(tls.server, "google")
    _connect(vault, "youtube", fake, verify=tls.client_context())

    creds = vault.load(OWNER, CHANNEL, "youtube").credentials
    assert creds["access_token"] == fake.issued_access[-1]
    assert creds["refresh_token"] in fake.live_refresh_tokens()  # offline + consent were asked
    assert creds["client_id"] == CLIENT_ID and creds["client_secret"] is None
    assert creds["token_uri"] == fake.token_url
    assert "https://www.googleapis.com/auth/youtube.upload" in creds["scopes"]
    assert creds["expires_at"] == pytest.approx(time.time() + 3600, abs=30)
    assert fake.token_calls("authorization_code") == 1
    _no_token_text(db_path, vault, creds["access_token"], creds["refresh_token"], CLIENT_SECRET)


def test_x_connect_uses_pkce_and_the_fake_rejects_a_wrong_verifier(
    httpserver: HTTPServer, vault: AccountVault, db_path: Path
) -> None:
    fake = FakeAuthServer(httpserver, "x", rotate_refresh_tokens=True, access_ttl_s=7200)
    env = _env("x", fake)
    url, pending = start_connect(
        vault, OWNER, CHANNEL, "x", redirect_uri="http://127.0.0.1:8765/", env=env
    )
    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"]
    assert query["scope"] == ["tweet.read tweet.write users.read media.write offline.access"]
    callback = httpx.get(url).headers["location"]
    pending.code_verifier = "a-verifier-that-was-never-challenged-0123456789abcdefghijklmnop"
    with pytest.raises(OAuthError, match="code_verifier does not match"):
        finish_connect(pending, callback)
    with pytest.raises(AccountNotConnectedError):
        vault.load(OWNER, CHANNEL, "x")

    _connect(vault, "x", fake)  # the real verifier, HTTP Basic client auth (the fake insists)
    creds = vault.load(OWNER, CHANNEL, "x").credentials
    assert creds["access_token"] == fake.issued_access[-1]
    assert creds["refresh_token"] in fake.live_refresh_tokens()
    assert "offline.access" in creds["scopes"]
    _no_token_text(db_path, vault, creds["access_token"], creds["refresh_token"])


def test_tiktok_connect_names_the_client_client_key(
    httpserver: HTTPServer, vault: AccountVault
) -> None:
    fake = FakeAuthServer(httpserver, "tiktok", access_ttl_s=86400)
    url, _ = start_connect(
        vault, OWNER, CHANNEL, "tiktok", redirect_uri="http://127.0.0.1:8765/",
        env=_env("tiktok", fake),
    )  # fmt: skip
    query = parse_qs(urlsplit(url).query)
    assert query["client_key"] == [CLIENT_ID] and "client_id" not in query
    assert query["scope"] == ["video.publish,video.upload,user.info.basic,video.list"]

    _connect(vault, "tiktok", fake)
    account = vault.load(OWNER, CHANNEL, "tiktok")
    assert account.account_name == "_000fakeOpenId"
    assert account.credentials["access_token"] == fake.issued_access[-1]
    assert account.credentials["refresh_token"] in fake.live_refresh_tokens()


def test_instagram_connect_exchanges_for_a_long_lived_token_and_finds_the_ig_user(
    httpserver: HTTPServer, vault: AccountVault
) -> None:
    fake = FakeAuthServer(httpserver, "facebook", access_ttl_s=3600)
    _connect(vault, "instagram", fake)
    account = vault.load(OWNER, CHANNEL, "instagram")
    creds = account.credentials
    short, long_lived = fake.issued_access
    assert creds["access_token"] == long_lived != short
    assert creds["ig_user_id"] == IG_USER_ID and account.account_name == "vf_demo"
    assert creds["refresh_token"] is None
    assert creds["expires_at"] == pytest.approx(time.time() + 5_184_000, abs=60)
    assert fake.token_calls("fb_exchange_token") == 1


def test_a_redirect_with_the_wrong_state_is_refused_before_any_exchange(
    httpserver: HTTPServer, vault: AccountVault
) -> None:
    fake = FakeAuthServer(httpserver, "x")
    url, pending = start_connect(
        vault, OWNER, CHANNEL, "x", redirect_uri="http://127.0.0.1:8765/", env=_env("x", fake)
    )
    callback = httpx.get(url).headers["location"]
    forged = callback.replace(f"state={pending.state}", "state=forged-state")
    with pytest.raises(OAuthError, match="wrong state"):
        finish_connect(pending, forged)
    assert fake.token_calls("authorization_code") == 0
    with pytest.raises(AccountNotConnectedError):
        vault.load(OWNER, CHANNEL, "x")

    fake.deny_next()
    with pytest.raises(OAuthError, match="did not authorize"):
        _connect(vault, "x", fake)


def test_missing_client_configuration_names_the_variable(vault: AccountVault) -> None:
    with pytest.raises(OAuthConfigError, match="FACTORY_X_CLIENT_ID and FACTORY_X_CLIENT_SECRET"):
        start_connect(vault, OWNER, CHANNEL, "x", redirect_uri="http://127.0.0.1:1/", env={})
    env = {"FACTORY_X_CLIENT_ID": "a", "FACTORY_X_CLIENT_SECRET": "b"}
    with pytest.raises(OAuthConfigError, match="loopback"):
        start_connect(vault, OWNER, CHANNEL, "x", redirect_uri="https://evil.example/", env=env)


# --- refresh ----------------------------------------------------------------------------------


def test_x_refreshes_before_expiry_and_stores_the_rotated_refresh_token(
    httpserver: HTTPServer, vault: AccountVault, lock_dir: Path
) -> None:
    fake = FakeAuthServer(httpserver, "x", rotate_refresh_tokens=True, access_ttl_s=7200)
    env = _env("x", fake)
    _connect(vault, "x", fake)
    before = vault.load(OWNER, CHANNEL, "x").credentials

    # Fresh: nothing is asked of the platform.
    same = fresh_credentials(vault, OWNER, CHANNEL, "x", env=env, lock_dir=lock_dir)
    assert same["access_token"] == before["access_token"]
    assert fake.token_calls("refresh_token") == 0
    assert same["client_secret"] == CLIENT_SECRET  # filled in memory for SDKs, never stored

    # Four minutes before expiry (inside the 5-minute margin): refreshed and rotated.
    soon = lambda: before["expires_at"] - 240  # noqa: E731
    fresh = fresh_credentials(vault, OWNER, CHANNEL, "x", now=soon, env=env, lock_dir=lock_dir)
    assert fresh["access_token"] != before["access_token"]
    assert fresh["refresh_token"] != before["refresh_token"]
    assert fake.live_refresh_tokens() == [fresh["refresh_token"]]
    stored = vault.load(OWNER, CHANNEL, "x")
    assert stored.credentials["refresh_token"] == fresh["refresh_token"]
    assert stored.credentials["client_secret"] is None
    assert stored.expires_at is not None
    assert stored.expires_at.timestamp() == pytest.approx(fresh["expires_at"], abs=1)
    assert fake.token_calls("refresh_token") == 1


def test_two_runs_refreshing_at_once_spend_the_rotating_token_once(
    httpserver: HTTPServer, vault: AccountVault, lock_dir: Path
) -> None:
    fake = FakeAuthServer(httpserver, "x", rotate_refresh_tokens=True, access_ttl_s=7200)
    env = _env("x", fake)
    _connect(vault, "x", fake)
    # A minute left: due for every run; whoever refreshes first leaves two fresh hours.
    creds = {**vault.load(OWNER, CHANNEL, "x").credentials, "expires_at": time.time() + 60}
    vault.save(OWNER, CHANNEL, "x", "", creds)
    results: list[dict] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(
                fresh_credentials(vault, OWNER, CHANNEL, "x", env=env, lock_dir=lock_dir)
            )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not errors
    assert fake.token_calls("refresh_token") == 1
    assert len({r["access_token"] for r in results}) == 1
    stored = vault.load(OWNER, CHANNEL, "x").credentials
    assert fake.live_refresh_tokens() == [stored["refresh_token"]]


def test_youtube_refreshes_with_google_auth(
    tls: TlsServer, vault: AccountVault, lock_dir: Path
) -> None:
    fake = FakeAuthServer(tls.server, "google")
    env = _env("youtube", fake)
    _connect(vault, "youtube", fake, verify=tls.client_context())
    before = vault.load(OWNER, CHANNEL, "youtube").credentials
    fresh = fresh_credentials(
        vault, OWNER, CHANNEL, "youtube", now=lambda: before["expires_at"], env=env,
        lock_dir=lock_dir,
    )  # fmt: skip
    assert fresh["access_token"] == fake.issued_access[-1] != before["access_token"]
    assert fresh["refresh_token"] == before["refresh_token"]  # Google does not rotate
    assert fresh["expires_at"] == pytest.approx(time.time() + 3600, abs=30)
    assert (
        vault.load(OWNER, CHANNEL, "youtube").credentials["access_token"] == fresh["access_token"]
    )

    fake.revoke_all()
    with pytest.raises(ReconnectNeededError, match="--platform youtube"):
        fresh_credentials(
            vault, OWNER, CHANNEL, "youtube", now=lambda: fresh["expires_at"], env=env,
            lock_dir=lock_dir,
        )  # fmt: skip
    assert vault.list(OWNER)[0].status is AccountStatus.NEEDS_RECONNECT


def test_tiktok_and_instagram_refresh(
    httpserver: HTTPServer, vault: AccountVault, lock_dir: Path
) -> None:
    tiktok = FakeAuthServer(httpserver, "tiktok", access_ttl_s=86400)
    facebook = FakeAuthServer(httpserver, "facebook")
    _connect(vault, "tiktok", tiktok)
    _connect(vault, "instagram", facebook)
    # A 60-day token is left alone until its last week.
    kept = fresh_credentials(
        vault, OWNER, CHANNEL, "instagram", env=_env("instagram", facebook), lock_dir=lock_dir
    )
    assert kept["access_token"] == facebook.issued_access[-1]
    assert facebook.token_calls("fb_exchange_token") == 1
    six_days_left = vault.load(OWNER, CHANNEL, "instagram").credentials["expires_at"] - 6 * 86400
    for platform, fake in (("tiktok", tiktok), ("instagram", facebook)):
        before = vault.load(OWNER, CHANNEL, platform).credentials
        fresh = fresh_credentials(
            vault, OWNER, CHANNEL, platform, now=lambda b=before, p=platform: (
                six_days_left if p == "instagram" else b["expires_at"] - 10
            ),
            env=_env(platform, fake), lock_dir=lock_dir,
        )  # fmt: skip
        assert fresh["access_token"] == fake.issued_access[-1] != before["access_token"]
        assert (
            vault.load(OWNER, CHANNEL, platform).credentials["access_token"]
            == fresh["access_token"]
        )
    assert vault.load(OWNER, CHANNEL, "instagram").credentials["ig_user_id"] == IG_USER_ID
    assert facebook.token_calls("fb_exchange_token") == 2


def test_a_revoked_refresh_token_asks_for_a_reconnect_without_leaking_it(
    httpserver: HTTPServer, vault: AccountVault, lock_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake = FakeAuthServer(httpserver, "x", rotate_refresh_tokens=True)
    env = _env("x", fake)
    _connect(vault, "x", fake)
    creds = vault.load(OWNER, CHANNEL, "x").credentials
    fake.revoke_all()
    with pytest.raises(ReconnectNeededError) as raised:
        fresh_credentials(
            vault, OWNER, CHANNEL, "x", now=lambda: creds["expires_at"], env=env,
            lock_dir=lock_dir,
        )  # fmt: skip
    message = str(raised.value)
    assert "factory accounts connect --channel demo --platform x" in message
    assert "invalid_grant" in message
    [summary] = vault.list(OWNER)
    assert summary.status is AccountStatus.NEEDS_RECONNECT
    with pytest.raises(ReconnectNeededError):
        vault.load(OWNER, CHANNEL, "x")
    for text in (message, caplog.text, str(summary.error)):
        _secrets_absent(text, creds["access_token"], creds["refresh_token"], CLIENT_SECRET)


def test_a_token_endpoint_outage_is_retryable_and_changes_nothing(
    httpserver: HTTPServer, vault: AccountVault, lock_dir: Path
) -> None:
    fake = FakeAuthServer(httpserver, "x", rotate_refresh_tokens=True)
    env = _env("x", fake)
    _connect(vault, "x", fake)
    creds = vault.load(OWNER, CHANNEL, "x").credentials
    fake.fail_once(503)
    with pytest.raises(ProviderError) as raised:
        fresh_credentials(
            vault, OWNER, CHANNEL, "x", now=lambda: creds["expires_at"], env=env,
            lock_dir=lock_dir,
        )  # fmt: skip
    assert raised.value.retryable and raised.value.status == 503
    assert raised.value.__cause__ is None  # no chained HTTP exception carrying a request
    assert vault.list(OWNER)[0].status is AccountStatus.CONNECTED
    assert vault.load(OWNER, CHANNEL, "x").credentials == creds

    fake.fail_once(500)
    fresh = call_with_retries(
        lambda: fresh_credentials(
            vault, OWNER, CHANNEL, "x", now=lambda: creds["expires_at"], env=env,
            lock_dir=lock_dir,
        ),
        sleep=lambda s: None,
    )  # fmt: skip
    assert fresh["access_token"] == fake.issued_access[-1]


def test_an_unreachable_token_endpoint_is_retryable(vault: AccountVault, lock_dir: Path) -> None:
    vault.save(OWNER, CHANNEL, "tiktok", "", {
        "access_token": "at-old", "refresh_token": "rt-old", "expires_at": time.time(),
        "token_uri": "http://127.0.0.1:9/token", "client_id": CLIENT_ID, "client_secret": None,
        "scopes": [],
    })  # fmt: skip
    env = {"FACTORY_TIKTOK_CLIENT_ID": CLIENT_ID, "FACTORY_TIKTOK_CLIENT_SECRET": CLIENT_SECRET}
    with pytest.raises(ProviderError) as raised:
        fresh_credentials(vault, OWNER, CHANNEL, "tiktok", env=env, lock_dir=lock_dir)
    assert raised.value.retryable


# --- Telegram ---------------------------------------------------------------------------------


def test_telegram_connect_checks_the_token_with_get_me(
    httpserver: HTTPServer, vault: AccountVault, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bot = FakeTelegramBot(httpserver)
    wrong = "7012345678:AAH-wrongToken_9876543210zyxwvutsrq"
    with pytest.raises(OAuthError, match="refused the bot token") as raised:
        connect_telegram(vault, OWNER, CHANNEL, wrong, "@vf_demo", base_url=bot.base_url)
    _secrets_absent(str(raised.value), wrong)
    with pytest.raises(AccountNotConnectedError):
        vault.load(OWNER, CHANNEL, "telegram")

    connected = connect_telegram(
        vault, OWNER, CHANNEL, BOT_TOKEN, "@vf_demo", base_url=bot.base_url
    )
    assert connected.account_name == "@vf_demo_bot"
    account = vault.load(OWNER, CHANNEL, "telegram")
    assert account.credentials == {"bot_token": BOT_TOKEN, "chat_id": "@vf_demo"}
    assert fresh_credentials(vault, OWNER, CHANNEL, "telegram") == account.credentials
    _no_token_text(db_path, vault, BOT_TOKEN)
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name != "werkzeug")
    assert "getMe" in ours  # httpx did log the request line, with the token masked
    _secrets_absent(ours, BOT_TOKEN, wrong)
