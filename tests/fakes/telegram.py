"""A protocol-faithful Telegram Bot API `sendVideo` for pytest-httpserver (see
/work/shared/docs/providers.md 1.4).

Route: `POST /bot<token>/sendVideo`, multipart: `chat_id`, `video` (a file part), `caption`
(plain text, at most 1024 UTF-16 units), `width`, `height`, `duration`, `supports_streaming`,
`thumbnail` (`attach://<part>` naming another file part). The answer is Telegram's
`{"ok": true, "result": Message}` with `message_id`, `chat`, `date`, `video` and `caption`;
message ids count up per chat, like a real channel's.

Errors are Telegram's: `{"ok": false, "error_code", "description"[, "parameters"]}`. A wrong
token gets 401 "Unauthorized"; an unknown chat 400 "Bad Request: chat not found"; a missing
video, a caption over the limit or an `attach://` naming no part get the 400 Telegram sends.

Faults, served in order before normal answers: `rate_limit_once(retry_after)` (429 with
`parameters.retry_after` in the body, no header, as Telegram does), `fail_once(status)`,
`fail_always(status)`, `revoke_token()` (401 from then on: the bot's token was revoked),
`lost_response_once()` (the post is made, then a 502 hides it: the duplicate window).

Every accepted post is kept in `posts` (so tests can count duplicates) and every request in
`calls` with its status and arrival time.
"""

from __future__ import annotations

import json
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

BOT_TOKEN = "7012345678:AAH-fakeBotToken_0123456789abcdefghij"
PUBLIC_CHAT = "@vf_demo"
PUBLIC_CHAT_ID = -1001234567890
PRIVATE_CHAT_ID = -1009876543210
CAPTION_MAX = 1024

_ROUTE = re.compile(r"^/bot(?P<token>[^/]*)/sendVideo$")


@dataclass
class Call:
    path: str
    status: int
    at: float


@dataclass
class Post:
    chat_id: int
    message_id: int
    form: dict[str, str]
    video: bytes
    thumbnail: bytes | None

    @property
    def caption(self) -> str:
        return self.form.get("caption", "")


@dataclass
class FakeTelegram:
    """Register on a pytest-httpserver; point the publisher at `base_url`."""

    server: HTTPServer
    token: str = BOT_TOKEN
    posts: list[Post] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    chats: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {
            PUBLIC_CHAT: {
                "id": PUBLIC_CHAT_ID,
                "title": "VF Demo",
                "username": PUBLIC_CHAT[1:],
                "type": "channel",
            },
            str(PRIVATE_CHAT_ID): {"id": PRIVATE_CHAT_ID, "title": "VF Private", "type": "channel"},
        }
    )
    _faults: deque[tuple[str, Any]] = field(default_factory=deque)
    _fail_status: int | None = None
    _revoked: bool = False

    def __post_init__(self) -> None:
        # Any token is routed, so a wrong one gets Telegram's 401 rather than a 500 from the fake.
        self.server.expect_request(_ROUTE, method="POST").respond_with_handler(self._handle)

    @property
    def base_url(self) -> str:
        return self.server.url_for("").rstrip("/")

    # --- faults -------------------------------------------------------------------------------

    def rate_limit_once(self, retry_after_s: int = 1) -> None:
        self._faults.append(("429", retry_after_s))

    def fail_once(self, status: int = 500) -> None:
        self._faults.append(("5xx", status))

    def fail_always(self, status: int = 500) -> None:
        self._fail_status = status

    def revoke_token(self) -> None:
        self._revoked = True

    def lost_response_once(self) -> None:
        self._faults.append(("lost", 502))

    # --- protocol -----------------------------------------------------------------------------

    def _answer(self, request: Request, status: int, body: dict[str, Any]) -> Response:
        self.calls.append(Call(request.path, status, time.monotonic()))
        return Response(json.dumps(body), status=status, content_type="application/json")

    def _error(
        self, request: Request, status: int, description: str, **parameters: Any
    ) -> Response:
        body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
        if parameters:
            body["parameters"] = parameters
        return self._answer(request, status, body)

    def _handle(self, request: Request) -> Response:
        match = _ROUTE.match(request.path)
        if not match or self._revoked or match["token"] != self.token:
            return self._error(request, 401, "Unauthorized")
        if self._fail_status is not None:
            return self._error(request, self._fail_status, _server_error(self._fail_status))
        fault = self._faults.popleft() if self._faults else None
        if fault and fault[0] == "429":
            return self._error(
                request,
                429,
                f"Too Many Requests: retry after {fault[1]}",
                retry_after=fault[1],
            )
        if fault and fault[0] == "5xx":
            return self._error(request, fault[1], _server_error(fault[1]))

        form = {key: request.form[key] for key in request.form}
        chat = self.chats.get(form.get("chat_id", ""))
        if chat is None:
            return self._error(request, 400, "Bad Request: chat not found")
        video = request.files.get("video")
        if video is None:
            return self._error(request, 400, "Bad Request: there is no video in the request")
        if len(form.get("caption", "").encode("utf-16-le")) // 2 > CAPTION_MAX:
            return self._error(request, 400, "Bad Request: message caption is too long")
        thumbnail = None
        if "thumbnail" in form:
            part = form["thumbnail"].removeprefix("attach://")
            if not form["thumbnail"].startswith("attach://") or part not in request.files:
                return self._error(
                    request, 400, "Bad Request: wrong HTTP URL specified for the thumbnail"
                )
            thumbnail = request.files[part].read()

        message_id = 1 + sum(1 for p in self.posts if p.chat_id == chat["id"])
        post = Post(chat["id"], message_id, form, video.read(), thumbnail)
        self.posts.append(post)
        if fault and fault[0] == "lost":  # posted, but the answer never reaches the client
            return self._error(request, fault[1], "Bad Gateway")
        result = {
            "message_id": message_id,
            "sender_chat": chat,
            "chat": chat,
            "date": int(time.time()),
            "video": {
                "duration": int(form.get("duration", "0") or 0),
                "width": int(form.get("width", "0") or 0),
                "height": int(form.get("height", "0") or 0),
                "file_name": video.filename,
                "mime_type": video.mimetype or "video/mp4",
                "file_id": f"BAACAgIAAxkBAAI{message_id:06d}fake",
                "file_unique_id": f"AgAD{message_id:06d}",
                "file_size": len(post.video),
            },
        }
        if post.caption:
            result["caption"] = post.caption
        return self._answer(request, 200, {"ok": True, "result": result})


def _server_error(status: int) -> str:
    return {502: "Bad Gateway", 503: "Service Unavailable"}.get(status, "Internal Server Error")
