"""InstagramPublisher against the fake Graph API and rupload host in tests/fakes/instagram.py:
the resumable Reels container (caption with the marker, share_to_feed, thumb_offset), the raw
upload with offset and file_size, resuming an upload at the byte Instagram has, container status
polling through several states, "media not ready" on publish, expired containers, a crash after
the container was made, a lost media_publish answer reconciled through the media list, 190 asking
to reconnect, rate limits (codes 4/17/32/613) honoured, processing errors, the daily publishing
limit, the token kept out of errors and logs, Reels insights, and `publish_once` with a ledger.

Not covered: the real graph.facebook.com, cover images from a public URL (we have none), and
whether Instagram likes our MP4.
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
from factory_core.publish_metadata import Platform, PostMetadata
from factory_core.publishing import PublishFailure, PublishRequest, publication_marker
from factory_resources.faults import ProviderError
from factory_resources.instagram_publisher import (
    DAILY_LIMIT,
    RECONNECT,
    InstagramPublisher,
    instagram_caption,
)
from factory_resources.publication_ledger import PublicationLedger, publish_once

from .fakes.instagram import ACCESS_TOKEN, IG_USER_ID, FakeInstagram

CREDENTIALS = {"access_token": ACCESS_TOKEN, "ig_user_id": IG_USER_ID, "refresh_token": None}
TEXT = "Why octopuses have three hearts: two pump blood through the gills, one through the body."
SIZE = 150_000
TOPIC = "demo/why-octopuses-have-three-hearts"


class Crash(Exception):
    """The process dies here (the test catches it instead)."""


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def fake(httpserver: HTTPServer) -> FakeInstagram:
    return FakeInstagram(httpserver)


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "final.mp4"
    path.write_bytes((b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 600)[:SIZE])
    return path


def _request(
    video: Path, text: str = TEXT, progress: dict[str, Any] | None = None
) -> PublishRequest:
    return PublishRequest(
        topic_key=TOPIC,
        platform=Platform.INSTAGRAM,
        account=IG_USER_ID,
        marker=publication_marker(TOPIC, "instagram", IG_USER_ID),
        video=video,
        thumbnail=video.with_name("cover.png"),  # not sent: Instagram wants a public cover URL
        metadata=PostMetadata(platform=Platform.INSTAGRAM, language=Language.EN, text=text),
        duration_s=21.6,
        progress=progress or {},
    )


def _publisher(fake: FakeInstagram, **config: Any) -> InstagramPublisher:
    settings: dict[str, Any] = {"poll_interval_s": 3.0, "sleep": Sleeps()}
    return InstagramPublisher(fake.base_url, fake.upload_base_url, **{**settings, **config})


def test_a_reel_is_created_uploaded_polled_and_published(fake: FakeInstagram, video: Path) -> None:
    saved: list[dict[str, Any]] = []
    request = _request(video)

    post = _publisher(fake).publish(request, CREDENTIALS, saved.append)

    [media] = fake.posts
    assert (post.platform, post.post_id, post.url) == (
        Platform.INSTAGRAM, media.id, media.permalink,
    )  # fmt: skip
    assert media.video == video.read_bytes()
    assert media.caption == f"{TEXT}\n\n#{request.marker}"
    assert [c.route for c in fake.calls] == [
        "create", "upload", "status", "status", "publish", "media",
    ]  # fmt: skip
    create = fake.calls_to("create")[0]
    assert create.path == f"/v21.0/{IG_USER_ID}/media"
    assert create.headers["Authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert {k: create.params[k] for k in ("upload_type", "media_type", "share_to_feed")} == {
        "upload_type": "resumable", "media_type": "REELS", "share_to_feed": "true",
    }  # fmt: skip
    assert create.params["thumb_offset"] == "1000" and "cover_url" not in create.params
    assert "access_token" not in create.params  # the token stays out of URLs
    upload = fake.calls_to("upload")[0]
    container = fake.containers[saved[0]["container_id"]]
    assert upload.path == f"/ig-api-upload/{container.id}"
    assert upload.headers["Authorization"] == f"OAuth {ACCESS_TOKEN}"
    assert upload.headers["Offset"] == "0"  # (werkzeug drops the `file_size` header)
    assert upload.body_size == SIZE
    assert fake.calls_to("publish")[0].params["creation_id"] == container.id
    assert saved == [{"container_id": container.id}, {"publishing": True}, {"media_id": media.id}]


def test_status_is_polled_through_several_states_and_not_ready_is_waited_out(
    fake: FakeInstagram, video: Path
) -> None:
    fake.processing_polls = 3
    fake.fail_once(400, code=9007, subcode=2207027, on="publish")  # finished, yet not ready
    sleeps = Sleeps()
    _publisher(fake, sleep=sleeps).publish(_request(video), CREDENTIALS, lambda _p: None)
    assert [c.route for c in fake.calls][1:7] == ["upload"] + ["status"] * 4 + ["publish"]
    assert [c.status for c in fake.calls_to("publish")] == [400, 200]
    assert sleeps == [3.0] * 4  # three IN_PROGRESS reads, one "not ready"
    assert len(fake.posts) == 1


def test_an_upload_cut_midway_resumes_at_the_byte_instagram_has(
    fake: FakeInstagram, video: Path
) -> None:
    fake.fail_once(502, on="upload", partial=True)  # half the body arrives, then the line drops
    _publisher(fake).publish(_request(video), CREDENTIALS, lambda _p: None)

    uploads = fake.calls_to("upload")
    assert [c.status for c in uploads] == [502, 200]
    assert [c.route for c in fake.calls][1:4] == ["upload", "offset", "upload"]
    assert uploads[1].headers["Offset"] == str(SIZE // 2)
    assert uploads[1].body_size == SIZE - SIZE // 2  # not re-sent from 0
    assert fake.posts[0].video == video.read_bytes()


def _crashing(on: str, saved: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    """save_progress that keeps what it is given and dies when asked to save `on`."""

    def save(progress: dict[str, Any]) -> None:
        if on in progress:
            raise Crash(on)
        saved.update(progress)

    return save


def test_a_crash_after_the_container_is_made_resumes_it_and_posts_once(
    fake: FakeInstagram, video: Path
) -> None:
    saved: dict[str, Any] = {}
    with pytest.raises(Crash):  # uploaded and finished; dies before publishing
        _publisher(fake).publish(_request(video), CREDENTIALS, _crashing("publishing", saved))
    assert set(saved) == {"container_id"}

    post = _publisher(fake).publish(_request(video, progress=saved), CREDENTIALS, saved.update)

    assert len(fake.posts) == 1 and post.post_id == fake.posts[0].id
    assert len(fake.calls_to("create")) == 1 and len(fake.calls_to("upload")) == 1
    assert saved["media_id"] == post.post_id


def test_a_crash_mid_upload_resumes_the_upload_of_the_saved_container(
    fake: FakeInstagram, video: Path
) -> None:
    fake.fail_once(502, on="upload", partial=True)
    saved: dict[str, Any] = {}
    with pytest.raises(ProviderError):
        _publisher(fake, attempts=1).publish(_request(video), CREDENTIALS, saved.update)

    _publisher(fake).publish(_request(video, progress=saved), CREDENTIALS, saved.update)

    assert len(fake.calls_to("create")) == 1 and len(fake.posts) == 1
    assert fake.calls_to("upload")[-1].headers["Offset"] == str(SIZE // 2)
    assert fake.posts[0].video == video.read_bytes()


def test_an_expired_container_is_replaced(fake: FakeInstagram, video: Path) -> None:
    saved: dict[str, Any] = {}
    with pytest.raises(Crash):
        _publisher(fake).publish(_request(video), CREDENTIALS, _crashing("publishing", saved))
    old = saved["container_id"]
    fake.expire_containers()  # a day later

    _publisher(fake).publish(_request(video, progress=saved), CREDENTIALS, saved.update)

    assert saved["container_id"] != old and len(fake.calls_to("create")) == 2
    assert len(fake.posts) == 1 and fake.posts[0].container_id == saved["container_id"]


def test_a_lost_publish_answer_is_reconciled_through_the_media_list(
    fake: FakeInstagram, video: Path
) -> None:
    fake.lost_response_once()
    saved: dict[str, Any] = {}
    post = _publisher(fake).publish(_request(video), CREDENTIALS, saved.update)

    assert len(fake.posts) == 1 and post.post_id == fake.posts[0].id
    assert len(fake.calls_to("publish")) == 1  # never published blindly again
    assert [c.route for c in fake.calls][-3:] == ["publish", "status", "list"]
    assert post.url == fake.posts[0].permalink and saved["media_id"] == post.post_id


def test_find_searches_the_media_list_only_once_publishing_was_attempted(
    fake: FakeInstagram, video: Path
) -> None:
    publisher = _publisher(fake)
    publisher.publish(_request(video), CREDENTIALS, lambda _p: None)
    for n in range(60):  # the post sinks past the first page of 50
        fake.posts.append(
            type(fake.posts[0])(f"1802{n:013d}", "c", f"other {n}", b"", "2025-01-01T00:00:00+0000")
        )
    calls = len(fake.calls)
    assert publisher.find(_request(video), CREDENTIALS) is None
    assert len(fake.calls) == calls  # no progress: nothing can exist, nothing is asked

    found = publisher.find(_request(video, progress={"publishing": True}), CREDENTIALS)
    assert found is not None and found.post_id == fake.posts[0].id
    assert found.published_at is not None
    assert [c.params.get("after") for c in fake.calls_to("list")] == [None, "50"]
    saved = {"media_id": "42", "permalink": "https://www.instagram.com/reel/x/"}
    assert publisher.find(_request(video, progress=saved), CREDENTIALS) is not None


def test_a_revoked_token_asks_to_reconnect(fake: FakeInstagram, video: Path) -> None:
    fake.revoke_token()
    with pytest.raises(PublishFailure) as caught:
        _publisher(fake).publish(_request(video), CREDENTIALS, lambda _p: None)
    assert "reconnect the Instagram account" in str(caught.value)
    assert RECONNECT in caught.value.reason and "code 190" in caught.value.reason
    assert len(fake.calls) == 1 and not fake.posts


def test_a_rate_limit_waits_the_time_instagram_gives(fake: FakeInstagram, video: Path) -> None:
    fake.rate_limit_once(minutes=2, on="create")
    sleeps = Sleeps()
    _publisher(fake, sleep=sleeps).publish(_request(video), CREDENTIALS, lambda _p: None)
    assert [c.status for c in fake.calls_to("create")] == [400, 200]
    assert sleeps[0] == 120.0 and len(fake.posts) == 1


@pytest.mark.parametrize("code", [17, 32, 613])
def test_other_rate_limit_codes_are_retried(fake: FakeInstagram, video: Path, code: int) -> None:
    fake.fail_once(400, code=code, on="status")
    _publisher(fake).publish(_request(video), CREDENTIALS, lambda _p: None)
    assert len(fake.posts) == 1 and fake.calls_to("status")[0].status == 400


def test_a_processing_error_is_a_clear_publish_failure(fake: FakeInstagram, video: Path) -> None:
    fake.fail_processing("Error: Video processing failed (2207026)")
    with pytest.raises(PublishFailure) as caught:
        _publisher(fake).publish(_request(video), CREDENTIALS, lambda _p: None)
    assert "Instagram could not process the video: Error: Video processing failed" in str(
        caught.value
    )
    assert not fake.posts and not fake.calls_to("publish")


def test_the_daily_publishing_limit_says_so(fake: FakeInstagram, video: Path) -> None:
    fake.reach_publishing_limit()
    with pytest.raises(PublishFailure) as caught:
        _publisher(fake).publish(_request(video), CREDENTIALS, lambda _p: None)
    assert DAILY_LIMIT in caught.value.reason and "50 API-published posts" in str(caught.value)
    assert len(fake.calls_to("publish")) == 1 and not fake.posts


def test_5xx_until_retries_run_out_is_retryable_and_nothing_is_posted(
    fake: FakeInstagram, video: Path
) -> None:
    fake.fail_always(503)
    with pytest.raises(ProviderError) as caught:
        _publisher(fake, attempts=3).publish(_request(video), CREDENTIALS, lambda _p: None)
    assert caught.value.retryable and caught.value.status == 503
    assert len(fake.calls) == 3 and not fake.posts


def test_the_caption_keeps_the_marker_within_2200_characters() -> None:
    marker = publication_marker(TOPIC, "instagram", IG_USER_ID)
    caption = instagram_caption("x" * 2200, marker)
    assert len(caption) == 2200 and caption.endswith(f"\n\n#{marker}")
    assert instagram_caption(f"Hearts #{marker}", marker) == f"Hearts #{marker}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_token_never_appears_in_errors_or_logs(
    fake: FakeInstagram, httpserver: HTTPServer, video: Path
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

    def attempt(publisher: InstagramPublisher) -> None:
        try:
            publisher.publish(_request(video), CREDENTIALS, lambda _p: None)
        except (ProviderError, PublishFailure) as exc:
            errors.append(exc)

    try:
        _publisher(fake).publish(_request(video), CREDENTIALS, lambda _p: None)  # logs URLs
        # A URL with the token in it (a paging `next` link, say) is masked in httpx's log.
        InstagramPublisher(fake.base_url)._send(
            "GET", f"{fake.base_url}/{IG_USER_ID}/media?access_token={ACCESS_TOKEN}", "x", "list"
        )
        fake.fail_always(500)
        attempt(_publisher(fake, attempts=2))
        fake._fail_status = None
        fake.revoke_token()
        attempt(_publisher(fake))
        port = _free_port()
        attempt(InstagramPublisher(f"http://127.0.0.1:{port}", attempts=2, sleep=Sleeps()))

        def slow(_request: Request) -> Response:
            time.sleep(0.5)
            return Response("{}", status=200, content_type="application/json")

        httpserver.clear()
        httpserver.expect_request(f"/v21.0/{IG_USER_ID}/media").respond_with_handler(slow)
        attempt(InstagramPublisher(fake.base_url, timeout_s=0.1, attempts=1))
    finally:
        httpx_logger.removeHandler(handler)
        httpx_logger.setLevel(old_level)

    assert len(errors) == 4 and "timed out" in str(errors[-1])
    for error in errors:
        text = "".join(traceback.format_exception(error))
        assert ACCESS_TOKEN not in text, text
    assert any("access_token=***" in line for line in lines)  # httpx logged it, masked
    assert not any(ACCESS_TOKEN in line for line in lines)


def test_metrics_map_reels_insights_with_watch_times_in_seconds(fake: FakeInstagram) -> None:
    fake.insights["18010000000000001"] = {
        "views": 1500, "reach": 1200, "likes": 90, "comments": 7, "shares": 12, "saved": 30,
        "ig_reels_avg_watch_time": 8450, "ig_reels_video_view_total_time": 12675000,
    }  # fmt: skip
    found = _publisher(fake).metrics(["18010000000000001", "18019999999999999"], CREDENTIALS)

    [metrics] = found  # the unknown (deleted) media is left out
    assert (metrics.platform, metrics.post_id) == (Platform.INSTAGRAM, "18010000000000001")
    assert (metrics.views, metrics.likes, metrics.comments, metrics.shares, metrics.saves) == (
        1500, 90, 7, 12, 30,
    )  # fmt: skip
    assert (metrics.avg_view_duration_s, metrics.watch_time_s) == (8.45, 12675.0)
    asked = fake.calls_to("insights")[0].params["metric"].split(",")
    assert {"views", "saved", "ig_reels_avg_watch_time", "ig_reels_video_view_total_time"} <= set(
        asked
    )


def test_publish_once_with_a_ledger_crashing_at_the_publish_step_posts_once(
    fake: FakeInstagram, video: Path
) -> None:
    ledger = PublicationLedger(sa.create_engine("sqlite://"))
    request = _request(video)
    # The publish answer is lost and retries run out: the ledger only knows "publishing".
    fake.lost_response_once()
    fake.fail_once(500, on="status", after=2)  # the status check after the lost answer fails
    with pytest.raises(ProviderError):
        publish_once(ledger, _publisher(fake, attempts=1), request, CREDENTIALS)
    assert ledger.get(request.marker).progress == {
        "container_id": fake.posts[0].container_id, "publishing": True,
    }  # fmt: skip

    post = publish_once(ledger, _publisher(fake), request, CREDENTIALS)
    again = publish_once(ledger, _publisher(fake), request, CREDENTIALS)

    assert len(fake.posts) == 1 and len(fake.calls_to("publish")) == 1
    assert post == again and post.post_id == fake.posts[0].id
    assert ledger.get(request.marker).post_id == post.post_id


def test_a_proxy_error_with_a_text_code_is_classified_by_status() -> None:
    # A gateway in front of the Graph API may answer with its own JSON: no crash, a 503 is
    # still a retryable error and a 400 a PublishFailure.
    import httpx

    from factory_resources.instagram_publisher import _raise_graph

    body = {"error": {"code": "UPSTREAM_DOWN", "message": "upstream unavailable"}}
    with pytest.raises(ProviderError) as busy:
        _raise_graph(httpx.Response(503, json=body), body, ACCESS_TOKEN, "publish")
    assert busy.value.retryable
    with pytest.raises(PublishFailure):
        _raise_graph(httpx.Response(400, json=body), body, ACCESS_TOKEN, "publish")
