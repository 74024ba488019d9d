"""Channel media matching: a scene takes the channel's picture whose name or tags share its key
words; each picture is used once. Does not render anything."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from factory_resources.images import match_media, media_index


def _picture(path: Path) -> Path:
    Image.new("RGB", (8, 8), (200, 30, 30)).save(path)
    return path


def test_best_tag_overlap_wins_and_pictures_are_not_reused(tmp_path: Path) -> None:
    beans = _picture(tmp_path / "coffee_beans_roast.jpg")
    cup = _picture(tmp_path / "IMG_0042.png")
    (tmp_path / "IMG_0042.txt").write_text("coffee cup morning", encoding="utf-8")
    _picture(tmp_path / "mountains.jpg")
    (tmp_path / "notes.docx").write_bytes(b"not a picture")
    index = media_index(tmp_path)
    assert set(index) == {beans, cup, tmp_path / "mountains.jpg"}
    used: set[Path] = set()
    assert match_media(["Coffee", "beans"], index, used) == beans
    used.add(beans)
    assert match_media(["coffee", "beans"], index, used) == cup  # sidecar tags count
    used.add(cup)
    assert match_media(["coffee"], index, used) is None
    assert match_media(["oceans"], index, set()) is None


def test_missing_media_folder_means_no_match(tmp_path: Path) -> None:
    assert media_index(tmp_path / "absent") == {}
    assert match_media(["anything"], {}, set()) is None
