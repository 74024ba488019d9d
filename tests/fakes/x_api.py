"""A protocol-faithful X API v2 for pytest-httpserver: chunked media upload with processing, posts,
the account's timeline and the post lookup with public metrics (see
/work/shared/docs/providers.md 1.3).

Routes (all need `Authorization: Bearer <user token>`, else 401 problem JSON):
* `POST /2/media/upload/initialize` JSON `{"media_type","total_bytes","media_category"}` ->
  `{"data":{"id","media_key","expires_after_secs"}}`.
* `POST /2/media/upload/{id}/append` multipart `media` (<= 5 MB) + `segment_index` (0..999); the
  same index again overwrites, as X's APPEND does.
* `POST /2/media/upload/{id}/finalize` -> `data.processing_info` `pending` (the segments must add
  up to `total_bytes`); a repeated FINALIZE answers the current state.
* `GET /2/media/upload?command=STATUS&media_id=` -> `in_progress` for `processing_polls` polls,
  then `succeeded`, or `failed` with `error` when `fail_processing` is set.
* `POST /2/tweets` `{"text","media":{"media_ids"}}` -> 201 `{"data":{"id","text",...}}`; only
  processed media; an exact duplicate of one of the user's texts gets X's 403.
* `GET /2/users/me`, `GET /2/users/{id}/tweets?max_results=5..100` (newest first; no `data` key
  when empty, as X answers), `GET /2/tweets?ids=..&tweet.fields=public_metrics` (<= 100 ids;
  unknown ids under `errors` as resource-not-found).

Errors are X's problem JSON `{"title","detail","type","status"}` (400s add `errors`).

Faults, each consumed by the first request on its route (`route=None`: any route) after letting
`skip` such requests pass: `fail_once(status)`, `rate_limit_once(reset_in_s)` (429 with the
`x-rate-limit-*` headers, reset in epoch seconds), `lost_response_once()` (on `POST /2/tweets`:
the post is made, then a 502 hides it). `revoke_token()` answers 401 from then on;
`expire_media(id)` makes X forget a media id (400 on every later use).

Every post is kept in `posts`, every media upload in `media`, every request in `calls`.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from factory_core.publish_metadata import x_weighted_length

USER_TOKEN = "Zk1XeUxRb2FjdGl2ZS11c2VyLXRva2VuOjE3MDAwMDAwMDA6MTpjaTph"
USER = {"id": "1500000000000000001", "name": "VF Demo", "username": "vf_demo"}
CHUNK_MAX = 5 * 1024 * 1024
TOTAL_MAX = 512 * 1024 * 1024
DUPLICATE = "You are not allowed to create a Tweet with duplicate content."
TOO_LONG = (
    "Your Tweet text is too long. For more information on how X determines text length see "
    "https://github.com/twitter/twitter-text."
)
_CATEGORIES = {"tweet_video", "amplify_video", "tweet_image", "tweet_gif", "dm_video"}
_MEDIA_STEP = re.compile(r"^/2/media/upload/(?P<id>[^/]+)/(?P<step>append|finalize)$")
_TIMELINE = re.compile(r"^/2/users/(?P<id>[^/]+)/tweets$")


@dataclass
class Call:
    method: str
    path: str
    route: str
    status: int
    at: float
    query: dict[str, str] = field(default_factory=dict)
    segment_index: int | None = None


@dataclass
class Media:
    id: str
    total_bytes: int
    media_type: str
    category: str
    segments: dict[int, bytes] = field(default_factory=dict)
    state: str | None = None  # None until FINALIZE; then pending, in_progress, succeeded, failed
    polls_left: int = 0
    expired: bool = False
    history: list[str] = field(default_factory=list)  # every processing state X answered

    @property
    def data(self) -> bytes:
        return b"".join(self.segments[i] for i in sorted(self.segments))


@dataclass
class Post:
    id: str
    text: str
    media_ids: list[str]
    author_id: str
    created_at: float
    public_metrics: dict[str, int] = field(
        default_factory=lambda: {
            "retweet_count": 0,
            "reply_count": 0,
            "like_count": 0,
            "quote_count": 0,
            "bookmark_count": 0,
            "impression_count": 0,
        }
    )


@dataclass
class Fault:
    kind: str  # "status", "429", "lost"
    value: int
    route: str | None
    skip: int
    detail: str | None = None


@dataclass
class FakeX:
    """Register on a pytest-httpserver; point the publisher at `base_url`."""

    server: HTTPServer
    token: str = USER_TOKEN
    processing_polls: int = 2  # STATUS polls answered in_progress before the verdict
    check_after_secs: int = 1
    expires_after_secs: int = 86400
    fail_processing: str | None = None  # an error message: processing ends `failed`
    posts: list[Post] = field(default_factory=list)
    media: dict[str, Media] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    _faults: list[Fault] = field(default_factory=list)
    _revoked: bool = False
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        # One handler for every path, so unknown routes get X's 404 rather than the fake's 500.
        self.server.expect_request(re.compile(r"^/.*")).respond_with_handler(self._handle)

    @property
    def base_url(self) -> str:
        return self.server.url_for("").rstrip("/")

    # --- faults -------------------------------------------------------------------------------

    def fail_once(
        self, status: int = 503, route: str | None = None, skip: int = 0, detail: str | None = None
    ) -> None:
        """One error answer; `detail` for a 4xx (a policy refusal), else the 5xx's own words."""
        self._faults.append(Fault("status", status, route, skip, detail))

    def rate_limit_once(
        self, reset_in_s: int = 30, route: str | None = None, skip: int = 0
    ) -> None:
        self._faults.append(Fault("429", reset_in_s, route, skip))

    def lost_response_once(self, skip: int = 0) -> None:
        self._faults.append(Fault("lost", 502, "tweet", skip))

    def revoke_token(self) -> None:
        self._revoked = True

    def expire_media(self, media_id: str | None = None) -> None:
        for media in self.media.values():
            if media_id is None or media.id == media_id:
                media.expired = True

    def set_metrics(self, post_id: str, **counts: int) -> None:
        next(p for p in self.posts if p.id == post_id).public_metrics.update(counts)

    # --- what tests look at -------------------------------------------------------------------

    def routes(self) -> list[str]:
        return [c.route for c in self.calls]

    def appended(self) -> list[int]:
        """segment_index of every APPEND that was answered 2xx, in order."""
        return [
            c.segment_index
            for c in self.calls
            if c.route == "append" and c.segment_index is not None and c.status < 300
        ]

    # --- protocol -----------------------------------------------------------------------------

    def _route(self, request: Request) -> str:
        path, method = request.path, request.method
        if method == "POST" and path == "/2/media/upload/initialize":
            return "initialize"
        if method == "POST" and (match := _MEDIA_STEP.match(path)):
            return match["step"]
        if method == "GET" and path == "/2/media/upload":
            return "status"
        if path == "/2/tweets":
            return "tweet" if method == "POST" else "lookup" if method == "GET" else "?"
        if method == "GET" and path == "/2/users/me":
            return "me"
        if method == "GET" and _TIMELINE.match(path):
            return "timeline"
        return "?"

    def _fault_for(self, route: str) -> Fault | None:
        for fault in self._faults:
            if fault.route is None or fault.route == route:
                if fault.skip:
                    fault.skip -= 1
                    return None
                self._faults.remove(fault)
                return fault
        return None

    def _json(
        self,
        call: Call,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> Response:
        call.status = status
        self.calls.append(call)
        return Response(
            json.dumps(body), status=status, content_type="application/json", headers=headers
        )

    def _problem(
        self,
        call: Call,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> Response:
        titles = {
            400: "Invalid Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found Error",
            429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable",
        }  # fmt: skip
        kind = (
            "https://api.twitter.com/2/problems/invalid-request" if status == 400 else "about:blank"
        )
        body = {
            "title": title or titles.get(status, "Error"),
            "detail": detail,
            "type": kind,
            "status": status,
            **extra,
        }
        return self._json(call, status, body, headers)

    def _invalid(self, call: Call, message: str, **parameters: list[str]) -> Response:
        return self._problem(
            call,
            400,
            "One or more parameters to your request was invalid.",
            errors=[{"parameters": parameters, "message": message}],
        )

    def _handle(self, request: Request) -> Response:
        route = self._route(request)
        query = {key: request.args[key] for key in request.args}
        call = Call(request.method, request.path, route, 0, time.monotonic(), query)
        if self._revoked or request.headers.get("Authorization") != f"Bearer {self.token}":
            return self._problem(call, 401, "Unauthorized")
        fault = self._fault_for(route)
        if fault and fault.kind == "status":
            return self._problem(call, fault.value, fault.detail or _server_error(fault.value))
        if fault and fault.kind == "429":
            reset = int(time.time()) + fault.value
            headers = {
                "x-rate-limit-limit": "17",
                "x-rate-limit-remaining": "0",
                "x-rate-limit-reset": str(reset),
            }
            return self._problem(call, 429, "Too Many Requests", headers=headers)
        handler = {
            "initialize": self._initialize,
            "append": self._append,
            "finalize": self._finalize,
            "status": self._status,
            "tweet": self._tweet,
            "lookup": self._lookup,
            "me": self._me,
            "timeline": self._timeline,
        }.get(route)
        if handler is None:
            return self._problem(call, 404, f"Sorry, that page does not exist: {request.path}")
        return handler(request, call, lost=fault is not None and fault.kind == "lost")

    def _known_media(self, call: Call, media_id: str) -> Media | Response:
        media = self.media.get(media_id)
        if media is None or media.expired:
            return self._invalid(
                call, f"The media_id {media_id} is invalid or has expired.", media_id=[media_id]
            )
        return media

    def _initialize(self, request: Request, call: Call, lost: bool) -> Response:
        body = request.get_json(silent=True) or {}
        total = body.get("total_bytes")
        if body.get("media_type") not in (
            "video/mp4",
            "video/quicktime",
            "image/jpeg",
            "image/png",
        ):
            return self._invalid(
                call, "media_type is not supported", media_type=[str(body.get("media_type"))]
            )
        if not isinstance(total, int) or not 0 < total <= TOTAL_MAX:
            return self._invalid(call, "total_bytes must be 1..536870912", total_bytes=[str(total)])
        if body.get("media_category") not in _CATEGORIES:
            category = str(body.get("media_category"))
            return self._invalid(call, "media_category is not supported", media_category=[category])
        media_id = str(1880000000000000000 + next(self._ids))
        self.media[media_id] = Media(media_id, total, body["media_type"], body["media_category"])
        data = {
            "id": media_id,
            "media_key": f"7_{media_id}",
            "expires_after_secs": self.expires_after_secs,
        }
        return self._json(call, 200, {"data": data})

    def _append(self, request: Request, call: Call, lost: bool) -> Response:
        media = self._known_media(call, _MEDIA_STEP.match(request.path)["id"])  # type: ignore[index]
        if isinstance(media, Response):
            return media
        raw_index = request.form.get("segment_index", "")
        call.segment_index = int(raw_index) if raw_index.isdigit() else None
        part = request.files.get("media")
        if media.state is not None:
            return self._invalid(call, "The media was already finalized.", media_id=[media.id])
        if call.segment_index is None or not 0 <= call.segment_index <= 999:
            return self._invalid(call, "segment_index must be 0..999", segment_index=[raw_index])
        if part is None:
            return self._invalid(call, "media is required", media=[""])
        chunk = part.read()
        if not chunk or len(chunk) > CHUNK_MAX:
            return self._invalid(call, "A segment must be 1 byte to 5 MB.", media=[str(len(chunk))])
        media.segments[call.segment_index] = chunk  # the same index again overwrites
        expires_at = int(time.time()) + self.expires_after_secs
        return self._json(call, 200, {"data": {"expires_at": expires_at}})

    def _processing_info(self, media: Media) -> dict[str, Any]:
        info: dict[str, Any] = {"state": media.state}
        if media.state in ("pending", "in_progress"):
            info["check_after_secs"] = self.check_after_secs
            done = self.processing_polls - media.polls_left
            info["progress_percent"] = int(100 * done / max(1, self.processing_polls + 1))
        elif media.state == "succeeded":
            info["progress_percent"] = 100
        else:
            info["error"] = {"code": 1, "name": "InvalidMedia", "message": self.fail_processing}
        return info

    def _media_data(self, media: Media) -> dict[str, Any]:
        media.history.append(str(media.state))
        return {
            "id": media.id,
            "media_key": f"7_{media.id}",
            "size": media.total_bytes,
            "expires_after_secs": self.expires_after_secs,
            "processing_info": self._processing_info(media),
        }

    def _finalize(self, request: Request, call: Call, lost: bool) -> Response:
        media = self._known_media(call, _MEDIA_STEP.match(request.path)["id"])  # type: ignore[index]
        if isinstance(media, Response):
            return media
        if media.state is None:
            if len(media.data) != media.total_bytes:
                return self._invalid(
                    call, "Segments do not add up to provided total file size.", media_id=[media.id]
                )
            media.state, media.polls_left = "pending", self.processing_polls
        return self._json(call, 200, {"data": self._media_data(media)})

    def _status(self, request: Request, call: Call, lost: bool) -> Response:
        if request.args.get("command") != "STATUS":
            return self._invalid(
                call, "command must be STATUS", command=[request.args.get("command", "")]
            )
        media = self._known_media(call, request.args.get("media_id", ""))
        if isinstance(media, Response):
            return media
        if media.state is None:
            return self._invalid(call, "The media was not finalized.", media_id=[media.id])
        if media.state in ("pending", "in_progress"):
            if media.polls_left > 0:
                media.polls_left -= 1
                media.state = "in_progress"
            else:
                media.state = "failed" if self.fail_processing else "succeeded"
        return self._json(call, 200, {"data": self._media_data(media)})

    def _tweet(self, request: Request, call: Call, lost: bool) -> Response:
        body = request.get_json(silent=True) or {}
        text = str(body.get("text") or "")
        media_ids = [str(i) for i in (body.get("media") or {}).get("media_ids") or []]
        if not text and not media_ids:
            return self._invalid(call, "text or media is required", text=[""])
        if x_weighted_length(text) > 280:
            return self._problem(call, 403, TOO_LONG)
        for media_id in media_ids:
            media = self.media.get(media_id)
            if media is None or media.expired or media.state != "succeeded":
                return self._invalid(call, "Your media IDs are invalid.", media_ids=media_ids)
        if any(p.text == text and p.author_id == USER["id"] for p in self.posts):
            return self._problem(call, 403, DUPLICATE)
        post = Post(
            str(1890000000000000000 + next(self._ids)), text, media_ids, USER["id"], time.time()
        )
        self.posts.append(post)
        if lost:  # posted, but the answer never reaches the client
            return self._problem(call, 502, "Bad Gateway")
        data = {"id": post.id, "text": post.text, "edit_history_tweet_ids": [post.id]}
        return self._json(call, 201, {"data": data})

    def _me(self, request: Request, call: Call, lost: bool) -> Response:
        return self._json(call, 200, {"data": dict(USER)})

    def _timeline(self, request: Request, call: Call, lost: bool) -> Response:
        user_id = _TIMELINE.match(request.path)["id"]  # type: ignore[index]
        raw = request.args.get("max_results", "10")
        if not raw.isdigit() or not 5 <= int(raw) <= 100:
            return self._invalid(call, "max_results must be 5..100", max_results=[raw])
        mine = [p for p in reversed(self.posts) if p.author_id == user_id][: int(raw)]
        if not mine:
            return self._json(call, 200, {"meta": {"result_count": 0}})
        data = [{"id": p.id, "text": p.text, "edit_history_tweet_ids": [p.id]} for p in mine]
        meta = {"result_count": len(data), "newest_id": data[0]["id"], "oldest_id": data[-1]["id"]}
        return self._json(call, 200, {"data": data, "meta": meta})

    def _lookup(self, request: Request, call: Call, lost: bool) -> Response:
        ids = [i for i in request.args.get("ids", "").split(",") if i]
        if not 1 <= len(ids) <= 100:
            return self._invalid(call, "ids must hold 1..100 ids", ids=ids)
        fields = set(request.args.get("tweet.fields", "").split(","))
        by_id = {p.id: p for p in self.posts}
        data, errors = [], []
        for tweet_id in ids:
            post = by_id.get(tweet_id)
            if post is None:
                errors.append({
                    "value": tweet_id, "detail": f"Could not find tweet with ids: [{tweet_id}].",
                    "title": "Not Found Error", "resource_type": "tweet", "parameter": "ids",
                    "resource_id": tweet_id, "type": "https://api.twitter.com/2/problems/resource-not-found",
                })  # fmt: skip
                continue
            item: dict[str, Any] = {
                "id": post.id,
                "text": post.text,
                "edit_history_tweet_ids": [post.id],
            }
            if "public_metrics" in fields:
                item["public_metrics"] = dict(post.public_metrics)
            data.append(item)
        body: dict[str, Any] = {}
        if data:
            body["data"] = data
        if errors:
            body["errors"] = errors
        return self._json(call, 200, body)


def _server_error(status: int) -> str:
    return {502: "Bad Gateway", 503: "Service Unavailable"}.get(status, "Internal Server Error")
