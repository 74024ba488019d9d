"""Caption planning: word timings into short caption events, written as SRT and ASS by pysubs2.

Layout follows the platforms' safe areas for 1080x1920: Shorts, Reels and TikTok draw their
buttons over the right edge and their caption/description band over the bottom fifth, so
captions sit in the lower middle, clear of both.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pysubs2
from pydantic import BaseModel

from factory_core.models import BrandKit, CaptionStyle, WordTiming
from factory_core.text import normalise_for_identity, words_of

FRAME_W, FRAME_H = 1080, 1920
SAFE_LEFT, SAFE_RIGHT = 90, 170  # right side: like/comment/share buttons
SAFE_BOTTOM = 520  # bottom band: title, description and progress bar overlays
CAPTION_FONT = "DejaVu Sans"
CAPTION_SIZE = 84
MAX_WORDS = 3
MAX_LINES = 2
# DejaVu Sans Bold averages about 0.62 em per character in mixed-case Latin and Cyrillic.
CHAR_WIDTH_EM = 0.62
LINGER_S = 0.35  # keep a caption up briefly after its last word so it can be read
MIN_EVENT_S = 0.25


# Measures a line's width in pixels at a font size; the default is an estimate, the assets pass
# the real font's metrics.
TextMeasure = Callable[[str, int], float]


class CaptionLayout(BaseModel):
    """Where captions may go in one frame size: the platforms' safe area and the font size."""

    width: int = FRAME_W
    height: int = FRAME_H
    margin_left: int = SAFE_LEFT
    margin_right: int = SAFE_RIGHT
    margin_bottom: int = SAFE_BOTTOM + 140
    font_size: int = CAPTION_SIZE

    @property
    def usable_width(self) -> int:
        return self.width - self.margin_left - self.margin_right


def caption_layout(width: int, height: int, style: CaptionStyle | None = None) -> CaptionLayout:
    """The safe area for a frame size. Portrait: clear of the right-side buttons and the bottom
    band of Shorts, Reels and TikTok. Square and landscape: clear of the player's bottom bar."""
    style = style or CaptionStyle()
    scale = min(width, height) / FRAME_W
    if height > width:
        left, right = SAFE_LEFT, SAFE_RIGHT
        bottom = {"lower": SAFE_BOTTOM + 140, "middle": height // 2 - 120, "upper": height - 560}
    else:
        left = right = round(width * 0.08)
        bottom = {"lower": round(height * 0.16), "middle": height // 2 - 80,
                  "upper": round(height * 0.62)}  # fmt: skip
    return CaptionLayout(
        width=width,
        height=height,
        margin_left=left,
        margin_right=right,
        margin_bottom=bottom[style.position],
        font_size=round(style.size * scale),
    )


class CaptionEvent(BaseModel):
    start: float
    end: float
    words: list[WordTiming]
    lines: list[str]
    font_size: int


def usable_width() -> int:
    return FRAME_W - SAFE_LEFT - SAFE_RIGHT


def text_width(text: str, font_size: int) -> float:
    return len(text) * font_size * CHAR_WIDTH_EM


def chunk_words(
    words: list[WordTiming],
    font_size: int | None = None,
    *,
    layout: CaptionLayout | None = None,
    measure: TextMeasure | None = None,
    uppercase: bool = False,
    cuts: list[float] | tuple[float, ...] = (),
) -> list[CaptionEvent]:
    """Group words into events of 1-3 words and at most 2 lines, never splitting a word.

    A group also ends at a sentence end or a comma, so captions follow the phrasing. Lines are
    fitted to the layout's safe width with `measure` (the real font's metrics when given).
    """
    layout = layout or CaptionLayout()
    font_size = font_size or layout.font_size
    max_width = layout.usable_width
    measure = measure or text_width
    if uppercase:
        words = [w.model_copy(update={"word": w.word.upper()}) for w in words]
    groups: list[list[WordTiming]] = []
    current: list[WordTiming] = []
    for i, word in enumerate(words):
        trial = [*current, word]
        if current and (
            len(trial) > MAX_WORDS or len(_wrap(trial, font_size, max_width, measure)) > MAX_LINES
        ):
            groups.append(current)
            trial = [word]
        current = trial
        next_word = words[i + 1] if i + 1 < len(words) else None
        phrase_end = word.word.endswith((",", ";", ":", ".", "!", "?", "…")) or (
            next_word is not None and next_word.sentence_index != word.sentence_index
        )
        if phrase_end:
            groups.append(current)
            current = []
    if current:
        groups.append(current)

    events: list[CaptionEvent] = []
    for i, group in enumerate(groups):
        start = group[0].start
        end = group[-1].end + LINGER_S
        if i + 1 < len(groups):
            end = min(end, groups[i + 1][0].start)
        end = max(end, start + MIN_EVENT_S)
        size = _fitted_size(group, font_size, max_width, measure)
        events.append(
            CaptionEvent(
                start=round(start, 3),
                end=round(end, 3),
                words=group,
                lines=_wrap(group, size, max_width, measure),
                font_size=size,
            )
        )
    # A minimum length must not push an event over the next one.
    for prev, nxt in itertools.pairwise(events):
        if prev.end > nxt.start:
            prev.end = nxt.start
    # Nor may a caption linger past a scene cut into the next scene's transition.
    for event in events:
        cut = next((c for c in sorted(cuts) if event.start < c < event.end), None)
        if cut is not None:
            event.end = round(cut, 3)
    return events


def _wrap(
    group: list[WordTiming], font_size: int, max_width: int, measure: TextMeasure = text_width
) -> list[str]:
    lines: list[str] = []
    for word in group:
        if lines and measure(f"{lines[-1]} {word.word}", font_size) <= max_width:
            lines[-1] = f"{lines[-1]} {word.word}"
        else:
            lines.append(word.word)
    return lines


def _fitted_size(
    group: list[WordTiming], font_size: int, max_width: int, measure: TextMeasure = text_width
) -> int:
    """Shrink only when a single word is wider than the safe area (long German-style words)."""
    widest = max(measure(w.word, font_size) for w in group)
    if widest <= max_width:
        return font_size
    return max(24, int(font_size * max_width / widest))


def _ass_colour(hex_colour: str, alpha: int = 0) -> pysubs2.Color:
    value = hex_colour.lstrip("#")
    return pysubs2.Color(int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16), alpha)


def _override_colour(hex_colour: str) -> str:
    value = hex_colour.lstrip("#")
    return f"&H{value[4:6]}{value[2:4]}{value[0:2]}&".upper()


def build_ass(
    events: list[CaptionEvent],
    brand: BrandKit,
    duration_s: float,
    *,
    layout: CaptionLayout | None = None,
    style: CaptionStyle | None = None,
    handle_right: bool = False,
) -> pysubs2.SSAFile:
    """Word-by-word highlight: the spoken word in the accent colour, the rest in the text colour."""
    layout = layout or CaptionLayout()
    style = style or CaptionStyle()
    text_colour = style.colour or brand.text
    subs = pysubs2.SSAFile()
    subs.info.update(
        {"PlayResX": str(layout.width), "PlayResY": str(layout.height), "WrapStyle": "2"}
    )
    subs.styles["Caption"] = pysubs2.SSAStyle(
        fontname=style.font,
        fontsize=layout.font_size,
        bold=True,
        primarycolor=_ass_colour(text_colour),
        outlinecolor=_ass_colour(style.outline_colour),
        backcolor=_ass_colour("#000000", alpha=110),
        outline=max(2, round(layout.font_size / 14)),
        shadow=max(1, round(layout.font_size / 28)),
        alignment=pysubs2.Alignment.BOTTOM_CENTER,
        marginl=layout.margin_left,
        marginr=layout.margin_right,
        marginv=layout.margin_bottom,
    )
    subs.styles["Handle"] = pysubs2.SSAStyle(
        fontname=CAPTION_FONT,
        fontsize=40,
        bold=True,
        primarycolor=_ass_colour(brand.text, alpha=90),
        outlinecolor=_ass_colour("#000000", alpha=120),
        outline=2,
        shadow=0,
        # Opposite the logo when the logo takes the top-left corner.
        alignment=pysubs2.Alignment.TOP_RIGHT if handle_right else pysubs2.Alignment.TOP_LEFT,
        marginr=60,
        marginl=60,
        marginv=140,
    )
    accent = _override_colour(style.highlight or brand.accent)
    base = _override_colour(text_colour)
    for event in events:
        for i, word in enumerate(event.words):
            start = event.start if i == 0 else word.start
            end = event.words[i + 1].start if i + 1 < len(event.words) else event.end
            if end - start <= 0:
                continue
            subs.append(
                pysubs2.SSAEvent(
                    start=pysubs2.make_time(s=start),
                    end=pysubs2.make_time(s=end),
                    style="Caption",
                    text=_highlighted(event, i, accent, base, layout.font_size),
                )
            )
    if brand.handle:
        subs.append(
            pysubs2.SSAEvent(
                start=0,
                end=pysubs2.make_time(s=duration_s),
                style="Handle",
                text=_escape(brand.handle),
            )
        )
    return subs


def _highlighted(
    event: CaptionEvent, active: int, accent: str, base: str, layout_size: int = CAPTION_SIZE
) -> str:
    size = f"{{\\fs{event.font_size}}}" if event.font_size != layout_size else ""
    lines: list[str] = []
    index = 0
    for line in event.lines:
        parts = []
        for token in line.split(" "):
            text = _escape(token)
            # Back to the base colour with \c, not \r: \r would also reset the event's \fs.
            parts.append(f"{{\\c{accent}}}{text}{{\\c{base}}}" if index == active else text)
            index += 1
        lines.append(" ".join(parts))
    return size + "\\N".join(lines)


def _escape(text: str) -> str:
    # Braces open override blocks and a backslash starts a tag in ASS; neither may come from text.
    return text.replace("\\", "/").replace("{", "(").replace("}", ")")


def build_srt(events: list[CaptionEvent]) -> pysubs2.SSAFile:
    subs = pysubs2.SSAFile()
    for event in events:
        subs.append(
            pysubs2.SSAEvent(
                start=pysubs2.make_time(s=event.start),
                end=pysubs2.make_time(s=event.end),
                text="\\N".join(event.lines),
            )
        )
    return subs


def caption_problems(
    narration_words: list[str], subs: pysubs2.SSAFile, audio_duration_s: float
) -> list[str]:
    """Every narration word appears in the captions, in order; timings monotonic, inside the audio."""
    problems: list[str] = []
    caption_words = [normalise_for_identity(w) for e in subs for w in words_of(e.plaintext)]
    expected = [normalise_for_identity(w) for w in narration_words]
    if caption_words != expected:
        missing = next(
            (
                f"word {i + 1} {exp!r} (captions have {got!r})"
                for i, (exp, got) in enumerate(zip(expected, caption_words, strict=False))
                if exp != got
            ),
            f"{len(expected)} narration words but {len(caption_words)} caption words",
        )
        problems.append(f"captions differ from the narration at {missing}")
    previous_end = 0
    for event in subs:
        if event.start < previous_end:
            problems.append(f"caption at {event.start / 1000:.2f}s starts before the previous ends")
        if event.end <= event.start:
            problems.append(f"caption at {event.start / 1000:.2f}s has no duration")
        if event.end / 1000 > audio_duration_s + 0.05:
            problems.append(f"caption at {event.start / 1000:.2f}s ends after the audio")
        previous_end = event.end
    return problems
