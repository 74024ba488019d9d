"""Platform-fitted post metadata: every field within its platform's limit, no word cut."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from factory_core.models import Language, Script
from factory_core.publish_metadata import (
    ELLIPSIS,
    INSTAGRAM_HASHTAGS_MAX,
    RULES,
    YOUTUBE_TAGS_MAX,
    YOUTUBE_TITLE_MAX,
    Platform,
    PostMetadata,
    PostOverrides,
    cut_to_fit,
    fit_for,
    post_problems,
    utf8_length,
    utf16_length,
    x_weighted_length,
    youtube_tags_length,
)

LINK = "https://example.com/videos/how-bees-talk-to-each-other-in-the-dark-2025"
EN_WORDS = "the honeybee waggle dance tells sisters where flowers grow, and how far away.".split()
RU_WORDS = "пчёлы танцуют в темноте, и сёстры понимают, где растут цветы и как далеко.".split()


def make_script(
    title: str = "How bees talk",
    description: str = "Bees dance to share where the flowers are.",
    hashtags: list[str] | None = None,
    language: Language = Language.EN,
    topic: str = "how bees talk",
) -> Script:
    return Script(
        topic=topic,
        language=language,
        title=title,
        description=description,
        hashtags=["#bees", "#nature", "#science"] if hashtags is None else hashtags,
        hook="Bees talk.",
        body_points=[],
        call_to_action="Follow for more.",
        scenes=[],
        target_duration_s=30,
        estimated_duration_s=30,
        chars_per_second=15,
        source="composer",
    )


def long_text(words: list[str], count: int) -> str:
    return " ".join(words[i % len(words)] for i in range(count))


def assert_within(meta: PostMetadata) -> None:
    assert post_problems(meta) == []
    rules = RULES[meta.platform]
    assert rules.measure(meta.text) <= rules.limit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hello", 5),
        ("привет мир", 10),  # Cyrillic weighs 1.
        ("日本語", 6),  # CJK weighs 2.
        ("😀", 2),
        ("“quoted”", 8),  # U+201C/U+201D are in a weight-1 range.
        ("a " + LINK + " b", 2 + 23 + 2),  # Any URL counts 23, however long.
        ("see https://x.co.", 4 + 23 + 1),  # Trailing punctuation is not part of the URL.
        ("x" * 280, 280),
    ],
)
def test_x_weighted_length(text: str, expected: int) -> None:
    assert x_weighted_length(text) == expected


@pytest.mark.parametrize(
    ("text", "utf16", "utf8"),
    [("abc", 3, 3), ("привет", 6, 12), ("日本", 2, 6), ("😀", 2, 4), ("", 0, 0)],
)
def test_utf16_and_utf8_lengths(text: str, utf16: int, utf8: int) -> None:
    assert utf16_length(text) == utf16
    assert utf8_length(text) == utf8


def test_short_script_fits_everywhere_unchanged() -> None:
    script = make_script()
    for platform in Platform:
        meta = fit_for(platform, script, link=LINK)
        assert_within(meta)
        assert ELLIPSIS not in meta.text
        assert LINK in meta.text
        assert meta.language is Language.EN
        assert meta.contains_synthetic_media is True
    youtube = fit_for("youtube", script, link=LINK)
    assert youtube.title == "How bees talk"
    assert youtube.hashtags[0] == "#Shorts"
    assert youtube.text.endswith("#Shorts #bees #nature #science")
    assert "More: " + LINK in youtube.text
    assert youtube.tags[0] == "how bees talk"
    assert youtube.category_id == "22" and youtube.privacy == "private"
    x = fit_for(Platform.X, script, link=LINK)
    assert x.text.startswith("How bees talk") and "Bees dance" not in x.text
    tiktok = fit_for(Platform.TIKTOK, script)
    assert tiktok.text.startswith("How bees talk\n\nBees dance")
    assert "#Shorts" not in tiktok.text and tiktok.title is None and tiktok.tags == []
    assert fit_for(Platform.TELEGRAM, script).privacy is None


@pytest.mark.parametrize("platform", list(Platform))
@pytest.mark.parametrize(
    ("language", "words", "label"),
    [(Language.EN, EN_WORDS, "More:"), (Language.RU, RU_WORDS, "Подробнее:")],
)
def test_long_scripts_are_cut_at_a_word_after_hashtags_go(
    platform: Platform, language: Language, words: list[str], label: str
) -> None:
    script = make_script(
        title=long_text(words, 80),
        description=long_text(words, 1500),
        language=language,
        topic=" ".join(words[:3]),
    )
    meta = fit_for(platform, script, link=LINK)
    assert_within(meta)
    link_line = LINK if platform is Platform.X else f"{label} {LINK}"
    assert meta.text.endswith("\n\n" + link_line)
    assert meta.text.removesuffix("\n\n" + link_line).endswith(ELLIPSIS)
    assert meta.hashtags == []  # Hashtags are dropped before any text is cut.
    assert LINK in meta.text
    if platform is not Platform.X:
        assert label in meta.text
    source = set(script.title.split()) | set(script.description.split())
    for word in meta.text.replace(LINK, "").replace(label, "").split():
        assert word == ELLIPSIS or word.removesuffix(ELLIPSIS) in source | {
            w.rstrip(",.") for w in source
        }
    if platform is Platform.YOUTUBE:
        assert meta.title is not None and len(meta.title) <= YOUTUBE_TITLE_MAX
        assert meta.title.endswith(ELLIPSIS)


def test_youtube_description_is_limited_in_bytes_for_cyrillic() -> None:
    script = make_script(description=long_text(RU_WORDS, 800), language=Language.RU)
    meta = fit_for(Platform.YOUTUBE, script)
    assert utf8_length(meta.text) <= 5000
    assert 2000 < len(meta.text) < 3000  # ~2 bytes a character: characters alone would overrun.
    assert meta.text.endswith(ELLIPSIS)


def test_hashtags_drop_from_the_end_before_text_is_cut() -> None:
    # Exactly enough room for the body and two of the three hashtags.
    body = "word " * 50 + "end"
    room = 280 - len(body) - len("\n\n#one #two")
    script = make_script(title=body + " " + "x" * (room - 1), hashtags=["one", "two", "three"])
    meta = fit_for(Platform.X, script)
    assert meta.hashtags == ["#one", "#two"]
    assert meta.text.endswith("\n\n#one #two") and ELLIPSIS not in meta.text
    assert x_weighted_length(meta.text) <= 280


def test_x_counts_cjk_and_emoji_double_and_a_url_23() -> None:
    script = make_script(title=" ".join(["日本語"] * 60 + ["😀"] * 20), hashtags=[])
    meta = fit_for(Platform.X, script, link=LINK)
    assert x_weighted_length(meta.text) <= 280
    assert meta.text.endswith("\n\n" + LINK)  # The long link survives whole, as 23.
    body = meta.text.removesuffix("\n\n" + LINK)
    assert 100 < len(body) < 150 and body.endswith(ELLIPSIS)  # Weight 2: about half as many.
    latin = fit_for(Platform.X, make_script(title="abc " * 80, hashtags=[]), link=LINK)
    assert len(latin.text) > 280 - 23 and x_weighted_length(latin.text) <= 280


def test_youtube_refuses_angle_brackets() -> None:
    script = make_script(title="<b>Bees</b> > wasps", description="a < b and <i>c</i>")
    meta = fit_for(Platform.YOUTUBE, script)
    assert meta.title == "bBees/b wasps"
    assert "<" not in meta.text and ">" not in meta.text
    assert all("<" not in t and ">" not in t for t in meta.tags)
    # Other platforms take them as they are.
    assert "<b>" in fit_for(Platform.TELEGRAM, script).text
    with pytest.raises(ValidationError, match="< or >"):
        PostMetadata(platform=Platform.YOUTUBE, language=Language.EN, title="a<b", text="")


def test_youtube_tags_total_counts_quotes_and_commas() -> None:
    assert youtube_tags_length(["bees", "honey bee"]) == 4 + 9 + 2 + 1
    spaced = [f"spaced tag {i}" for i in range(60)]
    meta = fit_for(Platform.YOUTUBE, make_script(), PostOverrides(tags=["x" * 600, *spaced]))
    assert youtube_tags_length(meta.tags) <= YOUTUBE_TAGS_MAX
    assert meta.tags[0] == "spaced tag 0"  # The too-long tag is skipped, later ones still go.
    assert youtube_tags_length([*meta.tags, "spaced tag 99"]) > YOUTUBE_TAGS_MAX
    assert fit_for(Platform.YOUTUBE, make_script(), PostOverrides(tags=["a,b", "<c>"])).tags == [
        "a b",
        "c",
    ]


def test_instagram_keeps_at_most_30_hashtags() -> None:
    words = [f"tag{i}" for i in range(40)]
    meta = fit_for(Platform.INSTAGRAM, make_script(), PostOverrides(hashtags=words))
    assert len(meta.hashtags) == INSTAGRAM_HASHTAGS_MAX
    assert meta.hashtags[-1] == "#tag29"
    # Inline hashtags in the caption count too; past 30 they lose their '#', not their word.
    inline = " ".join(f"#in{i}" for i in range(35))
    meta = fit_for(Platform.INSTAGRAM, make_script(), PostOverrides(caption=inline))
    assert meta.hashtags == [] and meta.text.count("#") == INSTAGRAM_HASHTAGS_MAX
    assert "in34" in meta.text


def test_overrides_win_but_are_still_fitted() -> None:
    when = datetime(2030, 1, 31, 18, 0, tzinfo=UTC)
    overrides = PostOverrides(
        title="Custom " * 30,
        caption="My own caption " * 200,
        hashtags=["mine"],
        extra_text="Sponsored by nobody.",
        privacy="public",
        publish_at=when,
        category_id="27",
        contains_synthetic_media=False,
    )
    youtube_overrides = overrides.model_copy(update={"privacy": None})
    yt = fit_for(Platform.YOUTUBE, make_script(), youtube_overrides)
    assert yt.title is not None and yt.title.startswith("Custom Custom")
    assert len(yt.title) <= YOUTUBE_TITLE_MAX
    assert yt.privacy == "private" and yt.publish_at == when  # Scheduling needs private.
    assert yt.category_id == "27" and yt.contains_synthetic_media is False
    for platform in Platform:
        meta = fit_for(
            platform,
            make_script(),
            overrides if platform is not Platform.YOUTUBE else youtube_overrides,
        )
        assert_within(meta)
        assert "My own caption" in meta.text and "Bees dance" not in meta.text
    tiktok = fit_for(
        Platform.TIKTOK, make_script(), PostOverrides(caption="Short.", extra_text="Bye.")
    )
    assert tiktok.text == "Short.\n\nBye.\n\n#bees #nature #science"
    with pytest.raises(ValidationError, match="publish_at needs privacy"):
        fit_for(Platform.YOUTUBE, make_script(), overrides)


@pytest.mark.parametrize(
    "fields",
    [
        {"title": "   "},
        {"hashtags": ["!!!"]},
        {"publish_at": datetime(2030, 1, 1)},  # Naive on purpose.
        {"category_id": "music"},
        {"unknown": 1},
    ],
)
def test_overrides_are_validated(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        PostOverrides.model_validate(fields)


def test_bad_link_is_refused() -> None:
    with pytest.raises(ValueError, match="link"):
        fit_for(Platform.X, make_script(), link="not a link")


def test_cut_to_fit_never_cuts_inside_a_word_unless_the_first_cannot_fit() -> None:
    def fits(t: str) -> bool:
        return len(t) <= 12

    assert cut_to_fit("alpha beta, gamma", fits) == "alpha beta…"
    assert cut_to_fit("short", fits) == "short"
    assert cut_to_fit("supercalifragilistic", fits) == "supercalifr…"
    assert cut_to_fit("anything", lambda t: False) == ""


EMOJI = ["😀", "👍🏽", "👩‍👩‍👧", "❤️"]
CJK = ["日本語", "中文", "한국어"]


def random_word(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.45:
        word = rng.choice(EN_WORDS)
    elif kind < 0.8:
        word = rng.choice(RU_WORDS)
    elif kind < 0.9:
        word = rng.choice(EMOJI)
    else:
        word = rng.choice(CJK)
    return word + rng.choice(["", "", "", ",", ".", "!"])


def random_text(rng: random.Random, most: int) -> str:
    words = [random_word(rng) for _ in range(rng.randint(0, most))]
    return "".join(w + rng.choice([" ", " ", " ", "\n", "\n\n"]) for w in words).strip()


@pytest.mark.parametrize("seed", range(40))
def test_property_every_field_within_limits_and_no_word_cut(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(10):
        script = make_script(
            title=random_text(rng, 40) or "Bees",
            description=random_text(rng, rng.choice([10, 300, 1200])),
            hashtags=[random_word(rng) for _ in range(rng.randint(0, 8))],
            language=rng.choice(list(Language)),
            topic=random_text(rng, 8) or "bees",
        )
        overrides = None
        if rng.random() < 0.3:
            overrides = PostOverrides(
                hashtags=[f"tag{i}" for i in range(rng.randint(1, 45))],
                extra_text=random_text(rng, 200) or None,
            )
        link = LINK if rng.random() < 0.5 else None
        platform = rng.choice(list(Platform))
        meta = fit_for(platform, script, overrides, link)
        assert_within(meta)

        source = " ".join(
            [
                script.title,
                script.description,
                script.topic,
                (overrides and overrides.extra_text) or "",
            ]
        ).split()
        allowed = set(source) | {w.rstrip(",.!") for w in source} | set(meta.hashtags)
        allowed |= {LINK, "More:", "Подробнее:"}
        for field in (meta.text, meta.title or ""):
            for word in field.split():
                assert word == ELLIPSIS or word.removesuffix(ELLIPSIS) in allowed, (seed, word)
        if meta.hashtags:
            assert meta.text.endswith(" ".join(meta.hashtags))
        if platform is Platform.YOUTUBE:
            assert meta.title and len(meta.title) <= YOUTUBE_TITLE_MAX
            assert youtube_tags_length(meta.tags) <= YOUTUBE_TAGS_MAX


def test_post_overrides_layer_channel_topic_and_platform() -> None:
    from factory_core.publish_metadata import post_overrides

    channel = {"privacy": "unlisted", "category_id": "27", "extra_text": "Channel footer"}
    topic = {"privacy": "public", "youtube": {"title": "Own title", "privacy": "private"}}
    youtube = post_overrides(channel, topic, "youtube")
    tiktok = post_overrides(channel, topic, Platform.TIKTOK)
    assert (youtube.title, youtube.privacy, youtube.category_id) == ("Own title", "private", "27")
    assert (tiktok.title, tiktok.privacy, tiktok.extra_text) == (None, "public", "Channel footer")


def test_bad_post_overrides_name_the_platform_and_field() -> None:
    from factory_core.publish_metadata import post_overrides

    with pytest.raises(ValueError, match=r"post overrides for x: privacy: Input should be"):
        post_overrides({}, {"x": {"privacy": "loud"}}, "x")
    with pytest.raises(ValueError, match=r"post overrides for tiktok: colour: Extra inputs"):
        post_overrides({}, {"colour": "red"}, "tiktok")
    with pytest.raises(ValueError, match=r"`telegram:` must be a mapping"):
        post_overrides({}, {"telegram": "loud"}, "telegram")
