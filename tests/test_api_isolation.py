"""Isolation: user A (alice) gets 404 for every one of user B's (bob's) resources on every
endpoint, list endpoints never show bob's things, and no endpoint answers without a key.

The matrix is parametrized over the app's own route table: a new route without a case here
fails `test_every_route_has_an_isolation_case`. Bob's world (a channel, an offline voice, a
character, a video with files, a batch, a connected account, a published post with metrics and
a pending OAuth connect) is built once for the module; each case checks afterwards that bob's
things are all still there. Not covered here: upload validation and traversal
(test_api_uploads) and the video flows (test_api_videos).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import dagster as dg
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from factory_api.app import create_app
from factory_core.publishing import PostMetrics
from factory_resources.account_vault import AccountVault, vault_keys
from factory_resources.metrics_history import MetricsHistory
from factory_resources.project_db import characters, project_engine
from factory_resources.publication_ledger import PublicationLedger, publications
from factory_resources.tenancy import Tenancy

from .test_api_support import (
    RecordingBridge,
    World,
    api_routes,
    dagster_instance,
    png_bytes,
    wav_bytes,
)

__all__ = ["dagster_instance"]

BOB_CHANNEL, ALICE_CHANNEL = "bob-chan", "alice-chan"
BOB_VOICE, BOB_CHARACTER = "bob-voice", "bob-face"
BOB_POST_ID, BOB_ACCOUNT, BOB_TOKEN = "bobpost123", "Bob's Tube", "ya29.bob-secret-token"
OAUTH_ENV = {"FACTORY_TIKTOK_CLIENT_ID": "tiktok-app", "FACTORY_TIKTOK_CLIENT_SECRET": "s3cr3t"}


class BobWorld(World):
    bob_key: str = ""
    bob_batch: str = ""
    bob_state: str = ""


@pytest.fixture(scope="module")
def w(
    tmp_path_factory: pytest.TempPathFactory, dagster_instance: dg.DagsterInstance
) -> Iterator[BobWorld]:
    home = tmp_path_factory.mktemp("isolation") / "factory-home"
    instance = dagster_instance
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACTORY_HOME", str(home))
        for name, value in OAUTH_ENV.items():
            mp.setenv(name, value)
        bridge = RecordingBridge(instance)
        app = create_app(home=home, bridge=bridge)
        engine = project_engine(home)
        with TestClient(app, base_url="http://127.0.0.1:8000") as client:
            world = BobWorld(home, app, client, bridge, Tenancy(engine, home))
            world.add_user("alice")
            world.add_user("bob")
            world.channel("alice", ALICE_CHANNEL)
            world.channel("bob", BOB_CHANNEL)
            made = world.call("bob", "POST", "/v1/voices/offline", json={"name": BOB_VOICE})
            assert made.status_code == 201, made.text
            with engine.begin() as conn:  # a row as the studio writes it; dlib is not needed here
                conn.execute(characters.insert().values(
                    id="bobface", owner="bob", name=BOB_CHARACTER, description="bob's",
                    reference_file="owners/bob/characters/bob-face/reference.png", status="ready",
                ))  # fmt: skip
            world.bob_key = world.video("bob", BOB_CHANNEL, "Why do owls hoot at night")
            folder = home / "topics" / world.bob_key
            (folder / "video.mp4").write_bytes(b"bob's video")
            (folder / "captions.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nbob\n")
            batch = world.call("bob", "POST", "/v1/batches",
                               json={"channel": BOB_CHANNEL, "topics": ["How bees dance"]})  # fmt: skip
            assert batch.status_code == 202, batch.text
            world.bob_batch = batch.json()["id"]
            AccountVault(engine, vault_keys(home)).save(
                "bob", BOB_CHANNEL, "youtube", BOB_ACCOUNT, {"access_token": BOB_TOKEN}
            )
            with engine.begin() as conn:
                conn.execute(publications.insert().values(
                    owner="bob", channel=BOB_CHANNEL, topic_key=world.bob_key, platform="youtube",
                    account=BOB_ACCOUNT, marker="bobmarker", state="published",
                    post_id=BOB_POST_ID, published_at=datetime.now(UTC), progress={}, attempts=1,
                ))  # fmt: skip
            post = PublicationLedger(engine).get("bobmarker")
            MetricsHistory(engine).record(post, [PostMetrics(
                platform="youtube", post_id=BOB_POST_ID, fetched_at=datetime.now(UTC), views=99,
                likes=5,
            )])  # fmt: skip
            connect = world.call("bob", "POST", f"/v1/accounts/{BOB_CHANNEL}/tiktok/connect")
            assert connect.status_code == 200, connect.text
            query = parse_qs(urlsplit(connect.json()["authorize_url"]).query)
            world.bob_state = query["state"][0]
            yield world


def bob_still_has_everything(w: BobWorld) -> None:
    svc = w.app.state.services
    assert svc.voice_studio().find("bob", BOB_VOICE) is not None
    with svc.engine.connect() as conn:
        owners = conn.execute(sa.select(characters.c.owner).where(
            characters.c.name == BOB_CHARACTER)).scalars().all()  # fmt: skip
    assert "bob" in owners
    assert w.tenancy.get_channel("bob", BOB_CHANNEL) is not None
    assert (w.home / "topics" / w.bob_key / "video.mp4").read_bytes() == b"bob's video"
    assert svc.batch_path(w.bob_batch).is_file()
    assert svc.peek_connect(w.bob_state) is not None
    assert [a.account_name for a in svc.vault().list("bob")] == [BOB_ACCOUNT]


def _404(response: Any) -> None:
    assert response.status_code == 404, response.text
    assert response.json()["code"] == "not_found"
    assert "bob" not in response.json()["message"].replace(BOB_CHANNEL, "").replace(
        BOB_VOICE, "").replace(BOB_CHARACTER, "")  # fmt: skip


def _lacks(*markers: str) -> Callable[[Any], None]:
    def check(response: Any) -> None:
        assert response.status_code == 200, response.text
        for marker in markers:
            assert marker not in response.text

    return check


Case = Callable[[BobWorld], None]


def _alice(method: str, path: str, check: Callable[[Any], None] = _404, **kw: Any) -> Case:
    def case(w: BobWorld) -> None:
        check(w.call("alice", method, path.format(key=w.bob_key, batch=w.bob_batch,
                                                  state=w.bob_state), **kw))  # fmt: skip

    return case


def _alice_clone_with_bobs_voice_name(w: BobWorld) -> None:
    # Names are per owner: alice's clone is judged on its own samples, not refused as taken.
    files = [("files", ("take.wav", wav_bytes(2), "audio/wav"))]
    response = w.call("alice", "POST", "/v1/voices", data={"name": BOB_VOICE}, files=files)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "samples_rejected"


def _alice_offline_voice_with_bobs_name(w: BobWorld) -> None:
    made = w.call("alice", "POST", "/v1/voices/offline", json={"name": BOB_VOICE, "pitch": 2})
    assert made.status_code == 201, made.text
    assert w.call("alice", "DELETE", f"/v1/voices/{BOB_VOICE}").status_code == 204


def _alice_character_with_bobs_name(w: BobWorld) -> None:
    files = {"image": ("me.png", png_bytes(), "image/png")}
    made = w.call("alice", "POST", "/v1/characters", data={"name": BOB_CHARACTER}, files=files)
    assert made.status_code == 201, made.text
    assert w.call("alice", "DELETE", f"/v1/characters/{BOB_CHARACTER}").status_code == 204


def _alice_channel_with_bobs_name(w: BobWorld) -> None:
    # Channel names are global (they key every topic); the answer names no owner.
    w.tenancy.set_plan("alice", "creator")  # room for a second channel: the name decides
    try:
        taken = w.call("alice", "POST", "/v1/channels", json={"name": BOB_CHANNEL})
    finally:
        w.tenancy.set_plan("alice", "free")
    assert taken.status_code == 409 and taken.json()["code"] == "channel_name_taken"
    assert 'bob"' not in taken.text and "'bob'" not in taken.text


def _alice_callback_with_bobs_state(w: BobWorld) -> None:
    _404(w.call("alice", "GET", f"/v1/oauth/callback?state={w.bob_state}&code=stolen"))


BRAND = {"file": ("logo.png", png_bytes(64, 64), "image/png")}
MUSIC = {"file": ("bed.wav", wav_bytes(1.5), "audio/wav")}

CASES: dict[tuple[str, str], Case] = {
    ("POST", "/v1/voices"): _alice_clone_with_bobs_voice_name,
    ("POST", "/v1/voices/offline"): _alice_offline_voice_with_bobs_name,
    ("GET", "/v1/voices"): _alice("GET", "/v1/voices", _lacks(BOB_VOICE)),
    ("POST", "/v1/voices/{name}/test"): _alice("POST", f"/v1/voices/{BOB_VOICE}/test", json={}),
    ("POST", "/v1/voices/{name}/generate"):
        _alice("POST", f"/v1/voices/{BOB_VOICE}/generate", json={"text": "Hello."}),
    ("PATCH", "/v1/voices/{name}/settings"):
        _alice("PATCH", f"/v1/voices/{BOB_VOICE}/settings", json={"speed": 1.1}),
    ("DELETE", "/v1/voices/{name}"): _alice("DELETE", f"/v1/voices/{BOB_VOICE}"),
    ("POST", "/v1/characters"): _alice_character_with_bobs_name,
    ("GET", "/v1/characters"): _alice("GET", "/v1/characters", _lacks(BOB_CHARACTER)),
    ("POST", "/v1/characters/{name}/variations"):
        _alice("POST", f"/v1/characters/{BOB_CHARACTER}/variations", json={}),
    ("PATCH", "/v1/characters/{name}"):
        _alice("PATCH", f"/v1/characters/{BOB_CHARACTER}", json={"description": "mine now"}),
    ("DELETE", "/v1/characters/{name}"): _alice("DELETE", f"/v1/characters/{BOB_CHARACTER}"),
    ("POST", "/v1/channels"): _alice_channel_with_bobs_name,
    ("GET", "/v1/channels"): _alice("GET", "/v1/channels", _lacks(BOB_CHANNEL)),
    ("GET", "/v1/channels/{name}"): _alice("GET", f"/v1/channels/{BOB_CHANNEL}"),
    ("PATCH", "/v1/channels/{name}"):
        _alice("PATCH", f"/v1/channels/{BOB_CHANNEL}", json={"style": "calm"}),
    ("DELETE", "/v1/channels/{name}"):
        _alice("DELETE", f"/v1/channels/{BOB_CHANNEL}?delete_videos=true"),
    ("PUT", "/v1/channels/{name}/brand/{kind}"):
        _alice("PUT", f"/v1/channels/{BOB_CHANNEL}/brand/logo", files=BRAND),
    ("POST", "/v1/channels/{name}/music"):
        _alice("POST", f"/v1/channels/{BOB_CHANNEL}/music", files=MUSIC),
    ("POST", "/v1/videos"):
        _alice("POST", "/v1/videos", json={"channel": BOB_CHANNEL, "topic": "Owls at night"}),
    ("GET", "/v1/videos"): _alice("GET", "/v1/videos", _lacks("{key}", BOB_CHANNEL)),
    ("GET", "/v1/videos/{key}"): _alice("GET", "/v1/videos/{key}"),
    ("GET", "/v1/videos/{key}/status"): _alice("GET", "/v1/videos/{key}/status"),
    ("GET", "/v1/videos/{key}/files/{name}"): _alice("GET", "/v1/videos/{key}/files/video.mp4"),
    ("POST", "/v1/videos/{key}/publish"):
        _alice("POST", "/v1/videos/{key}/publish", json={"when": "now"}),
    ("GET", "/v1/videos/{key}/publications"): _alice("GET", "/v1/videos/{key}/publications"),
    ("GET", "/v1/accounts"): _alice("GET", "/v1/accounts", _lacks(BOB_ACCOUNT, BOB_TOKEN)),
    ("POST", "/v1/accounts/{channel}/{platform}/connect"):
        _alice("POST", f"/v1/accounts/{BOB_CHANNEL}/tiktok/connect"),
    ("GET", "/v1/oauth/callback"): _alice_callback_with_bobs_state,
    ("GET", "/v1/analytics"): _alice("GET", "/v1/analytics", _lacks(BOB_POST_ID, BOB_CHANNEL)),
    ("GET", "/v1/analytics/videos/{key}"): _alice("GET", "/v1/analytics/videos/{key}"),
    ("GET", "/v1/analytics/platforms/{platform}"):
        _alice("GET", "/v1/analytics/platforms/youtube", _lacks(BOB_POST_ID, BOB_CHANNEL)),
    ("POST", "/v1/batches"):
        _alice("POST", "/v1/batches", json={"channel": BOB_CHANNEL, "topics": ["Owls"]}),
    ("GET", "/v1/batches/{batch_id}"): _alice("GET", "/v1/batches/{batch}"),
}  # fmt: skip

PUBLIC = {("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/docs/oauth2-redirect"),
          ("GET", "/redoc")}  # fmt: skip
ROUTES = [r for r in api_routes(create_app(home=Path("/nonexistent"))) if r not in PUBLIC]


def test_every_route_has_an_isolation_case() -> None:
    missing = [f"{m} {p}" for m, p in ROUTES if (m, p) not in CASES]
    assert not missing, f"routes without an isolation case: {missing}"
    assert set(CASES) <= set(ROUTES), "cases for routes that no longer exist"


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_alice_cannot_reach_bobs_resources(w: BobWorld, method: str, path: str) -> None:
    CASES[(method, path)](w)
    bob_still_has_everything(w)


def test_bob_sees_his_own(w: BobWorld) -> None:
    """The other side of the matrix: the same calls as bob find his things (so a 404 above
    is isolation, not a broken endpoint)."""
    assert w.call("bob", "GET", f"/v1/videos/{w.bob_key}").status_code == 200
    assert w.call("bob", "GET", f"/v1/videos/{w.bob_key}/files/video.mp4").content == b"bob's video"
    assert w.call("bob", "GET", f"/v1/batches/{w.bob_batch}").status_code == 200
    assert BOB_VOICE in w.call("bob", "GET", "/v1/voices").text
    assert BOB_CHARACTER in w.call("bob", "GET", "/v1/characters").text
    accounts = w.call("bob", "GET", "/v1/accounts")
    assert BOB_ACCOUNT in accounts.text and BOB_TOKEN not in accounts.text
    assert BOB_POST_ID in w.call("bob", "GET", "/v1/analytics").text
    assert BOB_POST_ID in w.call("bob", "GET", f"/v1/analytics/videos/{w.bob_key}").text
    assert w.call("bob", "GET", f"/v1/videos/{w.bob_key}/publications").json()[0]["post_id"] == (
        BOB_POST_ID
    )


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_no_key_no_answer(w: BobWorld, method: str, path: str) -> None:
    concrete = (path.replace("{key}", w.bob_key).replace("{batch_id}", w.bob_batch)
                .replace("{name}", BOB_VOICE).replace("{kind}", "logo")
                .replace("{channel}", BOB_CHANNEL).replace("{platform}", "tiktok"))  # fmt: skip
    for headers in ({}, {"Authorization": "Bearer vf_not-a-real-key"}, {"X-API-Key": "nope"}):
        response = w.client.request(method, concrete, headers=headers)
        if path == "/v1/oauth/callback":  # the browser's redirect: the state is the credential
            assert response.status_code == 404
            continue
        assert response.status_code == 401, response.text
        assert response.json()["code"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"
    assert os.environ.get("FACTORY_TIKTOK_CLIENT_SECRET") not in w.client.get(
        "/v1/accounts", headers=w.auth("alice")).text  # fmt: skip
