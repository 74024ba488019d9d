"""The default music bed: generated here from a fixed seed, so it is ours to ship and use.

A slow four-chord pad with a soft plucked arpeggio, 32 seconds, looping cleanly.
"""

from __future__ import annotations

import wave
from pathlib import Path

SAMPLE_RATE = 48000
BPM = 90
_CHORDS = (  # I - vi - IV - V in C major, as MIDI notes
    (48, 55, 60, 64, 67),
    (45, 52, 57, 60, 64),
    (41, 48, 53, 57, 60),
    (43, 50, 55, 59, 62),
)


def _freq(note: int) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


def generate_music_bed(path: Path, seconds: float = 32.0) -> Path:
    import numpy as np

    rng = np.random.default_rng(7)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    bar = 4 * 60 / BPM
    left = np.zeros(n)
    right = np.zeros(n)
    for i in range(int(np.ceil(seconds / bar))):
        chord = _CHORDS[i % len(_CHORDS)]
        start, end = int(i * bar * SAMPLE_RATE), min(n, int((i + 1) * bar * SAMPLE_RATE))
        seg = t[start:end] - t[start]
        env = np.minimum(1, seg / 0.6) * np.minimum(1, (bar - seg) / 0.6)
        for j, note in enumerate(chord):
            detune = 1 + (rng.random() - 0.5) * 0.004
            tone = np.sin(2 * np.pi * _freq(note) * detune * seg) + 0.3 * np.sin(
                4 * np.pi * _freq(note) * seg
            )
            pan = 0.3 + 0.4 * (j / (len(chord) - 1))
            left[start:end] += tone * env * (1 - pan) * 0.09
            right[start:end] += tone * env * pan * 0.09
        step = 60 / BPM / 2  # eighth notes
        for k in range(int(bar / step)):
            note = chord[(k * 2) % len(chord)] + 12
            s = start + int(k * step * SAMPLE_RATE)
            e = min(end, s + int(0.5 * SAMPLE_RATE))
            if s >= e:  # the last bar is cut short by the bed's end
                break
            seg2 = t[s:e] - t[s]
            pluck = np.sin(2 * np.pi * _freq(note) * seg2) * np.exp(-seg2 * 7) * 0.12
            left[s:e] += pluck * (0.7 if k % 2 else 0.3)
            right[s:e] += pluck * (0.3 if k % 2 else 0.7)
    stereo = np.stack([left, right], axis=1)
    stereo /= max(1e-9, np.abs(stereo).max()) / 0.7
    pcm = (stereo * 32767).astype("<i2").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.wav")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm)
    tmp.replace(path)
    return path


def music_for_channel(channel_dir: Path, cache_dir: Path, seed: int) -> Path:
    """The channel's own music (picked by seed) if it has any, else the generated bed."""
    music_dir = channel_dir / "music"
    own = sorted(
        p for p in music_dir.glob("*") if p.suffix.lower() in (".mp3", ".wav", ".m4a", ".ogg", ".flac")
    ) if music_dir.is_dir() else []  # fmt: skip
    if own:
        return own[seed % len(own)]
    bed = cache_dir / "music-bed-v1.wav"
    return bed if bed.exists() else generate_music_bed(bed)
