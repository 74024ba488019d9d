"""Timing: narration length estimates and scene cuts from the real word timings."""

from __future__ import annotations

from factory_core.models import SceneSpan, SentenceSpan
from factory_core.text import words_of

# The voices put this much silence between sentences; the estimate must count it.
SENTENCE_PAUSE_S = 0.3
# The video runs this long past the last word so the call to action is not cut off.
END_TAIL_S = 0.7


def spoken_chars(text: str) -> int:
    """Letters and digits: a steadier measure of speaking time than words (short vs long words)."""
    return sum(len(w) for w in words_of(text))


def estimate_duration(sentences: list[str], chars_per_second: float) -> float:
    """Seconds of video for these sentences at a voice's measured speaking rate."""
    if not sentences:
        return 0.0
    chars = sum(max(1, spoken_chars(s)) for s in sentences)
    return chars / chars_per_second + SENTENCE_PAUSE_S * (len(sentences) - 1) + END_TAIL_S


def scene_spans(
    sentence_spans: list[SentenceSpan], scene_sentence_counts: list[int], total_s: float
) -> list[SceneSpan]:
    """Cut scenes in the pause after a scene's last sentence, so pictures change with the words.

    Spans tile [0, total_s] exactly: the first starts at 0, each next one starts where the previous
    ends, the last ends at total_s.
    """
    if sum(scene_sentence_counts) != len(sentence_spans):
        raise ValueError(
            f"scenes hold {sum(scene_sentence_counts)} sentences but the narration has "
            f"{len(sentence_spans)}"
        )
    cuts: list[float] = [0.0]
    consumed = 0
    for count in scene_sentence_counts[:-1]:
        consumed += count
        previous_end = sentence_spans[consumed - 1].end
        next_start = sentence_spans[consumed].start
        cuts.append(round((previous_end + next_start) / 2, 3))
    cuts.append(round(total_s, 3))
    return [SceneSpan(index=i, start=cuts[i], end=cuts[i + 1]) for i in range(len(cuts) - 1)]
