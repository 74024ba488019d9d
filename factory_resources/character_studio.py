"""The character studio: each owner's recurring characters, their reference pictures, and
variations of them checked for likeness.

Files: `$FACTORY_HOME/owners/<owner>/characters/<name>/reference.png` and `variations/`. Rows:
`characters` and `character_images` in the project database. Every query filters on the owner,
so one owner never sees, uses or deletes another's characters.

Variations are made with fal's reference-conditioned model when the key is set, else offline
by compositing the reference into procedural backgrounds; both are scored against the reference
with the same face measure, and the offline ones say so in their `measure`.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import shutil
import uuid
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from pydantic import BaseModel
from slugify import slugify

from factory_core.costs import CostLine
from factory_core.models import BrandKit
from factory_resources.face_similarity import (
    CONSISTENCY_THRESHOLD,
    FaceSimilarity,
    SimilarityScore,
)
from factory_resources.fal_images import REFERENCE_MODEL, FalImages, scene_seed
from factory_resources.images import SceneImageMaker
from factory_resources.project_db import (
    character_images,
    characters,
    price_table,
    record_costs,
    repriced,
)

MIN_SHORT_SIDE = 512  # reference-conditioned models and the face detector need a clear face
OFFLINE_MEASURE_PREFIX = "offline-composite:"
_MEASURE_LEN = 40  # character_images.measure column
_SAFE_OWNER = re.compile(r"^[a-z0-9][a-z0-9_-]{0,59}$")


class CharacterError(ValueError):
    """A request the studio refuses, with what to do instead."""


class CharacterNotFoundError(CharacterError, LookupError):
    pass


class CharacterRecord(BaseModel):
    id: str
    owner: str
    name: str
    description: str
    reference_file: str
    status: str  # ready | failed
    error: str | None = None
    created_at: datetime | None = None


class VariationRecord(BaseModel):
    id: int
    owner: str
    character: str
    kind: str  # variation | scene
    file: str
    pose: str = ""
    emotion: str = ""
    background: str = ""
    topic_key: str = ""
    similarity: float | None
    measure: str
    flagged: bool


def slug(value: str, what: str) -> str:
    """Character names become folder names and channel.yaml references: lower-case slugs, so
    'Grace' and 'grace' are one character."""
    result = slugify(value or "", max_length=60)
    if not result:
        raise CharacterError(f"{what} {value!r} has no letters or digits to name a folder by")
    return result


def clean_owner(owner: str) -> str:
    """Owners are stored as given (like the voice studio and the ledger do), trimmed."""
    cleaned = " ".join((owner or "").split())
    if not cleaned or len(cleaned) > 120:
        raise CharacterError(f"owner must be 1-120 characters, got {owner!r}")
    return cleaned


def owner_folder(owner: str) -> str:
    """A folder name per owner: the owner itself when it is already a safe slug, else its slug
    plus a hash, so two owners that slug alike ('Ann B', 'ann-b') never share files."""
    if _SAFE_OWNER.match(owner):
        return owner
    digest = hashlib.sha256(owner.encode()).hexdigest()[:8]
    return f"{slugify(owner, max_length=50) or 'owner'}-{digest}"


def is_flagged(score: SimilarityScore) -> bool:
    """A picture is flagged when it shows no comparable face or a face unlike the reference."""
    return score.similarity is None or score.similarity < CONSISTENCY_THRESHOLD


def variation_prompt(description: str, pose: str, emotion: str, background: str) -> str:
    who = description.strip() or "the person in the reference photo"
    return (
        f"{who}, {pose}, {emotion} expression, {background} background, "
        "photorealistic portrait, same face as the reference, vertical 9:16"
    )


def scene_prompt(description: str, visual_prompt: str) -> str:
    """A scene showing the character: who first (reference models weigh the start most)."""
    who = description.strip() or "the person in the reference photo"
    return f"{who}, {visual_prompt}"


def combinations(
    poses: list[str], emotions: list[str], backgrounds: list[str]
) -> list[tuple[str, str, str]]:
    """Every pose x emotion x background, de-duplicated, each list defaulting to one blank."""

    def clean(values: list[str]) -> list[str]:
        seen = dict.fromkeys(v.strip() for v in values if v.strip())
        return list(seen) or [""]

    return list(itertools.product(clean(poses), clean(emotions), clean(backgrounds)))


def check_reference(path: Path) -> tuple[int, int]:
    """The picture's size, or CharacterError when it is not a usable reference."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise CharacterError(f"{path} is not a file; give the path of a JPEG or PNG portrait")
    try:
        with Image.open(path) as img:
            img.load()
            size = img.size
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise CharacterError(f"{path.name} does not decode as a picture ({exc})") from None
    if min(size) < MIN_SHORT_SIDE:
        raise CharacterError(
            f"{path.name} is {size[0]}x{size[1]}; a character reference needs at least "
            f"{MIN_SHORT_SIDE} px on its short side"
        )
    return size


class CharacterStudio:
    """Characters per owner. Thin: the files, the rows, and calls to fal and the face scorer."""

    def __init__(
        self,
        engine: sa.Engine,
        home: Path,
        similarity: FaceSimilarity,
        fal: FalImages | None = None,
        image_maker: SceneImageMaker | None = None,
    ) -> None:
        self.engine = engine
        self.home = Path(home).resolve()
        self.similarity = similarity
        self.fal = fal
        self.image_maker = image_maker or SceneImageMaker()

    def folder(self, owner: str, name: str) -> Path:
        owner_dir = owner_folder(clean_owner(owner))
        return self.home / "owners" / owner_dir / "characters" / slug(name, "character name")

    # --- characters ---------------------------------------------------------------------------

    def create(
        self, owner: str, name: str, reference_image: Path, description: str = ""
    ) -> CharacterRecord:
        owner, name = clean_owner(owner), slug(name, "character name")
        check_reference(Path(reference_image))
        if self._row(owner, name) is not None:
            raise CharacterError(
                f"{owner} already has a character {name!r}; delete it first to replace it"
            )
        folder = self.folder(owner, name)
        folder.mkdir(parents=True, exist_ok=True)
        reference = folder / "reference.png"
        _save_png(Path(reference_image), reference)
        # A reference without a detectable face cannot anchor a likeness check: keep it, but
        # mark it failed so channels and variations refuse it with this reason.
        found = self.similarity.score(reference, reference).face_found
        error = None if found else (
            f"no face found in {Path(reference_image).name}; use a clear, front-facing portrait "
            "with the face at least 80 px wide"
        )  # fmt: skip
        row = {
            "id": uuid.uuid4().hex, "owner": owner, "name": name,
            "description": description.strip(),
            "reference_file": str(reference.relative_to(self.home)),
            "status": "ready" if found else "failed", "error": error,
        }  # fmt: skip
        with self.engine.begin() as conn:
            conn.execute(characters.insert().values(**row))
        return self.get(owner, name)

    def list(self, owner: str) -> list[CharacterRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(characters)
                .where(characters.c.owner == clean_owner(owner))
                .order_by(characters.c.name)
            ).mappings()
            return [CharacterRecord.model_validate(dict(r)) for r in rows]

    def get(self, owner: str, name: str) -> CharacterRecord:
        row = self._row(clean_owner(owner), slug(name, "character name"))
        if row is None:
            raise CharacterNotFoundError(
                f"owner {owner!r} has no character {name!r}; add one with "
                f"`factory characters add {name} IMAGE --owner {owner}`"
            )
        return CharacterRecord.model_validate(row)

    def reference(self, record: CharacterRecord) -> Path:
        return self.home / record.reference_file

    def delete(self, owner: str, name: str) -> None:
        record = self.get(owner, name)
        with self.engine.begin() as conn:
            # Explicitly, not by ON DELETE CASCADE: SQLite enforces foreign keys only when asked.
            conn.execute(
                character_images.delete().where(
                    (character_images.c.character_id == record.id)
                    & (character_images.c.owner == record.owner)
                )
            )
            conn.execute(
                characters.delete().where(
                    (characters.c.id == record.id) & (characters.c.owner == record.owner)
                )
            )
        shutil.rmtree(self.folder(record.owner, record.name), ignore_errors=True)

    # --- pictures of a character --------------------------------------------------------------

    def variations(
        self,
        owner: str,
        name: str,
        poses: list[str],
        emotions: list[str],
        backgrounds: list[str],
        *,
        model: str = REFERENCE_MODEL,
        api_key_env: str = "FAL_KEY",
    ) -> list[VariationRecord]:
        """One picture per pose x emotion x background, scored against the reference. With
        the fal key set they are generated (and their cost goes to the ledger); without it
        they are offline composites. A fal failure stops here with its reason; the pictures
        made so far are kept, and a rerun does not pay for them again."""
        record = self._usable(owner, name)
        reference = self.reference(record)
        folder = self.folder(record.owner, record.name) / "variations"
        folder.mkdir(parents=True, exist_ok=True)
        online = self.fal is not None and self.fal.available(api_key_env) is None
        prices = price_table(self.home) if online else None
        made: list[VariationRecord] = []
        for i, (pose, emotion, background) in enumerate(combinations(poses, emotions, backgrounds)):
            stem = "-".join(slugify(p) or "any" for p in (pose, emotion, background))
            out = folder / f"{stem}.png"
            seed = scene_seed(f"{record.owner}/{record.name}", i)
            if online:
                assert self.fal is not None
                lines = self.fal.with_reference(
                    model, variation_prompt(record.description, pose, emotion, background),
                    reference, seed, out, api_key_env=api_key_env, prices=prices,
                )  # fmt: skip
                self._record_costs(record.owner, lines)
            else:
                self.image_maker.procedural(
                    [w for w in (pose, emotion) if w], BrandKit(), f"{record.id}/{stem}", out,
                    character=reference,
                )  # fmt: skip
            score = self.similarity.score(reference, out)
            measure = score.measure if online else OFFLINE_MEASURE_PREFIX + score.measure
            made.append(self._store(
                record, "variation", out, score, measure,
                pose=pose, emotion=emotion, background=background,
            ))  # fmt: skip
        return made

    def record_scenes(
        self,
        owner: str,
        name: str,
        topic_key: str,
        scored: list[tuple[Path, SimilarityScore, str]],
    ) -> list[VariationRecord]:
        """A topic's scene pictures showing the character, with their scores; a rerun of the
        topic replaces its earlier rows instead of adding to them."""
        record = self.get(owner, name)
        with self.engine.begin() as conn:
            conn.execute(
                character_images.delete().where(
                    (character_images.c.character_id == record.id)
                    & (character_images.c.owner == record.owner)
                    & (character_images.c.kind == "scene")
                    & (character_images.c.topic_key == topic_key)
                )
            )
        return [
            self._store(record, "scene", path, score, measure, topic_key=topic_key)
            for path, score, measure in scored
        ]

    def images(self, owner: str, name: str, kind: str | None = None) -> list[VariationRecord]:
        record = self.get(owner, name)
        query = sa.select(character_images).where(
            (character_images.c.character_id == record.id)
            & (character_images.c.owner == record.owner)
        )
        if kind is not None:
            query = query.where(character_images.c.kind == kind)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(character_images.c.id)).mappings()
            return [self._variation(record, dict(r)) for r in rows]

    # --- internals ----------------------------------------------------------------------------

    def _usable(self, owner: str, name: str) -> CharacterRecord:
        record = self.get(owner, name)
        if record.status != "ready":
            raise CharacterError(f"character {record.name!r} is not usable: {record.error}")
        return record

    def _row(self, owner: str, name: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(characters).where(
                    (characters.c.owner == owner) & (characters.c.name == name)
                )
            ).mappings().first()  # fmt: skip
            return dict(row) if row else None

    def _store(
        self, record: CharacterRecord, kind: str, path: Path, score: SimilarityScore,
        measure: str, **fields: str,
    ) -> VariationRecord:  # fmt: skip
        file = str(path.resolve().relative_to(self.home))
        row = {
            "character_id": record.id, "owner": record.owner, "kind": kind, "file": file,
            "similarity": score.similarity, "measure": measure[:_MEASURE_LEN],
            "flagged": is_flagged(score), **fields,
        }  # fmt: skip
        with self.engine.begin() as conn:
            if kind == "variation":  # a rerun of the same combination replaces its row
                conn.execute(
                    character_images.delete().where(
                        (character_images.c.character_id == record.id)
                        & (character_images.c.owner == record.owner)
                        & (character_images.c.kind == kind)
                        & (character_images.c.file == file)
                    )
                )
            new_id = conn.execute(character_images.insert().values(**row)).inserted_primary_key
        return self._variation(record, {**row, "id": new_id[0]})

    @staticmethod
    def _variation(record: CharacterRecord, row: dict) -> VariationRecord:
        return VariationRecord(
            id=row["id"], owner=record.owner, character=record.name, kind=row["kind"],
            file=row["file"], pose=row.get("pose") or "", emotion=row.get("emotion") or "",
            background=row.get("background") or "", topic_key=row.get("topic_key") or "",
            similarity=row["similarity"], measure=row["measure"], flagged=bool(row["flagged"]),
        )  # fmt: skip

    def _record_costs(self, owner: str, lines: list[CostLine]) -> None:
        stamped = [line.model_copy(update={"stage": "character_variations"}) for line in lines]
        record_costs(self.engine, repriced(stamped, price_table(self.home)), owner=owner)


def _save_png(source: Path, target: Path) -> None:
    """The reference as an upright RGB PNG: phones store rotation in EXIF, models ignore it."""
    from PIL import Image, ImageOps

    with Image.open(source) as img:
        picture = ImageOps.exif_transpose(img).convert("RGB")
    tmp = target.with_name(f".{target.name}.tmp")
    picture.save(tmp, format="PNG")
    tmp.replace(target)
