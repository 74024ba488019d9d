"""Transcription: the packaged whisper-base on real synthesized speech, the OpenAI API path
against a protocol-faithful fake, and the narration check on rendered videos.

The model is assembled and loaded once for the module; phrases are 4-5 s, so each local
transcription takes about a second on 2 cores.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import time
import wave
from pathlib import Path

import dagster as dg
import pytest
from pytest_httpserver import HTTPServer

from factory_assets.transcript_checks import (
    listen_to_video,
    narration_timings,
    narration_transcript,
)
from factory_core.models import Language, Script, TranscriptionSettings, Voiceover
from factory_core.text import split_sentences
from factory_core.wer import (
    NARRATION_THRESHOLDS,
    matched_words,
    normalise_words,
    sentence_spans,
    word_error_rate,
)
from factory_resources.faults import ProviderError
from factory_resources.transcribers import (
    LOCAL_MODEL,
    Transcriber,
    assemble_model,
    default_model_dir,
    load_model,
)
from factory_resources.voices import OfflineVoice, forget_spoken
from tests.fakes.openai_audio import FakeOpenAIAudio, fixed, local_whisper

EN_SENTENCES = [
    "Octopuses have three hearts and blue blood.",
    "Two of the hearts pump blood to the gills.",
]
RU_SENTENCES = ["У осьминога три сердца и голубая кровь.", "Два сердца качают кровь к жабрам."]
LOCAL = TranscriptionSettings(provider="local")
API = TranscriptionSettings(provider="openai", model="whisper-1", api_key_env="TEST_OPENAI_KEY")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return assemble_model(tmp_path_factory.mktemp("models") / LOCAL_MODEL)


@pytest.fixture(scope="module")
def transcriber(model_dir: Path) -> Transcriber:
    return Transcriber(model_dir=str(model_dir))


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> dict[Language, tuple[Path, Voiceover]]:
    """The project's own offline voices saying two sentences each, with their word timings."""
    folder = tmp_path_factory.mktemp("speech")
    voice = OfflineVoice()
    out: dict[Language, tuple[Path, Voiceover]] = {}
    for language, sentences in ((Language.EN, EN_SENTENCES), (Language.RU, RU_SENTENCES)):
        wav = folder / f"{language}.wav"
        out[language] = (wav, voice.synthesize(sentences, language, 1.0, wav))
    return out


def _timing_gaps(spoken: Voiceover, heard: list, language: Language) -> list[float]:  # type: ignore[type-arg]
    pairs = matched_words([w.word for w in spoken.words], [w.word for w in heard], language)
    return [abs(spoken.words[i].start - heard[j].start) for i, j in pairs]


# ---------------------------------------------------------------------------------------------
# The packaged model
# ---------------------------------------------------------------------------------------------


def test_model_is_assembled_once_under_factory_home_and_repaired_when_damaged() -> None:
    target = default_model_dir()
    assert target.is_relative_to(Path(os.environ["FACTORY_HOME"]))
    folder = Transcriber().local_model_dir()
    assert folder == target
    model = folder / "model.bin"
    size = model.stat().st_size
    assert size > 100_000_000
    # Exactly the model's files: no temporary ones left behind.
    assert {p.name for p in folder.iterdir()} == {
        "model.bin", "config.json", "tokenizer.json", "vocabulary.txt",
    }  # fmt: skip
    stamp = model.stat().st_mtime_ns
    assemble_model(target)
    assert model.stat().st_mtime_ns == stamp, "a complete model is not written again"
    with model.open("r+b") as handle:  # a crash mid-copy by an older version, a full disk...
        handle.truncate(size // 2)
    assemble_model(target)
    assert model.stat().st_size == size


def test_model_loads_once_per_process(model_dir: Path) -> None:
    assert load_model(model_dir, 2) is load_model(model_dir, 2)


def test_a_model_dir_without_a_model_is_a_clear_error(tmp_path: Path) -> None:
    wav = tmp_path / "a.wav"
    wav.write_bytes(b"")
    with pytest.raises(
        ProviderError, match=r"faster-whisper: no local model: .* holds no model\.bin"
    ):
        Transcriber(model_dir=str(tmp_path)).transcribe(wav, Language.EN, LOCAL)


# ---------------------------------------------------------------------------------------------
# Local whisper on real speech
# ---------------------------------------------------------------------------------------------


def test_english_speech_is_transcribed_with_word_timings(
    transcriber: Transcriber, speech: dict[Language, tuple[Path, Voiceover]]
) -> None:
    wav, spoken = speech[Language.EN]
    transcript, costs = transcriber.transcribe(wav, Language.EN, LOCAL)
    assert costs == []
    assert (transcript.provider, transcript.model, transcript.language) == (
        "faster-whisper", LOCAL_MODEL, Language.EN,
    )  # fmt: skip
    assert transcript.duration_s == pytest.approx(spoken.duration_s, abs=0.05)
    report = word_error_rate(" ".join(EN_SENTENCES), transcript.text, Language.EN)
    assert report.wer < 0.2, report.worst_words()  # measured 0.00
    starts = [w.start for w in transcript.words]
    assert starts == sorted(starts)
    assert all(w.end >= w.start for w in transcript.words)
    assert all(0.0 <= w.end <= transcript.duration_s + 0.05 for w in transcript.words)
    assert all(w.probability is not None and 0 <= w.probability <= 1 for w in transcript.words)
    gaps = _timing_gaps(spoken, transcript.words, Language.EN)
    assert len(gaps) >= len(spoken.words) - 2
    assert statistics.mean(gaps) <= 0.3  # measured 0.12 s against piper's own timings


def _decoder_loop(text: str, run: int = 5) -> bool:
    """The same word (or number) `run` times in a row: whisper's repetition loop."""
    words = re.findall(r"\w+", text.lower())
    return any(len(set(words[i : i + run])) == 1 for i in range(len(words) - run + 1))


def test_russian_espeak_speech_is_transcribed_within_the_measured_bound(
    transcriber: Transcriber, speech: dict[Language, tuple[Path, Voiceover]], tmp_path: Path
) -> None:
    wav, spoken = speech[Language.RU]
    transcript, _ = transcriber.transcribe(wav, Language.RU, LOCAL)
    if _decoder_loop(transcript.text):
        # whisper-base at temperature 0 now and then falls into a repetition loop on one espeak
        # rendering ("пять пять пять…"); espeak's audio differs a little per call, so a second
        # rendering measures the recognizer, not that one loop. Only this pattern is retried.
        again = tmp_path / "ru-again.wav"
        forget_spoken()  # a new take, not the remembered one
        OfflineVoice().synthesize(RU_SENTENCES, Language.RU, 1.0, again)
        transcript, _ = transcriber.transcribe(again, Language.RU, LOCAL)
    report = word_error_rate(" ".join(RU_SENTENCES), transcript.text, Language.RU)
    # whisper-base mishears the robotic espeak voice ("жабрам" as "кябром"); espeak's audio also
    # differs a little from call to call. Over repeated syntheses: WER 0.46-0.69, CER 0.20-0.30,
    # a decoder loop now and then ("серцога-я-кроф-я-кроф", CER 0.49 in one full-suite run).
    # The bound is the listening check's own: what passes here passes there.
    assert report.cer <= NARRATION_THRESHOLDS[Language.RU].max, (report.cer, transcript.text)
    assert "три" in normalise_words(transcript.text, Language.RU), transcript.text
    starts = [w.start for w in transcript.words]
    assert starts == sorted(starts)
    gaps = _timing_gaps(spoken, transcript.words, Language.RU)
    assert gaps and statistics.mean(gaps) <= 0.3


def test_local_transcription_is_deterministic(
    transcriber: Transcriber, speech: dict[Language, tuple[Path, Voiceover]]
) -> None:
    # No sampled temperature fallback: a check must not flip between runs on the same video.
    wav, _ = speech[Language.RU]
    first, _ = transcriber.transcribe(wav, Language.RU, LOCAL)
    again, _ = transcriber.transcribe(wav, Language.RU, LOCAL)
    assert first.text == again.text


def test_missing_or_unreadable_audio_is_a_provider_error(
    transcriber: Transcriber, tmp_path: Path
) -> None:
    with pytest.raises(ProviderError, match="does not exist"):
        transcriber.transcribe(tmp_path / "nope.wav", Language.EN, LOCAL)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF not really a wave file" * 10)
    with pytest.raises(ProviderError, match=r"faster-whisper: could not transcribe junk\.wav"):
        transcriber.transcribe(junk, Language.EN, LOCAL)


def test_narration_timings_give_one_sentence_index_per_heard_sentence(
    transcriber: Transcriber, speech: dict[Language, tuple[Path, Voiceover]]
) -> None:
    wav, spoken = speech[Language.EN]
    transcript, timings, costs = narration_transcript(transcriber, wav, Language.EN, LOCAL)
    assert costs == [] and timings == narration_timings(transcriber, wav, Language.EN, LOCAL)
    assert [t.word for t in timings][-2:] == ["the", "gills."]
    # Sentences are the recognizer's: piper's audio varies a little from run to run and whisper
    # then writes "blood." or "blood," - either way the indices follow its punctuation.
    spans = sentence_spans(timings)
    assert [s.text for s in spans] == split_sentences(transcript.text)
    assert [s.index for s in spans] == list(range(len(spans)))
    for before, after in itertools.pairwise(timings):
        assert after.start >= before.start
        if after.sentence_index != before.sentence_index:
            assert before.word.endswith((".", "!", "?"))
    if len(spans) == 2:
        assert spans[1].start == pytest.approx(spoken.sentences[1].start, abs=0.3)


# ---------------------------------------------------------------------------------------------
# The OpenAI API path, against the fake
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def fake(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAIAudio:
    server = FakeOpenAIAudio(httpserver)
    monkeypatch.setenv(API.api_key_env, server.api_key)
    return server


def _api(fake: FakeOpenAIAudio, **config: object) -> Transcriber:
    return Transcriber(openai_base_url=fake.base_url, **config)  # type: ignore[arg-type]


def _assert_no_key(error: BaseException, fake: FakeOpenAIAudio) -> None:
    assert fake.api_key not in str(error)
    assert fake.api_key not in repr(error.args)


def test_api_transcribes_real_speech_with_bare_words_and_a_cost_line(
    fake: FakeOpenAIAudio, model_dir: Path, speech: dict[Language, tuple[Path, Voiceover]]
) -> None:
    fake.engine = local_whisper(load_model(model_dir, 2))  # the fake really listens
    wav, spoken = speech[Language.EN]
    transcript, costs = _api(fake).transcribe(wav, Language.EN, API)
    sent = fake.uploads[-1]
    assert (sent.model, sent.response_format, sent.granularities, sent.language) == (
        "whisper-1", "verbose_json", ["word", "segment"], "en",
    )  # fmt: skip
    assert (sent.filename, sent.content_type) == ("en.wav", "audio/wav")
    assert sent.size == wav.stat().st_size
    assert (transcript.provider, transcript.model) == ("openai-whisper", "whisper-1")
    assert word_error_rate(" ".join(EN_SENTENCES), transcript.text, Language.EN).wer < 0.2
    words = [w.word for w in transcript.words]
    assert words[1:4] == ["have", "three", "hearts"]
    assert all(w.isalnum() for w in words), "whisper-1 words carry no punctuation"
    assert statistics.mean(_timing_gaps(spoken, transcript.words, Language.EN)) <= 0.3
    # Billed per second of audio, rounded up, at the dated list price.
    (line,) = costs
    assert (line.provider, line.model, line.unit) == ("openai", "whisper-1", "audio_second")
    with wave.open(str(wav)) as clip:
        seconds = math.ceil(clip.getnframes() / clip.getframerate())  # about 4.7 s of speech
    assert line.units == seconds
    assert line.amount_usd == pytest.approx(seconds * 0.006 / 60)
    # Sentences and punctuation come back from the text even though API words are bare.
    heard, timings, _ = narration_transcript(_api(fake), wav, Language.EN, API)
    assert [s.text for s in sentence_spans(timings)] == split_sentences(heard.text)
    assert timings[6].word in {"blood.", "blood,"}


def test_api_waits_out_a_rate_limit_and_succeeds(
    fake: FakeOpenAIAudio, speech: dict[Language, tuple[Path, Voiceover]]
) -> None:
    fake.engine = fixed(" ".join(EN_SENTENCES), duration_s=4.7)
    fake.rate_limit_once(retry_after="1")
    started = time.perf_counter()
    transcript, costs = _api(fake).transcribe(speech[Language.EN][0], Language.EN, API)
    assert time.perf_counter() - started >= 0.9  # Retry-After honoured
    assert [u.retry_count for u in fake.uploads] == ["0", "1"]
    assert transcript.text.startswith("Octopuses") and len(costs) == 1


def test_api_outage_gives_up_after_the_retries_with_the_providers_words(
    fake: FakeOpenAIAudio, speech: dict[Language, tuple[Path, Voiceover]]
) -> None:
    fake.fail_always(500)
    with pytest.raises(ProviderError) as caught:
        _api(fake, max_retries=2).transcribe(speech[Language.EN][0], Language.EN, API)
    error = caught.value
    assert (error.provider, error.status, error.retryable) == ("openai-whisper", 500, True)
    assert "server had an error" in str(error)
    assert len(fake.uploads) == 3  # the call and two retries
    _assert_no_key(error, fake)


def test_api_malformed_response_is_a_clear_error(
    fake: FakeOpenAIAudio, speech: dict[Language, tuple[Path, Voiceover]]
) -> None:
    fake.malformed_always()
    with pytest.raises(ProviderError, match="malformed transcription response") as caught:
        _api(fake).transcribe(speech[Language.EN][0], Language.EN, API)
    assert not caught.value.retryable
    assert len(fake.uploads) == 1
    _assert_no_key(caught.value, fake)


def test_api_refusing_a_large_upload_is_a_clear_error(
    fake: FakeOpenAIAudio, speech: dict[Language, tuple[Path, Voiceover]]
) -> None:
    fake.max_upload_bytes = 100_000  # the 4.7 s WAV is ~200 kB
    with pytest.raises(ProviderError) as caught:
        # Our own limit says it fits: the server's 413 must still read clearly.
        _api(fake).transcribe(speech[Language.EN][0], Language.EN, API)
    assert caught.value.status == 413 and not caught.value.retryable
    assert "Maximum content size limit (100000) exceeded" in str(caught.value)


def test_api_upload_over_the_limit_is_sent_as_small_mp3(
    fake: FakeOpenAIAudio, model_dir: Path, speech: dict[Language, tuple[Path, Voiceover]]
) -> None:
    fake.engine = local_whisper(load_model(model_dir, 2))
    fake.max_upload_bytes = 100_000
    transcript, _ = _api(fake, max_upload_bytes=100_000).transcribe(
        speech[Language.EN][0], Language.EN, API
    )
    sent = fake.uploads[-1]
    assert (sent.filename, sent.content_type) == ("en.mp3", "audio/mpeg")
    assert sent.size < 40_000
    assert word_error_rate(" ".join(EN_SENTENCES), transcript.text, Language.EN).wer < 0.2


def test_api_audio_too_long_even_as_mp3_is_refused_before_sending(
    fake: FakeOpenAIAudio, speech: dict[Language, tuple[Path, Voiceover]]
) -> None:
    with pytest.raises(ProviderError, match="too long for one request"):
        _api(fake, max_upload_bytes=1_000).transcribe(speech[Language.EN][0], Language.EN, API)
    assert fake.uploads == []


def test_api_without_a_key_names_the_variable_and_sends_nothing(
    fake: FakeOpenAIAudio,
    monkeypatch: pytest.MonkeyPatch,
    speech: dict[Language, tuple[Path, Voiceover]],
) -> None:
    monkeypatch.delenv(API.api_key_env)
    with pytest.raises(ProviderError, match=r"\$TEST_OPENAI_KEY is not set"):
        _api(fake).transcribe(speech[Language.EN][0], Language.EN, API)
    assert fake.uploads == []


def test_a_rejected_key_is_never_repeated_in_the_error(
    fake: FakeOpenAIAudio,
    monkeypatch: pytest.MonkeyPatch,
    speech: dict[Language, tuple[Path, Voiceover]],
) -> None:
    secret = "sk-proj-Secret0123456789abcdef"
    monkeypatch.setenv(API.api_key_env, secret)  # the fake echoes a wrong key whole
    with pytest.raises(ProviderError) as caught:
        _api(fake).transcribe(speech[Language.EN][0], Language.EN, API)
    assert caught.value.status == 401 and "invalid_api_key" in str(caught.value)
    assert secret not in str(caught.value) and secret not in caught.value.reason
    assert fake.uploads[-1].authorization == f"Bearer {secret}"  # it was sent, only not shown


def test_api_channel_base_url_wins_and_unknown_models_are_still_on_the_ledger(
    fake: FakeOpenAIAudio, speech: dict[Language, tuple[Path, Voiceover]]
) -> None:
    fake.engine = fixed("Hello there.", duration_s=1.2)
    settings = API.model_copy(update={"base_url": fake.base_url, "model": "my-whisper"})
    transcript, (line,) = Transcriber(openai_base_url="http://127.0.0.1:9/v1").transcribe(
        speech[Language.EN][0], Language.EN, settings
    )
    assert transcript.model == "my-whisper" and fake.uploads[-1].model == "my-whisper"
    assert (line.units, line.unit_price_usd, line.amount_usd) == (2, 0.0, 0.0)


# ---------------------------------------------------------------------------------------------
# The narration check on rendered videos
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_narration_check_passes_on_rendered_videos_in_both_languages(rendered) -> None:  # type: ignore[no-untyped-def]
    """The topic job ran the listening check after each video (see tests/conftest.py)."""
    for key, request in rendered.requests.items():
        evaluations = rendered.results[key].get_asset_check_evaluations()
        (evaluation,) = [e for e in evaluations if e.check_name == "narration_matches_script"]
        meta = {k: v.value for k, v in evaluation.metadata.items()}
        assert evaluation.passed, meta
        assert evaluation.severity == dg.AssetCheckSeverity.WARN
        assert meta["provider"] == "faster-whisper" and meta["model"] == LOCAL_MODEL
        assert meta["problems"] == "none"
        if request.language == Language.EN:
            assert meta["wer"] <= 0.1  # measured 0.00-0.02
            # Captions are timed from piper's own word timings: whisper hears them there too.
            assert meta["caption_offset_s"] <= 0.3  # measured 0.12-0.15 s
        else:
            assert meta["cer"] <= 0.65  # measured 0.28-0.57 on 15-45 s videos
        assert {"substitutions", "deletions", "insertions", "worst_words", "transcript",
                "seconds"} <= meta.keys()  # fmt: skip


OTHER_NARRATION = {
    Language.EN: [
        "Bananas are berries, but strawberries are not.",
        "Botanists sort fruit by seeds.",
    ],
    Language.RU: ["Бананы — это ягоды, а клубника нет.", "Ботаники делят плоды по семенам."],
}


@pytest.mark.slow
@pytest.mark.parametrize("language", [Language.EN, Language.RU])
def test_narration_check_fails_when_the_video_says_something_else(
    rendered,  # type: ignore[no-untyped-def]
    transcriber: Transcriber,
    tmp_path: Path,
    language: Language,
) -> None:
    key = next(k for k, r in rendered.requests.items() if r.language == language)
    folder = tmp_path / "topic"
    shutil.copytree(rendered.topic_dir(key), folder)
    written = Script.model_validate_json((folder / "script.json").read_text())
    other = OTHER_NARRATION[language]
    scenes = [s.model_copy(update={"sentences": other if s.index == 0 else []})
              for s in written.scenes]  # fmt: skip
    (folder / "script.json").write_text(
        json.dumps(written.model_copy(update={"scenes": scenes}).model_dump(mode="json"))
    )
    metadata, verdict, costs = listen_to_video(folder, transcriber, LOCAL)
    assert not verdict.passed, metadata
    assert verdict.metric == ("wer" if language == Language.EN else "cer")
    assert metadata["insertions"] > 20 and costs == []
    assert not (folder / ".narration-check.wav").exists()


class _ScriptedWhisper:
    """Stands in for the WhisperModel: each reading returns the next scripted (text, gzip
    compression ratio), "" for a reading that heard nothing, and remembers what it was given."""

    def __init__(self, *readings: tuple[str, float]) -> None:
        self.readings = list(readings)
        self.heard: list[tuple[Path, dict[str, object]]] = []

    def transcribe(self, audio: str, **options: object) -> tuple[object, object]:
        from types import SimpleNamespace

        path = Path(audio)
        assert path.is_file()  # the band-limited copy exists while it is read
        self.heard.append((path, options))
        text, ratio = self.readings.pop(0)
        words = [SimpleNamespace(word=f" {w}", start=i * 0.5, end=i * 0.5 + 0.4, probability=0.9)
                 for i, w in enumerate(text.split())]  # fmt: skip
        segments = (
            [SimpleNamespace(text=text, compression_ratio=ratio, words=words)] if text else []
        )
        return iter(segments), SimpleNamespace(duration=2.0)


def _wav(tmp_path: Path, source: str) -> Path:
    from factory_resources.ffmpeg import ffmpeg_exe

    wav = tmp_path / "heard.wav"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", source, "-t", "2",
                    "-ar", "16000", "-ac", "1", str(wav)], check=True)  # fmt: skip
    return wav


@pytest.mark.parametrize(
    ("readings", "kept", "reads"),
    [
        # A loop (whisper's own sign: the text compresses more than 2.4x) is read again through
        # the speech band, and the second reading kept when it loops less.
        ([("ти ти ти ти ти ти", 6.3), ("небо голубое днём", 1.2)], "небо голубое днём", 2),
        # A second reading that loops as badly is not taken.
        ([("один один один", 3.0), ("два два два два", 5.0)], "один", 2),
        # Nothing heard though the audio is not silent (a window dropped as silence): read
        # again, without dropping windows.
        ([("", 0.0), ("небо голубое днём", 1.5)], "небо голубое днём", 2),
        # No loop: one reading.
        ([("небо голубое днём", 1.4)], "небо голубое днём", 1),
    ],
)
def test_a_reading_that_loops_or_hears_nothing_is_read_again_through_the_speech_band(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    readings: list[tuple[str, float]],
    kept: str,
    reads: int,
) -> None:
    import factory_resources.transcribers as transcribers

    whisper = _ScriptedWhisper(*readings)
    monkeypatch.setattr(transcribers, "load_model", lambda folder, threads: whisper)
    (tmp_path / "model.bin").write_bytes(b"")  # local_model_dir only checks it is there
    tone = _wav(tmp_path, "sine=f=440")
    transcript, costs = Transcriber(model_dir=str(tmp_path)).transcribe(tone, Language.RU, LOCAL)
    assert transcript.text.startswith(kept) and costs == []
    assert len(whisper.heard) == reads and whisper.heard[0] == (tone, whisper.heard[0][1])
    assert "no_speech_threshold" not in whisper.heard[0][1]  # the first reading is whisper's own
    if reads == 2:
        band, options = whisper.heard[1]
        assert band.name == "speech-band.wav" and options["no_speech_threshold"] is None
        assert not band.exists()  # the copy is gone afterwards


def test_silence_that_heard_nothing_is_not_read_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without the silence bar a second reading of silence would invent words; nothing heard
    is the right answer there (and callers say "is it silent?")."""
    import factory_resources.transcribers as transcribers

    whisper = _ScriptedWhisper(("", 0.0), ("Продолжение следует", 1.1))
    monkeypatch.setattr(transcribers, "load_model", lambda folder, threads: whisper)
    (tmp_path / "model.bin").write_bytes(b"")
    silence = _wav(tmp_path, "anullsrc=r=16000:cl=mono")
    transcript, _ = Transcriber(model_dir=str(tmp_path)).transcribe(silence, Language.RU, LOCAL)
    assert transcript.text == "" and transcript.words == []
    assert len(whisper.heard) == 1
