"""ElevenLabsVoice: the real elevenlabs SDK against the local fake (tests/fakes/elevenlabs.py).

Covers: narration with word timings that sit on the sounding audio, the WAV written, what is
sent (key header, model, settings, neighbouring sentences), cost lines, Russian on an
English-only model, pcm output; faults: 429 then success, persistent 5xx, 401 out of credits,
a response without alignment, a refused key; the key never appears in an error. Does not
cover: the studio and the voiceover asset (test_voice_studio).
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
from pytest_httpserver import HTTPServer

from factory_core.models import Language
from factory_resources.elevenlabs_voice import (
    ElevenLabsError,
    ElevenLabsVoice,
    model_for,
    token_ranges,
    word_spans_from_alignment,
)
from factory_resources.faults import ProviderError
from factory_resources.voices import display_tokens

from .fakes.elevenlabs import API_KEY, PREMADE_VOICE_ID, QUOTA_BODY, FakeElevenLabs

SENTENCES = ["Octopuses have three hearts, and blue blood.", "Two hearts pump blood — gills!"]


@pytest.fixture
def fake(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> FakeElevenLabs:
    monkeypatch.setenv("ELEVENLABS_API_KEY", API_KEY)
    return FakeElevenLabs(httpserver)


def _speak(fake: FakeElevenLabs, out: Path, sentences: list[str] = SENTENCES, **kw):  # type: ignore[no-untyped-def]
    voice = ElevenLabsVoice(base_url=fake.base_url, **kw)
    return voice.synthesize(
        sentences, Language.EN, PREMADE_VOICE_ID, {"stability": 0.4, "speed": 1.1},
        "eleven_multilingual_v2", "mp3_44100_128", out,
    )  # fmt: skip


def _read(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (1, 2)
        rate = wav.getframerate()
        return np.frombuffer(wav.readframes(wav.getnframes()), "<i2").astype(float), rate


def test_narration_with_word_timings_on_the_audio(fake: FakeElevenLabs, tmp_path: Path) -> None:
    out = tmp_path / "voice.wav"
    spoken, lines = _speak(fake, out)
    audio, rate = _read(out)
    assert rate == 44100 == spoken.sample_rate
    assert spoken.duration_s == pytest.approx(len(audio) / rate, abs=0.002)
    assert (spoken.provider, spoken.voice) == ("elevenlabs", PREMADE_VOICE_ID)

    # One timing per displayed token (the captions' words), in order, inside the audio.
    assert [w.word for w in spoken.words] == [t for s in SENTENCES for t in display_tokens(s)]
    assert "blood —" in [w.word for w in spoken.words]
    starts = [w.start for w in spoken.words]
    assert starts == sorted(starts)
    assert all(0 <= w.start < w.end <= spoken.duration_s for w in spoken.words)
    # The timings sit on the sound: every word is loud, the pause between sentences silent.
    first, second = spoken.sentences
    assert first.end < second.start == pytest.approx(first.end + 0.3, abs=0.002)
    pause = audio[int(first.end * rate) + 50 : int(second.start * rate) - 50]
    assert np.abs(pause).max() < 50
    for word in spoken.words:
        inside = audio[int(word.start * rate) : int(word.end * rate)]
        assert np.sqrt(np.mean(inside**2)) > 1000, word
    assert [w.sentence_index for w in spoken.words][-1] == 1

    # What went over the wire.
    calls = fake.calls("tts")
    assert len(calls) == 2
    assert all(c.headers["xi-api-key"] == API_KEY for c in calls)
    assert calls[0].path == f"/v1/text-to-speech/{PREMADE_VOICE_ID}/with-timestamps"
    assert calls[0].query["output_format"] == "mp3_44100_128"
    assert calls[0].json["text"] == SENTENCES[0]
    assert calls[0].json["model_id"] == "eleven_multilingual_v2"
    assert calls[0].json["voice_settings"] == {"stability": 0.4, "speed": 1.1}
    assert calls[0].json["next_text"] == SENTENCES[1] and "previous_text" not in calls[0].json
    assert calls[1].json["previous_text"] == SENTENCES[0] and "next_text" not in calls[1].json

    (line,) = lines
    assert (line.provider, line.model, line.unit) == ("elevenlabs", "eleven_multilingual_v2",
                                                      "character")  # fmt: skip
    assert line.units == sum(len(s) for s in SENTENCES)
    assert line.amount_usd == pytest.approx(line.units * 0.30e-3)


def test_russian_on_an_english_only_model_uses_multilingual(
    fake: FakeElevenLabs, tmp_path: Path
) -> None:
    voice = ElevenLabsVoice(base_url=fake.base_url)
    sentences = ["Почему небо голубое?", "Свет рассеивается в воздухе."]
    spoken, lines = voice.synthesize(
        sentences, Language.RU, PREMADE_VOICE_ID, {}, "eleven_flash_v2", "pcm_24000",
        tmp_path / "ru.wav",
    )  # fmt: skip
    assert fake.calls("tts")[0].json["model_id"] == "eleven_multilingual_v2"
    assert "voice_settings" not in fake.calls("tts")[0].json  # unset: the voice's own
    assert [w.word for w in spoken.words] == ["Почему", "небо", "голубое?", "Свет",
                                              "рассеивается", "в", "воздухе."]  # fmt: skip
    assert spoken.sample_rate == 24000
    assert lines[0].model == "eleven_multilingual_v2"
    assert model_for(Language.EN, "eleven_flash_v2") == "eleven_flash_v2"


def test_rate_limit_is_retried_after_retry_after(fake: FakeElevenLabs, tmp_path: Path) -> None:
    fake.fail_once("tts", 429, {"detail": {"status": "too_many_concurrent_requests",
                                           "message": "Too many requests"}},
                   headers={"retry-after": "1"})  # fmt: skip
    spoken, _ = _speak(fake, tmp_path / "v.wav", sentences=["Hello there."])
    assert [w.word for w in spoken.words] == ["Hello", "there."]
    assert len(fake.calls("tts")) == 2  # the 429, then the retry


def test_server_errors_until_retries_run_out(fake: FakeElevenLabs, tmp_path: Path) -> None:
    fake.fail_always("tts", 503, {"detail": {"status": "system_busy",
                                             "message": "The system is busy"}})  # fmt: skip
    with pytest.raises(ElevenLabsError) as caught:
        _speak(fake, tmp_path / "v.wav", sentences=["Hello."], max_retries=1)
    error = caught.value
    assert (error.status, error.retryable) == (503, True)
    assert str(error) == (
        "elevenlabs (HTTP 503): server error after 1 retries: The system is busy (system_busy)"
    )
    assert len(fake.calls("tts")) == 2
    assert error.spent == []  # nothing was spoken, nothing billed


def test_out_of_credits_is_terminal_and_says_so(fake: FakeElevenLabs, tmp_path: Path) -> None:
    fake.fail_always("tts", 401, QUOTA_BODY)
    with pytest.raises(ProviderError) as caught:
        _speak(fake, tmp_path / "v.wav")
    error = caught.value
    assert (error.status, error.retryable) == (401, False)
    assert "out of credits: This request exceeds your quota of 10000" in error.reason
    assert "(quota_exceeded)" in error.reason
    assert "providers.voice.chain" in error.reason
    assert len(fake.calls("tts")) == 1  # never retried


def test_a_response_without_alignment_is_a_clear_error(
    fake: FakeElevenLabs, tmp_path: Path
) -> None:
    fake.malformed_tts()
    with pytest.raises(ElevenLabsError) as caught:
        _speak(fake, tmp_path / "v.wav")
    assert caught.value.reason == (
        "malformed response for sentence 1: audio or character alignment missing"
    )
    # The malformed call was still billed by the provider: the ledger must see it.
    assert [line.units for line in caught.value.spent] == [len(SENTENCES[0])]
    assert not (tmp_path / "v.wav").exists()


def test_a_failure_after_the_first_sentence_reports_what_was_spent(
    fake: FakeElevenLabs, tmp_path: Path
) -> None:
    original = fake._tts
    served = []

    def second_fails(recorded, voice_id):  # type: ignore[no-untyped-def]
        served.append(recorded)
        if len(served) == 2:
            fake.fail_always("tts", 401, QUOTA_BODY)
        return original(recorded, voice_id)

    fake._tts = second_fails  # type: ignore[method-assign]
    fake.fail_once("tts", 500, {"detail": "ignored"})  # also: a 500 before success is retried
    with pytest.raises(ElevenLabsError) as caught:
        _speak(fake, tmp_path / "v.wav", sentences=["One two.", "Three four.", "Five six."])
    assert caught.value.status == 401
    # The two sentences spoken before the failure were billed: one line for both.
    assert [line.units for line in caught.value.spent] == [len("One two.") + len("Three four.")]


def test_key_is_never_in_errors_and_missing_key_is_a_reason(
    fake: FakeElevenLabs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "sk_wrong_key_abcdef123456"
    monkeypatch.setenv("ELEVENLABS_API_KEY", wrong)
    with pytest.raises(ElevenLabsError) as caught:
        _speak(fake, tmp_path / "v.wav")
    assert caught.value.status == 401
    assert "refused: Invalid API key (invalid_api_key)" in caught.value.reason
    assert "ELEVENLABS_API_KEY" in caught.value.reason
    for text in (str(caught.value), repr(caught.value), caught.value.reason):
        assert wrong not in text
    assert fake.calls("tts")[0].headers["xi-api-key"] == wrong  # it was sent, only not shown

    voice = ElevenLabsVoice(base_url=fake.base_url)
    monkeypatch.delenv("ELEVENLABS_API_KEY")
    assert voice.available() == "no ELEVENLABS_API_KEY set"
    assert voice.available("OTHER_KEY") == "no OTHER_KEY set"
    monkeypatch.setenv("OTHER_KEY", API_KEY)
    assert voice.available("OTHER_KEY") is None
    with pytest.raises(ElevenLabsError, match="no ELEVENLABS_API_KEY set"):
        _speak(fake, tmp_path / "v.wav")


def test_unknown_voice_and_unpriced_model_are_refused(fake: FakeElevenLabs, tmp_path: Path) -> None:
    voice = ElevenLabsVoice(base_url=fake.base_url)
    with pytest.raises(ElevenLabsError, match="not found: A voice with voice_id nope"):
        voice.synthesize(["Hi."], Language.EN, "nope", {}, "eleven_multilingual_v2",
                         "mp3_44100_128", tmp_path / "v.wav")  # fmt: skip
    calls = len(fake.requests)
    with pytest.raises(ElevenLabsError, match="no price for elevenlabs eleven_v9"):
        voice.synthesize(["Hi."], Language.EN, PREMADE_VOICE_ID, {}, "eleven_v9",
                         "mp3_44100_128", tmp_path / "v.wav")  # fmt: skip
    with pytest.raises(ElevenLabsError, match="output format 'flac_1'"):
        voice.synthesize(["Hi."], Language.EN, PREMADE_VOICE_ID, {}, "eleven_multilingual_v2",
                         "flac_1", tmp_path / "v.wav")  # fmt: skip
    assert len(fake.requests) == calls  # refused before any paid call


@pytest.mark.parametrize(
    ("sentence", "characters"),
    [
        ("Hi, you — there!", list("Hi, you — there!")),
        # Normalised text ("3" spoken as "three") no longer lines up character by character.
        ("I have 3 cats.", list("I have three cats.")),
    ],
)
def test_alignment_to_display_tokens(sentence: str, characters: list[str]) -> None:
    tokens = display_tokens(sentence)
    starts = [0.1 * i for i in range(len(characters))]
    ends = [s + 0.1 for s in starts]
    spans = word_spans_from_alignment(sentence, tokens, characters, starts, ends, audio_s=1.5)
    assert len(spans) == len(tokens)
    assert [s for s, _ in spans] == sorted(s for s, _ in spans)
    assert all(0 <= s <= e <= 1.5 for s, e in spans)
    if "".join(characters) == sentence:
        # "you —": timed by its letters only, the dash adds nothing
        assert spans[1] == pytest.approx((0.4, 0.7))
    assert token_ranges("a  b —  c", ["a", "b —", "c"]) == [(0, 1), (3, 6), (8, 9)]


def test_no_server_is_a_retryable_connection_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ELEVENLABS_API_KEY", API_KEY)
    voice = ElevenLabsVoice(base_url="http://127.0.0.1:9", timeout_s=5)  # discard port: closed
    with pytest.raises(ElevenLabsError) as caught:
        voice.synthesize(["Hi."], Language.EN, PREMADE_VOICE_ID, {}, "eleven_multilingual_v2",
                         "mp3_44100_128", tmp_path / "v.wav")  # fmt: skip
    assert caught.value.retryable and caught.value.status is None
    assert caught.value.reason.startswith("connection failed: ConnectError")
    assert API_KEY not in str(caught.value)
