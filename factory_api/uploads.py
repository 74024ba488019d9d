"""Uploads: checked by their bytes, capped in size, streamed to disk.

Two caps work together. `BodyLimit` (ASGI middleware) counts the request body as it arrives
and stops it with 413 once it passes the endpoint's total (a declared Content-Length over the
cap is refused before a byte is read), so no upload can fill the disk or memory; Starlette
spools each file part to a temporary file beyond 1 MB. `save_upload` then copies one part in
chunks to its destination, refusing it past its own per-file cap, and checks what the bytes
are (the magic numbers at the start) against the file's extension, so `notes.txt` renamed
`take1.wav` is refused as "not WAV audio" whatever the Content-Type header claims.

No magic-bytes library is installed (and dependencies are fixed), so the few signatures the
factory accepts are listed here; Pillow and ffmpeg decode the files afterwards anyway.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from fastapi import UploadFile
from slugify import slugify
from starlette.exceptions import HTTPException
from starlette.requests import Request

from factory_api.errors import ApiError, http_error

MB = 1024 * 1024
CHUNK = 256 * 1024

# Format -> the extensions that may carry it. ISO media (MP4/M4A/MOV) share one signature.
FORMAT_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "png": (".png",),
    "jpeg": (".jpg", ".jpeg"),
    "webp": (".webp",),
    "wav": (".wav",),
    "mp3": (".mp3",),
    "flac": (".flac",),
    "ogg": (".ogg",),
    "iso-media": (".m4a", ".mp4", ".mov"),
    "matroska": (".webm", ".mkv"),
}
FORMAT_NAMES = {"png": "PNG", "jpeg": "JPEG", "webp": "WebP", "wav": "WAV audio",
                "mp3": "MP3 audio", "flac": "FLAC audio", "ogg": "Ogg audio",
                "iso-media": "MP4/M4A/MOV", "matroska": "WebM/MKV"}  # fmt: skip


def sniff(head: bytes) -> str | None:
    """The format the first bytes of a file announce, or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3"
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"OggS"):
        return "ogg"
    if head[4:8] == b"ftyp":
        return "iso-media"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    return None


@dataclass(frozen=True)
class UploadRule:
    """What one upload field takes."""

    what: str  # "audio sample", "image", ...
    extensions: tuple[str, ...]
    max_bytes: int

    def check_name(self, field: str, filename: str) -> str:
        suffix = PurePath(filename).suffix.lower()
        if suffix not in self.extensions:
            raise ApiError(
                415, "unsupported_type",
                f"{field}: {filename!r} is not a supported {self.what}; use one of "
                f"{', '.join(self.extensions)}",
                field,
            )  # fmt: skip
        return suffix


AUDIO_SAMPLE = UploadRule("audio sample", (".wav", ".mp3", ".m4a", ".flac", ".ogg"), 10 * MB)
IMAGE = UploadRule("image", (".png", ".jpg", ".jpeg", ".webp"), 10 * MB)
CLIP_OR_IMAGE = UploadRule("picture or clip", (*IMAGE.extensions, ".mp4", ".mov", ".webm"),
                           200 * MB)  # fmt: skip
MUSIC = UploadRule("music file", (".mp3", ".wav", ".m4a"), 50 * MB)


def safe_filename(filename: str, default: str = "file") -> str:
    """A file name that cannot leave its folder: the last path part, slugged, extension kept."""
    name = PurePath((filename or "").replace("\\", "/")).name
    stem, suffix = PurePath(name).stem, PurePath(name).suffix.lower()
    if not re.fullmatch(r"\.[a-z0-9]{1,5}", suffix):
        suffix = ""
    return f"{slugify(stem, max_length=60) or default}{suffix}"


def save_upload(upload: UploadFile, field: str, rule: UploadRule, target: Path) -> int:
    """Copies one uploaded file to `target` in chunks; returns its size. Refuses (4xx naming
    `field` and the file) an empty file, one over the rule's size, or bytes that are not what
    the extension says."""
    filename = upload.filename or "(unnamed)"
    suffix = rule.check_name(field, filename)
    source = upload.file
    source.seek(0)
    head = source.read(64)
    if not head:
        raise ApiError(400, "empty_file", f"{field}: {filename!r} is empty; upload the file again",
                       field)  # fmt: skip
    found = sniff(head)
    if found is None or suffix not in FORMAT_EXTENSIONS[found]:
        expected = next((FORMAT_NAMES[f] for f, exts in FORMAT_EXTENSIONS.items()
                         if suffix in exts), suffix)  # fmt: skip
        actual = FORMAT_NAMES.get(found or "", "not a known media format")
        raise ApiError(
            415, "wrong_content",
            f"{field}: {filename!r} is not {expected} (its bytes say: {actual}); upload the "
            "file itself, not a renamed one",
            field,
        )  # fmt: skip
    target.parent.mkdir(parents=True, exist_ok=True)
    size = len(head)
    try:
        with target.open("wb") as out:
            out.write(head)
            while chunk := source.read(CHUNK):
                size += len(chunk)
                if size > rule.max_bytes:
                    raise ApiError(
                        413, "file_too_large",
                        f"{field}: {filename!r} is larger than {rule.max_bytes // MB} MB, the "
                        f"limit for a {rule.what}; send a smaller or shorter file",
                        field,
                    )  # fmt: skip
                out.write(chunk)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return size


def check_count(field: str, files: list[UploadFile], low: int, high: int, what: str) -> None:
    if not low <= len(files) <= high:
        raise ApiError(
            422, "file_count",
            f"{field}: {len(files)} files given; send {low} to {high} {what}",
            field,
        )  # fmt: skip


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# --- whole-request cap ----------------------------------------------------------------------

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class BodyCap:
    method: str
    path: re.Pattern[str]
    max_bytes: int


class BodyLimit:
    """Caps every request body: per endpoint for uploads, `default` for everything else."""

    def __init__(self, app: ASGIApp, caps: list[BodyCap], default: int) -> None:
        self.app, self.caps, self.default = app, caps, default

    def _cap(self, method: str, path: str) -> int:
        return next((c.max_bytes for c in self.caps
                     if c.method == method and c.path.fullmatch(path)), self.default)  # fmt: skip

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = self._cap(scope["method"], scope["path"])
        too_large = HTTPException(
            413, f"the request body is larger than {cap / MB:.0f} MB, this endpoint's limit; "
            "send fewer or smaller files",
        )  # fmt: skip
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > cap:
            response = http_error(Request(scope), too_large)
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> MutableMapping[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > cap:
                    raise too_large  # FastAPI re-raises HTTPException from body parsing
            return message

        await self.app(scope, counted, send)
