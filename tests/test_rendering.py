"""The ffmpeg backend on a short plan (about 5 s) with every feature on: zooms and pans, each
transition kind, a logo, an intro picture, an outro clip, captions, music ducking; in 9:16, 1:1
and 16:9. Checks the spec, loudness, exact frame counts, audio/video length, no frozen or
black stretches, and that captions are really drawn (frames at caption times differ from the
same render without captions, inside the caption area only).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from factory_core.captions import build_ass, caption_layout, chunk_words
from factory_core.ffmpeg_commands import escape_filter_path
from factory_core.models import BrandKit, Language, SceneSpan
from factory_core.render_plan import (
    Aspect,
    Bumper,
    Overlay,
    RenderPlan,
    Transition,
    build_render_plan,
)
from factory_core.timing import END_TAIL_S, scene_spans
from factory_resources.ffmpeg import FfmpegRenderer, ffmpeg_exe, inspect_video, probe
from factory_resources.fonts import fonts_dir, text_measure
from factory_resources.images import SceneImageMaker
from factory_resources.music import generate_music_bed
from factory_resources.voices import OfflineVoice

pytestmark = pytest.mark.slow

BRAND = BrandKit(primary="#203040", secondary="#D04060", accent="#FFD166", handle="@test")
SENTENCES = ["Octopuses have three hearts.", "Two pump blood to the gills.", "One feeds the body."]


@dataclass
class Workdir:
    path: Path
    spans: list[SceneSpan]
    duration: float
    words: list


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Workdir:
    path = tmp_path_factory.mktemp("render")
    spoken = OfflineVoice().synthesize(SENTENCES, Language.EN, 1.0, path / "voice.wav")
    duration = spoken.duration_s + END_TAIL_S
    spans = scene_spans(spoken.sentences, [1, 1, 1], duration)
    maker = SceneImageMaker()
    for i, words in enumerate((["octopus"], ["hearts", "gills"], ["body"])):
        maker.procedural(words, BRAND, f"scene-{i}", path / f"scene-{i}.png")
    ff = ffmpeg_exe()
    subprocess.run([ff, "-v", "error", "-f", "lavfi", "-i", "color=c=orange:s=300x120",
                    "-frames:v", "1", str(path / "logo.png")], check=True)  # fmt: skip
    subprocess.run([ff, "-v", "error", "-f", "lavfi", "-i", "color=c=purple:s=1080x1920",
                    "-frames:v", "1", str(path / "intro.png")], check=True)  # fmt: skip
    subprocess.run([ff, "-v", "error", "-f", "lavfi", "-i", "testsrc=s=640x360:r=25:d=3",
                    "-pix_fmt", "yuv420p", str(path / "outro.mp4")], check=True)  # fmt: skip
    generate_music_bed(path / "music.wav", seconds=8)
    return Workdir(path, spans, duration, spoken.words)


def _plan(work: Workdir, aspect: Aspect, captions: bool = True) -> RenderPlan:
    w, h = aspect.size()
    layout = caption_layout(w, h)
    events = chunk_words(work.words, layout=layout, measure=text_measure())
    name = f"captions-{w}x{h}.ass"
    build_ass(events, BRAND, work.duration, layout=layout).save(str(work.path / name))
    return build_render_plan(
        images=[(f"scene-{i}.png", s.start, s.end) for i, s in enumerate(work.spans)],
        duration_s=work.duration,
        audio_file="audio.m4a",
        captions_file=name if captions else None,
        fonts_dir=str(fonts_dir()),
        seed=0,  # zoom in, pan up, pan left
        style="energetic",
        aspect=aspect,
        brand_colour=BRAND.primary,
        overlay=Overlay(image_file=str(work.path / "logo.png")),
        intro=Bumper(file=str(work.path / "intro.png"), is_video=False, duration_s=1.0),
        outro=Bumper(file=str(work.path / "outro.mp4"), is_video=True, duration_s=1.0),
    )


def _master(work: Workdir, plan: RenderPlan) -> None:
    from factory_core.render_plan import AudioMixPlan

    if not (work.path / "audio.m4a").exists():
        mix = AudioMixPlan(voice_file="voice.wav", music_file="music.wav",
                           duration_s=work.duration, lead_in_s=plan.intro_s, tail_s=plan.outro_s)  # fmt: skip
        FfmpegRenderer().master_audio(mix, work.path, work.path / "audio.m4a")


def _frame(video: Path, index: int, size: tuple[int, int]) -> np.ndarray:
    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(video), "-vf", f"select=eq(n\\,{index})",
         "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, dtype=np.uint8).reshape(size[1], size[0]).astype(np.int16)


@pytest.mark.parametrize("aspect", list(Aspect))
def test_render_meets_the_spec_in_every_aspect(workdir: Workdir, aspect: Aspect) -> None:
    plan = _plan(workdir, aspect)
    _master(workdir, plan)
    out = workdir.path / f"video-{aspect.value.replace(':', 'x')}.mp4"
    FfmpegRenderer().render(plan, workdir.path, out)
    info = probe(out)
    assert (info.width, info.height) == aspect.size()
    assert (info.fps, info.video_codec, info.pix_fmt, info.audio_codec) == (
        30.0,
        "h264",
        "yuv420p",
        "aac",
    )
    assert info.moov_before_mdat
    seen = inspect_video(out)
    assert round(seen.video_s * 30) == round(plan.total_s * 30)  # every planned frame, no more
    assert abs(seen.audio_s - seen.video_s) <= 0.1
    assert seen.integrated_lufs == pytest.approx(-14.0, abs=1.5)
    assert seen.true_peak_dbtp <= -1.0
    assert seen.freezes == [] and seen.blacks == []


def test_transitions_render_with_exact_frames_every_time(workdir: Workdir) -> None:
    """Blends once lost frames depending on thread timing; the count must be exact."""
    plan = _plan(workdir, Aspect.SQUARE, captions=False)
    _master(workdir, plan)
    for kind in (Transition.CROSSFADE, Transition.BRAND_COLOUR, Transition.SLIDE_UP):
        clips = [c.model_copy(update={"transition_in": kind if i else None})
                 for i, c in enumerate(plan.clips)]  # fmt: skip
        out = workdir.path / f"t-{kind.value}.mp4"
        FfmpegRenderer().render(plan.model_copy(update={"clips": clips}), workdir.path, out)
        assert round(inspect_video(out).video_s * 30) == round(plan.total_s * 30), kind


def test_captions_are_drawn_at_their_times_and_inside_the_safe_area(workdir: Workdir) -> None:
    with_captions = _plan(workdir, Aspect.PORTRAIT)
    _master(workdir, with_captions)
    a, b = workdir.path / "cap.mp4", workdir.path / "nocap.mp4"
    FfmpegRenderer().render(with_captions, workdir.path, a)
    FfmpegRenderer().render(
        with_captions.model_copy(update={"captions_file": None}), workdir.path, b
    )
    layout = caption_layout(1080, 1920)
    word = workdir.words[len(workdir.words) // 2]
    frame = round((with_captions.intro_s + (word.start + word.end) / 2) * 30)
    diff = np.abs(_frame(a, frame, (1080, 1920)) - _frame(b, frame, (1080, 1920)))
    changed = diff > 40
    band_top = 1920 - layout.margin_bottom - 2 * layout.font_size * 2
    assert changed[band_top : 1920 - layout.margin_bottom + 20].sum() > 2000  # the caption
    # nothing drawn in the bottom band or over the right-side buttons, except the handle mark
    assert changed[1920 - layout.margin_bottom + 40 :, :].sum() == 0
    assert changed[300:, 1080 - layout.margin_right + 10 :].sum() == 0
    # during the intro nothing is captioned
    early = np.abs(_frame(a, 5, (1080, 1920)) - _frame(b, 5, (1080, 1920)))
    assert (early > 40).sum() == 0


def test_filter_paths_with_special_characters_render(tmp_path: Path, workdir: Workdir) -> None:
    odd = tmp_path / "it's: a [test], ok"
    odd.mkdir()
    (odd / "c.ass").write_text((workdir.path / "captions-1080x1920.ass").read_text())
    assert ":" in escape_filter_path(str(odd)) and "\\:" in escape_filter_path(str(odd))
    plan = _plan(workdir, Aspect.PORTRAIT).model_copy(
        update={"captions_file": str(odd / "c.ass"), "intro": None, "outro": None}
    )
    FfmpegRenderer().render(plan, workdir.path, tmp_path / "odd.mp4")
    assert probe(tmp_path / "odd.mp4").width == 1080


def test_moviepy_backend_renders_the_same_plan_to_spec(workdir: Workdir) -> None:
    from factory_resources.moviepy_renderer import MoviepyRenderer

    plan = _plan(workdir, Aspect.PORTRAIT)
    _master(workdir, plan)
    ffmpeg_out, moviepy_out = workdir.path / "ff.mp4", workdir.path / "mp.mp4"
    FfmpegRenderer().render(plan, workdir.path, ffmpeg_out)
    MoviepyRenderer().render(plan, workdir.path, moviepy_out)
    info = probe(moviepy_out)
    assert (info.width, info.height, info.fps) == (1080, 1920, 30.0)
    assert (info.video_codec, info.pix_fmt, info.audio_codec) == ("h264", "yuv420p", "aac")
    assert info.moov_before_mdat
    seen = inspect_video(moviepy_out)
    assert round(seen.video_s * 30) == round(plan.total_s * 30)
    assert abs(seen.audio_s - seen.video_s) <= 0.1
    assert seen.integrated_lufs == pytest.approx(-14.0, abs=1.5)
    assert seen.freezes == [] and seen.blacks == []
    # Same plan, same picture: frames mid-scene and mid-caption look alike in both backends.
    for t in (plan.intro_s + 0.5, plan.intro_s + plan.duration_s / 2):
        frame = round(t * 30)
        a = _frame(ffmpeg_out, frame, (1080, 1920))
        b = _frame(moviepy_out, frame, (1080, 1920))
        assert np.abs(a - b).mean() < 20, t  # same layout; fonts and scalers differ a little


@pytest.mark.parametrize("music", ["music.wav", None], ids=["with-music", "voice-only"])
def test_mastering_settles_the_gain_before_encoding_aac_once(
    workdir: Workdir, monkeypatch: pytest.MonkeyPatch, music: str | None
) -> None:
    """Speech through a peak limiter loses part of any gain; the gain is found on cheap trials
    of the chain, and the limiter leaves room for AAC's overshoot, so the AAC encode (nine
    tenths of a master pass) runs once."""
    import factory_resources.ffmpeg as ffmpeg_module
    from factory_core.render_plan import AudioMixPlan

    passes: list[str] = []
    real_run = ffmpeg_module.run_ffmpeg

    def counted(args: list[str], **kwargs: object) -> str:
        passes.append(str(kwargs.get("what", "")))
        return real_run(args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ffmpeg_module, "run_ffmpeg", counted)
    mix = AudioMixPlan(voice_file="voice.wav", music_file=music, duration_s=workdir.duration)
    result = FfmpegRenderer().master_audio(mix, workdir.path, workdir.path / "mastered.m4a")
    assert passes.count("audio master") == 1, passes
    assert 1 <= passes.count("audio master trial") <= 4
    assert result.integrated_lufs == pytest.approx(-14.0, abs=0.5)
    assert result.true_peak_dbtp <= -1.0
    info = probe(workdir.path / "mastered.m4a")
    assert (info.audio_codec, info.sample_rate) == ("aac", 48000)
    assert info.duration_s == pytest.approx(mix.total_s, abs=0.05)
