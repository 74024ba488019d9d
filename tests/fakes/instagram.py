"""A protocol-faithful Instagram Graph API (Reels, resumable upload) for pytest-httpserver
(providers.md 1.2). One server plays both hosts: the Graph API under `/v21.0` and rupload under
`/ig-api-upload/`.

Routes: `POST /v21.0/{ig-user-id}/media` (query or form: `upload_type=resumable`,
`media_type=REELS`, `caption` <= 2200 characters, `share_to_feed`, `thumb_offset`) -> `{"id"}`;
`POST /ig-api-upload/{container-id}` (headers `Authorization: OAuth <token>`, `offset`,
`file_size`, raw body) -> `{"success": true, "message"}`; `GET /ig-api-upload/{container-id}`
-> `{"offset": <bytes it has>}`; `GET /v21.0/{container-id}?fields=status_code,status`;
`POST /v21.0/{ig-user-id}/media_publish?creation_id=` -> `{"id"}`;
`GET /v21.0/{ig-user-id}/media?fields=id,caption,permalink,timestamp&limit=&after=` (newest first,
cursor paging); `GET /v21.0/{media-id}?fields=permalink`; `GET /v21.0/{media-id}/insights?metric=`.
Graph calls take the token as `Authorization: Bearer` or an `access_token` parameter.
Limitation: werkzeug's server drops header names with an underscore, so the fake cannot see
`file_size`; it takes the size an upload completes as the file's size.

Containers go IN_PROGRESS -> (upload complete, then `processing_polls` status reads)
FINISHED -> PUBLISHED; or ERROR (`fail_processing`), or EXPIRED (`expire_containers`).
Publishing an unfinished container is Graph's 9007 / 2207027 "media not ready"; publishing a
published one is refused. Errors are Graph's `{"error": {"message", "type", "code",
"error_subcode", "fbtrace_id"}}`, rupload's `{"debug_info": {"retriable", "type", "message"}}`.

Faults, served in order on the route named (`None`: any; routes "create", "upload", "offset",
"status", "publish", "list", "media", "insights"): `fail_once(status, code=, subcode=, on=,
after=, partial=)` (`partial`: an upload keeps the first half of its body, then fails),
`rate_limit_once(minutes, on=)` (code 4 with `X-Business-Use-Case-Usage`), `fail_always(status)`,
`revoke_token()` (190 from then on), `lost_response_once()` (media_publish publishes, then a 500
hides it), `reach_publishing_limit()`, `fail_processing(status)`, `expire_containers()`.

Published media are kept in `posts` (so tests count duplicates); every request in `calls`.
"""

from __future__ import annotations

import json
import re
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

ACCESS_TOKEN = "EAAGm0PX4ZCpsBAO7ZBfakeLongLivedUserToken9x8y7z6w5v4u3t2s1"
IG_USER_ID = "17841400008460056"
API = "/v21.0"
CAPTION_MAX = 2200


@dataclass
class Call:
    method: str
    path: str
    route: str
    status: int
    at: float
    params: dict[str, str]
    headers: dict[str, str]
    body_size: int


@dataclass
class Container:
    id: str
    params: dict[str, str]
    file_size: int | None = None
    data: bytearray = field(default_factory=bytearray)
    polls_after_upload: int = 0
    state: str = "IN_PROGRESS"
    status: str = "In Progress"
    media_id: str | None = None

    @property
    def uploaded(self) -> bool:
        return self.file_size is not None and len(self.data) >= self.file_size


@dataclass
class Media:
    id: str
    container_id: str
    caption: str
    video: bytes
    timestamp: str

    @property
    def permalink(self) -> str:
        return f"https://www.instagram.com/reel/C{self.id[-8:]}/"


@dataclass
class FakeInstagram:
    """Register on a pytest-httpserver; point the publisher at `base_url` and `upload_base_url`."""

    server: HTTPServer
    token: str = ACCESS_TOKEN
    ig_user_id: str = IG_USER_ID
    processing_polls: int = 1
    posts: list[Media] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    containers: dict[str, Container] = field(default_factory=dict)
    insights: dict[str, dict[str, int]] = field(default_factory=dict)
    _faults: deque[dict[str, Any]] = field(default_factory=deque)
    _fail_status: int | None = None
    _revoked: bool = False
    _lose_publish: bool = False
    _limit_reached: bool = False
    _processing_error: str | None = None

    def __post_init__(self) -> None:
        self.server.expect_request(re.compile(r"^/.*$")).respond_with_handler(self._handle)

    @property
    def base_url(self) -> str:
        return self.server.url_for("").rstrip("/") + API

    @property
    def upload_base_url(self) -> str:
        return self.server.url_for("").rstrip("/")

    def calls_to(self, route: str) -> list[Call]:
        return [c for c in self.calls if c.route == route]

    # --- faults -------------------------------------------------------------------------------

    def fail_once(
        self,
        status: int = 500,
        *,
        code: int | None = None,
        subcode: int | None = None,
        on: str | None = None,
        after: int = 0,
        partial: bool = False,
    ) -> None:
        self._faults.append(
            {"status": status, "code": code, "subcode": subcode, "on": on, "after": after,
             "partial": partial, "kind": "fail"}
        )  # fmt: skip

    def rate_limit_once(self, minutes: int = 1, on: str | None = None) -> None:
        self._faults.append({"kind": "429", "minutes": minutes, "on": on, "after": 0})

    def fail_always(self, status: int = 500) -> None:
        self._fail_status = status

    def revoke_token(self) -> None:
        self._revoked = True

    def lost_response_once(self) -> None:
        self._lose_publish = True

    def reach_publishing_limit(self) -> None:
        self._limit_reached = True

    def fail_processing(self, status: str = "Error: Video processing failed (2207026)") -> None:
        self._processing_error = status

    def expire_containers(self) -> None:
        for container in self.containers.values():
            if container.state != "PUBLISHED":
                container.state, container.status = "EXPIRED", "Expired"

    # --- protocol -----------------------------------------------------------------------------

    def _answer(
        self,
        request: Request,
        route: str,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> Response:
        self.calls.append(
            Call(
                request.method,
                request.path,
                route,
                status,
                time.monotonic(),
                {**request.args.to_dict(), **request.form.to_dict()},
                dict(request.headers.items()),
                len(request.get_data()) if route == "upload" else 0,
            )
        )
        return Response(
            json.dumps(body), status=status, content_type="application/json", headers=headers
        )

    def _graph_error(
        self,
        request: Request,
        route: str,
        status: int,
        code: int,
        message: str,
        subcode: int | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> Response:
        error: dict[str, Any] = {
            "message": message, "type": "OAuthException", "code": code,
            "fbtrace_id": "AbCdEfGhIjKlMnOp", **extra,
        }  # fmt: skip
        if subcode is not None:
            error["error_subcode"] = subcode
        return self._answer(request, route, status, {"error": error}, headers)

    def _upload_error(
        self, request: Request, route: str, status: int, kind: str, message: str, retriable: bool
    ) -> Response:
        body = {"debug_info": {"retriable": retriable, "type": kind, "message": message}}
        return self._answer(request, route, status, body)

    def _route(self, request: Request) -> tuple[str, str] | None:
        path, method = request.path, request.method
        if path.startswith("/ig-api-upload/"):
            container = path.removeprefix("/ig-api-upload/")
            return ("upload" if method == "POST" else "offset"), container
        if not path.startswith(API + "/"):
            return None
        parts = path.removeprefix(API + "/").strip("/").split("/")
        if len(parts) == 2 and parts[1] == "media":
            return ("create" if method == "POST" else "list"), parts[0]
        if len(parts) == 2 and parts[1] == "media_publish" and method == "POST":
            return "publish", parts[0]
        if len(parts) == 2 and parts[1] == "insights" and method == "GET":
            return "insights", parts[0]
        if len(parts) == 1 and method == "GET":
            return ("status" if parts[0] in self.containers else "media"), parts[0]
        return None

    def _fault_for(self, route: str) -> dict[str, Any] | None:
        for fault in self._faults:
            if fault["on"] in (None, route):
                if fault["after"] > 0:
                    fault["after"] -= 1
                    return None
                self._faults.remove(fault)
                return fault
        return None

    def _authorized(self, request: Request, route: str) -> bool:
        if self._revoked:
            return False
        header = request.headers.get("Authorization", "")
        if route in ("upload", "offset"):
            return header == f"OAuth {self.token}"
        return header == f"Bearer {self.token}" or request.values.get("access_token") == self.token

    def _handle(self, request: Request) -> Response:
        routed = self._route(request)
        if routed is None:
            return self._graph_error(request, "?", 400, 100, "Unsupported request")
        route, node = routed
        uploading = route in ("upload", "offset")
        if not self._authorized(request, route):
            if uploading:
                return self._upload_error(
                    request, route, 401, "OAuthException", "Invalid OAuth access token", False
                )
            return self._graph_error(
                request, route, 400, 190,
                "Error validating access token: The session has been invalidated because the "
                "user changed their password or Facebook has changed the session for security "
                "reasons.",
                subcode=460,
            )  # fmt: skip
        if self._fail_status is not None:
            return self._server_error(request, route, self._fail_status)
        fault = self._fault_for(route)
        if fault and fault["kind"] == "429":
            usage = {
                self.ig_user_id: [
                    {"type": "instagram", "call_count": 100, "total_cputime": 40,
                     "total_time": 60, "estimated_time_to_regain_access": fault["minutes"]}
                ]
            }  # fmt: skip
            return self._graph_error(
                request, route, 400, 4, "Application request limit reached",
                headers={"X-Business-Use-Case-Usage": json.dumps(usage)}, is_transient=True,
            )  # fmt: skip
        if fault and fault["kind"] == "fail":
            if fault["code"] is not None:
                return self._graph_error(
                    request, route, fault["status"], fault["code"],
                    f"Graph error {fault['code']}", subcode=fault["subcode"],
                )  # fmt: skip
            if fault["partial"] and route == "upload":
                return self._upload(request, route, node, partial=True)
            return self._server_error(request, route, fault["status"])
        return getattr(self, f"_{route}")(request, route, node)

    def _server_error(self, request: Request, route: str, status: int) -> Response:
        if route in ("upload", "offset"):
            return self._upload_error(request, route, status, "ServerError", "Server error", True)
        return self._graph_error(
            request, route, status, 2, "An unexpected error has occurred. Please retry your "
            "request later.", is_transient=True,
        )  # fmt: skip

    def _create(self, request: Request, route: str, node: str) -> Response:
        params = {**request.args.to_dict(), **request.form.to_dict()}
        if node != self.ig_user_id:
            return self._graph_error(
                request, route, 400, 100, f"Object with ID '{node}' does not exist"
            )
        if params.get("upload_type") != "resumable" or params.get("media_type") != "REELS":
            return self._graph_error(
                request, route, 400, 100, "The parameter video_url is required"
            )
        if len(params.get("caption", "")) > CAPTION_MAX:
            return self._graph_error(
                request, route, 400, 100, "The caption is too long", subcode=2207006
            )
        container = Container(id=f"1790000000{len(self.containers) + 1:07d}", params=params)
        self.containers[container.id] = container
        return self._answer(request, route, 200, {"id": container.id})

    def _upload(self, request: Request, route: str, node: str, partial: bool = False) -> Response:
        container = self.containers.get(node)
        if container is None or container.state == "EXPIRED":
            return self._upload_error(
                request, route, 400, "ProcessingFailedError", "Invalid upload session", False
            )
        body = request.get_data()
        try:
            offset = int(request.headers["offset"])
            # werkzeug's dev server drops header names with an underscore (a spoofing guard), so
            # `file_size` never reaches us here: the size is what this request completes.
            size = int(request.headers.get("file_size") or offset + len(body))
        except (KeyError, ValueError):
            return self._upload_error(
                request, route, 400, "ProcessingFailedError", "offset and file_size required", False
            )
        if offset != len(container.data) or (container.file_size not in (None, size)):
            return self._upload_error(
                request, route, 400, "ProcessingFailedError",
                f"offset {offset} does not match the {len(container.data)} bytes received", False,
            )  # fmt: skip
        container.file_size = size
        if partial:  # the connection dropped half-way: what arrived is kept
            container.data += body[: len(body) // 2]
            return self._upload_error(request, route, 502, "ServerError", "Bad Gateway", True)
        container.data += body
        if len(container.data) > size:
            return self._upload_error(
                request, route, 400, "ProcessingFailedError", "more bytes than file_size", False
            )
        return self._answer(
            request, route, 200, {"success": True, "message": "Upload successful. ..."}
        )

    def _offset(self, request: Request, route: str, node: str) -> Response:
        container = self.containers.get(node)
        if container is None:
            return self._upload_error(
                request, route, 400, "ProcessingFailedError", "Invalid upload session", False
            )
        return self._answer(request, route, 200, {"offset": len(container.data)})

    def _status(self, request: Request, route: str, node: str) -> Response:
        container = self.containers[node]
        if container.state == "IN_PROGRESS" and container.uploaded:
            if self._processing_error is not None:
                container.state, container.status = "ERROR", self._processing_error
            elif container.polls_after_upload >= self.processing_polls:
                container.state, container.status = "FINISHED", "Finished: Media has been uploaded"
            container.polls_after_upload += 1
        return self._answer(
            request, route, 200,
            {"status_code": container.state, "status": container.status, "id": container.id},
        )  # fmt: skip

    def _publish(self, request: Request, route: str, node: str) -> Response:
        container = self.containers.get(request.values.get("creation_id", ""))
        if node != self.ig_user_id or container is None:
            return self._graph_error(request, route, 400, 100, "Invalid parameter")
        if self._limit_reached:
            return self._graph_error(
                request, route, 400, 9, "Application request limit reached",
                subcode=2207042, error_user_msg="You reached the maximum number of posts that "
                "is allowed to be published by Content Publishing API (content_publishing_limit).",
            )  # fmt: skip
        if container.state == "PUBLISHED":
            return self._graph_error(
                request, route, 400, 9007, "Media already published", subcode=2207008
            )
        if container.state != "FINISHED":
            return self._graph_error(
                request, route, 400, 9007, "Media ID is not available", subcode=2207027,
                error_user_msg="The media is not ready for publishing, please wait for a moment",
            )  # fmt: skip
        media = Media(
            id=f"1801000000{len(self.posts) + 1:07d}",
            container_id=container.id,
            caption=container.params.get("caption", ""),
            video=bytes(container.data),
            timestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000"),
        )
        self.posts.append(media)
        container.state, container.status, container.media_id = "PUBLISHED", "Published", media.id
        if self._lose_publish:
            self._lose_publish = False
            return self._server_error(request, route, 500)
        return self._answer(request, route, 200, {"id": media.id})

    def _list(self, request: Request, route: str, node: str) -> Response:
        if node != self.ig_user_id:
            return self._graph_error(request, route, 400, 100, "Unsupported get request")
        limit = int(request.args.get("limit", "25"))
        start = int(request.args.get("after") or 0)
        newest = list(reversed(self.posts))
        page = newest[start : start + limit]
        fields = (request.args.get("fields") or "id").split(",")
        data = [
            {k: v for k, v in _media_fields(m).items() if k in fields or k == "id"} for m in page
        ]
        body: dict[str, Any] = {"data": data}
        if page:
            body["paging"] = {"cursors": {"before": str(start), "after": str(start + len(page))}}
            if start + len(page) < len(newest):
                body["paging"]["next"] = (
                    f"{self.base_url}/{node}/media?access_token={self.token}"
                    f"&limit={limit}&after={start + len(page)}"
                )
        return self._answer(request, route, 200, body)

    def _media(self, request: Request, route: str, node: str) -> Response:
        media = next((m for m in self.posts if m.id == node), None)
        if media is None:
            return self._graph_error(
                request, route, 400, 100, f"Unsupported get request. Object with ID '{node}' "
                "does not exist", subcode=33,
            )  # fmt: skip
        return self._answer(request, route, 200, _media_fields(media))

    def _insights(self, request: Request, route: str, node: str) -> Response:
        if node not in self.insights:
            return self._graph_error(
                request, route, 400, 100, f"Unsupported get request. Object with ID '{node}' "
                "does not exist", subcode=33,
            )  # fmt: skip
        wanted = (request.args.get("metric") or "").split(",")
        data = [
            {"name": name, "period": "lifetime", "values": [{"value": value}],
             "title": name, "id": f"{node}/insights/{name}/lifetime"}
            for name, value in self.insights[node].items()
            if name in wanted
        ]  # fmt: skip
        return self._answer(request, route, 200, {"data": data})


def _media_fields(media: Media) -> dict[str, Any]:
    return {
        "id": media.id,
        "caption": media.caption,
        "permalink": media.permalink,
        "timestamp": media.timestamp,
        "media_type": "VIDEO",
        "media_product_type": "REELS",
    }
