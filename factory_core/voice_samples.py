"""The local check of voice samples before cloning: pure, numpy in, a report out.

A clone is only as good as its samples, and a provider's clone call costs a voice slot (and,
on some plans, money) whatever the samples sound like. So every sample is checked here first,
and every rejection says what is wrong and what to do about it. The limits follow the
ElevenLabs guidance for instant voice cloning: clean speech, little silence, no clipping, at
least about a minute in total (30 s is the hard floor used here), files up to 10 MB.
"""

from __future__ import annotations

from pathlib import PurePath

import numpy as np
from pydantic import BaseModel, Field

AUDIO_EXTENSIONS = (".wav", ".mp3", ".m4a", ".flac", ".ogg")
MAX_FILE_BYTES = 10 * 1024 * 1024
MIN_SAMPLE_S = 5.0
MAX_SAMPLE_S = 180.0
MIN_SAMPLE_RATE = 22050
# Share of samples at (or within a hair of) full scale; a few isolated peaks are harmless.
MAX_CLIPPED_SHARE = 0.001
CLIP_LEVEL = 0.999
# 20 ms frames quieter than this count as silence (room tone of a quiet room is about -60).
SILENCE_DBFS = -50.0
MAX_SILENCE_SHARE = 0.40
FRAME_S = 0.02
# Speech level: RMS of the non-silent frames. Normal recordings sit around -25..-14 dBFS.
TOO_QUIET_DBFS = -35.0
TOO_LOUD_DBFS = -8.0
MIN_TOTAL_S = 30.0


class SampleVerdict(BaseModel):
    """One file: accepted, or the reasons it was not (each says what to do)."""

    file: str
    accepted: bool
    reasons: list[str] = Field(default_factory=list)
    seconds: float = 0.0
    sample_rate: int = 0
    size_bytes: int = 0
    silence_share: float = 0.0
    clipped_share: float = 0.0
    speech_dbfs: float = -120.0


class SampleReport(BaseModel):
    """All files of one clone request; `accepted` only if the set as a whole is usable."""

    samples: list[SampleVerdict]
    total_accepted_s: float
    problems: list[str] = Field(
        default_factory=list, description="Reasons about the set as a whole (e.g. too short)."
    )

    @property
    def accepted(self) -> bool:
        return not self.problems and any(s.accepted for s in self.samples)

    @property
    def accepted_files(self) -> list[str]:
        return [s.file for s in self.samples if s.accepted]

    def reasons(self) -> list[str]:
        """Every reason, per file then for the set, in the order a user should fix them."""
        return [r for s in self.samples for r in s.reasons] + self.problems

    def summary(self) -> str:
        lines = [
            f"{s.file}: {'ok' if s.accepted else 'rejected'} ({s.seconds:.1f} s)"
            for s in self.samples
        ]
        lines += [f"  - {r}" for r in self.reasons()]
        verdict = "accepted" if self.accepted else "rejected"
        lines.append(f"samples {verdict}: {self.total_accepted_s:.1f} s of usable speech")
        return "\n".join(lines)


def precheck_file(name: str, size_bytes: int) -> list[str]:
    """What can be said before decoding: the format (by extension) and the size."""
    reasons: list[str] = []
    suffix = PurePath(name).suffix.lower()
    if suffix not in AUDIO_EXTENSIONS:
        allowed = ", ".join(e.lstrip(".") for e in AUDIO_EXTENSIONS)
        reasons.append(f"{name}: format {suffix or '(none)'} is not accepted; use {allowed}")
    if size_bytes > MAX_FILE_BYTES:
        reasons.append(
            f"{name}: {size_bytes / 1024 / 1024:.1f} MB (at most "
            f"{MAX_FILE_BYTES // 1024 // 1024} MB); cut it into shorter files or export a "
            "compressed format (mp3)"
        )
    if size_bytes == 0:
        reasons.append(f"{name}: the file is empty; record it again")
    return reasons


def as_float(samples: np.ndarray) -> np.ndarray:
    """Samples in [-1, 1] as float64, shape (frames, channels); integer PCM is scaled by its
    type's full scale so that clipping means the same thing for every input."""
    data = np.asarray(samples)
    if np.issubdtype(data.dtype, np.unsignedinteger):  # 8-bit WAV: offset binary
        middle = (int(np.iinfo(data.dtype).max) + 1) / 2
        data = (data.astype(np.float64) - middle) / middle
    elif np.issubdtype(data.dtype, np.integer):
        data = data.astype(np.float64) / float(-np.iinfo(data.dtype).min)
    else:
        data = data.astype(np.float64)
    return data[:, None] if data.ndim == 1 else data.reshape(len(data), -1)


def _dbfs(rms: np.ndarray | float) -> np.ndarray | float:
    return 20 * np.log10(np.maximum(rms, 1e-6))


def check_sample(
    name: str, size_bytes: int, samples: np.ndarray, sample_rate: int
) -> SampleVerdict:
    """Checks one decoded file. `samples` is (frames,) or (frames, channels), int or float."""
    reasons = precheck_file(name, size_bytes)
    data = as_float(samples)
    seconds = len(data) / sample_rate if sample_rate > 0 else 0.0
    verdict = SampleVerdict(
        file=name, accepted=False, seconds=round(seconds, 2), sample_rate=sample_rate,
        size_bytes=size_bytes,
    )  # fmt: skip
    if len(data) == 0 or sample_rate <= 0:
        verdict.reasons = [*reasons, f"{name}: no audio in the file; record it again"]
        return verdict

    if sample_rate < MIN_SAMPLE_RATE:
        reasons.append(
            f"{name}: sample rate {sample_rate} Hz (at least {MIN_SAMPLE_RATE} Hz); record "
            "or export at 44100 Hz — upsampling an existing file does not bring detail back"
        )
    if seconds < MIN_SAMPLE_S:
        reasons.append(
            f"{name}: {seconds:.1f} s long (at least {MIN_SAMPLE_S:.0f} s); record a longer take"
        )
    elif seconds > MAX_SAMPLE_S:
        reasons.append(
            f"{name}: {seconds:.0f} s long (at most {MAX_SAMPLE_S:.0f} s per file); split it "
            "into shorter files"
        )

    # Clipping is judged per channel: a mono mix would hide one clipped side.
    clipped = float(np.mean(np.any(np.abs(data) >= CLIP_LEVEL, axis=1)))
    verdict.clipped_share = round(clipped, 5)
    if clipped > MAX_CLIPPED_SHARE:
        reasons.append(
            f"{name}: {clipped:.1%} of samples clipped (at most {MAX_CLIPPED_SHARE:.1%}); "
            "turn the input gain down and record again"
        )

    mono = data.mean(axis=1)
    frame = max(1, int(sample_rate * FRAME_S))
    count = max(1, len(mono) // frame)
    framed = mono[: count * frame].reshape(count, -1) if len(mono) >= frame else mono[None, :]
    frame_db = _dbfs(np.sqrt(np.mean(framed**2, axis=1)))
    silent = frame_db < SILENCE_DBFS
    silence = float(np.mean(silent))
    verdict.silence_share = round(silence, 4)
    if silence > MAX_SILENCE_SHARE:
        reasons.append(
            f"{name}: {silence:.0%} silence (at most {MAX_SILENCE_SHARE:.0%}); trim the "
            "pauses or record again"
        )

    voiced = framed[~silent]
    speech = float(_dbfs(np.sqrt(np.mean(voiced**2)))) if voiced.size else -120.0
    verdict.speech_dbfs = round(speech, 1)
    if speech < TOO_QUIET_DBFS:
        reasons.append(
            f"{name}: too quiet (speech at {speech:.0f} dBFS, at least "
            f"{TOO_QUIET_DBFS:.0f}); move closer to the microphone or raise the gain"
        )
    elif speech > TOO_LOUD_DBFS:
        reasons.append(
            f"{name}: too loud (speech at {speech:.0f} dBFS, at most {TOO_LOUD_DBFS:.0f}); "
            "lower the gain or switch off heavy compression"
        )

    verdict.reasons = reasons
    verdict.accepted = not reasons
    return verdict


def rejected_file(name: str, size_bytes: int, reason: str) -> SampleVerdict:
    """A file that could not be read or decoded at all (the reason comes from the caller)."""
    return SampleVerdict(
        file=name, accepted=False, reasons=[f"{name}: {reason}"], size_bytes=size_bytes
    )


def build_report(verdicts: list[SampleVerdict]) -> SampleReport:
    """The set's verdict: enough accepted speech in total, and no duplicate file names (the
    provider keeps samples by name)."""
    total = round(sum(v.seconds for v in verdicts if v.accepted), 2)
    problems: list[str] = []
    if not verdicts:
        problems.append("no sample files given; add recordings of the voice")
    names = [v.file for v in verdicts]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        problems.append(f"the same file name twice: {', '.join(duplicates)}; rename one")
    if verdicts and total < MIN_TOTAL_S:
        problems.append(
            f"{total:.0f} s of accepted speech in total (at least {MIN_TOTAL_S:.0f} s); add "
            "more samples (1–2 minutes give a closer clone)"
        )
    return SampleReport(samples=verdicts, total_accepted_s=total, problems=problems)
