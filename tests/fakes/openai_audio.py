"""A protocol-faithful fake of OpenAI's `POST /v1/audio/transcriptions` for pytest-httpserver.

What it checks and answers as the real API does (see shared/docs/providers.md 0.1): bearer
auth (401 `invalid_api_key`), multipart fields `model`, `response_format`, repeated
`timestamp_granularities[]`, `language`, `file`; `timestamp_granularities` only with
`verbose_json` (400); the upload size limit (413); the verbose_json body with `words` (bare
words, no punctuation, as whisper-1 gives them), `segments` and `usage.seconds`.

What it says is either a transcript the test sets, or what the local faster-whisper model hears
in the uploaded audio, so a test that sends speech gets that speech back.

Faults: one-shot ones go through `expect_oneshot_request` (pytest-httpserver serves one-shot
handlers before permanent ones); persistent ones switch the permanent handler.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

PATH = "/v1/audio/transcriptions"
LANGUAGE_NAMES = {"en": "english", "ru": "russian"}
_EDGE_PUNCT = re.compile(r"^[^\w']+|[^\w']+$")


@dataclass
class Heard:
    """What the fake 'hears': text, bare words with timings, and the audio's length."""

    text: str
    words: list[tuple[str, float, float]]
    duration_s: float


# (audio bytes, file name, language or None) -> what is said in it
Engine = Callable[[bytes, str, str | None], Heard]


@dataclass
class Upload:
    """One request as the fake saw it (for assertions)."""

    model: str | None
    response_format: str | None
    granularities: list[str]
    language: str | None
    filename: str | None
    content_type: str | None
    size: int
    authorization: str | None
    retry_count: str | None


def fixed(text: str, duration_s: float | None = None) -> Engine:
    """An engine that always hears `text`, its words spread evenly over the duration."""

    def engine(_: bytes, __: str, ___: str | None) -> Heard:
        words = text.split()
        seconds = duration_s if duration_s is not None else 0.4 * len(words)
        step = seconds / max(1, len(words))
        timed = [
            (_bare(w), round(i * step, 2), round((i + 1) * step, 2)) for i, w in enumerate(words)
        ]
        return Heard(text, [t for t in timed if t[0]], seconds)

    return engine


def local_whisper(model: Any) -> Engine:
    """An engine that really listens: the uploaded audio through a faster-whisper model."""

    def engine(audio: bytes, filename: str, language: str | None) -> Heard:
        with tempfile.TemporaryDirectory() as work:
            path = Path(work) / (filename or "upload.bin")
            path.write_bytes(audio)
            segments, info = model.transcribe(
                str(path), language=language, word_timestamps=True, beam_size=5,
                temperature=0.0, condition_on_previous_text=False,
            )  # fmt: skip
            segments = list(segments)
        words = [
            (_bare(w.word), round(w.start, 2), round(w.end, 2))
            for s in segments
            for w in s.words or []
        ]
        text = "".join(s.text for s in segments).strip()
        return Heard(text, [w for w in words if w[0]], info.duration)

    return engine


def _bare(word: str) -> str:
    """whisper-1's word granularity gives words without surrounding punctuation."""
    return _EDGE_PUNCT.sub("", word.strip())


def _json(status: int, body: object, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False), status=status, headers=headers or {},
        content_type="application/json",
    )  # fmt: skip


def _error(status: int, message: str, kind: str, code: str | None = None) -> Response:
    return _json(status, {"error": {"message": message, "type": kind, "param": None, "code": code}})


@dataclass
class FakeOpenAIAudio:
    server: HTTPServer
    engine: Engine = field(default_factory=lambda: fixed("Hello there."))
    api_key: str = "sk-test-fake-key-1234567890"
    max_upload_bytes: int = 26_214_400  # the limit the real API reports in its 413 message
    uploads: list[Upload] = field(default_factory=list)
    always: Callable[[Request], Response] | None = None

    def __post_init__(self) -> None:
        self.server.expect_request(PATH, method="POST").respond_with_handler(self._serve)

    @property
    def base_url(self) -> str:
        return self.server.url_for("/v1")

    # -- faults -------------------------------------------------------------------------------

    def rate_limit_once(self, retry_after: str = "1") -> None:
        """One 429 with Retry-After, as OpenAI sends when a minute's quota runs out."""
        self._once(
            lambda: Response(
                json.dumps({"error": {
                    "message": "Rate limit reached for whisper-1 on requests per min (RPM): "
                               "Limit 50, Used 50, Requested 1. Please try again in 1s.",
                    "type": "requests", "param": None, "code": "rate_limit_exceeded"}}),
                status=429, content_type="application/json",
                headers={"retry-after": retry_after, "x-ratelimit-remaining-requests": "0"},
            )
        )  # fmt: skip

    def server_error_once(self) -> None:
        self._once(lambda: _error(500, "The server had an error while processing your request. "
                                  "Sorry about that!", "server_error"))  # fmt: skip

    def fail_always(self, status: int = 500) -> None:
        """Every request from now on fails with `status` (an outage)."""
        message = {500: "The server had an error while processing your request.",
                   503: "The engine is currently overloaded, please try again later."}  # fmt: skip
        self.always = lambda _: _error(status, message.get(status, "error"), "server_error")

    def malformed_always(self) -> None:
        """200 with a truncated JSON body (a proxy cut the response short)."""
        self.always = lambda _: Response(
            '{"task": "transcribe", "language": "english", "duration": 1.5, "text": "Hel',
            status=200, content_type="application/json",
        )  # fmt: skip

    def _once(self, make: Callable[[], Response]) -> None:
        def handler(request: Request) -> Response:
            self.uploads.append(self._record(request))
            return make()

        self.server.expect_oneshot_request(PATH, method="POST").respond_with_handler(handler)

    # -- the endpoint -------------------------------------------------------------------------

    def _record(self, request: Request) -> Upload:
        upload = request.files.get("file")
        data = upload.read() if upload else b""
        if upload:
            upload.stream.seek(0)
        return Upload(
            model=request.form.get("model"),
            response_format=request.form.get("response_format"),
            granularities=request.form.getlist("timestamp_granularities[]"),
            language=request.form.get("language"),
            filename=upload.filename if upload else None,
            content_type=upload.content_type if upload else None,
            size=len(data),
            authorization=request.headers.get("Authorization"),
            retry_count=request.headers.get("x-stainless-retry-count"),
        )

    def _serve(self, request: Request) -> Response:
        length = request.content_length or len(request.get_data())
        if length > self.max_upload_bytes:
            # The real API refuses before parsing the form; it names its limit in bytes.
            self.uploads.append(Upload(None, None, [], None, None, None, length,
                                       request.headers.get("Authorization"), None))  # fmt: skip
            return _error(
                413,
                f"Maximum content size limit ({self.max_upload_bytes}) exceeded "
                f"({length} bytes read)",
                "server_error",
            )
        seen = self._record(request)
        self.uploads.append(seen)
        if seen.authorization != f"Bearer {self.api_key}":
            given = (seen.authorization or "").removeprefix("Bearer ")
            # The real message shows part of the key; echo it whole to prove callers hide it.
            return _error(401, f"Incorrect API key provided: {given}. You can find your API "
                          "key at https://platform.openai.com/account/api-keys.",
                          "invalid_request_error", "invalid_api_key")  # fmt: skip
        if self.always is not None:
            return self.always(request)
        if not seen.model:
            return _error(400, "you must provide a model parameter", "invalid_request_error")
        if "file" not in request.files:
            return _error(400, "1 validation error for Request\nbody -> file\n  field required",
                          "invalid_request_error")  # fmt: skip
        fmt = seen.response_format or "json"
        if fmt not in {"json", "text", "srt", "verbose_json", "vtt"}:
            return _error(400, f"Invalid response_format {fmt!r}", "invalid_request_error")
        if seen.granularities and fmt != "verbose_json":
            return _error(400, "timestamp_granularities is only supported with "
                          "response_format=verbose_json", "invalid_request_error")  # fmt: skip
        upload = request.files["file"]
        heard = self.engine(upload.read(), upload.filename or "", seen.language)
        if fmt != "verbose_json":
            return _json(200, {"text": heard.text})
        body: dict[str, Any] = {
            "task": "transcribe",
            "language": LANGUAGE_NAMES.get(seen.language or "", "english"),
            "duration": round(heard.duration_s, 2),
            "text": heard.text,
            "usage": {"type": "duration", "seconds": math.ceil(heard.duration_s)},
        }
        wanted = seen.granularities or ["segment"]
        if "word" in wanted:
            body["words"] = [{"word": w, "start": s, "end": e} for w, s, e in heard.words]
        if "segment" in wanted:
            body["segments"] = [{
                "id": 0, "seek": 0, "start": 0.0, "end": round(heard.duration_s, 2),
                "text": " " + heard.text, "tokens": [50364, 50365], "temperature": 0.0,
                "avg_logprob": -0.2, "compression_ratio": 1.2, "no_speech_prob": 0.01,
            }]  # fmt: skip
        return _json(200, body)
