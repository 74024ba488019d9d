"""The media store: every file the factory reads or writes lives under `$FACTORY_HOME`.

Layout:
    channels/<channel>/channel.yaml   brand kit, language, style (optional)
    channels/<channel>/media/         the channel's own pictures (matched to scenes by name/tags)
    channels/<channel>/music/         the channel's music beds
    inbox/<channel>/                  topic files dropped here are picked up by the sensor
    topics/<key>/                     request.json, script.json, voice.wav, scenes/, video.mp4 ...
    topics/<key>/manifest.json        with a bucket: each file's SHA-256, size and object key
    cache/                            voice calibration, generated music bed, fonts
    cache/objects/                    with a bucket: objects fetched for publishing, by hash
    dagster/                          the embedded Dagster instance (SQLite)

Media on S3: with FACTORY_MEDIA_BUCKET set (and FACTORY_S3_ENDPOINT_URL for a server other than
AWS) every file of a topic is also stored in the bucket under a content-addressed key, and the
topic's manifest is kept in the bucket (`topics/<key>/manifest.json`) and beside the files. A
stage first pulls what the bucket has that the folder lacks (`pull_topic`) and pushes what it
wrote (`push_topic`), so a step can run on any machine and the local folder is only a cache.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import yaml
from pydantic import BaseModel, Field, ValidationError

from factory_core.media_manifest import (
    MANIFEST_NAME,
    ManifestEntry,
    TopicManifest,
    build_manifest,
    manifest_key,
    needs_download,
    unchanged,
)
from factory_core.models import ChannelProfile, TopicRequest
from factory_core.slugs import channel_slug, is_valid_key

if TYPE_CHECKING:
    from factory_resources.object_store import ObjectStore

REPO_ROOT = Path(__file__).resolve().parent.parent


def default_home() -> Path:
    return Path(os.environ.get("FACTORY_HOME") or REPO_ROOT / ".factory").resolve()


class UnsafePathError(ValueError):
    pass


@dataclass(frozen=True)
class MediaSync:
    """What one pull or push did, for the asset's metadata (object keys, never credentials)."""

    bucket: str
    manifest: TopicManifest
    transferred: int = 0  # files uploaded (push) or downloaded (pull)
    transferred_bytes: int = 0

    @property
    def manifest_uri(self) -> str:
        return f"s3://{self.bucket}/{manifest_key(self.manifest.topic)}"

    def metadata(self) -> dict[str, object]:
        video = self.manifest.files.get("video.mp4")
        return {
            "media_manifest": self.manifest_uri,
            "media_files": len(self.manifest.files),
            "media_uploaded": self.transferred,
            "media_uploaded_bytes": self.transferred_bytes,
            **({"media_video_key": video.key} if video else {}),
        }


class MediaStore(dg.ConfigurableResource):
    """Paths and atomic writes under the factory home; nothing can resolve outside it."""

    home: str = Field(
        default="",
        description="Root folder for all media; empty means $FACTORY_HOME, else .factory/ in the repo.",
    )
    bucket: str = Field(
        default="",
        description="S3 bucket for topic media; empty means $FACTORY_MEDIA_BUCKET, and when "
        "that is unset too, media stay on local disk only.",
    )
    endpoint_url: str = Field(
        default="",
        description="S3-compatible endpoint; empty means $FACTORY_S3_ENDPOINT_URL, else AWS.",
    )

    @property
    def root(self) -> Path:
        return Path(self.home).resolve() if self.home else default_home()

    @property
    def objects(self) -> ObjectStore | None:
        """The media bucket, or None when media stay local. Read at run time, not at import, so
        every process (sensor, run, worker, CLI) follows its own environment."""
        bucket = self.bucket or os.environ.get("FACTORY_MEDIA_BUCKET", "")
        if not bucket:
            return None
        from factory_resources.object_store import object_store  # boto3 only when used

        endpoint = self.endpoint_url or os.environ.get("FACTORY_S3_ENDPOINT_URL") or None
        return object_store(bucket, endpoint)

    def _inside(self, path: Path) -> Path:
        resolved = path.resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise UnsafePathError(f"refusing to touch {resolved}: it is outside {self.root}")
        return resolved

    def topic_dir(self, key: str) -> Path:
        if not is_valid_key(key):
            raise UnsafePathError(f"partition key {key!r} is not a factory topic key")
        path = self._inside(self.root / "topics" / key)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def channel_dir(self, channel: str) -> Path:
        return self._inside(self.root / "channels" / channel_slug(channel))

    def brand_file(self, channel: str, stem: str, suffixes: tuple[str, ...]) -> Path | None:
        """A brand-kit file such as channels/<channel>/brand/logo.png, if the channel has one."""
        folder = self.channel_dir(channel) / "brand"
        return next(
            (folder / f"{stem}{s}" for s in suffixes if (folder / f"{stem}{s}").is_file()), None
        )

    def inbox_dir(self, channel: str | None = None) -> Path:
        base = self.root / "inbox"
        path = self._inside(base / channel_slug(channel)) if channel else self._inside(base)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def cache_dir(self, *parts: str) -> Path:
        path = self._inside(self.root.joinpath("cache", *parts))
        path.mkdir(parents=True, exist_ok=True)
        return path

    # --- channel and topic records -------------------------------------------------------

    def channel_profile(self, channel: str) -> ChannelProfile:
        """The channel's settings: its row in the project DB's `channels` table (any owner: the
        pipeline runs for every user), else channels/<channel>/channel.yaml, else defaults."""
        from factory_resources.project_db import project_engine
        from factory_resources.tenancy import stored_channel_profile

        stored = stored_channel_profile(project_engine(self.root), channel_slug(channel))
        if stored is not None:
            return stored
        path = self.channel_dir(channel) / "channel.yaml"
        if not path.exists():
            return ChannelProfile(name=channel_slug(channel))
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            return ChannelProfile.model_validate({"name": channel_slug(channel), **data})
        except (yaml.YAMLError, ValidationError) as exc:
            raise ValueError(f"{path}: invalid channel settings: {exc}") from exc

    def save_request(self, request: TopicRequest) -> Path:
        path = self.write_model(self.topic_dir(request.key) / "request.json", request)
        self.push_topic(request.key)  # a worker elsewhere starts from the bucket
        return path

    def load_request(self, key: str) -> TopicRequest:
        path = self.topic_dir(key) / "request.json"
        if not path.exists():
            raise FileNotFoundError(
                f"no topic recorded for partition {key!r}; add topics with "
                "`factory submit FILE --channel C` or drop a file into the inbox"
            )
        return TopicRequest.model_validate_json(path.read_text(encoding="utf-8"))

    # --- atomic writes --------------------------------------------------------------------

    def write_model(self, path: Path, model: BaseModel) -> Path:
        return self.write_text(path, model.model_dump_json(indent=2))

    def write_json(self, path: Path, data: object) -> Path:
        return self.write_text(path, json.dumps(data, indent=2, ensure_ascii=False))

    def write_text(self, path: Path, text: str) -> Path:
        with self.atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
        return path

    def atomic_path(self, path: Path) -> _AtomicPath:
        """Write to a temporary sibling, then rename: a crash never leaves a half-written file."""
        return _AtomicPath(self._inside(path))

    # --- media in the bucket ------------------------------------------------------------

    def pull_topic(self, key: str) -> MediaSync | None:
        """Brings the topic folder up to the bucket's manifest: files that are missing here or
        that another machine changed are downloaded (checked against their hash); files changed
        here since the last sync stay, for the next push. No bucket: nothing to do."""
        objects = self.objects
        if objects is None:
            return None
        folder = self.topic_dir(key)
        remote = self.remote_manifest(key)
        if remote is None:
            return None  # never pushed: whatever is here is all there is
        synced = self.local_manifest(key)
        count = size = 0
        for name, entry in remote.files.items():
            path = self._topic_file(folder, name)
            previous = synced.files.get(name) if synced else None
            local = self._local_sha256(path, previous)
            if needs_download(entry, previous, local):
                objects.get_file(entry.key, path, sha256=entry.sha256)  # hash checked on the way
                local = entry.sha256
                count, size = count + 1, size + entry.size
            if local == entry.sha256:
                # Same bytes, our clock: take the writer's mtime, so size+mtime proves it.
                os.utime(path, ns=(entry.mtime_ns, entry.mtime_ns))
        self.write_text(folder / MANIFEST_NAME, remote.model_dump_json(indent=2))
        return MediaSync(objects.bucket, remote, count, size)

    def push_topic(self, key: str) -> MediaSync | None:
        """Stores every file of the topic folder in the bucket under its content's key (files
        whose size and mtime match the manifest are neither hashed nor sent again), then writes
        the manifest to the bucket and beside the files. No bucket: nothing to do."""
        objects = self.objects
        if objects is None:
            return None
        folder = self.topic_dir(key)
        remote = self.remote_manifest(key)
        # Size+mtime only prove what the bucket's manifest says when it came from here.
        synced = remote if remote is not None and remote == self.local_manifest(key) else None
        entries: dict[str, ManifestEntry] = {}
        count = size = 0
        for path in _topic_files(folder):
            name = path.relative_to(folder).as_posix()
            stat = path.stat()
            previous = synced.files.get(name) if synced else None
            if previous is not None and unchanged(previous, stat.st_size, stat.st_mtime_ns):
                entries[name] = previous
                continue
            stored = objects.put_file(path)
            assert stored.sha256 is not None
            entries[name] = ManifestEntry(
                sha256=stored.sha256, size=stat.st_size, key=stored.key, mtime_ns=stat.st_mtime_ns
            )
            if stored.uploaded:
                count, size = count + 1, size + stat.st_size
        manifest = build_manifest(key, entries)
        if remote is None or remote.files != manifest.files:
            objects.put_bytes(manifest_key(key), manifest.model_dump_json(indent=2).encode())
        self.write_text(folder / MANIFEST_NAME, manifest.model_dump_json(indent=2))
        return MediaSync(objects.bucket, manifest, count, size)

    def remote_manifest(self, key: str) -> TopicManifest | None:
        objects = self.objects
        if objects is None:
            return None
        data = objects.get_bytes(manifest_key(key))
        return TopicManifest.model_validate_json(data) if data is not None else None

    def local_manifest(self, key: str) -> TopicManifest | None:
        path = self.topic_dir(key) / MANIFEST_NAME
        if not path.is_file():
            return None
        try:
            return TopicManifest.model_validate_json(path.read_text(encoding="utf-8"))
        except ValidationError:
            return None  # damaged: the next push hashes everything and writes a new one

    def media_file(self, key: str, name: str) -> Path | None:
        """A finished file to hand to a publisher. With a bucket its bytes come from the object
        the manifest names (fetched into cache/objects/, checked against the hash), whatever the
        topic folder holds; without one, the topic folder's file. None: no such file."""
        objects = self.objects
        if objects is None:
            path = self.topic_dir(key) / name
            return path if path.is_file() else None
        manifest = self.remote_manifest(key)
        if manifest is None:
            # Made before the bucket was configured: the bucket takes this folder's files first.
            synced = self.push_topic(key)
            manifest = synced.manifest if synced is not None else None
        entry = manifest.files.get(name) if manifest else None
        if entry is None:
            return None
        target = self.cache_dir("objects", entry.sha256[:2]) / entry.key.rsplit("/", 1)[-1]
        # Files here are only ever renamed into place after their hash was checked.
        if not (target.is_file() and target.stat().st_size == entry.size):
            objects.get_file(entry.key, target, sha256=entry.sha256)
        return target

    def _topic_file(self, folder: Path, name: str) -> Path:
        path = (folder / name).resolve()
        if folder.resolve() not in path.parents:
            raise UnsafePathError(f"manifest entry {name!r} points outside {folder}")
        return path

    def _local_sha256(self, path: Path, synced: ManifestEntry | None) -> str | None:
        if not path.is_file():
            return None
        stat = path.stat()
        if synced is not None and unchanged(synced, stat.st_size, stat.st_mtime_ns):
            return synced.sha256
        from factory_resources.object_store import file_sha256  # boto3 stays unimported

        return file_sha256(path)


def _topic_files(folder: Path) -> list[Path]:
    """The topic's files: everything in its folder but the manifest and hidden temporaries."""
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file()
        and path.name != MANIFEST_NAME
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )


def media_store(home: str = "") -> MediaStore:
    """The store the Definitions use. The bucket comes from the environment when the store is
    used (FACTORY_MEDIA_BUCKET, FACTORY_S3_ENDPOINT_URL), so the same Definitions serve a
    laptop without a bucket and workers with one."""
    return MediaStore(home=home)


class _AtomicPath:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __enter__(self) -> Path:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(
            prefix=f".{self.target.stem}.", suffix=self.target.suffix, dir=self.target.parent
        )
        os.close(fd)
        self.tmp = Path(name)
        return self.tmp

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None and self.tmp.exists() and self.tmp.stat().st_size > 0:
            os.replace(self.tmp, self.target)
        else:
            self.tmp.unlink(missing_ok=True)
