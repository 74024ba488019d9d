"""The local sample check (factory_core.voice_samples) on numpy-made signals: speech-like noise
bursts with pauses, and the faults a real recording has (long pauses, clipping, too quiet, too
short, low sample rate). Pure: no files, no ffmpeg; decoding is covered in test_voice_studio.
"""

from __future__ import annotations

import numpy as np
import pytest

from factory_core import voice_samples as vs


def speech_like(
    seconds: float,
    rate: int = 24000,
    *,
    level: float = 0.3,
    pause_share: float = 0.2,
    seed: int = 0,
) -> np.ndarray:
    """Float mono in [-1, 1]: 'syllables' of shaped noise with a buzz, separated by pauses, so
    that about `pause_share` of the time is silent."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    out = np.zeros(n)
    t = 0.0
    syllable = 0.25
    gap = syllable * pause_share / (1 - pause_share)
    while t < seconds:
        i, j = int(t * rate), min(n, int((t + syllable) * rate))
        if j <= i:
            break
        k = np.arange(j - i) / rate
        voice = 0.6 * np.sin(2 * np.pi * 140 * k) + 0.4 * rng.standard_normal(j - i)
        out[i:j] = voice * np.hanning(j - i) ** 0.3
        t += syllable + gap
    return np.clip(out * level, -1, 1)


def test_good_samples_pass() -> None:
    verdicts = [
        vs.check_sample(f"take{i}.wav", 500_000, speech_like(12, seed=i), 24000) for i in range(3)
    ]
    report = vs.build_report(verdicts)
    assert all(v.accepted and v.reasons == [] for v in verdicts), report.summary()
    assert report.accepted
    assert report.total_accepted_s == pytest.approx(36, abs=0.1)
    assert 0.1 < verdicts[0].silence_share < 0.4
    assert -35 < verdicts[0].speech_dbfs < -8
    assert "samples accepted" in report.summary()


def test_mostly_silence_is_rejected_with_what_to_do() -> None:
    verdict = vs.check_sample("sample2.wav", 100_000, speech_like(12, pause_share=0.65), 24000)
    assert not verdict.accepted
    assert verdict.silence_share > 0.6
    (reason,) = verdict.reasons
    assert reason.startswith("sample2.wav: 6")
    assert "silence (at most 40%); trim the pauses or record again" in reason


def test_clipping_is_rejected_per_channel() -> None:
    clean = speech_like(10)
    hot = np.clip(clean * 8, -1, 1)  # a gain mistake: peaks flattened at full scale
    stereo = np.stack([clean, hot], axis=1)
    verdict = vs.check_sample("hot.wav", 100_000, stereo, 24000)
    assert not verdict.accepted
    assert verdict.clipped_share > 0.001
    assert any("clipped" in r and "turn the input gain down" in r for r in verdict.reasons)
    # A handful of full-scale peaks is not clipping.
    few = clean.copy()
    few[:10] = 1.0
    assert vs.check_sample("ok.wav", 100_000, few, 24000).accepted


def test_integer_pcm_reads_the_same_as_float() -> None:
    signal = speech_like(8, seed=3)
    pcm = (signal * 32767).astype(np.int16)
    as_float = vs.check_sample("a.wav", 1, signal, 24000)
    as_int = vs.check_sample("a.wav", 1, pcm, 24000)
    assert as_int.speech_dbfs == pytest.approx(as_float.speech_dbfs, abs=0.1)
    assert as_int.silence_share == pytest.approx(as_float.silence_share, abs=0.01)
    full_scale = np.full(24000 * 6, -32768, dtype=np.int16)
    assert vs.check_sample("b.wav", 1, full_scale, 24000).clipped_share == 1.0


def test_too_little_speech_in_total() -> None:
    verdicts = [vs.check_sample(f"s{i}.wav", 1, speech_like(8, seed=i), 24000) for i in (1, 2)]
    assert all(v.accepted for v in verdicts)
    report = vs.build_report(verdicts)
    assert not report.accepted
    assert report.problems == [
        "16 s of accepted speech in total (at least 30 s); add more samples (1–2 minutes give "
        "a closer clone)"
    ]


def test_only_accepted_samples_count_towards_the_total() -> None:
    good = [vs.check_sample(f"g{i}.wav", 1, speech_like(12, seed=i), 24000) for i in (1, 2)]
    quiet = vs.check_sample("quiet.wav", 1, speech_like(20, level=0.003), 24000)
    report = vs.build_report([*good, quiet])
    assert not quiet.accepted
    assert any("too quiet" in r and "closer to the microphone" in r for r in quiet.reasons)
    assert report.total_accepted_s == pytest.approx(24, abs=0.1)
    assert not report.accepted


def test_low_sample_rate_and_length_limits() -> None:
    low = vs.check_sample("phone.wav", 1, speech_like(10, rate=16000), 16000)
    assert not low.accepted
    assert low.reasons == [
        "phone.wav: sample rate 16000 Hz (at least 22050 Hz); record or export at 44100 Hz "
        "— upsampling an existing file does not bring detail back"
    ]
    short = vs.check_sample("short.wav", 1, speech_like(3), 24000)
    assert short.reasons == ["short.wav: 3.0 s long (at least 5 s); record a longer take"]
    long = vs.check_sample("long.wav", 1, speech_like(181, rate=22050), 22050)
    assert long.reasons == [
        "long.wav: 181 s long (at most 180 s per file); split it into shorter files"
    ]


def test_too_loud_is_rejected() -> None:
    loud = np.sign(speech_like(10)) * 0.8  # squashed flat like a hard limiter
    verdict = vs.check_sample("loud.wav", 1, loud, 24000)
    assert any("too loud" in r for r in verdict.reasons)


@pytest.mark.parametrize(
    ("name", "size", "expected"),
    [
        ("notes.txt", 100, ["notes.txt: format .txt is not accepted; use wav, mp3, m4a, flac, ogg"]),
        ("big.wav", 11 * 1024 * 1024, ["big.wav: 11.0 MB (at most 10 MB); cut it into shorter "
                                       "files or export a compressed format (mp3)"]),
        ("empty.mp3", 0, ["empty.mp3: the file is empty; record it again"]),
        ("Take.FLAC", 100, []),
    ],
)  # fmt: skip
def test_format_and_size_are_checked_before_decoding(
    name: str, size: int, expected: list[str]
) -> None:
    assert vs.precheck_file(name, size) == expected


def test_set_level_problems() -> None:
    assert vs.build_report([]).problems == ["no sample files given; add recordings of the voice"]
    twice = [vs.check_sample("a.wav", 1, speech_like(20, seed=i), 24000) for i in (1, 2)]
    assert "the same file name twice: a.wav; rename one" in vs.build_report(twice).problems
    empty = vs.check_sample("none.wav", 1, np.zeros(0), 24000)
    assert empty.reasons == ["none.wav: no audio in the file; record it again"]
