"""The whole graph, materialized for an English and a Russian topic on a temporary instance.

Covers: every stage's files and metadata, the MP4's spec (probed), loudness, the captions read
back against the narration, scene cuts, covers, the batch report. Does not cover: premium
providers, publishing (later issues).
"""

from __future__ import annotations

import json

import dagster as dg
import pysubs2
import pytest
from PIL import Image

from factory_assets.definitions import build_definitions
from factory_core.models import SceneImages, Script, Voiceover
from factory_core.text import words_of
from factory_core.timing import END_TAIL_S
from factory_resources.ffmpeg import measure_loudness, probe

from .conftest import QUIET, Rendered

pytestmark = pytest.mark.slow

STAGES = ["script", "voiceover", "scene_images", "subtitles", "video", "thumbnail", "publications"]


def test_every_topic_runs_green_with_passing_checks(rendered: Rendered) -> None:
    for key, result in rendered.results.items():
        assert result.success, key
        for stage in STAGES:
            assert key in rendered.instance.get_materialized_partitions(dg.AssetKey(stage)), stage
        evaluations = result.get_asset_check_evaluations()
        assert {e.check_name for e in evaluations} == {
            "script_is_publishable",
            "captions_follow_narration",
            "video_meets_spec",
            "narration_matches_script",  # a speech recognizer hears the script in the video
        }
        failed = [(e.check_name, e.metadata["problems"].value) for e in evaluations if not e.passed]
        assert failed == []


@pytest.mark.parametrize("index", [0, 1])
def test_video_meets_the_delivery_spec(rendered: Rendered, index: int) -> None:
    key = list(rendered.requests)[index]
    folder = rendered.topic_dir(key)
    info = probe(folder / "video.mp4")
    spoken = Voiceover.model_validate_json((folder / "voiceover.json").read_text())
    written = Script.model_validate_json((folder / "script.json").read_text())
    assert (info.width, info.height, info.fps) == (1080, 1920, 30.0)
    assert (info.video_codec, info.pix_fmt, info.audio_codec) == ("h264", "yuv420p", "aac")
    assert info.moov_before_mdat
    assert info.duration_s == pytest.approx(spoken.duration_s + END_TAIL_S, abs=0.1)
    assert abs(info.duration_s - written.target_duration_s) <= 0.1 * written.target_duration_s
    loudness = measure_loudness(folder / "video.mp4")
    assert loudness.integrated_lufs == pytest.approx(-14.0, abs=1.5)
    assert loudness.true_peak_dbtp <= -0.5


@pytest.mark.parametrize("index", [0, 1])
def test_captions_carry_every_narration_word_in_time(rendered: Rendered, index: int) -> None:
    key = list(rendered.requests)[index]
    folder = rendered.topic_dir(key)
    written = Script.model_validate_json((folder / "script.json").read_text())
    spoken = Voiceover.model_validate_json((folder / "voiceover.json").read_text())
    srt = pysubs2.load(str(folder / "captions.srt"), encoding="utf-8")
    caption_words = [w.casefold() for e in srt for w in words_of(e.plaintext)]
    assert caption_words == [w.casefold() for w in words_of(written.narration)]
    assert all(1 <= len(words_of(e.plaintext)) <= 3 for e in srt)
    assert srt[-1].end / 1000 <= spoken.duration_s + END_TAIL_S + 0.05
    # Word timings come from the voice, in order and inside the audio.
    starts = [w.start for w in spoken.words]
    assert starts == sorted(starts)
    assert spoken.words[-1].end <= spoken.duration_s
    ass = (folder / "captions.ass").read_text(encoding="utf-8")
    assert "\\c&H" in ass  # the spoken word is highlighted


def test_scene_cuts_follow_sentence_ends(rendered: Rendered) -> None:
    key = next(iter(rendered.requests))
    folder = rendered.topic_dir(key)
    pictures = SceneImages.model_validate_json((folder / "scene_images.json").read_text())
    spoken = Voiceover.model_validate_json((folder / "voiceover.json").read_text())
    written = Script.model_validate_json((folder / "script.json").read_text())
    assert len(pictures.images) == len(written.scenes)
    assert pictures.images[0].span.start == 0
    sentence_ends = [s.end for s in spoken.sentences]
    sentence_starts = [s.start for s in spoken.sentences]
    for image in pictures.images[1:]:
        cut = image.span.start
        # every cut lies in a pause between two sentences, never inside spoken words
        assert any(
            end <= cut <= start
            for end, start in zip(sentence_ends, sentence_starts[1:], strict=False)
        )
    # no caption runs from one scene into the next
    cuts = [image.span.start for image in pictures.images[1:]]
    srt = pysubs2.load(str(folder / "captions.srt"), encoding="utf-8")
    for event in srt:
        assert not any(event.start / 1000 < cut < event.end / 1000 - 0.001 for cut in cuts)
    for image in pictures.images:
        with Image.open(folder / image.image_file) as picture:
            assert picture.size == (1080, 1920)
            assert picture.convert("L").getextrema()[1] > 40  # never a blank frame


def test_covers_and_metadata(rendered: Rendered) -> None:
    key = next(iter(rendered.requests))
    folder = rendered.topic_dir(key)
    with (
        Image.open(folder / "cover_9x16.jpg") as tall,
        Image.open(folder / "cover_16x9.jpg") as wide,
    ):
        assert tall.size == (1080, 1920)
        assert wide.size == (1280, 720)
    result = rendered.results[key]
    script_meta = result.asset_materializations_for_node("script")[0].metadata
    assert script_meta["topic"].value == rendered.requests[key].topic
    assert script_meta["cost_usd"].value == 0.0
    preview = result.asset_materializations_for_node("scene_images")[0].metadata["preview"]
    assert "data:image/jpeg;base64," in preview.value
    voice_meta = result.asset_materializations_for_node("voiceover")[0].metadata
    assert voice_meta["provider"].value == "piper"
    russian = list(rendered.requests)[1]
    ru_meta = rendered.results[russian].asset_materializations_for_node("voiceover")[0].metadata
    assert ru_meta["provider"].value == "espeak-ng"


def test_batch_report_lists_every_topic(rendered: Rendered) -> None:
    defs = build_definitions(home=str(rendered.home))
    result = defs.resolve_job_def("refresh_batch_report").execute_in_process(
        instance=rendered.instance, run_config=QUIET
    )
    assert result.success
    rows = json.loads((rendered.home / "reports" / "report.json").read_text())
    assert {r["key"] for r in rows} == set(rendered.requests)
    assert all(r["status"] == "done" and r["video"].endswith("video.mp4") for r in rows)
    meta = result.asset_materializations_for_node("batch_report")[0].metadata
    assert meta["topics_done"].value == 2
