"""The media store: every file the factory reads or writes lives under `$FACTORY_HOME`.

Layout:
    channels/<channel>/channel.yaml   brand kit, language, style (optional)
    channels/<channel>/media/         the channel's own pictures (matched to scenes by name/tags)
    channels/<channel>/music/         the channel's music beds
    inbox/<channel>/                  topic files dropped here are picked up by the sensor
    topics/<key>/                     request.json, script.json, voice.wav, scenes/, video.mp4 ...
    cache/                            voice calibration, generated music bed, fonts
    dagster/                          the embedded Dagster instance (SQLite)
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import dagster as dg
import yaml
from pydantic import BaseModel, Field, ValidationError

from factory_core.models import ChannelProfile, TopicRequest
from factory_core.slugs import channel_slug, is_valid_key

REPO_ROOT = Path(__file__).resolve().parent.parent


def default_home() -> Path:
    return Path(os.environ.get("FACTORY_HOME") or REPO_ROOT / ".factory").resolve()


class UnsafePathError(ValueError):
    pass


class MediaStore(dg.ConfigurableResource):
    """Paths and atomic writes under the factory home; nothing can resolve outside it."""

    home: str = Field(
        default="",
        description="Root folder for all media; empty means $FACTORY_HOME, else .factory/ in the repo.",
    )

    @property
    def root(self) -> Path:
        return Path(self.home).resolve() if self.home else default_home()

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
        return self.write_model(self.topic_dir(request.key) / "request.json", request)

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


def media_store(home: str = "") -> MediaStore:
    """The store the Definitions use, configured from the environment."""
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
