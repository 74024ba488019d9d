"""Post metadata fitted to each platform's own limits: titles, captions, tags and hashtags.

Pure pydantic and functions, no I/O. Each platform measures length its own way (characters,
UTF-16 code units, UTF-8 bytes, X's weighted characters), so every text is measured with that
platform's measure and fitted by first dropping hashtags from the end, then cutting the text at
a word boundary. `PostMetadata` validates itself with `post_problems`, so nothing over a limit
can ever be built, whatever the script or the overrides say.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from factory_core.models import Language, Script
from factory_core.platforms import hashtag
from factory_core.text import keywords


class Platform(StrEnum):
    YOUTUBE = "youtube"
    TIKTOK = "tiktok"
    INSTAGRAM = "instagram"
    X = "x"
    TELEGRAM = "telegram"


Privacy = Literal["public", "unlisted", "private"]
Measure = Callable[[str], int]

ELLIPSIS = "…"
# Safe default: nothing goes public by accident; a publisher asks for "public" explicitly.
# (TikTok forces unaudited clients to SELF_ONLY anyway; YouTube locks them private.)
DEFAULT_PRIVACY: Privacy = "private"
YOUTUBE_DEFAULT_CATEGORY = "22"  # People & Blogs, YouTube's own default for uploads.
YOUTUBE_TITLE_MAX = 100  # snippet.title, characters.
YOUTUBE_TAGS_MAX = 500  # snippet.tags, total characters as YouTube counts them.
YOUTUBE_HASHTAGS_MAX = 60  # Past 60 hashtags YouTube ignores every hashtag of the video.
YOUTUBE_REFUSED = "<>"  # snippet.title and snippet.description reject angle brackets.
INSTAGRAM_HASHTAGS_MAX = 30
INSTAGRAM_MENTIONS_MAX = 20
X_URL_WEIGHT = 23  # Every URL is shortened to t.co and counts 23, however long it is.
SHORTS_HASHTAG = "#Shorts"
_LINK_LABEL = {Language.EN: "More:", Language.RU: "Подробнее:"}
_FALLBACK_TITLE = {Language.EN: "Video", Language.RU: "Видео"}

# twitter-text v3 default config: these code points weigh 1, every other weighs 2.
_X_LIGHT = ((0x0000, 0x10FF), (0x2000, 0x200D), (0x2010, 0x201F), (0x2032, 0x2037))
# A URL as twitter-text sees it: not glued to a word, @, $ or #, trailing punctuation excluded.
_X_URL = re.compile(
    r"(?<![A-Za-z0-9@＠$#＃\u202A-\u202E])"
    r"(?:(?P<scheme>https?://)\S+?|(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}(?:/\S*?)?)"
    r"(?=[.,;:!?)\]»\"'”’]*(?:\s|$))",
    re.IGNORECASE,
)
_HASHTAG_IN_TEXT = re.compile(r"(?<![\w#])#\w+")
_MENTION_IN_TEXT = re.compile(r"(?<![\w@])@[\w.]+")
_LINK = re.compile(r"^https?://\S+$", re.IGNORECASE)
_WORD_SPAN = re.compile(r"\S+")
_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n{3,}")
# What may hang off the end of a cut text before the ellipsis: spaces, commas, dashes, openers.
_TRAILING = " \t\n,;:.-–—(«“„\"'"


def utf16_length(text: str) -> int:
    """Length in UTF-16 code units: emoji and other astral characters count 2 (TikTok)."""
    return len(text.encode("utf-16-le")) // 2


def utf8_length(text: str) -> int:
    """Length in UTF-8 bytes: Cyrillic counts 2, CJK 3, emoji 4 (YouTube descriptions)."""
    return len(text.encode("utf-8"))


def _x_weight(text: str) -> int:
    return sum(1 if any(lo <= ord(ch) <= hi for lo, hi in _X_LIGHT) else 2 for ch in text)


def x_weighted_length(text: str) -> int:
    """X's weighted length (twitter-text v3): Latin and Cyrillic 1, CJK and emoji 2, URL 23.

    Errs long, never short: an emoji ZWJ sequence counts 2 per code point (X counts 2 for the
    whole sequence), and a bare `name.tld` counts at least 23 because X links it only when it
    knows the TLD.
    """
    text = unicodedata.normalize("NFC", text)
    total, pos = 0, 0
    for match in _X_URL.finditer(text):
        total += _x_weight(text[pos : match.start()])
        url = match.group()
        total += X_URL_WEIGHT if match.group("scheme") else max(X_URL_WEIGHT, _x_weight(url))
        pos = match.end()
    return total + _x_weight(text[pos:])


def youtube_tags_length(tags: Sequence[str]) -> int:
    """snippet.tags' length as YouTube counts it: a tag with a space is quoted (+2), and the
    commas between tags count too (Google's reference counts them; the +2 alone would undercount).
    """
    return sum(len(t) + (2 if " " in t else 0) for t in tags) + max(0, len(tags) - 1)


@dataclass(frozen=True)
class PlatformRules:
    measure: Measure
    unit: str
    limit: int
    max_hashtags: int  # How many hashtags we append; only Instagram's 30 is the platform's rule.
    separator: str = "\n\n"


RULES: dict[Platform, PlatformRules] = {
    Platform.YOUTUBE: PlatformRules(utf8_length, "UTF-8 bytes", 5000, 15),
    Platform.TIKTOK: PlatformRules(utf16_length, "UTF-16 units", 2200, 10),
    Platform.INSTAGRAM: PlatformRules(len, "characters", 2200, INSTAGRAM_HASHTAGS_MAX),
    Platform.X: PlatformRules(x_weighted_length, "weighted characters", 280, 3),
    # Telegram's 1024 "characters after entity parsing" are counted like its entity offsets,
    # in UTF-16 units; that is never shorter than code points, so it is the safe measure.
    # The caption is plain text: send it without parse_mode (or escape it for HTML).
    Platform.TELEGRAM: PlatformRules(utf16_length, "UTF-16 units", 1024, 5),
}


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.utcoffset() is None:
        raise ValueError("publish_at needs a time zone (RFC 3339), e.g. 2025-01-31T18:00:00Z")
    return value


class PostOverrides(BaseModel):
    """What an owner may set per post; everything is still fitted to each platform."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(None, max_length=1000, description="YouTube title.")
    caption: str | None = Field(
        None, max_length=20000, description="Replaces the text built from the script."
    )
    hashtags: list[str] | None = Field(None, max_length=100)
    tags: list[str] | None = Field(None, max_length=200, description="YouTube snippet.tags.")
    extra_text: str | None = Field(None, max_length=5000, description="A paragraph appended.")
    privacy: Privacy | None = None
    publish_at: datetime | None = None
    category_id: str | None = Field(None, pattern=r"^\d{1,3}$")
    made_for_kids: bool | None = None
    contains_synthetic_media: bool | None = None

    @field_validator("title", "caption", "extra_text")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be blank; leave it out to use the script's")
        return value

    @field_validator("hashtags")
    @classmethod
    def _usable_hashtags(cls, value: list[str] | None) -> list[str] | None:
        bad = [word for word in value or [] if hashtag(word) is None]
        if bad:
            raise ValueError(f"no usable hashtag in {bad!r}")
        return value

    @field_validator("publish_at")
    @classmethod
    def _publish_at_aware(cls, value: datetime | None) -> datetime | None:
        return _aware(value)


class PostMetadata(BaseModel):
    """One post's metadata for one platform, within that platform's limits by construction."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    platform: Platform
    language: Language
    title: str | None = Field(None, description="YouTube only.")
    text: str = Field(description="YouTube description; the caption or post text elsewhere.")
    tags: list[str] = Field(default_factory=list, description="YouTube snippet.tags only.")
    hashtags: list[str] = Field(default_factory=list, description="Those appended to text.")
    category_id: str | None = Field(None, description="YouTube only.")
    made_for_kids: bool = False
    contains_synthetic_media: bool = Field(
        True, description="AI disclosure: YouTube containsSyntheticMedia, TikTok is_aigc."
    )
    privacy: Privacy | None = Field(None, description="YouTube and TikTok; None elsewhere.")
    publish_at: datetime | None = None

    @field_validator("publish_at")
    @classmethod
    def _publish_at_aware(cls, value: datetime | None) -> datetime | None:
        return _aware(value)

    @model_validator(mode="after")
    def _within_limits(self) -> PostMetadata:
        problems = post_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self


def post_problems(meta: PostMetadata) -> list[str]:
    """Every way `meta` breaks its platform's rules; empty when it can be sent as it is."""
    rules = RULES[meta.platform]
    problems: list[str] = []
    size = rules.measure(meta.text)
    if size > rules.limit:
        problems.append(f"text is {size} {rules.unit} (max {rules.limit})")
    if meta.platform is Platform.YOUTUBE:
        if not meta.title or not meta.title.strip():
            problems.append("title is empty")
        elif len(meta.title) > YOUTUBE_TITLE_MAX:
            problems.append(f"title is {len(meta.title)} characters (max {YOUTUBE_TITLE_MAX})")
        if any(ch in YOUTUBE_REFUSED for ch in (meta.title or "") + meta.text):
            problems.append("title or description has < or >")
        if youtube_tags_length(meta.tags) > YOUTUBE_TAGS_MAX:
            problems.append(f"tags total {youtube_tags_length(meta.tags)} (max {YOUTUBE_TAGS_MAX})")
        if any(not t.strip() or any(ch in "<>," for ch in t) for t in meta.tags):
            problems.append("a tag is blank or has <, > or a comma")
        if len(_HASHTAG_IN_TEXT.findall(meta.text)) > YOUTUBE_HASHTAGS_MAX:
            problems.append(f"more than {YOUTUBE_HASHTAGS_MAX} hashtags: YouTube ignores them all")
        if meta.publish_at is not None and meta.privacy != "private":
            problems.append("publish_at needs privacy 'private' (YouTube makes it public then)")
    else:
        if meta.title is not None or meta.tags or meta.category_id is not None:
            problems.append("only YouTube has a title, tags and a category")
    if meta.platform is Platform.INSTAGRAM:
        if len(_HASHTAG_IN_TEXT.findall(meta.text)) > INSTAGRAM_HASHTAGS_MAX:
            problems.append(f"more than {INSTAGRAM_HASHTAGS_MAX} hashtags")
        if len(_MENTION_IN_TEXT.findall(meta.text)) > INSTAGRAM_MENTIONS_MAX:
            problems.append(f"more than {INSTAGRAM_MENTIONS_MAX} @mentions")
    return problems


def _tidy(text: str) -> str:
    """NFC, no control characters, single spaces, at most one blank line between paragraphs."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n"))
    text = "".join(
        ch if ch == "\n" or unicodedata.category(ch)[0] != "C" or ch == "\u200d" else " "
        for ch in text
    )
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def _strip_refused(text: str) -> str:
    return text.translate({ord(ch): None for ch in YOUTUBE_REFUSED})


def _safe_prefix(word: str, size: int) -> str:
    """`word[:size]`, stepped back so no combining mark or emoji sequence is split."""
    while size > 0 and (
        unicodedata.combining(word[size])
        or word[size] in "\u200d\ufe0f"
        or word[size - 1] == "\u200d"
    ):
        size -= 1
    return word[:size]


def _largest(lo: int, hi: int, ok: Callable[[int], bool]) -> int | None:
    """The largest n in [lo, hi] with ok(n), by bisection (ok is monotone); None if none."""
    best = None
    while lo <= hi:
        mid = (lo + hi) // 2
        if ok(mid):
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    return best


def cut_to_fit(text: str, fits: Callable[[str], bool]) -> str:
    """The longest word-boundary prefix of `text` that fits, marked with an ellipsis.

    Only a first word that cannot fit on its own is cut inside (never splitting a combining
    mark or an emoji sequence), since the limit matters more than the word. Returns "" when
    not even the ellipsis fits.
    """
    if fits(text):
        return text
    ends = [m.end() for m in _WORD_SPAN.finditer(text)]

    def words(k: int) -> str:
        head = text[: ends[k - 1]].rstrip(_TRAILING)
        return head + ELLIPSIS if head else ELLIPSIS

    k = _largest(1, len(ends) - 1, lambda k: fits(words(k)))
    if k is not None:
        return words(k)
    first = text[: ends[0]].strip() if ends else ""
    size = _largest(1, len(first) - 1, lambda n: fits(_safe_prefix(first, n) + ELLIPSIS))
    if size is not None and _safe_prefix(first, size):
        return _safe_prefix(first, size) + ELLIPSIS
    return ELLIPSIS if fits(ELLIPSIS) else ""


def _compose(
    body: str, link: str, hashtags: list[str], rules: PlatformRules
) -> tuple[str, list[str]]:
    """Body, link and hashtags joined; hashtags go from the end first, then the body is cut."""

    def join(body: str, link: str, tags: list[str]) -> str:
        return rules.separator.join(part for part in (body, link, " ".join(tags)) if part)

    def fits(text: str) -> bool:
        return rules.measure(text) <= rules.limit

    kept = list(hashtags)
    while True:
        text = join(body, link, kept)
        if fits(text):
            return text, kept
        if not kept:
            break
        kept.pop()
    if link and not fits(link):  # Only an absurd link; the limit wins.
        link = ""
    return join(cut_to_fit(body, lambda b: fits(join(b, link, []))), link, []), []


def _demote(text: str, pattern: re.Pattern[str], keep: int) -> str:
    """Drop the `#`/`@` of marks past the first `keep`, keeping their words."""
    seen = 0

    def one(match: re.Match[str]) -> str:
        nonlocal seen
        seen += 1
        return match.group() if seen <= keep else match.group()[1:]

    return pattern.sub(one, text)


def _hashtags(words: list[str], youtube: bool) -> list[str]:
    tags = [SHORTS_HASHTAG] if youtube else []  # First, so it is the last one dropped.
    for word in words:
        tag = hashtag(word)
        if tag and tag.casefold() not in {t.casefold() for t in tags}:
            tags.append(tag)
    return tags


def _youtube_tags(script: Script, overrides: PostOverrides) -> list[str]:
    if overrides.tags is not None:
        wanted = overrides.tags
    else:
        bodies = [h.lstrip("#") for h in _hashtags(script.hashtags, youtube=False)]
        wanted = [script.topic, *bodies, *keywords(f"{script.title} {script.description}", 5)]
    tags: list[str] = []
    for raw in wanted:
        tag = " ".join(_strip_refused(raw).replace(",", " ").split())
        if not tag or tag.casefold() in {t.casefold() for t in tags}:
            continue
        # Greedy in order of importance: a tag too long to fit is skipped, later ones still go.
        if youtube_tags_length([*tags, tag]) <= YOUTUBE_TAGS_MAX:
            tags.append(tag)
    return tags


def _joined(title: str, description: str) -> str:
    """A caption from title and description, without repeating a title the text starts with."""
    if not title.strip() or description.casefold().startswith(title.strip().casefold()):
        return description
    return f"{title}\n\n{description}" if description.strip() else title


def fit_for(
    platform: Platform | str,
    script: Script,
    overrides: PostOverrides | None = None,
    link: str | None = None,
) -> PostMetadata:
    """`script`'s metadata for `platform`, in the script's language, within every limit.

    YouTube gets a title, a description ending with the link and hashtags (`#Shorts` first),
    and snippet.tags; X gets the title as its post; the others get title and description as
    one caption. Overrides replace what the script says but are fitted all the same.
    """
    platform = Platform(platform)
    overrides = overrides or PostOverrides()
    rules = RULES[platform]
    youtube = platform is Platform.YOUTUBE
    refuse: Callable[[str], str] = _strip_refused if youtube else (lambda text: text)

    if link is not None and not _LINK.match(link.strip()):
        raise ValueError(f"link must be an http(s) URL without spaces, got {link!r}")
    link_line = ""
    if link:
        link = refuse(link.strip())
        link_line = link if platform is Platform.X else f"{_LINK_LABEL[script.language]} {link}"

    title: str | None = None
    if youtube:
        for source in (overrides.title, script.title, script.topic):
            title = " ".join(refuse(source or "").split())
            title = cut_to_fit(title, lambda t: len(t) <= YOUTUBE_TITLE_MAX)
            if title.strip(ELLIPSIS):
                break
        else:
            title = _FALLBACK_TITLE[script.language]

    if overrides.caption is not None:
        body = overrides.caption
    elif youtube:
        body = script.description
    elif platform is Platform.X:
        body = script.title  # The description is for longer captions; X has 280.
    else:
        body = _joined(script.title, script.description)
    if overrides.extra_text:
        body = f"{body}\n\n{overrides.extra_text}"
    body = _tidy(refuse(body))

    words = overrides.hashtags if overrides.hashtags is not None else script.hashtags
    hashtags = _hashtags(words, youtube)
    inline = {t.casefold() for t in _HASHTAG_IN_TEXT.findall(body)}
    hashtags = [t for t in hashtags if t.casefold() not in inline]
    cap = {Platform.YOUTUBE: YOUTUBE_HASHTAGS_MAX, Platform.INSTAGRAM: INSTAGRAM_HASHTAGS_MAX}
    if platform in cap:
        body = _demote(body, _HASHTAG_IN_TEXT, cap[platform])
        room = cap[platform] - len(_HASHTAG_IN_TEXT.findall(body + " " + link_line))
        hashtags = hashtags[: max(0, min(rules.max_hashtags, room))]
    else:
        hashtags = hashtags[: rules.max_hashtags]
    if platform is Platform.INSTAGRAM:
        body = _demote(body, _MENTION_IN_TEXT, INSTAGRAM_MENTIONS_MAX)

    text, kept = _compose(body, link_line, hashtags, rules)

    privacy: Privacy | None = None
    if platform in (Platform.YOUTUBE, Platform.TIKTOK):
        if overrides.privacy is not None:
            privacy = overrides.privacy
        elif youtube and overrides.publish_at is not None:
            privacy = "private"  # YouTube schedules only private videos, publishing them then.
        else:
            privacy = DEFAULT_PRIVACY
    return PostMetadata(
        platform=platform,
        language=script.language,
        title=title,
        text=text,
        tags=_youtube_tags(script, overrides) if youtube else [],
        hashtags=kept,
        category_id=(overrides.category_id or YOUTUBE_DEFAULT_CATEGORY) if youtube else None,
        made_for_kids=bool(overrides.made_for_kids),
        contains_synthetic_media=overrides.contains_synthetic_media is not False,
        privacy=privacy,
        publish_at=overrides.publish_at,
    )


def post_overrides(
    channel_defaults: Mapping[str, object],
    topic_post: Mapping[str, object],
    platform: Platform | str,
) -> PostOverrides:
    """The overrides for one post: the channel's `publishing.post` defaults, then the topic's
    post.yaml fields for every platform, then its section for this platform (e.g. `youtube:`),
    each later one winning field by field. Raises ValueError naming what is wrong."""
    platform = Platform(platform)
    sections = {p.value for p in Platform}
    shared = {k: v for k, v in topic_post.items() if k not in sections}
    own = topic_post.get(platform.value) or {}
    if not isinstance(own, Mapping):
        raise ValueError(f"post.yaml: `{platform.value}:` must be a mapping of fields")
    merged = {**channel_defaults, **shared, **own}
    try:
        return PostOverrides.model_validate(merged)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'post'}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(f"post overrides for {platform.value}: {problems}") from None
