"""A whole topic made with every premium provider, each the official SDK pointed at its local
fake: an OpenAI-compatible writer, a cloned ElevenLabs voice, fal.ai pictures of the channel's
character, the OpenAI Whisper API for the listening check. Then: the ledger holds every paid
call, `factory estimate` predicted it within 10%, the batch report sums it, and no key appears
anywhere in the run's events."""

from __future__ import annotations

import io
import json
import re
from contextlib import redirect_stdout
from pathlib import Path

import dagster as dg
import pytest
import yaml
from pytest_httpserver import HTTPServer

from factory_assets.definitions import build_definitions
from factory_assets.partitions import topics
from factory_cli.main import main as factory_main
from factory_core.costs import total_usd
from factory_core.models import SceneImages, Script, Voiceover
from factory_resources.character_studio import CharacterStudio
from factory_resources.elevenlabs_voice import ElevenLabsVoice
from factory_resources.face_similarity import CONSISTENCY_THRESHOLD, FaceSimilarity
from factory_resources.fal_images import FalImages
from factory_resources.ffmpeg import probe
from factory_resources.llm_writer import OpenAIScriptWriter
from factory_resources.project_db import project_engine, topic_costs
from factory_resources.store import MediaStore, default_home
from factory_resources.transcribers import Transcriber
from factory_resources.voice_studio import VoiceStudio
from factory_sensors.intake import read_batch

from .conftest import QUIET
from .fakes import elevenlabs as el_fake
from .fakes import openai_chat
from .fakes.elevenlabs import FakeElevenLabs
from .fakes.fal import FakeFal
from .fakes.openai_audio import FakeOpenAIAudio, fixed
from .fakes.openai_chat import FakeOpenAIChat
from .test_character_studio import GRACE
from .test_voice_studio import good_samples

pytestmark = pytest.mark.slow

FAL_KEY = "0f1e2d3c-aaaa-bbbb-cccc-123456789abc:5ecre75ecre75ecre7"
KEYS = (openai_chat.API_KEY, el_fake.API_KEY, FAL_KEY, "5ecre75ecre75ecre7")
TOPIC = "Why octopuses have three hearts"


@pytest.fixture
def fal_server() -> HTTPServer:
    # fal's fake answers every path (it routes on the Host header), so it gets its own server.
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


def _channel(home: Path, audio_url: str) -> None:
    folder = home / "channels" / "premium"
    folder.mkdir(parents=True, exist_ok=True)
    profile = {
        "owner": "alice",
        "providers": {
            "script": {"chain": ["openai", "offline"], "model": "gpt-4o-mini"},
            "voice": {"chain": ["elevenlabs", "offline"], "voice": "narrator"},
            "images": {"chain": ["fal", "procedural"], "character": "grace"},
            "transcription": {"provider": "openai", "base_url": audio_url},
        },
    }
    (folder / "channel.yaml").write_text(yaml.safe_dump(profile), encoding="utf-8")


def _estimate(topics_file: Path) -> tuple[float, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        assert factory_main(["estimate", str(topics_file), "--channel", "premium"]) == 0
    last = out.getvalue().strip().splitlines()[-1]
    match = re.fullmatch(r"estimate: topics=(\d+) usd=([0-9.]+)", last)
    assert match, last
    assert match.group(1) == "1"
    return float(match.group(2)), out.getvalue()


def test_a_premium_topic_end_to_end(
    httpserver: HTTPServer, fal_server: HTTPServer, monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:  # fmt: skip
    monkeypatch.setenv("OPENAI_API_KEY", openai_chat.API_KEY)
    monkeypatch.setenv("ELEVENLABS_API_KEY", el_fake.API_KEY)
    monkeypatch.setenv("FAL_KEY", FAL_KEY)
    chat = FakeOpenAIChat(httpserver)
    voice_fake = FakeElevenLabs(httpserver)
    audio = FakeOpenAIAudio(httpserver, api_key=openai_chat.API_KEY)
    fal = FakeFal(fal_server, polls_to_complete=1)
    home = default_home()
    _channel(home, audio.base_url)
    engine = project_engine(home)

    # The owner's studio: a cloned voice and a character, both through the fakes.
    studio = VoiceStudio(engine, ElevenLabsVoice(base_url=voice_fake.base_url), home)
    assert studio.clone("alice", "narrator", good_samples(tmp_path / "takes")).status == "ready"
    character = CharacterStudio(engine, home, FaceSimilarity()).create(
        "alice", "grace", GRACE, "a naval officer with short grey hair"
    )
    assert character.status == "ready"

    batch_file = tmp_path / "topics.csv"
    batch_file.write_text(f"topic,duration\n{TOPIC},30\n", encoding="utf-8")
    estimate_usd, estimate_text = _estimate(batch_file)
    assert "script: openai" in estimate_text and "voiceover: elevenlabs" in estimate_text
    assert "scene_images: fal" in estimate_text

    overrides = {
        "llm": OpenAIScriptWriter(base_url=chat.base_url),
        "elevenlabs": ElevenLabsVoice(base_url=voice_fake.base_url),
        "fal": FalImages(base_url=fal.base_url, poll_interval_s=0.01),
        "transcriber": Transcriber(),
    }
    store = MediaStore(home=str(home))
    with dg.instance_for_test() as instance:
        batch = read_batch(batch_file, "premium", store, instance)
        (request,) = batch.accepted
        key = request.key
        instance.add_dynamic_partitions(topics.name, [key])
        # The listening check hears what the script says (the fake voice is a buzz, not words).
        audio.engine = fixed("placeholder")
        defs = build_definitions(str(home), overrides)
        job = defs.resolve_job_def("produce_topic")
        folder = home / "topics" / key

        # Script first, so the fake transcription can say the written narration.
        first = job.execute_in_process(
            partition_key=key, instance=instance, run_config=QUIET, raise_on_error=False,
            asset_selection=[dg.AssetKey("script")],
        )  # fmt: skip
        assert first.success
        written = Script.model_validate_json((folder / "script.json").read_text())
        audio.engine = fixed(written.narration)
        result = job.execute_in_process(partition_key=key, instance=instance, run_config=QUIET,
                                        raise_on_error=False)  # fmt: skip
        assert result.success, [
            (c.check_name, c.metadata.get("problems")) for c in result.get_asset_check_evaluations()
        ]

        assert written.source == "llm:gpt-4o-mini"
        spoken = Voiceover.model_validate_json((folder / "voiceover.json").read_text())
        assert spoken.provider == "elevenlabs" and spoken.voice == "narrator"
        scenes = SceneImages.model_validate_json((folder / "scene_images.json").read_text())
        assert all(i.source.startswith("fal") for i in scenes.images), [
            i.source for i in scenes.images
        ]
        images_meta = result.asset_materializations_for_node("scene_images")[0].metadata
        assert images_meta["character_similarity_min"].value >= CONSISTENCY_THRESHOLD
        info = probe(folder / "video.mp4")
        assert (info.width, info.height, info.video_codec, info.audio_codec) == (
            1080, 1920, "h264", "aac")  # fmt: skip

        checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
        listening = checks["narration_matches_script"]
        assert listening.passed and listening.metadata["wer"].value == 0.0

        # Every paid call is in the ledger, and the estimate saw it coming.
        lines = topic_costs(engine, key)
        stages = {line.stage for line in lines}
        assert {"script", "voiceover", "scene_images"} <= stages, stages
        assert any(line.provider == "openai" and line.unit == "audio_second" for line in lines)
        spent = total_usd(lines)
        assert spent > 0
        assert abs(estimate_usd - spent) <= 0.10 * spent, (estimate_usd, spent, lines)

        # The batch report sums the ledger.
        report = defs.resolve_job_def("refresh_batch_report").execute_in_process(
            instance=instance, run_config=QUIET
        )
        meta = report.asset_materializations_for_node("batch_report")[0].metadata
        assert meta["total_cost_usd"].value == pytest.approx(spent, abs=1e-6)
        rows = json.loads((home / "reports" / "report.json").read_text())
        assert rows[0]["cost_usd"] == pytest.approx(spent, abs=1e-6)

        # No key anywhere in what the runs recorded (metadata, logs, failures).
        for run in instance.get_runs():
            for record in instance.all_logs(run.run_id):
                text = str(record)
                assert not any(k in text for k in KEYS), record
