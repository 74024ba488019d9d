"""Pure layout and planning rules of the render plan v2: caption safe areas per aspect, caption
style, logo placement, motion windows, transitions by style, bumpers in the timeline, channel
settings validation. No rendering."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from factory_core.captions import caption_layout, chunk_words, text_width
from factory_core.models import CaptionStyle, ChannelProfile, WordTiming
from factory_core.render_plan import (
    MOTION_OVERSCAN,
    Aspect,
    Bumper,
    Corner,
    Motion,
    Overlay,
    RenderPlan,
    build_render_plan,
    frame_layout,
    motion_window,
    overlay_box,
    transitions_for,
)


def _words(text: str) -> list[WordTiming]:
    return [WordTiming(word=w, start=i * 0.4, end=i * 0.4 + 0.35, sentence_index=0)
            for i, w in enumerate(text.split())]  # fmt: skip


@pytest.mark.parametrize("aspect", list(Aspect))
@pytest.mark.parametrize("position", ["lower", "middle", "upper"])
def test_caption_layout_stays_inside_the_frame(aspect: Aspect, position: str) -> None:
    w, h = aspect.size()
    layout = caption_layout(w, h, CaptionStyle(position=position))
    assert layout.width == w and layout.height == h
    assert 0 < layout.usable_width <= 0.9 * w  # a line takes at most 90% of the width
    assert 0 < layout.margin_bottom < h - 2 * layout.font_size
    if h > w:  # portrait: clear of the platforms' right-side buttons and bottom band
        assert layout.margin_right >= 150 and layout.margin_bottom >= 500


def test_caption_positions_are_ordered_and_sizes_scale_with_the_frame() -> None:
    lower, middle, upper = (
        caption_layout(1080, 1920, CaptionStyle(position=p)) for p in ("lower", "middle", "upper")
    )
    assert lower.margin_bottom < middle.margin_bottom < upper.margin_bottom
    assert caption_layout(1920, 1080).font_size == caption_layout(1080, 1080).font_size
    assert caption_layout(1080, 1920, CaptionStyle(size=100)).font_size == 100


def test_uppercase_style_and_real_metrics_keep_lines_inside_the_safe_width() -> None:
    layout = caption_layout(1080, 1080)
    wide = lambda text, size: text_width(text, size) * 1.3  # noqa: E731 - a wider font
    events = chunk_words(_words("the quick brown fox jumps over the lazy dog again"),
                         layout=layout, measure=wide, uppercase=True)  # fmt: skip
    assert all(w.word.isupper() for e in events for w in e.words)
    for event in events:
        assert all(wide(line, event.font_size) <= layout.usable_width for line in event.lines)


def test_aspect_file_names() -> None:
    assert Aspect.PORTRAIT.file_name("video", ".mp4", primary=True) == "video.mp4"
    assert Aspect.LANDSCAPE.file_name("video", ".mp4", primary=False) == "video_16x9.mp4"
    assert Aspect.SQUARE.file_name("captions", ".ass", primary=False) == "captions_1x1.ass"


def _plan(aspect: Aspect = Aspect.PORTRAIT, **extra: object) -> RenderPlan:
    return build_render_plan(
        images=[("a.png", 0.0, 4.0), ("b.png", 4.0, 9.0), ("c.png", 9.0, 12.0)],
        duration_s=12.0, audio_file="a.m4a", captions_file=None, fonts_dir=None,
        aspect=aspect, **extra,  # type: ignore[arg-type]
    )  # fmt: skip


@pytest.mark.parametrize("aspect", list(Aspect))
@pytest.mark.parametrize("corner", list(Corner))
def test_logo_box_is_inside_the_frame(aspect: Aspect, corner: Corner) -> None:
    plan = _plan(aspect, overlay=Overlay(image_file="logo.png", corner=corner))
    width, height, x, y = overlay_box(plan, 300, 120)
    assert width % 2 == 0 and height % 2 == 0
    assert 0 <= x and x + width <= plan.width and 0 <= y and y + height <= plan.height
    assert (x < plan.width / 2) == (corner in (Corner.TOP_LEFT, Corner.BOTTOM_LEFT))
    assert (y < plan.height / 2) == (corner in (Corner.TOP_LEFT, Corner.TOP_RIGHT))


@pytest.mark.parametrize("motion", list(Motion))
def test_motion_windows_stay_inside_the_picture(motion: Motion) -> None:
    for p in (0.0, 0.25, 0.5, 1.0):
        zoom, x, y = motion_window(motion, p)
        assert 1.0 <= zoom <= MOTION_OVERSCAN and 0.0 <= x <= 1.0 and 0.0 <= y <= 1.0
    start, end = motion_window(motion, 0.0), motion_window(motion, 1.0)
    assert start != end  # every motion moves


def test_transitions_follow_the_channel_style() -> None:
    assert transitions_for(1, "energetic") == [None]
    energetic = transitions_for(5, "energetic")
    calm = transitions_for(5, "calm")
    assert energetic != calm
    assert transitions_for(5, "no-such-style") == transitions_for(5, "explainer")


def test_bumpers_extend_the_timeline_but_not_the_scenes() -> None:
    plain = _plan()
    branded = _plan(
        intro=Bumper(file="i.png", is_video=False, duration_s=1.5),
        outro=Bumper(file="o.mp4", is_video=True, duration_s=2.0),
    )
    assert branded.total_s == pytest.approx(plain.total_s + 3.5)
    assert frame_layout(branded) == frame_layout(plain)
    with pytest.raises(ValidationError):
        Bumper(file="long.mp4", is_video=True, duration_s=2.5)


def test_plan_size_must_match_its_aspect() -> None:
    data = _plan().model_dump(exclude={"total_s"})
    data.update(aspect="16:9")
    with pytest.raises(ValidationError, match="not the 16:9 size"):
        RenderPlan.model_validate(data)


def test_channel_settings_reject_unknown_fonts_and_aspects() -> None:
    with pytest.raises(ValidationError):
        ChannelProfile(name="x", captions={"font": "Comic Sans"})  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        ChannelProfile(name="x", aspects=["4:3"])  # type: ignore[list-item]
    assert ChannelProfile(name="x").aspects == ["9:16"]


def test_captions_never_run_past_a_scene_cut() -> None:
    """A caption lingering after its last word must not show over the next scene."""
    words = [
        WordTiming(word="First.", start=0.0, end=0.5, sentence_index=0),
        WordTiming(word="Second", start=0.9, end=1.3, sentence_index=1),
        WordTiming(word="line.", start=1.35, end=1.8, sentence_index=1),
    ]
    cut = 0.7  # in the pause between the sentences
    free = chunk_words(words)
    assert free[0].end > cut  # without the cut the first caption lingers into scene two
    events = chunk_words(words, cuts=[cut])
    assert events[0].end == cut
    for event in events:
        assert not any(event.start < c < event.end for c in [cut])
