"""A fake fal.ai for pytest-httpserver, faithful to the wire protocol fal-client 1.0.3 speaks
(docs/providers.md 0.3): the real SDK, its host rewritten to this server, cannot tell.

Queue: `POST /{app_id}` with `Host: queue.fal.run` -> request_id and status/response/cancel URLs
on this server; `GET .../status` goes IN_QUEUE -> IN_PROGRESS -> COMPLETED over polls;
`GET .../requests/{id}` -> `{"images": [{"url", ...}], "seed", ...}`; the picture is served at
`https://v3.fal.media/files/{id}.png` (reached through the same rewrite) as a real PNG drawn from
the prompt and seed. A reference-conditioned request (`reference_image_url`/`image_url` data URI)
gets the reference pasted in, so the face stays and a similarity score means something - unless
the prompt contains one of `faceless_words` (a character seen from behind).

Faults on demand: `rate_limit_once_s` (one 429 with Retry-After), `fail_status` (every submit,
with a body fal-client does not retry), `never_complete`, `malformed` (result without images),
`fail_downloads` (that many 503s from the file host).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageDraw
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response


@dataclass
class Job:
    app: str
    arguments: dict[str, Any]
    polls: int = 0
    cancelled: bool = False


@dataclass
class Seen:
    method: str
    host: str
    path: str
    body: Any
    authorization: str
    at: float


@dataclass
class FakeFal:
    server: HTTPServer
    polls_to_complete: int = 2
    rate_limit_once_s: float | None = None
    fail_status: int | None = None
    fail_detail: str = "Internal server error"
    never_complete: bool = False
    malformed: bool = False
    fail_downloads: int = 0
    faceless_words: tuple[str, ...] = ("from behind",)
    jobs: dict[str, Job] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.server.expect_request(re.compile(r"^/.*")).respond_with_handler(self._handle)

    @property
    def base_url(self) -> str:
        # The address the server socket is bound to (IPv4 loopback), not the name it was given.
        host, port = self.server.server.socket.getsockname()[:2]  # type: ignore[union-attr]
        return f"http://{host}:{port}"

    def submits(self) -> list[Seen]:
        return [s for s in self.seen if s.method == "POST" and s.host == "queue.fal.run"]

    # --- routing ------------------------------------------------------------------------------

    def _handle(self, request: Request) -> Response:
        host = (request.headers.get("Host") or "").split(":")[0]
        body = request.get_json(silent=True) if request.data else None
        with self._lock:
            auth = request.headers.get("Authorization", "")
            self.seen.append(Seen(request.method, host, request.path, body, auth, time.monotonic()))
        if host == "v3.fal.media" and request.method == "GET":
            if self.fail_downloads > 0:
                self.fail_downloads -= 1
                return _json({"detail": "CDN unavailable"}, 503)
            return self._file(request.path)
        if request.method == "POST" and host == "queue.fal.run":
            return self._submit(request.path.lstrip("/"), body or {})
        match = re.match(r"^/(?P<app>.+)/requests/(?P<id>[0-9a-f-]+)(?P<tail>/status|/cancel)?$",
                         request.path)  # fmt: skip
        if match is None or match["id"] not in self.jobs:
            return _json({"detail": f"Request {request.path} not found"}, 404)
        job = self.jobs[match["id"]]
        if match["tail"] == "/status" and request.method == "GET":
            return self._status(job)
        if match["tail"] == "/cancel" and request.method == "PUT":
            job.cancelled = True
            return _json({"status": "CANCELLATION_REQUESTED"}, 202)
        if match["tail"] is None and request.method == "GET":
            return self._response(match["id"], job)
        return _json({"detail": "Method not allowed"}, 405)

    def _submit(self, app: str, arguments: dict[str, Any]) -> Response:
        if self.rate_limit_once_s is not None:
            wait, self.rate_limit_once_s = self.rate_limit_once_s, None
            return _json({"detail": "Rate limit exceeded"}, 429, {"Retry-After": f"{wait:g}"})
        if self.fail_status is not None:
            # x-fal-request-id marks the answer as fal's own (not an ingress error), so
            # fal-client does not retry it and our retry policy is what runs.
            return _json({"detail": self.fail_detail}, self.fail_status,
                         {"x-fal-request-id": "err"})  # fmt: skip
        digest = hashlib.sha256(json.dumps([app, arguments, len(self.jobs)]).encode())
        request_id = str(_uuid(digest.hexdigest()))
        self.jobs[request_id] = Job(app, arguments)
        owner_alias = "/".join(app.split("/")[:2])
        base = f"{self.base_url}/{owner_alias}/requests/{request_id}"
        return _json({
            "request_id": request_id, "response_url": base, "status_url": f"{base}/status",
            "cancel_url": f"{base}/cancel", "queue_position": 0,
        })  # fmt: skip

    def _status(self, job: Job) -> Response:
        job.polls += 1
        if self.never_complete or job.polls < self.polls_to_complete:
            if job.polls == 1:
                return _json({"status": "IN_QUEUE", "queue_position": 0})
            return _json({"status": "IN_PROGRESS", "logs": []})
        return _json({"status": "COMPLETED", "logs": [], "metrics": {"inference_time": 0.4}})

    def _response(self, request_id: str, job: Job) -> Response:
        if self.malformed:
            return _json({"timings": {"inference": 0.4}, "seed": 1, "has_nsfw_concepts": []})
        size = job.arguments.get("image_size") or {"width": 1024, "height": 768}
        return _json({
            "images": [{"url": f"https://v3.fal.media/files/{request_id}.png",
                        "width": size["width"], "height": size["height"],
                        "content_type": "image/png"}],
            "timings": {"inference": 0.4}, "seed": job.arguments.get("seed", 0),
            "has_nsfw_concepts": [False], "prompt": job.arguments.get("prompt", ""),
        })  # fmt: skip

    def _file(self, path: str) -> Response:
        match = re.match(r"^/files/(?P<id>[0-9a-f-]+)\.png$", path)
        if match is None or match["id"] not in self.jobs:
            return _json({"detail": "File not found"}, 404)
        png = render(self.jobs[match["id"]].arguments, self.faceless_words)
        return Response(png, 200, content_type="image/png")


def render(arguments: dict[str, Any], faceless_words: tuple[str, ...] = ()) -> bytes:
    """A picture that depends on prompt and seed; with a reference, the reference's face."""
    size = arguments.get("image_size") or {"width": 1024, "height": 768}
    w, h = int(size["width"]), int(size["height"])
    prompt = str(arguments.get("prompt", ""))
    digest = hashlib.sha256(f"{prompt}|{arguments.get('seed')}".encode()).digest()
    image = Image.new("RGB", (w, h), tuple(digest[:3]))
    draw = ImageDraw.Draw(image)
    for i in range(6):
        x, y = digest[3 + i] * w // 255, digest[9 + i] * h // 255
        r = 40 + digest[15 + i] % 120
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(digest[20 + i : 23 + i]))
    reference = arguments.get("reference_image_url") or arguments.get("image_url")
    if reference and not any(word in prompt for word in faceless_words):
        raw = base64.b64decode(reference.split(",", 1)[1])
        with Image.open(io.BytesIO(raw)) as ref:
            face = ref.convert("RGB")
        face.thumbnail((int(w * 0.8), int(h * 0.6)))
        image.paste(face, ((w - face.width) // 2, int(h * 0.15)))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _uuid(hex_digest: str) -> str:
    d = hex_digest[:32]
    return f"{d[:8]}-{d[8:12]}-{d[12:16]}-{d[16:20]}-{d[20:32]}"


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(data), status, headers=headers, content_type="application/json")
