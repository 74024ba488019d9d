"""Uploads a topic's video to YouTube with google-api-python-client (Data API v3), and reads its
statistics back (Data API `videos.list`, YouTube Analytics v2 where the account allowed it).

The upload is `videos.insert` as a resumable upload in chunks (a multiple of 256 KiB), with the
title, description, tags, category, languages, privacy, `publishAt` for a scheduled release,
`selfDeclaredMadeForKids` and `containsSyntheticMedia` (the AI disclosure). The description
ends with the publication marker (`#vf0123456789`) unless the text carries it already, within
YouTube's 5000 bytes. Then `thumbnails.set` with the topic's cover (JPEG or PNG up to 2 MB,
re-encoded as JPEG when bigger); YouTube refuses custom thumbnails on unverified channels,
which is logged and saved in the progress, never a failed post.

Exactly once: `videos.insert` has no idempotency key, but an upload only becomes a video when
its last byte arrives, and the session remembers what it holds. So the session URI and the
bytes confirmed are saved (`save_progress`) after every chunk the server confirms, and the
video id as soon as the last chunk's answer arrives. Retries are driven here, one chunk at a
time (`next_chunk(num_retries=0)`: the SDK's own in-call retry re-sends a consumed stream, see
providers.md 0.4): after a 5xx, a 429, a timeout or a dropped connection the SDK asks the
session what it holds (`Content-Range: bytes */total`) and sends the rest. A later process
resumes from the saved session the same way; a session that expired (404/410) is given up only
after `find` has looked for the video in the channel's uploads. `find` asks the saved session
first (a finished session answers with the video: this reconciles a lost final answer), then
searches the 200 most recent uploads for the marker in the description.

Residual windows: (1) the SDK sends the session's first chunk in the same call that opens it,
so a crash there loses the session URI; that is harmless (an unfinished session never becomes
a video) unless the whole file fits in one chunk, and then the uploads search finds the video,
provided the uploads playlist already lists it (it can lag a little behind an upload). (2) a
crash between the upload and `thumbnails.set` leaves YouTube's own thumbnail, since the next
attempt finds the video and stops there.

Errors: 5xx, 429, 403 rate limits, timeouts and dropped connections are retryable
ProviderErrors; 403 `quotaExceeded` is not (the project's daily quota resets at midnight
Pacific time); 401 and a refused refresh ask to reconnect the YouTube account; other 4xx are
PublishFailures with YouTube's words. Tokens only travel in the Authorization header; every
error text is redacted with them and SDK exceptions are not chained onto ours.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import google_auth_httplib2
import httplib2
from google.auth.exceptions import RefreshError, TransportError
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import Resource, build
from googleapiclient.errors import HttpError
from googleapiclient.http import HttpRequest, MediaFileUpload, MediaInMemoryUpload
from PIL import Image, UnidentifiedImageError

from factory_core.publish_metadata import (
    DEFAULT_PRIVACY,
    YOUTUBE_DEFAULT_CATEGORY,
    YOUTUBE_HASHTAGS_MAX,
    Platform,
    cut_to_fit,
    utf8_length,
)
from factory_core.publishing import PostMetrics, PublishedPost, PublishFailure, PublishRequest
from factory_resources.faults import (
    RETRYABLE_STATUS,
    ProviderError,
    call_with_retries,
    redact,
    retry_after_seconds,
)

logger = logging.getLogger(__name__)

PROVIDER = "youtube"
DEFAULT_API_ENDPOINT = "https://youtube.googleapis.com/"
DEFAULT_ANALYTICS_ENDPOINT = "https://youtubeanalytics.googleapis.com/"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
ANALYTICS_SCOPE = "https://www.googleapis.com/auth/yt-analytics.readonly"
CHUNK_GRANULE = 256 * 1024  # Resumable chunks other than the last must be multiples of this.
DESCRIPTION_MAX_BYTES = 5000
THUMBNAIL_MAX_BYTES = 2 * 1024 * 1024  # Also the discovery doc's maxSize: the SDK checks it.
THUMBNAIL_MAX_PX = 1920
UPLOADS_LOOKBACK = 200  # How far back `find` searches the uploads playlist.
IDS_PER_CALL = 50  # videos.list takes at most 50 ids.
# Analytics totals over a video's life: a start before YouTube existed covers any video.
ANALYTICS_START = "2005-02-14"
ANALYTICS_METRICS = "estimatedMinutesWatched,averageViewDuration,shares"
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
RECONNECT = (
    "reconnect the YouTube account: its access was revoked or has expired, or it lacks "
    "the permission to upload"
)
QUOTA_USED_UP = (
    "the YouTube Data API daily quota of this project is used up (quotaExceeded); it resets "
    "at midnight Pacific time, so publish again after that"
)
_JPEG = b"\xff\xd8\xff"
_PNG = b"\x89PNG\r\n\x1a\n"

Failure = ProviderError | PublishFailure
T = TypeVar("T")


class _SessionExpired(Exception):
    """The resumable session is gone (404/410): its bytes are lost, a new upload is needed."""


class _ChunkBytesUpload(MediaFileUpload):
    """MediaFileUpload whose chunks are read as bytes, not as a stream slice.

    `has_stream()` is the MediaUpload interface's switch between the two. A stream slice can be
    sent once only, but httplib2 re-sends a request after a dropped keep-alive connection and
    google-auth-httplib2 re-sends it after refreshing the token on a 401; with bytes those
    re-sends carry the chunk again instead of an empty body. A chunk is at most `chunksize`.
    """

    def has_stream(self) -> bool:
        return False


def youtube_description(text: str, marker: str) -> str:
    """`text` with the marker as its last line (unless the text already carries it), within
    5000 UTF-8 bytes: the text is cut at a word boundary, the marker never. The marker is a
    hashtag (`#vf…`) unless that would take the text past the 60 hashtags after which
    YouTube ignores every hashtag of the video."""

    def fits(candidate: str) -> bool:
        return utf8_length(candidate) <= DESCRIPTION_MAX_BYTES

    if marker in text:
        return cut_to_fit(text, fits)
    hashtags = sum(1 for word in text.split() if word.startswith("#") and len(word) > 1)
    tail = f"#{marker}" if hashtags < YOUTUBE_HASHTAGS_MAX else marker

    def with_tail(body: str) -> str:
        return f"{body}\n\n{tail}" if body else tail

    return with_tail(cut_to_fit(text.strip(), lambda body: fits(with_tail(body))))


def _rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def video_resource(request: PublishRequest) -> dict[str, Any]:
    """The `videos.insert` body for `request` (snippet and status parts)."""
    meta = request.metadata
    language = str(meta.language)
    snippet: dict[str, Any] = {
        "title": meta.title or "",
        "description": youtube_description(meta.text, request.marker),
        "categoryId": meta.category_id or YOUTUBE_DEFAULT_CATEGORY,
        "defaultLanguage": language,
        "defaultAudioLanguage": language,
    }
    if meta.tags:
        snippet["tags"] = list(meta.tags)
    status: dict[str, Any] = {
        "privacyStatus": meta.privacy or DEFAULT_PRIVACY,
        "selfDeclaredMadeForKids": meta.made_for_kids,
        "containsSyntheticMedia": meta.contains_synthetic_media,
    }
    if meta.publish_at is not None:
        # YouTube releases a scheduled video only from private (PostMetadata checks it too).
        status["privacyStatus"] = "private"
        status["publishAt"] = _rfc3339(meta.publish_at)
    return {"snippet": snippet, "status": status}


def thumbnail_upload(source: Path) -> tuple[bytes, str]:
    """The bytes and type to send to thumbnails.set: a JPEG or PNG within 2 MB as it is, any
    other picture re-encoded as JPEG (shrunk until it fits)."""
    data = source.read_bytes()
    if len(data) <= THUMBNAIL_MAX_BYTES and data.startswith(_JPEG):
        return data, "image/jpeg"
    if len(data) <= THUMBNAIL_MAX_BYTES and data.startswith(_PNG):
        return data, "image/png"
    with Image.open(io.BytesIO(data)) as picture:
        img = picture.convert("RGB")
    img.thumbnail((THUMBNAIL_MAX_PX, THUMBNAIL_MAX_PX), Image.Resampling.LANCZOS)
    while True:
        for quality in (90, 80, 70, 55, 40):
            out = io.BytesIO()
            img.save(out, "JPEG", quality=quality, optimize=True)
            if out.tell() <= THUMBNAIL_MAX_BYTES:
                return out.getvalue(), "image/jpeg"
        # Only noise-like pictures get here: halve the size rather than give up.
        img = img.resize((max(1, img.width // 2), max(1, img.height // 2)))


def video_url(video_id: str) -> str:
    return f"https://youtu.be/{video_id}"


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _count(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _batches(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _Account:
    """One account's authorized transport and API clients, and the secrets to keep out of
    every message."""

    def __init__(self, publisher: YouTubePublisher, credentials: dict[str, Any]) -> None:
        token = credentials.get("access_token")
        self.secrets = tuple(
            str(credentials[k])
            for k in ("access_token", "refresh_token", "client_secret")
            if credentials.get(k)
        )
        if not token:
            raise PublishFailure(Platform.YOUTUBE, f"no access token; {RECONNECT}")
        expires_at = credentials.get("expires_at")
        self.scopes = [str(s) for s in credentials.get("scopes") or []]
        creds = Credentials(
            token=str(token),
            refresh_token=credentials.get("refresh_token"),
            token_uri=credentials.get("token_uri") or DEFAULT_TOKEN_URI,
            client_id=credentials.get("client_id"),
            client_secret=credentials.get("client_secret"),
            scopes=self.scopes or None,
            # google-auth compares naive UTC datetimes.
            expiry=(
                datetime.fromtimestamp(float(expires_at), UTC).replace(tzinfo=None)
                if expires_at
                else None
            ),
        )
        http = httplib2.Http(ca_certs=publisher.ca_certs, timeout=publisher.timeout_s)
        # As googleapiclient's build_http() does: 308 is "resume incomplete" for uploads, and
        # httplib2 would otherwise follow it as a redirect without a Location.
        http.redirect_codes = http.redirect_codes - {308}
        self.http = google_auth_httplib2.AuthorizedHttp(creds, http=http)
        self.api: Resource = build(
            "youtube",
            "v3",
            http=self.http,
            static_discovery=True,
            client_options={"api_endpoint": publisher.api_endpoint},
        )

    def analytics(self, endpoint: str) -> Resource:
        return build(
            "youtubeAnalytics",
            "v2",
            http=self.http,
            static_discovery=True,
            client_options={"api_endpoint": endpoint},
        )


def _failure(exc: Exception, what: str, secrets: tuple[str, ...]) -> Failure:
    """Our error for an SDK/transport exception, without the secrets."""
    if isinstance(exc, HttpError):
        return _http_failure(exc.status_code, exc.content, dict(exc.resp), what, secrets)
    if isinstance(exc, RefreshError):
        detail = redact(str(exc.args[0] if exc.args else exc), *secrets)
        if getattr(exc, "retryable", False):
            # google-auth marks a token endpoint that answered 429/5xx (after its own tries)
            # as retryable: the grant is fine, the endpoint is busy.
            return ProviderError(
                PROVIDER, f"{what}: token endpoint busy ({detail})", retryable=True
            )
        return PublishFailure(
            Platform.YOUTUBE, f"{what}: token refresh refused ({detail}); {RECONNECT}"
        )
    detail = redact(f"{type(exc).__name__}: {exc}", *secrets)
    # TransportError (the token endpoint unreachable), timeouts, resets, TLS hiccups.
    return ProviderError(PROVIDER, f"{what} failed: {detail}", retryable=True)


def _http_failure(
    status: int, content: bytes, headers: dict[str, str], what: str, secrets: tuple[str, ...]
) -> Failure:
    message, reason = "", ""
    try:
        error = json.loads(content or b"{}").get("error") or {}
        message = str(error.get("message") or "")
        details = error.get("errors") or []
        reason = str(details[0].get("reason") or "") if details else ""
    except (ValueError, AttributeError, TypeError):
        message = content[:200].decode("utf-8", "replace") if content else ""
    text = redact(
        f"{what}: {message or 'HTTP error'}" + (f" ({reason})" if reason else ""), *secrets
    )
    if status == 403 and reason == "quotaExceeded":
        return ProviderError(PROVIDER, f"{what}: {QUOTA_USED_UP}", status=status, retryable=False)
    if status in RETRYABLE_STATUS or status >= 500 or reason in RATE_LIMIT_REASONS:
        return ProviderError(
            PROVIDER,
            text,
            status=status,
            retryable=True,
            retry_after_s=retry_after_seconds(headers),
        )
    if status == 401 or reason in {"insufficientPermissions", "authError"}:
        return PublishFailure(Platform.YOUTUBE, f"{text} (HTTP {status}); {RECONNECT}")
    if reason == "youtubeSignupRequired":
        return PublishFailure(
            Platform.YOUTUBE, f"{text}: create a YouTube channel for this Google account first"
        )
    return PublishFailure(Platform.YOUTUBE, f"{text} (HTTP {status})")


_TRANSPORT_ERRORS = (HttpError, RefreshError, TransportError, httplib2.HttpLib2Error, OSError)


class YouTubePublisher:
    """The Publisher and MetricsSource for YouTube. Credentials: the OAuth dict of the account
    vault ({"access_token", "refresh_token", "expires_at", "token_uri", "client_id",
    "client_secret", "scopes"}); an expired access token is refreshed on the way."""

    platform = Platform.YOUTUBE

    def __init__(
        self,
        api_endpoint: str = DEFAULT_API_ENDPOINT,
        *,
        ca_certs: str | None = None,
        chunk_size: int = 8 * 1024 * 1024,
        attempts: int = 5,
        timeout_s: float = 120,
        sleep: Callable[[float], None] = time.sleep,
        analytics_endpoint: str | None = None,
    ) -> None:
        if chunk_size <= 0 or chunk_size % CHUNK_GRANULE:
            raise ValueError(f"chunk_size must be a positive multiple of {CHUNK_GRANULE} bytes")
        self.api_endpoint = api_endpoint if api_endpoint.endswith("/") else api_endpoint + "/"
        self.ca_certs = ca_certs
        self.chunk_size = chunk_size
        self.attempts = attempts
        self.timeout_s = timeout_s
        self.sleep = sleep
        self.analytics_endpoint = analytics_endpoint

    # --- calls --------------------------------------------------------------------------------

    def _retrying(self, step: Callable[[], T]) -> T:
        return call_with_retries(step, attempts=self.attempts, sleep=self.sleep)

    def _execute(self, what: str, request: HttpRequest, account: _Account) -> Any:
        def once() -> Any:
            try:
                return request.execute(num_retries=0)
            except _TRANSPORT_ERRORS as exc:
                failure = _failure(exc, what, account.secrets)
            raise failure from None  # the SDK's exception holds the request

        return self._retrying(once)

    # --- find ---------------------------------------------------------------------------------

    def find(self, request: PublishRequest, credentials: dict[str, Any]) -> PublishedPost | None:
        """The video of `request`: from the saved id, from the saved upload session (a finished
        session answers with its video), else by its marker among the channel's 200 most
        recent uploads."""
        progress = request.progress
        if progress.get("video_id"):
            return self._post(request, str(progress["video_id"]))
        account = _Account(self, credentials)
        uri = progress.get("upload_uri")
        if uri:
            state = self._session_state(account, str(uri), self._total(request))
            if isinstance(state, dict):
                return self._post(request, str(state["id"]), state)
            if state is not None:
                return None  # an unfinished session: `publish` resumes it, nothing to find
        return self._search_uploads(account, request)

    def _search_uploads(self, account: _Account, request: PublishRequest) -> PublishedPost | None:
        channels = self._execute(
            "channels.list", account.api.channels().list(part="contentDetails", mine=True), account
        )
        items = channels.get("items") or []
        if not items:
            raise PublishFailure(
                self.platform, "the account has no YouTube channel: create one, then reconnect"
            )
        uploads = items[0]["contentDetails"]["relatedPlaylists"]["uploads"]
        seen, page_token = 0, None
        while seen < UPLOADS_LOOKBACK:
            page = self._execute(
                "playlistItems.list",
                account.api.playlistItems().list(
                    part="snippet",
                    playlistId=uploads,
                    maxResults=min(50, UPLOADS_LOOKBACK - seen),
                    pageToken=page_token,
                ),
                account,
            )
            for item in page.get("items") or []:
                snippet = item.get("snippet") or {}
                if request.marker in str(snippet.get("description") or ""):
                    video_id = str(snippet["resourceId"]["videoId"])
                    return self._post(request, video_id, {"snippet": snippet})
            seen += len(page.get("items") or [])
            page_token = page.get("nextPageToken")
            if not page_token or not page.get("items"):
                break
        return None

    def _post(
        self, request: PublishRequest, video_id: str, resource: dict[str, Any] | None = None
    ) -> PublishedPost:
        # A scheduled video goes out at publishAt: that, not the upload time, is its posting
        # hour for the analytics.
        when = request.metadata.publish_at or _parse_time(
            ((resource or {}).get("snippet") or {}).get("publishedAt")
        )
        return PublishedPost(
            platform=self.platform, post_id=video_id, url=video_url(video_id), published_at=when
        )

    # --- publish ------------------------------------------------------------------------------

    def publish(
        self,
        request: PublishRequest,
        credentials: dict[str, Any],
        save_progress: Callable[[dict[str, Any]], None],
    ) -> PublishedPost:
        progress = request.progress
        if progress.get("video_id"):
            video_id = str(progress["video_id"])
            if request.thumbnail is not None and "thumbnail" not in progress:
                self._thumbnail(_Account(self, credentials), video_id, request, save_progress)
            return self._post(request, video_id)
        meta = request.metadata
        if meta.platform is not Platform.YOUTUBE:
            raise PublishFailure(self.platform, f"metadata was fitted for {meta.platform}")
        if meta.publish_at is not None and meta.publish_at <= datetime.now(UTC):
            raise PublishFailure(
                self.platform,
                f"publish_at {_rfc3339(meta.publish_at)} is in the past: pick a later time or "
                "publish without one",
            )
        if not request.video.is_file():
            raise PublishFailure(self.platform, f"the video file {request.video} is missing")
        account = _Account(self, credentials)
        body = video_resource(request)
        try:
            resource = self._upload(
                account, request, body, save_progress, progress.get("upload_uri")
            )
        except _SessionExpired:
            logger.info(
                "YouTube upload session of %s expired; looking for the video", request.marker
            )
            found = self._search_uploads(account, request)
            if found is not None:
                save_progress({"video_id": found.post_id})
                return found
            try:
                resource = self._upload(account, request, body, save_progress, None)
            except _SessionExpired:
                raise ProviderError(
                    PROVIDER, "a new upload session expired at once", status=404, retryable=True
                ) from None
        video_id = str(resource["id"])
        # The one id a later attempt needs: saved before anything else can fail.
        save_progress({"video_id": video_id})
        if request.thumbnail is not None:
            self._thumbnail(account, video_id, request, save_progress)
        return self._post(request, video_id, resource)

    def _total(self, request: PublishRequest) -> int:
        saved = request.progress.get("total")
        return int(saved) if saved else request.video.stat().st_size

    def _upload(
        self,
        account: _Account,
        request: PublishRequest,
        body: dict[str, Any],
        save_progress: Callable[[dict[str, Any]], None],
        resume_uri: str | None,
    ) -> dict[str, Any]:
        """The uploaded video's resource. Raises _SessionExpired when YouTube forgot the
        session (given or made here)."""
        total = request.video.stat().st_size
        media = _ChunkBytesUpload(
            str(request.video), mimetype="video/mp4", chunksize=self.chunk_size, resumable=True
        )
        try:
            meta = request.metadata
            insert = account.api.videos().insert(
                part="snippet,status",
                body=body,
                media_body=media,
                # A scheduled or private upload has nothing to announce yet.
                notifySubscribers=(meta.privacy == "public" and meta.publish_at is None),
            )
            saved: tuple[str | None, int] = (resume_uri, int(request.progress.get("bytes") or 0))
            if resume_uri:
                state = self._session_state(account, resume_uri, total)
                if state is None:
                    raise _SessionExpired
                if isinstance(state, dict):
                    return state  # it was complete: the last answer had been lost
                insert.resumable_uri = resume_uri
                insert.resumable_progress = state
                saved = self._remember(insert, saved, total, save_progress)

            def step() -> tuple[Any, Any]:
                try:
                    return insert.next_chunk(num_retries=0)
                except HttpError as exc:
                    if exc.status_code in (404, 410) and insert.resumable_uri:
                        raise _SessionExpired from None
                    failure = _failure(exc, "videos.insert", account.secrets)
                except _TRANSPORT_ERRORS as exc:
                    failure = _failure(exc, "videos.insert", account.secrets)
                raise failure from None

            while True:
                try:
                    _status, done = self._retrying(step)
                finally:
                    # The session, once opened, and every byte YouTube confirmed: saved even
                    # when the step failed, because the first call opens the session too.
                    saved = self._remember(insert, saved, total, save_progress)
                if done is not None:
                    return dict(done)
        finally:
            media.stream().close()

    @staticmethod
    def _remember(
        insert: HttpRequest,
        saved: tuple[str | None, int],
        total: int,
        save_progress: Callable[[dict[str, Any]], None],
    ) -> tuple[str | None, int]:
        now = (insert.resumable_uri, int(insert.resumable_progress))
        if now[0] is not None and now != saved:
            save_progress({"upload_uri": now[0], "bytes": now[1], "total": total})
            return now
        return saved

    def _session_state(
        self, account: _Account, uri: str, total: int
    ) -> int | dict[str, Any] | None:
        """Asks an upload session what it holds (`Content-Range: bytes */total`, as the SDK does
        after an error): the bytes held, the video resource when it is complete, or None when
        the session expired."""

        def once() -> int | dict[str, Any] | None:
            try:
                resp, content = account.http.request(
                    uri,
                    "PUT",
                    headers={"Content-Range": f"bytes */{total}", "Content-Length": "0"},
                )
            except _TRANSPORT_ERRORS as exc:
                failure = _failure(exc, "upload status", account.secrets)
            else:
                return answer(resp, content)
            raise failure from None

        def answer(resp: httplib2.Response, content: bytes) -> int | dict[str, Any] | None:
            if resp.status in (200, 201):
                return dict(json.loads(content))
            if resp.status == 308:
                held = resp.get("range")
                return int(held.rsplit("-", 1)[1]) + 1 if held else 0
            if resp.status in (404, 410):
                return None
            raise _http_failure(resp.status, content, dict(resp), "upload status", account.secrets)

        return self._retrying(once)

    def _thumbnail(
        self,
        account: _Account,
        video_id: str,
        request: PublishRequest,
        save_progress: Callable[[dict[str, Any]], None],
    ) -> None:
        """Sets the custom thumbnail; a refusal is a warning, never a failed post (the video is
        up, and a retry would only find it)."""
        assert request.thumbnail is not None
        try:
            data, mimetype = thumbnail_upload(request.thumbnail)
            media = MediaInMemoryUpload(data, mimetype=mimetype, resumable=False)
            self._execute(
                "thumbnails.set",
                account.api.thumbnails().set(videoId=video_id, media_body=media),
                account,
            )
            outcome = "set"
        except (ProviderError, PublishFailure, OSError, UnidentifiedImageError) as exc:
            outcome = f"not set: {exc}"
            logger.warning(
                "YouTube video %s is up without its custom thumbnail (%s); custom thumbnails "
                "need a verified channel (youtube.com/verify)",
                video_id,
                exc,
            )
        save_progress({"thumbnail": outcome[:300]})

    # --- metrics ------------------------------------------------------------------------------

    def metrics(self, post_ids: list[str], credentials: dict[str, Any]) -> list[PostMetrics]:
        """Views, likes and comments from videos.list; watch time, average view duration and
        shares from YouTube Analytics when configured or authorized. Deleted videos are left
        out; an analytics refusal (403) leaves those fields None."""
        if not post_ids:
            return []
        account = _Account(self, credentials)
        now = datetime.now(UTC)
        found: dict[str, PostMetrics] = {}
        for batch in _batches(list(dict.fromkeys(post_ids)), IDS_PER_CALL):
            answer = self._execute(
                "videos.list",
                account.api.videos().list(part="statistics", id=",".join(batch), maxResults=50),
                account,
            )
            for item in answer.get("items") or []:
                stats = item.get("statistics") or {}
                found[str(item["id"])] = PostMetrics(
                    platform=self.platform,
                    post_id=str(item["id"]),
                    fetched_at=now,
                    views=_count(stats.get("viewCount")),
                    likes=_count(stats.get("likeCount")),
                    comments=_count(stats.get("commentCount")),
                )
        endpoint = self.analytics_endpoint or (
            DEFAULT_ANALYTICS_ENDPOINT if ANALYTICS_SCOPE in account.scopes else None
        )
        if endpoint and found:
            self._add_analytics(account, endpoint, found)
        return [found[i] for i in dict.fromkeys(post_ids) if i in found]

    def _add_analytics(
        self, account: _Account, endpoint: str, found: dict[str, PostMetrics]
    ) -> None:
        reports = account.analytics(endpoint).reports()
        try:
            today = datetime.now(ZoneInfo("America/Los_Angeles")).date()  # Analytics days
        except ZoneInfoNotFoundError:
            today = datetime.now(UTC).date()
        for batch in _batches(list(found), IDS_PER_CALL):
            query = reports.query(
                ids="channel==MINE",
                startDate=ANALYTICS_START,
                endDate=today.isoformat(),
                metrics=ANALYTICS_METRICS,
                dimensions="video",
                filters="video==" + ",".join(batch),
                sort="-estimatedMinutesWatched",
                maxResults=len(batch),
            )
            try:
                table = self._execute("reports.query", query, account)
            except PublishFailure as exc:
                # Not authorized for analytics (the scope was not granted): statistics only.
                logger.warning("YouTube Analytics refused: %s", exc)
                return
            names = [str(h.get("name")) for h in table.get("columnHeaders") or []]
            for row in table.get("rows") or []:
                values = dict(zip(names, row, strict=False))
                post = found.get(str(values.get("video")))
                if post is None:
                    continue
                minutes = values.get("estimatedMinutesWatched")
                found[post.post_id] = post.model_copy(
                    update={
                        "watch_time_s": float(minutes) * 60 if minutes is not None else None,
                        "avg_view_duration_s": _float(values.get("averageViewDuration")),
                        "shares": _count(values.get("shares")),
                    }
                )


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
