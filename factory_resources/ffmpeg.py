"""ffmpeg: the renderer and the probe. The static binary comes from the imageio-ffmpeg wheel."""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import dagster as dg
from pydantic import Field

from factory_core import render_plan as rp


class RenderError(RuntimeError):
    pass


@cache
def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@cache
def fonts_dir() -> Path:
    """DejaVu Sans (Latin and Cyrillic), from matplotlib's wheel: found without importing it."""
    from importlib.util import find_spec

    spec = find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise RenderError(
            "matplotlib (which carries the DejaVu fonts) is not installed; run make setup"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "mpl-data" / "fonts" / "ttf"
    if not (path / "DejaVuSans-Bold.ttf").exists():
        raise RenderError(f"DejaVu fonts are missing from {path}; reinstall matplotlib")
    return path


def run_ffmpeg(args: list[str], *, cwd: Path | None = None, what: str = "ffmpeg") -> str:
    """Run ffmpeg; on failure raise with the last lines of its own message (never the full env)."""
    proc = subprocess.run(
        [ffmpeg_exe(), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        errors="replace",
        check=False,
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-6:])
        raise RenderError(f"{what} failed (exit {proc.returncode}): {tail}")
    return proc.stderr


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


def measure_loudness(path: Path) -> Loudness:
    text = run_ffmpeg(rp.loudness_args(str(path)), what=f"loudness of {path.name}")
    i = _SUMMARY_I.findall(text)
    peak = _SUMMARY_PEAK.findall(text)
    if not i:
        raise RenderError(f"{path.name}: no loudness summary from ffmpeg")
    return Loudness(
        integrated_lufs=float(i[-1]) if i[-1] != "-inf" else -120.0,
        true_peak_dbtp=float(peak[-1]) if peak and peak[-1] != "-inf" else -120.0,
    )


class FfmpegRenderer(dg.ConfigurableResource):
    """Renders a RenderPlan with the static ffmpeg: audio master, then one video pass."""

    preset: str = Field(
        "veryfast", description="x264 preset; measured fastest faithful on 2 cores."
    )
    crf: int = Field(21, ge=14, le=30)

    def master_audio(self, plan: rp.AudioMixPlan, work_dir: Path, output: Path) -> Loudness:
        mix = work_dir / ".mix.wav"
        try:
            run_ffmpeg(rp.audio_mix_args(plan, str(mix)), cwd=work_dir, what="audio mix")
            measured = measure_loudness(mix)
            run_ffmpeg(
                rp.audio_master_args(str(mix), measured.integrated_lufs, plan, str(output)),
                cwd=work_dir,
                what="audio master",
            )
        finally:
            mix.unlink(missing_ok=True)
        return measure_loudness(output)

    def render(self, plan: rp.RenderPlan, work_dir: Path, output: Path) -> float:
        plan = plan.model_copy(
            update={"encoder": rp.EncoderSettings(preset=self.preset, crf=self.crf)}
        )
        started = time.perf_counter()
        run_ffmpeg(rp.video_args(plan, str(output)), cwd=work_dir, what="video render")
        return time.perf_counter() - started

    def encode_still(self, image: Path, plan: rp.RenderPlan, output: Path) -> float:
        plan = plan.model_copy(
            update={"encoder": rp.EncoderSettings(preset=self.preset, crf=self.crf)}
        )
        started = time.perf_counter()
        run_ffmpeg(rp.still_floor_args(str(image), plan, str(output)), what="still encode")
        return time.perf_counter() - started
