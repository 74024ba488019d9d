"""Connected platform accounts (YouTube, TikTok, Instagram, X, Telegram), their tokens encrypted
at rest.

Tokens are Fernet-encrypted (AES-128-CBC + HMAC) with `MultiFernet`: the first key encrypts, every
key decrypts, so a new key can be put first while rows written under the old one still open. The
keys live outside the database (`FACTORY_VAULT_KEYS` or `$FACTORY_HOME/secrets/vault.key`): a
database dump alone reveals no token. Every account query filters on `owner`; credentials never
appear in a repr, a listing or an exception.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from factory_core.publish_metadata import Platform
from factory_resources.faults import redact
from factory_resources.project_db import metadata

KEYS_ENV = "FACTORY_VAULT_KEYS"
WRONG_KEY = (
    "the vault key cannot decrypt the stored tokens; restore the previous key or reconnect "
    "the accounts"
)


class AccountStatus(StrEnum):
    CONNECTED = "connected"
    NEEDS_RECONNECT = "needs_reconnect"


def _now() -> datetime:
    return datetime.now(UTC)


platform_accounts = sa.Table(
    "platform_accounts", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(120), nullable=False, index=True),
    sa.Column("channel", sa.String(120), nullable=False),
    sa.Column("platform", sa.String(16), nullable=False),  # a Platform value
    sa.Column("account_name", sa.String(200), nullable=False, default=""),
    sa.Column("token_ciphertext", sa.LargeBinary, nullable=False),  # a Fernet token, never plain
    sa.Column("expires_at", sa.DateTime(timezone=True)),
    sa.Column("scopes", sa.JSON, nullable=False, default=list),
    sa.Column("status", sa.String(20), nullable=False),  # an AccountStatus value
    sa.Column("error", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, default=_now),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, default=_now, onupdate=_now),
    sa.UniqueConstraint("owner", "channel", "platform", name="uq_platform_accounts_owner_channel"),
)  # fmt: skip


class VaultError(RuntimeError):
    """The vault cannot serve a request; the message says what to do, never a secret."""


class VaultKeyError(VaultError):
    """The keys are missing, malformed, or cannot decrypt the stored tokens."""


class AccountNotConnectedError(VaultError, LookupError):
    def __init__(self, channel: str, platform: str) -> None:
        self.channel, self.platform = channel, platform
        super().__init__(
            f"no {platform} account is connected to channel {channel}; connect the {platform} "
            f"account of channel {channel}: factory accounts connect --channel {channel} "
            f"--platform {platform}"
        )


class ReconnectNeededError(VaultError):
    def __init__(self, channel: str, platform: str, reason: str | None) -> None:
        self.channel, self.platform, self.reason = channel, platform, reason
        why = f" ({reason})" if reason else ""
        super().__init__(
            f"the {platform} account of channel {channel} must be reconnected{why}; "
            f"factory accounts connect --channel {channel} --platform {platform}"
        )


@dataclass(frozen=True)
class AccountSummary:
    """What a listing shows: everything but the credentials."""

    owner: str
    channel: str
    platform: Platform
    account_name: str
    expires_at: datetime | None
    scopes: list[str]
    status: AccountStatus
    error: str | None
    updated_at: datetime


@dataclass(frozen=True)
class StoredAccount(AccountSummary):
    # repr=False keeps tokens out of repr/str, hence out of logs, tracebacks and Dagster metadata.
    credentials: dict[str, Any] = field(default_factory=dict, repr=False)


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes even for timezone=True columns; we only ever store UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _platform(value: str) -> Platform:
    try:
        return Platform(value)
    except ValueError:
        known = ", ".join(p.value for p in Platform)
        raise ValueError(f"unknown platform {value!r}; use one of {known}") from None


def _fernet(keys: list[bytes]) -> MultiFernet:
    if not keys:
        raise VaultKeyError("no vault key given; set FACTORY_VAULT_KEYS or FACTORY_HOME")
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except (ValueError, TypeError):
        # Fernet's own message is harmless, but the key text must never reach a message.
        raise VaultKeyError(
            "a vault key is not a Fernet key (32 url-safe base64 bytes); generate one with "
            "cryptography.fernet.Fernet.generate_key()"
        ) from None


class AccountVault:
    """Platform accounts of every owner in one table; each call names its owner."""

    def __init__(self, engine: sa.Engine, keys: list[bytes]) -> None:
        self.engine = engine
        self._keys = list(keys)
        self._fernet = _fernet(self._keys)
        # project_db.engine_for creates the tables it knew when the engine was made; this one
        # may have been imported later. create_all skips tables that exist.
        metadata.create_all(engine, tables=[platform_accounts])

    def __repr__(self) -> str:
        return f"AccountVault({self.engine.url!r}, {len(self._keys)} key(s))"

    @staticmethod
    def _where(owner: str, channel: str, platform: Platform) -> sa.ColumnElement[bool]:
        t = platform_accounts.c
        return sa.and_(t.owner == owner, t.channel == channel, t.platform == platform.value)

    def _encrypt(self, owner: str, channel: str, platform: Platform, creds: dict) -> bytes:
        # The account's identity goes inside the ciphertext: a token copied onto another owner's
        # row (by hand or by a bug) is refused on load instead of being used for them.
        payload = {"owner": owner, "channel": channel, "platform": platform.value, "creds": creds}
        return self._fernet.encrypt(json.dumps(payload).encode("utf-8"))

    def _decrypt(self, row: sa.RowMapping) -> dict[str, Any]:
        try:
            payload = json.loads(self._fernet.decrypt(row["token_ciphertext"]))
        except InvalidToken:
            raise VaultKeyError(WRONG_KEY) from None
        if (payload.get("owner"), payload.get("channel"), payload.get("platform")) != (
            row["owner"], row["channel"], row["platform"],
        ):  # fmt: skip
            raise VaultError(
                f"the stored {row['platform']} token of channel {row['channel']} belongs to "
                "another account; reconnect the account"
            )
        return payload["creds"]

    def save(
        self,
        owner: str,
        channel: str,
        platform: str,
        account_name: str,
        credentials: dict[str, Any],
        expires_at: datetime | None = None,
        scopes: list[str] | None = None,
    ) -> None:
        """Connects (or reconnects) the account: encrypts the credentials and marks it connected."""
        plat = _platform(platform)
        if expires_at is not None and expires_at.tzinfo is None:
            raise ValueError("expires_at must be timezone-aware (e.g. datetime.now(UTC))")
        values = {
            "account_name": account_name,
            "token_ciphertext": self._encrypt(owner, channel, plat, credentials),
            "expires_at": expires_at.astimezone(UTC) if expires_at else None,
            "scopes": list(scopes or []),
            "status": AccountStatus.CONNECTED.value,
            "error": None,
        }
        t = platform_accounts
        with self.engine.begin() as conn:
            exists = conn.execute(sa.select(t.c.id).where(self._where(owner, channel, plat)))
            if exists.first():
                conn.execute(t.update().where(self._where(owner, channel, plat)).values(**values))
            else:
                conn.execute(t.insert().values(
                    id=uuid.uuid4().hex, owner=owner, channel=channel, platform=plat.value, **values
                ))  # fmt: skip

    def _row(self, owner: str, channel: str, plat: Platform) -> sa.RowMapping:
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(platform_accounts).where(self._where(owner, channel, plat)))
                .mappings()
                .first()
            )
        if row is None:
            raise AccountNotConnectedError(channel, plat.value)
        return row

    def load(self, owner: str, channel: str, platform: str) -> StoredAccount:
        """The account with its decrypted credentials, ready to publish with."""
        plat = _platform(platform)
        row = self._row(owner, channel, plat)
        if row["status"] == AccountStatus.NEEDS_RECONNECT:
            raise ReconnectNeededError(channel, plat.value, row["error"])
        return StoredAccount(**_summary_fields(row), credentials=self._decrypt(row))

    def mark_needs_reconnect(self, owner: str, channel: str, platform: str, reason: str) -> None:
        """Called when the platform refuses the token (revoked, expired refresh token)."""
        plat = _platform(platform)
        self._row(owner, channel, plat)  # a clear error when there is nothing to mark
        with self.engine.begin() as conn:
            conn.execute(
                platform_accounts.update()
                .where(self._where(owner, channel, plat))
                .values(status=AccountStatus.NEEDS_RECONNECT.value, error=redact(reason)[:500])
            )

    def delete(self, owner: str, channel: str, platform: str) -> bool:
        """Forgets the account; True when there was one."""
        plat = _platform(platform)
        with self.engine.begin() as conn:
            gone = conn.execute(
                platform_accounts.delete().where(self._where(owner, channel, plat))
            ).rowcount
        return bool(gone)

    def reencrypt(self) -> int:
        """Re-encrypts every row under the first key, in one transaction; the number of rows.

        Key rotation spans every owner on purpose: it is about the key, not about anyone's
        accounts, and no row leaves the vault decrypted."""
        t = platform_accounts
        with self.engine.begin() as conn:
            rows = conn.execute(sa.select(t.c.id, t.c.token_ciphertext)).all()
            for row_id, token in rows:
                try:
                    fresh = self._fernet.rotate(token)
                except InvalidToken:
                    raise VaultKeyError(WRONG_KEY) from None
                # updated_at set to itself: re-encrypting does not change the account.
                conn.execute(t.update().where(t.c.id == row_id).values(
                    token_ciphertext=fresh, updated_at=t.c.updated_at
                ))  # fmt: skip
        return len(rows)

    def rotate(self, new_key: bytes) -> int:
        """Puts `new_key` first and re-encrypts every row with it; old keys still decrypt."""
        keys = [new_key, *(k for k in self._keys if k != new_key)]
        fernet = _fernet(keys)
        self._keys, self._fernet = keys, fernet
        return self.reencrypt()

    @property
    def keys(self) -> list[bytes]:
        return list(self._keys)

    # Last in the class so the name `list` shadows the builtin nowhere else in this body.
    def list(self, owner: str) -> list[AccountSummary]:
        """The owner's accounts without their credentials, by channel then platform."""
        t = platform_accounts
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t).where(t.c.owner == owner).order_by(t.c.channel, t.c.platform)
            ).mappings()
            return [AccountSummary(**_summary_fields(row)) for row in rows]


def _summary_fields(row: sa.RowMapping) -> dict[str, Any]:
    return {
        "owner": row["owner"],
        "channel": row["channel"],
        "platform": Platform(row["platform"]),
        "account_name": row["account_name"],
        "expires_at": _aware(row["expires_at"]),
        "scopes": list(row["scopes"] or []),
        "status": AccountStatus(row["status"]),
        "error": row["error"],
        "updated_at": _aware(row["updated_at"]),
    }


# --- keys -----------------------------------------------------------------------------------


def key_file(home: Path | None = None) -> Path:
    from factory_resources.store import default_home

    return (home or default_home()) / "secrets" / "vault.key"


def _write_key_file(path: Path, keys: list[bytes]) -> None:
    """Replaces the key file atomically, 0600 in a 0700 folder, whatever the umask."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(b"".join(key + b"\n" for key in keys))
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)  # a crash leaves the old file or the new one, never half of one
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read_key_file(path: Path) -> list[bytes]:
    return [line.strip() for line in path.read_bytes().splitlines() if line.strip()]


def vault_keys(home: Path | None = None) -> list[bytes]:
    """The vault keys, newest first: `FACTORY_VAULT_KEYS` (comma-separated) when set, else the
    key file, created with a fresh key on first use."""
    env = os.environ.get(KEYS_ENV, "").strip()
    if env:
        keys = [part.strip().encode("ascii") for part in env.split(",") if part.strip()]
        _fernet(keys)  # malformed keys fail here, with a message that does not echo them
        return keys
    path = key_file(home)
    if not path.exists():
        _write_key_file(path, [Fernet.generate_key()])
    keys = _read_key_file(path)
    if not keys:
        raise VaultKeyError(f"{path} holds no key; restore it from a backup")
    _fernet(keys)
    return keys


def account_vault(home: Path | None = None) -> AccountVault:
    """The vault on the project database with the configured keys."""
    from factory_resources.project_db import project_engine

    return AccountVault(project_engine(home), vault_keys(home))


def rotate_key(home: Path | None, engine: sa.Engine) -> int:
    """Replaces the vault key file's key with a new one and re-encrypts every row; the number of
    rows re-encrypted.

    Order matters for crashes: the key file first gets the new key *and* the old ones, then the
    rows are re-encrypted (one transaction), and only then are the old keys dropped. Whenever it
    stops, the key file can decrypt every row."""
    if os.environ.get(KEYS_ENV, "").strip():
        # We cannot rewrite the environment, and printing a new key would leave it in logs.
        raise VaultKeyError(
            f"the vault keys come from {KEYS_ENV}; rotate them there: put a new key (from "
            "cryptography.fernet.Fernet.generate_key()) first, keep the old ones after it, "
            "re-encrypt the accounts (AccountVault.reencrypt), then remove the old keys"
        )
    path = key_file(home)
    old = vault_keys(home)
    new = Fernet.generate_key()
    _write_key_file(path, [new, *old])
    vault = AccountVault(engine, [new, *old])
    count = vault.reencrypt()
    _write_key_file(path, [new])
    return count
