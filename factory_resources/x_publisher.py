"""Posts a topic's video to X through API v2: a chunked media upload, X's processing, then the post.

The flow (providers.md 1.3): `POST /2/media/upload/initialize` (video/mp4, total bytes,
`amplify_video`) gives a media id that lives `expires_after_secs`; `POST .../{id}/append` sends
the file in chunks of at most 5 MB, each with its `segment_index`; `POST .../{id}/finalize`
starts processing, polled with `GET /2/media/upload?command=STATUS` as often as X's
`check_after_secs` says, until `succeeded` (or `failed`, a PublishFailure with X's reason);
then `POST /2/tweets` with the text and the media id. The text ends with the publication marker
as a hashtag (`#vf0123456789`), fitted to X's 280 weighted characters by dropping hashtags and
then cutting the text, never the marker.

Exactly once. Each step that X remembers is followed at once by `save_progress`: the media id
and its expiry after INITIALIZE, `segments_done` after every APPEND, `finalized` after FINALIZE,
`posting` just before the post and `tweet_id` just after it. A later attempt resumes from that:
it skips the segments X has (an APPEND of the same index overwrites, so re-sending the one that
was in flight is harmless), skips FINALIZE, or only polls. A media id that has expired, or that
X no longer knows, makes the upload start over (a fresh media id is not a post, so nothing
doubles). Once `posting` is saved, nothing posts again before the account's latest posts
(`GET /2/users/me`, then `GET /2/users/{id}/tweets`) were searched for the marker: `find` does
that, and so does every retry of the post inside one call, since a 5xx or a timeout may hide a
post X made. X also refuses an exact duplicate text with 403 "duplicate content"; since our text
carries the marker, that refusal means our post exists, and it is looked up the same way.

Residual windows: a post that is older than the account's 20 latest posts when it is looked up
(an account posting 20 times between a lost answer and the retry) is not found, and X's
duplicate check is then the only guard. INITIALIZE is retried on 5xx although it is not
idempotent: an orphan media id may result, never a post.

Secrets: the user's OAuth 2.0 token travels only in the Authorization header (httpx logs URLs,
not headers); error texts are redacted with it, and httpx exceptions are not chained onto ours.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from factory_core.publish_metadata import Platform, cut_to_fit, x_weighted_length
from factory_core.publishing import PostMetrics, PublishedPost, PublishFailure, PublishRequest
from factory_resources.faults import ProviderError, call_with_retries, redact

logger = logging.getLogger(__name__)

PROVIDER = "x"
DEFAULT_BASE_URL = "https://api.x.com"
TEXT_MAX = 280  # weighted characters (twitter-text v3), see publish_metadata.x_weighted_length
CHUNK_MAX = 5 * 1024 * 1024  # APPEND takes at most 5 MB a segment.
DEFAULT_CHUNK = 4 * 1024 * 1024
SEGMENTS_MAX = 1000  # segment_index runs 0..999.
VIDEO_MAX_BYTES = 512 * 1024 * 1024
MEDIA_CATEGORY = "amplify_video"
# A media id closer than this to its expiry is not resumed: the rest of the upload and X's
# processing could outlive it, and the post would then be refused.
EXPIRY_MARGIN_S = 300.0
CHECK_AFTER_MAX_S = 60.0  # never sleep longer than this between STATUS polls
TIMELINE_LOOKBACK = 20  # how many of the account's latest posts are searched for the marker
LOOKUP_MAX_IDS = 100  # GET /2/tweets?ids= takes at most 100 ids
RECONNECT = (
    "reconnect the X account: its access was revoked or has expired, or it lacks the "
    "tweet.read, tweet.write, users.read or media.write permission"
)
_TRAILING_HASHTAG = re.compile(r"\s*#\w+$")


def post_url(tweet_id: str) -> str:
    return f"https://x.com/i/web/status/{tweet_id}"


def x_post_text(text: str, marker: str) -> str:
    """`text` ending with `#<marker>` within 280 weighted characters: trailing hashtags go first,
    then the text is cut at a word boundary; the marker never goes."""

    def fits(candidate: str) -> bool:
        return x_weighted_length(candidate) <= TEXT_MAX

    if marker in text:
        return cut_to_fit(text, fits)  # PostMetadata already fits; cut only if built otherwise
    tail = f"#{marker}"

    def with_tail(body: str) -> str:
        if not body:
            return tail
        last_line = body.rsplit("\n", 1)[-1].split()
        # On a line of hashtags the marker is one more; after prose it gets a line of its own.
        together = bool(last_line) and all(word.startswith("#") for word in last_line)
        separator = " " if together else "\n\n"
        return f"{body}{separator}{tail}"

    body = text.strip()
    while not fits(with_tail(body)) and _TRAILING_HASHTAG.search(body):
        body = _TRAILING_HASHTAG.sub("", body).rstrip()
    return with_tail(cut_to_fit(body, lambda b: fits(with_tail(b))))


class XRejected(PublishFailure):
    """X refused a request for good (400, 403, 404, ...): its status and its own words."""

    def __init__(self, step: str, status: int, detail: str) -> None:
        self.step = step
        self.status = status
        self.detail = detail
        super().__init__(Platform.X, f"X refused {step}: {detail} (HTTP {status})")

    @property
    def duplicate(self) -> bool:
        return self.status == 403 and "duplicate content" in self.detail.lower()


class XPublisher:
    """The Publisher and MetricsSource for X. Credentials: the user-context OAuth 2.0 token,
    {"access_token": ..., ...} (refreshed by the caller before the call)."""

    platform = Platform.X

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout_s: float = 60.0,
        attempts: int = 4,
        sleep: Callable[[float], None] = time.sleep,
        chunk_size: int = DEFAULT_CHUNK,
        poll_timeout_s: float = 600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 < chunk_size <= CHUNK_MAX:
            raise ValueError(f"chunk_size must be 1..{CHUNK_MAX} bytes, got {chunk_size}")
        self.base_url = base_url.rstrip("/")
        # A 5 MB segment needs time to write; connecting should not.
        self.timeout = httpx.Timeout(timeout_s, connect=min(10.0, timeout_s))
        self.attempts = attempts
        self.sleep = sleep
        self.chunk_size = chunk_size
        self.poll_timeout_s = poll_timeout_s
        self.clock = clock  # epoch seconds: media expiry and x-rate-limit-reset are epoch times

    # --- Publisher ----------------------------------------------------------------------------

    def find(self, request: PublishRequest, credentials: dict[str, Any]) -> PublishedPost | None:
        """The saved post; or, when an earlier attempt got as far as posting, the account's
        latest post carrying the marker. Nothing was posted before `posting` was saved."""
        tweet_id = request.progress.get("tweet_id")
        if tweet_id:
            return _post(str(tweet_id))
        if not request.progress.get("posting"):
            return None
        token = _token(credentials)
        with self._client(token) as client:
            found = self._look_up_marker(client, token, request.marker)
        return _post(found) if found else None

    def publish(
        self,
        request: PublishRequest,
        credentials: dict[str, Any],
        save_progress: Callable[[dict[str, Any]], None],
    ) -> PublishedPost:
        saved = request.progress.get("tweet_id")
        if saved:
            return _post(str(saved))
        token = _token(credentials)
        size = request.video.stat().st_size
        if size == 0 or size > VIDEO_MAX_BYTES:
            raise PublishFailure(
                self.platform,
                f"video is {size / 1e6:.1f} MB; X takes 1 byte to {VIDEO_MAX_BYTES / 1e6:.0f} MB",
            )
        if math.ceil(size / self.chunk_size) > SEGMENTS_MAX:
            raise PublishFailure(
                self.platform, f"{size} bytes need over {SEGMENTS_MAX} segments: raise chunk_size"
            )
        text = x_post_text(request.metadata.text, request.marker)
        progress = dict(request.progress)
        with self._client(token) as client:
            if progress.get("posting"):
                # An earlier attempt may have posted and lost the answer: look before anything
                # else, since a fresh upload below would otherwise end in a second post.
                found = self._look_up_marker(client, token, request.marker)
                if found:
                    save_progress({"tweet_id": found})
                    return _post(found)
            resumable = self._resumable(progress, size)
            if resumable:
                try:
                    return self._upload_and_post(
                        client, token, request.video, size, text, request.marker,
                        progress, save_progress,
                    )  # fmt: skip
                except XRejected as exc:
                    if not _media_gone(exc):
                        raise
                    logger.info("X no longer knows media %s; uploading again", progress["media_id"])
            return self._upload_and_post(
                client, token, request.video, size, text, request.marker, {}, save_progress
            )

    # --- MetricsSource ------------------------------------------------------------------------

    def metrics(self, post_ids: list[str], credentials: dict[str, Any]) -> list[PostMetrics]:
        """Public metrics of each post X still has (deleted ones are left out)."""
        ids = list(dict.fromkeys(str(i) for i in post_ids))
        if not ids:
            return []
        token = _token(credentials)
        fetched_at = datetime.now(UTC)
        out: list[PostMetrics] = []
        with self._client(token) as client:
            for start in range(0, len(ids), LOOKUP_MAX_IDS):
                batch = ids[start : start + LOOKUP_MAX_IDS]
                params = {"ids": ",".join(batch), "tweet.fields": "public_metrics"}

                def lookup(params: dict[str, str] = params) -> dict[str, Any]:
                    return self._call(
                        client, token, "GET", "/2/tweets", "the post lookup", params=params
                    )

                body = call_with_retries(lookup, attempts=self.attempts, sleep=self.sleep)
                # Posts X no longer has come back under "errors" (resource-not-found): skipped.
                out.extend(_metrics(tweet, fetched_at) for tweet in body.get("data") or [])
        return out

    # --- steps --------------------------------------------------------------------------------

    def _resumable(self, progress: dict[str, Any], size: int) -> bool:
        """Whether the saved media id can carry on: same file size and chunking, not expiring."""
        if not progress.get("media_id"):
            return False
        if progress.get("media_bytes") != size or progress.get("chunk_size") != self.chunk_size:
            return False  # another file or another segmentation: segment indexes would not match
        expires_at = float(progress.get("media_expires_at") or 0)
        return expires_at - self.clock() > EXPIRY_MARGIN_S

    def _upload_and_post(
        self,
        client: httpx.Client,
        token: str,
        video: Path,
        size: int,
        text: str,
        marker: str,
        progress: dict[str, Any],
        save_progress: Callable[[dict[str, Any]], None],
    ) -> PublishedPost:
        def call(method: str, path: str, step: str, **kwargs: Any) -> dict[str, Any]:
            return call_with_retries(
                lambda: self._call(client, token, method, path, step, **kwargs),
                attempts=self.attempts,
                sleep=self.sleep,
            )

        def save(update: dict[str, Any]) -> None:
            progress.update(update)
            save_progress(update)

        if not progress.get("media_id"):
            body = {
                "media_type": "video/mp4",
                "total_bytes": size,
                "media_category": MEDIA_CATEGORY,
            }
            data = call("POST", "/2/media/upload/initialize", "INITIALIZE", json=body).get("data")
            if not isinstance(data, dict) or not data.get("id"):
                raise ProviderError(PROVIDER, "INITIALIZE answered without a media id")
            # Every key is written, so nothing of an abandoned earlier upload lingers in the ledger.
            save({
                "media_id": str(data["id"]),
                "media_expires_at": self.clock() + float(data.get("expires_after_secs") or 86400),
                "media_bytes": size,
                "chunk_size": self.chunk_size,
                "segments_done": 0,
                "finalized": False,
                "posting": False,
            })  # fmt: skip
        media_id = str(progress["media_id"])
        media_path = f"/2/media/upload/{media_id}"

        segments = math.ceil(size / self.chunk_size)
        with video.open("rb") as fh:
            for index in range(int(progress.get("segments_done") or 0), segments):
                fh.seek(index * self.chunk_size)
                chunk = fh.read(self.chunk_size)
                # A retry re-sends this segment under the same index, which X overwrites.
                call(
                    "POST", f"{media_path}/append", "APPEND",
                    data={"segment_index": str(index)},
                    files={"media": ("blob", chunk, "application/octet-stream")},
                )  # fmt: skip
                save({"segments_done": index + 1})

        info: dict[str, Any] | None
        if not progress.get("finalized"):
            data = call("POST", f"{media_path}/finalize", "FINALIZE").get("data") or {}
            save({"finalized": True})
            info = data.get("processing_info")
        else:
            info = self._status(client, token, media_id)
        self._await_processing(client, token, media_id, info)

        save({"posting": True})
        tweet_id = self._post_once(client, token, text, media_id, marker)
        save({"tweet_id": tweet_id})
        logger.info("posted to X: %s", tweet_id)
        return _post(tweet_id)

    def _status(self, client: httpx.Client, token: str, media_id: str) -> dict[str, Any] | None:
        params = {"command": "STATUS", "media_id": media_id}
        body = call_with_retries(
            lambda: self._call(client, token, "GET", "/2/media/upload", "STATUS", params=params),
            attempts=self.attempts,
            sleep=self.sleep,
        )
        return (body.get("data") or {}).get("processing_info")

    def _await_processing(
        self, client: httpx.Client, token: str, media_id: str, info: dict[str, Any] | None
    ) -> None:
        """Polls STATUS as X's `check_after_secs` says until `succeeded`. No processing_info
        means nothing to process. Too long is retryable: progress keeps the media id, and the
        next attempt only polls."""
        waited = 0.0
        while info is not None:
            state = str(info.get("state") or "")
            if state == "succeeded":
                return
            if state == "failed":
                error = info.get("error") or {}
                reason = error.get("message") or error.get("name") or "no reason given"
                raise PublishFailure(
                    self.platform,
                    f"X could not process the video ({reason}); check its format "
                    "(MP4, H.264 and AAC, at most 140 s, 60 fps, 512 MB) and publish again",
                )
            wait = min(CHECK_AFTER_MAX_S, max(0.0, float(info.get("check_after_secs") or 1)))
            if waited + wait > self.poll_timeout_s:
                raise ProviderError(
                    PROVIDER,
                    f"media {media_id} still {state or 'processing'} after {waited:.0f} s",
                    retryable=True,
                )
            self.sleep(wait)
            waited += wait
            info = self._status(client, token, media_id)

    def _post_once(
        self, client: httpx.Client, token: str, text: str, media_id: str, marker: str
    ) -> str:
        """POST /2/tweets, retried, but never blindly: a retry first searches the latest posts
        for the marker, since the failed try may have posted. X's duplicate refusal of our own
        (marked) text means the post exists, so it is looked up too."""
        tries = 0
        body = {"text": text, "media": {"media_ids": [media_id]}}

        def create() -> str:
            nonlocal tries
            if tries:
                found = self._look_up_marker(client, token, marker)
                if found:
                    return found
            tries += 1
            try:
                answer = self._call(client, token, "POST", "/2/tweets", "the post", json=body)
            except XRejected as exc:
                if not exc.duplicate:
                    raise
                found = self._look_up_marker(client, token, marker)
                if found:
                    return found
                raise ProviderError(
                    PROVIDER,
                    "X refused the post as a duplicate, but it is not among the account's "
                    f"{TIMELINE_LOOKBACK} latest posts yet",
                    status=403,
                    retryable=True,
                ) from None
            tweet_id = (answer.get("data") or {}).get("id")
            if not tweet_id:
                raise ProviderError(PROVIDER, "the post was answered without an id", retryable=True)
            return str(tweet_id)

        return call_with_retries(create, attempts=self.attempts, sleep=self.sleep)

    def _look_up_marker(self, client: httpx.Client, token: str, marker: str) -> str | None:
        """The id of the account's latest post whose text carries `marker`, if any."""

        def search() -> str | None:
            me = self._call(client, token, "GET", "/2/users/me", "the account lookup")
            user_id = (me.get("data") or {}).get("id")
            if not user_id:
                raise ProviderError(PROVIDER, "GET /2/users/me answered without an id")
            timeline = self._call(
                client, token, "GET", f"/2/users/{user_id}/tweets", "the timeline lookup",
                params={"max_results": str(TIMELINE_LOOKBACK)},
            )  # fmt: skip
            for tweet in timeline.get("data") or []:
                if marker in str(tweet.get("text") or ""):
                    return str(tweet["id"])
            return None

        return call_with_retries(search, attempts=self.attempts, sleep=self.sleep)

    # --- HTTP ---------------------------------------------------------------------------------

    @contextmanager
    def _client(self, token: str) -> Iterator[httpx.Client]:
        headers = {"Authorization": f"Bearer {token}", "User-Agent": "video-factory"}
        with httpx.Client(base_url=self.base_url, headers=headers, timeout=self.timeout) as client:
            yield client

    def _call(
        self,
        client: httpx.Client,
        token: str,
        method: str,
        path: str,
        step: str,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """One request: its JSON body on 2xx, else our error in X's words, without the token."""
        try:
            response = client.request(method, path, **kwargs)
        except httpx.TimeoutException:
            # `from None`: httpx exceptions carry the request, and with it the headers.
            raise ProviderError(PROVIDER, f"{step} timed out", retryable=True) from None
        except httpx.HTTPError as exc:
            reason = redact(f"{step} failed: {type(exc).__name__}: {exc}", token)
            raise ProviderError(PROVIDER, reason, retryable=True) from None
        return self._answer(response, token, step)

    def _answer(self, response: httpx.Response, token: str, step: str) -> dict[str, Any]:
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        if 200 <= status < 300:
            if not isinstance(body, dict):
                raise ProviderError(
                    PROVIDER, f"{step}: unexpected answer {response.text[:200]!r}", status=status
                )
            return body
        detail = redact(_problem(body) or response.text[:200] or response.reason_phrase, token)
        if status == 401:
            raise PublishFailure(self.platform, f"{detail} (HTTP 401); {RECONNECT}")
        if status == 429:
            reset = response.headers.get("x-rate-limit-reset")
            wait = None
            if reset is not None and reset.strip().isdigit():
                wait = max(0.0, float(reset) - self.clock())
            raise ProviderError(
                PROVIDER, f"{step}: {detail}", status=429, retryable=True, retry_after_s=wait
            )
        if status >= 500 or status == 408:
            raise ProviderError(PROVIDER, f"{step}: {detail}", status=status, retryable=True)
        raise XRejected(step, status, detail)


def _token(credentials: dict[str, Any]) -> str:
    token = str(credentials.get("access_token") or "")
    if not token:
        raise PublishFailure(Platform.X, f"no access token; {RECONNECT}")
    return token


def _post(tweet_id: str) -> PublishedPost:
    return PublishedPost(platform=Platform.X, post_id=tweet_id, url=post_url(tweet_id))


def _media_gone(exc: XRejected) -> bool:
    """A refusal that means the saved media id is unusable (expired or forgotten by X)."""
    if exc.status not in (400, 404):
        return False
    return exc.step in ("APPEND", "FINALIZE", "STATUS") or "media" in exc.detail.lower()


def _problem(body: Any) -> str:
    """X's reason from a problem JSON ({"title","detail","type","status"}) and any `errors`."""
    if not isinstance(body, dict):
        return ""
    parts = [str(body.get("detail") or body.get("title") or "")]
    for error in body.get("errors") or []:
        if isinstance(error, dict):
            message = str(error.get("message") or error.get("detail") or "")
            if message and message not in parts:
                parts.append(message)
    return "; ".join(part for part in parts if part)


def _metrics(tweet: dict[str, Any], fetched_at: datetime) -> PostMetrics:
    counts = tweet.get("public_metrics") or {}

    def count(name: str) -> int | None:
        value = counts.get(name)
        return int(value) if value is not None else None

    shares = [v for v in (count("retweet_count"), count("quote_count")) if v is not None]
    return PostMetrics(
        platform=Platform.X,
        post_id=str(tweet["id"]),
        fetched_at=fetched_at,
        views=count("impression_count"),
        likes=count("like_count"),
        comments=count("reply_count"),
        shares=sum(shares) if shares else None,
        saves=count("bookmark_count"),
    )
