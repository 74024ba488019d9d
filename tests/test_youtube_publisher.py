"""YouTubePublisher through google-api-python-client against the TLS fake in
tests/fakes/youtube.py: the resumable upload in 256 KiB chunks with every metadata field, a 5xx
or a dropped connection midway (status query, then the rest, never from 0), a crash after the
session was saved (a new publisher resumes it), a lost final answer and a one-chunk crash
reconciled by `find`, expired sessions, quotaExceeded, a revoked token, 429 with Retry-After,
a token refreshed mid-upload, thumbnails (re-encoded when too big, refused on unverified
channels), statistics and analytics, publish_once over a real ledger, and the tokens kept out
of every error and log line.

Not covered: the real googleapis.com, YouTube's processing of the file, quota accounting.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from PIL import Image
from pytest_httpserver import HTTPServer

from factory_core.models import Language
from factory_core.publish_metadata import Platform, PostMetadata, utf8_length
from factory_core.publishing import (
    PublicationState,
    PublishFailure,
    PublishRequest,
    publication_marker,
)
from factory_resources.faults import ProviderError
from factory_resources.publication_ledger import PublicationLedger, publish_once
from factory_resources.youtube_publisher import (
    QUOTA_USED_UP,
    YouTubePublisher,
    youtube_description,
)

from .fakes.youtube import (
    ACCESS_TOKEN,
    CLIENT_ID,
    CLIENT_SECRET,
    REFRESH_TOKEN,
    FakeYouTube,
    https_server,
)

KIB256 = 256 * 1024
VIDEO_SIZE = 3 * KIB256 + 12_345  # four chunks, the last a short one
TOPIC = "demo/why-octopuses-have-three-hearts"
ACCOUNT = "UCfakeChannel0123456789a"
MARKER = publication_marker(TOPIC, Platform.YOUTUBE, ACCOUNT)
TEXT = "Two hearts pump blood through the gills, one through the body.\n\n#Shorts #octopus"
NO_WAIT: Callable[[float], None] = lambda _s: None  # noqa: E731


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HTTPServer, Path]]:
    server, pem = https_server(tmp_path_factory.mktemp("tls"))
    yield server, pem
    server.stop()


@pytest.fixture
def fake(tls: tuple[HTTPServer, Path]) -> Iterator[FakeYouTube]:
    server, _pem = tls
    server.clear()
    yield FakeYouTube(server)
    server.clear()


@pytest.fixture
def pem(tls: tuple[HTTPServer, Path]) -> str:
    return str(tls[1])


@pytest.fixture
def credentials(fake: FakeYouTube) -> dict[str, Any]:
    return {
        "access_token": ACCESS_TOKEN,
        "refresh_token": REFRESH_TOKEN,
        "expires_at": (datetime.now(UTC) + timedelta(hours=1)).timestamp(),
        "token_uri": fake.token_uri,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "scopes": ["https://www.googleapis.com/auth/youtube.upload"],
    }


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "final.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(VIDEO_SIZE - 12))
    return path


@pytest.fixture
def cover(tmp_path: Path) -> Path:
    path = tmp_path / "cover.jpg"
    Image.new("RGB", (720, 1280), (200, 90, 30)).save(path, "JPEG", quality=85)
    return path


def _meta(**fields: Any) -> PostMetadata:
    values: dict[str, Any] = {
        "platform": Platform.YOUTUBE,
        "language": Language.EN,
        "title": "Why octopuses have three hearts",
        "text": TEXT,
        "tags": ["octopus", "marine biology"],
        "category_id": "28",
        "privacy": "public",
    }
    return PostMetadata(**{**values, **fields})


def _request(
    video: Path,
    cover: Path | None = None,
    progress: dict[str, Any] | None = None,
    **meta: Any,
) -> PublishRequest:
    return PublishRequest(
        topic_key=TOPIC,
        platform=Platform.YOUTUBE,
        account=ACCOUNT,
        marker=MARKER,
        video=video,
        thumbnail=cover,
        metadata=_meta(**meta),
        duration_s=42.0,
        progress=progress or {},
    )


def _publisher(fake: FakeYouTube, pem: str, **config: Any) -> YouTubePublisher:
    config.setdefault("sleep", NO_WAIT)
    return YouTubePublisher(fake.api_endpoint, ca_certs=pem, chunk_size=KIB256, **config)


def _chunk_starts(fake: FakeYouTube) -> list[int | str]:
    """Where each upload PUT began: a byte offset, or "?" for a status query."""
    starts: list[int | str] = []
    for call in fake.calls:
        if call.method == "PUT" and call.content_range:
            head = call.content_range.split()[1].split("/")[0]
            starts.append("?" if head == "*" else int(head.split("-")[0]))
    return starts


class CrashOn:
    """A save_progress that keeps what it is given and crashes on its n-th call, as a process
    killed right after the platform answered would."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.saved: list[dict[str, Any]] = []

    def __call__(self, progress: dict[str, Any]) -> None:
        if len(self.saved) + 1 == self.n:
            raise KeyboardInterrupt("killed")
        self.saved.append(progress)

    @property
    def merged(self) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for progress in self.saved:
            merged.update(progress)
        return merged


def test_a_scheduled_short_is_uploaded_with_every_field_and_its_thumbnail(
    fake: FakeYouTube, pem: str, credentials: dict[str, Any], video: Path, cover: Path
) -> None:
    at = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    request = _request(
        video, cover, privacy="private", publish_at=at, made_for_kids=True, language=Language.RU
    )
    saved: list[dict[str, Any]] = []

    post = _publisher(fake, pem).publish(request, credentials, saved.append)

    [made] = fake.videos
    assert (post.post_id, post.url, post.published_at) == (
        made.id, f"https://youtu.be/{made.id}", at,
    )  # fmt: skip
    assert made.data == video.read_bytes()
    snippet, status = made.snippet, made.status
    assert snippet["title"] == "Why octopuses have three hearts"
    assert snippet["description"] == f"{TEXT}\n\n#{MARKER}"
    assert snippet["tags"] == ["octopus", "marine biology"]
    assert (snippet["categoryId"], snippet["defaultLanguage"], snippet["defaultAudioLanguage"]) == (
        "28", "ru", "ru",
    )  # fmt: skip
    assert status["privacyStatus"] == "private"
    assert status["publishAt"] == at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert status["selfDeclaredMadeForKids"] is True
    assert status["containsSyntheticMedia"] is True
    assert made.params["notifySubscribers"] == "false"  # nothing to announce before publishAt
    assert made.thumbnail == cover.read_bytes() and made.thumbnail_type == "image/jpeg"
    assert _chunk_starts(fake) == [0, KIB256, 2 * KIB256, 3 * KIB256]
    uri = saved[0]["upload_uri"]
    assert "upload_id=" in uri and uri.startswith("https://127.0.0.1")
    assert [p.get("bytes") for p in saved[:3]] == [KIB256, 2 * KIB256, 3 * KIB256]
    assert saved[3:] == [{"video_id": made.id}, {"thumbnail": "set"}]


def test_a_public_post_notifies_and_a_thumbnail_over_2mb_is_reencoded(
    fake: FakeYouTube, pem: str, credentials: dict[str, Any], video: Path, tmp_path: Path
) -> None:
    big = tmp_path / "cover.png"
    noise = os.urandom(1080 * 1920 * 3)
    Image.frombytes("RGB", (1080, 1920), noise).save(big, compress_level=1)
    assert big.stat().st_size > 2 * 1024 * 1024

    _publisher(fake, pem).publish(_request(video, big), credentials, lambda _p: None)

    [made] = fake.videos
    assert made.status["privacyStatus"] == "public" and "publishAt" not in made.status
    assert made.params["notifySubscribers"] == "true"
    assert made.thumbnail is not None and len(made.thumbnail) <= 2 * 1024 * 1024
    with Image.open(io.BytesIO(made.thumbnail)) as thumb:
        assert thumb.format == "JPEG" and thumb.size[1] > thumb.size[0]


def test_a_5xx_midway_resumes_from_what_the_session_holds(
    fake: FakeYouTube, pem: str, credentials: dict[str, Any], video: Path
) -> None:
    fake.fail_chunk_once(1, status=503)

    post = _publisher(fake, pem).publish(_request(video), credentials, lambda _p: None)

    # The failed chunk, then the status query, then the same chunk: nothing resent from 0.
    assert _chunk_starts(fake) == [0, KIB256, "?", KIB256, 2 * KIB256, 3 * KIB256]
    assert [c.status for c in fake.calls if c.content_range == f"bytes */{VIDEO_SIZE}"] == [308]
    assert [v.id for v in fake.videos] == [post.post_id]
    assert fake.videos[0].data == video.read_bytes()


def test_a_dropped_connection_midway_resumes(
    fake: FakeYouTube, pem: str, credentials: dict[str, Any], video: Path
) -> None:
    # Twice: httplib2 re-sends once by itself, the second drop reaches the publisher.
    fake.drop_connection_on_chunk(2, times=2)

    _publisher(fake, pem).publish(_request(video), credentials, lambda _p: None)

    assert _chunk_starts(fake) == [0, KIB256, 2 * KIB256, 2 * KIB256, "?", 3 * KIB256]
    assert len(fake.videos) == 1 and fake.videos[0].data == video.read_bytes()


def test_a_crash_after_the_session_was_saved_is_resumed_by_a_new_publisher(
    fake: FakeYouTube, pem: str, credentials: dict[str, Any], video: Path
) -> None:
    crash = CrashOn(2)  # saved once (session + first chunk), killed after the second chunk
    with pytest.raises(KeyboardInterrupt):
        _publisher(fake, pem).publish(_request(video), credentials, crash)
    assert crash.merged["bytes"] == KIB256 and not fake.videos
    before = len(fake.calls)

    again: list[dict[str, Any]] = []
    post = _publisher(fake, pem).publish(
        _request(video, progress=crash.merged), credentials, again.append
    )

    resumed = fake.calls[before:]
    assert not any(c.method == "POST" for c in resumed)  # no new session
    # The session held two chunks although only one was saved: it says so, and we go on.
    assert _chunk_starts(fake)[2:] == ["?", 2 * KIB256, 3 * KIB256]
    assert again[0]["bytes"] == 2 * KIB256
    assert [v.id for v in fake.videos] == [post.post_id] and len(fake.sessions) == 1
    assert fake.videos[0].data == video.read_bytes()


@pytest.mark.parametrize("attempts", [1, 5])
def test_a_lost_final_answer_is_reconciled_without_a_second_video(
    fake: FakeYouTube, pem: str, credentials: dict[str, Any], video: Path, attempts: int
) -> None:
    fake.lost_final_response_once()
    saved: list[dict[str, Any]] = []
    publisher = _publisher(fake, pem, attempts=attempts)
    if attempts == 1:
        with pytest.raises(ProviderError) as caught:
            publisher.publish(_request(video), credentials, saved.append)
        assert caught.value.retryable and caught.value.status == 502
        progress = {k: v for p in saved for k, v in p.items()}
        found = publisher.find(_request(video, progress=progress), credentials)
    else:  # within the call: the status query answers with the video
        found = publisher.publish(_request(video), credentials, saved.append)
    assert len(fake.videos) == 1 and found is not None and found.post_id == fake.videos[0].id
    assert _chunk_starts(fake)[-1] == "?"


def test_find_searches_the_uploads_by_marker_when_nothing_was_saved(
    fake: FakeYouTube, pem: str, credentials: dict[str, Any], tmp_path: Path
) -> None:
    small = tmp_path / "short.mp4"
    small.write_bytes(os.urandom(100_000))  # one chunk: the session opens and ends in one call
    publisher = _publisher(fake, pem)
    with pytest.raises(KeyboardInterrupt):
        publisher.publish(_request(small), credentials, CrashOn(1))
    [made] = fake.videos
    fake.add_old_videos(3)
    assert publisher.find(_request(small), credentials) is not None

    fake.add_old_videos(60)  # now on the second page of the uploads playlist
    found = publisher.find(_request(small), credentials)
    assert found is not None and found.post_id == made.id
    pages = [c.query.get("pageToken") for c in fake.calls if c.path.endswith("playlistItems")]
    assert pages[-2:] == [None, "p50"]

    fake.add_old_videos(200)  # past the 200 most recent: not looked for
    assert publisher.find(_request(small), credentials) is None
    assert publisher.find(_request(small, progress={"video_id": "abc"}), credentials) is not None


def test_an_expired_session_is_searched_for_then_started_again(
    fake: FakeYouTube, pem: str, credentials: dict[str, Any], video: Path
) -> None:
    crash = CrashOn(2)
    with pytest.raises(KeyboardInterrupt):
        _publisher(fake, pem).publish(_request(video), credentials, crash)
    fake.expire_session()

    saved: list[dict[str, Any]] = []
    post = _publisher(fake, pem).publish(
        _request(video, progress=crash.merged), credentials, saved.append
    )

    assert any(c.path.endswith("/channels") for c in fake.calls)  # looked before re-uploading
    assert len(fake.sessions) == 2 and [v.id for v in fake.videos] == [post.post_id]
    assert saved[0]["upload_uri"] != crash.merged["upload_uri"]
    assert fake.videos[0].data == video.read_bytes()


def test_a_session_expiring_midway_restarts_in_a_new_one(
    fake: FakeYouTube, pem: str, credentials: dict[str, Any], video: Path
) -> None:
    fake.expire_session(on_chunk=2)
    post = _publisher(fake, pem).publish(_request(video), credentials, lambda _p: None)
    assert len(fake.sessions) == 2 and [v.id for v in fake.videos] == [post.post_id]
    assert _chunk_starts(fake) == [0, KIB256, 2 * KIB256, 0, KIB256, 2 * KIB256, 3 * KIB256]


def test_quota_exceeded_is_a_clear_error_that_is_not_retried(
    fake: FakeYouTube, pem: str, credentials: dict[str, Any], video: Path
) -> None:
    fake.fail_next(403, "quotaExceeded")
    saved: list[dict[str, Any]] = []
    with pytest.raises(ProviderError) as caught:
        _publisher(fake, pem).publish(_request(video), credentials, saved.append)
    error = caught.value
    assert (error.provider, error.status, error.retryable) == ("youtube", 403, False)
    assert "midnight Pacific time" in str(error) and QUOTA_USED_UP in error.reason
    assert len(fake.calls) == 1 and not saved and not fake.videos


@pytest.mark.parametrize("refresh_token", [REFRESH_TOKEN, None])
def test_a_revoked_token_asks_to_reconnect_the_account(
    fake: FakeYouTube,
    pem: str,
    credentials: dict[str, Any],
    video: Path,
    refresh_token: str | None,
) -> None:
    fake.revoke_token()
    with pytest.raises(PublishFailure) as caught:
        _publisher(fake, pem).publish(
            _request(video), {**credentials, "refresh_token": refresh_token}, lambda _p: None
        )
    assert caught.value.platform is Platform.YOUTUBE
    assert "reconnect the YouTube account" in caught.value.reason
    refreshed = [c.status for c in fake.calls if c.path == "/token"]
    assert refreshed == ([400] if refresh_token else [])  # google-auth tried, Google refused
    assert not fake.videos


def test_a_busy_token_endpoint_is_retryable_not_a_reconnect(
    fake: FakeYouTube, pem: str, credentials: dict[str, Any], video: Path
) -> None:
    # The access token has run out and Google's token endpoint answers 503 to every try of
    # google-auth: the grant is fine, so the caller must retry later, not ask to reconnect.
    fake.token_endpoint_busy(times=10)
    expired = {**credentials, "access_token": "ya29.expired", "expires_at": 1.0}
    with pytest.raises(ProviderError) as caught:
        _publisher(fake, pem, attempts=1).publish(_request(video), expired, lambda _p: None)
    assert caught.value.retryable and "reconnect" not in str(caught.value)
    assert {c.status for c in fake.calls if c.path == "/token"} == {503}
    assert not fake.videos


def test_a_token_expiring_midway_is_refreshed_and_the_chunk_sent_whole(
    fake: FakeYouTube, pem: str, credentials: dict[str, Any], video: Path
) -> None:
    fake.expire_access_token(on_chunk=1)
    _publisher(fake, pem).publish(_request(video), credentials, lambda _p: None)
    puts = [(c.content_range, c.size, c.status) for c in fake.calls if c.method == "PUT"]
    second = f"bytes {KIB256}-{2 * KIB256 - 1}/{VIDEO_SIZE}"
    assert puts[1:3] == [(second, KIB256, 401), (second, KIB256, 308)]
    assert [c.status for c in fake.calls if c.path == "/token"] == [200]
    assert len(fake.videos) == 1 and fake.videos[0].data == video.read_bytes()


def test_429_is_retried_after_the_time_youtube_asks(
    fake: FakeYouTube, pem: str, credentials: dict[str, Any], video: Path
) -> None:
    waits: list[float] = []
    fake.fail_next(429, "rateLimitExceeded", retry_after="7")
    _publisher(fake, pem, sleep=waits.append).publish(_request(video), credentials, lambda _p: None)
    assert waits == [7.0]
    assert [c.status for c in fake.calls[:2]] == [429, 200] and len(fake.videos) == 1


def test_5xx_until_attempts_run_out_is_a_retryable_error(
    fake: FakeYouTube, pem: str, credentials: dict[str, Any], video: Path
) -> None:
    fake.fail_next(503, "backendError", times=3)
    with pytest.raises(ProviderError) as caught:
        _publisher(fake, pem, attempts=3).publish(_request(video), credentials, lambda _p: None)
    assert caught.value.retryable and caught.value.status == 503
    assert "Backend Error" in str(caught.value) and len(fake.calls) == 3


def test_metadata_youtube_refuses_is_a_publish_failure(
    fake: FakeYouTube, pem: str, credentials: dict[str, Any], video: Path
) -> None:
    with pytest.raises(PublishFailure) as caught:
        _publisher(fake, pem).publish(
            _request(video, category_id="99"), credentials, lambda _p: None
        )
    assert "invalidCategoryId" in caught.value.reason and "HTTP 400" in caught.value.reason
    assert len(fake.calls) == 1


def test_a_publish_time_in_the_past_fails_before_any_upload(
    fake: FakeYouTube, pem: str, credentials: dict[str, Any], video: Path
) -> None:
    past = datetime.now(UTC) - timedelta(minutes=5)
    with pytest.raises(PublishFailure, match="in the past"):
        _publisher(fake, pem).publish(
            _request(video, privacy="private", publish_at=past), credentials, lambda _p: None
        )
    assert not fake.calls


def test_a_refused_thumbnail_does_not_fail_the_post(
    fake: FakeYouTube,
    pem: str,
    credentials: dict[str, Any],
    video: Path,
    cover: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake.unverified_channel()
    saved: list[dict[str, Any]] = []
    with caplog.at_level(logging.WARNING):
        post = _publisher(fake, pem).publish(_request(video, cover), credentials, saved.append)
    assert [v.id for v in fake.videos] == [post.post_id] and fake.videos[0].thumbnail is None
    assert saved[-1]["thumbnail"].startswith("not set:") and "HTTP 403" in saved[-1]["thumbnail"]
    assert any("without its custom thumbnail" in r.getMessage() for r in caplog.records)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_tokens_never_appear_in_errors_or_logs(
    fake: FakeYouTube,
    pem: str,
    credentials: dict[str, Any],
    video: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    errors: list[BaseException] = []

    def attempt(publisher: YouTubePublisher) -> None:
        try:
            publisher.publish(_request(video), credentials, lambda _p: None)
        except (ProviderError, PublishFailure) as exc:
            errors.append(exc)

    with caplog.at_level(logging.DEBUG):
        fake.fail_chunk_once(1)
        _publisher(fake, pem).publish(_request(video), credentials, lambda _p: None)
        fake.fail_next(403, "quotaExceeded")
        attempt(_publisher(fake, pem))
        fake.fail_next(500, times=2)
        attempt(_publisher(fake, pem, attempts=2))
        attempt(
            YouTubePublisher(
                f"https://127.0.0.1:{_free_port()}/", ca_certs=pem, attempts=2, sleep=NO_WAIT
            )
        )
        fake.revoke_token()
        attempt(_publisher(fake, pem))

    assert len(errors) == 4
    assert "reconnect the YouTube account" in str(errors[-1])
    assert isinstance(errors[2], ProviderError) and errors[2].retryable
    logs = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert "Refreshing credentials" in logs  # google-auth did log around the refresh...
    for secret in (ACCESS_TOKEN, REFRESH_TOKEN, CLIENT_SECRET):
        assert secret not in logs  # ...without a token
        for error in errors:
            text = "".join(traceback.format_exception(error))
            assert secret not in text and secret not in repr(error), text


def test_metrics_come_from_statistics_and_analytics(
    fake: FakeYouTube, pem: str, credentials: dict[str, Any]
) -> None:
    old = fake.add_old_videos(60)
    old[0].statistics = {"viewCount": 1200, "likeCount": 80, "commentCount": 7}
    old[0].analytics = {"estimatedMinutesWatched": 30, "averageViewDuration": 14, "shares": 5}
    old[59].statistics = {"viewCount": 3}
    ids = [v.id for v in old] + ["deletedVid1"]

    plain = _publisher(fake, pem).metrics(ids, credentials)
    assert len(plain) == 60 and "deletedVid1" not in {m.post_id for m in plain}
    first = plain[0]
    assert (first.platform, first.views, first.likes, first.comments) == (
        Platform.YOUTUBE, 1200, 80, 7,
    )  # fmt: skip
    assert first.watch_time_s is None and first.shares is None  # not asked for
    lists = [c for c in fake.calls if c.path == "/youtube/v3/videos"]
    assert [len(c.query["id"].split(",")) for c in lists] == [50, 11]

    with_analytics = _publisher(fake, pem, analytics_endpoint=fake.api_endpoint)
    rich = with_analytics.metrics([old[0].id, old[59].id], credentials)
    assert (rich[0].watch_time_s, rich[0].avg_view_duration_s, rich[0].shares) == (1800.0, 14.0, 5)
    assert rich[1].views == 3 and rich[1].watch_time_s is None  # no analytics row yet
    [report] = [c for c in fake.calls if c.path == "/v2/reports"]
    assert report.query["filters"] == f"video=={old[0].id},{old[59].id}"
    assert report.query["ids"] == "channel==MINE" and report.query["dimensions"] == "video"

    fake.analytics_authorized = False  # the analytics scope was not granted
    refused = with_analytics.metrics([old[0].id], credentials)
    assert refused[0].views == 1200 and refused[0].watch_time_s is None


@pytest.mark.parametrize("crash", ["lost final answer", "failed chunk"])
def test_publish_once_after_a_crash_makes_exactly_one_video(
    fake: FakeYouTube, pem: str, credentials: dict[str, Any], video: Path, crash: str
) -> None:
    ledger = PublicationLedger(sa.create_engine("sqlite://"))
    request = _request(video)
    if crash == "lost final answer":
        fake.lost_final_response_once()
    else:
        fake.fail_chunk_once(2)
    with pytest.raises(ProviderError):
        publish_once(ledger, _publisher(fake, pem, attempts=1), request, credentials)
    row = ledger.get(MARKER)
    assert row.state is PublicationState.UPLOADING and row.progress["upload_uri"]

    post = publish_once(ledger, _publisher(fake, pem), request, credentials)

    assert [v.id for v in fake.videos] == [post.post_id]
    assert ledger.get(MARKER).state is PublicationState.PUBLISHED
    assert [c.method for c in fake.calls].count("POST") == 1  # one session, never a second
    assert 0 not in _chunk_starts(fake)[1:]  # and no byte sent twice from the start
    again = publish_once(ledger, _publisher(fake, pem), request, credentials)
    assert again.post_id == post.post_id and len(fake.videos) == 1


def test_the_description_carries_the_marker_within_5000_bytes() -> None:
    assert youtube_description("Hello", MARKER) == f"Hello\n\n#{MARKER}"
    already = f"Hello #{MARKER}"
    assert youtube_description(already, MARKER) == already
    long = "Осьминоги " * 600  # 2 bytes a letter: ~11 kB
    text = youtube_description(long, MARKER)
    assert utf8_length(text) <= 5000 and text.endswith(f"\n\n#{MARKER}")
    tags = " ".join(f"#t{i}" for i in range(60))
    assert youtube_description(tags, MARKER).endswith(f"\n\n{MARKER}")  # a 61st hashtag: no


def test_chunk_size_must_be_a_multiple_of_256_kib() -> None:
    with pytest.raises(ValueError, match="multiple"):
        YouTubePublisher(chunk_size=1_000_000)
