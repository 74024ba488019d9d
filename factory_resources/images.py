"""Scene pictures and covers, made on this machine with Pillow.

A scene takes a picture from the channel's own media folder when its name or tags match the
scene's key words; otherwise it gets a procedural picture in the channel's colours that carries
those words. Never a blank frame.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import dagster as dg

from factory_core.models import BrandKit
from factory_resources.fonts import fonts_dir

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
_TAG_SPLIT = re.compile(r"[\W_]+", re.UNICODE)


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    v = hex_colour.lstrip("#")
    return int(v[0:2], 16), int(v[2:4], 16), int(v[4:6], 16)


def _font(size: int, bold: bool = True):  # type: ignore[no-untyped-def]
    from PIL import ImageFont

    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    return ImageFont.truetype(str(fonts_dir() / name), size)


def _stem(word: str) -> str:
    return word.casefold()[:5]


def media_tags(path: Path) -> set[str]:
    """Tags of a channel picture: the words of its file name, plus a `<name>.txt` beside it."""
    words = _TAG_SPLIT.split(path.stem)
    sidecar = path.with_suffix(".txt")
    if sidecar.exists():
        words += _TAG_SPLIT.split(sidecar.read_text(encoding="utf-8", errors="ignore"))
    return {_stem(w) for w in words if len(w) >= 3}


def media_index(media_dir: Path) -> dict[Path, set[str]]:
    """Every picture in a channel's media folder with its tags, read once per topic."""
    if not media_dir.is_dir():
        return {}
    return {
        path: media_tags(path)
        for path in sorted(media_dir.iterdir())
        if path.suffix.lower() in IMAGE_SUFFIXES
    }


def match_media(keywords: list[str], index: dict[Path, set[str]], used: set[Path]) -> Path | None:
    """The unused picture sharing the most key words with the scene, if any shares one."""
    wanted = {_stem(w) for w in keywords}
    best: tuple[int, str] | None = None
    best_path: Path | None = None
    for path, tags in index.items():
        score = len(wanted & tags)
        if path not in used and score and (best is None or (score, path.name) > best):
            best, best_path = (score, path.name), path
    return best_path


def _fit_text(draw, text: str, max_width: int, max_size: int, min_size: int = 48):  # type: ignore[no-untyped-def]
    """Largest font size (and wrapped lines) at which the text fits the width, at most 4 lines."""
    words = text.split()
    for size in range(max_size, min_size - 1, -6):
        font = _font(size)
        lines: list[str] = []
        for word in words:
            trial = f"{lines[-1]} {word}" if lines else word
            if lines and draw.textlength(trial, font=font) <= max_width:
                lines[-1] = trial
            else:
                lines.append(word)
        if len(lines) <= 4 and all(draw.textlength(ln, font=font) <= max_width for ln in lines):
            return font, lines
    font = _font(min_size)
    return font, [text[:40]]


def _cover(image, width: int, height: int):  # type: ignore[no-untyped-def]
    from PIL import ImageOps

    return ImageOps.fit(image.convert("RGB"), (width, height), centering=(0.5, 0.4))


class SceneImageMaker(dg.ConfigurableResource):
    """Offline image maker: channel media first, procedural pictures otherwise."""

    width: int = 1080
    height: int = 1920

    def from_media(self, source: Path, out: Path) -> None:
        from PIL import Image

        with Image.open(source) as img:
            _cover(img, self.width, self.height).save(out, format="PNG", compress_level=3)

    def procedural(self, words: list[str], brand: BrandKit, seed_text: str, out: Path) -> None:
        import numpy as np
        from PIL import Image, ImageDraw, ImageFilter

        seed = int(hashlib.sha256(seed_text.encode()).hexdigest(), 16)
        rng = np.random.default_rng(seed % (2**32))
        w, h = self.width, self.height
        top, bottom = np.array(_rgb(brand.primary)), np.array(_rgb(brand.secondary))
        angle = rng.uniform(0, np.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        ramp = np.cos(angle) * xx / w + np.sin(angle) * yy / h
        ramp = (ramp - ramp.min()) / max(1e-6, ramp.max() - ramp.min())
        pixels = (
            top[None, None, :] * (1 - ramp[..., None]) + bottom[None, None, :] * ramp[..., None]
        )
        image = Image.fromarray(pixels.astype(np.uint8))

        shapes = Image.new("RGBA", (w, h), (0, 0, 0, 0))
        draw = ImageDraw.Draw(shapes)
        accent = _rgb(brand.accent)
        palette = [accent, _rgb(brand.text), _rgb(brand.secondary), _rgb(brand.primary)]
        for _ in range(int(rng.integers(5, 9))):
            r = int(rng.integers(120, 420))
            cx, cy = int(rng.integers(-100, w + 100)), int(rng.integers(-100, h + 100))
            colour = palette[int(rng.integers(0, len(palette)))]
            alpha = int(rng.integers(40, 110))
            if rng.random() < 0.5:
                draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(*colour, alpha))
            else:
                draw.rounded_rectangle(
                    (cx - r, cy - r // 2, cx + r, cy + r // 2), radius=40, fill=(*colour, alpha)
                )
        shapes = shapes.filter(ImageFilter.GaussianBlur(6))
        image = Image.alpha_composite(image.convert("RGBA"), shapes)

        # Key words in the upper half, clear of the captions lower down.
        text = " ".join(words).upper() or "•"
        layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
        tdraw = ImageDraw.Draw(layer)
        font, lines = _fit_text(tdraw, text, max_width=int(w * 0.8), max_size=150)
        line_h = int(font.size * 1.15)
        y = int(h * 0.30) - line_h * len(lines) // 2
        panel_pad = 40
        panel_w = max(tdraw.textlength(ln, font=font) for ln in lines)
        tdraw.rounded_rectangle(
            ((w - panel_w) / 2 - panel_pad, y - panel_pad,
             (w + panel_w) / 2 + panel_pad, y + line_h * len(lines) + panel_pad / 2),
            radius=36, fill=(0, 0, 0, 90),
        )  # fmt: skip
        for i, line in enumerate(lines):
            x = (w - tdraw.textlength(line, font=font)) / 2
            colour = accent if i == 0 else _rgb(brand.text)
            tdraw.text((x, y + i * line_h), line, font=font, fill=(*colour, 255),
                       stroke_width=4, stroke_fill=(0, 0, 0, 200))  # fmt: skip
        image = Image.alpha_composite(image, layer).convert("RGB")
        image.save(out, format="PNG", compress_level=3)

    def covers(
        self, scene_image: Path, title: str, brand: BrandKit, out_vertical: Path, out_wide: Path
    ) -> None:
        """1080x1920 and 1280x720 covers: the strongest scene picture with the title in large type."""
        from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

        with Image.open(scene_image) as src:
            base = src.convert("RGB")
        for out, (w, h) in ((out_vertical, (1080, 1920)), (out_wide, (1280, 720))):
            canvas = _cover(base, w, h)
            if w > h:  # wide: blurred fill, the vertical picture on the right
                canvas = canvas.filter(ImageFilter.GaussianBlur(18))
                inset = _cover(base, int(h * 9 / 16), h)
                canvas.paste(inset, (w - inset.width, 0))
            canvas = ImageEnhance.Brightness(canvas).enhance(0.75)
            draw = ImageDraw.Draw(canvas, "RGBA")
            text_w = int(w * (0.58 if w > h else 0.86))
            font, lines = _fit_text(draw, title.upper(), text_w, max_size=150 if h > w else 96)
            line_h = int(font.size * 1.12)
            block_h = line_h * len(lines)
            x0 = int(w * 0.05) if w > h else (w - text_w) // 2
            y0 = (h - block_h) // 2 if w > h else int(h * 0.62) - block_h // 2
            draw.rectangle((0, y0 - 30, w if h > w else x0 + text_w + 30, y0 + block_h + 30),
                           fill=(*_rgb(brand.primary), 170))  # fmt: skip
            for i, line in enumerate(lines):
                draw.text((x0, y0 + i * line_h), line, font=font,
                          fill=_rgb(brand.accent if i == 0 else brand.text),
                          stroke_width=3, stroke_fill=(0, 0, 0))  # fmt: skip
            canvas.save(out, format="JPEG", quality=90)
