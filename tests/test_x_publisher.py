"""XPublisher against the fake X API v2 in tests/fakes/x_api.py: the chunked upload (segments,
sizes, the 5 MB cap), processing polled as X's check_after_secs says, the post with the marker
within 280 weighted characters; resuming after a crash at each step from the saved progress;
a lost post answer and X's duplicate refusal reconciled through the account's timeline; expired
media uploaded again; 401, 429 (x-rate-limit-reset), 5xx and failed processing; the token kept
out of errors and logs; public metrics; and publish_once with a real sqlite ledger.

Not covered: the real api.x.com (its exact texts for expired media and long posts are [U] in
providers.md), and whether X's processing accepts our MP4.
"""

from __future__ import annotations

import json
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
from factory_core.publish_metadata import Platform, PostMetadata, x_weighted_length
from factory_core.publishing import (
    PublicationState,
    PublishFailure,
    PublishRequest,
    publication_marker,
)
from factory_resources.faults import ProviderError
from factory_resources.publication_ledger import PublicationLedger, publish_once
from factory_resources.x_publisher import RECONNECT, XPublisher, x_post_text

from .fakes.x_api import USER, USER_TOKEN, FakeX, Post

CREDENTIALS = {"access_token": USER_TOKEN, "refresh_token": None, "scopes": ["tweet.write"]}
TEXT = "Why octopuses have three hearts: two for the gills, one for the body.\n\n#octopus #biology"
TOPIC = "demo/why-octopuses-have-three-hearts"
CHUNK = 64 * 1024
VIDEO_BYTES = 2 * CHUNK + 22_000  # three segments: 64 KiB, 64 KiB, 22 000 bytes
NO_WAIT: Callable[[float], None] = lambda _s: None  # noqa: E731


class Crash(Exception):
    """The process dies here (the test catches it instead)."""


@pytest.fixture
def fake(httpserver: HTTPServer) -> FakeX:
    return FakeX(httpserver)


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "final.mp4"
    body = bytes(range(256)) * (VIDEO_BYTES // 256 + 1)
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + body[: VIDEO_BYTES - 12])
    return path


def _request(
    video: Path, text: str = TEXT, progress: dict[str, Any] | None = None
) -> PublishRequest:
    return PublishRequest(
        topic_key=TOPIC,
        platform=Platform.X,
        account=USER["username"],
        marker=publication_marker(TOPIC, "x", USER["username"]),
        video=video,
        metadata=PostMetadata(platform=Platform.X, language=Language.EN, text=text),
        duration_s=21.6,
        progress=progress or {},
    )


def _publisher(fake: FakeX, **config: Any) -> XPublisher:
    config.setdefault("sleep", NO_WAIT)
    config.setdefault("chunk_size", CHUNK)
    return XPublisher(base_url=fake.base_url, **config)


class Progress:
    """save_progress that merges like the ledger does, optionally dying at a chosen save."""

    def __init__(self, crash_on: str | None = None, *, kept: bool = True) -> None:
        self.merged: dict[str, Any] = {}
        self.saves: list[dict[str, Any]] = []
        self.crash_on = crash_on
        self.kept = kept  # False: the process died before this save reached the ledger

    def __call__(self, update: dict[str, Any]) -> None:
        crash = self.crash_on is not None and update.get(self.crash_on) not in (None, False, 0)
        if crash and not self.kept:
            self.crash_on = None
            raise Crash(f"before saving {update}")
        self.saves.append(dict(update))
        self.merged.update(update)
        if crash:
            self.crash_on = None
            raise Crash(f"after saving {update}")


def test_a_video_is_uploaded_in_segments_processed_and_posted_with_the_marker(
    fake: FakeX, video: Path
) -> None:
    waits: list[float] = []
    progress = Progress()
    request = _request(video)

    post = _publisher(fake, sleep=waits.append).publish(request, CREDENTIALS, progress)

    [sent] = fake.posts
    assert (post.platform, post.post_id) == (Platform.X, sent.id)
    assert post.url == f"https://x.com/i/web/status/{sent.id}"
    # The marker joins the hashtag line, and the whole text stays within X's 280.
    assert sent.text == f"{TEXT} #{request.marker}"
    assert x_weighted_length(sent.text) <= 280
    [media] = fake.media.values()
    assert sent.media_ids == [media.id]
    assert (media.media_type, media.category, media.total_bytes) == (
        "video/mp4",
        "amplify_video",
        VIDEO_BYTES,
    )
    assert media.data == video.read_bytes()
    assert [len(media.segments[i]) for i in range(3)] == [CHUNK, CHUNK, 22_000]
    assert fake.appended() == [0, 1, 2]
    assert fake.routes() == [
        "initialize", "append", "append", "append", "finalize",
        "status", "status", "status", "tweet",
    ]  # fmt: skip
    assert waits == [1, 1, 1]  # pending, in_progress, in_progress: each says check after 1 s
    assert [set(s) for s in progress.saves][1:] == [
        {"segments_done"}, {"segments_done"}, {"segments_done"}, {"finalized"}, {"posting"},
        {"tweet_id"},
    ]  # fmt: skip
    first = progress.saves[0]
    assert first["media_id"] == media.id and first["segments_done"] == 0
    assert first["media_expires_at"] == pytest.approx(time.time() + 86400, abs=60)
    assert progress.merged["tweet_id"] == sent.id


def test_processing_is_polled_through_its_states_as_check_after_secs_says(
    fake: FakeX, video: Path
) -> None:
    fake.processing_polls, fake.check_after_secs = 4, 3
    waits: list[float] = []
    _publisher(fake, sleep=waits.append).publish(_request(video), CREDENTIALS, Progress())

    [media] = fake.media.values()
    assert media.history == ["pending", *["in_progress"] * 4, "succeeded"]
    assert waits == [3] * 5
    assert len(fake.posts) == 1


def test_processing_longer_than_poll_timeout_is_retryable_and_resumes_by_polling_only(
    fake: FakeX, video: Path
) -> None:
    fake.processing_polls = 8
    progress = Progress()
    with pytest.raises(ProviderError) as caught:
        _publisher(fake, poll_timeout_s=4).publish(_request(video), CREDENTIALS, progress)
    assert caught.value.retryable and "still in_progress" in str(caught.value)
    assert not fake.posts and progress.merged["finalized"] is True
    before = len(fake.calls)

    _publisher(fake).publish(_request(video, progress=progress.merged), CREDENTIALS, progress)

    assert set(fake.routes()[before:]) == {"status", "tweet"}  # no new upload, no FINALIZE
    assert len(fake.posts) == 1 and len(fake.media) == 1


def test_a_5xx_on_an_append_resends_only_that_segment(fake: FakeX, video: Path) -> None:
    fake.fail_once(503, route="append", skip=1)
    _publisher(fake).publish(_request(video), CREDENTIALS, Progress())

    appends = [(c.segment_index, c.status) for c in fake.calls if c.route == "append"]
    assert appends == [(0, 200), (None, 503), (1, 200), (2, 200)]
    [media] = fake.media.values()
    assert media.data == video.read_bytes() and len(fake.posts) == 1


@pytest.mark.parametrize(
    ("crash_on", "kept", "resumed_routes"),
    [
        ("media_id", True, ["append"] * 3 + ["finalize"] + ["status"] * 3 + ["tweet"]),
        ("segments_done", True, ["append"] * 2 + ["finalize"] + ["status"] * 3 + ["tweet"]),
        ("finalized", True, ["status"] * 3 + ["tweet"]),
        # The ledger holds `posting`: find() and publish() both search the timeline first.
        ("posting", True, ["me", "timeline", "me", "timeline", "status", "tweet"]),
        # X posted, the tweet_id never reached the ledger: the timeline finds the post.
        ("tweet_id", False, ["me", "timeline"]),
    ],
)
def test_a_crash_after_each_step_resumes_with_one_media_id_and_one_post(
    fake: FakeX, video: Path, crash_on: str, kept: bool, resumed_routes: list[str]
) -> None:
    progress = Progress(crash_on, kept=kept)
    with pytest.raises(Crash):
        _publisher(fake).publish(_request(video), CREDENTIALS, progress)
    before = len(fake.calls)

    # A fresh process: a new publisher, the request carrying what the ledger saved.
    again = _request(video, progress=progress.merged)
    publisher = _publisher(fake)
    post = publisher.find(again, CREDENTIALS) or publisher.publish(again, CREDENTIALS, progress)

    assert fake.routes()[before:] == resumed_routes
    assert len(fake.media) == 1 and len(fake.posts) == 1
    assert post.post_id == fake.posts[0].id
    assert fake.appended() == [0, 1, 2]  # no segment sent twice


def test_a_lost_post_answer_is_reconciled_by_the_timeline_without_a_duplicate(
    fake: FakeX, video: Path
) -> None:
    fake.lost_response_once()  # X posted, then a 502 hid it
    post = _publisher(fake).publish(_request(video), CREDENTIALS, Progress())

    assert len(fake.posts) == 1 and post.post_id == fake.posts[0].id
    tail = fake.routes()[fake.routes().index("tweet") :]
    assert tail == ["tweet", "me", "timeline"]  # the retry looked before posting again
    assert [c.query for c in fake.calls if c.route == "timeline"] == [{"max_results": "20"}]


def test_x_refusing_a_duplicate_means_our_marked_post_exists(fake: FakeX, video: Path) -> None:
    first = _publisher(fake).publish(_request(video), CREDENTIALS, Progress())
    # The progress was lost (say, a restored database): the same marked text is sent again.
    again = _publisher(fake).publish(_request(video), CREDENTIALS, Progress())

    assert again.post_id == first.post_id and len(fake.posts) == 1
    refused = [c for c in fake.calls if c.route == "tweet"][-1]
    assert refused.status == 403
    assert fake.routes()[-2:] == ["me", "timeline"]


def test_a_duplicate_not_in_the_latest_posts_is_retryable_not_a_second_post(
    fake: FakeX, video: Path
) -> None:
    first = _publisher(fake).publish(_request(video), CREDENTIALS, Progress())
    for n in range(20):  # the owner posted 20 times since: our post is past the lookback
        fake.posts.append(Post(f"19{n:017d}", f"other post {n}", [], USER["id"], time.time()))
    with pytest.raises(ProviderError) as caught:
        _publisher(fake, attempts=2).publish(_request(video), CREDENTIALS, Progress())
    assert caught.value.retryable and "duplicate" in str(caught.value)
    assert [p.id for p in fake.posts].count(first.post_id) == 1 and len(fake.posts) == 21


def test_expired_saved_media_starts_the_upload_over(fake: FakeX, video: Path) -> None:
    progress = Progress("segments_done")
    with pytest.raises(Crash):
        _publisher(fake).publish(_request(video), CREDENTIALS, progress)
    stale = {**progress.merged, "media_expires_at": time.time() - 1}

    post = _publisher(fake).publish(_request(video, progress=stale), CREDENTIALS, progress)

    assert len(fake.media) == 2 and len(fake.posts) == 1
    assert fake.posts[0].media_ids == [progress.merged["media_id"]] != [stale["media_id"]]
    assert post.post_id == fake.posts[0].id


def test_media_x_forgot_before_its_expiry_is_uploaded_again(fake: FakeX, video: Path) -> None:
    progress = Progress("segments_done")
    with pytest.raises(Crash):
        _publisher(fake).publish(_request(video), CREDENTIALS, progress)
    fake.expire_media(progress.merged["media_id"])  # the client still thinks it is valid

    _publisher(fake).publish(_request(video, progress=progress.merged), CREDENTIALS, progress)

    refused = [c for c in fake.calls if c.status == 400]
    assert [c.route for c in refused] == ["append"]
    assert len(fake.media) == 2 and len(fake.posts) == 1
    assert fake.media[fake.posts[0].media_ids[0]].data == video.read_bytes()


@pytest.mark.parametrize("how", ["revoked", "wrong token"])
def test_401_asks_to_reconnect_the_x_account(fake: FakeX, video: Path, how: str) -> None:
    credentials = dict(CREDENTIALS)
    if how == "revoked":
        fake.revoke_token()
    else:
        credentials["access_token"] = "someOtherUserToken0123456789abcdef"
    with pytest.raises(PublishFailure) as caught:
        _publisher(fake).publish(_request(video), credentials, Progress())
    assert caught.value.platform is Platform.X
    assert "reconnect the X account" in str(caught.value) and RECONNECT in caught.value.reason
    assert "HTTP 401" in caught.value.reason
    assert len(fake.calls) == 1  # not retried: it will not get better by itself


def test_no_access_token_asks_to_reconnect(fake: FakeX, video: Path) -> None:
    with pytest.raises(PublishFailure, match="reconnect the X account"):
        _publisher(fake).publish(_request(video), {"access_token": ""}, Progress())
    assert not fake.calls


def test_429_waits_until_x_rate_limit_reset(fake: FakeX, video: Path) -> None:
    fake.rate_limit_once(reset_in_s=30, route="initialize")
    waits: list[float] = []
    _publisher(fake, sleep=waits.append).publish(_request(video), CREDENTIALS, Progress())

    first = fake.calls[0]
    assert (first.route, first.status) == ("initialize", 429)
    assert 28.5 < waits[0] <= 30  # reset (epoch seconds) minus now, not a backoff guess
    assert len(fake.media) == 1 and len(fake.posts) == 1


def test_5xx_until_retries_run_out_is_a_clear_retryable_error(fake: FakeX, video: Path) -> None:
    for _ in range(3):
        fake.fail_once(500, route="finalize")
    progress = Progress()
    with pytest.raises(ProviderError) as caught:
        _publisher(fake, attempts=3).publish(_request(video), CREDENTIALS, progress)
    error = caught.value
    assert (error.provider, error.status, error.retryable) == ("x", 500, True)
    assert "FINALIZE" in str(error) and "Internal Server Error" in str(error)
    assert progress.merged["segments_done"] == 3 and not fake.posts


def test_failed_processing_is_a_clear_publish_failure(fake: FakeX, video: Path) -> None:
    fake.fail_processing = "Unsupported video codec: please use H.264"
    progress = Progress()
    with pytest.raises(PublishFailure) as caught:
        _publisher(fake).publish(_request(video), CREDENTIALS, progress)
    reason = caught.value.reason
    assert "X could not process the video" in reason
    assert "Unsupported video codec: please use H.264" in reason and "H.264 and AAC" in reason
    assert not fake.posts and progress.merged["posting"] is False


def test_a_policy_refusal_is_a_publish_failure_in_xs_words(fake: FakeX, video: Path) -> None:
    refusal = "You are not permitted to create a Tweet with media from this client."
    fake.fail_once(403, route="tweet", detail=refusal)
    with pytest.raises(PublishFailure) as caught:
        _publisher(fake).publish(_request(video), CREDENTIALS, Progress())
    assert caught.value.reason == f"X refused the post: {refusal} (HTTP 403)"
    assert fake.routes().count("tweet") == 1 and not fake.posts  # not retried


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_token_never_appears_in_errors_or_logs(
    fake: FakeX, httpserver: HTTPServer, video: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []

    def attempt(publisher: XPublisher) -> None:
        try:
            publisher.publish(_request(video), CREDENTIALS, Progress())
        except (ProviderError, PublishFailure) as exc:
            errors.append(exc)

    _publisher(fake).publish(_request(video, text="A first post."), CREDENTIALS, Progress())
    for _ in range(2):
        fake.fail_once(502, route="initialize")
    attempt(_publisher(fake, attempts=2))
    attempt(XPublisher(f"http://127.0.0.1:{_free_port()}", attempts=2, sleep=NO_WAIT))

    def echo(request: Request) -> Response:
        # A careless server quoting the request back: its header must not reach our errors.
        detail = f"bad header {request.headers.get('Authorization')}"
        body = {"title": "Invalid Request", "detail": detail, "type": "about:blank", "status": 400}
        return Response(json.dumps(body), status=400, content_type="application/json")

    def slow(_request: Request) -> Response:
        time.sleep(0.5)
        return Response("{}", status=200, content_type="application/json")

    httpserver.clear()
    httpserver.expect_request("/2/media/upload/initialize").respond_with_handler(echo)
    attempt(_publisher(fake))
    httpserver.clear()
    httpserver.expect_request("/2/media/upload/initialize").respond_with_handler(slow)
    attempt(XPublisher(fake.base_url, timeout_s=0.1, attempts=1, sleep=NO_WAIT))

    assert len(errors) == 4
    assert isinstance(errors[-1], ProviderError) and "timed out" in str(errors[-1])
    assert "bad header Bearer ***" in str(errors[-2])
    for error in errors:
        text = "".join(traceback.format_exception(error))
        assert USER_TOKEN not in text and USER_TOKEN not in repr(error), text
    assert any("/2/tweets" in r.getMessage() for r in caplog.records)  # httpx did log requests
    assert not any(USER_TOKEN in r.getMessage() for r in caplog.records)


def test_metrics_map_x_public_metrics_and_skip_deleted_posts(fake: FakeX, video: Path) -> None:
    post = _publisher(fake).publish(_request(video), CREDENTIALS, Progress())
    fake.set_metrics(
        post.post_id,
        impression_count=1520,
        like_count=87,
        reply_count=9,
        retweet_count=12,
        quote_count=3,
        bookmark_count=21,
    )
    [m] = _publisher(fake).metrics([post.post_id, "1999999999999999999"], CREDENTIALS)

    assert (m.platform, m.post_id) == (Platform.X, post.post_id)
    assert (m.views, m.likes, m.comments, m.shares, m.saves) == (1520, 87, 9, 15, 21)
    assert m.watch_time_s is None and m.fetched_at.tzinfo is not None
    [lookup] = [c for c in fake.calls if c.route == "lookup"]
    assert lookup.query["tweet.fields"] == "public_metrics"


def test_metrics_ask_for_at_most_100_ids_at_a_time(fake: FakeX) -> None:
    for n in range(150):
        fake.posts.append(Post(f"{n + 1:019d}", f"post {n}", [], USER["id"], time.time()))
    ids = [p.id for p in fake.posts]
    found = _publisher(fake).metrics([*ids, ids[0]], CREDENTIALS)

    assert [m.post_id for m in found] == ids
    assert [len(c.query["ids"].split(",")) for c in fake.calls] == [100, 50]
    assert _publisher(fake).metrics([], CREDENTIALS) == [] and len(fake.calls) == 2


def test_publish_once_with_a_ledger_survives_a_lost_answer_and_a_crash_mid_processing(
    fake: FakeX, video: Path, tmp_path: Path
) -> None:
    ledger = PublicationLedger(sa.create_engine(f"sqlite:///{tmp_path / 'ledger.db'}"))
    request = _request(video)

    def die(_seconds: float) -> None:
        raise Crash("killed while waiting for X's processing")

    # Run 1 dies while X processes the video: the ledger holds the media id, nothing posted.
    with pytest.raises(Crash):
        publish_once(ledger, _publisher(fake, sleep=die), request, CREDENTIALS)
    row = ledger.get(request.marker)
    assert row.state is PublicationState.UPLOADING and row.progress["finalized"] is True
    # Run 2: X posts, and the answer is lost; with one attempt the error reaches the ledger.
    fake.lost_response_once()
    with pytest.raises(ProviderError) as caught:
        publish_once(ledger, _publisher(fake, attempts=1), request, CREDENTIALS)
    assert caught.value.retryable and len(fake.posts) == 1
    assert ledger.get(request.marker).progress["posting"] is True
    # Run 3 finds the post by its marker; run 4 just reads the ledger.
    third = publish_once(ledger, _publisher(fake), request, CREDENTIALS)
    fourth = publish_once(ledger, _publisher(fake), request, CREDENTIALS)

    row = ledger.get(request.marker)
    assert row.state is PublicationState.PUBLISHED and row.post_id == fake.posts[0].id
    assert third == fourth == row.post
    assert len(fake.posts) == 1 and len(fake.media) == 1
    assert fake.routes().count("initialize") == 1 and fake.routes().count("tweet") == 1


def test_post_text_keeps_the_marker_within_280_dropping_hashtags_first() -> None:
    marker = publication_marker(TOPIC, "x", USER["username"])
    body = "Octopuses have three hearts and blue, copper-based blood. " * 4 + "They taste by arm."
    text = f"{body.strip()}\n\n#octopus #biology #ocean"
    assert x_weighted_length(text) <= 280 < x_weighted_length(f"{text} #{marker}")

    fitted = x_post_text(text, marker)

    assert x_weighted_length(fitted) <= 280 and fitted.endswith(f" #{marker}")
    assert fitted.startswith(body.strip())  # a hashtag went, not the text
    assert "#ocean" not in fitted and "#octopus" in fitted
    cjk = "章鱼有三颗心脏" * 30  # weighs 2 a character: the text itself has to be cut
    fitted = x_post_text(cjk, marker)
    assert x_weighted_length(fitted) <= 280 and fitted.endswith(f"…\n\n#{marker}")
    assert x_post_text(f"Three hearts #{marker}", marker) == f"Three hearts #{marker}"


def test_chunk_size_over_x_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        XPublisher(chunk_size=5 * 1024 * 1024 + 1)
