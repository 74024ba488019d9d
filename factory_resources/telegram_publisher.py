"""Posts a topic's video to a Telegram chat or channel through the Bot API's `sendVideo`.

One multipart request carries everything: the video, a plain-text caption (no `parse_mode`, so
nothing in the text is read as markup), width, height, duration, `supports_streaming` and a
small JPEG thumbnail. The caption ends with the publication marker as a hashtag-like token
(`#vf0123456789`), cut to Telegram's 1024 UTF-16 units by shortening the text, never the marker.

Exactly once, and where it falls short: the Bot API has no idempotency key and a bot cannot read
a chat's history, so `find` cannot look for the marker on Telegram. The only reconciliation is
the `message_id` saved with `save_progress` right after Telegram answers; a later attempt that
sees it returns the post without sending again. The residual duplicate window is a crash (or a
lost response) after Telegram accepted the video and before the progress was saved, and equally
a 5xx or a read timeout on which Telegram had in fact posted: the retry, inside this call or a
later run, posts a second copy. Telegram answers within seconds, so the window is small but
real; the marker in the caption lets an owner spot and delete such a duplicate by hand.

Secrets: the bot token sits in the URL path (`/bot<token>/sendVideo`), and httpx puts URLs in
its exceptions and its INFO log lines. Every error text here is redacted with the token, httpx
exceptions are not chained onto ours, and a filter on the `httpx` logger masks bot tokens.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from factory_core.publish_metadata import Platform, cut_to_fit, utf16_length
from factory_core.publishing import PublishedPost, PublishFailure, PublishRequest
from factory_resources.faults import ProviderError, call_with_retries, mask_in_httpx_logs, redact

PROVIDER = "telegram"
DEFAULT_BASE_URL = "https://api.telegram.org"
CAPTION_MAX = 1024  # UTF-16 units, as Telegram counts entity offsets (see publish_metadata).
THUMBNAIL_MAX_PX = 320  # Telegram ignores a thumbnail over 320 px on a side or 200 kB.
THUMBNAIL_MAX_BYTES = 200_000
# sendVideo by multipart upload takes at most 50 MB; a local Bot API server takes 2000 MB.
UPLOAD_MAX_BYTES = 50 * 1024 * 1024
RECONNECT = (
    "reconnect the Telegram bot: its token was revoked or is wrong, or the bot was removed "
    "from the chat or lost the right to post there"
)

# `bot` + numeric id + `:` + secret: how the token appears in a URL path or a log line.
_BOT_TOKEN = re.compile(r"bot\d+:[A-Za-z0-9_-]+")


def _guard_httpx_logs() -> None:
    # httpx logs every request's URL at INFO; the Telegram bot token sits in the URL path.
    mask_in_httpx_logs("telegram bot token", _BOT_TOKEN, "bot***")


def telegram_caption(text: str, marker: str) -> str:
    """`text` with `#<marker>` as its last line (unless the text already carries the marker),
    within CAPTION_MAX UTF-16 units: the text is cut at a word boundary, the marker never."""
    if marker in text:
        # PostMetadata is already within the limit; cut only if someone built it otherwise.
        return cut_to_fit(text, lambda t: utf16_length(t) <= CAPTION_MAX)
    tail = f"#{marker}"

    def with_tail(body: str) -> str:
        return f"{body}\n\n{tail}" if body else tail

    body = cut_to_fit(text.strip(), lambda b: utf16_length(with_tail(b)) <= CAPTION_MAX)
    return with_tail(body)


def thumbnail_jpeg(source: Path) -> bytes:
    """A JPEG of `source` within Telegram's thumbnail limits (320 px a side, 200 kB)."""
    with Image.open(source) as picture:
        img = picture.convert("RGB")
        img.thumbnail((THUMBNAIL_MAX_PX, THUMBNAIL_MAX_PX), Image.Resampling.LANCZOS)
        # 320 px at quality 85 is ~30 kB; step quality down only for pathological pictures.
        for quality in (85, 70, 55, 40, 25):
            out = io.BytesIO()
            img.save(out, "JPEG", quality=quality, optimize=True)
            if out.tell() <= THUMBNAIL_MAX_BYTES:
                return out.getvalue()
    raise PublishFailure(Platform.TELEGRAM, f"thumbnail {source.name} stays over 200 kB as JPEG")


def post_url(chat_id: str, message_id: int, username: str | None = None) -> str | None:
    """The public link of a message: only public chats (an @username) have one."""
    name = chat_id[1:] if chat_id.startswith("@") else username
    return f"https://t.me/{name}/{message_id}" if name else None


class TelegramPublisher:
    """The Publisher for Telegram. Credentials: {"bot_token": "123:ABC…", "chat_id": "@name"
    or a numeric id such as "-1001234567890"}."""

    platform = Platform.TELEGRAM

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout_s: float = 120.0,
        attempts: int = 4,
        max_upload_bytes: int = UPLOAD_MAX_BYTES,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # An upload of up to 50 MB needs time to write; connecting should not.
        self.timeout = httpx.Timeout(timeout_s, connect=min(10.0, timeout_s))
        self.attempts = attempts
        self.max_upload_bytes = max_upload_bytes
        self.sleep = sleep
        _guard_httpx_logs()

    def find(self, request: PublishRequest, credentials: dict[str, Any]) -> PublishedPost | None:
        """The post an earlier attempt saved; a bot cannot search a chat, so nothing else."""
        message_id = request.progress.get("message_id")
        if message_id is None:
            return None
        chat_id = str(request.progress.get("chat_id") or credentials.get("chat_id", ""))
        return PublishedPost(
            platform=self.platform,
            post_id=f"{chat_id}/{message_id}",
            url=post_url(chat_id, int(message_id), request.progress.get("chat_username")),
        )

    def publish(
        self,
        request: PublishRequest,
        credentials: dict[str, Any],
        save_progress: Callable[[dict[str, Any]], None],
    ) -> PublishedPost:
        earlier = self.find(request, credentials)
        if earlier is not None:
            return earlier
        token = str(credentials.get("bot_token") or "")
        chat_id = str(credentials.get("chat_id") or "")
        if not token or not chat_id:
            raise PublishFailure(self.platform, f"missing bot_token or chat_id; {RECONNECT}")
        size = request.video.stat().st_size
        if size > self.max_upload_bytes:
            raise PublishFailure(
                self.platform,
                f"video is {size / 1e6:.1f} MB; the Bot API takes at most "
                f"{self.max_upload_bytes / 1e6:.0f} MB by upload",
            )
        fields = {
            "chat_id": chat_id,
            "caption": telegram_caption(request.metadata.text, request.marker),
            "width": str(request.width),
            "height": str(request.height),
            "duration": str(max(1, round(request.duration_s))),
            "supports_streaming": "true",
        }
        thumb = thumbnail_jpeg(request.thumbnail) if request.thumbnail else None
        if thumb is not None:
            fields["thumbnail"] = "attach://thumb"

        def send() -> dict[str, Any]:
            return self._send_video(token, fields, request.video, thumb)

        result = call_with_retries(send, attempts=self.attempts, sleep=self.sleep)
        message_id = int(result["message_id"])
        username = (result.get("chat") or {}).get("username")
        # Saved before anything else can fail: this is all a later attempt can reconcile with.
        save_progress({"message_id": message_id, "chat_id": chat_id, "chat_username": username})
        return PublishedPost(
            platform=self.platform,
            post_id=f"{chat_id}/{message_id}",
            url=post_url(chat_id, message_id, username),
        )

    def _send_video(
        self, token: str, fields: dict[str, str], video: Path, thumb: bytes | None
    ) -> dict[str, Any]:
        """One sendVideo call: its `result`, or a ProviderError / PublishFailure without the
        token. The file is reopened per attempt so a retry uploads it from the start."""
        url = f"{self.base_url}/bot{token}/sendVideo"
        try:
            with video.open("rb") as fh:
                files: dict[str, tuple[str, Any, str]] = {"video": (video.name, fh, "video/mp4")}
                if thumb is not None:
                    files["thumb"] = ("thumb.jpg", thumb, "image/jpeg")
                response = httpx.post(url, data=fields, files=files, timeout=self.timeout)
        except httpx.TimeoutException:
            # `from None`: the httpx exception carries the request, and its URL the token.
            raise ProviderError(PROVIDER, "sendVideo timed out", retryable=True) from None
        except httpx.HTTPError as exc:
            reason = redact(f"sendVideo failed: {type(exc).__name__}: {exc}", token)
            raise ProviderError(PROVIDER, reason, retryable=True) from None
        return _result(response, token)


def _result(response: httpx.Response, token: str) -> dict[str, Any]:
    """The `result` of an `{"ok": true}` answer; Telegram's own error otherwise."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    if response.status_code == 200 and body.get("ok") and isinstance(body.get("result"), dict):
        return body["result"]
    status = int(body.get("error_code") or response.status_code)
    description = redact(
        str(body.get("description") or response.text[:200] or response.reason_phrase), token
    )
    parameters = body.get("parameters") or {}
    if status == 429:
        # Telegram says how long to wait in the body, not in a Retry-After header.
        wait = parameters.get("retry_after")
        raise ProviderError(
            PROVIDER,
            description,
            status=status,
            retryable=True,
            retry_after_s=float(wait) if wait is not None else None,
        )
    if status >= 500 or status in (408, 409):
        raise ProviderError(PROVIDER, description, status=status, retryable=True)
    if status in (401, 403):
        raise PublishFailure(Platform.TELEGRAM, f"{description} (HTTP {status}); {RECONNECT}")
    if status == 413:
        raise PublishFailure(
            Platform.TELEGRAM, f"{description}: the video is over the Bot API's upload limit"
        )
    if "migrate_to_chat_id" in parameters:
        # A group became a supergroup: the old id is gone for good, the new one is given.
        description += f"; the chat is now {parameters['migrate_to_chat_id']}: update chat_id"
    if status == 200:  # 200 without ok/result: not a Telegram answer we understand.
        raise ProviderError(PROVIDER, f"unexpected answer: {description}", status=status)
    raise PublishFailure(Platform.TELEGRAM, f"{description} (HTTP {status})")
