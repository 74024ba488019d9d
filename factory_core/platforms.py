"""Platform metadata limits and the fitting of titles, descriptions and hashtags to them."""

from __future__ import annotations

import re

from slugify import slugify

from factory_core.text import shorten

# The strictest of the platforms we publish to, so one script fits all of them.
TITLE_MAX = 100  # YouTube title limit.
DESCRIPTION_MAX = 2200  # Instagram and TikTok captions; YouTube allows 5000.
HASHTAGS_MAX = 5  # Instagram recommends 3-5; YouTube ignores all hashtags past 60.
HASHTAG_MAX_CHARS = 30
_HASHTAG_BODY = re.compile(r"[^\w]", re.UNICODE)


def fit_title(title: str) -> str:
    title = " ".join(title.split())
    if len(title) <= TITLE_MAX:
        return title
    return shorten(title, max_words=50, max_chars=TITLE_MAX - 1).rstrip(" ,.;:") + "…"


def fit_description(text: str) -> str:
    text = text.strip()
    if len(text) <= DESCRIPTION_MAX:
        return text
    return shorten(text, max_words=1000, max_chars=DESCRIPTION_MAX - 1) + "…"


def hashtag(word: str) -> str | None:
    """`#word` with letters, digits and underscores only; None when nothing usable is left."""
    body = _HASHTAG_BODY.sub("", word.replace(" ", "_").replace("-", "_"))[:HASHTAG_MAX_CHARS]
    if not body or body.isdigit():
        body = slugify(word, separator="_")[:HASHTAG_MAX_CHARS]
    return f"#{body.lower()}" if body and not body.isdigit() else None


def fit_hashtags(words: list[str]) -> list[str]:
    tags: list[str] = []
    for word in words:
        tag = hashtag(word)
        if tag and tag not in tags:
            tags.append(tag)
    return tags[:HASHTAGS_MAX]


def metadata_problems(title: str, description: str, hashtags: list[str]) -> list[str]:
    problems = []
    if not title.strip():
        problems.append("title is empty")
    if len(title) > TITLE_MAX:
        problems.append(f"title is {len(title)} characters (max {TITLE_MAX})")
    if len(description) > DESCRIPTION_MAX:
        problems.append(f"description is {len(description)} characters (max {DESCRIPTION_MAX})")
    if len(hashtags) > HASHTAGS_MAX:
        problems.append(f"{len(hashtags)} hashtags (max {HASHTAGS_MAX})")
    problems.extend(
        f"hashtag {tag!r} is not a single word"
        for tag in hashtags
        if not tag.startswith("#") or _HASHTAG_BODY.search(tag[1:])
    )
    return problems
