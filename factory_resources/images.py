"""Scene pictures and covers, made on this machine with Pillow.

A scene takes a picture from the channel's own media folder when its name or tags match the
scene's key words; otherwise it gets a procedural picture in the channel's colours that carries
those words. Never a blank frame.
"""

from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path

import dagster as dg

from factory_core.models import BrandKit
from factory_resources.fonts import fonts_dir

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
_TAG_SPLIT = re.compile(r"[\W_]+", re.UNICODE)


# Backdrops are sketched at 1/SKETCH of the picture's size, then enlarged (see `procedural`).
SKETCH = 4


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


# The character's portrait in offline scenes: a circle in the middle of the frame, between the
# key words above and the captions below (their lower band starts at 1920 - 660 = 1260 px, two
# lines reach up to about 1060 px). The crop is PORTRAIT_CROP times dlib's face box, so the face
# is drawn about 620 / 1.9 = 326 px wide: large enough to recognise on a phone, and for dlib's
# detector (which needs 80 px) to find it again when the scene is checked for consistency.
PORTRAIT_DIAMETER = 620
PORTRAIT_CENTRE = 0.485  # of the frame height: 620 px circle spans about 621-1241 px
PORTRAIT_CROP = 1.9
PORTRAIT_RING = 14
PORTRAIT_TEXT_SIZE = 112


def _portrait_crop(
    size: tuple[int, int], face: tuple[int, int, int, int] | None
) -> tuple[int, int, int, int]:
    """Square crop box: around the face (head and shoulders, face a little above the centre),
    or the upper-middle of the picture when no face is found. Kept inside the picture."""
    width, height = size
    if face is None:
        side = min(width, height)
        cx, cy = width / 2, min(height - side / 2, max(side / 2, height * 0.4))
    else:
        left, top, right, bottom = face
        face_side = max(right - left, bottom - top)
        side = min(width, height, round(face_side * PORTRAIT_CROP))
        cx, cy = (left + right) / 2, (top + bottom) / 2 + 0.05 * face_side
    x0 = int(min(max(0, cx - side / 2), width - side))
    y0 = int(min(max(0, cy - side / 2), height - side))
    return x0, y0, x0 + side, y0 + side


@functools.lru_cache(maxsize=16)
def _character_face(path: str, mtime_ns: int, size: int) -> tuple[int, int, int, int] | None:
    """The reference's face box, found once per file version: every scene of a topic uses the
    same reference. dlib loads here, only for channels with a character."""
    from factory_resources.face_similarity import face_box

    return face_box(Path(path))


def _disc(diameter: int):  # type: ignore[no-untyped-def]
    """A round mask with a smooth edge: drawn 4x larger and shrunk (ImageDraw does not
    anti-alias)."""
    from PIL import Image, ImageDraw

    big = Image.new("L", (diameter * 4, diameter * 4), 0)
    ImageDraw.Draw(big).ellipse((0, 0, diameter * 4 - 1, diameter * 4 - 1), fill=255)
    return big.resize((diameter, diameter), Image.Resampling.LANCZOS)


def _with_portrait(image, character: Path, brand: BrandKit):  # type: ignore[no-untyped-def]
    """The scene with the character's circular portrait: soft shadow, brand-coloured ring."""
    from PIL import Image, ImageDraw, ImageFilter, ImageOps

    with Image.open(character) as src:
        upright = ImageOps.exif_transpose(src).convert("RGBA")
    # A cut-out mascot or logo sits on the brand's colour rather than on black.
    reference = Image.new("RGBA", upright.size, (*_rgb(brand.secondary), 255))
    reference = Image.alpha_composite(reference, upright).convert("RGB")
    stat = character.stat()
    face = _character_face(str(character), stat.st_mtime_ns, stat.st_size)
    crop = reference.crop(_portrait_crop(reference.size, face))
    d = PORTRAIT_DIAMETER
    portrait = crop.resize((d, d), Image.Resampling.LANCZOS)

    w, h = image.size
    x, y = (w - d) // 2, int(h * PORTRAIT_CENTRE) - d // 2
    ring = PORTRAIT_RING
    overlay = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    shadow = ImageDraw.Draw(overlay)
    shadow.ellipse((x - ring, y - ring + 24, x + d + ring, y + d + ring + 24), fill=(0, 0, 0, 150))
    overlay = overlay.filter(ImageFilter.GaussianBlur(28))
    overlay.paste((*_rgb(brand.accent), 255), (x - ring, y - ring), _disc(d + 2 * ring))
    overlay.paste(portrait, (x, y), _disc(d))
    return Image.alpha_composite(image, overlay)


class SceneImageMaker(dg.ConfigurableResource):
    """Offline image maker: channel media first, procedural pictures otherwise."""

    width: int = 1080
    height: int = 1920

    def from_media(self, source: Path, out: Path) -> None:
        from PIL import Image

        with Image.open(source) as img:
            _cover(img, self.width, self.height).save(out, format="PNG", compress_level=3)

    def procedural(
        self,
        words: list[str],
        brand: BrandKit,
        seed_text: str,
        out: Path,
        character: Path | None = None,
    ) -> None:
        """A picture in the brand's colours carrying the key words; with a character reference,
        also the character's portrait, so offline scenes still show who the channel is about."""
        import numpy as np
        from PIL import Image, ImageDraw, ImageFilter

        seed = int(hashlib.sha256(seed_text.encode()).hexdigest(), 16)
        rng = np.random.default_rng(seed % (2**32))
        w, h = self.width, self.height
        top, bottom = np.array(_rgb(brand.primary)), np.array(_rgb(brand.secondary))
        angle = rng.uniform(0, np.pi)
        # The backdrop and its shapes are drawn at a quarter of the size and enlarged: a linear
        # gradient and blurred shapes survive bilinear enlargement unchanged to the eye, and the
        # full-size float maths and blur were most of a scene's time (0.42 s -> 0.25 s each).
        sw, sh = -(-w // SKETCH), -(-h // SKETCH)
        yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
        ramp = np.cos(angle) * xx / sw + np.sin(angle) * yy / sh
        ramp = (ramp - ramp.min()) / max(1e-6, ramp.max() - ramp.min())
        pixels = (
            top[None, None, :] * (1 - ramp[..., None]) + bottom[None, None, :] * ramp[..., None]
        )
        image = Image.fromarray(pixels.astype(np.uint8)).resize((w, h), Image.Resampling.BILINEAR)

        shapes = Image.new("RGBA", (sw, sh), (0, 0, 0, 0))
        draw = ImageDraw.Draw(shapes)
        accent = _rgb(brand.accent)
        palette = [accent, _rgb(brand.text), _rgb(brand.secondary), _rgb(brand.primary)]
        for _ in range(int(rng.integers(5, 9))):
            r = int(rng.integers(120, 420)) / SKETCH
            cx = int(rng.integers(-100, w + 100)) / SKETCH
            cy = int(rng.integers(-100, h + 100)) / SKETCH
            colour = palette[int(rng.integers(0, len(palette)))]
            alpha = int(rng.integers(40, 110))
            if rng.random() < 0.5:
                draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(*colour, alpha))
            else:
                draw.rounded_rectangle(
                    (cx - r, cy - r / 2, cx + r, cy + r / 2),
                    radius=40 / SKETCH,
                    fill=(*colour, alpha),
                )
        shapes = shapes.filter(ImageFilter.GaussianBlur(6 / SKETCH))
        shapes = shapes.resize((w, h), Image.Resampling.BILINEAR)
        image = Image.alpha_composite(image.convert("RGBA"), shapes)
        if character is not None:
            image = _with_portrait(image, character, brand)

        # Key words in the upper half, clear of the captions lower down; higher and smaller when
        # the character's portrait takes the middle of the frame.
        text = " ".join(words).upper() or "•"
        layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
        tdraw = ImageDraw.Draw(layer)
        max_size, centre = (150, 0.30) if character is None else (PORTRAIT_TEXT_SIZE, 0.17)
        font, lines = _fit_text(tdraw, text, max_width=int(w * 0.8), max_size=max_size)
        line_h = int(font.size * 1.15)
        y = int(h * centre) - line_h * len(lines) // 2
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
