"""Partition keys for topics.

Dagster accepts almost any string as a dynamic partition key, but `/`, `|`, `...`, long keys and
empty keys break at run time (file paths, range syntax, multi-partition keys). So every key is
`<channel>--<readable topic slug>-<8 hex of a hash>`: readable, stable, collision-free, at most 63
ASCII characters, and safe as a file name.
"""

from __future__ import annotations

import hashlib
import re

from slugify import slugify

from factory_core.text import normalise_for_identity

KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
CHANNEL_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,19}$")
_TOPIC_MAX = 30


class InvalidChannelError(ValueError):
    pass


def channel_slug(channel: str) -> str:
    """A channel's name as used in keys and folders; rejects names that would not be readable."""
    slug = slugify(channel or "")
    if not slug or not CHANNEL_PATTERN.match(slug):
        raise InvalidChannelError(
            f"channel {channel!r} is not a usable name: use 1-20 letters, digits or dashes, "
            "for example 'my-channel'"
        )
    return slug


def topic_key(channel: str, topic: str) -> str:
    """The partition key of a topic on a channel: the same topic always maps to the same key."""
    chan = channel_slug(channel)
    identity = normalise_for_identity(topic)
    digest = hashlib.sha256(f"{chan}\n{identity}".encode()).hexdigest()[:8]
    readable = slugify(identity, max_length=_TOPIC_MAX, word_boundary=True) or "topic"
    key = f"{chan}--{readable}-{digest}"
    assert KEY_PATTERN.match(key), key
    return key


def is_valid_key(key: str) -> bool:
    return bool(KEY_PATTERN.match(key))
