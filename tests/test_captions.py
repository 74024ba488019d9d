"""Caption planning (factory_core.captions): word timings into caption events, SRT and ASS.

Covers: chunk_words (1-3 words, at most two lines, whole words, monotonic non-overlapping events,
shrinking for over-wide words), build_srt and build_ass (every word in order, one highlighted ASS
event per word in the brand's accent colour, safe-area margins), and caption_problems.

Deliberately does not touch libass, ffmpeg, fonts or the file system: pysubs2 objects are
inspected in memory (or round-tripped through `to_string`); word timings are hand-made.
"""

from __future__ import annotations

import itertools
import random
import re

import pysubs2
import pytest

from factory_core.captions import (
    CAPTION_SIZE,
    FRAME_H,
    FRAME_W,
    MAX_LINES,
    MAX_WORDS,
    SAFE_BOTTOM,
    SAFE_LEFT,
    SAFE_RIGHT,
    CaptionEvent,
    build_ass,
    build_srt,
    caption_problems,
    chunk_words,
    text_width,
    usable_width,
)
from factory_core.models import BrandKit, WordTiming
from factory_core.text import words_of

ACCENT_OVERRIDE = re.compile(r"\{\\c(&H[0-9A-F]{6}&)\}")
# The lit word: the accent colour, then back to the text colour (not {\r}, which drops \fs).
HIGHLIGHTED = re.compile(r"\{\\c&H332211&\}(.*?)\{\\c&H[0-9A-F]{6}&\}")


def timed(sentences: list[str], step: float = 0.3, gap: float = 0.3) -> list[WordTiming]:
    """Words at a steady pace, a pause between sentences; sentence_index follows the list."""
    out: list[WordTiming] = []
    clock = 0.0
    for index, sentence in enumerate(sentences):
        for word in sentence.split():
            out.append(
                WordTiming(
                    word=word,
                    start=round(clock, 3),
                    end=round(clock + step * 0.8, 3),
                    sentence_index=index,
                )
            )
            clock += step
        clock += gap
    return out


NARRATIONS = {
    "en": ["Octopuses have three hearts, and blue blood.", "Two hearts pump blood to the gills!"],
    "ru": ["Почему небо голубое?", "Короткие волны рассеиваются в атмосфере сильнее длинных."],
    "long-words": [
        "Internationalization and telecommunications infrastructure modernization projects.",
        "Достопримечательности высокопревосходительство человеконенавистничество.",
    ],
    "single": ["Hi."],
    "no-punctuation": ["one two three four five six seven eight nine ten eleven"],
}


def all_words(events: list[CaptionEvent]) -> list[str]:
    return [w.word for e in events for w in e.words]


# --- chunk_words ---------------------------------------------------------------------------------


def _assert_well_formed(words: list[WordTiming], events: list[CaptionEvent]) -> None:
    assert all_words(events) == [w.word for w in words]  # nothing lost, nothing reordered
    for event in events:
        assert 1 <= len(event.words) <= MAX_WORDS
        assert 1 <= len(event.lines) <= MAX_LINES
        # whole words only: the lines re-split into exactly the event's words
        assert " ".join(event.lines).split(" ") == [w.word for w in event.words]
        assert event.start == pytest.approx(event.words[0].start, abs=1e-3)
        assert event.end > event.start
        for line in event.lines:
            assert text_width(line, event.font_size) <= usable_width() or " " not in line
    for prev, nxt in itertools.pairwise(events):
        assert prev.start < nxt.start
        assert prev.end <= nxt.start


@pytest.mark.parametrize("name", sorted(NARRATIONS))
def test_chunk_words_is_well_formed(name: str) -> None:
    words = timed(NARRATIONS[name])
    _assert_well_formed(words, chunk_words(words))


def test_chunk_words_on_random_narrations() -> None:
    rng = random.Random(20240501)
    letters = "abcdefghijklmnopqrstuvwxyzабвгдежзийклмнопрстуфхцчшщыэюя"
    for _ in range(150):
        clock, words = 0.0, []
        for i in range(rng.randint(1, 40)):
            word = "".join(rng.choice(letters) for _ in range(rng.randint(1, 22)))
            word += rng.choice(["", "", "", ",", ".", "!"])
            length = rng.uniform(0.05, 0.8)
            words.append(
                WordTiming(word=word, start=clock, end=clock + length, sentence_index=i // 7)
            )
            clock += rng.choice([0.0, length, length + rng.uniform(0, 0.6)])
            clock = max(clock, words[-1].start + 0.01)
        _assert_well_formed(words, chunk_words(words))


def test_chunk_words_of_nothing_is_nothing() -> None:
    assert chunk_words([]) == []


def test_groups_end_at_commas_and_sentence_ends() -> None:
    words = timed(["Yes, we can. And we will!", "New sentence here"])
    groups = [[w.word for w in e.words] for e in chunk_words(words)]
    assert groups == [["Yes,"], ["we", "can."], ["And", "we", "will!"], ["New", "sentence", "here"]]


def test_groups_end_where_a_new_sentence_starts_even_without_punctuation() -> None:
    words = timed(["one two", "three four"])
    assert [[w.word for w in e.words] for e in chunk_words(words)] == [
        ["one", "two"],
        ["three", "four"],
    ]


def test_event_lingers_after_its_last_word_but_not_over_the_next() -> None:
    words = timed(["Alpha beta gamma.", "Delta."], step=0.3, gap=2.0)
    first, second = chunk_words(words)
    assert first.end > first.words[-1].end  # lingers to be read
    assert first.end <= second.start


def test_ordinary_words_keep_the_default_size() -> None:
    events = chunk_words(timed(NARRATIONS["en"]))
    assert {e.font_size for e in events} == {CAPTION_SIZE}


@pytest.mark.parametrize("length", [16, 20, 25, 30])
def test_a_long_word_gets_a_smaller_font_that_fits(length: int) -> None:
    long_word = "w" * length
    assert text_width(long_word, CAPTION_SIZE) > usable_width()  # it would not fit as is
    words = timed([f"A {long_word} here."])
    events = chunk_words(words)
    _assert_well_formed(words, events)
    event = next(e for e in events if long_word in [w.word for w in e.words])
    assert event.font_size < CAPTION_SIZE
    assert text_width(long_word, event.font_size) <= usable_width()


def test_a_forty_character_word_fits_the_safe_width() -> None:
    long_word = "Donaudampfschifffahrtsgesellschaftskapit"  # 40 characters
    assert len(long_word) == 40
    (event,) = chunk_words(timed([long_word]))
    assert event.font_size < CAPTION_SIZE
    assert text_width(long_word, event.font_size) <= usable_width()


# --- SRT -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["en", "ru", "long-words"])
def test_srt_contains_every_word_in_order(name: str) -> None:
    words = timed(NARRATIONS[name])
    srt = build_srt(chunk_words(words))
    text = srt.to_string("srt")
    reloaded = pysubs2.SSAFile.from_string(text)
    assert len(reloaded) == len(chunk_words(words))
    caption_words = [w for e in reloaded for w in words_of(e.plaintext)]
    assert caption_words == words_of(" ".join(NARRATIONS[name]))
    assert (
        caption_problems(words_of(" ".join(NARRATIONS[name])), reloaded, words[-1].end + 0.7) == []
    )


def test_srt_events_carry_the_event_times_and_lines() -> None:
    events = chunk_words(timed(NARRATIONS["en"]))
    srt = build_srt(events)
    for event, sub in zip(events, srt, strict=True):
        assert sub.start == round(event.start * 1000)
        assert sub.end == round(event.end * 1000)
        assert sub.plaintext.split("\n") == event.lines


# --- ASS -----------------------------------------------------------------------------------------

BRAND = BrandKit(accent="#112233", text="#FFFFFF", handle="@demo")


def caption_events(subs: pysubs2.SSAFile) -> list[pysubs2.SSAEvent]:
    return [e for e in subs if e.style == "Caption"]


@pytest.mark.parametrize("name", ["en", "ru", "long-words"])
def test_ass_has_one_highlighted_event_per_word_in_order(name: str) -> None:
    words = timed(NARRATIONS[name])
    events = chunk_words(words)
    subs = build_ass(events, BRAND, words[-1].end + 0.7)
    captions = caption_events(subs)
    assert len(captions) == len(words)
    highlighted = []
    for sub in captions:
        overrides = ACCENT_OVERRIDE.findall(sub.text)
        # the accent #112233 as ASS &HBBGGRR&, then the text colour again
        assert overrides == ["&H332211&", "&HFFFFFF&"]
        highlighted += HIGHLIGHTED.findall(sub.text)
    assert highlighted == [w.word for w in words]


def test_ass_events_show_the_whole_group_while_one_word_is_lit() -> None:
    words = timed(NARRATIONS["en"])
    events = chunk_words(words)
    captions = caption_events(build_ass(events, BRAND, 20.0))
    expanded = [event for event in events for _ in event.words]
    for sub, event in zip(captions, expanded, strict=True):
        assert words_of(sub.plaintext) == words_of(" ".join(event.lines))
        assert sub.plaintext.split("\n") == event.lines


def test_ass_highlight_events_are_back_to_back_within_each_caption() -> None:
    words = timed(NARRATIONS["ru"])
    events = chunk_words(words)
    captions = caption_events(build_ass(events, BRAND, 20.0))
    for prev, nxt in itertools.pairwise(captions):
        assert prev.start < prev.end <= nxt.start
    assert captions[0].start == round(events[0].start * 1000)
    assert captions[-1].end == round(events[-1].end * 1000)


@pytest.mark.parametrize(
    ("accent", "override"),
    [("#FFD166", "&H66D1FF&"), ("#ff0000", "&H0000FF&"), ("#00FF80", "&H80FF00&")],
)
def test_ass_uses_the_brand_accent_colour(accent: str, override: str) -> None:
    subs = build_ass(chunk_words(timed(["Hello world."])), BrandKit(accent=accent), 2.0)
    for sub in caption_events(subs):
        assert f"{{\\c{override}}}" in sub.text


def test_ass_handle_spans_the_video_only_when_set() -> None:
    events = chunk_words(timed(["Hello world."]))
    with_handle = [e for e in build_ass(events, BRAND, 5.0) if e.style == "Handle"]
    assert len(with_handle) == 1
    assert (with_handle[0].start, with_handle[0].end) == (0, 5000)
    assert with_handle[0].plaintext == "@demo"
    assert [e for e in build_ass(events, BrandKit(), 5.0) if e.style == "Handle"] == []


def test_ass_text_cannot_inject_override_tags() -> None:
    subs = build_ass(chunk_words(timed(["{\\fs200}big \\N{evil}"])), BRAND, 3.0)
    for sub in caption_events(subs):
        stripped = ACCENT_OVERRIDE.sub("", sub.text).replace("{\\r}", "")
        assert "{" not in stripped and "}" not in stripped
        assert "\\fs200" not in sub.text


def test_ass_caption_style_keeps_text_inside_the_safe_area() -> None:
    subs = build_ass(chunk_words(timed(NARRATIONS["en"])), BRAND, 10.0)
    assert (subs.info["PlayResX"], subs.info["PlayResY"]) == (str(FRAME_W), str(FRAME_H))
    style = subs.styles["Caption"]
    assert style.marginl >= SAFE_LEFT
    assert style.marginr >= SAFE_RIGHT
    assert style.marginv >= SAFE_BOTTOM
    assert style.alignment == pysubs2.Alignment.BOTTOM_CENTER
    assert style.fontsize == CAPTION_SIZE
    for sub in caption_events(subs):
        # 0 means "use the style's margin"; anything else must respect the safe area too
        assert sub.marginl == 0 or sub.marginl >= SAFE_LEFT
        assert sub.marginr == 0 or sub.marginr >= SAFE_RIGHT
        assert sub.marginv == 0 or sub.marginv >= SAFE_BOTTOM


def test_ass_round_trips_through_text() -> None:
    words = timed(NARRATIONS["en"])
    subs = build_ass(chunk_words(words), BRAND, 10.0)
    reloaded = pysubs2.SSAFile.from_string(subs.to_string("ass"))
    assert reloaded.styles["Caption"].marginr == SAFE_RIGHT
    assert [e.text for e in reloaded] == [e.text for e in subs]


def _effective_sizes(text: str, style_size: int) -> list[int]:
    """Font size of each visible word, following ASS override semantics for \\fs and \\r."""
    size, sizes = style_size, []
    for block, plain in re.findall(r"(\{[^}]*\})|([^{]+)", text):
        if block:
            for tag in re.findall(r"\\(fs\d+|r)", block):
                size = style_size if tag == "r" else int(tag[2:])
        else:
            sizes += [size] * len(plain.replace("\\N", " ").split())
    return sizes


def test_ass_shrunk_caption_keeps_its_size_for_every_word() -> None:
    long_word = "w" * 25
    events = chunk_words(timed([f"{long_word} and more"]))
    shrunk = [e for e in events if e.font_size < CAPTION_SIZE]
    assert shrunk
    subs = build_ass(shrunk, BRAND, 10.0)
    for sub in caption_events(subs):
        assert set(_effective_sizes(sub.text, CAPTION_SIZE)) == {shrunk[0].font_size}, sub.text


# --- caption_problems ----------------------------------------------------------------------------


def _srt(words: list[WordTiming]) -> pysubs2.SSAFile:
    return pysubs2.SSAFile.from_string(build_srt(chunk_words(words)).to_string("srt"))


def test_caption_problems_is_empty_for_a_good_file() -> None:
    words = timed(NARRATIONS["en"])
    narration = words_of(" ".join(NARRATIONS["en"]))
    assert caption_problems(narration, _srt(words), words[-1].end + 0.7) == []


def test_caption_problems_ignores_case_and_punctuation() -> None:
    words = timed(["HELLO, World!"])
    assert caption_problems(["hello", "world"], _srt(words), 5.0) == []


def test_caption_problems_reports_a_missing_word() -> None:
    narration = words_of(" ".join(NARRATIONS["en"]))
    words = [w for w in timed(NARRATIONS["en"]) if w.word != "blue"]
    problems = caption_problems(narration, _srt(words), 20.0)
    assert len(problems) == 1
    assert "'blue'" in problems[0]
    assert "word 6" in problems[0]  # Octopuses have three hearts and *blue*


def test_caption_problems_reports_missing_trailing_words() -> None:
    narration = words_of(" ".join(NARRATIONS["en"]))
    words = timed(NARRATIONS["en"])[:-2]
    problems = caption_problems(narration, _srt(words), 20.0)
    assert problems and f"{len(narration)} narration words" in problems[0]


def test_caption_problems_reports_an_event_past_the_audio_end() -> None:
    words = timed(NARRATIONS["en"])
    subs = _srt(words)
    audio_end = subs[-1].start / 1000 + 0.1  # the last caption runs on after the audio
    problems = caption_problems(words_of(" ".join(NARRATIONS["en"])), subs, audio_end)
    assert len(problems) == 1
    assert "ends after the audio" in problems[0]
    assert f"{subs[-1].start / 1000:.2f}s" in problems[0]


def test_caption_problems_reports_overlapping_and_empty_events() -> None:
    subs = pysubs2.SSAFile()
    subs.append(pysubs2.SSAEvent(start=0, end=1000, text="one"))
    subs.append(pysubs2.SSAEvent(start=500, end=1500, text="two"))
    subs.append(pysubs2.SSAEvent(start=1500, end=1500, text="three"))
    problems = caption_problems(["one", "two", "three"], subs, 5.0)
    assert any("starts before the previous ends" in p for p in problems)
    assert any("has no duration" in p for p in problems)
    assert len(problems) == 2
