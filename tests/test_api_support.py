"""Shared pieces of the API tests (this module has no tests of its own).

`RecordingBridge` implements the `DagsterBridge` protocol over a real Dagster instance
(`dg.instance_for_test()`): it adds the topics' partitions for real, records every launch with
its tags, and answers `topic_progress` from what it recorded (tests move topics along with
`set_state`). The real GraphQL bridge is tested with the bridge module.

`World` is an app over its own FACTORY_HOME and project database (SQLite, or PostgreSQL when
`FACTORY_DB_URL` is set), two users on the free plan (alice and bob) and a TestClient whose
base URL is loopback (the OAuth redirect URI must be).
"""

from __future__ import annotations

import io
import struct
import uuid
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from factory_api.app import create_app
from factory_api.dagster_bridge import LaunchResult, TopicProgress
from factory_assets.partitions import topics
from factory_resources.project_db import project_engine
from factory_resources.tenancy import Tenancy


@dataclass
class Launch:
    kind: str  # create_short | create_batch | publish
    keys: list[str]
    tags: dict[str, str]
    run_id: str | None = None
    backfill_id: str | None = None


class RecordingBridge:
    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.instance = instance
        self.launches: list[Launch] = []
        self.states: dict[str, TopicProgress] = {}
        self.fail_next: Exception | None = None

    def _fail(self) -> None:
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc

    def _queued(self, key: str, run_id: str | None) -> None:
        self.states[key] = TopicProgress(
            key=key, state="queued", stage=None, stages_done=[], progress=0.0, eta_s=None,
            run_id=run_id, reason=None, updated_at=datetime.now(UTC),
        )  # fmt: skip

    def create_short(self, topic_key: str, tags: dict[str, str]) -> LaunchResult:
        self._fail()
        self.instance.add_dynamic_partitions(topics.name, [topic_key])
        run_id = uuid.uuid4().hex
        self.launches.append(Launch("create_short", [topic_key], dict(tags), run_id=run_id))
        self._queued(topic_key, run_id)
        return LaunchResult(run_id=run_id)

    def create_batch(self, topic_keys: list[str], tags: dict[str, str]) -> LaunchResult:
        self._fail()
        self.instance.add_dynamic_partitions(topics.name, list(topic_keys))
        backfill_id = uuid.uuid4().hex[:8]
        self.launches.append(Launch("create_batch", list(topic_keys), dict(tags),
                                    backfill_id=backfill_id))  # fmt: skip
        for key in topic_keys:
            self._queued(key, None)
        return LaunchResult(backfill_id=backfill_id)

    def publish(self, topic_key: str, tags: dict[str, str]) -> LaunchResult:
        self._fail()
        run_id = uuid.uuid4().hex
        self.launches.append(Launch("publish", [topic_key], dict(tags), run_id=run_id))
        return LaunchResult(run_id=run_id)

    def topic_progress(self, topic_keys: list[str]) -> dict[str, TopicProgress]:
        return {key: self.states[key] for key in topic_keys if key in self.states}

    def set_state(self, key: str, **changes: Any) -> None:
        self.states[key] = self.states[key].model_copy(update=changes)


@dataclass
class World:
    home: Path
    app: FastAPI
    client: TestClient
    bridge: RecordingBridge
    tenancy: Tenancy
    keys: dict[str, str] = field(default_factory=dict)

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[user]}"}

    def call(self, user: str | None, method: str, path: str, **kwargs: Any) -> Any:
        headers = {**(self.auth(user) if user else {}), **kwargs.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kwargs)

    def add_user(self, name: str, plan: str = "free") -> str:
        _, key = self.tenancy.create_user(name, plan)
        self.keys[name] = key
        return key

    def channel(self, user: str, name: str, **fields: Any) -> dict[str, Any]:
        response = self.call(user, "POST", "/v1/channels", json={"name": name, **fields})
        assert response.status_code == 201, response.text
        return response.json()

    def video(self, user: str, channel: str, topic: str, **fields: Any) -> str:
        response = self.call(user, "POST", "/v1/videos",
                             json={"channel": channel, "topic": topic, **fields})  # fmt: skip
        assert response.status_code == 202, response.text
        return response.json()["key"]


def api_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every route the app serves, included routers flattened (FastAPI
    0.16x keeps included routers as one entry of `app.routes`)."""
    found = set()
    for route in app.routes:
        contexts = (route.effective_route_contexts()
                    if hasattr(route, "effective_route_contexts") else [route])  # fmt: skip
        for context in contexts:
            for method in getattr(context, "methods", None) or ():
                if method != "HEAD":
                    found.add((method, context.path))
    return sorted(found)


@pytest.fixture(scope="session")
def dagster_instance() -> Iterator[dg.DagsterInstance]:
    """One real instance for the session: starting one costs seconds, and topic keys differ
    per channel and topic, so tests adding partitions to it do not meet."""
    with dg.instance_for_test() as instance:
        yield instance


def build_world(home: Path, instance: dg.DagsterInstance) -> Iterator[World]:
    bridge = RecordingBridge(instance)
    app = create_app(home=home, bridge=bridge)
    tenancy = Tenancy(project_engine(home), home)
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        built = World(home, app, client, bridge, tenancy)
        built.add_user("alice")
        built.add_user("bob")
        yield built


@pytest.fixture
def world(tmp_path: Path, dagster_instance: dg.DagsterInstance) -> Iterator[World]:
    yield from build_world(tmp_path / "factory-home", dagster_instance)


# --- media made in memory ---------------------------------------------------------------------


def wav_bytes(seconds: float, rate: int = 24000, seed: int = 0) -> bytes:
    """Speech-like audio: a voiced tone with syllable-rate loudness and short pauses."""
    from tests.test_voice_samples import speech_like

    signal = speech_like(seconds, seed=seed) if seconds >= 1 else np.zeros(int(rate * seconds))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(signal, -1, 1) * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def png_bytes(width: int = 600, height: int = 600) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (40, 90, 160)).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(width: int = 64, height: int = 64) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 90, 60)).save(buffer, format="JPEG")
    return buffer.getvalue()


def mp4_bytes() -> bytes:
    """Enough of an MP4 for the magic-bytes check (an `ftyp` box), not a playable file."""
    return struct.pack(">I", 24) + b"ftypisom" + b"\x00\x00\x02\x00isomiso2" + b"\x00" * 64
