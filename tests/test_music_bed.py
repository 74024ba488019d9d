"""The music bed we ship: generated, any length, and a channel's own music first."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from factory_resources.music import SAMPLE_RATE, generate_music_bed, music_for_channel


@pytest.mark.parametrize("seconds", [8.0, 20.0, 7.3, 32.0, 61.7])
def test_a_bed_of_any_length_is_made_whole(tmp_path: Path, seconds: float) -> None:
    """Lengths that end inside a bar (20 s once raised IndexError on the last notes)."""
    bed = generate_music_bed(tmp_path / "bed.wav", seconds=seconds)
    with wave.open(str(bed)) as audio:
        assert (audio.getnchannels(), audio.getframerate()) == (2, SAMPLE_RATE)
        frames = audio.getnframes()
        pcm = np.frombuffer(audio.readframes(frames), dtype="<i2").reshape(-1, 2)
    assert frames == int(seconds * SAMPLE_RATE)
    peak = np.abs(pcm).max() / 32767
    assert 0.6 < peak <= 0.71  # normalised to 0.7, never clipped
    tail = pcm[-SAMPLE_RATE // 2 :]
    assert np.abs(tail).max() > 0  # music to the very end, not a silent pad


def test_a_channels_own_music_comes_first(tmp_path: Path) -> None:
    channel, cache = tmp_path / "channel", tmp_path / "cache"
    (channel / "music").mkdir(parents=True)
    for name in ("b.mp3", "a.wav", "notes.txt"):
        (channel / "music" / name).write_bytes(b"x")
    picked = {music_for_channel(channel, cache, seed).name for seed in range(4)}
    assert picked == {"a.wav", "b.mp3"}
    assert not cache.exists()  # no bed made when the channel has its own
    bed = music_for_channel(tmp_path / "other", cache, 0)
    assert bed.name == "music-bed-v1.wav" and bed.is_file()
