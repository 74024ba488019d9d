"""TelegramPublisher against the fake Bot API in tests/fakes/telegram.py: the multipart
sendVideo (caption with the marker, size, duration, streaming, a thumbnail within Telegram's
limits), resuming from a saved message id, 429 honouring `parameters.retry_after`, 5xx and
timeouts as retryable errors, 401 asking to reconnect the bot, 400 as a PublishFailure, and the
bot token (which sits in the URL) kept out of every error and log line.

Not covered: the real api.telegram.org, and whether Telegram's player likes our MP4.
"""

from __future__ import annotations

import io
import logging
import socket
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from factory_core.models import Language
from factory_core.publish_metadata import Platform, PostMetadata, utf16_length
from factory_core.publishing import PublishFailure, PublishRequest, publication_marker
from factory_resources.faults import ProviderError
from factory_resources.telegram_publisher import (
    RECONNECT,
    TelegramPublisher,
    telegram_caption,
)

from .fakes.telegram import BOT_TOKEN, PRIVATE_CHAT_ID, PUBLIC_CHAT, FakeTelegram

CREDENTIALS = {"bot_token": BOT_TOKEN, "chat_id": PUBLIC_CHAT}
TEXT = "Why octopuses have three hearts: two pump blood through the gills, one through the body."
NO_WAIT: Callable[[float], None] = lambda _s: None  # noqa: E731


@pytest.fixture
def fake(httpserver: HTTPServer) -> FakeTelegram:
    return FakeTelegram(httpserver)


@pytest.fixture
def media(tmp_path: Path) -> tuple[Path, Path]:
    video = tmp_path / "final.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(4096))
    # A full-size noisy cover: the thumbnail has to be shrunk and stay small in bytes.
    cover = tmp_path / "cover.png"
    Image.effect_noise((1080, 1920), 80).convert("RGB").save(cover, compress_level=1)
    return video, cover


def _request(
    media: tuple[Path, Path], text: str = TEXT, progress: dict[str, Any] | None = None
) -> PublishRequest:
    video, cover = media
    return PublishRequest(
        topic_key="demo/why-octopuses-have-three-hearts",
        platform=Platform.TELEGRAM,
        account=PUBLIC_CHAT,
        marker=publication_marker("demo/why-octopuses-have-three-hearts", "telegram", PUBLIC_CHAT),
        video=video,
        thumbnail=cover,
        metadata=PostMetadata(platform=Platform.TELEGRAM, language=Language.EN, text=text),
        width=1080,
        height=1920,
        duration_s=21.6,
        progress=progress or {},
    )


def _publisher(fake: FakeTelegram, **config: Any) -> TelegramPublisher:
    return TelegramPublisher(base_url=fake.base_url, **config)


def test_a_video_is_sent_with_its_caption_size_thumbnail_and_saved_message_id(
    fake: FakeTelegram, media: tuple[Path, Path]
) -> None:
    saved: list[dict[str, Any]] = []
    request = _request(media)

    post = _publisher(fake).publish(request, CREDENTIALS, saved.append)

    assert (post.platform, post.post_id, post.url) == (
        Platform.TELEGRAM,
        f"{PUBLIC_CHAT}/1",
        "https://t.me/vf_demo/1",
    )
    [sent] = fake.posts
    assert sent.caption == f"{TEXT}\n\n#{request.marker}"
    assert {k: sent.form[k] for k in ("chat_id", "width", "height", "duration")} == {
        "chat_id": PUBLIC_CHAT, "width": "1080", "height": "1920", "duration": "22",
    }  # fmt: skip
    assert sent.form["supports_streaming"] == "true"
    assert "parse_mode" not in sent.form  # plain text: nothing in a caption is markup
    assert sent.video == media[0].read_bytes()
    assert sent.thumbnail is not None and len(sent.thumbnail) <= 200_000
    with Image.open(io.BytesIO(sent.thumbnail)) as thumb:
        assert thumb.format == "JPEG"
        assert max(thumb.size) <= 320 and thumb.size == (180, 320)
    assert saved == [{"message_id": 1, "chat_id": PUBLIC_CHAT, "chat_username": "vf_demo"}]


def test_a_private_chat_has_an_id_but_no_public_link(
    fake: FakeTelegram, media: tuple[Path, Path]
) -> None:
    credentials = {"bot_token": BOT_TOKEN, "chat_id": str(PRIVATE_CHAT_ID)}
    post = _publisher(fake).publish(_request(media), credentials, lambda _p: None)
    assert (post.post_id, post.url) == (f"{PRIVATE_CHAT_ID}/1", None)


def test_saved_progress_is_found_and_not_posted_again(
    fake: FakeTelegram, media: tuple[Path, Path]
) -> None:
    publisher = _publisher(fake)
    saved: list[dict[str, Any]] = []
    first = publisher.publish(_request(media), CREDENTIALS, saved.append)

    # A bot cannot read the chat: without saved progress there is nothing to find.
    assert publisher.find(_request(media), CREDENTIALS) is None
    again = _request(media, progress=saved[-1])
    assert publisher.find(again, CREDENTIALS) == first
    assert publisher.publish(again, CREDENTIALS, saved.append) == first
    assert len(fake.posts) == 1 and len(fake.calls) == 1


def test_a_lost_answer_posts_twice_the_documented_duplicate_window(
    fake: FakeTelegram, media: tuple[Path, Path]
) -> None:
    fake.lost_response_once()  # Telegram posted, then a 502 hid it; nothing lets us know.
    post = _publisher(fake, sleep=NO_WAIT).publish(_request(media), CREDENTIALS, lambda _p: None)
    assert len(fake.posts) == 2 and post.post_id == f"{PUBLIC_CHAT}/2"


def test_429_waits_the_retry_after_telegram_gives_then_posts(
    fake: FakeTelegram, media: tuple[Path, Path]
) -> None:
    fake.rate_limit_once(retry_after_s=1)
    started = time.monotonic()
    post = _publisher(fake).publish(_request(media), CREDENTIALS, lambda _p: None)

    assert time.monotonic() - started >= 0.9
    assert [c.status for c in fake.calls] == [429, 200]
    assert fake.calls[1].at - fake.calls[0].at >= 0.9
    assert post.post_id == f"{PUBLIC_CHAT}/1" and len(fake.posts) == 1


def test_a_5xx_once_is_retried(fake: FakeTelegram, media: tuple[Path, Path]) -> None:
    fake.fail_once(503)
    _publisher(fake, sleep=NO_WAIT).publish(_request(media), CREDENTIALS, lambda _p: None)
    assert [c.status for c in fake.calls] == [503, 200] and len(fake.posts) == 1


def test_5xx_until_retries_run_out_is_a_clear_retryable_error(
    fake: FakeTelegram, media: tuple[Path, Path]
) -> None:
    fake.fail_always(500)
    saved: list[dict[str, Any]] = []
    with pytest.raises(ProviderError) as caught:
        _publisher(fake, attempts=3, sleep=NO_WAIT).publish(
            _request(media), CREDENTIALS, saved.append
        )
    error = caught.value
    assert (error.provider, error.status, error.retryable) == ("telegram", 500, True)
    assert "Internal Server Error" in str(error)
    assert len(fake.calls) == 3 and not fake.posts and not saved


@pytest.mark.parametrize("how", ["wrong token", "revoked"])
def test_401_asks_to_reconnect_the_bot(
    fake: FakeTelegram, media: tuple[Path, Path], how: str
) -> None:
    credentials = dict(CREDENTIALS)
    if how == "wrong token":
        credentials["bot_token"] = "7012345678:AAH-someOtherToken_9876543210zyxwvu"
    else:
        fake.revoke_token()
    with pytest.raises(PublishFailure) as caught:
        _publisher(fake, sleep=NO_WAIT).publish(_request(media), credentials, lambda _p: None)
    assert "Unauthorized" in str(caught.value) and "HTTP 401" in str(caught.value)
    assert "reconnect the Telegram bot" in str(caught.value) and RECONNECT in caught.value.reason
    assert len(fake.calls) == 1  # not retried: it will not get better by itself


def test_400_chat_not_found_is_a_publish_failure(
    fake: FakeTelegram, media: tuple[Path, Path]
) -> None:
    credentials = {"bot_token": BOT_TOKEN, "chat_id": "@no_such_channel"}
    with pytest.raises(PublishFailure) as caught:
        _publisher(fake, sleep=NO_WAIT).publish(_request(media), credentials, lambda _p: None)
    assert caught.value.platform is Platform.TELEGRAM
    assert "Bad Request: chat not found" in str(caught.value)
    assert len(fake.calls) == 1 and not fake.posts


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_bot_token_never_appears_in_errors_or_logs(
    fake: FakeTelegram, httpserver: HTTPServer, media: tuple[Path, Path]
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

    def attempt(publisher: TelegramPublisher, credentials: dict[str, str] = CREDENTIALS) -> None:
        try:
            publisher.publish(_request(media), credentials, lambda _p: None)
        except (ProviderError, PublishFailure) as exc:
            errors.append(exc)

    try:
        _publisher(fake).publish(_request(media), CREDENTIALS, lambda _p: None)  # logs a URL
        fake.fail_always(502)
        attempt(_publisher(fake, attempts=2, sleep=NO_WAIT))
        attempt(_publisher(fake), {"bot_token": BOT_TOKEN, "chat_id": "@nowhere"})
        refused = TelegramPublisher(f"http://127.0.0.1:{_free_port()}", attempts=2, sleep=NO_WAIT)
        attempt(refused)

        def slow(_request: Request) -> Response:
            time.sleep(0.5)
            return Response("{}", status=200, content_type="application/json")

        httpserver.clear()
        httpserver.expect_request(f"/bot{BOT_TOKEN}/sendVideo").respond_with_handler(slow)
        attempt(TelegramPublisher(fake.base_url, timeout_s=0.1, attempts=1))
    finally:
        httpx_logger.removeHandler(handler)
        httpx_logger.setLevel(old_level)

    assert len(errors) == 4
    assert "timed out" in str(errors[-1]) and isinstance(errors[-1], ProviderError)
    assert errors[-1].retryable and errors[-2].retryable  # type: ignore[attr-defined]
    secret = BOT_TOKEN.split(":")[1]
    for error in errors:
        text = "".join(traceback.format_exception(error))
        assert secret not in text and secret not in repr(error), text
    assert any("sendVideo" in line for line in lines)  # httpx did log the request...
    assert not any(secret in line for line in lines)  # ...with the token masked


def test_the_caption_carries_the_marker_and_stays_within_1024_for_a_long_text(
    fake: FakeTelegram, media: tuple[Path, Path]
) -> None:
    # 1024 UTF-16 units of text already: the marker still has to fit, so the text gives way.
    long_text = ("Octopuses 🐙 have three hearts and blue blood. " * 30)[:1000].strip()
    assert 1000 < utf16_length(long_text) <= 1024
    request = _request(media, text=long_text)

    _publisher(fake).publish(request, CREDENTIALS, lambda _p: None)

    caption = fake.posts[0].caption
    assert utf16_length(caption) <= 1024
    assert caption.endswith(f"\n\n#{request.marker}")
    assert caption.split("\n\n")[0].endswith("…")


def test_a_marker_already_in_the_text_is_not_added_twice() -> None:
    marker = publication_marker("demo/x", "telegram", PUBLIC_CHAT)
    text = f"Three hearts.\n\n#octopus #{marker}"
    assert telegram_caption(text, marker) == text
    assert telegram_caption("", marker) == f"#{marker}"
