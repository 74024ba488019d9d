"""Posts a topic's video to TikTok through the Content Posting API (direct post, or the inbox).

The flow (providers.md 1.1): `creator_info/query` (the privacy levels this creator may use and
the longest video they may post), `video/init` with `source: FILE_UPLOAD` (TikTok answers a
`publish_id` and an `upload_url`), sequential `PUT`s of the file's chunks to the upload URL with
`Content-Range`, then `status/fetch` until `PUBLISH_COMPLETE` (`SEND_TO_USER_INBOX` for inbox
uploads) or `FAILED`. The caption is the fitted text ending with `#<marker>`; `is_aigc` is set
because every video of the factory is AI-made.

Exactly once: TikTok has no idempotency key, but a publish id becomes a post only once its
upload is complete. So `publish_id` and `upload_url` are saved right after init, before a byte is
sent, and `uploaded_chunks` after each chunk. A retry first asks `status/fetch` about the saved
publish id: complete -> the post; upload done and processing -> keep polling; upload incomplete
-> resume at the byte TikTok reports (`uploaded_bytes`), or at the saved chunk count; FAILED, or
an upload URL TikTok no longer takes while the upload is incomplete -> start over with a new
init (the old publish id can never become a post). A crash after init and before its progress is
saved leaves a publish id with no upload, which TikTok drops: no duplicate either. A lost answer
to the last chunk is reconciled by the status of the saved publish id, not by sending again.

`find` can only use the saved publish id: the posting API cannot search a creator's posts by
caption, so a post is found when its publish id reached `PUBLISH_COMPLETE`. The window this
leaves is TikTok's own: a direct post whose moderation takes hours stays "not found" and a later
attempt resumes polling the same publish id (never a new init), so it is late, not duplicated.

Post ids: `publicaly_available_post_id` (sic) once moderation made the video public; until then
(and for SELF_ONLY posts) the post id is the publish id, which `metrics` skips because the video
query only knows video ids.

Chunking follows TikTok's rules: a file under 5 MB is one chunk; otherwise chunks of
`chunk_size` (5-64 MB) and `total_chunk_count = floor(size / chunk_size)`, the last chunk taking
the remainder. `min_chunk_size` exists so tests can scale the 5 MB rule down with a fake.

Secrets: the access token travels only in the `Authorization` header; the upload URL carries a
short-lived `upload_token`, masked in httpx's log lines by a filter and in our error texts.
Errors never chain httpx exceptions (they carry the request).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from factory_core.publish_metadata import Platform, cut_to_fit, utf16_length
from factory_core.publishing import PostMetrics, PublishedPost, PublishFailure, PublishRequest
from factory_resources.faults import (
    ProviderError,
    call_with_retries,
    mask_in_httpx_logs,
    redact,
    retry_after_seconds,
)

log = logging.getLogger(__name__)

PROVIDER = "tiktok"
DEFAULT_BASE_URL = "https://open.tiktokapis.com"
CAPTION_MAX = 2200  # UTF-16 runes, as TikTok counts `post_info.title`.
MIB = 1024 * 1024
MIN_CHUNK = 5 * MIB  # Files under this go as one chunk; chunks are at least this big.
MAX_CHUNK = 64 * MIB  # Chunks are at most this big (the last one may reach 128 MB).
MAX_CHUNKS = 1000
METRICS_BATCH = 20  # video/query takes at most 20 ids.
COVER_MS = 1000
RECONNECT = (
    "reconnect the TikTok account: its token was revoked, expired or lacks the video.publish scope"
)
DONE = frozenset({"PUBLISH_COMPLETE", "SEND_TO_USER_INBOX"})
# Where metadata privacy may land among TikTok's levels, most wanted first. Never wider than
# asked: "unlisted" has no TikTok equivalent, so it narrows to friends or to the creator alone.
PRIVACY_LEVELS: dict[str, tuple[str, ...]] = {
    "public": ("PUBLIC_TO_EVERYONE", "FOLLOWER_OF_CREATOR", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"),
    "unlisted": ("MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"),
    "private": ("SELF_ONLY",),
}
_RECONNECT_CODES = frozenset({"access_token_invalid", "scope_not_authorized"})
_UPLOAD_TOKEN = re.compile(r"(upload_token=)[^&\s\"']+")


def _guard_httpx_logs() -> None:
    # httpx logs every request's URL at INFO; the TikTok upload URL carries an upload token.
    mask_in_httpx_logs("tiktok upload token", _UPLOAD_TOKEN, "\\1***")


def tiktok_caption(text: str, marker: str) -> str:
    """`text` ending with `#<marker>` (unless it already carries it), within 2200 UTF-16 units:
    the text is cut at a word boundary, never the marker."""
    if marker in text:
        return cut_to_fit(text, lambda t: utf16_length(t) <= CAPTION_MAX)
    tail = f"#{marker}"

    def with_tail(body: str) -> str:
        return f"{body}\n\n{tail}" if body else tail

    body = cut_to_fit(text.strip(), lambda b: utf16_length(with_tail(b)) <= CAPTION_MAX)
    return with_tail(body)


def chunk_plan(
    video_size: int, chunk_size: int, min_chunk_size: int = MIN_CHUNK
) -> tuple[int, int]:
    """(chunk_size, total_chunk_count) as TikTok wants them for a file of `video_size` bytes."""
    if video_size <= 0:
        raise ValueError("the video is empty")
    if video_size < min_chunk_size:
        return video_size, 1
    size = min(max(chunk_size, min_chunk_size), MAX_CHUNK, video_size)
    size = max(size, -(-video_size // MAX_CHUNKS))  # at most 1000 chunks
    return size, max(1, video_size // size)


def chunk_range(index: int, chunk_size: int, count: int, video_size: int) -> tuple[int, int]:
    """First and last byte of chunk `index`; the last chunk takes the remainder."""
    first = index * chunk_size
    last = video_size - 1 if index == count - 1 else first + chunk_size - 1
    return first, last


def choose_privacy(wanted: str | None, options: list[str]) -> str:
    """The TikTok privacy level for `wanted` among the creator's `options`, never wider."""
    for level in PRIVACY_LEVELS.get(wanted or "private", PRIVACY_LEVELS["private"]):
        if level in options:
            return level
    raise PublishFailure(
        Platform.TIKTOK,
        f"this TikTok account offers privacy levels {options}, none as private as "
        f"{wanted or 'private'!r}; change the post's privacy",
    )


class _UploadGone(Exception):
    """The upload URL no longer takes chunks (expired, or the upload already finished)."""


class TikTokPublisher:
    """The Publisher and MetricsSource for TikTok. Credentials: {"access_token": ...} (OAuth,
    scope video.publish, or video.upload for `inbox=True`; video.list for metrics)."""

    platform = Platform.TIKTOK

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout_s: float = 120.0,
        attempts: int = 4,
        sleep: Callable[[float], None] = time.sleep,
        poll_interval_s: float = 5.0,
        poll_timeout_s: float = 600,
        chunk_size: int = 10 * MIB,
        min_chunk_size: int = MIN_CHUNK,
        inbox: bool = False,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = httpx.Timeout(timeout_s, connect=min(10.0, timeout_s))
        # One pooled client: a fresh one per call would rebuild its TLS context every time.
        self._http = httpx.Client(timeout=self.timeout)
        self.attempts = attempts
        self.sleep = sleep
        self.poll_interval_s = poll_interval_s
        self.poll_timeout_s = poll_timeout_s
        self.chunk_size = chunk_size
        self.min_chunk_size = min_chunk_size
        self.inbox = inbox
        _guard_httpx_logs()

    # --- Publisher -----------------------------------------------------------------------------

    def find(self, request: PublishRequest, credentials: dict[str, Any]) -> PublishedPost | None:
        """The post of the saved publish id once TikTok finished it; None otherwise (the
        posting API has no search by caption, see the module docstring)."""
        publish_id = request.progress.get("publish_id")
        if not publish_id:
            return None
        status = self._status(_token(credentials), str(publish_id))
        if status.get("status") in DONE:
            return self._post(str(publish_id), status, request.progress.get("creator_username"))
        return None

    def publish(
        self,
        request: PublishRequest,
        credentials: dict[str, Any],
        save_progress: Callable[[dict[str, Any]], None],
    ) -> PublishedPost:
        token = _token(credentials)
        progress = dict(request.progress)
        video_size = request.video.stat().st_size
        publish_id = progress.get("publish_id")
        if publish_id:
            resumed = self._resume(request, token, progress, video_size, save_progress)
            if resumed is not None:
                return resumed
        for restart in range(2):
            publish_id, progress = self._init(request, token, video_size, save_progress)
            try:
                self._upload(request.video, token, progress, video_size, 0, save_progress)
            except _UploadGone:
                # A brand-new URL refused: only retry if TikTok says the upload is unfinished.
                if self._upload_finished(token, publish_id, video_size):
                    break
                if restart:
                    raise ProviderError(
                        PROVIDER, "TikTok refused a fresh upload URL twice", retryable=True
                    ) from None
                continue
            break
        status = self._poll(token, str(publish_id))
        return self._post(str(publish_id), status, progress.get("creator_username"))

    def _resume(
        self,
        request: PublishRequest,
        token: str,
        progress: dict[str, Any],
        video_size: int,
        save_progress: Callable[[dict[str, Any]], None],
    ) -> PublishedPost | None:
        """Carries on with the saved publish id; None when it is dead and init must start over."""
        publish_id = str(progress["publish_id"])
        status = self._status(token, publish_id)
        state = status.get("status")
        username = progress.get("creator_username")
        if state in DONE:
            return self._post(publish_id, status, username)
        if state == "FAILED":
            log.info("TikTok publish %s failed (%s): starting over", publish_id, _why(status))
            return None
        uploaded = status.get("uploaded_bytes")
        if not (isinstance(uploaded, int) and uploaded >= video_size):
            chunk_size = int(progress.get("chunk_size") or 0)
            count = int(progress.get("total_chunk_count") or 0)
            if not progress.get("upload_url") or not chunk_size or not count:
                return None  # nothing to resume with
            if isinstance(uploaded, int):
                first = min(uploaded // chunk_size, count - 1)  # resend a partial chunk whole
            else:
                first = int(progress.get("uploaded_chunks") or 0)
            try:
                self._upload(request.video, token, progress, video_size, first, save_progress)
            except _UploadGone:
                if not self._upload_finished(token, publish_id, video_size):
                    log.info("TikTok upload URL of %s expired: starting over", publish_id)
                    return None
        return self._post(publish_id, self._poll(token, publish_id), username)

    def _init(
        self,
        request: PublishRequest,
        token: str,
        video_size: int,
        save_progress: Callable[[dict[str, Any]], None],
    ) -> tuple[str, dict[str, Any]]:
        chunk_size, count = chunk_plan(video_size, self.chunk_size, self.min_chunk_size)
        source = {
            "source": "FILE_UPLOAD",
            "video_size": video_size,
            "chunk_size": chunk_size,
            "total_chunk_count": count,
        }
        username = None
        if self.inbox:
            path, body = "/v2/post/publish/inbox/video/init/", {"source_info": source}
        else:
            creator = self._api(token, "/v2/post/publish/creator_info/query/", {}, "creator info")
            username = creator.get("creator_username")
            longest = creator.get("max_video_post_duration_sec")
            if isinstance(longest, int | float) and request.duration_s > longest:
                raise PublishFailure(
                    self.platform,
                    f"the video is {request.duration_s:.0f} s long and this TikTok account "
                    f"may post at most {longest:.0f} s (max_video_post_duration_sec); shorten it",
                )
            options = [str(o) for o in creator.get("privacy_level_options") or []]
            post_info = {
                "title": tiktok_caption(request.metadata.text, request.marker),
                "privacy_level": choose_privacy(request.metadata.privacy, options),
                # A creator who turned these off in the app must not get them back from us.
                "disable_duet": bool(creator.get("duet_disabled")),
                "disable_comment": bool(creator.get("comment_disabled")),
                "disable_stitch": bool(creator.get("stitch_disabled")),
                "video_cover_timestamp_ms": min(COVER_MS, int(request.duration_s * 1000)),
                "is_aigc": request.metadata.contains_synthetic_media,
            }
            path, body = (
                "/v2/post/publish/video/init/",
                {"post_info": post_info, "source_info": source},
            )
        # Retrying init is safe: a publish id without an upload never becomes a post.
        data = self._api(token, path, body, "video init")
        publish_id, upload_url = data.get("publish_id"), data.get("upload_url")
        if not publish_id or not upload_url:
            raise ProviderError(PROVIDER, "video init answered no publish_id/upload_url")
        progress = {
            "publish_id": publish_id,
            "upload_url": upload_url,
            "chunk_size": chunk_size,
            "total_chunk_count": count,
            "video_size": video_size,
            "creator_username": username,
            "uploaded_chunks": 0,
        }
        save_progress(progress)
        return str(publish_id), progress

    # --- upload and status ---------------------------------------------------------------------

    def _upload(
        self,
        video: Path,
        token: str,
        progress: dict[str, Any],
        video_size: int,
        first_chunk: int,
        save_progress: Callable[[dict[str, Any]], None],
    ) -> None:
        url = str(progress["upload_url"])
        chunk_size, count = int(progress["chunk_size"]), int(progress["total_chunk_count"])
        with video.open("rb") as fh:
            for index in range(first_chunk, count):
                first, last = chunk_range(index, chunk_size, count, video_size)
                fh.seek(first)
                data = fh.read(last - first + 1)

                def put(first: int = first, last: int = last, data: bytes = data) -> None:
                    self._put_chunk(url, token, first, last, video_size, data)

                call_with_retries(put, attempts=self.attempts, sleep=self.sleep)
                save_progress({"uploaded_chunks": index + 1})

    def _put_chunk(
        self, url: str, token: str, first: int, last: int, total: int, data: bytes
    ) -> None:
        headers = {
            "Content-Type": "video/mp4",
            "Content-Range": f"bytes {first}-{last}/{total}",
        }
        response = self._send("PUT", url, token, "chunk upload", content=data, headers=headers)
        if response.status_code in (200, 201, 206):
            return
        if response.status_code in (403, 404, 410):
            raise _UploadGone()
        _raise_for(response, token, url, "chunk upload")

    def _upload_finished(self, token: str, publish_id: str, video_size: int) -> bool:
        status = self._status(token, publish_id)
        if status.get("status") in DONE:
            return True
        uploaded = status.get("uploaded_bytes")
        return (
            status.get("status") != "FAILED"
            and isinstance(uploaded, int)
            and uploaded >= video_size
        )

    def _status(self, token: str, publish_id: str) -> dict[str, Any]:
        return self._api(
            token, "/v2/post/publish/status/fetch/", {"publish_id": publish_id}, "status fetch"
        )

    def _poll(self, token: str, publish_id: str) -> dict[str, Any]:
        waited = 0.0
        while True:
            status = self._status(token, publish_id)
            state = status.get("status")
            if state in DONE:
                return status
            if state == "FAILED":
                raise PublishFailure(
                    self.platform, f"TikTok could not publish the video: {_why(status)}"
                )
            if waited >= self.poll_timeout_s:
                # Progress holds the publish id: the next attempt polls it again, never re-posts.
                raise ProviderError(
                    PROVIDER,
                    f"publish {publish_id} still {state} after {waited:.0f} s",
                    retryable=True,
                )
            self.sleep(self.poll_interval_s)
            waited += self.poll_interval_s

    def _post(self, publish_id: str, status: dict[str, Any], username: Any) -> PublishedPost:
        public_ids = status.get("publicaly_available_post_id") or []
        if public_ids:
            post_id = str(public_ids[0])
            url = f"https://www.tiktok.com/@{username}/video/{post_id}" if username else None
            return PublishedPost(platform=self.platform, post_id=post_id, url=url)
        return PublishedPost(platform=self.platform, post_id=publish_id)

    # --- MetricsSource -------------------------------------------------------------------------

    def metrics(self, post_ids: list[str], credentials: dict[str, Any]) -> list[PostMetrics]:
        """view/like/comment/share counts from `video/query` (scope video.list), 20 ids a call.
        Publish ids (posts not yet public) are skipped: the query knows only video ids."""
        token = _token(credentials)
        ids = [p for p in post_ids if p and not p.startswith("v_")]
        found: list[PostMetrics] = []
        path = "/v2/video/query/?fields=id,view_count,like_count,comment_count,share_count"
        for start in range(0, len(ids), METRICS_BATCH):
            batch = ids[start : start + METRICS_BATCH]
            data = self._api(token, path, {"filters": {"video_ids": batch}}, "video query")
            fetched_at = datetime.now(UTC)
            found.extend(
                PostMetrics(
                    platform=self.platform,
                    post_id=str(video["id"]),
                    fetched_at=fetched_at,
                    views=video.get("view_count"),
                    likes=video.get("like_count"),
                    comments=video.get("comment_count"),
                    shares=video.get("share_count"),
                )
                for video in data.get("videos") or []
            )
        return found

    # --- HTTP ----------------------------------------------------------------------------------

    def _api(self, token: str, path: str, body: dict[str, Any], what: str) -> dict[str, Any]:
        """One JSON call with retries: its `data`, or our error with TikTok's words."""
        url = f"{self.base_url}{path}"

        def call() -> dict[str, Any]:
            headers = {"Content-Type": "application/json; charset=UTF-8"}
            response = self._send("POST", url, token, what, json=body, headers=headers)
            payload = _json(response)
            code = str(_error_object(payload).get("code") or "")
            if response.status_code == 200 and code in ("", "ok"):
                data = payload.get("data")
                return data if isinstance(data, dict) else {}
            _raise_for(response, token, url, what)
            raise AssertionError("unreachable")

        return call_with_retries(call, attempts=self.attempts, sleep=self.sleep)

    def _send(self, method: str, url: str, token: str, what: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
        try:
            return self._http.request(method, url, headers=headers, **kwargs)
        except httpx.TimeoutException:
            # `from None`: httpx exceptions carry the request, its headers and upload URL.
            raise ProviderError(PROVIDER, f"{what} timed out", retryable=True) from None
        except httpx.HTTPError as exc:
            reason = _clean(f"{what} failed: {type(exc).__name__}: {exc}", token, url)
            raise ProviderError(PROVIDER, reason, retryable=True) from None


def _token(credentials: dict[str, Any]) -> str:
    token = str(credentials.get("access_token") or "")
    if not token:
        raise PublishFailure(Platform.TIKTOK, f"no access token; {RECONNECT}")
    return token


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _error_object(payload: dict[str, Any]) -> dict[str, Any]:
    """TikTok's `error` object; a gateway in front of TikTok may answer with another shape
    (`{"error": "rate limited"}`), which then classifies by HTTP status alone."""
    error = payload.get("error")
    return error if isinstance(error, dict) else {}


def _clean(text: str, token: str, url: str) -> str:
    return _UPLOAD_TOKEN.sub(r"\1***", redact(text, token, url))


def _why(status: dict[str, Any]) -> str:
    return str(status.get("fail_reason") or "no reason given")


def _raise_for(response: httpx.Response, token: str, url: str, what: str) -> None:
    """TikTok's error as ours: reconnect, retry (with Retry-After), or a PublishFailure."""
    error = _error_object(_json(response))
    code = str(error.get("code") or "")
    message = _clean(
        str(error.get("message") or response.text[:200] or response.reason_phrase), token, url
    )
    status = response.status_code
    detail = f"{what}: {code or 'HTTP ' + str(status)}: {message}"
    if code in _RECONNECT_CODES or status == 401:
        raise PublishFailure(Platform.TIKTOK, f"{detail}; {RECONNECT}")
    if code == "rate_limit_exceeded" or status == 429:
        raise ProviderError(
            PROVIDER,
            detail,
            status=status,
            retryable=True,
            retry_after_s=retry_after_seconds(response.headers),
        )
    if status >= 500 or status == 408 or code == "internal_error":
        raise ProviderError(PROVIDER, detail, status=status, retryable=True)
    if code.startswith("spam_risk"):
        raise PublishFailure(
            Platform.TIKTOK, f"{detail}; TikTok limits this account's posting, try later"
        )
    raise PublishFailure(Platform.TIKTOK, f"{detail} (HTTP {status})")
