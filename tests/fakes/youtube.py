"""A protocol-faithful YouTube Data API v3 (+ Analytics v2) for pytest-httpserver, as
google-api-python-client 2.202 speaks it (see /work/shared/docs/providers.md 0.4).

The SDK builds media URLs from the discovery document's `https://` root and swaps only the
host, so the fake must speak TLS: `https_server(tmp_dir)` starts a pytest-httpserver with a
self-signed certificate for IP 127.0.0.1 and returns it with the CA file the client trusts.

Routes (every one wants `Authorization: Bearer <token>`; an unknown or revoked token gets
Google's 401 `authError`):
- `POST /upload/youtube/v3/videos?uploadType=resumable&part=snippet,status` with the video
  resource as JSON and `X-Upload-Content-Length` -> 200, empty body, `Location: <session>`.
  The resource is checked the way YouTube does (title <= 100 characters without < or >,
  description <= 5000 UTF-8 bytes, tags <= 500, a known category, privacy, publishAt only
  when private and in the future) and refused with YouTube's 400 reasons.
- `PUT <session>` with `Content-Range: bytes a-b/total`: a chunk (a multiple of 256 KiB
  unless it is the last) -> `308` with `Range: bytes=0-<last byte held>` and no body, or 200
  with the video resource when the last byte arrives. `Content-Range: bytes */total`: the
  status query -> 308 (+ Range when something is held), or 200 with the resource once done.
  An expired session answers 404.
- `GET /youtube/v3/channels?part=contentDetails&mine=true`: the channel and its uploads
  playlist; `GET /youtube/v3/playlistItems?part=snippet&playlistId=UU…`: the uploads, newest
  first, 50 a page at most, with `nextPageToken`; `GET /youtube/v3/videos?part=statistics&id=…`.
- `POST /upload/youtube/v3/thumbnails/set?videoId=…&uploadType=media`: raw JPEG/PNG bytes,
  at most 2 MB; 403 `forbidden` while the channel is unverified (`unverified_channel()`).
- `GET /v2/reports?ids=channel==MINE&…&dimensions=video&filters=video==a,b`: YouTube
  Analytics' result table (`columnHeaders` + `rows`; videos without data are left out).
- `POST /token`: a refresh-token grant, enough for google-auth's refresh-on-401
  (`invalid_grant` once the account's access is revoked).

Faults: `fail_next(status, reason)` (the next request(s) of any kind get Google's error JSON,
e.g. 403 `quotaExceeded` in domain `youtube.quota`), `fail_chunk_once(index, status)`,
`drop_connection_on_chunk(index, times)` (the chunk is stored, then the socket is shut without
an answer), `lost_final_response_once()` (the video is created, a 502 hides it),
`expire_session(on_chunk=None)` (404 from then on), `expire_access_token(on_chunk=None)` (the
next request with the old token gets 401 until the client refreshes), `revoke_token()`.
Chunk indexes count every PUT that carries bytes, from 0, across sessions.

State for tests: `videos` (every video created, so tests count duplicates), `sessions`, and
`calls` (method, path, Content-Range, bytes carried, status) for every request.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from .tls import tls_context

ACCESS_TOKEN = "ya29.a0AfB_fakeAccessToken0123456789abcdefghijklmnop"
REFRESH_TOKEN = "1//0gFakeRefreshToken0123456789abcdefghijklmnopqrstuv"
CLIENT_ID = "123456789012-fakeclient.apps.googleusercontent.com"
CLIENT_SECRET = "GOCSPX-fakeClientSecret0123456789"
CHANNEL_ID = "UCfakeChannel0123456789a"
UPLOADS_PLAYLIST = "UU" + CHANNEL_ID[2:]
CHUNK_GRANULE = 256 * 1024
DESCRIPTION_MAX_BYTES = 5000
THUMBNAIL_MAX_BYTES = 2 * 1024 * 1024
CATEGORIES = {"1", "2", "10", "15", "17", "19", "20", "22", "23", "24", "25", "26", "27", "28"}

# Google's error reasons: (domain, message) as the real API words them.
REASONS: dict[str, tuple[str, str]] = {
    "quotaExceeded": (
        "youtube.quota",
        "The request cannot be completed because you have exceeded your "
        '<a href="/youtube/v3/getting-started#quota">quota</a>.',
    ),
    "rateLimitExceeded": ("usageLimits", "Rate Limit Exceeded"),
    "userRateLimitExceeded": ("usageLimits", "User Rate Limit Exceeded"),
    "backendError": ("global", "Backend Error"),
    "authError": ("global", "Invalid Credentials"),
    "forbidden": ("youtube.thumbnail", "The authenticated user doesn't have permissions to "
                  "upload and set custom video thumbnails."),
    "invalidTitle": ("youtube.video", "The request metadata specifies an invalid or empty video title."),
    "invalidDescription": ("youtube.video", "The request metadata specifies an invalid video description."),
    "invalidTags": ("youtube.video", "The request metadata specifies invalid video keywords."),
    "invalidCategoryId": ("youtube.video", "The <code>snippet.categoryId</code> property "
                          "specifies an invalid category ID."),
    "invalidVideoMetadata": ("youtube.video", "The request metadata is invalid."),
    "invalidPublishAt": ("youtube.video", "The request metadata specifies an invalid "
                         "scheduled publishing time."),
    "invalidImage": ("youtube.thumbnail", "The provided image content is invalid."),
    "videoNotFound": ("youtube.video", "The video that you are trying to update cannot be found."),
    "notFound": ("global", "Not Found"),
    "badRequest": ("global", "Bad Request"),
    "insufficientPermissions": ("global", "Insufficient Permission"),
}  # fmt: skip
_STATUS_TEXT = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
                429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
                503: "Service Unavailable"}  # fmt: skip
_CHUNK_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_STATUS_QUERY = re.compile(r"^bytes \*/(\d+|\*)$")


def https_server(directory: Path) -> tuple[HTTPServer, Path]:
    """A started TLS pytest-httpserver on 127.0.0.1 and the PEM file that trusts it."""
    context, cert_path = tls_context(directory)
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context)
    server.start()
    return server, cert_path


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    content_range: str | None
    size: int  # bytes in the request body
    status: int = 0  # 0: the connection was dropped without an answer
    at: float = field(default_factory=time.monotonic)


@dataclass
class Video:
    id: str
    snippet: dict[str, Any]
    status: dict[str, Any]
    params: dict[str, str]  # the insert's query parameters (notifySubscribers, part)
    data: bytes
    uploaded_at: dt.datetime
    thumbnail: bytes | None = None
    thumbnail_type: str | None = None
    statistics: dict[str, int] = field(default_factory=dict)
    analytics: dict[str, float] = field(default_factory=dict)

    def resource(self, parts: set[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": "youtube#video", "etag": f"etag-{self.id}", "id": self.id}
        if "snippet" in parts:
            out["snippet"] = self.snippet
        if "status" in parts:
            out["status"] = self.status
        if "statistics" in parts:
            stats = {"viewCount": 0, "likeCount": 0, "favoriteCount": 0, "commentCount": 0}
            # The Data API sends counts as strings.
            out["statistics"] = {k: str(v) for k, v in {**stats, **self.statistics}.items()}
        return out


@dataclass
class Session:
    id: str
    total: int
    content_type: str
    snippet: dict[str, Any]
    status: dict[str, Any]
    params: dict[str, str]
    received: bytearray = field(default_factory=bytearray)
    video_id: str | None = None
    expired: bool = False


@dataclass
class FakeYouTube:
    """Register on a (TLS) pytest-httpserver; point the publisher at `api_endpoint`."""

    server: HTTPServer
    access_token: str = ACCESS_TOKEN
    refresh_token: str = REFRESH_TOKEN
    videos: list[Video] = field(default_factory=list)
    sessions: dict[str, Session] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    analytics_authorized: bool = True
    _tokens: set[str] = field(default_factory=set)
    _faults: deque[tuple[int, str, str | None]] = field(default_factory=deque)
    _token_busy: int = 0
    _chunk_faults: dict[int, list[tuple[str, int]]] = field(default_factory=dict)
    _chunks_seen: int = 0
    _lost_final: deque[int] = field(default_factory=deque)
    _verified: bool = True
    _revoked: bool = False

    def __post_init__(self) -> None:
        self._tokens.add(self.access_token)
        self.server.expect_request(re.compile(r"^/.*")).respond_with_handler(self._handle)

    @property
    def api_endpoint(self) -> str:
        return self.server.url_for("/")

    @property
    def token_uri(self) -> str:
        return self.server.url_for("/token")

    # --- faults and knobs ---------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        reason: str = "backendError",
        times: int = 1,
        retry_after: str | None = None,
    ) -> None:
        """The next `times` requests (any route but /token) get Google's error JSON."""
        for _ in range(times):
            self._faults.append((status, reason, retry_after))

    def token_endpoint_busy(self, times: int) -> None:
        """The next `times` calls to /token get 503 (Google's token endpoint overloaded)."""
        self._token_busy += times

    def fail_chunk_once(self, index: int, status: int = 503) -> None:
        self._chunk_faults.setdefault(index, []).append(("fail", status))

    def drop_connection_on_chunk(self, index: int, times: int = 1) -> None:
        """The chunk's bytes are stored, then the connection is shut without an answer
        (`times` consecutive chunk PUTs from `index` on)."""
        for i in range(times):
            self._chunk_faults.setdefault(index + i, []).append(("drop", 0))

    def lost_final_response_once(self, status: int = 502) -> None:
        self._lost_final.append(status)

    def expire_session(self, on_chunk: int | None = None) -> None:
        """Every open session expires now, or when chunk `on_chunk` arrives (it gets 404)."""
        if on_chunk is None:
            for session in self.sessions.values():
                session.expired = True
        else:
            self._chunk_faults.setdefault(on_chunk, []).append(("expire", 404))

    def expire_access_token(self, on_chunk: int | None = None) -> None:
        """The current access token stops working (now, or at chunk `on_chunk`); a refresh
        with the refresh token gets a new one."""
        if on_chunk is None:
            self._tokens.clear()
        else:
            self._chunk_faults.setdefault(on_chunk, []).append(("token", 401))

    def revoke_token(self) -> None:
        """The user removed the app's access: every token and the refresh token stop working."""
        self._revoked = True
        self._tokens.clear()

    def unverified_channel(self) -> None:
        self._verified = False

    def add_old_videos(self, count: int) -> list[Video]:
        """Videos uploaded before (without any marker), oldest first."""
        return [
            self._create(
                Session(
                    id=secrets.token_hex(4),
                    total=3,
                    content_type="video/mp4",
                    snippet={"title": "An older video", "description": "Nothing to see."},
                    status={"privacyStatus": "public"},
                    params={},
                    received=bytearray(b"old"),
                )
            )
            for _ in range(count)
        ]

    def video(self, video_id: str) -> Video:
        return next(v for v in self.videos if v.id == video_id)

    # --- plumbing -----------------------------------------------------------------------------

    def _record(self, request: Request, body: bytes) -> Call:
        call = Call(
            request.method,
            request.path,
            {k: request.args[k] for k in request.args},
            request.headers.get("Content-Range"),
            len(body),
        )
        self.calls.append(call)
        return call

    def _json(self, call: Call, status: int, body: Any, **headers: str) -> Response:
        call.status = status
        return Response(
            json.dumps(body), status=status, content_type="application/json", headers=headers
        )

    def _error(
        self,
        call: Call,
        status: int,
        reason: str,
        message: str | None = None,
        retry_after: str | None = None,
    ) -> Response:
        domain, default = REASONS.get(reason, ("global", _STATUS_TEXT.get(status, "Error")))
        text = message or default
        error: dict[str, Any] = {
            "code": status,
            "message": text,
            "errors": [{"message": text, "domain": domain, "reason": reason}],
        }
        headers: dict[str, str] = {"Vary": "Origin"}
        if status == 401:
            error["status"] = "UNAUTHENTICATED"
            error["errors"][0].update(location="Authorization", locationType="header")
            headers["WWW-Authenticate"] = 'Bearer realm="https://accounts.google.com/"'
        if retry_after is not None:
            headers["Retry-After"] = retry_after
        return self._json(call, status, {"error": error}, **headers)

    def _empty(self, call: Call, status: int, **headers: str) -> Response:
        call.status = status
        # A 308 carries no body (httplib2 and the SDK read only its headers).
        return Response(b"", status=status, headers=headers)

    def _handle(self, request: Request) -> Response:
        body = request.get_data()
        call = self._record(request, body)
        if request.path == "/token" and request.method == "POST":
            return self._token(call, request)
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self._tokens:
            return self._error(
                call, 401, "authError",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                "login cookie or other valid authentication credential.",
            )  # fmt: skip
        if self._faults:
            status, reason, retry_after = self._faults.popleft()
            return self._error(call, status, reason, retry_after=retry_after)
        path = request.path
        if path == "/upload/youtube/v3/videos" and request.method == "POST":
            return self._start(call, request, body)
        if path == "/upload/youtube/v3/videos" and request.method == "PUT":
            return self._put(call, request, body)
        if path == "/upload/youtube/v3/thumbnails/set" and request.method == "POST":
            return self._thumbnail(call, request, body)
        if path == "/youtube/v3/channels" and request.method == "GET":
            return self._channels(call, request)
        if path == "/youtube/v3/playlistItems" and request.method == "GET":
            return self._playlist_items(call, request)
        if path == "/youtube/v3/videos" and request.method == "GET":
            return self._videos_list(call, request)
        if path == "/v2/reports" and request.method == "GET":
            return self._reports(call, request)
        return self._error(call, 404, "notFound")

    def _token(self, call: Call, request: Request) -> Response:
        form = request.form
        if self._token_busy > 0:
            self._token_busy -= 1
            return self._json(call, 503, {"error": "temporarily_unavailable"})
        if (
            form.get("grant_type") != "refresh_token"
            or form.get("refresh_token") != self.refresh_token
            or form.get("client_id") != CLIENT_ID
            or self._revoked
        ):
            return self._json(
                call, 400,
                {"error": "invalid_grant", "error_description": "Token has been expired or revoked."},
            )  # fmt: skip
        token = f"ya29.a0Refreshed_{secrets.token_urlsafe(24)}"
        self._tokens.add(token)
        return self._json(
            call, 200,
            {"access_token": token, "expires_in": 3599, "token_type": "Bearer",
             "scope": "https://www.googleapis.com/auth/youtube.upload"},
        )  # fmt: skip

    # --- uploads ------------------------------------------------------------------------------

    def _start(self, call: Call, request: Request, body: bytes) -> Response:
        if request.args.get("uploadType") != "resumable":
            return self._error(call, 400, "badRequest", "only resumable uploads are faked")
        try:
            resource = json.loads(body or b"{}")
            total = int(request.headers.get("X-Upload-Content-Length", ""))
        except ValueError:
            return self._error(call, 400, "badRequest", "Invalid JSON payload or upload length.")
        snippet, status = resource.get("snippet") or {}, resource.get("status") or {}
        problem = _metadata_problem(snippet, status)
        if problem:
            return self._error(call, 400, problem)
        session = Session(
            id=secrets.token_urlsafe(16),
            total=total,
            content_type=request.headers.get("X-Upload-Content-Type", ""),
            snippet=snippet,
            status=status,
            params={k: request.args[k] for k in request.args},
        )
        self.sessions[session.id] = session
        location = (
            f"{request.host_url}upload/youtube/v3/videos?uploadType=resumable"
            f"&part={request.args.get('part', '')}&upload_id={session.id}"
        )
        call.status = 200
        return Response(b"", status=200, headers={"Location": location})

    def _put(self, call: Call, request: Request, body: bytes) -> Response:
        session = self.sessions.get(request.args.get("upload_id", ""))
        if session is None or session.expired:
            return self._error(call, 404, "notFound", "The upload session was not found.")
        content_range = request.headers.get("Content-Range", "")
        if _STATUS_QUERY.match(content_range):
            return self._session_state(call, session)
        match = _CHUNK_RANGE.match(content_range)
        if not match:
            return self._error(call, 400, "badRequest", "Failed to parse Content-Range header.")
        index = self._chunks_seen
        self._chunks_seen += 1
        faults = self._chunk_faults.get(index, [])
        fault = faults.pop(0) if faults else None
        if fault and fault[0] == "fail":
            return self._error(call, fault[1], "backendError")
        if fault and fault[0] == "expire":
            session.expired = True
            return self._error(call, 404, "notFound", "The upload session was not found.")
        if fault and fault[0] == "token":
            self._tokens.clear()
            return self._error(call, 401, "authError")
        start, end = int(match[1]), int(match[2])
        if start > len(session.received) or len(body) != end - start + 1 or end >= session.total:
            return self._error(call, 400, "badRequest", "Invalid Content-Range for this upload.")
        last = end + 1 == session.total
        if not last and len(body) % CHUNK_GRANULE:
            return self._error(call, 400, "badRequest", "Chunks must be multiples of 256 KiB.")
        del session.received[start:]
        session.received += body
        if last:
            self._create(session)
        if fault and fault[0] == "drop":
            _drop(request)
            return Response(b"", status=200)  # never reaches the client
        if last and self._lost_final:
            return self._error(call, self._lost_final.popleft(), "backendError")
        return self._session_state(call, session)

    def _session_state(self, call: Call, session: Session) -> Response:
        if session.video_id is not None:
            parts = set(session.params.get("part", "snippet,status").split(","))
            return self._json(call, 200, self.video(session.video_id).resource(parts))
        if not session.received:
            return self._empty(call, 308)
        return self._empty(call, 308, Range=f"bytes=0-{len(session.received) - 1}")

    def _create(self, session: Session) -> Video:
        video_id = f"vid{len(self.videos) + 1:08d}"
        now = dt.datetime.now(dt.UTC)
        snippet = {
            "publishedAt": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "channelId": CHANNEL_ID,
            "channelTitle": "VF Demo",
            "liveBroadcastContent": "none",
            **session.snippet,
        }
        snippet.setdefault("categoryId", "22")
        status = {
            "uploadStatus": "uploaded",
            "license": "youtube",
            "embeddable": True,
            "publicStatsViewable": True,
            **session.status,
        }
        status["madeForKids"] = bool(status.get("selfDeclaredMadeForKids", False))
        video = Video(video_id, snippet, status, session.params, bytes(session.received), now)
        self.videos.append(video)
        session.video_id = video_id
        return video

    def _thumbnail(self, call: Call, request: Request, body: bytes) -> Response:
        video_id = request.args.get("videoId", "")
        if not any(v.id == video_id for v in self.videos):
            return self._error(call, 404, "videoNotFound")
        if not self._verified:
            return self._error(call, 403, "forbidden")
        kind = request.headers.get("Content-Type", "")
        magic_ok = body.startswith(b"\xff\xd8\xff") or body.startswith(b"\x89PNG\r\n\x1a\n")
        if not body or len(body) > THUMBNAIL_MAX_BYTES or not magic_ok:
            return self._error(call, 400, "invalidImage")
        video = self.video(video_id)
        video.thumbnail, video.thumbnail_type = body, kind
        url = f"https://i.ytimg.com/vi/{video_id}"
        sizes = {"default": (120, 90), "medium": (320, 180), "high": (480, 360)}
        item = {
            name: {"url": f"{url}/{name}.jpg", "width": w, "height": h}
            for name, (w, h) in sizes.items()
        }
        return self._json(
            call, 200,
            {"kind": "youtube#thumbnailSetResponse", "etag": "etag-thumb", "items": [item]},
        )  # fmt: skip

    # --- reading back -------------------------------------------------------------------------

    def _channels(self, call: Call, request: Request) -> Response:
        if request.args.get("mine") != "true":
            return self._error(call, 400, "badRequest", "Only mine=true is faked.")
        channel = {
            "kind": "youtube#channel",
            "etag": "etag-channel",
            "id": CHANNEL_ID,
            "contentDetails": {"relatedPlaylists": {"likes": "", "uploads": UPLOADS_PLAYLIST}},
        }
        return self._json(
            call, 200,
            {"kind": "youtube#channelListResponse", "etag": "etag-channels",
             "pageInfo": {"totalResults": 1, "resultsPerPage": 5}, "items": [channel]},
        )  # fmt: skip

    def _playlist_items(self, call: Call, request: Request) -> Response:
        if request.args.get("playlistId") != UPLOADS_PLAYLIST:
            return self._error(call, 404, "playlistNotFound", "The playlist cannot be found.")
        size = min(50, int(request.args.get("maxResults", "5")))
        token = request.args.get("pageToken", "")
        offset = int(token[1:]) if token.startswith("p") else 0
        newest_first = list(reversed(self.videos))
        page = newest_first[offset : offset + size]
        items = [
            {
                "kind": "youtube#playlistItem",
                "etag": f"etag-item-{v.id}",
                "id": f"item-{v.id}",
                "snippet": {
                    "publishedAt": v.snippet["publishedAt"],
                    "channelId": CHANNEL_ID,
                    "title": v.snippet.get("title", ""),
                    "description": v.snippet.get("description", ""),
                    "channelTitle": "VF Demo",
                    "playlistId": UPLOADS_PLAYLIST,
                    "position": offset + i,
                    "resourceId": {"kind": "youtube#video", "videoId": v.id},
                    "videoOwnerChannelId": CHANNEL_ID,
                },
            }
            for i, v in enumerate(page)
        ]
        answer: dict[str, Any] = {
            "kind": "youtube#playlistItemListResponse",
            "etag": "etag-items",
            "items": items,
            "pageInfo": {"totalResults": len(self.videos), "resultsPerPage": size},
        }
        if offset + size < len(newest_first):
            answer["nextPageToken"] = f"p{offset + size}"
        if offset:
            answer["prevPageToken"] = f"p{max(0, offset - size)}"
        return self._json(call, 200, answer)

    def _videos_list(self, call: Call, request: Request) -> Response:
        ids = [i for i in request.args.get("id", "").split(",") if i]
        if len(ids) > 50:
            return self._error(call, 400, "badRequest", "At most 50 ids per request.")
        parts = set(request.args.get("part", "").split(","))
        items = [v.resource(parts) for v in self.videos if v.id in ids]
        return self._json(
            call, 200,
            {"kind": "youtube#videoListResponse", "etag": "etag-videos", "items": items,
             "pageInfo": {"totalResults": len(items), "resultsPerPage": len(items)}},
        )  # fmt: skip

    def _reports(self, call: Call, request: Request) -> Response:
        if not self.analytics_authorized:
            return self._error(call, 403, "insufficientPermissions", "Forbidden")
        args = request.args
        needed = ("ids", "startDate", "endDate", "metrics")
        if any(not args.get(name) for name in needed) or args["ids"] != "channel==MINE":
            return self._error(call, 400, "badRequest", "Required parameter missing.")
        metrics = args["metrics"].split(",")
        wanted = parse_qs(f"v={args.get('filters', '').removeprefix('video==')}")["v"]
        ids = wanted[0].split(",") if wanted else []
        headers = [{"name": "video", "columnType": "DIMENSION", "dataType": "STRING"}] + [
            {"name": m, "columnType": "METRIC", "dataType": "INTEGER"} for m in metrics
        ]
        rows = [
            [v.id, *(v.analytics.get(m, 0) for m in metrics)]
            for v in self.videos
            if v.id in ids and v.analytics
        ]
        return self._json(
            call, 200,
            {"kind": "youtubeAnalytics#resultTable", "columnHeaders": headers, "rows": rows},
        )  # fmt: skip


def _metadata_problem(snippet: dict[str, Any], status: dict[str, Any]) -> str | None:
    """YouTube's 400 reason for video metadata it refuses, or None."""
    title = snippet.get("title")
    if (
        not isinstance(title, str)
        or not title.strip()
        or len(title) > 100
        or set("<>") & set(title)
    ):
        return "invalidTitle"
    description = snippet.get("description", "")
    if len(description.encode()) > DESCRIPTION_MAX_BYTES or set("<>") & set(description):
        return "invalidDescription"
    tags = snippet.get("tags") or []
    if sum(len(t) + (2 if " " in t else 0) for t in tags) + max(0, len(tags) - 1) > 500:
        return "invalidTags"
    if snippet.get("categoryId", "22") not in CATEGORIES:
        return "invalidCategoryId"
    if status.get("privacyStatus", "public") not in {"public", "private", "unlisted"}:
        return "invalidVideoMetadata"
    if not isinstance(status.get("selfDeclaredMadeForKids", False), bool):
        return "invalidVideoMetadata"
    if "publishAt" in status:
        try:
            when = dt.datetime.fromisoformat(status["publishAt"].replace("Z", "+00:00"))
        except (AttributeError, ValueError):
            return "invalidPublishAt"
        if status.get("privacyStatus") != "private" or when <= dt.datetime.now(dt.UTC):
            return "invalidPublishAt"
    return None


def _drop(request: Request) -> None:
    """Shuts the connection under the request: the client sees it close with no answer."""
    sock = request.environ.get("werkzeug.socket")
    if isinstance(sock, socket.socket):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
