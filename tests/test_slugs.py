"""Partition keys (factory_core.slugs): topic_key and channel_slug.

Covers: stability of a topic's key (also across case and white space differences), uniqueness over
many generated topics, the key grammar and length limit, transliteration of Cyrillic, safety of
hostile input (emoji, HTML, path traversal), and channel name validation.

Deliberately does not touch Dagster's partition store, the media folders or any other I/O: keys
are checked as plain strings only.
"""

from __future__ import annotations

import re

import pytest

from factory_core.slugs import (
    KEY_PATTERN,
    InvalidChannelError,
    channel_slug,
    is_valid_key,
    topic_key,
)

KEY_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def _readable_part(key: str, channel: str = "demo") -> str:
    """The human part of a key: between `<channel>--` and the trailing `-<8 hex>`."""
    prefix = f"{channel}--"
    assert key.startswith(prefix), key
    body = key[len(prefix) :]
    assert re.fullmatch(r".+-[0-9a-f]{8}", body), key
    return body[:-9]


def _assert_safe(key: str) -> None:
    assert KEY_RE.match(key), key
    assert is_valid_key(key), key
    assert len(key) <= 63, key
    for bad in ("/", "\\", "..", "|", " ", "<", ">", "&"):
        assert bad not in key, (bad, key)
    assert key.isascii(), key


# --- stability -----------------------------------------------------------------------------------


def test_same_topic_gives_same_key() -> None:
    assert topic_key("demo", "Why octopuses have three hearts") == topic_key(
        "demo", "Why octopuses have three hearts"
    )


@pytest.mark.parametrize(
    "variant",
    [
        "why octopuses have three hearts",
        "WHY OCTOPUSES HAVE THREE HEARTS",
        "  Why octopuses have three hearts  ",
        "Why   octopuses\thave three\nhearts",
        "Why\u00a0octopuses have three hearts",  # non-breaking space from a word processor
        "wHy OcToPuSeS hAvE tHrEe HeArTs",
    ],
)
def test_key_ignores_case_and_white_space(variant: str) -> None:
    assert topic_key("demo", variant) == topic_key("demo", "Why octopuses have three hearts")


def test_channel_name_is_normalised_in_the_key() -> None:
    assert topic_key("Demo", "Black holes") == topic_key("demo", "Black holes")
    assert topic_key("demo", "Black holes").startswith("demo--")


def test_same_topic_on_different_channels_gives_different_keys() -> None:
    assert topic_key("alpha", "Black holes") != topic_key("beta", "Black holes")


# --- uniqueness ----------------------------------------------------------------------------------


def test_two_thousand_distinct_topics_give_two_thousand_distinct_keys() -> None:
    long_prefix = "The surprisingly long and winding history of the printing press in Europe, part"
    topics = [f"{long_prefix} {i}" for i in range(1000)]
    topics += [f"Topic number {i} about science" for i in range(500)]
    topics += [f"Почему небо голубое, вопрос {i}" for i in range(500)]
    assert len(set(topics)) == 2000
    keys = [topic_key("demo", t) for t in topics]
    assert len(set(keys)) == len(topics)
    for key in keys:
        _assert_safe(key)


def test_topics_sharing_a_long_prefix_share_the_readable_part_but_not_the_key() -> None:
    prefix = "the quiet history of very long topic names " * 5
    a, b = topic_key("demo", prefix + " one"), topic_key("demo", prefix + " two")
    assert _readable_part(a) == _readable_part(b)
    assert a != b


def test_topics_differing_only_in_punctuation_are_different_topics() -> None:
    assert topic_key("demo", "Cats, dogs") != topic_key("demo", "Cats dogs")


# --- grammar and length --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "topic",
    [
        "Why octopuses have three hearts",
        "Почему небо голубое",
        "🎉🎉🎉",
        "🚀 Rockets 101 🚀",
        "<script>alert('x')</script>",
        "<b>Bold</b> &amp; <i>brave</i>",
        "../../etc/passwd",
        "..\\..\\windows\\system32",
        "a/b|c...d",
        "   ",
        "",
        "---",
        "42",
        "太阳为什么是热的",
        "x" * 400,
        " ".join(["word"] * 100),
        "Ünïcödé façade naïve café",
    ],
)
def test_every_key_matches_the_key_grammar(topic: str) -> None:
    key = topic_key("demo", topic)
    _assert_safe(key)
    assert KEY_PATTERN.pattern == KEY_RE.pattern


def test_four_hundred_character_topic_gives_a_short_key() -> None:
    topic = ("Understanding the economics of renewable energy " * 10)[:400]
    assert len(topic) == 400
    key = topic_key("demo", topic)
    assert len(key) <= 63
    _assert_safe(key)
    assert _readable_part(key).startswith("understanding-the-economics")


def test_longest_channel_and_longest_topic_still_fit() -> None:
    key = topic_key("c" * 20, "z" * 400)
    assert len(key) <= 63
    _assert_safe(key)


# --- transliteration and hostile text ------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "expected_fragment"),
    [
        ("Чёрные дыры", "dyry"),
        ("Почему небо голубое", "pochemu-nebo-goluboe"),
        ("Москва", "moskva"),
    ],
)
def test_cyrillic_is_transliterated_to_readable_ascii(topic: str, expected_fragment: str) -> None:
    key = topic_key("demo", topic)
    _assert_safe(key)
    readable = _readable_part(key)
    assert readable != "topic"
    assert expected_fragment in readable


def test_emoji_only_topic_gets_a_safe_fallback_key() -> None:
    key = topic_key("demo", "🎉🎉🎉")
    _assert_safe(key)
    assert _readable_part(key) == "topic"
    # Different emoji-only topics still get different keys.
    assert topic_key("demo", "🎉🎉🎉") != topic_key("demo", "🚀🚀🚀")


def test_html_is_stripped_from_the_readable_part() -> None:
    key = topic_key("demo", "<b>Black</b> <i>holes</i>")
    _assert_safe(key)
    assert _readable_part(key) == "black-holes"
    assert "b-black" not in key


@pytest.mark.parametrize("topic", ["../../etc/passwd", "/etc/passwd", "..", "../", "..\\.."])
def test_path_traversal_text_gives_a_key_without_separators(topic: str) -> None:
    key = topic_key("demo", topic)
    _assert_safe(key)
    assert not key.startswith(("-", "."))


# --- channel names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("demo", "demo"),
        ("My Channel", "my-channel"),
        ("  science-daily  ", "science-daily"),
        ("Канал", "kanal"),
        ("abc123", "abc123"),
    ],
)
def test_channel_slug_accepts_readable_names(name: str, slug: str) -> None:
    assert channel_slug(name) == slug


@pytest.mark.parametrize("name", ["", "   ", "!!!", "🎉", "/", "../..", "---", "\t\n"])
def test_channel_slug_rejects_unusable_names_naming_the_channel(name: str) -> None:
    with pytest.raises(InvalidChannelError) as info:
        channel_slug(name)
    assert repr(name) in str(info.value)
    assert "channel" in str(info.value)


def test_invalid_channel_error_is_a_value_error() -> None:
    assert issubclass(InvalidChannelError, ValueError)


def test_topic_key_rejects_an_invalid_channel() -> None:
    with pytest.raises(InvalidChannelError, match="'!!!'"):
        topic_key("!!!", "Black holes")


def test_channel_name_over_twenty_characters_is_rejected_not_cut() -> None:
    # Cutting would let two long names share one channel's folder and keys.
    with pytest.raises(InvalidChannelError, match="a-very-long-channel-name-for-testing"):
        channel_slug("a-very-long-channel-name-for-testing")
    assert channel_slug("twenty-chars-exactly") == "twenty-chars-exactly"
