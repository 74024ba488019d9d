"""The render plan and its ffmpeg command lines (factory_core.render_plan), and the quality
gates over measured facts (factory_core.quality).

Covers: camera motions, frame counts per clip, the video filtergraph (one `loop` per still, one
blend per cut, libass captions), the encoder arguments, filter-path escaping (checked against a
pure-Python model of ffmpeg's own tokenizer), the audio mix with and without a music bed, and
video_problems / script_problems.

Deliberately does not touch ffmpeg, any media file or Dagster: command lines are inspected as
lists of strings and the quality gates are fed hand-written measurements.
"""

from __future__ import annotations

import re
from itertools import pairwise

import pytest

from factory_core.ffmpeg_commands import (
    audio_master_args,
    audio_master_trial_args,
    audio_mix_args,
    escape_filter_path,
    scene_pieces,
    video_args,
    video_filtergraph,
)
from factory_core.models import Language, TopicRequest
from factory_core.quality import script_problems, video_problems
from factory_core.render_plan import (
    FPS,
    AudioMixPlan,
    Motion,
    RenderPlan,
    Transition,
    build_render_plan,
    clip_frames,
    frame_layout,
    motions_for,
    transitions_for,
)
from factory_core.script_writer import compose_script
from factory_core.slugs import topic_key


def plan_for(
    cuts: list[float],
    captions: str | None = "/work/topic/captions.ass",
    fonts: str | None = "/work/fonts",
    seed: int = 0,
) -> RenderPlan:
    """Clips tiling [cuts[0], cuts[-1]], one still image per clip."""
    images = [(f"/work/topic/scene_{i}.png", a, b) for i, (a, b) in enumerate(pairwise(cuts))]
    return build_render_plan(
        images=images,
        duration_s=cuts[-1],
        audio_file="/work/topic/voice.m4a",
        captions_file=captions,
        fonts_dir=fonts,
        seed=seed,
    )


TILINGS = [
    [0.0, 12.0],
    [0.0, 3.1, 7.3, 12.0],
    [0.0, 2.2, 4.25, 6.2, 8.3, 10.1, 13.2],
    [0.0, 4.0, 8.0, 12.0, 16.0, 20.0, 25.0, 30.0],
    [0.0, 7.777, 15.123, 29.999, 44.5, 59.9],
]


# --- motions -------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 7, 20])
def test_motions_never_repeat_a_move_twice_in_a_row(n: int, seed: int) -> None:
    motions = motions_for(n, seed)
    assert len(motions) == n
    assert all(isinstance(m, Motion) for m in motions)
    for a, b in pairwise(motions):
        assert a != b
    if n >= len(Motion):
        assert set(motions) == set(Motion)


def test_render_plan_gives_each_clip_its_motion_in_order() -> None:
    plan = plan_for(TILINGS[3], seed=5)
    assert [c.motion for c in plan.clips] == motions_for(len(plan.clips), 5)
    assert [(c.start, c.end) for c in plan.clips] == list(pairwise(TILINGS[3]))


# --- frames and filtergraph ----------------------------------------------------------------------


@pytest.mark.parametrize("cuts", TILINGS)
def test_scenes_tile_the_narration_in_whole_frames(cuts: list[float]) -> None:
    plan = plan_for(cuts)
    layout = frame_layout(plan)
    assert layout[0].start == 0
    assert sum(f.own for f in layout) == round(plan.duration_s * plan.fps)
    for clip, frames, nxt in zip(plan.clips, layout, [*layout[1:], None], strict=True):
        assert frames.start == round(clip.start * plan.fps) or frames.start == 0
        assert abs(frames.own - (clip.end - clip.start) * plan.fps) <= 1
        if nxt is not None:
            assert nxt.start == frames.start + frames.own  # no gap, no overlap
            assert frames.tail == nxt.head  # the outgoing tail and incoming head blend
            assert 0 < frames.tail <= round(plan.transition_s * plan.fps)
            assert frames.tail <= frames.own // 2 and nxt.head <= nxt.own // 2
    assert layout[0].head == 0 and layout[-1].tail == 0
    assert clip_frames(plan) == [f.own + f.tail for f in layout]


@pytest.mark.parametrize("cuts", TILINGS)
def test_filtergraph_loops_each_still_and_blends_only_at_the_cuts(cuts: list[float]) -> None:
    plan = plan_for(cuts)
    graph = video_filtergraph(plan)
    n = len(plan.clips)
    loops = [int(x) + 1 for x in re.findall(r"(?:^|,|\])loop=loop=(\d+):size=1:start=0", graph)]
    pieces = scene_pieces(plan)
    # every scene is its head, body and tail pieces, each its own loop of the one picture
    assert loops == [b - a for _, _, a, b in pieces]
    assert sum(loops) == sum(clip_frames(plan))
    for i, frames in enumerate(frame_layout(plan)):
        assert sum(b - a for j, _, a, b in pieces if j == i) == frames.rendered
    for index in range(n):  # each scene's picture is decoded once and split as one frame
        assert graph.count(f"[{index}:v]") == 1
        assert re.search(
            rf"\[{index}:v\][^;]*,split={sum(1 for j, *_ in pieces if j == index)}\[", graph
        )
    assert f"[{n}:v]" not in graph
    joins = re.findall(r"\[x(\d+)\](?:;|$)", graph)
    assert [int(j) for j in joins] == list(range(n - 1))
    assert "xfade" not in graph  # blends are frame-synchronised overlays (see _join)
    assert graph.count(",copy[") == len(pieces)  # each piece's frames get their own buffers
    assert "ass=filename=" in graph
    assert graph.endswith("[v]")
    assert graph.count("[v]") == 1


def test_every_transition_kind_and_style_builds() -> None:
    for style in ("explainer", "energetic", "calm", "story", "unknown"):
        kinds = transitions_for(6, style)
        assert kinds[0] is None and all(isinstance(k, Transition) for k in kinds[1:])
    plan = plan_for(TILINGS[3])
    for kind in Transition:
        clips = [c.model_copy(update={"transition_in": kind if i else None})
                 for i, c in enumerate(plan.clips)]  # fmt: skip
        graph = video_filtergraph(plan.model_copy(update={"clips": clips}))
        joins = len(clips) - 1
        if kind is Transition.BRAND_COLOUR:
            assert graph.count("c=0x14213D") == 2 * joins
        elif kind is Transition.CROSSFADE:
            assert graph.count("fade=t=in:s=0:n=12:alpha=1") == joins
        elif kind in (Transition.SLIDE_LEFT, Transition.SLIDE_UP):
            assert graph.count("eval=frame:shortest=1") == joins
        else:
            assert graph.count("alphamerge") == joins


def test_filtergraph_without_captions_has_no_ass() -> None:
    graph = video_filtergraph(plan_for(TILINGS[1], captions=None, fonts=None))
    assert "ass=" not in graph
    assert "fontsdir" not in graph
    assert graph.endswith("format=yuv420p[v]")


def test_filtergraph_passes_the_fonts_dir_to_libass() -> None:
    graph = video_filtergraph(plan_for(TILINGS[1], fonts="/work/fonts"))
    assert "fontsdir=" in graph
    assert "fontsdir=" not in video_filtergraph(plan_for(TILINGS[1], fonts=None))


def test_single_clip_has_no_xfade() -> None:
    graph = video_filtergraph(plan_for(TILINGS[0]))
    assert "xfade" not in graph
    assert len(re.findall(r"(?:^|,|\])loop=loop=", graph)) == 1


# --- video_args ----------------------------------------------------------------------------------


def _adjacent(args: list[str], *pair: str) -> bool:
    return any(list(args[i : i + len(pair)]) == list(pair) for i in range(len(args)))


@pytest.mark.parametrize("cuts", TILINGS)
def test_video_args_encode_for_the_platforms(cuts: list[float]) -> None:
    plan = plan_for(cuts)
    args = video_args(plan, "/work/topic/video.mp4")
    n = len(plan.clips)
    assert args[-1] == "/work/topic/video.mp4"
    assert _adjacent(args, "-movflags", "+faststart")
    assert _adjacent(args, "-c:v", "libx264")
    assert _adjacent(args, "-pix_fmt", "yuv420p")
    assert _adjacent(args, "-r", str(FPS))
    assert _adjacent(args, "-r", "30")
    assert _adjacent(args, "-map", "[v]")
    assert _adjacent(args, "-map", f"{n}:a")
    assert _adjacent(args, "-t", f"{plan.total_s:.3f}")
    assert _adjacent(args, "-filter_complex_threads", "1")
    assert _adjacent(args, "-filter_complex", video_filtergraph(plan))
    inputs = [args[i + 1] for i, a in enumerate(args) if a == "-i"]
    assert inputs == [clip.image_file for clip in plan.clips] + [plan.audio_file]
    # a still image is decoded once and repeated by the loop filter, never `-loop 1`
    assert "-loop" not in args
    assert "-loop 1" not in " ".join(args)


# --- escaping (checked against ffmpeg's tokenizer) -----------------------------------------------


def av_get_token(text: str, term: str) -> tuple[str, str]:
    """A faithful Python port of libavutil's av_get_token: returns (token, rest)."""
    ws = " \n\t\r"
    i = 0
    while i < len(text) and text[i] in ws:
        i += 1
    out: list[str] = []
    end = 0
    while i < len(text) and text[i] not in term:
        c = text[i]
        i += 1
        if c == "\\" and i < len(text):
            out.append(text[i])
            i += 1
            end = len(out)
        elif c == "'":
            while i < len(text) and text[i] != "'":
                out.append(text[i])
                i += 1
            if i < len(text):
                i += 1
                end = len(out)
        else:
            out.append(c)
    while len(out) > end and out[-1] in ws:
        out.pop()
    return "".join(out), text[i:]


def ffmpeg_filter_options(graph: str, filter_name: str) -> dict[str, str]:
    """How ffmpeg reads one filter's options: graph-level token, then key=value option tokens."""
    at = graph.index(f"{filter_name}=") + len(filter_name) + 1
    args, _ = av_get_token(graph[at:], "[],;")
    options: dict[str, str] = {}
    while args:
        key, _, rest = args.partition("=")
        value, args = av_get_token(rest, ":")
        options[key] = value
        args = args[1:] if args.startswith(":") else args
    return options


def unescaped(text: str, char: str) -> int:
    """How many times `char` occurs in text not preceded by an odd run of backslashes, i.e.
    where one level of ffmpeg unescaping would read it as a separator."""
    count = 0
    for m in re.finditer(re.escape(char), text):
        run = len(text[: m.start()]) - len(text[: m.start()].rstrip("\\"))
        count += run % 2 == 0
    return count


SPECIAL_PATHS = [
    "C:/Users/me/captions.ass",
    "/tmp/a:b/captions.ass",
    "/tmp/it's/captions.ass",
    "/tmp/a,b/captions.ass",
    "/tmp/[x]/captions.ass",
    "/tmp/a;b/captions.ass",
    "/tmp/back\\slash/captions.ass",
    "/tmp/all: ' , [ ] ; \\ /captions.ass",
]


def assert_no_unescaped_separators(escaped: str) -> None:
    # graph level: `'`, `[`, `]`, `,`, `;` must all be escaped in the raw text
    for char in "'[],;":
        assert unescaped(escaped, char) == 0, (char, escaped)
    # `:` separates filter options, one level down: never bare in the raw text, and still
    # escaped after the graph parser has removed its level of backslashes
    assert re.search(r"(?<!\\):", escaped) is None, escaped
    graph_level, _ = av_get_token(escaped, "[],;")
    assert unescaped(graph_level, ":") == 0, graph_level
    assert unescaped(graph_level, "'") == 0, graph_level


@pytest.mark.parametrize("char", [":", "'", ",", "[", "]", ";", "\\"])
def test_escape_filter_path_escapes_every_special_character(char: str) -> None:
    path = f"/tmp/a{char}b/c.ass"
    escaped = escape_filter_path(path)
    assert escaped != path
    assert escaped.startswith("/tmp/a\\") and escaped.endswith("b/c.ass")
    assert_no_unescaped_separators(escaped)


@pytest.mark.parametrize("path", SPECIAL_PATHS)
def test_escape_filter_path_leaves_no_unescaped_separator(path: str) -> None:
    assert_no_unescaped_separators(escape_filter_path(path))


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("a:b", "a\\\\:b"),  # a\\:b  -> graph level a\:b -> option level a:b
        ("a'b", "a\\\\\\'b"),
        ("a,b", "a\\,b"),
        ("a[b]", "a\\[b\\]"),
        ("a;b", "a\\;b"),
    ],
)
def test_escape_filter_path_exact_output(path: str, expected: str) -> None:
    assert escape_filter_path(path) == expected


@pytest.mark.parametrize("path", SPECIAL_PATHS)
def test_escaped_path_survives_both_ffmpeg_unescaping_levels(path: str) -> None:
    escaped = escape_filter_path(path)
    graph_level, rest = av_get_token(escaped, "[],;")
    assert rest == ""  # the graph parser does not stop early at a `,` `;` `[` or `]`
    option_level, rest = av_get_token(graph_level, ":")
    assert rest == ""  # the option parser does not stop early at a `:`
    assert option_level == path


def test_plain_path_is_unchanged() -> None:
    assert escape_filter_path("/work/topic/captions.ass") == "/work/topic/captions.ass"


def test_filtergraph_hands_libass_the_exact_plain_paths() -> None:
    plan = plan_for(TILINGS[1], captions="/work/my topic/captions.ass", fonts="/work/fonts")
    options = ffmpeg_filter_options(video_filtergraph(plan), "ass")
    assert options == {"filename": "/work/my topic/captions.ass", "fontsdir": "/work/fonts"}


@pytest.mark.parametrize("path", ["/tmp/a:b/captions.ass", "/tmp/it's/captions.ass"])
def test_filtergraph_hands_libass_the_exact_special_path(path: str) -> None:
    plan = plan_for(TILINGS[1], captions=path, fonts=None)
    options = ffmpeg_filter_options(video_filtergraph(plan), "ass")
    assert options == {"filename": path}


# --- audio mix -----------------------------------------------------------------------------------


def test_audio_mix_ducks_the_music_under_the_voice() -> None:
    plan = AudioMixPlan(
        voice_file="v.wav", music_file="m.mp3", duration_s=12.0, music_volume_db=-18
    )
    args = audio_mix_args(plan, "mix.wav")
    graph = args[args.index("-filter_complex") + 1]
    assert "sidechaincompress" in graph
    assert "amix=inputs=2" in graph
    assert "volume=-18" in graph
    assert "atrim=0:12.000" in graph
    inputs = [args[i + 1] for i, a in enumerate(args) if a == "-i"]
    assert inputs == ["v.wav", "m.mp3"]
    assert _adjacent(args, "-stream_loop", "-1", "-i", "m.mp3")  # a short bed loops
    assert _adjacent(args, "-map", "[mix]")
    assert args[-1] == "mix.wav"


def test_audio_mix_without_music_has_no_ducking() -> None:
    plan = AudioMixPlan(voice_file="v.wav", music_file=None, duration_s=12.0)
    args = audio_mix_args(plan, "mix.wav")
    joined = " ".join(args)
    assert "sidechaincompress" not in joined
    assert "amix" not in joined
    assert "-stream_loop" not in args
    assert [args[i + 1] for i, a in enumerate(args) if a == "-i"] == ["v.wav"]
    assert _adjacent(args, "-map", "[mix]")
    assert args[-1] == "mix.wav"


def test_mastering_trial_measures_the_same_chain_without_encoding() -> None:
    plan = AudioMixPlan(voice_file="v.wav", music_file=None, duration_s=12.0)
    master = audio_master_args("mix.wav", 4.5, plan, "out.m4a", limit_db=-2.0)
    trial = audio_master_trial_args("mix.wav", 4.5, plan, limit_db=-2.0)
    chain = master[master.index("-af") + 1]
    assert "volume=4.50dB" in chain and "alimiter=limit=0.7943" in chain
    assert trial[trial.index("-af") + 1] == f"{chain},ebur128=peak=true:framelog=quiet"
    assert trial[-3:] == ["-f", "null", "-"]  # measured, never encoded
    assert "-loglevel" not in trial  # the ebur128 summary is read from the log
    assert _adjacent(master, "-c:a", "aac")


# --- quality.video_problems ----------------------------------------------------------------------

GOOD_VIDEO: dict[str, object] = {
    "width": 1080,
    "height": 1920,
    "fps": 30.0,
    "video_codec": "h264",
    "pix_fmt": "yuv420p",
    "audio_codec": "aac",
    "duration_s": 30.4,
    "target_duration_s": 30.0,
    "integrated_lufs": -14.2,
    "moov_first": True,
}


def test_video_problems_is_empty_for_a_good_video() -> None:
    assert video_problems(**GOOD_VIDEO) == []  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"width": 1920, "height": 1080}, "resolution 1920x1080"),
        ({"width": None, "height": None}, "resolution"),
        ({"fps": 25.0}, "frame rate 25.0"),
        ({"fps": 29.97}, "frame rate"),
        ({"fps": None}, "frame rate"),
        ({"video_codec": "hevc"}, "video hevc/yuv420p"),
        ({"pix_fmt": "yuv444p"}, "h264/yuv444p"),
        ({"audio_codec": "mp3"}, "audio codec mp3"),
        ({"audio_codec": None}, "audio codec None"),
        ({"duration_s": 34.0}, "duration 34.0s"),
        ({"duration_s": 26.0}, "duration 26.0s"),
        ({"integrated_lufs": -70.0}, "silent"),
        ({"integrated_lufs": None}, "silent"),
        ({"integrated_lufs": -20.0}, "loudness -20.0 LUFS"),
        ({"integrated_lufs": -11.0}, "loudness -11.0 LUFS"),
        ({"moov_first": False}, "faststart"),
    ],
)
def test_video_problems_names_each_problem(changes: dict[str, object], fragment: str) -> None:
    problems = video_problems(**{**GOOD_VIDEO, **changes})  # type: ignore[arg-type]
    assert len(problems) == 1, problems
    assert fragment in problems[0]


@pytest.mark.parametrize(
    ("changes"),
    [
        {"duration_s": 32.9},  # 9.7 % long
        {"duration_s": 27.1},
        {"integrated_lufs": -15.4},
        {"integrated_lufs": -12.6},
        {"fps": 30.005},
    ],
)
def test_video_problems_tolerates_small_deviations(changes: dict[str, object]) -> None:
    assert video_problems(**{**GOOD_VIDEO, **changes}) == []  # type: ignore[arg-type]


def test_video_problems_reports_every_problem_at_once() -> None:
    problems = video_problems(
        width=720,
        height=1280,
        fps=24.0,
        video_codec="vp9",
        pix_fmt="yuv420p",
        audio_codec="opus",
        duration_s=10.0,
        target_duration_s=30.0,
        integrated_lufs=None,
        moov_first=False,
    )
    assert len(problems) == 7


# --- quality.script_problems ---------------------------------------------------------------------


def _script(topic: str = "Why octopuses have three hearts", language: Language = Language.EN):
    req = TopicRequest(key=topic_key("demo", topic), channel="demo", topic=topic, language=language)
    return compose_script(req, 14.8)


def test_script_problems_is_empty_for_a_composed_script() -> None:
    assert script_problems(_script()) == []
    assert script_problems(_script("Почему небо голубое", Language.RU)) == []


@pytest.mark.parametrize("hook", ["", "   "])
def test_script_problems_flags_a_missing_hook(hook: str) -> None:
    problems = script_problems(_script().model_copy(update={"hook": hook}))
    assert problems == ["no hook"]


def test_script_problems_flags_a_missing_call_to_action() -> None:
    problems = script_problems(_script().model_copy(update={"call_to_action": ""}))
    assert problems == ["no call to action"]


def test_script_problems_flags_too_few_points_and_an_over_budget_estimate() -> None:
    script = _script()
    short = script.model_copy(update={"body_points": script.body_points[:2]})
    assert any("2 body points" in p for p in script_problems(short))
    slow = script.model_copy(update={"estimated_duration_s": script.target_duration_s * 1.2})
    assert any("budget" in p for p in script_problems(slow))


def test_script_problems_flags_metadata_over_platform_limits() -> None:
    script = _script()
    long_title = script.model_copy(update={"title": "t" * 101})
    assert any("title is 101 characters" in p for p in script_problems(long_title))
    bad_tag = script.model_copy(update={"hashtags": ["#ok", "not a tag"]})
    assert any("'not a tag'" in p for p in script_problems(bad_tag))
