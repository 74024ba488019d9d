"""The account vault: tokens encrypted at rest, owner isolation, clear errors, key files and key
rotation, on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import base64
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from factory_resources.account_vault import (
    KEYS_ENV,
    AccountNotConnectedError,
    AccountStatus,
    AccountVault,
    Platform,
    ReconnectNeededError,
    VaultKeyError,
    key_file,
    platform_accounts,
    rotate_key,
    vault_keys,
)
from factory_resources.project_db import engine_for

from .test_postgres import postgres_url  # noqa: F401  (fixture)

ACCESS = "ya29.ACCESS-token-0123456789abcdef"
REFRESH = "1//REFRESH-token-fedcba9876543210"
CREDS = {"access_token": ACCESS, "refresh_token": REFRESH, "token_type": "Bearer"}
EXPIRES = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    return engine_for(f"sqlite:///{tmp_path / 'vault.db'}")


def _save(vault: AccountVault, owner: str = "alice", channel: str = "demo") -> None:
    vault.save(owner, channel, "youtube", "Demo Channel", CREDS, EXPIRES, ["youtube.upload"])


def _raw_rows(engine: sa.Engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(platform_accounts)).mappings()]


def _assert_no_token_text(blob: bytes) -> None:
    """Neither token appears as text, nor after one (or two) rounds of base64 decoding."""
    decoded = [blob]
    for _ in range(2):
        try:
            decoded.append(base64.urlsafe_b64decode(decoded[-1] + b"=="))
        except ValueError:
            break
    for data in decoded:
        for token in (ACCESS, REFRESH):
            assert token.encode() not in data


def test_round_trip_keeps_everything(engine: sa.Engine) -> None:
    vault = AccountVault(engine, [Fernet.generate_key()])
    _save(vault)
    account = vault.load("alice", "demo", "youtube")
    assert account.credentials == CREDS
    assert account.platform is Platform.YOUTUBE
    assert account.account_name == "Demo Channel"
    assert account.expires_at == EXPIRES
    assert account.scopes == ["youtube.upload"]
    assert account.status is AccountStatus.CONNECTED
    # Tokens stay out of repr/str (hence logs and tracebacks).
    for text in (repr(account), str(account), repr(vault)):
        assert ACCESS not in text and REFRESH not in text


def test_database_holds_only_fernet_ciphertext(engine: sa.Engine) -> None:
    key = Fernet.generate_key()
    vault = AccountVault(engine, [key])
    _save(vault)
    (row,) = _raw_rows(engine)
    blob = row["token_ciphertext"]
    _assert_no_token_text(blob)
    for value in row.values():
        assert ACCESS not in str(value) and REFRESH not in str(value)
    # It is a real Fernet token under our key, and the key itself is not in the database.
    assert base64.urlsafe_b64decode(blob)[0] == 0x80  # Fernet version byte
    assert ACCESS in Fernet(key).decrypt(blob).decode()
    assert key not in blob and key.decode() not in str(row)


def test_saving_again_replaces_and_reconnects(engine: sa.Engine) -> None:
    vault = AccountVault(engine, [Fernet.generate_key()])
    _save(vault)
    vault.mark_needs_reconnect("alice", "demo", "youtube", "token revoked")
    vault.save("alice", "demo", "youtube", "Renamed", {"access_token": "new"}, None, [])
    account = vault.load("alice", "demo", "youtube")
    assert (account.account_name, account.credentials, account.expires_at) == (
        "Renamed", {"access_token": "new"}, None,
    )  # fmt: skip
    assert account.status is AccountStatus.CONNECTED and account.error is None
    assert len(_raw_rows(engine)) == 1


def test_owners_are_isolated(engine: sa.Engine) -> None:
    vault = AccountVault(engine, [Fernet.generate_key()])
    _save(vault, owner="alice")
    with pytest.raises(AccountNotConnectedError):
        vault.load("bob", "demo", "youtube")
    assert vault.list("bob") == []
    assert vault.delete("bob", "demo", "youtube") is False
    with pytest.raises(AccountNotConnectedError):
        vault.mark_needs_reconnect("bob", "demo", "youtube", "x")
    assert vault.load("alice", "demo", "youtube").status is AccountStatus.CONNECTED


def test_a_token_moved_to_another_owner_is_refused(engine: sa.Engine) -> None:
    vault = AccountVault(engine, [Fernet.generate_key()])
    _save(vault, owner="alice")
    vault.save("bob", "demo", "youtube", "Bob", {"access_token": "bob"}, None, [])
    t = platform_accounts
    with engine.begin() as conn:
        alice = conn.execute(sa.select(t.c.token_ciphertext).where(t.c.owner == "alice")).scalar()
        conn.execute(t.update().where(t.c.owner == "bob").values(token_ciphertext=alice))
    with pytest.raises(Exception, match="belongs to another account") as err:
        vault.load("bob", "demo", "youtube")
    assert ACCESS not in str(err.value)


def test_listing_has_no_secrets(engine: sa.Engine) -> None:
    vault = AccountVault(engine, [Fernet.generate_key()])
    _save(vault, channel="b")
    vault.save("alice", "a", "telegram", "@bot", {"bot_token": ACCESS}, None, [])
    listing = vault.list("alice")
    assert [(a.channel, a.platform) for a in listing] == [("a", "telegram"), ("b", "youtube")]
    assert not hasattr(listing[0], "credentials")
    assert ACCESS not in repr(listing) and REFRESH not in repr(listing)
    assert vault.delete("alice", "a", "telegram") is True
    assert [a.channel for a in vault.list("alice")] == ["b"]


def test_needs_reconnect_says_so(engine: sa.Engine) -> None:
    vault = AccountVault(engine, [Fernet.generate_key()])
    _save(vault)
    vault.mark_needs_reconnect("alice", "demo", "youtube", f"invalid_grant token={REFRESH}")
    with pytest.raises(ReconnectNeededError, match=r"youtube account of channel demo must be "
                       r"reconnected .*factory accounts connect") as err:  # fmt: skip
        vault.load("alice", "demo", "youtube")
    assert REFRESH not in str(err.value)  # the platform's reason is redacted
    (summary,) = vault.list("alice")
    assert summary.status is AccountStatus.NEEDS_RECONNECT and "invalid_grant" in summary.error


def test_missing_account_names_platform_and_channel(engine: sa.Engine) -> None:
    vault = AccountVault(engine, [Fernet.generate_key()])
    with pytest.raises(
        AccountNotConnectedError,
        match=r"connect the tiktok account of channel cats: factory accounts connect",
    ):
        vault.load("alice", "cats", "tiktok")
    with pytest.raises(ValueError, match="unknown platform 'myspace'"):
        vault.load("alice", "cats", "myspace")


def test_naive_expiry_is_refused(engine: sa.Engine) -> None:
    vault = AccountVault(engine, [Fernet.generate_key()])
    with pytest.raises(ValueError, match="timezone-aware"):
        vault.save("alice", "demo", "x", "me", CREDS, datetime(2030, 1, 1), [])


def test_wrong_key_is_a_clear_error_without_tokens(engine: sa.Engine) -> None:
    _save(AccountVault(engine, [Fernet.generate_key()]))
    other = AccountVault(engine, [Fernet.generate_key()])
    with pytest.raises(VaultKeyError, match="cannot decrypt the stored tokens; restore") as err:
        other.load("alice", "demo", "youtube")
    assert ACCESS not in str(err.value) and REFRESH not in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_rotate_re_encrypts_every_row(engine: sa.Engine) -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    vault = AccountVault(engine, [old])
    _save(vault, owner="alice")
    _save(vault, owner="bob")
    before = {r["owner"]: r["token_ciphertext"] for r in _raw_rows(engine)}
    assert vault.rotate(new) == 2
    assert vault.keys == [new, old]
    for row in _raw_rows(engine):
        assert row["token_ciphertext"] != before[row["owner"]]
    # The new key alone opens every row; the old key alone opens none.
    assert AccountVault(engine, [new]).load("bob", "demo", "youtube").credentials == CREDS
    with pytest.raises(VaultKeyError):
        AccountVault(engine, [old]).load("alice", "demo", "youtube")


def test_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    keys = vault_keys(home)
    path = key_file(home)
    assert path == home / "secrets" / "vault.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert len(keys) == 1 and Fernet(keys[0])
    assert vault_keys(home) == keys


def test_env_keys_win_over_the_key_file(
    tmp_path: Path, engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    newer, older = Fernet.generate_key(), Fernet.generate_key()
    _save(AccountVault(engine, [older]))
    monkeypatch.setenv(KEYS_ENV, f" {newer.decode()} , {older.decode()} ")
    assert vault_keys(home) == [newer, older]
    assert not key_file(home).exists()  # no key file written when the environment has them
    assert AccountVault(engine, vault_keys(home)).load("alice", "demo", "youtube").credentials
    with pytest.raises(VaultKeyError, match=f"come from {KEYS_ENV}; rotate them there"):
        rotate_key(home, engine)
    monkeypatch.setenv(KEYS_ENV, "not-a-key-0123456789")
    with pytest.raises(VaultKeyError, match="not a Fernet key") as err:
        vault_keys(home)
    assert "not-a-key" not in str(err.value)


def test_rotate_key_updates_the_file_and_drops_old_keys(tmp_path: Path, engine: sa.Engine) -> None:
    home = tmp_path / "home"
    (old,) = vault_keys(home)
    _save(AccountVault(engine, [old]))
    before = _raw_rows(engine)[0]["token_ciphertext"]
    assert rotate_key(home, engine) == 1
    keys = vault_keys(home)
    assert len(keys) == 1 and keys != [old]
    assert stat.S_IMODE(key_file(home).stat().st_mode) == 0o600
    assert _raw_rows(engine)[0]["token_ciphertext"] != before
    assert AccountVault(engine, keys).load("alice", "demo", "youtube").credentials == CREDS
    with pytest.raises(VaultKeyError):
        AccountVault(engine, [old]).load("alice", "demo", "youtube")


def test_rotate_key_crash_midway_keeps_both_keys(
    tmp_path: Path, engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    (old,) = vault_keys(home)
    _save(AccountVault(engine, [old]))

    def crash(self: AccountVault) -> int:
        raise RuntimeError("power cut")

    monkeypatch.setattr(AccountVault, "reencrypt", crash)
    with pytest.raises(RuntimeError, match="power cut"):
        rotate_key(home, engine)
    keys = vault_keys(home)
    assert len(keys) == 2 and keys[1] == old  # the new key first, the old one still there
    assert AccountVault(engine, keys).load("alice", "demo", "youtube").credentials == CREDS


@pytest.mark.postgres
def test_vault_on_postgres(postgres_url: str) -> None:  # noqa: F811
    engine = engine_for(postgres_url)
    old, new = Fernet.generate_key(), Fernet.generate_key()
    vault = AccountVault(engine, [old])
    expires = datetime.now(UTC) + timedelta(hours=1)
    vault.save("alice", "demo", "instagram", "@demo", CREDS, expires, ["publish"])
    vault.save("bob", "demo", "instagram", "@bob", {"access_token": "b"}, None, [])
    account = vault.load("alice", "demo", "instagram")
    assert account.credentials == CREDS and account.expires_at == expires
    assert account.expires_at.tzinfo is not None
    for row in _raw_rows(engine):
        _assert_no_token_text(bytes(row["token_ciphertext"]))
    assert [a.account_name for a in vault.list("bob")] == ["@bob"]
    assert vault.rotate(new) == 2
    assert AccountVault(engine, [new]).load("alice", "demo", "instagram").credentials == CREDS
    vault.mark_needs_reconnect("alice", "demo", "instagram", "revoked")
    with pytest.raises(ReconnectNeededError):
        vault.load("alice", "demo", "instagram")
    engine.dispose()  # lets the fixture drop the database
