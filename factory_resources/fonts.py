"""Fonts: DejaVu (Latin and Cyrillic) from matplotlib's wheel, found without importing it."""

from __future__ import annotations

from functools import cache
from importlib.util import find_spec
from pathlib import Path

from factory_core.captions import TextMeasure

_BOLD_FILES = {
    "DejaVu Sans": "DejaVuSans-Bold.ttf",
    "DejaVu Serif": "DejaVuSerif-Bold.ttf",
    "DejaVu Sans Mono": "DejaVuSansMono-Bold.ttf",
}


class FontError(RuntimeError):
    pass


@cache
def fonts_dir() -> Path:
    spec = find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise FontError(
            "matplotlib (which carries the DejaVu fonts) is not installed; run make setup"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "mpl-data" / "fonts" / "ttf"
    if not (path / "DejaVuSans-Bold.ttf").exists():
        raise FontError(f"DejaVu fonts are missing from {path}; reinstall matplotlib")
    return path


def font_file(name: str = "DejaVu Sans") -> Path:
    if name not in _BOLD_FILES:
        raise FontError(f"font {name!r} is not available; use one of {sorted(_BOLD_FILES)}")
    return fonts_dir() / _BOLD_FILES[name]


@cache
def text_measure(name: str = "DejaVu Sans") -> TextMeasure:
    """Width in pixels of a line in the bold face at a size, from the font's own metrics."""
    from PIL import ImageFont

    path = str(font_file(name))

    @cache
    def face(size: int) -> ImageFont.FreeTypeFont:
        return ImageFont.truetype(path, size)

    def measure(text: str, size: int) -> float:
        return float(face(size).getlength(text))

    return measure
