"""A topic's media manifest: which bytes each of its files holds, and where they live in a bucket.

Objects are content-addressed (`media/sha256/<2 hex>/<sha256><suffix>`): the same bytes are
stored once, a key never changes meaning, and a download can be checked against its name. The
manifest maps each logical path in the topic folder (`video.mp4`, `scenes/scene-01.png`) to its
hash, size and key. Its `updated_at` is the newest file's modification time, so a topic's age
is what its files say on every machine, not when the manifest happened to be written.

No I/O here: the store reads and writes files and objects, these functions only decide.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, Field

MEDIA_PREFIX = "media/sha256/"
MANIFEST_NAME = "manifest.json"


def media_key(sha256: str, suffix: str) -> str:
    """The object key of some bytes; the suffix keeps a content type guessable from the key."""
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError(f"{sha256!r} is not a lowercase hex SHA-256 digest")
    return f"{MEDIA_PREFIX}{sha256[:2]}/{sha256}{suffix.lower()}"


def manifest_key(topic_key: str) -> str:
    return f"topics/{topic_key}/{MANIFEST_NAME}"


class ManifestEntry(BaseModel):
    sha256: str
    size: int
    key: str
    # The writer's modification time, given to pulled copies too: a file whose size and mtime
    # match its entry is not hashed again.
    mtime_ns: int


class TopicManifest(BaseModel):
    version: int = 1
    topic: str
    updated_at: datetime = Field(default_factory=lambda: datetime.fromtimestamp(0, UTC))
    files: dict[str, ManifestEntry] = Field(default_factory=dict)

    def object_keys(self) -> set[str]:
        return {entry.key for entry in self.files.values()}

    def total_bytes(self) -> int:
        return sum(entry.size for entry in self.files.values())


def build_manifest(topic: str, files: dict[str, ManifestEntry]) -> TopicManifest:
    newest = max((entry.mtime_ns for entry in files.values()), default=0)
    return TopicManifest(
        topic=topic,
        updated_at=datetime.fromtimestamp(newest / 1e9, UTC),
        files=dict(sorted(files.items())),
    )


def unchanged(entry: ManifestEntry | None, size: int, mtime_ns: int) -> bool:
    """Whether a file still holds what `entry` recorded (size and mtime as the cheap proof)."""
    return entry is not None and entry.size == size and entry.mtime_ns == mtime_ns


def needs_download(
    remote: ManifestEntry, synced: ManifestEntry | None, local_sha256: str | None
) -> bool:
    """Whether a pull replaces the local copy of one file.

    `synced` is what this machine last agreed with the bucket on; `local_sha256` what the local
    file holds now (None: no file). Same bytes: nothing to do. A file changed here while the
    bucket kept what we last synced is a local edit (a hand-written post.yaml, a step that
    failed before its push): it stays, and the next push uploads it. Anything else means the
    bucket moved on (another machine ran a step), so its version wins.
    """
    if local_sha256 is None:
        return True
    if local_sha256 == remote.sha256:
        return False
    return synced is None or synced.sha256 != remote.sha256
