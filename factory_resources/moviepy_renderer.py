"""The moviepy backend: renders the same RenderPlan by compositing every frame in Python.

For users who prefer moviepy's model, and the benchmark's baseline. It draws what the ffmpeg
backend draws: the same scene spans and motions, the transitions (blends, slides and wipes as
moving masks, the brand-colour fade), the captions of the plan's ASS file with the highlighted
word, the logo, intro and outro, and the same mastered audio.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import dagster as dg
from pydantic import Field

from factory_core.render_plan import (
    MOTION_OVERSCAN,
    Bumper,
    EncoderSettings,
    RenderPlan,
    Transition,
    frame_layout,
    motion_window,
    overlay_box,
)

_OVERRIDE = re.compile(r"\{\\c&H([0-9A-Fa-f]{6})&\}|\{\\fs(\d+)\}")


def _rgb_from_ass(bgr: str) -> tuple[int, int, int]:
    return int(bgr[4:6], 16), int(bgr[2:4], 16), int(bgr[0:2], 16)


class MoviepyRenderer(dg.ConfigurableResource):
    """Per-frame compositing with moviepy; x264 settings as the ffmpeg backend."""

    preset: str = Field("veryfast")
    crf: int = Field(21, ge=14, le=30)

    def render(self, plan: RenderPlan, work_dir: Path, output: Path) -> float:
        import numpy as np
        from moviepy import VideoClip

        started = time.perf_counter()
        fps = plan.fps
        scenes = [_load_picture(work_dir / c.image_file, plan, overscan=True) for c in plan.clips]
        layout = frame_layout(plan)
        captions = _CaptionPainter(work_dir, plan) if plan.captions_file else None
        logo = _logo(work_dir, plan)
        intro = _Bumper(work_dir, plan.intro, plan) if plan.intro else None
        outro = _Bumper(work_dir, plan.outro, plan) if plan.outro else None
        intro_frames = round(plan.intro_s * fps)
        body_frames = sum(f.own for f in layout)
        colour = np.array([int(plan.brand_colour[i : i + 2], 16) for i in (1, 3, 5)], np.float32)

        def scene_frame(i: int, n: int) -> np.ndarray:
            frames = layout[i].rendered
            zoom, fx, fy = motion_window(plan.clips[i].motion, n / max(1, frames - 1))
            return _window(scenes[i], plan.width, plan.height, zoom, fx, fy)

        def body_frame(k: int) -> np.ndarray:
            i = max(j for j, f in enumerate(layout) if f.start <= k)
            n = k - layout[i].start
            if i > 0 and n < layout[i].head:  # inside the transition from scene i-1
                t = layout[i].head
                progress = (n + 1) / (t + 1)
                outgoing = scene_frame(i - 1, layout[i - 1].own + n)
                incoming = scene_frame(i, n)
                return _blend(outgoing, incoming, plan.clips[i].transition_in, progress, colour)
            return scene_frame(i, n)

        def make_frame(t: float) -> np.ndarray:
            k = min(round(t * fps), intro_frames + body_frames + round(plan.outro_s * fps) - 1)
            if intro is not None and k < intro_frames:
                return intro.frame(k)
            k -= intro_frames
            if k >= body_frames and outro is not None:
                return outro.frame(k - body_frames)
            frame = body_frame(min(k, body_frames - 1)).astype(np.float32)
            if captions is not None:
                captions.draw(frame, k / fps)
            if logo is not None:
                _composite(frame, *logo)
            return frame.astype(np.uint8)

        # moviepy draws int(duration * fps) frames; a quarter frame over lands on the plan's count.
        total_frames = round(plan.total_s * fps)
        clip = VideoClip(make_frame, duration=(total_frames + 0.25) / fps)
        enc = EncoderSettings(preset=self.preset, crf=self.crf)
        try:
            clip.write_videofile(
                str(output),
                # The mastered audio file is muxed as it is (not decoded and encoded again).
                audio=str(work_dir / plan.audio_file),
                fps=fps,
                codec="libx264",
                preset=enc.preset,
                audio_codec="copy",
                threads=2,
                logger=None,
                pixel_format="yuv420p",
                ffmpeg_params=[
                    "-crf",
                    str(enc.crf),
                    "-x264-params",
                    enc.x264_params,
                    "-movflags",
                    "+faststart",
                    "-g",
                    str(enc.gop),
                ],
            )
        finally:
            clip.close()
        return time.perf_counter() - started


def _load_picture(path: Path, plan: RenderPlan, overscan: bool):  # type: ignore[no-untyped-def]
    """The picture scaled once to fill the (overscanned) frame, as float32 RGB."""
    import numpy as np
    from PIL import Image, ImageFilter, ImageOps

    scale = MOTION_OVERSCAN if overscan else 1.0
    w, h = round(plan.width * scale / 2) * 2, round(plan.height * scale / 2) * 2
    with Image.open(path) as src:
        picture = src.convert("RGB")
    if plan.width > plan.height:  # whole portrait picture over a blurred fill, like ffmpeg's
        back = ImageOps.fit(picture, (w, h)).filter(ImageFilter.GaussianBlur(24))
        front = picture.resize((round(picture.width * h / picture.height), h), Image.BICUBIC)
        back.paste(front, ((w - front.width) // 2, 0))
        picture = back
    else:
        picture = ImageOps.fit(picture, (w, h), Image.BICUBIC)
    return np.asarray(picture, dtype=np.float32)


def _window(picture, width: int, height: int, zoom: float, fx: float, fy: float):  # type: ignore[no-untyped-def]
    """The frame seen through the motion's window: crop at zoom, resized to the frame."""
    import numpy as np
    from PIL import Image

    ph, pw = picture.shape[:2]
    # The picture is MOTION_OVERSCAN times the frame; at `zoom` the window onto it is the
    # frame's size times MOTION_OVERSCAN / zoom (a pan, at full zoom, sees exactly the frame).
    cw, ch = width * MOTION_OVERSCAN / zoom, height * MOTION_OVERSCAN / zoom
    cw, ch = min(pw, cw), min(ph, ch)
    x = (pw - cw) * fx
    y = (ph - ch) * fy
    crop = picture[int(y) : int(y) + int(ch), int(x) : int(x) + int(cw)]
    if crop.shape[1] == width and crop.shape[0] == height:
        return crop
    img = Image.fromarray(crop.astype(np.uint8)).resize((width, height), Image.BILINEAR)
    return np.asarray(img, dtype=np.float32)


def _blend(a, b, kind: Transition | None, p: float, colour):  # type: ignore[no-untyped-def]
    h, w = a.shape[:2]
    if kind is Transition.BRAND_COLOUR:
        if p < 0.5:
            return a + (colour - a) * (p * 2)
        return colour + (b - colour) * ((p - 0.5) * 2)
    if kind in (Transition.SLIDE_LEFT, Transition.SLIDE_UP):
        out = a.copy()
        if kind is Transition.SLIDE_LEFT:
            edge = int(w * (1 - p))
            out[:, edge:] = b[:, : w - edge]
        else:
            edge = int(h * (1 - p))
            out[edge:, :] = b[: h - edge, :]
        return out
    if kind in (Transition.WIPE_LEFT, Transition.WIPE_RIGHT):
        out = a.copy()
        edge = int(w * p)
        if kind is Transition.WIPE_LEFT:
            out[:, w - edge :] = b[:, w - edge :]
        else:
            out[:, :edge] = b[:, :edge]
        return out
    return a * (1 - p) + b * p


class _Bumper:
    def __init__(self, work_dir: Path, bumper: Bumper, plan: RenderPlan) -> None:
        import numpy as np

        self.frames = round(bumper.duration_s * plan.fps)
        self.fade = min(8, self.frames // 3)
        self.colour = np.array(
            [int(plan.brand_colour[i : i + 2], 16) for i in (1, 3, 5)], np.float32
        )
        self.fade_in = bumper is plan.intro
        path = Path(bumper.file) if Path(bumper.file).is_absolute() else work_dir / bumper.file
        if bumper.is_video:
            from moviepy import VideoFileClip

            source = VideoFileClip(str(path), audio=False)
            self.get = lambda k: _fit(
                source.get_frame(min(k / plan.fps, source.duration - 0.05)), plan
            )
        else:
            still = _load_picture(path, plan, overscan=False)
            self.get = lambda k: still

    def frame(self, k: int):  # type: ignore[no-untyped-def]
        import numpy as np

        frame = self.get(k).astype(np.float32)
        if self.fade_in and k < self.fade:
            frame = self.colour + (frame - self.colour) * (k / self.fade)
        elif not self.fade_in and k >= self.frames - self.fade:
            frame = frame + (self.colour - frame) * ((k - (self.frames - self.fade)) / self.fade)
        return frame.astype(np.uint8)


def _fit(frame, plan: RenderPlan):  # type: ignore[no-untyped-def]
    import numpy as np
    from PIL import Image, ImageOps

    image = ImageOps.fit(Image.fromarray(frame), (plan.width, plan.height))
    return np.asarray(image, dtype=np.float32)


def _logo(work_dir: Path, plan: RenderPlan):  # type: ignore[no-untyped-def]
    if plan.overlay is None:
        return None
    import numpy as np
    from PIL import Image

    with Image.open(work_dir / plan.overlay.image_file) as src:
        logo = src.convert("RGBA")
    width, height, x, y = overlay_box(plan, *logo.size)
    rgba = np.asarray(logo.resize((width, height)), dtype=np.float32)
    alpha = rgba[..., 3:4] / 255 * plan.overlay.opacity
    return rgba[..., :3], alpha, x, y


def _composite(frame, rgb, alpha, x: int, y: int) -> None:  # type: ignore[no-untyped-def]
    h, w = rgb.shape[:2]
    region = frame[y : y + h, x : x + w]
    region[:] = region * (1 - alpha) + rgb * alpha


class _CaptionPainter:
    """Draws the plan's ASS events (text, highlighted word, style margins) with Pillow."""

    def __init__(self, work_dir: Path, plan: RenderPlan) -> None:
        import pysubs2

        from factory_resources.fonts import font_file

        assert plan.captions_file is not None
        path = Path(plan.captions_file)
        self.subs = pysubs2.load(str(path if path.is_absolute() else work_dir / path))
        self.plan = plan
        self.font_path = font_file(self.subs.styles["Caption"].fontname)
        self.cache: dict[int, tuple] = {}

    def draw(self, frame, t: float) -> None:  # type: ignore[no-untyped-def]
        ms = t * 1000
        for index, event in enumerate(self.subs):
            if event.start <= ms < event.end:
                if index not in self.cache:
                    self.cache[index] = self._paint(event)
                if self.cache[index] is not None:
                    _composite(frame, *self.cache[index])

    def _paint(self, event):  # type: ignore[no-untyped-def]
        import numpy as np
        from PIL import Image, ImageDraw, ImageFont

        style = self.subs.styles[event.style]
        size = int(style.fontsize)
        runs: list[list[tuple[str, tuple[int, int, int]]]] = []
        base = (style.primarycolor.r, style.primarycolor.g, style.primarycolor.b)
        colour = base
        for line in event.text.split("\\N"):
            runs.append([])
            position = 0
            for match in _OVERRIDE.finditer(line):
                if line[position : match.start()]:
                    runs[-1].append((line[position : match.start()], colour))
                if match.group(1):
                    colour = _rgb_from_ass(match.group(1))
                else:
                    size = int(match.group(2))
                position = match.end()
            if line[position:]:
                runs[-1].append((line[position:], colour))
        font = ImageFont.truetype(str(self.font_path), size)
        outline = int(style.outline)
        line_h = int(size * 1.2)
        widths = [sum(font.getlength(text) for text, _ in line) for line in runs]
        width = int(max(widths, default=0)) + 4 * outline
        height = line_h * len(runs) + 4 * outline
        if width <= 4 * outline:
            return None
        image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
        draw = ImageDraw.Draw(image)
        for row, (line, line_w) in enumerate(zip(runs, widths, strict=True)):
            x = (width - line_w) / 2
            for text, rgb in line:
                draw.text((x, 2 * outline + row * line_h), text, font=font, fill=(*rgb, 255),
                          stroke_width=outline, stroke_fill=(0, 0, 0, 255))  # fmt: skip
                x += font.getlength(text)
        rgba = np.asarray(image, dtype=np.float32)
        plan = self.plan
        if style.alignment.value in (7, 8, 9):  # top
            y = style.marginv
        else:
            y = plan.height - style.marginv - height
        left, right = style.marginl, plan.width - style.marginr
        if style.alignment.value in (1, 4, 7):
            x0 = left
        elif style.alignment.value in (3, 6, 9):
            x0 = right - width
        else:
            x0 = left + (right - left - width) // 2
        x0 = max(0, min(plan.width - width, int(x0)))
        y = max(0, min(plan.height - height, int(y)))
        return rgba[..., :3], rgba[..., 3:4] / 255, x0, y
