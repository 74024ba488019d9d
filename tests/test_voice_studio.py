"""The voice studio end to end (real files, ffmpeg decoding, the SDK against the fake), the
`factory voices` commands, and the voiceover asset choosing its voice from the channel's chain.

Covers: rejected samples (with reasons, nothing sent, no row); a clone that becomes ready with
the provider's id; list / test / set / delete including the provider calls; a provider
failure kept as `failed`; owner isolation; offline profiles without a key; the voiceover asset
on a channel with chain [elevenlabs, offline]: spoken by ElevenLabs with word timings and a
ledger row, or by the offline voice with the reason when the key is missing or credits ran
out, and a clear failure when ElevenLabs is the only entry. Does not cover: the rest of the
graph after voiceover (test_pipeline covers it for the default chain).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import wave
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
import yaml
from pytest_httpserver import HTTPServer

from factory_assets.definitions import offline_resources
from factory_assets.partitions import topics
from factory_assets.script import script
from factory_assets.voiceover import voiceover
from factory_cli.voices import register
from factory_core.models import Voiceover
from factory_core.slugs import topic_key
from factory_resources.elevenlabs_voice import ElevenLabsVoice
from factory_resources.ffmpeg import ffmpeg_exe
from factory_resources.project_db import project_engine, topic_costs
from factory_resources.store import MediaStore, default_home
from factory_resources.voice_studio import (
    SamplesRejectedError,
    VoiceNotFoundError,
    VoiceStudio,
    VoiceStudioError,
    pitch_shift,
)

from .conftest import QUIET, make_request
from .fakes.elevenlabs import API_KEY, QUOTA_BODY, FakeElevenLabs
from .test_voice_samples import speech_like


def write_wav(path: Path, signal: np.ndarray, rate: int = 24000) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes((np.clip(signal, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def good_samples(folder: Path) -> list[Path]:
    """Three takes, 12 s each (one as MP3, to go through a real decode)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = [write_wav(folder / f"take{i}.wav", speech_like(12, seed=i)) for i in (1, 2)]
    source = write_wav(folder / "take3-source.wav", speech_like(12, seed=3))
    mp3 = folder / "take3.mp3"
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-i", str(source), "-b:a", "96k",
                    str(mp3)], check=True)  # fmt: skip
    source.unlink()
    return [*files, mp3]


@pytest.fixture
def fake(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> FakeElevenLabs:
    monkeypatch.setenv("ELEVENLABS_API_KEY", API_KEY)
    return FakeElevenLabs(httpserver)


@pytest.fixture
def studio(fake: FakeElevenLabs) -> VoiceStudio:
    home = default_home()
    return VoiceStudio(project_engine(home), ElevenLabsVoice(base_url=fake.base_url), home)


def test_check_rejects_bad_samples_with_reasons(studio: VoiceStudio, tmp_path: Path) -> None:
    pauses = write_wav(tmp_path / "sample2.wav", speech_like(12, pause_share=0.65))
    phone = write_wav(tmp_path / "phone.wav", speech_like(10, rate=16000), rate=16000)
    notes = tmp_path / "notes.txt"
    notes.write_text("not audio")
    broken = tmp_path / "broken.mp3"
    broken.write_bytes(b"\x00" * 2000)
    good = good_samples(tmp_path / "good")[:1]
    report = studio.check_samples([pauses, phone, notes, broken, tmp_path / "gone.wav", *good])
    by_file = {v.file: v for v in report.samples}
    assert [v.file for v in report.samples if v.accepted] == ["take1.wav"]
    assert "trim the pauses or record again" in by_file["sample2.wav"].reasons[0]
    assert "sample rate 16000 Hz" in by_file["phone.wav"].reasons[0]
    assert "format .txt is not accepted" in by_file["notes.txt"].reasons[0]
    assert by_file["broken.mp3"].reasons == [
        "broken.mp3: not a readable audio file; export it again as wav or mp3"
    ]
    assert by_file["gone.wav"].reasons == ["gone.wav: no such file; check the path"]
    assert not report.accepted  # and 12 s is not enough in total
    assert "12 s of accepted speech in total (at least 30 s)" in report.problems[0]


def test_rejected_samples_create_nothing_and_send_nothing(
    studio: VoiceStudio, fake: FakeElevenLabs, tmp_path: Path
) -> None:
    files = good_samples(tmp_path)[:2]  # 24 s: short of 30
    with pytest.raises(SamplesRejectedError) as caught:
        studio.clone("alice", "narrator", files)
    assert "add more samples" in str(caught.value)
    assert studio.list("alice") == []
    assert fake.requests == []


def test_clone_list_test_set_delete(
    studio: VoiceStudio, fake: FakeElevenLabs, tmp_path: Path
) -> None:
    files = good_samples(tmp_path / "samples")
    record = studio.clone("alice", "narrator", files, "en", "warm and calm")
    assert record.status == "ready" and record.error is None
    # Cloning ends with a calibration phrase: the voice's pace sizes its first script.
    calibration = len(fake.calls("tts"))
    assert calibration > 0 and record.chars_per_second and 5 < record.chars_per_second < 30
    assert record.usage_count == 0  # calibration is not a use
    assert record.provider_voice_id in fake.voices
    (add,) = fake.calls("add")
    assert add.headers["xi-api-key"] == API_KEY
    assert add.form["name"] == "narrator" and add.form["description"] == "warm and calm"
    assert [(name, kind) for name, _, kind in add.files] == [
        ("take1.wav", "audio/x-wav"), ("take2.wav", "audio/x-wav"), ("take3.mp3", "audio/mpeg")
    ]  # fmt: skip
    assert [s["file"] for s in record.samples] == ["take1.wav", "take2.wav", "take3.mp3"]
    assert (studio.home / "voices" / record.id / "take3.mp3").is_file()  # kept for a retry
    assert [r.name for r in studio.list("alice")] == ["narrator"]
    with pytest.raises(VoiceStudioError, match="already has a voice named 'narrator'"):
        studio.clone("alice", "narrator", files)

    # Settings: validated, pushed to the provider, stored.
    with pytest.raises(VoiceStudioError, match="stability: Input should be less than or equal"):
        studio.update_settings("alice", "narrator", stability=1.5)
    with pytest.raises(VoiceStudioError, match="pitch: Extra inputs are not permitted"):
        studio.update_settings("alice", "narrator", pitch=2)
    assert fake.calls("settings") == []
    updated = studio.update_settings("alice", "narrator", stability=0.35, speed=1.1)
    assert updated.settings == {"stability": 0.35, "speed": 1.1}
    (push,) = fake.calls("settings")
    assert push.path == f"/v1/voices/{record.provider_voice_id}/settings/edit"
    assert push.json == {"stability": 0.35, "speed": 1.1}

    # Test phrase: spoken with the clone and its settings, counted, on the ledger.
    out = tmp_path / "test.wav"
    spoken = studio.test("alice", "narrator", "Testing one two. Three!", out)
    assert out.is_file() and spoken.words[-1].word == "Three!"
    tts = fake.calls("tts")[calibration:]
    assert {c.path for c in tts} == {
        f"/v1/text-to-speech/{record.provider_voice_id}/with-timestamps"
    }
    assert tts[0].json["voice_settings"] == {"stability": 0.35, "speed": 1.1}
    assert studio.get("alice", "narrator").usage_count == 1
    studio.record_use("alice", "narrator")
    assert studio.get("alice", "narrator").usage_count == 2

    studio.delete("alice", "narrator")
    assert fake.calls("delete")[0].path == f"/v1/voices/{record.provider_voice_id}"
    assert record.provider_voice_id not in fake.voices
    assert studio.list("alice") == []
    assert not (studio.home / "voices" / record.id).exists()


def test_provider_failure_keeps_a_failed_voice_and_a_retry_replaces_it(
    studio: VoiceStudio, fake: FakeElevenLabs, tmp_path: Path
) -> None:
    files = good_samples(tmp_path)
    fake.fail_once("add", 401, QUOTA_BODY)
    failed = studio.clone("alice", "narrator", files)
    assert failed.status == "failed" and failed.provider_voice_id is None
    assert "out of credits" in (failed.error or "")
    with pytest.raises(VoiceStudioError, match="is failed"):
        studio.test("alice", "narrator", None, tmp_path / "t.wav")
    again = studio.clone("alice", "narrator", files)
    assert again.status == "ready" and again.id != failed.id
    assert [r.status for r in studio.list("alice")] == ["ready"]
    # A voice already gone at the provider is still deleted here.
    del fake.voices[str(again.provider_voice_id)]
    studio.delete("alice", "narrator")
    assert studio.list("alice") == []


def test_one_owner_never_sees_another_owners_voices(
    studio: VoiceStudio, fake: FakeElevenLabs, tmp_path: Path
) -> None:
    alice = studio.clone("alice", "narrator", good_samples(tmp_path))
    assert studio.list("bob") == []
    assert studio.find("bob", "narrator") is None
    for action in (
        lambda: studio.get("bob", "narrator"),
        lambda: studio.delete("bob", "narrator"),
        lambda: studio.update_settings("bob", "narrator", stability=0.1),
        lambda: studio.test("bob", "narrator", None, tmp_path / "x.wav"),
    ):
        with pytest.raises(VoiceNotFoundError, match="owner 'bob' has no voice named"):
            action()
    studio.record_use("bob", "narrator")  # counts nothing for alice
    bobs = studio.create_offline("bob", "narrator", "en", speed=1.2)  # same name, own voice
    assert bobs.id != alice.id
    assert [(r.provider, r.usage_count) for r in studio.list("alice")] == [("elevenlabs", 0)]
    assert [r.provider for r in studio.list("bob")] == ["offline"]
    assert alice.provider_voice_id in fake.voices
    assert fake.calls("delete") == [] and fake.calls("settings") == []


def test_offline_profile_works_without_a_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("ELEVENLABS_API_KEY", raising=False)
    home = default_home()
    studio = VoiceStudio(project_engine(home), ElevenLabsVoice(), home)
    with pytest.raises(VoiceStudioError, match="offline voice settings: speed"):
        studio.create_offline("carol", "fast", "en", speed=2.0)
    with pytest.raises(VoiceStudioError, match="cannot clone without ElevenLabs: no ELEVEN"):
        studio.clone("carol", "clone", good_samples(tmp_path / "s"))
    plain = studio.create_offline("carol", "plain", "en")
    low = studio.create_offline("carol", "low", "en", speed=1.0, pitch=-4)
    assert low.settings == {"speed": 1.0, "pitch": -4.0}
    assert (plain.status, plain.provider, plain.provider_voice_id) == ("ready", "offline", "piper")
    a = studio.test("carol", "plain", "Hello there.", tmp_path / "plain.wav")
    b = studio.test("carol", "low", "Hello there.", tmp_path / "low.wav")
    assert a.provider == "piper" and [w.word for w in b.words] == ["Hello", "there."]
    with wave.open(str(tmp_path / "low.wav")) as shifted:
        # asetrate + atempo keep the length, so the voice's word timings still hold
        seconds = shifted.getnframes() / shifted.getframerate()
    assert seconds == pytest.approx(b.duration_s, abs=0.03)
    assert b.words[-1].end <= seconds
    faster = studio.update_settings("carol", "low", speed=1.3)
    assert faster.settings == {"speed": 1.3, "pitch": -4.0}
    assert studio.get("carol", "low").usage_count == 1
    studio.delete("carol", "low")
    assert [r.name for r in studio.list("carol")] == ["plain"]


def test_pitch_shift_moves_the_pitch_and_keeps_the_length(tmp_path: Path) -> None:
    rate = 22050
    t = np.arange(rate * 2) / rate
    path = write_wav(tmp_path / "tone.wav", 0.5 * np.sin(2 * np.pi * 440 * t), rate)
    pitch_shift(path, -12)  # an octave down
    with wave.open(str(path)) as wav:
        assert wav.getframerate() == rate
        samples = np.frombuffer(wav.readframes(wav.getnframes()), "<i2").astype(float)
    assert len(samples) == pytest.approx(rate * 2, abs=rate * 0.02)
    spectrum = np.abs(np.fft.rfft(samples))
    assert np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()] == pytest.approx(220, abs=3)


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="factory")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return int(args.func(args))


def test_cli_commands(
    fake: FakeElevenLabs, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("ELEVENLABS_BASE_URL", fake.base_url)
    bad = write_wav(tmp_path / "sample2.wav", speech_like(12, pause_share=0.65))
    assert _cli("voices", "check", str(bad)) == 2
    assert "trim the pauses" in capsys.readouterr().out
    files = [str(f) for f in good_samples(tmp_path / "s")]
    assert _cli("voices", "check", *files) == 0
    assert _cli("voices", "add", "narrator", str(bad), "--owner", "dave") == 2
    assert "nothing was sent to ElevenLabs" in capsys.readouterr().err
    assert _cli("voices", "add", "narrator", *files, "--owner", "dave") == 0
    assert _cli("voices", "add-offline", "robot", "--owner", "dave", "--speed", "1.1") == 0
    capsys.readouterr()
    assert _cli("voices", "list", "--owner", "dave", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(v["name"], v["provider"], v["status"]) for v in listed] == [
        ("narrator", "elevenlabs", "ready"), ("robot", "offline", "ready")
    ]  # fmt: skip
    assert _cli("voices", "set", "narrator", "--owner", "dave", "--stability", "7") == 2
    assert "less than or equal to 1" in capsys.readouterr().err
    assert _cli("voices", "set", "narrator", "--owner", "dave", "--no-speaker-boost") == 0
    assert fake.calls("settings")[-1].json == {"use_speaker_boost": False}
    out = tmp_path / "robot.wav"
    assert _cli("voices", "test", "robot", "--owner", "dave", "--out", str(out)) == 0
    assert out.is_file()
    assert _cli("voices", "test", "ghost", "--owner", "dave") == 2
    assert "owner 'dave' has no voice named 'ghost'" in capsys.readouterr().err
    fake.fail_always("delete", 500, {"detail": {"status": "error", "message": "boom"}})
    assert _cli("voices", "delete", "narrator", "--owner", "dave") == 1  # provider failed
    assert API_KEY not in capsys.readouterr().err
    assert _cli("voices", "delete", "robot", "--owner", "dave") == 0


# --- the voiceover asset -------------------------------------------------------------------


def _channel(home: Path, chain: list[str]) -> None:
    folder = home / "channels" / "studio"
    folder.mkdir(parents=True, exist_ok=True)
    profile = {"owner": "erin", "providers": {"voice": {"chain": chain, "voice": "narrator"}}}
    (folder / "channel.yaml").write_text(yaml.safe_dump(profile), encoding="utf-8")


def _run(home: Path, instance: dg.DagsterInstance, key: str, fake: FakeElevenLabs,
         assets: list) -> dg.ExecuteInProcessResult:  # type: ignore[type-arg]  # fmt: skip
    resources = {**offline_resources(str(home)),
                 "elevenlabs": ElevenLabsVoice(base_url=fake.base_url, max_retries=0)}  # fmt: skip
    return dg.materialize(assets, partition_key=key, resources=resources, instance=instance,
                          raise_on_error=False, run_config=QUIET,
                          selection=[a.key for a in assets if a is not script] or None)  # fmt: skip


def test_voiceover_follows_the_channels_chain(
    fake: FakeElevenLabs, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    home = default_home()
    _channel(home, ["elevenlabs", "offline"])
    studio = VoiceStudio(project_engine(home), ElevenLabsVoice(base_url=fake.base_url), home)
    clone = studio.clone("erin", "narrator", good_samples(tmp_path))
    calibration = len(fake.calls("tts"))
    studio.update_settings("erin", "narrator", stability=0.5)
    # The user's own narration: the script stage then only calibrates (fast), no refits.
    narration = (
        "Octopuses have three hearts. Two pump blood through the gills, one through the body. "
        "Their blood is blue!"
    )
    request = make_request("studio", "Octopus hearts", duration_s=15, script=narration)
    key = topic_key("studio", request.topic)
    MediaStore(home=str(home)).save_request(request)
    folder = home / "topics" / key

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(topics.name, [key])
        assert _run(home, instance, key, fake, [script]).success

        # 1. ElevenLabs speaks with the studio voice.
        result = _run(home, instance, key, fake, [script, voiceover])
        assert result.success
        meta = result.asset_materializations_for_node("voiceover")[0].metadata
        spoken = Voiceover.model_validate_json((folder / "voiceover.json").read_text())
        assert spoken.provider == meta["provider"].value == "elevenlabs"
        assert spoken.voice == "narrator"
        assert meta["provider_chain"].value == "elevenlabs → offline"
        assert meta["fallbacks"].value == "none"
        sentences = [s.text for s in spoken.sentences]
        assert meta["characters"].value == sum(len(s) for s in sentences)
        assert spoken.words and all(0 <= w.start <= w.end <= spoken.duration_s
                                    for w in spoken.words)  # fmt: skip
        assert [w.start for w in spoken.words] == sorted(w.start for w in spoken.words)
        with wave.open(str(folder / "voice.wav")) as wav:
            assert wav.getnframes() / wav.getframerate() == pytest.approx(
                spoken.duration_s, abs=0.01
            )
        tts = fake.calls("tts")[calibration:]
        assert {c.path for c in tts} == {
            f"/v1/text-to-speech/{clone.provider_voice_id}/with-timestamps"
        }
        assert tts[0].json["voice_settings"] == {"stability": 0.5}
        # The narration taught the voice its pace again (a blend with the calibration).
        assert studio.get("erin", "narrator").chars_per_second != clone.chars_per_second
        (line,) = topic_costs(project_engine(), key)
        assert (line.provider, line.unit, line.units) == ("elevenlabs", "character",
                                                          meta["characters"].value)  # fmt: skip
        assert meta["cost_usd"].value == pytest.approx(line.amount_usd) and line.amount_usd > 0
        assert studio.get("erin", "narrator").usage_count == 1

        # 2. No key: the offline voice speaks, and the reason is on record.
        monkeypatch.delenv("ELEVENLABS_API_KEY")
        result = _run(home, instance, key, fake, [script, voiceover])
        assert result.success
        meta = result.asset_materializations_for_node("voiceover")[0].metadata
        assert meta["provider"].value == "piper"
        assert meta["fallbacks"].value == "elevenlabs: no ELEVENLABS_API_KEY set"
        assert meta["cost_usd"].value == 0.0
        assert len(fake.calls("tts")) == calibration + len(tts)  # nothing sent

        # 3. Out of credits: offline again, with the provider's words.
        monkeypatch.setenv("ELEVENLABS_API_KEY", API_KEY)
        fake.fail_always("tts", 401, QUOTA_BODY)
        result = _run(home, instance, key, fake, [script, voiceover])
        meta = result.asset_materializations_for_node("voiceover")[0].metadata
        assert meta["provider"].value == "piper"
        assert meta["fallbacks"].value.startswith(
            "elevenlabs (HTTP 401): out of credits: This request exceeds your quota"
        )
        assert API_KEY not in meta["fallbacks"].value

        # 4. ElevenLabs alone: no fallback, a clear failure that is not retried.
        _channel(home, ["elevenlabs"])
        result = _run(home, instance, key, fake, [script, voiceover])
        assert not result.success
        failure = next(e for e in result.all_events if e.is_step_failure)
        message = failure.step_failure_data.error.message  # type: ignore[union-attr]
        assert "no voice in the chain could speak; elevenlabs (HTTP 401):" in message
        assert "out of credits" in message
        assert len(topic_costs(project_engine(), key)) == 1  # failed calls cost nothing
    assert os.environ["ELEVENLABS_API_KEY"] == API_KEY
