"""A protocol-faithful ElevenLabs for pytest-httpserver: the real SDK talks to it over HTTP.

Routes (as the SDK 2.78 sends them, see /work/shared/docs/providers.md 0.2):
    POST   /v1/text-to-speech/{voice_id}/with-timestamps?output_format=...   JSON in, JSON out
    POST   /v1/voices/add                    multipart: name, description, files (repeated)
    GET    /v1/voices                        {"voices": [...]}
    GET    /v1/voices/{voice_id}
    POST   /v1/voices/{voice_id}/settings/edit
    DELETE /v1/voices/{voice_id}

The speech is real audio: a voiced buzz for every letter, silence for spaces and punctuation,
as long as the text needs (divided by the requested speed), encoded with the static ffmpeg as
MP3 (or raw PCM for pcm_* formats), with a character alignment whose times are exactly where
each character sounds. Wrong or missing `xi-api-key` -> 401 invalid_api_key, as the service.

Faults: `fail_once` (an `expect_oneshot_request`, which pytest-httpserver serves before the
permanent routes), `fail_always` (state checked by the permanent handler), `malformed_tts`.
Every request is recorded (headers, JSON, form fields, uploaded file names).
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import numpy as np
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

API_KEY = "el-test-key-0123456789"
PREMADE_VOICE_ID = "premade-rachel-0001"

ROUTES: dict[str, tuple[re.Pattern[str], str]] = {
    "tts": (re.compile(r"^/v1/text-to-speech/([^/]+)/with-timestamps$"), "POST"),
    "add": (re.compile(r"^/v1/voices/add$"), "POST"),
    "list": (re.compile(r"^/v1/voices$"), "GET"),
    "get": (re.compile(r"^/v1/voices/(?!add$)([^/]+)$"), "GET"),
    "settings": (re.compile(r"^/v1/voices/([^/]+)/settings/edit$"), "POST"),
    "delete": (re.compile(r"^/v1/voices/([^/]+)$"), "DELETE"),
}

QUOTA_BODY = {
    "detail": {
        "status": "quota_exceeded",
        "message": "This request exceeds your quota of 10000. You have 12 credits remaining, "
        "while 64 credits are required for this request.",
    }
}


@dataclass
class Recorded:
    kind: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any = None
    form: dict[str, str] = field(default_factory=dict)
    files: list[tuple[str, int, str]] = field(default_factory=list)  # (filename, bytes, type)


def _json(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, headers=headers or {},
                    content_type="application/json")  # fmt: skip


def speech_alignment(text: str, speed: float = 1.0) -> tuple[list[float], list[float], float]:
    """Start and end of every character, and the audio length: letters take 75 ms, spaces
    50 ms, punctuation 110 ms (a small pause), all divided by the speed; 50 ms lead-in."""
    starts, ends = [], []
    t = 0.05
    for ch in text:
        d = (0.075 if ch.isalnum() else 0.05 if ch.isspace() else 0.11) / speed
        starts.append(round(t, 4))
        ends.append(round(t + d, 4))
        t += d
    return starts, ends, t + 0.08


def speech_audio(text: str, starts: list[float], ends: list[float], total_s: float,
                 sample_rate: int) -> np.ndarray:  # fmt: skip
    """int16 mono: a 150 Hz buzz with harmonics under every letter, silence elsewhere."""
    n = round(total_s * sample_rate)
    t = np.arange(n) / sample_rate
    buzz = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in (1, 2, 3, 5))
    envelope = np.zeros(n)
    for ch, a, b in zip(text, starts, ends, strict=True):
        if ch.isalnum():
            i, j = int(a * sample_rate), int(b * sample_rate)
            envelope[i:j] = np.hanning(max(2, j - i))[: j - i] * 0.5 + 0.3
    return (np.clip(buzz * envelope * 0.35, -1, 1) * 32767).astype("<i2")


def encode(samples: np.ndarray, sample_rate: int, codec: str) -> bytes:
    if codec == "pcm":
        return samples.astype("<i2").tobytes()
    # Through files, not pipes: only a seekable output gets the LAME header that tells the
    # decoder the encoder delay, so the decoded length matches the alignment.
    with tempfile.TemporaryDirectory() as tmp:
        raw, out = Path(tmp) / "in.raw", Path(tmp) / "out.mp3"
        raw.write_bytes(samples.astype("<i2").tobytes())
        subprocess.run(
            [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "s16le",
             "-ar", str(sample_rate), "-ac", "1", "-i", str(raw), "-c:a", "libmp3lame",
             "-b:a", "128k", str(out)],
            check=True, capture_output=True,
        )  # fmt: skip
        return out.read_bytes()


class FakeElevenLabs:
    """Register on an `httpserver`; `base_url` is what ElevenLabsVoice(base_url=...) takes."""

    def __init__(self, server: HTTPServer, api_key: str = API_KEY) -> None:
        self.server = server
        self.api_key = api_key
        self.requests: list[Recorded] = []
        self.voices: dict[str, dict[str, Any]] = {
            PREMADE_VOICE_ID: {"voice_id": PREMADE_VOICE_ID, "name": "Rachel",
                               "category": "premade", "settings": None, "samples": []},
        }  # fmt: skip
        self._always: dict[str, tuple[int, object, dict[str, str]]] = {}
        self._malformed: int = 0
        for kind, (pattern, method) in ROUTES.items():
            server.expect_request(pattern, method=method).respond_with_handler(
                lambda request, kind=kind: self._dispatch(kind, request)
            )

    @property
    def base_url(self) -> str:
        return self.server.url_for("/").rstrip("/")

    # --- faults -------------------------------------------------------------------------

    def fail_once(self, kind: str, status: int, body: object,
                  headers: dict[str, str] | None = None) -> None:  # fmt: skip
        pattern, method = ROUTES[kind]

        def respond(request: Request) -> Response:
            self._record(kind, request)
            return _json(body, status, headers)

        self.server.expect_oneshot_request(pattern, method=method).respond_with_handler(respond)

    def fail_always(self, kind: str, status: int, body: object,
                    headers: dict[str, str] | None = None) -> None:  # fmt: skip
        self._always[kind] = (status, body, headers or {})

    def malformed_tts(self, times: int = 1) -> None:
        """The next `times` speech responses come without `alignment`."""
        self._malformed = times

    # --- recorded requests ----------------------------------------------------------------

    def calls(self, kind: str) -> list[Recorded]:
        return [r for r in self.requests if r.kind == kind]

    def _record(self, kind: str, request: Request) -> Recorded:
        recorded = Recorded(
            kind=kind,
            method=request.method,
            path=request.path,
            query=dict(request.args),
            headers={k.lower(): v for k, v in request.headers.items()},
            json=request.get_json(silent=True) if request.is_json else None,
            form=dict(request.form),
            files=[
                (f.filename or "", len(f.read()), f.mimetype)
                for f in request.files.getlist("files")
            ],
        )
        self.requests.append(recorded)
        return recorded

    # --- routes -----------------------------------------------------------------------------

    def _dispatch(self, kind: str, request: Request) -> Response:
        recorded = self._record(kind, request)
        if recorded.headers.get("xi-api-key") != self.api_key:
            return _json({"detail": {"status": "invalid_api_key",
                                     "message": "Invalid API key"}}, 401)  # fmt: skip
        if kind in self._always:
            status, body, headers = self._always[kind]
            return _json(body, status, headers)
        match = ROUTES[kind][0].match(request.path)
        voice_id = match.group(1) if match and match.groups() else None
        if voice_id is not None and kind != "add" and voice_id not in self.voices:
            return _json({"detail": {"status": "voice_not_found",
                                     "message": f"A voice with voice_id {voice_id} was not "
                                                "found."}}, 404)  # fmt: skip
        return getattr(self, f"_{kind}")(recorded, voice_id)

    def _tts(self, recorded: Recorded, voice_id: str) -> Response:
        body = recorded.json or {}
        text = body.get("text")
        if not isinstance(text, str) or not text:
            return _json({"detail": [{"loc": ["body", "text"], "msg": "field required",
                                      "type": "value_error.missing"}]}, 422)  # fmt: skip
        output_format = recorded.query.get("output_format", "mp3_44100_128")
        codec, rate = output_format.split("_")[0], int(output_format.split("_")[1])
        speed = float((body.get("voice_settings") or {}).get("speed") or 1.0)
        starts, ends, total = speech_alignment(text, speed)
        audio = encode(speech_audio(text, starts, ends, total, rate), rate, codec)
        alignment = {"characters": list(text), "character_start_times_seconds": starts,
                     "character_end_times_seconds": ends}  # fmt: skip
        payload: dict[str, Any] = {
            "audio_base64": base64.b64encode(audio).decode(),
            "alignment": alignment,
            "normalized_alignment": alignment,
        }
        if self._malformed > 0:
            self._malformed -= 1
            del payload["alignment"], payload["normalized_alignment"]
        return _json(payload)

    def _add(self, recorded: Recorded, _: str | None) -> Response:
        if not recorded.form.get("name") or not recorded.files:
            return _json({"detail": [{"loc": ["body", "files"], "msg": "field required",
                                      "type": "value_error.missing"}]}, 422)  # fmt: skip
        voice_id = uuid.uuid4().hex[:20]
        self.voices[voice_id] = {
            "voice_id": voice_id, "name": recorded.form["name"], "category": "cloned",
            "description": recorded.form.get("description"), "settings": None,
            "samples": [{"file_name": name, "size_bytes": size} for name, size, _ in recorded.files],
        }  # fmt: skip
        return _json({"voice_id": voice_id, "requires_verification": False})

    def _list(self, recorded: Recorded, _: str | None) -> Response:
        return _json({"voices": list(self.voices.values())})

    def _get(self, recorded: Recorded, voice_id: str) -> Response:
        return _json(self.voices[voice_id])

    def _settings(self, recorded: Recorded, voice_id: str) -> Response:
        self.voices[voice_id]["settings"] = recorded.json
        return _json({"status": "ok"})

    def _delete(self, recorded: Recorded, voice_id: str) -> Response:
        del self.voices[voice_id]
        return _json({"status": "ok"})
