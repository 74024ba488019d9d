"""Timing (factory_core.timing): narration length estimates and scene cuts.

Covers: scene_spans tiling [0, total] exactly with cuts in the middle of the pause between two
sentences, the error for mismatched sentence counts, and the growth and formula of
estimate_duration.

Deliberately does not touch audio or a voice: sentence spans are hand-made numbers.
"""

from __future__ import annotations

import itertools

import pytest

from factory_core.models import SentenceSpan
from factory_core.timing import (
    END_TAIL_S,
    SENTENCE_PAUSE_S,
    estimate_duration,
    scene_spans,
    spoken_chars,
)


def spans(*bounds: tuple[float, float]) -> list[SentenceSpan]:
    return [
        SentenceSpan(index=i, text=f"Sentence {i}.", start=s, end=e)
        for i, (s, e) in enumerate(bounds)
    ]


SIX = spans((0.1, 2.0), (2.4, 4.0), (4.5, 6.1), (6.3, 8.0), (8.6, 10.0), (10.2, 12.5))


# --- scene_spans ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "total", "expected_cuts"),
    [
        ([6], 13.2, [0.0, 13.2]),
        ([1, 5], 13.2, [0.0, 2.2, 13.2]),
        ([2, 2, 2], 13.2, [0.0, 4.25, 8.3, 13.2]),
        ([1, 1, 1, 1, 1, 1], 13.2, [0.0, 2.2, 4.25, 6.2, 8.3, 10.1, 13.2]),
        ([3, 3], 12.5, [0.0, 6.2, 12.5]),
    ],
)
def test_scene_cuts_fall_in_the_middle_of_the_pause(
    counts: list[int], total: float, expected_cuts: list[float]
) -> None:
    result = scene_spans(SIX, counts, total)
    assert [s.index for s in result] == list(range(len(counts)))
    assert [s.start for s in result] == pytest.approx(expected_cuts[:-1])
    assert [s.end for s in result] == pytest.approx(expected_cuts[1:])


@pytest.mark.parametrize("counts", [[6], [1, 5], [2, 2, 2], [1, 2, 3], [3, 1, 1, 1], [1] * 6])
def test_scene_spans_tile_zero_to_total_exactly(counts: list[int]) -> None:
    total = 13.2
    result = scene_spans(SIX, counts, total)
    assert len(result) == len(counts)
    assert result[0].start == 0.0
    assert result[-1].end == total
    for prev, nxt in itertools.pairwise(result):
        assert prev.end == nxt.start  # no gap, no overlap
    assert all(s.duration > 0 for s in result)
    assert sum(s.duration for s in result) == pytest.approx(total)


def test_each_cut_lies_between_the_sentences_it_separates() -> None:
    counts = [1, 2, 1, 2]
    result = scene_spans(SIX, counts, 13.2)
    consumed = 0
    for count, scene in zip(counts[:-1], result, strict=False):
        consumed += count
        last_of_scene, first_of_next = SIX[consumed - 1], SIX[consumed]
        assert last_of_scene.end <= scene.end <= first_of_next.start
        assert scene.end == pytest.approx((last_of_scene.end + first_of_next.start) / 2, abs=1e-3)


def test_scene_spans_round_to_milliseconds() -> None:
    odd = spans((0.0, 1.00001), (1.33333, 2.0))
    result = scene_spans(odd, [1, 1], 2.7777777)
    assert result[0].end == 1.167
    assert result[1].end == 2.778


@pytest.mark.parametrize("counts", [[2, 2], [3, 4], [7], [], [1, 1, 1, 1, 1, 1, 1]])
def test_mismatched_sentence_counts_raise(counts: list[int]) -> None:
    with pytest.raises(ValueError, match="sentences"):
        scene_spans(SIX, counts, 13.2)


# --- estimate_duration ---------------------------------------------------------------------------


def test_estimate_of_nothing_is_zero() -> None:
    assert estimate_duration([], 14.8) == 0.0


def test_estimate_formula_counts_letters_pauses_and_tail() -> None:
    # 10 letters/digits at 5 per second, plus one pause between two sentences, plus the tail
    sentences = ["Hello, you.", "Abc 12!"]
    assert spoken_chars(sentences[0]) == 8
    assert spoken_chars(sentences[1]) == 5
    expected = 13 / 5 + SENTENCE_PAUSE_S + END_TAIL_S
    assert estimate_duration(sentences, 5.0) == pytest.approx(expected)


def test_estimate_grows_with_text() -> None:
    base = ["Octopuses have three hearts."]
    longer_sentence = ["Octopuses have three hearts and blue blood."]
    more_sentences = [*base, "Two of them pump blood to the gills."]
    assert estimate_duration(longer_sentence, 14.8) > estimate_duration(base, 14.8)
    assert estimate_duration(more_sentences, 14.8) > estimate_duration(base, 14.8)
    previous = 0.0
    for n in range(1, 12):
        current = estimate_duration(["word " * n], 14.8)
        assert current > previous
        previous = current


def test_estimate_shrinks_with_a_faster_voice() -> None:
    sentences = ["Octopuses have three hearts.", "Почему небо голубое?"]
    assert estimate_duration(sentences, 18.0) < estimate_duration(sentences, 12.0)


def test_punctuation_and_spaces_are_not_spoken_characters() -> None:
    assert spoken_chars("a b c") == spoken_chars("abc") == 3
    assert spoken_chars("…!?, — ") == 0
    # a sentence without letters still counts as at least one character
    assert estimate_duration(["…"], 1.0) == pytest.approx(1.0 + END_TAIL_S)
