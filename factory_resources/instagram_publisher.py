"""Posts a topic's video as an Instagram Reel through the Graph API's resumable upload.

The flow (providers.md 1.2): `POST /{ig-user-id}/media?upload_type=resumable&media_type=REELS`
with the caption (which carries the publication marker) -> a container id; the file goes raw to
`POST {rupload}/ig-api-upload/{container-id}` with `Authorization: OAuth <token>`, `offset` and
`file_size`; `GET /{container-id}?fields=status_code,status` until FINISHED; then
`POST /{ig-user-id}/media_publish?creation_id=<container-id>` -> the media id.

Cover: Instagram takes a custom cover only as `cover_url`, a public URL it fetches itself, and a
local thumbnail has none. So `request.thumbnail` is not uploaded; the cover is the frame at
`thumb_offset` = 1000 ms, which is where our videos show their title card.

Exactly once: a container becomes a post only through `media_publish`, so creating containers
and uploading are safe to repeat; the container id is saved right after it is made, and a retry
asks the container's status before doing anything: EXPIRED (24 h) -> a new container; ERROR ->
PublishFailure; IN_PROGRESS -> ask the upload endpoint how many bytes it has (`GET` on the
rupload URL answers `{"offset": n}`, the rupload protocol [U]) and send the rest; FINISHED ->
publish; PUBLISHED -> the post exists, find it. `{"publishing": true}` is saved before
`media_publish` and `{"media_id"}` after it. `media_publish` is never repeated blindly: after a
failed or unanswered call the container's status says whether it went through (PUBLISHED) and
the media list (`GET /{ig-user-id}/media`, the marker in the caption) gives the media id; only a
container still FINISHED is published again. `find`
returns the saved media id, or searches that list once publishing was attempted. The residual
window is Instagram's listing lag: a post made but not yet listed makes the attempt fail
retryably (the container says PUBLISHED), never publish again.

Errors: 190 -> "reconnect the Instagram account"; 4/17/32/613 (and HTTP 429) -> retryable rate
limit, waiting `estimated_time_to_regain_access` from `X-Business-Use-Case-Usage` when given;
9007 / 2207027 (media not ready) on publish -> keep polling; the content publishing limit
(subcode 2207042) -> a PublishFailure saying the 50-posts-a-day limit is reached.

Secrets: the token travels in the `Authorization` header, never in a URL. Should one reach a
URL (a paging `next` link echoes `access_token=`), httpx's log lines are masked by a filter and
every error text is redacted; httpx exceptions are never chained onto ours.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from factory_core.publish_metadata import Platform
from factory_core.publishing import PostMetrics, PublishedPost, PublishFailure, PublishRequest
from factory_resources.faults import (
    ProviderError,
    call_with_retries,
    mask_in_httpx_logs,
    redact,
    retry_after_seconds,
)

log = logging.getLogger(__name__)

PROVIDER = "instagram"
DEFAULT_BASE_URL = "https://graph.facebook.com/v21.0"
DEFAULT_UPLOAD_BASE_URL = "https://rupload.facebook.com"
CAPTION_MAX = 2200  # characters
THUMB_OFFSET_MS = 1000
MEDIA_PAGES = 3  # how far back find looks: 3 pages of 50 recent posts
RECONNECT = (
    "reconnect the Instagram account: its token expired or was revoked, or it lost the "
    "instagram_content_publish permission"
)
DAILY_LIMIT = (
    "Instagram's limit of 50 API-published posts in 24 hours is reached for this account; "
    "the post goes out after the oldest of them is a day old"
)
INSIGHTS = (
    "views,reach,likes,comments,shares,saved,ig_reels_avg_watch_time,ig_reels_video_view_total_time"
)
_RATE_LIMIT_CODES = frozenset({4, 17, 32, 613})
_NOT_READY = (9007, 2207027)
_PUBLISH_LIMIT_SUBCODE = 2207042
_ACCESS_TOKEN = re.compile(r"(access_token=)[^&\s\"']+")


def _guard_httpx_logs() -> None:
    # httpx logs every request's URL at INFO; a Graph paging URL may carry access_token=.
    mask_in_httpx_logs("graph access token", _ACCESS_TOKEN, "\\1***")


def instagram_caption(text: str, marker: str) -> str:
    """`text` ending with `#<marker>` unless it carries it. PostMetadata already keeps the text
    within 2200 characters and 30 hashtags; the marker's room is taken from the text's end."""
    if marker in text:
        return text[:CAPTION_MAX]
    tail = f"\n\n#{marker}"
    return text.strip()[: CAPTION_MAX - len(tail)].rstrip() + tail


class _NotReady(Exception):
    """media_publish said the container is not finished yet (9007 / 2207027)."""


class InstagramPublisher:
    """The Publisher and MetricsSource for Instagram Reels (Facebook Login for Business).
    Credentials: {"access_token": ..., "ig_user_id": ...}."""

    platform = Platform.INSTAGRAM

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        upload_base_url: str = DEFAULT_UPLOAD_BASE_URL,
        *,
        timeout_s: float = 120.0,
        attempts: int = 4,
        sleep: Callable[[float], None] = time.sleep,
        poll_interval_s: float = 5.0,
        poll_timeout_s: float = 600,
        thumb_offset_ms: int = THUMB_OFFSET_MS,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.upload_base_url = upload_base_url.rstrip("/")
        self.timeout = httpx.Timeout(timeout_s, connect=min(10.0, timeout_s))
        # One pooled client: a fresh one per call would rebuild its TLS context every time.
        self._http = httpx.Client(timeout=self.timeout)
        self.attempts = attempts
        self.sleep = sleep
        self.poll_interval_s = poll_interval_s
        self.poll_timeout_s = poll_timeout_s
        self.thumb_offset_ms = thumb_offset_ms
        _guard_httpx_logs()

    # --- Publisher -----------------------------------------------------------------------------

    def find(self, request: PublishRequest, credentials: dict[str, Any]) -> PublishedPost | None:
        """The saved media id; or, once publishing was attempted, the recent post whose caption
        carries the marker; else None (nothing can have been published)."""
        media_id = request.progress.get("media_id")
        if media_id:
            return PublishedPost(
                platform=self.platform,
                post_id=str(media_id),
                url=request.progress.get("permalink"),
            )
        if not request.progress.get("publishing"):
            return None
        token, ig_user = _credentials(credentials)
        return self._search(token, ig_user, request.marker)

    def publish(
        self,
        request: PublishRequest,
        credentials: dict[str, Any],
        save_progress: Callable[[dict[str, Any]], None],
    ) -> PublishedPost:
        token, ig_user = _credentials(credentials)
        earlier = self.find(request, credentials)
        if earlier is not None:
            return earlier
        size = request.video.stat().st_size
        container = request.progress.get("container_id")
        offset: int | None = None  # None: ask the upload endpoint
        for _fresh in range(3):
            if container:
                state, status = self._container_status(token, str(container))
                if state == "EXPIRED":
                    log.info("Instagram container %s expired: making a new one", container)
                    container = None
                elif state == "PUBLISHED":
                    return self._reconcile(token, ig_user, request.marker, save_progress)
                elif state == "ERROR":
                    raise PublishFailure(self.platform, _processing_error(status))
            if not container:
                container = self._create_container(token, ig_user, request)
                save_progress({"container_id": container})
                offset = 0
                state = "IN_PROGRESS"
            if state != "FINISHED":
                self._upload(token, str(container), request.video, size, offset)
                state = self._wait_until_finished(token, str(container))
            if state == "FINISHED":
                return self._publish(token, ig_user, str(container), request.marker, save_progress)
            container = None  # expired while we waited: one more container
        raise ProviderError(PROVIDER, "containers kept expiring before publishing", retryable=True)

    def _create_container(self, token: str, ig_user: str, request: PublishRequest) -> str:
        params = {
            "upload_type": "resumable",
            "media_type": "REELS",
            "caption": instagram_caption(request.metadata.text, request.marker),
            "share_to_feed": "true",
            # No cover_url: Instagram fetches covers from a public URL, which a local file lacks.
            "thumb_offset": str(self.thumb_offset_ms),
        }
        answer = self._graph("POST", f"/{ig_user}/media", token, params, "create container")
        container = answer.get("id")
        if not container:
            raise ProviderError(PROVIDER, "create container answered no id")
        return str(container)

    # --- upload and status ---------------------------------------------------------------------

    def _upload(
        self, token: str, container: str, video: Path, size: int, offset: int | None
    ) -> None:
        """Sends the file from the byte the upload endpoint has; a failed send asks again."""
        known = {"offset": offset}
        url = f"{self.upload_base_url}/ig-api-upload/{container}"

        def send() -> None:
            if known["offset"] is None:
                known["offset"] = self._uploaded_bytes(token, url)
            start = int(known["offset"] or 0)
            if start >= size:
                return
            known["offset"] = None  # whatever happens now, ask before the next send
            with video.open("rb") as fh:
                fh.seek(start)
                body = fh.read()
            headers = {
                "Authorization": f"OAuth {token}",
                "offset": str(start),
                "file_size": str(size),
                "Content-Type": "application/octet-stream",
            }
            response = self._send("POST", url, token, "upload", content=body, headers=headers)
            if response.status_code != 200 or not _json(response).get("success", True):
                _raise_upload(response, token)
            known["offset"] = size

        call_with_retries(send, attempts=self.attempts, sleep=self.sleep)

    def _uploaded_bytes(self, token: str, url: str) -> int:
        headers = {"Authorization": f"OAuth {token}"}
        response = self._send("GET", url, token, "upload offset", headers=headers)
        if response.status_code != 200:
            _raise_upload(response, token)
        return int(_json(response).get("offset") or 0)

    def _container_status(self, token: str, container: str) -> tuple[str, dict[str, Any]]:
        answer = self._graph(
            "GET", f"/{container}", token, {"fields": "status_code,status"}, "container status"
        )
        return str(answer.get("status_code") or "IN_PROGRESS"), answer

    def _wait_until_finished(self, token: str, container: str) -> str:
        waited = 0.0
        while True:
            state, status = self._container_status(token, container)
            if state in ("FINISHED", "EXPIRED", "PUBLISHED"):
                return state
            if state == "ERROR":
                raise PublishFailure(self.platform, _processing_error(status))
            self._wait(waited, container, state)
            waited += self.poll_interval_s

    def _wait(self, waited: float, container: str, state: str) -> None:
        if waited >= self.poll_timeout_s:
            # The container id is saved: the next attempt carries on with it.
            raise ProviderError(
                PROVIDER,
                f"container {container} still {state} after {waited:.0f} s",
                retryable=True,
            )
        self.sleep(self.poll_interval_s)

    # --- publish and reconcile -----------------------------------------------------------------

    def _publish(
        self,
        token: str,
        ig_user: str,
        container: str,
        marker: str,
        save_progress: Callable[[dict[str, Any]], None],
    ) -> PublishedPost:
        save_progress({"publishing": True})
        waited, failures = 0.0, 0
        while True:
            try:
                answer = self._graph_once(
                    "POST", f"/{ig_user}/media_publish", token, {"creation_id": container},
                    "publish",
                )  # fmt: skip
            except _NotReady:
                self._wait(waited, container, "not ready")
                waited += self.poll_interval_s
                continue
            except ProviderError as exc:
                if not exc.retryable:
                    raise
                # Did it go through? Only an unpublished container may be published again.
                state, _status = self._container_status(token, container)
                if state == "PUBLISHED":
                    return self._reconcile(token, ig_user, marker, save_progress)
                failures += 1
                if failures >= self.attempts:
                    raise
                self.sleep(exc.retry_after_s or self.poll_interval_s)
                continue
            media_id = str(answer["id"])
            save_progress({"media_id": media_id})
            return PublishedPost(
                platform=self.platform,
                post_id=media_id,
                url=self._permalink(token, media_id),
            )

    def _reconcile(
        self,
        token: str,
        ig_user: str,
        marker: str,
        save_progress: Callable[[dict[str, Any]], None],
    ) -> PublishedPost:
        found = self._search(token, ig_user, marker)
        if found is None:
            raise ProviderError(
                PROVIDER,
                "the container was published but the post is not listed yet",
                retryable=True,
            )
        save_progress({"media_id": found.post_id, "permalink": found.url})
        return found

    def _search(self, token: str, ig_user: str, marker: str) -> PublishedPost | None:
        params: dict[str, str] = {"fields": "id,caption,permalink,timestamp", "limit": "50"}
        for _page in range(MEDIA_PAGES):
            answer = self._graph("GET", f"/{ig_user}/media", token, params, "media list")
            for media in answer.get("data") or []:
                if marker in str(media.get("caption") or ""):
                    return PublishedPost(
                        platform=self.platform,
                        post_id=str(media["id"]),
                        url=media.get("permalink"),
                        published_at=_timestamp(media.get("timestamp")),
                    )
            after = ((answer.get("paging") or {}).get("cursors") or {}).get("after")
            if not after or not (answer.get("paging") or {}).get("next"):
                return None
            params = {**params, "after": str(after)}
        return None

    def _permalink(self, token: str, media_id: str) -> str | None:
        """The post's link; the post exists whatever happens here, so a failure is no error."""
        try:
            answer = self._graph("GET", f"/{media_id}", token, {"fields": "permalink"}, "permalink")
        except (ProviderError, PublishFailure) as exc:
            log.warning("Instagram post %s made; its permalink is unknown: %s", media_id, exc)
            return None
        return answer.get("permalink")

    # --- MetricsSource -------------------------------------------------------------------------

    def metrics(self, post_ids: list[str], credentials: dict[str, Any]) -> list[PostMetrics]:
        """Reels insights per media id (instagram_manage_insights); watch times come in ms.
        A post Instagram no longer knows (code 100) is left out."""
        token, _ig_user = _credentials(credentials)
        found: list[PostMetrics] = []
        for media_id in post_ids:
            try:
                answer = self._graph(
                    "GET", f"/{media_id}/insights", token, {"metric": INSIGHTS}, "insights"
                )
            except PublishFailure as exc:
                if "(code 100" in exc.reason:
                    continue
                raise
            values = {
                str(item.get("name")): (item.get("values") or [{}])[0].get("value")
                for item in answer.get("data") or []
            }
            found.append(
                PostMetrics(
                    platform=self.platform,
                    post_id=media_id,
                    fetched_at=datetime.now(UTC),
                    views=values.get("views"),
                    likes=values.get("likes"),
                    comments=values.get("comments"),
                    shares=values.get("shares"),
                    saves=values.get("saved"),
                    watch_time_s=_seconds(values.get("ig_reels_video_view_total_time")),
                    avg_view_duration_s=_seconds(values.get("ig_reels_avg_watch_time")),
                )
            )
        return found

    # --- HTTP ----------------------------------------------------------------------------------

    def _graph(
        self, method: str, path: str, token: str, params: dict[str, str], what: str
    ) -> dict[str, Any]:
        """A Graph call that is safe to repeat, with retries."""

        def call() -> dict[str, Any]:
            try:
                return self._graph_once(method, path, token, params, what)
            except _NotReady:
                raise ProviderError(PROVIDER, f"{what}: media not ready", retryable=True) from None

        return call_with_retries(call, attempts=self.attempts, sleep=self.sleep)

    def _graph_once(
        self, method: str, path: str, token: str, params: dict[str, str], what: str
    ) -> dict[str, Any]:
        url = f"{self.base_url}{path}"
        headers = {"Authorization": f"Bearer {token}"}
        response = self._send(method, url, token, what, params=params, headers=headers)
        body = _json(response)
        if response.status_code == 200 and "error" not in body:
            return body
        _raise_graph(response, body, token, what)
        raise AssertionError("unreachable")

    def _send(self, method: str, url: str, token: str, what: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, url, **kwargs)
        except httpx.TimeoutException:
            # `from None`: httpx exceptions carry the request and its headers.
            raise ProviderError(PROVIDER, f"{what} timed out", retryable=True) from None
        except httpx.HTTPError as exc:
            reason = _clean(f"{what} failed: {type(exc).__name__}: {exc}", token)
            raise ProviderError(PROVIDER, reason, retryable=True) from None


def _credentials(credentials: dict[str, Any]) -> tuple[str, str]:
    token = str(credentials.get("access_token") or "")
    ig_user = str(credentials.get("ig_user_id") or "")
    if not token or not ig_user:
        raise PublishFailure(Platform.INSTAGRAM, f"missing access_token or ig_user_id; {RECONNECT}")
    return token, ig_user


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _clean(text: str, token: str) -> str:
    return _ACCESS_TOKEN.sub(r"\1***", redact(text, token))


def _seconds(ms: Any) -> float | None:
    return float(ms) / 1000 if isinstance(ms, int | float) else None


def _timestamp(value: Any) -> datetime | None:
    if not value:
        return None
    try:  # Graph timestamps look like 2025-01-31T18:00:00+0000
        return datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        return None


def _processing_error(status: dict[str, Any]) -> str:
    return (
        f"Instagram could not process the video: {status.get('status') or 'ERROR'}; check the "
        "file against the Reels specs (MP4/H.264, AAC, 3 s to 15 min, 9:16)"
    )


def _usage_wait_s(response: httpx.Response) -> float | None:
    """Minutes until access returns, from X-Business-Use-Case-Usage, in seconds."""
    raw = response.headers.get("x-business-use-case-usage")
    if not raw:
        return retry_after_seconds(response.headers)
    try:
        usage = json.loads(raw)
        minutes = max(
            float(entry.get("estimated_time_to_regain_access") or 0)
            for entries in usage.values()
            for entry in entries
        )
    except (ValueError, TypeError, AttributeError):
        return retry_after_seconds(response.headers)
    return minutes * 60 if minutes else retry_after_seconds(response.headers)


def _int(value: Any) -> int:
    """Graph's numeric codes; anything else (a proxy's text) counts as no code."""
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _raise_graph(response: httpx.Response, body: dict[str, Any], token: str, what: str) -> None:
    """Graph's error as ours: reconnect, retry, not ready, the daily limit or a PublishFailure."""
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    code = _int(error.get("code"))
    subcode = _int(error.get("error_subcode"))
    message = _clean(
        str(
            error.get("error_user_msg")
            or error.get("message")
            or response.text[:200]
            or response.reason_phrase
        ),
        token,
    )
    status = response.status_code
    detail = f"{what}: {message} (code {code}" + (f", subcode {subcode})" if subcode else ")")
    if code == 190 or status == 401:
        raise PublishFailure(Platform.INSTAGRAM, f"{detail}; {RECONNECT}")
    if (code, subcode) == _NOT_READY or (code == _NOT_READY[0] and "not ready" in message.lower()):
        raise _NotReady()
    if subcode == _PUBLISH_LIMIT_SUBCODE or "content_publishing_limit" in message:
        raise PublishFailure(Platform.INSTAGRAM, f"{detail}; {DAILY_LIMIT}")
    if code in _RATE_LIMIT_CODES or status == 429:
        raise ProviderError(
            PROVIDER, detail, status=status, retryable=True, retry_after_s=_usage_wait_s(response)
        )
    if status >= 500 or error.get("is_transient") or code in (1, 2):
        raise ProviderError(PROVIDER, detail, status=status, retryable=True)
    raise PublishFailure(Platform.INSTAGRAM, f"{detail} (HTTP {status})")


def _raise_upload(response: httpx.Response, token: str) -> None:
    """rupload's error: `{"debug_info": {"retriable", "type", "message"}}`."""
    info = _json(response).get("debug_info") or {}
    message = _clean(
        str(info.get("message") or response.text[:200] or response.reason_phrase), token
    )
    status = response.status_code
    detail = f"upload: {info.get('type') or 'error'}: {message}"
    if status == 401 or info.get("type") == "OAuthException":
        raise PublishFailure(Platform.INSTAGRAM, f"{detail}; {RECONNECT}")
    if status == 429:
        raise ProviderError(
            PROVIDER, detail, status=status, retryable=True,
            retry_after_s=retry_after_seconds(response.headers),
        )  # fmt: skip
    if status >= 500 or info.get("retriable") or status == 200:
        raise ProviderError(PROVIDER, detail, status=status, retryable=True)
    raise PublishFailure(Platform.INSTAGRAM, f"{detail} (HTTP {status})")
