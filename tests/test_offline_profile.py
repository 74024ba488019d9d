"""An offline studio voice (`factory voices add-offline`) named by a channel speaks its
narration: the offline voice at the profile's speed, shifted to its pitch, timings intact."""

from __future__ import annotations

import wave
from pathlib import Path

import dagster as dg
import pytest
import yaml

from factory_assets.definitions import offline_resources
from factory_assets.partitions import topics
from factory_assets.script import script
from factory_assets.voiceover import voiceover
from factory_core.models import Language, Voiceover
from factory_resources.project_db import project_engine
from factory_resources.store import MediaStore, default_home
from factory_resources.voice_studio import VoiceStudio
from factory_resources.voices import OfflineVoice

from .conftest import QUIET, make_request

pytestmark = pytest.mark.slow

NARRATION = "Octopuses have three hearts. Two pump blood through the gills. One feeds the body."


def test_a_channel_speaks_with_its_owners_offline_profile(tmp_path: Path) -> None:
    home = default_home()
    VoiceStudio(project_engine(home), None, home).create_offline(
        "erin", "brisk", Language.EN, speed=1.25, pitch=-2
    )
    folder = home / "channels" / "studio"
    folder.mkdir(parents=True)
    (folder / "channel.yaml").write_text(
        yaml.safe_dump({"owner": "erin", "providers": {"voice": {"voice": "brisk"}}}),
        encoding="utf-8",
    )
    request = make_request("studio", "Octopus hearts", duration_s=15, script=NARRATION)
    MediaStore(home=str(home)).save_request(request)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(topics.name, [request.key])
        result = dg.materialize(
            [script, voiceover], partition_key=request.key, instance=instance,
            resources=offline_resources(str(home)), run_config=QUIET,
        )  # fmt: skip
    assert result.success
    meta = result.asset_materializations_for_node("voiceover")[0].metadata
    assert meta["voice"].value.startswith("brisk")
    spoken = Voiceover.model_validate_json(
        (home / "topics" / request.key / "voiceover.json").read_text()
    )
    plain = OfflineVoice().synthesize(
        [s.text for s in spoken.sentences], Language.EN, 1.0, tmp_path / "plain.wav"
    )
    # 25% faster speech: the narration is clearly shorter than at the default speed. Piper
    # draws phoneme durations with noise and the sentence pauses do not scale, so measured
    # over this short text 1.25x comes out 7 to 14% shorter; 5% leaves room for that noise.
    assert spoken.duration_s < 0.95 * plain.duration_s
    # The pitch shift keeps the length, so the word timings still fit the audio.
    with wave.open(str(home / "topics" / request.key / "voice.wav")) as wav:
        assert wav.getnframes() / wav.getframerate() == pytest.approx(spoken.duration_s, abs=0.05)
    assert spoken.words[-1].end <= spoken.duration_s + 0.01
