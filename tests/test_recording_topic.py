"""A topic narrated by the user's own recording: the recording is the voice, a local speech
recognizer gives its words and timings, and the video is as long as the recording."""

from __future__ import annotations

import subprocess
from pathlib import Path

import dagster as dg
import pytest

from factory_core.models import Language, Script, Voiceover
from factory_core.wer import word_error_rate
from factory_resources.ffmpeg import ffmpeg_exe, probe
from factory_resources.store import default_home
from factory_resources.voices import OfflineVoice

from .conftest import make_request, produce

pytestmark = pytest.mark.slow

SPOKEN = [
    "Octopuses have three hearts.",
    "Two of them pump blood through the gills.",
    "The third one pumps it through the rest of the body.",
    "Follow for more strange facts about the sea.",
]


def test_a_recorded_narration_is_the_voice_and_sets_the_length(tmp_path: Path) -> None:
    home = default_home()
    folder = home / "channels" / "demo" / "narration"
    folder.mkdir(parents=True)
    wav = tmp_path / "take.wav"
    OfflineVoice().synthesize(SPOKEN, Language.EN, 1.0, wav)
    recording = folder / "my take.mp3"  # as a user would hand it in: compressed, any name
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-i", str(wav), "-b:a", "128k",
                    str(recording)], check=True)  # fmt: skip
    request = make_request("demo", "Octopus hearts, in my own voice", narration_file=recording.name)

    with dg.instance_for_test() as instance:
        result = produce(home, instance, [request])[request.key]
        assert result.success
        topic = home / "topics" / request.key
        written = Script.model_validate_json((topic / "script.json").read_text())
        spoken = Voiceover.model_validate_json((topic / "voiceover.json").read_text())
        assert written.source == "recording"
        assert spoken.voice == recording.name and spoken.provider.startswith("recording")
        # What was heard is what was said (whisper-base on a clean English voice).
        assert word_error_rate(" ".join(SPOKEN), written.narration, Language.EN).wer <= 0.1
        # The recording sets the length: no refit, no synthesized voice.
        recorded_s = probe(recording).duration_s
        assert written.target_duration_s == pytest.approx(recorded_s + 0.7, abs=0.15)
        video_s = probe(topic / "video.mp4").duration_s
        assert video_s == pytest.approx(recorded_s + 0.7, abs=0.3)
        assert spoken.words[0].start < 0.6 and spoken.words[-1].end <= spoken.duration_s + 0.05
        meta = result.asset_materializations_for_node("voiceover")[0].metadata
        assert meta["provider"].value == "recording" and meta["cost_usd"].value == 0.0
        checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
        assert all(checks.values()), checks


def test_a_recording_that_went_missing_fails_the_topic_with_the_place_to_put_it(
    tmp_path: Path,
) -> None:
    home = default_home()
    request = make_request("demo", "A recording that is gone", narration_file="gone.wav")
    with dg.instance_for_test() as instance:
        result = produce(home, instance, [request])[request.key]
        assert not result.success
        failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
        message = failure.step_failure_data.user_failure_data.description
        assert "'gone.wav'" in message and "narration" in message and "put it there" in message
