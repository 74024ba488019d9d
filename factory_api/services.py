"""What every endpoint works with: the factory home, the project database, the tenancy, the
studios, the Dagster bridge, and the checks that a resource belongs to the caller.

Built once per app and opened lazily (the first request opens the database), so importing
`factory_api.app` stays cheap. Every lookup of a caller's resource goes through `owned_*`,
which answers 404 for anything that does not exist *or* belongs to someone else.
"""

from __future__ import annotations

import json
import os
import threading
import time
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from factory_api.errors import ApiError, not_found

if TYPE_CHECKING:
    import sqlalchemy as sa

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
        self._pending: dict[str, tuple[float, PendingConnect]] = {}
        self._lock = threading.Lock()
        self._requests: dict[Path, tuple[tuple[int, int], TopicRequest]] = {}

    # --- the pieces ---------------------------------------------------------------------------

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
        channels = [channel] if channel else self.channel_names(user)
        root = self.home / "topics"
        found = [
            (request.stat().st_mtime, request.parent.name)
            for name in channels
            for request in root.glob(f"{name}--*/request.json")
        ]
        return [key for _, key in sorted(found, reverse=True)]

    # --- pending OAuth connects (memory; a restart asks the user to connect again) -----------

    def remember_connect(self, pending: PendingConnect) -> None:
        now = time.monotonic()
        with self._lock:
            for state in [s for s, (at, _) in self._pending.items()
                          if now - at > PENDING_CONNECT_TTL_S]:  # fmt: skip
                del self._pending[state]
            self._pending[pending.state] = (now, pending)

    def take_connect(self, state: str) -> PendingConnect | None:
        with self._lock:
            entry = self._pending.pop(state, None)
        if entry is None or time.monotonic() - entry[0] > PENDING_CONNECT_TTL_S:
            return None
        return entry[1]

    def peek_connect(self, state: str) -> PendingConnect | None:
        with self._lock:
            entry = self._pending.get(state)
        return entry[1] if entry else None

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
