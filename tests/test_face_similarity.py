"""Character consistency, measured offline with dlib's face embeddings, on the one real face this
machine has: Grace Hopper's portrait in matplotlib's sample data. Covers the distance-to-
similarity mapping and its threshold, copies of the photo that must still count as her (mirrored,
cropped, brightened, shrunk), pictures without a face, a face altered until dlib no longer sees
her, and the offline procedural scene with the character's portrait composited in.

There is no second real person available offline, so "a different person" is stood in for by the
photographic negative of the same face: dlib still finds a face there, at a distance beyond its
same-person threshold, which is the case the flag exists for.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from factory_core.models import BrandKit
from factory_resources.face_similarity import (
    CONSISTENCY_THRESHOLD,
    MEASURE,
    FaceSimilarity,
    SimilarityScore,
    distance_to_similarity,
    face_box,
    models_dir,
)
from factory_resources.images import SceneImageMaker

HOPPER = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
BRAND = BrandKit()
WORDS = ["coffee", "beans", "roast"]


@pytest.fixture(scope="module")
def faces() -> FaceSimilarity:
    return FaceSimilarity()


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Variations of the portrait, pictures without a face, and two procedural scenes."""
    folder = tmp_path_factory.mktemp("faces")
    with Image.open(HOPPER) as src:
        photo = src.convert("RGB")
    w, h = photo.size
    pixels = np.asarray(photo)
    # The portrait cut into 64 px tiles and shuffled: the same colours, no face any more.
    tiles = [pixels[y : y + 64, x : x + 64] for y in range(0, 576, 64) for x in range(0, 512, 64)]
    order = np.random.default_rng(7).permutation(len(tiles))
    rows = [np.hstack([tiles[i] for i in order[r * 8 : r * 8 + 8]]) for r in range(9)]
    ramp = np.linspace(0, 255, 1080 * 1920).reshape(1920, 1080).astype(np.uint8)
    made = {
        "mirrored": ImageOps.mirror(photo),
        "cropped": photo.crop((30, 30, w - 20, h - 40)),
        "brightened": ImageEnhance.Brightness(photo).enhance(1.4),
        "shrunk": photo.resize((w // 2, h // 2), Image.Resampling.LANCZOS),
        "negative": ImageOps.invert(photo),
        "shuffled": Image.fromarray(np.vstack(rows)),
        "gradient": Image.fromarray(np.dstack([ramp, ramp[::-1], np.full_like(ramp, 90)])),
    }
    paths = {}
    for name, image in made.items():
        paths[name] = folder / f"{name}.png"
        image.save(paths[name])
    maker = SceneImageMaker()
    paths["scene"] = folder / "scene.png"
    maker.procedural(WORDS, BRAND, "t/1", paths["scene"])
    paths["scene_with_character"] = folder / "scene_with_character.png"
    maker.procedural(WORDS, BRAND, "t/1", paths["scene_with_character"], character=HOPPER)
    return paths


def _pixel_digest(path: Path) -> str:
    with Image.open(path) as img:
        return hashlib.sha256(np.asarray(img.convert("RGB")).tobytes()).hexdigest()


def test_mapping_puts_dlibs_same_person_distance_on_the_threshold() -> None:
    assert distance_to_similarity(0.0) == 1.0
    assert distance_to_similarity(0.6) == pytest.approx(0.5) == CONSISTENCY_THRESHOLD
    assert distance_to_similarity(0.3) > distance_to_similarity(0.59) > CONSISTENCY_THRESHOLD
    assert distance_to_similarity(0.61) < CONSISTENCY_THRESHOLD
    assert distance_to_similarity(1.2) == distance_to_similarity(1.9) == 0.0
    assert (models_dir() / "dlib_face_recognition_resnet_model_v1.dat").is_file()


def test_the_same_picture_scores_one(faces: FaceSimilarity) -> None:
    score = faces.score(HOPPER, HOPPER)
    assert score == SimilarityScore(similarity=1.0, measure=MEASURE, face_found=True)
    assert score.consistent
    embedding = faces.embedding(HOPPER)
    assert embedding is not None and len(embedding) == 128
    assert all(isinstance(v, float) for v in embedding)


def test_copies_of_the_photo_are_the_same_person(
    faces: FaceSimilarity, pictures: dict[str, Path]
) -> None:
    names = ["mirrored", "cropped", "brightened", "shrunk"]
    scores = faces.score_many(HOPPER, [pictures[n] for n in names])
    for name, score in zip(names, scores, strict=True):
        assert score.face_found, name
        assert score.similarity is not None and score.similarity > CONSISTENCY_THRESHOLD, name
        assert score.consistent, name
    # The batch embeds the reference once but scores exactly like single calls.
    assert scores[0] == faces.score(HOPPER, pictures["mirrored"])


@pytest.mark.parametrize("name", ["gradient", "scene", "shuffled"])
def test_pictures_without_a_face_have_no_similarity(
    faces: FaceSimilarity, pictures: dict[str, Path], name: str
) -> None:
    score = faces.score(HOPPER, pictures[name])
    assert score == SimilarityScore(similarity=None, measure=MEASURE, face_found=False)
    assert not score.consistent  # a shuffled copy of her photo is flagged, not passed
    assert faces.embedding(pictures[name]) is None


def test_a_reference_without_a_face_scores_nothing(
    faces: FaceSimilarity, pictures: dict[str, Path]
) -> None:
    scores = faces.score_many(pictures["gradient"], [HOPPER, pictures["mirrored"]])
    assert [s.face_found for s in scores] == [False, False]
    assert [s.similarity for s in scores] == [None, None]


def test_a_face_dlib_does_not_recognise_as_her_is_flagged(
    faces: FaceSimilarity, pictures: dict[str, Path]
) -> None:
    score = faces.score(HOPPER, pictures["negative"])
    assert score.face_found
    assert score.similarity is not None and score.similarity < CONSISTENCY_THRESHOLD
    assert not score.consistent


def test_offline_scene_shows_the_character_recognisably(
    faces: FaceSimilarity, pictures: dict[str, Path]
) -> None:
    score = faces.score(HOPPER, pictures["scene_with_character"])
    assert score.face_found and score.consistent
    assert score.similarity is not None and score.similarity > 0.8
    box = face_box(pictures["scene_with_character"])
    assert box is not None
    left, top, right, bottom = box
    assert right - left >= 300  # large enough to recognise on a phone
    # Centred, between the key words and the lower caption band (which starts at 1260 px).
    assert abs((left + right) / 2 - 540) < 40
    assert 600 < top and bottom < 1100
    with Image.open(pictures["scene_with_character"]) as img:
        assert img.size == (1080, 1920) and img.mode == "RGB"


def test_without_a_character_the_scene_is_unchanged(
    pictures: dict[str, Path], tmp_path: Path
) -> None:
    # Pixels of this scene without a character (Pillow and numpy are pinned in uv.lock, so the
    # render is reproducible to the bit); re-recorded when backdrops became quarter-size sketches.
    before = "dd9acb942e279cfe43701346ff901bcf406a883721b13c9c0cf618242c76ce6c"
    explicit = tmp_path / "explicit.png"
    SceneImageMaker().procedural(WORDS, BRAND, "t/1", explicit, character=None)
    assert _pixel_digest(pictures["scene"]) == _pixel_digest(explicit) == before
    assert pictures["scene"].read_bytes() == explicit.read_bytes()
    assert _pixel_digest(pictures["scene_with_character"]) != before


def test_a_character_without_a_face_is_still_shown(
    pictures: dict[str, Path], tmp_path: Path
) -> None:
    """A mascot or logo as the character: no face to crop around, so its middle is used."""
    out = tmp_path / "mascot.png"
    SceneImageMaker().procedural(WORDS, BRAND, "t/1", out, character=pictures["gradient"])
    with Image.open(out) as img, Image.open(pictures["scene"]) as plain:
        scene, without = np.asarray(img.convert("RGB")), np.asarray(plain.convert("RGB"))
    # The portrait area changed, the top corners (background only) did not.
    assert np.abs(scene[900, 540].astype(int) - without[900, 540].astype(int)).sum() > 30
    assert (scene[:40, :40] == without[:40, :40]).all()
