"""A protocol-faithful TikTok Content Posting API for pytest-httpserver (providers.md 1.1).

Routes (all JSON bodies answer `{"data": {...}, "error": {"code", "message", "log_id"}}`):
`POST /v2/post/publish/creator_info/query/`, `POST /v2/post/publish/video/init/` (direct post:
`post_info` + `source_info`), `POST /v2/post/publish/inbox/video/init/` (only `source_info`),
`PUT /upload/?upload_id=..&upload_token=..` (the `upload_url` init hands out; chunks in order with
`Content-Range: bytes first-last/total`, 206 while partial, 201 when complete),
`POST /v2/post/publish/status/fetch/` and `POST /v2/video/query/?fields=...`.

init checks TikTok's chunk rules: a file under `min_chunk_size` (5 MB on TikTok; tests scale it
down) is one chunk of its own size; otherwise `chunk_size` is within 5-64 MB and
`total_chunk_count == floor(video_size / chunk_size)`, the last chunk taking the remainder.
Privacy must be one of the creator's `privacy_level_options`; the title at most 2200 UTF-16 units.

A post is made when an upload completes (from then on TikTok will publish it): it goes to
`posts` (so tests count duplicates). The status goes PROCESSING_UPLOAD (with `uploaded_bytes`)
-> `processing_polls` more PROCESSING_UPLOAD answers -> PUBLISH_COMPLETE (or SEND_TO_USER_INBOX),
with `publicaly_available_post_id` (sic). After completion the upload URL answers 404.

Faults, served in order before normal answers on the route named (`None`: any route; routes are
"creator_info", "init", "upload", "status", "query"): `fail_once(status or error code, on=, after=)`,
`rate_limit_once(retry_after_s, on=)` (429 `rate_limit_exceeded` with a Retry-After header),
`fail_always(status)`, `revoke_token()` (401 `access_token_invalid` from then on),
`lost_response_once()` (the chunk that completes the upload is taken, then a 502 hides the
answer),
`fail_processing(reason)` (FAILED with that fail_reason), `expire_uploads()` (every open upload URL
answers 404 and its publish id turns FAILED), and `processing_polls`.
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

ACCESS_TOKEN = "act.3f9Kq2LmVx81ZtrQpWn0bYc7HdEaUs4FgJk5Rl6Mo9NiTx"
USERNAME = "vf_demo"
MAX_CHUNK = 64 * 1024 * 1024
CAPTION_MAX = 2200

_STATUS_FOR_CODE = {
    "access_token_invalid": 401,
    "scope_not_authorized": 401,
    "rate_limit_exceeded": 429,
    "internal_error": 500,
}


@dataclass
class Call:
    method: str
    path: str
    route: str
    status: int
    at: float
    json: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    answer: dict[str, Any] | None = None


@dataclass
class Upload:
    publish_id: str
    upload_id: str
    upload_token: str
    inbox: bool
    post_info: dict[str, Any]
    source_info: dict[str, Any]
    data: bytearray = field(default_factory=bytearray)
    ranges: list[tuple[int, int]] = field(default_factory=list)
    polls_after_upload: int = 0
    failed: str | None = None
    expired: bool = False
    post_id: int | None = None

    @property
    def video_size(self) -> int:
        return int(self.source_info["video_size"])

    @property
    def complete(self) -> bool:
        return len(self.data) >= self.video_size


@dataclass
class Post:
    post_id: int
    publish_id: str
    title: str
    privacy_level: str | None
    video: bytes
    inbox: bool


@dataclass
class FakeTikTok:
    """Register on a pytest-httpserver; point the publisher at `base_url`."""

    server: HTTPServer
    token: str = ACCESS_TOKEN
    min_chunk_size: int = 5 * 1024 * 1024
    privacy_level_options: list[str] = field(
        default_factory=lambda: ["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"]
    )
    max_video_post_duration_sec: int = 600
    comment_disabled: bool = False
    processing_polls: int = 1
    posts: list[Post] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    uploads: dict[str, Upload] = field(default_factory=dict)
    metrics: dict[str, dict[str, int]] = field(default_factory=dict)
    _faults: deque[list[Any]] = field(default_factory=deque)
    _fail_status: int | None = None
    _revoked: bool = False
    _fail_processing: str | None = None
    _lose_completion: bool = False

    def __post_init__(self) -> None:
        self.server.expect_request(re.compile(r"^/.*$")).respond_with_handler(self._handle)

    @property
    def base_url(self) -> str:
        return self.server.url_for("").rstrip("/")

    def calls_to(self, route: str) -> list[Call]:
        return [c for c in self.calls if c.route == route]

    # --- faults -------------------------------------------------------------------------------

    def fail_once(self, status: int | str = 500, on: str | None = None, after: int = 0) -> None:
        """The next request to `on` (after letting `after` of them through) fails."""
        self._faults.append(["fail", status, on, after])

    def rate_limit_once(self, retry_after_s: int = 1, on: str | None = None) -> None:
        self._faults.append(["429", retry_after_s, on, 0])

    def fail_always(self, status: int = 500) -> None:
        self._fail_status = status

    def revoke_token(self) -> None:
        self._revoked = True

    def lost_response_once(self) -> None:
        self._lose_completion = True

    def fail_processing(self, reason: str = "file_format_check_failed") -> None:
        self._fail_processing = reason

    def expire_uploads(self) -> None:
        for upload in self.uploads.values():
            if not upload.complete:
                upload.expired = True

    # --- protocol -----------------------------------------------------------------------------

    def _answer(
        self,
        request: Request,
        route: str,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> Response:
        sent = request.get_json(silent=True) if request.method == "POST" else None
        self.calls.append(
            Call(
                request.method,
                request.path,
                route,
                status,
                time.monotonic(),
                sent if isinstance(sent, dict) else None,
                {k: v for k, v in request.headers.items()},
                body,
            )
        )
        return Response(
            json.dumps(body), status=status, content_type="application/json", headers=headers
        )

    def _ok(
        self, request: Request, route: str, data: dict[str, Any], status: int = 200
    ) -> Response:
        return self._answer(request, route, status, {"data": data, "error": _error("ok", "")})

    def _error(
        self,
        request: Request,
        route: str,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> Response:
        body = {"data": {}, "error": _error(code, message)}
        return self._answer(request, route, status, body, headers)

    def _route(self, request: Request) -> str | None:
        return {
            ("POST", "/v2/post/publish/creator_info/query/"): "creator_info",
            ("POST", "/v2/post/publish/video/init/"): "init",
            ("POST", "/v2/post/publish/inbox/video/init/"): "init",
            ("PUT", "/upload/"): "upload",
            ("POST", "/v2/post/publish/status/fetch/"): "status",
            ("POST", "/v2/video/query/"): "query",
        }.get((request.method, request.path))

    def _fault_for(self, route: str) -> list[Any] | None:
        for fault in self._faults:
            if fault[2] is None or fault[2] == route:
                if fault[3] > 0:
                    fault[3] -= 1
                    return None
                self._faults.remove(fault)
                return fault
        return None

    def _handle(self, request: Request) -> Response:
        route = self._route(request)
        if route is None:
            return self._error(request, "?", 404, "invalid_params", "unknown endpoint")
        if route != "upload":  # the upload URL is authorized by its own upload token
            if self._revoked or request.headers.get("Authorization") != f"Bearer {self.token}":
                return self._error(
                    request, route, 401, "access_token_invalid",
                    "The access token is invalid or not found in the request.",
                )  # fmt: skip
        if self._fail_status is not None:
            return self._error(request, route, self._fail_status, "internal_error", "Server error")
        fault = self._fault_for(route)
        if fault and fault[0] == "429":
            return self._error(
                request, route, 429, "rate_limit_exceeded",
                "API rate limit was exceeded.", {"Retry-After": str(fault[1])},
            )  # fmt: skip
        if fault and fault[0] == "fail":
            what = fault[1]
            if isinstance(what, int):
                return self._error(request, route, what, "internal_error", "Server error")
            status = _STATUS_FOR_CODE.get(what, 403 if what.startswith("spam_risk") else 400)
            return self._error(request, route, status, what, f"TikTok says {what}.")
        handler = getattr(self, f"_{route}")
        return handler(request, route, fault)

    def _creator_info(self, request: Request, route: str, _fault: Any) -> Response:
        return self._ok(
            request,
            route,
            {
                "creator_avatar_url": "https://p16.example/avatar.jpeg",
                "creator_username": USERNAME,
                "creator_nickname": "VF Demo",
                "privacy_level_options": self.privacy_level_options,
                "comment_disabled": self.comment_disabled,
                "duet_disabled": False,
                "stitch_disabled": True,
                "max_video_post_duration_sec": self.max_video_post_duration_sec,
            },
        )

    def _init(self, request: Request, route: str, _fault: Any) -> Response:
        body = request.get_json(silent=True) or {}
        inbox = "/inbox/" in request.path
        source = body.get("source_info") or {}
        post_info = body.get("post_info") or {}
        if source.get("source") != "FILE_UPLOAD":
            return self._error(request, route, 400, "invalid_params", "source must be FILE_UPLOAD")
        problem = self._chunk_problem(source)
        if problem:
            return self._error(request, route, 400, "invalid_file_upload", problem)
        if not inbox:
            if post_info.get("privacy_level") not in self.privacy_level_options:
                return self._error(
                    request, route, 400, "privacy_level_option_mismatch",
                    "privacy_level is not one of the creator's privacy_level_options",
                )  # fmt: skip
            title = str(post_info.get("title", ""))
            if len(title.encode("utf-16-le")) // 2 > CAPTION_MAX:
                return self._error(request, route, 400, "invalid_params", "title is too long")
        number = len(self.uploads) + 1
        upload = Upload(
            publish_id=f"v_pub_file~v2-1.{7000000000000000000 + number}",
            upload_id=f"{7100000000000000000 + number}",
            upload_token=f"Xza9Tq{number:04d}Lm3Vn8Rk2Wb5Yc7",
            inbox=inbox,
            post_info=post_info,
            source_info=source,
        )
        self.uploads[upload.publish_id] = upload
        upload_url = (
            f"{self.base_url}/upload/?upload_id={upload.upload_id}"
            f"&upload_token={upload.upload_token}"
        )
        return self._ok(request, route, {"publish_id": upload.publish_id, "upload_url": upload_url})

    def _chunk_problem(self, source: dict[str, Any]) -> str | None:
        try:
            size = int(source["video_size"])
            chunk = int(source["chunk_size"])
            count = int(source["total_chunk_count"])
        except (KeyError, TypeError, ValueError):
            return "video_size, chunk_size and total_chunk_count are required"
        if size <= 0:
            return "video_size must be positive"
        if size < self.min_chunk_size:
            if chunk != size or count != 1:
                return "a video under 5 MB must be uploaded as one chunk of its own size"
            return None
        if not self.min_chunk_size <= chunk <= MAX_CHUNK:
            return "chunk_size must be between 5 MB and 64 MB"
        if count != size // chunk or not 1 <= count <= 1000:
            return "total_chunk_count must be floor(video_size / chunk_size), 1 to 1000"
        if size - (count - 1) * chunk > 2 * MAX_CHUNK:
            return "the last chunk may be at most 128 MB"
        return None

    def _upload(self, request: Request, route: str, _fault: Any) -> Response:
        upload = next(
            (
                u
                for u in self.uploads.values()
                if u.upload_id == request.args.get("upload_id")
                and u.upload_token == request.args.get("upload_token")
            ),
            None,
        )
        if upload is None or upload.expired or upload.complete or upload.failed:
            return self._error(request, route, 404, "upload_not_found", "upload URL is not valid")
        match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", request.headers.get("Content-Range", ""))
        data = request.get_data()
        if match is None:
            return self._error(request, route, 400, "invalid_params", "Content-Range is required")
        first, last, total = (int(g) for g in match.groups())
        chunk = int(upload.source_info["chunk_size"])
        count = int(upload.source_info["total_chunk_count"])
        index = first // chunk
        want_last = total - 1 if index == count - 1 else first + chunk - 1
        if (
            total != upload.video_size
            or first % chunk
            or index >= count
            or last != want_last
            or len(data) != last - first + 1
        ):
            return self._error(request, route, 416, "invalid_params", "bad Content-Range")
        if first > len(upload.data):  # chunks go in order; a resent chunk overwrites
            return self._error(request, route, 416, "invalid_params", "chunk out of order")
        upload.data[first : last + 1] = data
        upload.ranges.append((first, last))
        if not upload.complete:
            return self._answer(request, route, 206, {})
        if self._fail_processing is not None:
            upload.failed = self._fail_processing
        else:
            upload.post_id = 7300000000000000000 + len(self.posts) + 1
            self.posts.append(
                Post(
                    upload.post_id,
                    upload.publish_id,
                    str(upload.post_info.get("title", "")),
                    upload.post_info.get("privacy_level"),
                    bytes(upload.data),
                    upload.inbox,
                )
            )
        if self._lose_completion:  # the upload completed, but the answer never arrives
            self._lose_completion = False
            return self._error(request, route, 502, "internal_error", "Bad Gateway")
        return self._answer(request, route, 201, {})

    def _status(self, request: Request, route: str, _fault: Any) -> Response:
        body = request.get_json(silent=True) or {}
        upload = self.uploads.get(str(body.get("publish_id")))
        if upload is None:
            return self._error(request, route, 400, "invalid_publish_id", "publish_id not found")
        data: dict[str, Any] = {"uploaded_bytes": len(upload.data)}
        if upload.failed or upload.expired:
            data.update(status="FAILED", fail_reason=upload.failed or "file_upload_timeout")
        elif not upload.complete or upload.polls_after_upload < self.processing_polls:
            if upload.complete:
                upload.polls_after_upload += 1
            data["status"] = "PROCESSING_UPLOAD"
        elif upload.inbox:
            data["status"] = "SEND_TO_USER_INBOX"
        else:
            data.update(status="PUBLISH_COMPLETE", publicaly_available_post_id=[upload.post_id])
        return self._ok(request, route, data)

    def _query(self, request: Request, route: str, _fault: Any) -> Response:
        body = request.get_json(silent=True) or {}
        ids = [str(i) for i in (body.get("filters") or {}).get("video_ids") or []]
        if len(ids) > 20:
            return self._error(request, route, 400, "invalid_params", "at most 20 video_ids")
        fields = (request.args.get("fields") or "").split(",")
        videos = [
            {"id": vid, **{f: n for f, n in self.metrics[vid].items() if f in fields}}
            for vid in ids
            if vid in self.metrics
        ]
        return self._ok(request, route, {"videos": videos, "cursor": 0, "has_more": False})


def _error(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message, "log_id": "20250101000000FAKE0000"}
