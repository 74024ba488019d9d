"""What every endpoint works with: the factory home, the project database, the tenancy, the
studios, the Dagster bridge, and the checks that a resource belongs to the caller.

Built once per app and opened lazily (the first request opens the database), so importing
`factory_api.app` stays cheap. Every lookup of a caller's resource goes through `owned_*`,
which answers 404 for anything that does not exist *or* belongs to someone else.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
import time
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from factory_api.errors import ApiError, not_found

if TYPE_CHECKING:
    import sqlalchemy as sa
    from cryptography.fernet import MultiFernet

    from factory_api.dagster_bridge import DagsterBridge
    from factory_core.models import ChannelProfile, TopicRequest
    from factory_resources.account_oauth import PendingConnect
    from factory_resources.account_vault import AccountVault
    from factory_resources.character_studio import CharacterStudio
    from factory_resources.store import MediaStore
    from factory_resources.tenancy import Tenancy, User
    from factory_resources.voice_studio import VoiceStudio

PENDING_CONNECT_TTL_S = 15 * 60  # an OAuth consent left open longer must be started again


class Services:
    def __init__(self, home: Path | None = None, bridge: DagsterBridge | None = None) -> None:
        self._home = home
        self._bridge = bridge
        self._lock = threading.Lock()
        self._requests: dict[Path, tuple[tuple[int, int], TopicRequest]] = {}

    # --- the pieces ---------------------------------------------------------------------------

    def warm_up(self) -> None:
        """Opens what every request needs. The Dagster bridge may be unavailable (no instance
        configured yet): requests that need it then answer 503 as they would anyway."""
        _ = self.tenancy, self.store
        self.voice_studio()
        self.character_studio()
        try:
            bridge = self.bridge
            stage_times = getattr(bridge, "stage_times", None)
            if callable(stage_times):
                stage_times()
        except Exception as exc:
            logging.getLogger(__name__).warning("Dagster bridge not ready at start-up: %s", exc)

    @cached_property
    def home(self) -> Path:
        from factory_resources.store import default_home

        return (self._home or default_home()).resolve()

    @cached_property
    def store(self) -> MediaStore:
        from factory_resources.store import MediaStore

        return MediaStore(home=str(self.home))

    @cached_property
    def engine(self) -> sa.Engine:
        from factory_resources.project_db import project_engine

        return project_engine(self.home)

    @cached_property
    def tenancy(self) -> Tenancy:
        from factory_resources.tenancy import Tenancy

        return Tenancy(self.engine, self.home)

    @property
    def bridge(self) -> DagsterBridge:
        if self._bridge is None:
            with self._lock:  # two first requests at once must not build two bridges
                if self._bridge is None:
                    self._bridge = _default_bridge(self.home)
        return self._bridge

    # The studios hold no per-request state; building one costs about a millisecond (its
    # adapters and table checks), which list endpoints would pay on every call.
    def voice_studio(self) -> VoiceStudio:
        return self._voice_studio

    @cached_property
    def _voice_studio(self) -> VoiceStudio:
        from factory_resources.elevenlabs_voice import ElevenLabsVoice
        from factory_resources.voice_studio import VoiceStudio

        elevenlabs = ElevenLabsVoice(base_url=os.environ.get("ELEVENLABS_BASE_URL") or None)
        return VoiceStudio(self.engine, elevenlabs, self.home)

    def character_studio(self) -> CharacterStudio:
        return self._character_studio

    @cached_property
    def _character_studio(self) -> CharacterStudio:
        from factory_resources.character_studio import CharacterStudio
        from factory_resources.face_similarity import FaceSimilarity
        from factory_resources.fal_images import FalImages

        return CharacterStudio(self.engine, self.home, FaceSimilarity(), fal=FalImages())

    def vault(self) -> AccountVault:
        from factory_resources.account_vault import AccountVault, vault_keys

        return AccountVault(self.engine, vault_keys(self.home))

    # --- what the caller owns -----------------------------------------------------------------

    def owned_channel(self, user: User, name: str, field: str = "channel") -> ChannelProfile:
        profile = self.tenancy.get_channel(user.name, name)
        if profile is None:
            raise not_found("channel", name, field)
        return profile

    def channel_names(self, user: User) -> list[str]:
        return [c.name for c in self.tenancy.list_channels(user.name)]

    def owned_topic(self, user: User, key: str) -> TopicRequest:
        """The caller's topic: the key is well formed, its channel is the caller's, and the
        topic was recorded. Anything else is 404 (the key is never used as a path before)."""
        from factory_core.slugs import is_valid_key

        channel = key.split("--", 1)[0] if "--" in key else ""
        if not is_valid_key(key) or not channel or not self.tenancy.get_channel(user.name, channel):
            raise not_found("video", key, "key")
        path = self.home / "topics" / key / "request.json"
        if not path.is_file():
            raise not_found("video", key, "key")
        request = self.topic_request(path)
        if request.channel != channel:
            raise not_found("video", key, "key")
        return request

    def topic_request(self, path: Path) -> TopicRequest:
        """The TopicRequest in `path`, parsed once per version of the file (list endpoints
        read dozens on every call). Raises OSError or ValueError like a plain read."""
        from factory_core.models import TopicRequest

        stat = path.stat()
        version = (stat.st_mtime_ns, stat.st_size)
        cached = self._requests.get(path)
        if cached is not None and cached[0] == version:
            return cached[1]
        request = TopicRequest.model_validate_json(path.read_text(encoding="utf-8"))
        with self._lock:
            if len(self._requests) > 50_000:
                self._requests.clear()
            self._requests[path] = (version, request)
        return request

    def topic_keys(self, user: User, channel: str | None = None) -> list[str]:
        """The caller's topics, newest first: folders whose key starts with one of the caller's
        channels (channel slugs never contain `--`, so the prefix is unambiguous)."""
        prefixes = tuple(
            f"{name}--" for name in ([channel] if channel else self.channel_names(user))
        )
        if not prefixes:
            return []
        found = []
        # One directory scan and one stat per topic (a glob per channel cost ~3 ms for 50).
        try:
            entries = os.scandir(self.home / "topics")
        except FileNotFoundError:
            return []
        with entries:
            for entry in entries:
                if entry.name.startswith(prefixes) and entry.is_dir(follow_symlinks=False):
                    try:
                        mtime = os.stat(os.path.join(entry.path, "request.json")).st_mtime
                    except OSError:
                        continue  # not recorded (yet)
                    found.append((mtime, entry.name))
        return [key for _, key in sorted(found, reverse=True)]

    # --- pending OAuth connects ----------------------------------------------------------------
    # One encrypted file per pending connect under $FACTORY_HOME/api/oauth/, named by a digest
    # of its state: every API worker process sees it (the browser's callback may reach another
    # worker than the one that started the connect), and the PKCE verifier it holds is never
    # on disk in the clear. Taking one renames it first, so a state is used at most once.

    def _pending_dir(self) -> Path:
        folder = self.home / "api" / "oauth"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _pending_file(self, state: str) -> Path:
        return self._pending_dir() / f"{hashlib.sha256(state.encode()).hexdigest()}.pending"

    def _fernet(self) -> MultiFernet:
        from cryptography.fernet import Fernet, MultiFernet

        from factory_resources.account_vault import vault_keys

        return MultiFernet([Fernet(key) for key in vault_keys(self.home)])

    def remember_connect(self, pending: PendingConnect) -> None:
        now = time.time()
        for old in self._pending_dir().glob("*.pending"):
            with contextlib.suppress(OSError):
                if now - old.stat().st_mtime > PENDING_CONNECT_TTL_S:
                    old.unlink()
        record = {
            "owner": pending.owner, "channel": pending.channel,
            "platform": str(pending.platform), "redirect_uri": pending.redirect_uri,
            "state": pending.state, "code_verifier": pending.code_verifier,
            "account_name": pending.account_name, "timeout_s": pending.timeout_s,
        }  # fmt: skip
        token = self._fernet().encrypt(json.dumps(record).encode())
        path = self._pending_file(pending.state)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(token)
        os.chmod(tmp, 0o600)
        tmp.replace(path)

    def _read_connect(self, path: Path) -> PendingConnect | None:
        from cryptography.fernet import InvalidToken

        from factory_core.publish_metadata import Platform
        from factory_resources.account_oauth import PendingConnect, oauth_settings

        try:
            if time.time() - path.stat().st_mtime > PENDING_CONNECT_TTL_S:
                return None
            record = json.loads(self._fernet().decrypt(path.read_bytes()))
        except (OSError, InvalidToken, ValueError):
            return None
        return PendingConnect(
            vault=self.vault(), owner=record["owner"], channel=record["channel"],
            platform=Platform(record["platform"]), settings=oauth_settings(record["platform"]),
            redirect_uri=record["redirect_uri"], state=record["state"],
            code_verifier=record["code_verifier"], account_name=record["account_name"],
            timeout_s=record["timeout_s"],
        )  # fmt: skip

    def take_connect(self, state: str) -> PendingConnect | None:
        path = self._pending_file(state)
        claimed = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.taken")
        try:
            path.rename(claimed)  # atomic: of two callbacks with one state, one wins
        except OSError:
            return None
        try:
            return self._read_connect(claimed)
        finally:
            claimed.unlink(missing_ok=True)

    def peek_connect(self, state: str) -> PendingConnect | None:
        return self._read_connect(self._pending_file(state))

    # --- batches (a JSON file each under $FACTORY_HOME/api/batches/) --------------------------

    def batch_path(self, batch_id: str) -> Path:
        return self.home / "api" / "batches" / f"{batch_id}.json"

    def save_batch(self, batch_id: str, record: dict[str, Any]) -> None:
        self.store.write_json(self.batch_path(batch_id), record)

    def load_batch(self, user: User, batch_id: str) -> dict[str, Any]:
        import re

        if not re.fullmatch(r"[0-9a-f]{32}", batch_id):
            raise not_found("batch", batch_id, "batch_id")
        path = self.batch_path(batch_id)
        if not path.is_file():
            raise not_found("batch", batch_id, "batch_id")
        record = json.loads(path.read_text(encoding="utf-8"))
        if record.get("owner") != user.name:
            raise not_found("batch", batch_id, "batch_id")
        return record


def _default_bridge(home: Path) -> DagsterBridge:
    """The real bridge (GraphQL launches, instance reads), when its module provides one."""
    from factory_api import dagster_bridge

    make = getattr(dagster_bridge, "default_bridge", None)
    if make is None:
        raise ApiError(
            503, "dagster_unavailable",
            "this API has no Dagster bridge configured; start it with `make api`",
        )  # fmt: skip
    return make(home)
