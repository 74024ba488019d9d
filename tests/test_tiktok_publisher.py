"""TikTokPublisher against the fake Content Posting API in tests/fakes/tiktok.py: creator info,
init with TikTok's chunk arithmetic, chunked PUTs with Content-Range, status polling through
several states, resuming after a 5xx or a crash without re-sending uploaded chunks, a lost answer
reconciled by the publish id's status, expired upload URLs, reconnect on a revoked token, 429
with Retry-After, processing failures, the token kept out of errors and logs, the video query
metrics, and `publish_once` with a real ledger crashing at a step.

Not covered: the real open.tiktokapis.com, its moderation times, and TikTok's UX rules for the
direct post (the creator has to see their settings in an app; that is the UI's business).
"""

from __future__ import annotations

import logging
import socket
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from factory_core.models import Language
from factory_core.publish_metadata import Platform, PostMetadata, Privacy, utf16_length
from factory_core.publishing import PublishFailure, PublishRequest, publication_marker
from factory_resources.faults import ProviderError
from factory_resources.publication_ledger import PublicationLedger, publish_once
from factory_resources.tiktok_publisher import (
    RECONNECT,
    TikTokPublisher,
    choose_privacy,
    chunk_plan,
    tiktok_caption,
)

from .fakes.tiktok import ACCESS_TOKEN, USERNAME, FakeTikTok

CREDENTIALS = {"access_token": ACCESS_TOKEN, "refresh_token": None, "scopes": ["video.publish"]}
TEXT = "Why octopuses have three hearts: two pump blood through the gills, one through the body."
CHUNK = 64 * 1024  # TikTok's 5 MB minimum, scaled down for the fake
SIZE = 3 * CHUNK + 1000  # three chunks, the last one taking the remainder
MIB = 1024 * 1024
TOPIC = "demo/why-octopuses-have-three-hearts"


class Crash(Exception):
    """The process dies here (the test catches it instead)."""


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def fake(httpserver: HTTPServer) -> FakeTikTok:
    return FakeTikTok(httpserver, min_chunk_size=CHUNK)


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "final.mp4"
    path.write_bytes((b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 800)[:SIZE])
    return path


def _request(
    video: Path,
    text: str = TEXT,
    privacy: Privacy | None = "private",
    duration_s: float = 21.6,
    progress: dict[str, Any] | None = None,
) -> PublishRequest:
    return PublishRequest(
        topic_key=TOPIC,
        platform=Platform.TIKTOK,
        account="vf_demo",
        marker=publication_marker(TOPIC, "tiktok", "vf_demo"),
        video=video,
        metadata=PostMetadata(
            platform=Platform.TIKTOK, language=Language.EN, text=text, privacy=privacy
        ),
        duration_s=duration_s,
        progress=progress or {},
    )


def _publisher(fake: FakeTikTok, **config: Any) -> TikTokPublisher:
    settings: dict[str, Any] = {
        "chunk_size": CHUNK,
        "min_chunk_size": CHUNK,
        "poll_interval_s": 2.0,
        "sleep": Sleeps(),
    }
    return TikTokPublisher(base_url=fake.base_url, **{**settings, **config})


def _ranges(fake: FakeTikTok) -> list[str]:
    return [c.headers["Content-Range"] for c in fake.calls_to("upload")]


def test_a_video_is_posted_in_chunks_with_caption_privacy_and_progress(
    fake: FakeTikTok, video: Path
) -> None:
    saved: list[dict[str, Any]] = []
    request = _request(video)

    post = _publisher(fake).publish(request, CREDENTIALS, saved.append)

    [sent] = fake.posts
    assert (post.platform, post.post_id) == (Platform.TIKTOK, str(sent.post_id))
    assert post.url == f"https://www.tiktok.com/@{USERNAME}/video/{sent.post_id}"
    assert sent.video == video.read_bytes()
    assert [c.route for c in fake.calls] == [
        "creator_info", "init", "upload", "upload", "upload", "status", "status",
    ]  # fmt: skip
    init = fake.calls_to("init")[0]
    assert init.headers["Authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert init.json == {
        "post_info": {
            "title": f"{TEXT}\n\n#{request.marker}",
            "privacy_level": "SELF_ONLY",  # metadata "private"
            "disable_duet": False,
            "disable_comment": False,
            "disable_stitch": True,  # the creator turned stitches off: we keep it off
            "video_cover_timestamp_ms": 1000,
            "is_aigc": True,
        },
        "source_info": {
            "source": "FILE_UPLOAD",
            "video_size": SIZE,
            "chunk_size": CHUNK,
            "total_chunk_count": 3,
        },
    }
    assert _ranges(fake) == [
        f"bytes 0-{CHUNK - 1}/{SIZE}",
        f"bytes {CHUNK}-{2 * CHUNK - 1}/{SIZE}",
        f"bytes {2 * CHUNK}-{SIZE - 1}/{SIZE}",
    ]
    assert {c.headers["Content-Type"] for c in fake.calls_to("upload")} == {"video/mp4"}
    assert [c.status for c in fake.calls_to("upload")] == [206, 206, 201]
    # The publish id and upload URL are saved before a byte is sent, then each chunk.
    upload = fake.uploads[saved[0]["publish_id"]]
    assert saved[0]["upload_url"].endswith(f"upload_token={upload.upload_token}")
    assert saved[0]["uploaded_chunks"] == 0 and saved[0]["creator_username"] == USERNAME
    assert saved[1:] == [{"uploaded_chunks": 1}, {"uploaded_chunks": 2}, {"uploaded_chunks": 3}]


@pytest.mark.parametrize(
    ("size", "chunk", "expected"),
    [
        (4 * MIB, 10 * MIB, (4 * MIB, 1)),  # under 5 MB: one chunk of its own size
        (12 * MIB, 10 * MIB, (10 * MIB, 1)),  # floor(12/10) = 1: the one chunk takes it all
        (25 * MIB, 10 * MIB, (10 * MIB, 2)),  # the last chunk takes the 5 MB remainder
        (50 * MIB, 1 * MIB, (5 * MIB, 10)),  # chunks are at least 5 MB
        (300 * MIB, 100 * MIB, (64 * MIB, 4)),  # and at most 64 MB
    ],
)
def test_chunk_plan_follows_tiktoks_rules(size: int, chunk: int, expected: tuple[int, int]) -> None:
    assert chunk_plan(size, chunk) == expected


def test_privacy_is_never_wider_than_asked() -> None:
    everything = ["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "FOLLOWER_OF_CREATOR", "SELF_ONLY"]
    assert choose_privacy("public", everything) == "PUBLIC_TO_EVERYONE"
    assert choose_privacy("public", ["SELF_ONLY"]) == "SELF_ONLY"  # an unaudited client
    assert choose_privacy("unlisted", everything) == "MUTUAL_FOLLOW_FRIENDS"
    assert choose_privacy(None, everything) == "SELF_ONLY"
    with pytest.raises(PublishFailure, match="none as private"):
        choose_privacy("private", ["PUBLIC_TO_EVERYONE"])


def test_status_is_polled_through_several_states(fake: FakeTikTok, video: Path) -> None:
    fake.processing_polls = 3
    sleeps = Sleeps()
    _publisher(fake, sleep=sleeps, poll_interval_s=2.0).publish(
        _request(video, privacy="public"), CREDENTIALS, lambda _p: None
    )
    states = [(c.answer or {})["data"]["status"] for c in fake.calls_to("status")]
    assert states == ["PROCESSING_UPLOAD"] * 3 + ["PUBLISH_COMPLETE"]
    assert sleeps == [2.0, 2.0, 2.0]
    assert fake.posts[0].privacy_level == "PUBLIC_TO_EVERYONE"


def test_polling_gives_up_retryably_and_the_next_attempt_polls_the_same_publish_id(
    fake: FakeTikTok, video: Path
) -> None:
    fake.processing_polls = 5
    saved: dict[str, Any] = {}
    with pytest.raises(ProviderError) as caught:
        _publisher(fake, poll_timeout_s=4.0).publish(_request(video), CREDENTIALS, saved.update)
    assert caught.value.retryable and "still PROCESSING_UPLOAD" in str(caught.value)

    post = _publisher(fake).publish(_request(video, progress=saved), CREDENTIALS, saved.update)
    assert len(fake.posts) == 1 and len(fake.calls_to("init")) == 1
    assert len(fake.calls_to("upload")) == 3 and post.post_id == str(fake.posts[0].post_id)


def test_a_5xx_during_the_chunk_upload_is_retried_without_resending_from_0(
    fake: FakeTikTok, video: Path
) -> None:
    fake.fail_once(503, on="upload", after=1)  # the second chunk fails once
    _publisher(fake).publish(_request(video), CREDENTIALS, lambda _p: None)

    assert [c.status for c in fake.calls_to("upload")] == [206, 503, 206, 201]
    assert _ranges(fake) == [
        f"bytes 0-{CHUNK - 1}/{SIZE}",
        f"bytes {CHUNK}-{2 * CHUNK - 1}/{SIZE}",
        f"bytes {CHUNK}-{2 * CHUNK - 1}/{SIZE}",
        f"bytes {2 * CHUNK}-{SIZE - 1}/{SIZE}",
    ]
    assert len(fake.posts) == 1 and fake.posts[0].video == video.read_bytes()


def _crashing(after: int, saved: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    """save_progress that keeps what it is given and dies on call number `after` + 1."""
    calls = 0

    def save(progress: dict[str, Any]) -> None:
        nonlocal calls
        calls += 1
        if calls > after:
            raise Crash(f"save_progress #{calls}")
        saved.update(progress)

    return save


def test_a_crash_after_init_resumes_at_the_byte_tiktok_has(fake: FakeTikTok, video: Path) -> None:
    saved: dict[str, Any] = {}
    # init saved, chunk 1 saved, then the process dies while saving chunk 2's progress.
    with pytest.raises(Crash):
        _publisher(fake).publish(_request(video), CREDENTIALS, _crashing(2, saved))
    assert saved["uploaded_chunks"] == 1  # TikTok in fact has two chunks

    post = _publisher(fake).publish(_request(video, progress=saved), CREDENTIALS, saved.update)

    assert len(fake.posts) == 1 and post.post_id == str(fake.posts[0].post_id)
    assert len(fake.calls_to("init")) == 1
    assert _ranges(fake) == [
        f"bytes 0-{CHUNK - 1}/{SIZE}",
        f"bytes {CHUNK}-{2 * CHUNK - 1}/{SIZE}",
        f"bytes {2 * CHUNK}-{SIZE - 1}/{SIZE}",  # only the missing chunk was sent on resume
    ]
    assert fake.posts[0].video == video.read_bytes()


def test_an_expired_upload_url_starts_over_with_a_new_publish_id(
    fake: FakeTikTok, video: Path
) -> None:
    saved: dict[str, Any] = {}
    with pytest.raises(Crash):
        _publisher(fake).publish(_request(video), CREDENTIALS, _crashing(2, saved))
    first_publish_id = saved["publish_id"]
    fake.expire_uploads()  # an hour later: TikTok dropped the half-done upload

    _publisher(fake).publish(_request(video, progress=saved), CREDENTIALS, saved.update)

    assert len(fake.calls_to("init")) == 2 and saved["publish_id"] != first_publish_id
    assert len(fake.posts) == 1 and fake.posts[0].publish_id == saved["publish_id"]


def test_a_lost_answer_to_the_last_chunk_is_reconciled_by_the_publish_id_status(
    fake: FakeTikTok, video: Path
) -> None:
    fake.lost_response_once()
    post = _publisher(fake).publish(_request(video), CREDENTIALS, lambda _p: None)

    # The retried last chunk meets a finished upload (404); the status says it is done.
    assert [c.status for c in fake.calls_to("upload")] == [206, 206, 502, 404]
    assert len(fake.posts) == 1 and post.post_id == str(fake.posts[0].post_id)
    assert len(fake.calls_to("init")) == 1


def test_find_uses_the_saved_publish_id_only(fake: FakeTikTok, video: Path) -> None:
    publisher = _publisher(fake)
    saved: dict[str, Any] = {}
    post = publisher.publish(_request(video), CREDENTIALS, saved.update)
    assert publisher.find(_request(video), CREDENTIALS) is None  # no search by caption
    assert publisher.find(_request(video, progress=saved), CREDENTIALS) == post


@pytest.mark.parametrize("how", ["revoked", "scope"])
def test_a_refused_token_asks_to_reconnect(fake: FakeTikTok, video: Path, how: str) -> None:
    if how == "revoked":
        fake.revoke_token()
    else:
        fake.fail_once("scope_not_authorized", on="creator_info")
    with pytest.raises(PublishFailure) as caught:
        _publisher(fake).publish(_request(video), CREDENTIALS, lambda _p: None)
    assert "reconnect the TikTok account" in str(caught.value) and RECONNECT in caught.value.reason
    assert len(fake.calls) == 1 and not fake.posts  # not retried: it will not get better


def test_429_waits_the_retry_after_tiktok_gives(fake: FakeTikTok, video: Path) -> None:
    fake.rate_limit_once(retry_after_s=7, on="init")  # 6 inits a minute per token
    sleeps = Sleeps()
    _publisher(fake, sleep=sleeps).publish(_request(video), CREDENTIALS, lambda _p: None)
    assert [c.status for c in fake.calls_to("init")] == [429, 200]
    assert sleeps[0] == 7.0 and len(fake.posts) == 1


def test_a_processing_failure_is_a_clear_publish_failure(fake: FakeTikTok, video: Path) -> None:
    fake.fail_processing("file_format_check_failed")
    with pytest.raises(PublishFailure) as caught:
        _publisher(fake).publish(_request(video), CREDENTIALS, lambda _p: None)
    assert "TikTok could not publish the video: file_format_check_failed" in str(caught.value)
    assert not fake.posts


def test_a_spam_risk_refusal_carries_tiktoks_message(fake: FakeTikTok, video: Path) -> None:
    fake.fail_once("spam_risk_too_many_posts", on="init")
    with pytest.raises(PublishFailure) as caught:
        _publisher(fake).publish(_request(video), CREDENTIALS, lambda _p: None)
    assert "spam_risk_too_many_posts" in str(caught.value)
    assert "TikTok says spam_risk_too_many_posts." in str(caught.value)
    assert len(fake.calls_to("init")) == 1


def test_a_video_longer_than_the_creator_may_post_is_refused_before_init(
    fake: FakeTikTok, video: Path
) -> None:
    fake.max_video_post_duration_sec = 60
    with pytest.raises(PublishFailure, match=r"at most 60 s.*max_video_post_duration_sec"):
        _publisher(fake).publish(_request(video, duration_s=75.0), CREDENTIALS, lambda _p: None)
    assert not fake.calls_to("init")


def test_inbox_mode_sends_only_the_file_and_ends_in_the_inbox(
    fake: FakeTikTok, video: Path
) -> None:
    post = _publisher(fake, inbox=True).publish(_request(video), CREDENTIALS, lambda _p: None)
    [init] = fake.calls_to("init")
    assert init.path == "/v2/post/publish/inbox/video/init/" and set(init.json or {}) == {
        "source_info"
    }
    assert not fake.calls_to("creator_info")
    assert fake.posts[0].inbox and post.post_id == fake.posts[0].publish_id


def test_the_caption_keeps_the_marker_within_2200_utf16_units() -> None:
    marker = publication_marker(TOPIC, "tiktok", "vf_demo")
    long_text = ("Octopuses 🐙 have three hearts. " * 80).strip()
    caption = tiktok_caption(long_text[:2150], marker)
    assert utf16_length(caption) <= 2200 and caption.endswith(f"\n\n#{marker}")
    assert tiktok_caption(f"Hearts #{marker}", marker) == f"Hearts #{marker}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_tokens_never_appear_in_errors_or_logs(
    fake: FakeTikTok, httpserver: HTTPServer, video: Path
) -> None:
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Keep(logging.DEBUG)
    httpx_logger = logging.getLogger("httpx")
    httpx_logger.addHandler(handler)
    old_level = httpx_logger.level
    httpx_logger.setLevel(logging.DEBUG)
    errors: list[BaseException] = []

    def attempt(publisher: TikTokPublisher) -> None:
        try:
            publisher.publish(_request(video), CREDENTIALS, lambda _p: None)
        except (ProviderError, PublishFailure) as exc:
            errors.append(exc)

    try:
        _publisher(fake).publish(_request(video), CREDENTIALS, lambda _p: None)  # logs URLs
        fake.fail_always(502)
        attempt(_publisher(fake, attempts=2))
        fake._fail_status = None
        fake.revoke_token()
        attempt(_publisher(fake))
        attempt(TikTokPublisher(f"http://127.0.0.1:{_free_port()}", attempts=2, sleep=Sleeps()))

        def slow(_request: Request) -> Response:
            time.sleep(0.5)
            return Response("{}", status=200, content_type="application/json")

        httpserver.clear()
        httpserver.expect_request("/v2/post/publish/creator_info/query/").respond_with_handler(slow)
        attempt(TikTokPublisher(fake.base_url, timeout_s=0.1, attempts=1))
    finally:
        httpx_logger.removeHandler(handler)
        httpx_logger.setLevel(old_level)

    assert len(errors) == 4 and "timed out" in str(errors[-1])
    upload_token = next(iter(fake.uploads.values())).upload_token
    for error in errors:
        text = "".join(traceback.format_exception(error))
        assert ACCESS_TOKEN not in text and upload_token not in text, text
    assert any("upload_token=***" in line for line in lines)  # httpx logged the upload URL...
    assert not any(ACCESS_TOKEN in line or upload_token in line for line in lines)  # masked


def test_metrics_map_the_video_query_20_ids_a_call(fake: FakeTikTok) -> None:
    ids = [str(7300000000000000000 + n) for n in range(1, 26)]
    for n, vid in enumerate(ids[:-1]):  # the last one was deleted: left out, not an error
        fake.metrics[vid] = {
            "view_count": 100 + n, "like_count": 10 + n, "comment_count": n, "share_count": 2 * n,
        }  # fmt: skip
    found = _publisher(fake).metrics([*ids, "v_pub_file~v2-1.123"], CREDENTIALS)

    queries = fake.calls_to("query")
    assert [len((q.json or {})["filters"]["video_ids"]) for q in queries] == [20, 5]
    assert queries[0].path == "/v2/video/query/"
    assert len(found) == 24
    first = found[0]
    assert (first.platform, first.post_id) == (Platform.TIKTOK, ids[0])
    assert (first.views, first.likes, first.comments, first.shares) == (100, 10, 0, 0)
    assert (found[3].views, found[3].shares, found[3].saves, found[3].watch_time_s) == (
        103, 6, None, None,
    )  # fmt: skip


def test_publish_once_with_a_ledger_crashing_mid_upload_and_at_the_lost_answer_posts_once(
    fake: FakeTikTok, video: Path
) -> None:
    ledger = PublicationLedger(sa.create_engine("sqlite://"))
    request = _request(video)
    publisher = _publisher(fake, attempts=1)
    fake.fail_once(503, on="upload", after=1)  # dies mid-upload (attempts=1: no retry)
    with pytest.raises(ProviderError):
        publish_once(ledger, publisher, request, CREDENTIALS)
    assert ledger.get(request.marker).progress["uploaded_chunks"] == 1
    fake.lost_response_once()  # then the upload completes but the answer is lost
    with pytest.raises(ProviderError):
        publish_once(ledger, publisher, request, CREDENTIALS)

    post = publish_once(ledger, publisher, request, CREDENTIALS)
    again = publish_once(ledger, publisher, request, CREDENTIALS)

    assert len(fake.posts) == 1 and len(fake.calls_to("init")) == 1
    assert post == again and post.post_id == str(fake.posts[0].post_id)
    assert ledger.get(request.marker).post_id == post.post_id
