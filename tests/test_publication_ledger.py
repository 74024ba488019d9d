"""Exactly-once publishing: the ledger, the driver, the outbox and the `publications` asset.

A fake platform crashes once at each step of a post (before the upload, mid-upload after the
session was saved, during the publish call with the response lost, after the platform accepted
but before the ledger write); the next attempt must leave exactly one post and a published row.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

from factory_assets.definitions import offline_resources
from factory_assets.publications import gate_refusal, publications, video_gate
from factory_core.models import Language, Script
from factory_core.publish_metadata import Platform, fit_for
from factory_core.publishing import (
    PublicationState,
    PublishedPost,
    PublishFailure,
    PublishRequest,
    publication_marker,
)
from factory_resources import outbox as outbox_module
from factory_resources.faults import ProviderError
from factory_resources.outbox import OUTBOX_ACCOUNT, POST_FILE, OutboxPublisher
from factory_resources.publication_ledger import PublicationLedger, publish_once

from .conftest import QUIET, Rendered

PLATFORMS = ["youtube", "tiktok", "instagram", "x", "telegram"]


class Crash(Exception):
    """The process dies here (the test catches it instead)."""


class FakePlatform:
    """A platform with resumable upload sessions and a post list searchable by marker. It
    crashes once at `crash_at`, then behaves."""

    platform = Platform.YOUTUBE

    def __init__(self, crash_at: str | None = None) -> None:
        self.crash_at = crash_at
        self.posts: dict[str, str] = {}  # post id -> marker
        self.sessions: dict[str, int] = {}  # session id -> bytes received
        self.publish_calls = 0
        self.resumed = 0

    def _maybe_crash(self, point: str) -> None:
        if self.crash_at == point:
            self.crash_at = None
            raise Crash(point)

    def _accept(self, marker: str) -> str:
        post_id = f"p{len(self.posts) + 1}"
        self.posts[post_id] = marker
        return post_id

    def find(self, request: PublishRequest, credentials: dict[str, Any]) -> PublishedPost | None:
        for post_id, marker in self.posts.items():
            if marker == request.marker:
                return PublishedPost(platform=self.platform, post_id=post_id)
        return None

    def publish(
        self, request: PublishRequest, credentials: dict[str, Any], save_progress: Any
    ) -> PublishedPost:
        self.publish_calls += 1
        self._maybe_crash("before_upload")
        session = request.progress.get("session")
        if session not in self.sessions:  # none yet, or one this platform forgot
            session = f"s{len(self.sessions) + 1}"
            self.sessions[session] = 0
            save_progress({"session": session})
        else:
            self.resumed += 1
        self.sessions[session] += 100  # half the file
        self._maybe_crash("mid_upload")
        self.sessions[session] = 200
        save_progress({"publish_id": f"pub-{session}"})
        if self.crash_at == "during_publish":
            # The platform takes the post, the response is lost: a timeout to the caller.
            self.crash_at = None
            self._accept(request.marker)
            raise ProviderError("fake", "read timed out", retryable=True)
        post_id = self._accept(request.marker)
        self._maybe_crash("after_accept")
        return PublishedPost(platform=self.platform, post_id=post_id)


class FailingPlatform(FakePlatform):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def publish(
        self, request: PublishRequest, credentials: dict[str, Any], save_progress: Any
    ) -> PublishedPost:
        save_progress({"session": "s1"})
        raise self.error


@pytest.fixture
def ledger(tmp_path: Path) -> PublicationLedger:
    return PublicationLedger(sa.create_engine(f"sqlite:///{tmp_path / 'ledger.db'}"))


def _script() -> Script:
    return Script.model_validate(
        {
            "topic": "Why octopuses have three hearts",
            "language": Language.EN,
            "title": "Three hearts, one octopus",
            "hook": "An octopus has three hearts.",
            "body_points": ["Two pump blood through the gills."],
            "call_to_action": "Follow for more.",
            "description": "Why an octopus needs three hearts.",
            "hashtags": ["octopus", "biology"],
            "scenes": [],
            "target_duration_s": 20.0,
            "estimated_duration_s": 20.0,
            "chars_per_second": 15.0,
            "source": "user",
        }
    )


def _request(
    tmp_path: Path, platform: str = "youtube", account: str = "acct", topic: str = "demo-t1"
) -> PublishRequest:
    video = tmp_path / "video.mp4"
    if not video.exists():
        video.write_bytes(b"\x00\x00\x00\x18ftypmp42 fake video")
        (tmp_path / "cover.jpg").write_bytes(b"\xff\xd8 fake jpeg")
    return PublishRequest(
        topic_key=topic,
        platform=Platform(platform),
        account=account,
        marker=publication_marker(topic, platform, account),
        video=video,
        thumbnail=tmp_path / "cover.jpg",
        metadata=fit_for(platform, _script()),
        duration_s=20.0,
    )


# --- the ledger -------------------------------------------------------------------------------


def test_intend_is_idempotent_and_checks_the_marker(
    ledger: PublicationLedger, tmp_path: Path
) -> None:
    request = _request(tmp_path)
    first = ledger.intend(request, owner="ann", channel="demo")
    again = ledger.intend(request, owner="ann", channel="demo")
    assert first == again and first.state is PublicationState.INTENDED
    assert [row.marker for row in ledger.for_topic("demo-t1")] == [request.marker]
    with pytest.raises(ValueError, match="marker"):
        ledger.intend(request.model_copy(update={"marker": "vfsomething"}))


def test_progress_merges_and_a_published_row_stays_published(
    ledger: PublicationLedger, tmp_path: Path
) -> None:
    request = _request(tmp_path)
    ledger.intend(request)
    ledger.save_progress(request.marker, {"session": "s1"})
    row = ledger.save_progress(request.marker, {"bytes": 10})
    assert row.state is PublicationState.UPLOADING and row.progress == {
        "session": "s1",
        "bytes": 10,
    }
    ledger.mark_published(request.marker, PublishedPost(platform="youtube", post_id="abc"))
    late = ledger.save_progress(request.marker, {"bytes": 20})
    assert late.state is PublicationState.PUBLISHED and late.post and late.post.post_id == "abc"


# --- exactly once against a crashing platform -------------------------------------------------


@pytest.mark.parametrize(
    "crash_at", ["before_upload", "mid_upload", "during_publish", "after_accept"]
)
def test_a_crash_at_any_step_still_posts_exactly_once(
    crash_at: str, ledger: PublicationLedger, tmp_path: Path
) -> None:
    fake = FakePlatform(crash_at)
    request = _request(tmp_path)
    with pytest.raises((Crash, ProviderError)):
        publish_once(ledger, fake, request, {})
    assert ledger.get(request.marker).state is not PublicationState.PUBLISHED

    post = publish_once(ledger, fake, request, {})
    assert len(fake.posts) == 1, "duplicate or missing post"
    row = ledger.get(request.marker)
    assert row.state is PublicationState.PUBLISHED and row.post_id == post.post_id
    assert fake.posts[post.post_id] == request.marker
    if crash_at == "mid_upload":
        assert fake.resumed == 1 and len(fake.sessions) == 1  # resumed, not a new session

    calls = fake.publish_calls
    assert publish_once(ledger, fake, request, {}).post_id == post.post_id
    assert fake.publish_calls == calls and len(fake.posts) == 1  # done means done


def test_each_platform_and_account_is_its_own_post(
    ledger: PublicationLedger, tmp_path: Path
) -> None:
    fake = FakePlatform()
    for account in ("a", "b"):
        publish_once(ledger, fake, _request(tmp_path, account=account), {})
    assert len(fake.posts) == 2 and len(ledger.for_topic("demo-t1")) == 2


def test_a_publish_failure_marks_the_row_failed_with_the_reason(
    ledger: PublicationLedger, tmp_path: Path
) -> None:
    request = _request(tmp_path)
    fake = FailingPlatform(PublishFailure("youtube", "the video breaks community guidelines"))
    with pytest.raises(PublishFailure):
        publish_once(ledger, fake, request, {})
    row = ledger.get(request.marker)
    assert row.state is PublicationState.FAILED
    assert "community guidelines" in (row.error or "")
    assert row.progress == {"session": "s1"}  # kept: the next attempt reconciles first


def test_provider_errors_fail_for_good_only_when_not_retryable(
    ledger: PublicationLedger, tmp_path: Path
) -> None:
    retry = _request(tmp_path, topic="demo-t2")
    with pytest.raises(ProviderError):
        publish_once(ledger, FailingPlatform(ProviderError("yt", "503", retryable=True)), retry, {})
    assert ledger.get(retry.marker).state is PublicationState.UPLOADING

    bad = _request(tmp_path, topic="demo-t3")
    with pytest.raises(ProviderError):
        publish_once(ledger, FailingPlatform(ProviderError("yt", "invalid token")), bad, {})
    row = ledger.get(bad.marker)
    assert row.state is PublicationState.FAILED and "invalid token" in (row.error or "")

    # Once the cause is fixed a failed row is retried, and posts once.
    fake = FakePlatform()
    publish_once(ledger, fake, bad, {})
    assert len(fake.posts) == 1 and ledger.get(bad.marker).state is PublicationState.PUBLISHED


# --- the outbox -------------------------------------------------------------------------------


def _outbox_posts(home: Path) -> list[Path]:
    return sorted(p.parent for p in (home / "outbox").rglob(POST_FILE))


def test_the_outbox_writes_one_folder_per_post(ledger: PublicationLedger, tmp_path: Path) -> None:
    home = tmp_path / "home"
    request = _request(tmp_path, platform="tiktok", account=OUTBOX_ACCOUNT)
    outbox = OutboxPublisher(home, "demo", "tiktok")
    post = publish_once(ledger, outbox, request, {})
    folder = home / "outbox" / "demo" / "tiktok" / request.marker
    assert post.post_id == request.marker and _outbox_posts(home) == [folder]
    assert {p.name for p in folder.iterdir()} == {"video.mp4", "thumbnail.jpg", POST_FILE}
    saved = json.loads((folder / POST_FILE).read_text(encoding="utf-8"))
    assert saved["marker"] == request.marker and saved["topic_key"] == "demo-t1"
    assert saved["metadata"] == request.metadata.model_dump(mode="json")
    assert (folder / "video.mp4").read_bytes() == request.video.read_bytes()
    publish_once(ledger, outbox, request, {})
    assert _outbox_posts(home) == [folder]


def test_the_outbox_reconciles_a_crash_after_the_folder_was_written(
    ledger: PublicationLedger, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    request = _request(tmp_path, platform="x", account=OUTBOX_ACCOUNT)
    outbox = OutboxPublisher(home, "demo", "x")
    ledger.intend(request)
    # The folder is written, then the process dies before the ledger hears of it.
    outbox.publish(request, {}, lambda progress: ledger.save_progress(request.marker, progress))
    first = json.loads((outbox.folder(request) / POST_FILE).read_text())["published_at"]
    assert ledger.get(request.marker).state is PublicationState.UPLOADING
    publish_once(ledger, outbox, request, {})
    assert ledger.get(request.marker).state is PublicationState.PUBLISHED
    assert json.loads((outbox.folder(request) / POST_FILE).read_text())["published_at"] == first
    assert len(_outbox_posts(home)) == 1


def test_a_crash_mid_write_leaves_no_half_post(
    ledger: PublicationLedger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    request = _request(tmp_path, platform="instagram", account=OUTBOX_ACCOUNT)
    outbox = OutboxPublisher(home, "demo", "instagram")
    # A killed process leaves its temporary folder behind (no cleanup runs): the next attempt
    # clears it.
    outbox.base.mkdir(parents=True)
    (outbox.base / f".{request.marker}.dead").mkdir()

    def broken_copy(*_: object) -> None:
        raise Crash("disk full")

    monkeypatch.setattr(outbox_module.shutil, "copyfile", broken_copy)
    with pytest.raises(Crash):
        publish_once(ledger, outbox, request, {})
    assert _outbox_posts(home) == [] and not outbox.folder(request).exists()
    monkeypatch.undo()
    publish_once(ledger, outbox, request, {})
    assert _outbox_posts(home) == [outbox.folder(request)]
    assert [p.name for p in outbox.base.iterdir()] == [request.marker]


# --- the gate on the video's blocking check ---------------------------------------------------


def test_gate_refuses_unless_the_latest_render_passed() -> None:
    assert gate_refusal(True, checked_at=20.0, rendered_at=10.0) is None
    assert "not been evaluated" in (gate_refusal(None, None, 10.0) or "")
    assert "before the latest render" in (gate_refusal(True, 5.0, 10.0) or "")
    assert "too quiet" in (gate_refusal(False, 20.0, 10.0, "too quiet") or "")


def test_gate_reads_the_instance() -> None:
    with dg.instance_for_test() as instance:
        assert "not been evaluated" in (video_gate(instance, "demo-nothing") or "")


# --- the asset, after a real render ----------------------------------------------------------


@pytest.mark.slow
def test_the_asset_writes_five_outbox_folders_once(rendered: Rendered) -> None:
    key = next(iter(rendered.requests))
    assert rendered.results[key].success
    assert video_gate(rendered.instance, key) is None
    ledger = PublicationLedger(sa.create_engine(f"sqlite:///{rendered.home / 'factory.db'}"))
    rows = ledger.for_topic(key)
    assert sorted(row.platform for row in rows) == sorted(PLATFORMS)
    assert all(row.state is PublicationState.PUBLISHED for row in rows)
    folders = {
        row.platform: rendered.home / "outbox" / "demo" / row.platform / row.marker for row in rows
    }
    for folder in folders.values():
        assert {p.name for p in folder.iterdir()} == {"video.mp4", "thumbnail.jpg", POST_FILE}
    before = {p: (p / POST_FILE).read_text() for p in folders.values()}
    everything = sorted((rendered.home / "outbox").rglob("*"))

    again = dg.materialize(
        [publications],
        partition_key=key,
        instance=rendered.instance,
        resources=offline_resources(str(rendered.home)),
        run_config=QUIET,
    )
    assert again.success
    assert {p: (p / POST_FILE).read_text() for p in folders.values()} == before
    assert sorted((rendered.home / "outbox").rglob("*")) == everything  # nothing new posted
    meta = again.asset_materializations_for_node("publications")[0].metadata
    assert meta["youtube_state"].value == "published" and meta["cost_usd"].value == 0.0
