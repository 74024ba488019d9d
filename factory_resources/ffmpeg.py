"""ffmpeg: the renderer and the probe. The static binary comes from the imageio-ffmpeg wheel."""

from __future__ import annotations

import logging
import re
import subprocess
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import dagster as dg
from pydantic import Field

from factory_core import ffmpeg_commands as fc
from factory_core import render_plan as rp
from factory_core.render_plan import LOUDNESS_TARGET_LUFS

# The checks allow -1.0 dBTP; aim a little under so rounding never fails a video.
TRUE_PEAK_TARGET_DBTP = -1.2

_LOG = logging.getLogger(__name__)


class RenderError(RuntimeError):
    def __init__(self, message: str, crashed: bool = False) -> None:
        super().__init__(message)
        self.crashed = crashed  # ffmpeg died on a signal (a crash), not on a reported error


@cache
def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


# A crash (SIGSEGV) of the bundled static ffmpeg is retried: the known cause is avoided in the
# filtergraph (see ffmpeg_commands), and a retry keeps an unknown one from failing a topic.
# Any other failure is a real error and is raised at once.
CRASH_RETRIES = 2


def run_ffmpeg(args: list[str], *, cwd: Path | None = None, what: str = "ffmpeg") -> str:
    """Run ffmpeg; on failure raise with the last lines of its own message (never the full env)."""
    for attempt in range(CRASH_RETRIES + 1):
        proc = subprocess.run(
            [ffmpeg_exe(), *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            errors="replace",
            check=False,
        )
        if proc.returncode == 0:
            return proc.stderr
        if proc.returncode > 0 or attempt == CRASH_RETRIES:
            break
        _LOG.warning("%s: ffmpeg killed by signal %d, running it again", what, -proc.returncode)
    tail = "\n".join(proc.stderr.strip().splitlines()[-6:])
    raise RenderError(f"{what} failed (exit {proc.returncode}): {tail}", proc.returncode < 0)


@dataclass(frozen=True)
class MediaInfo:
    duration_s: float
    width: int | None
    height: int | None
    fps: float | None
    video_codec: str | None
    pix_fmt: str | None
    audio_codec: str | None
    sample_rate: int | None
    moov_before_mdat: bool


@dataclass(frozen=True)
class Loudness:
    integrated_lufs: float
    true_peak_dbtp: float


_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_VIDEO = re.compile(r"Stream #\S+.*?: Video: (\w+)[^,]*, (\w+)[^,]*(?:\([^)]*\))?, (\d+)x(\d+)")
_FPS = re.compile(r"(\d+(?:\.\d+)?) fps")
_AUDIO = re.compile(r"Stream #\S+.*?: Audio: (\w+)[^,]*, (\d+) Hz")


def probe(path: Path) -> MediaInfo:
    """Stream facts from `ffmpeg -i` (the wheel has no ffprobe) plus the MP4 atom order."""
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
        capture_output=True, text=True, errors="replace", check=False,
    )  # fmt: skip
    text = proc.stderr
    if "Invalid data" in text or "No such file" in text:
        raise RenderError(f"{path.name}: not a readable media file")
    duration = _DURATION.search(text)
    video = _VIDEO.search(text)
    audio = _AUDIO.search(text)
    video_line = next((ln for ln in text.splitlines() if ": Video: " in ln), "")
    fps = _FPS.search(video_line)
    seconds = (
        int(duration.group(1)) * 3600 + int(duration.group(2)) * 60 + float(duration.group(3))
        if duration
        else 0.0
    )
    return MediaInfo(
        duration_s=seconds,
        width=int(video.group(3)) if video else None,
        height=int(video.group(4)) if video else None,
        fps=float(fps.group(1)) if fps else None,
        video_codec=video.group(1) if video else None,
        pix_fmt=video.group(2) if video else None,
        audio_codec=audio.group(1) if audio else None,
        sample_rate=int(audio.group(2)) if audio else None,
        moov_before_mdat=_moov_first(path),
    )


def _moov_first(path: Path) -> bool:
    with path.open("rb") as f:
        while header := f.read(8):
            if len(header) < 8:
                return False
            size = int.from_bytes(header[:4], "big")
            kind = header[4:8]
            if kind == b"moov":
                return True
            if kind == b"mdat":
                return False
            if size == 1:
                size = int.from_bytes(f.read(8), "big")
                f.seek(size - 16, 1)
            elif size < 8:
                return False
            else:
                f.seek(size - 8, 1)
    return False


_SUMMARY_I = re.compile(r"Integrated loudness:\s+I:\s+(-?[\d.]+|-inf) LUFS")
_SUMMARY_PEAK = re.compile(r"True peak:\s+Peak:\s+(-?[\d.]+|-inf) dBFS")


def _loudness_summary(text: str, name: str) -> Loudness:
    """The last ebur128 summary in ffmpeg's log; silence reads as -120."""
    i = _SUMMARY_I.findall(text)
    peak = _SUMMARY_PEAK.findall(text)
    if not i:
        raise RenderError(f"{name}: no loudness summary from ffmpeg")
    return Loudness(
        integrated_lufs=float(i[-1]) if i[-1] != "-inf" else -120.0,
        true_peak_dbtp=float(peak[-1]) if peak and peak[-1] != "-inf" else -120.0,
    )


def measure_loudness(path: Path) -> Loudness:
    text = run_ffmpeg(fc.loudness_args(str(path)), what=f"loudness of {path.name}")
    return _loudness_summary(text, path.name)


def extract_frame(video: Path, second: float, output: Path) -> None:
    """One frame of a video as a picture (for covers taken from the video)."""
    run_ffmpeg(
        ["-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-ss", f"{second:.3f}",
         "-i", str(video), "-frames:v", "1", str(output)],
        what=f"frame of {video.name}",
    )  # fmt: skip


@dataclass(frozen=True)
class Inspection:
    """What one decode of a finished video shows."""

    video_s: float
    audio_s: float
    freezes: list[tuple[float, float]]  # (start, duration)
    blacks: list[tuple[float, float]]
    integrated_lufs: float
    true_peak_dbtp: float


_FRAMES = re.compile(r"frame=\s*(\d+)")
_FREEZE = re.compile(r"freeze_start: ([\d.]+)|freeze_duration: ([\d.]+)")
_BLACK = re.compile(r"black_start:([\d.]+) black_end:[\d.]+ black_duration:([\d.]+)")
_SAMPLES = re.compile(r"Number of samples: (\d+)")


def inspect_video(path: Path, fps: int = 30, sample_rate: int = 48000) -> Inspection:
    text = run_ffmpeg(fc.inspection_args(str(path)), what=f"inspection of {path.name}")
    frames = _FRAMES.findall(text)
    starts = [float(a) for a, _ in _FREEZE.findall(text) if a]
    durations = [float(b) for _, b in _FREEZE.findall(text) if b]
    # A freeze still running at the end has a start but no duration yet.
    video_s = int(frames[-1]) / fps if frames else 0.0
    durations += [video_s - s for s in starts[len(durations) :]]
    samples = _SAMPLES.findall(text)
    loudness = _loudness_summary(text, path.name)
    return Inspection(
        video_s=video_s,
        audio_s=int(samples[-1]) / sample_rate if samples else 0.0,
        freezes=list(zip(starts, durations, strict=False)),
        blacks=[(float(s), float(d)) for s, d in _BLACK.findall(text)],
        integrated_lufs=loudness.integrated_lufs,
        true_peak_dbtp=loudness.true_peak_dbtp,
    )


class FfmpegRenderer(dg.ConfigurableResource):
    """Renders a RenderPlan with the static ffmpeg: audio master, then one video pass."""

    preset: str = Field("veryfast", description="x264 preset (see EncoderSettings for why).")
    x264_params: str = Field(rp.EncoderSettings().x264_params, description="Extra x264 options.")
    crf: int = Field(21, ge=14, le=30)

    def _settings(self) -> rp.EncoderSettings:
        return rp.EncoderSettings(preset=self.preset, x264_params=self.x264_params, crf=self.crf)

    @staticmethod
    def _logo_size(plan: rp.RenderPlan, work_dir: Path) -> tuple[int, int]:
        if plan.overlay is None:
            return (1, 1)
        from PIL import Image

        with Image.open(work_dir / plan.overlay.image_file) as logo:
            return logo.size

    def master_audio(self, plan: rp.AudioMixPlan, work_dir: Path, output: Path) -> Loudness:
        mix = work_dir / ".mix.wav"
        try:
            run_ffmpeg(fc.audio_mix_args(plan, str(mix)), cwd=work_dir, what="audio mix")
            gain = LOUDNESS_TARGET_LUFS - measure_loudness(mix).integrated_lufs
            limit = rp.TRUE_PEAK_LIMIT_DB
            # The limiter takes back part of any gain on peaky mixes (speech peaks, loud
            # music): settle the gain on trials of the chain, each a tenth of the cost of a
            # pass that also encodes AAC, stepping by the measured slope (secant method).
            slope, previous = 1.0, None
            for _ in range(4):
                run = run_ffmpeg(fc.audio_master_trial_args(str(mix), gain, plan, limit),
                                 cwd=work_dir, what="audio master trial")  # fmt: skip
                loudness = _loudness_summary(run, mix.name).integrated_lufs
                if abs(error := LOUDNESS_TARGET_LUFS - loudness) <= 0.2:
                    break
                if previous is not None and gain != previous[0]:
                    slope = min(1.0, max(0.2, (loudness - previous[1]) / (gain - previous[0])))
                previous = (gain, loudness)
                gain += error / slope
            # AAC's inter-sample peaks can overshoot a sample-peak limiter by up to about
            # 0.8 dB: measure the result and correct both, at most three times.
            for _ in range(4):
                run_ffmpeg(
                    fc.audio_master_args(str(mix), gain, plan, str(output), limit),
                    cwd=work_dir,
                    what="audio master",
                )
                result = measure_loudness(output)
                error = LOUDNESS_TARGET_LUFS - result.integrated_lufs
                overshoot = result.true_peak_dbtp - TRUE_PEAK_TARGET_DBTP
                if abs(error) <= 0.5 and overshoot <= 0:
                    break
                gain += error
                limit -= max(0.0, overshoot) + (0.2 if overshoot > 0 else 0.0)
        finally:
            mix.unlink(missing_ok=True)
        return result

    def render(self, plan: rp.RenderPlan, work_dir: Path, output: Path) -> float:
        plan = plan.model_copy(update={"encoder": self._settings()})
        started = time.perf_counter()
        run_ffmpeg(
            fc.video_args(plan, str(output), self._logo_size(plan, work_dir)),
            cwd=work_dir,
            what="video render",
        )
        return time.perf_counter() - started

    def encode_still(self, image: Path, plan: rp.RenderPlan, output: Path) -> float:
        plan = plan.model_copy(update={"encoder": self._settings()})
        started = time.perf_counter()
        run_ffmpeg(fc.still_floor_args(str(image), plan, str(output)), what="still encode")
        return time.perf_counter() - started
