"""The render plan and the ffmpeg command lines that carry it out.

Pure: builds argument lists, runs nothing. Two passes, both measured on 2 cores:
1. audio: voice + music bed with sidechain ducking, then a measured gain and a peak limiter
   (audio-only work is about a second);
2. video: one filtergraph. Each scene image is a single decoded frame, scaled once to the size its
   motion needs, repeated in memory by `loop` (an image input with `-loop 1` is decoded again for
   every frame), panned by a cheap `crop`, joined by `xfade`, captioned by libass, encoded once.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

FPS = 30
# Scenes are scaled this much larger than the frame so a pan has room to move.
MOTION_OVERSCAN = 1.12
TRANSITION_S = 0.35
LOUDNESS_TARGET_LUFS = -14.0
TRUE_PEAK_LIMIT_DB = -1.5


class Motion(StrEnum):
    PAN_UP = "pan_up"
    PAN_DOWN = "pan_down"
    PAN_LEFT = "pan_left"
    PAN_RIGHT = "pan_right"


_MOTION_CYCLE = (Motion.PAN_UP, Motion.PAN_LEFT, Motion.PAN_DOWN, Motion.PAN_RIGHT)


class Clip(BaseModel):
    image_file: str
    start: float
    end: float
    motion: Motion


class EncoderSettings(BaseModel):
    preset: str = "veryfast"
    crf: int = Field(21, ge=0, le=51)
    audio_bitrate: str = "160k"
    gop: int = 60


class RenderPlan(BaseModel):
    width: int = 1080
    height: int = 1920
    fps: int = FPS
    duration_s: float
    clips: list[Clip]
    transition_s: float = TRANSITION_S
    audio_file: str
    captions_file: str | None
    fonts_dir: str | None
    encoder: EncoderSettings = Field(default_factory=EncoderSettings)


class AudioMixPlan(BaseModel):
    voice_file: str
    music_file: str | None
    duration_s: float
    music_volume_db: float = -20.0
    fade_s: float = 0.05


def motions_for(n: int, seed: int = 0) -> list[Motion]:
    """Never the same move twice in a row."""
    return [_MOTION_CYCLE[(seed + i) % len(_MOTION_CYCLE)] for i in range(n)]


def build_render_plan(
    *,
    images: list[tuple[str, float, float]],
    duration_s: float,
    audio_file: str,
    captions_file: str | None,
    fonts_dir: str | None,
    seed: int = 0,
) -> RenderPlan:
    motions = motions_for(len(images), seed)
    clips = [
        Clip(image_file=path, start=start, end=end, motion=motion)
        for (path, start, end), motion in zip(images, motions, strict=True)
    ]
    return RenderPlan(
        duration_s=duration_s,
        clips=clips,
        audio_file=audio_file,
        captions_file=captions_file,
        fonts_dir=fonts_dir,
    )


def escape_filter_path(path: str) -> str:
    """Quote a file path for a filter option inside a filtergraph (two levels of escaping)."""
    level1 = path.replace("\\", "\\\\").replace(":", "\\:").replace("'", "\\'")
    return "".join("\\" + ch if ch in "\\'[],;" else ch for ch in level1)


def clip_frames(plan: RenderPlan) -> list[int]:
    """Frames per clip; all but the last run one transition longer to overlap the next."""
    frames = []
    last = len(plan.clips) - 1
    for i, clip in enumerate(plan.clips):
        seconds = clip.end - clip.start + (plan.transition_s if i < last else 0.0)
        frames.append(max(2, round(seconds * plan.fps)))
    return frames


def _crop_expr(motion: Motion, frames: int) -> tuple[str, str]:
    progress = f"(n/{max(1, frames - 1)})"
    centre_x, centre_y = "(iw-ow)/2", "(ih-oh)/2"
    if motion is Motion.PAN_UP:
        return centre_x, f"(ih-oh)*(1-{progress})"
    if motion is Motion.PAN_DOWN:
        return centre_x, f"(ih-oh)*{progress}"
    if motion is Motion.PAN_LEFT:
        return f"(iw-ow)*(1-{progress})", centre_y
    return f"(iw-ow)*{progress}", centre_y


def video_filtergraph(plan: RenderPlan) -> str:
    frames = clip_frames(plan)
    big_w = _even(plan.width * MOTION_OVERSCAN)
    big_h = _even(plan.height * MOTION_OVERSCAN)
    parts = []
    for i, (clip, n) in enumerate(zip(plan.clips, frames, strict=True)):
        x, y = _crop_expr(clip.motion, n)
        parts.append(
            f"[{i}:v]scale={big_w}:{big_h}:flags=bicubic,format=yuv420p,setsar=1,"
            f"loop=loop={n - 1}:size=1:start=0,setpts=N/{plan.fps}/TB,"
            f"crop={plan.width}:{plan.height}:x='{x}':y='{y}'[c{i}]"
        )
    current = "c0"
    elapsed = frames[0] / plan.fps
    for i in range(1, len(plan.clips)):
        offset = elapsed - plan.transition_s
        parts.append(
            f"[{current}][c{i}]xfade=transition=fade:duration={plan.transition_s}:"
            f"offset={offset:.4f}[x{i}]"
        )
        current = f"x{i}"
        elapsed = offset + frames[i] / plan.fps
    tail = f"[{current}]"
    if plan.captions_file:
        # Escaped, not quoted: inside quotes ffmpeg keeps the backslashes of the escapes.
        subtitle = f"ass=filename={escape_filter_path(plan.captions_file)}"
        if plan.fonts_dir:
            subtitle += f":fontsdir={escape_filter_path(plan.fonts_dir)}"
        parts.append(f"{tail}{subtitle},format=yuv420p[v]")
    else:
        parts.append(f"{tail}format=yuv420p[v]")
    return ";".join(parts)


def video_args(plan: RenderPlan, output: str) -> list[str]:
    args = ["-hide_banner", "-nostdin", "-y", "-loglevel", "error"]
    for clip in plan.clips:
        # A single frame per input: decoded once, repeated by the loop filter.
        args += ["-i", clip.image_file]
    args += ["-i", plan.audio_file]
    args += ["-filter_complex", video_filtergraph(plan)]
    args += ["-map", "[v]", "-map", f"{len(plan.clips)}:a"]
    args += _encoder_args(plan.encoder, plan.fps)
    args += ["-c:a", "copy", "-t", f"{plan.duration_s:.3f}", "-movflags", "+faststart", output]
    return args


def still_floor_args(image_file: str, plan: RenderPlan, output: str) -> list[str]:
    """The encoder floor: one still image encoded at the same size and settings, no filters."""
    frames = round(plan.duration_s * plan.fps)
    return [
        "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
        "-i", image_file,
        "-filter_complex",
        f"[0:v]scale={plan.width}:{plan.height},format=yuv420p,"
        f"loop=loop={frames - 1}:size=1:start=0,setpts=N/{plan.fps}/TB[v]",
        "-map", "[v]", *_encoder_args(plan.encoder, plan.fps), "-an", output,
    ]  # fmt: skip


def _encoder_args(enc: EncoderSettings, fps: int) -> list[str]:
    return [
        "-c:v", "libx264", "-preset", enc.preset, "-crf", str(enc.crf),
        "-profile:v", "high", "-pix_fmt", "yuv420p", "-r", str(fps),
        "-g", str(enc.gop), "-fps_mode", "cfr",
    ]  # fmt: skip


def audio_mix_args(plan: AudioMixPlan, output_wav: str) -> list[str]:
    """Voice over a ducked music bed, as 48 kHz stereo PCM (loudness is set in the next pass)."""
    d = plan.duration_s
    args = ["-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-i", plan.voice_file]
    voice = f"[0:a]aformat=sample_rates=48000:channel_layouts=stereo,apad,atrim=0:{d:.3f}[voice]"
    if plan.music_file is None:
        graph = f"{voice};[voice]anull[mix]"
    else:
        args += ["-stream_loop", "-1", "-i", plan.music_file]
        graph = ";".join(
            [
                voice,
                "[voice]asplit=2[v_main][v_key]",
                f"[1:a]aformat=sample_rates=48000:channel_layouts=stereo,atrim=0:{d:.3f},"
                f"volume={plan.music_volume_db}dB,afade=t=in:d=0.8,"
                f"afade=t=out:st={max(0.0, d - 1.5):.3f}:d=1.5[music]",
                # Duck the music whenever the voice speaks; release slowly so it breathes back.
                "[music][v_key]sidechaincompress=threshold=0.02:ratio=10:attack=15:release=350"
                ":makeup=1[ducked]",
                "[v_main][ducked]amix=inputs=2:duration=first:normalize=0[mix]",
            ]
        )
    args += ["-filter_complex", graph, "-map", "[mix]", "-c:a", "pcm_s16le", output_wav]
    return args


def loudness_args(input_file: str) -> list[str]:
    return [
        "-hide_banner", "-nostdin", "-i", input_file, "-map", "0:a",
        "-af", "ebur128=peak=true", "-f", "null", "-",
    ]  # fmt: skip


def audio_master_args(
    mix_wav: str, measured_lufs: float, plan: AudioMixPlan, output: str
) -> list[str]:
    """Measured gain to the loudness target, a peak limiter, short fades; AAC out."""
    gain = LOUDNESS_TARGET_LUFS - measured_lufs
    limit = 10 ** (TRUE_PEAK_LIMIT_DB / 20)
    d = plan.duration_s
    chain = (
        f"volume={gain:.2f}dB,"
        f"alimiter=limit={limit:.4f}:attack=1:release=50:level=false,"
        f"afade=t=in:d={plan.fade_s},afade=t=out:st={max(0.0, d - 0.3):.3f}:d=0.3"
    )
    return [
        "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-i", mix_wav,
        "-af", chain, "-ar", "48000", "-ac", "2", "-c:a", "aac", "-b:a", "160k", "-t", f"{d:.3f}", output,
    ]  # fmt: skip


def _even(value: float) -> int:
    return int(round(value / 2) * 2)
