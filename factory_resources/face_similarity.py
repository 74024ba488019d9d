"""Character consistency: dlib face embeddings compared with the reference.

A channel's character has one reference picture; every variation and scene that should show the
character is scored against it, on this machine, with dlib's face recognition ResNet (the model
files come from the `face-recognition-models` wheel). The largest face in each picture is found
with the HOG frontal detector, aligned with the 5-point landmarks and turned into a 128-d
embedding; two embeddings of the same person lie closer than 0.6 in euclidean distance (dlib's
documented threshold, 99.38% on LFW).

Distance is mapped to a similarity in [0, 1], higher meaning more alike, so that reports and
thresholds read like every other score in the factory:

    similarity = max(0, 1 - distance / 1.2)

1.2 is twice dlib's threshold, so the mapping is linear, identical pictures score 1, the
same-person threshold lands on exactly 0.5 and unrelated faces (distance about 0.8-1.0) score
roughly 0.2-0.35; distances above 1.2 (rare, not seen between real faces) clip to 0.

dlib and numpy load only when a picture is first scored, and the models once per process.
"""

from __future__ import annotations

import functools
import importlib.util
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import BaseModel

if TYPE_CHECKING:
    import numpy as np

MEASURE = "dlib-resnet-face-128d"
SAME_PERSON_DISTANCE = 0.6  # dlib: embeddings of one person are closer than this
DISTANCE_SCALE = 2 * SAME_PERSON_DISTANCE


def distance_to_similarity(distance: float) -> float:
    """Euclidean embedding distance to a similarity in [0, 1]; see the module docstring."""
    return max(0.0, 1.0 - distance / DISTANCE_SCALE)


# Below this a variation or scene is flagged as showing a different person (0.5).
CONSISTENCY_THRESHOLD: float = distance_to_similarity(SAME_PERSON_DISTANCE)

# Larger pictures are shrunk before detection: the embedding is computed from a 150x150 face
# chip, so pixels beyond this only slow the detector down (a 12 MP phone photo takes seconds).
MAX_SIDE = 1920
# The HOG detector finds faces from about 80 px; one upsampling finds them from about 40 px but
# costs 4-5x the time (1 s on a 1080x1920 frame here), so it is only tried when a picture shows
# no face at its own size, and only up to about 1.5 MP: small references and 768x1344 scenes get
# it, while in a full 1080x1920 frame a face under 80 px is a bystander, not the character.
UPSAMPLE_RETRY_MAX_PIXELS = 1_500_000


class SimilarityScore(BaseModel):
    """How much the largest face in a picture looks like the reference's."""

    similarity: float | None
    measure: str = MEASURE
    face_found: bool

    @property
    def consistent(self) -> bool:
        """Same person by dlib's threshold; a picture without a face is not consistent."""
        return self.similarity is not None and self.similarity >= CONSISTENCY_THRESHOLD


def models_dir() -> Path:
    """The `face_recognition_models` data folder, found without importing the package (its
    `__init__` needs pkg_resources, which this environment does not ship)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("face-recognition-models is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


@dataclass(frozen=True)
class _Models:
    detector: Any
    landmarks: Any
    encoder: Any


_models_lock = threading.Lock()


@functools.cache
def _read_models() -> _Models:
    import dlib

    folder = models_dir()
    return _Models(
        detector=dlib.get_frontal_face_detector(),
        landmarks=dlib.shape_predictor(str(folder / "shape_predictor_5_face_landmarks.dat")),
        encoder=dlib.face_recognition_model_v1(
            str(folder / "dlib_face_recognition_resnet_model_v1.dat")
        ),
    )


def _load_models() -> _Models:
    """dlib's detector, 5-point shape predictor and ResNet encoder, loaded once per process (the
    lock keeps two threads from both spending the half second)."""
    with _models_lock:
        return _read_models()


def _pixels(image: Path) -> tuple[np.ndarray, float]:
    """RGB pixels upright (EXIF rotation applied), shrunk to MAX_SIDE, and the scale used."""
    import numpy as np
    from PIL import Image, ImageOps

    with Image.open(image) as img:
        rgb = ImageOps.exif_transpose(img).convert("RGB")
    scale = min(1.0, MAX_SIDE / max(rgb.size))
    if scale < 1.0:
        size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        rgb = rgb.resize(size, Image.Resampling.LANCZOS)
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8)), scale


def _largest_face(pixels: np.ndarray) -> Any | None:
    models = _load_models()
    faces = models.detector(pixels, 0)
    if not faces and pixels.shape[0] * pixels.shape[1] <= UPSAMPLE_RETRY_MAX_PIXELS:
        faces = models.detector(pixels, 1)
    return max(faces, key=lambda r: r.area()) if faces else None


def face_box(image: Path) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) of the largest face in the picture's own pixels, or None.

    Used to crop a character reference around its face; the box is dlib's, which covers brows
    to chin, so a head-and-shoulders crop is about twice its size."""
    pixels, scale = _pixels(image)
    face = _largest_face(pixels)
    if face is None:
        return None
    return tuple(round(v / scale) for v in (face.left(), face.top(), face.right(), face.bottom()))  # type: ignore[return-value]


def face_embedding(image: Path) -> np.ndarray | None:
    """The 128-d embedding of the largest face in the picture, or None when there is none."""
    import numpy as np

    pixels, _ = _pixels(image)
    face = _largest_face(pixels)
    if face is None:
        return None
    models = _load_models()
    shape = models.landmarks(pixels, face)
    return np.asarray(models.encoder.compute_face_descriptor(pixels, shape), dtype=np.float64)


def _compare(reference: np.ndarray | None, other: np.ndarray | None) -> SimilarityScore:
    import numpy as np

    if reference is None or other is None:
        return SimilarityScore(similarity=None, face_found=False)
    distance = float(np.linalg.norm(reference - other))
    return SimilarityScore(similarity=round(distance_to_similarity(distance), 4), face_found=True)


class FaceSimilarity(dg.ConfigurableResource):
    """Scores pictures against a character's reference face with dlib, offline and free.

    `face_found` is False when either picture has no detectable face; then `similarity` is None
    and the caller decides (a scene without the character's face is not necessarily wrong)."""

    def embedding(self, image: Path) -> list[float] | None:
        vector = face_embedding(image)
        return None if vector is None else [float(v) for v in vector]

    def score(self, reference: Path, image: Path) -> SimilarityScore:
        return _compare(face_embedding(reference), face_embedding(image))

    def score_many(self, reference: Path, images: Sequence[Path]) -> list[SimilarityScore]:
        """One score per picture, in order; the reference is embedded once."""
        ref = face_embedding(reference)
        if ref is None:
            return [SimilarityScore(similarity=None, face_found=False) for _ in images]
        return [_compare(ref, face_embedding(image)) for image in images]
