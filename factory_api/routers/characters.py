"""Characters: a reference portrait and a description, variations scored for likeness,
description updates and deletion, through the character studio with the caller as owner."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, File, Form, Response, UploadFile

from factory_api.auth import Caller, CallerDep
from factory_api.errors import ApiError, not_found
from factory_api.schemas import ERRORS, CharacterOut, CharacterPatch, VariationOut, VariationsIn
from factory_api.uploads import IMAGE, remove_tree, safe_filename, save_upload

router = APIRouter(prefix="/characters", tags=["characters"], responses=ERRORS)


def _out(record: Any) -> CharacterOut:
    return CharacterOut.model_validate(record.model_dump())


def _owned(caller: Caller, name: str) -> Any:
    from factory_resources.character_studio import CharacterError

    studio = caller.services.character_studio()
    try:
        return studio.get(caller.owner, name)
    except CharacterError:  # not found, or a name with nothing to slug: neither is yours
        raise not_found("character", name, "name") from None


@router.post("", status_code=201, response_model=CharacterOut,
             summary="Add a character from a reference portrait")  # fmt: skip
def create_character(
    caller: CallerDep,
    name: Annotated[str, Form(min_length=1, max_length=60)],
    image: Annotated[UploadFile, File(description="A JPEG, PNG or WebP portrait, 10 MB at most")],
    description: Annotated[str, Form(max_length=2000)] = "",
) -> CharacterOut:
    from factory_resources.character_studio import CharacterError, slug

    svc = caller.services
    studio = svc.character_studio()
    try:
        slug(name, "character name")
    except CharacterError as exc:
        raise ApiError(422, "invalid_name", str(exc), "name") from None
    try:
        studio.get(caller.owner, name)
        raise ApiError(409, "character_exists", f"you already have a character {name!r}; "
                       "delete it first to replace it", "name")  # fmt: skip
    except CharacterError:
        pass
    svc.tenancy.check_quota(caller.owner, "characters")
    folder = svc.home / "cache" / "uploads" / uuid.uuid4().hex
    try:
        target = folder / safe_filename(image.filename or "", "reference")
        save_upload(image, "image", IMAGE, target)
        try:
            record = studio.create(caller.owner, name, target, description)
        except CharacterError as exc:
            raise ApiError(422, "invalid_reference", str(exc), "image") from None
    finally:
        remove_tree(folder)
    return _out(record)


@router.get("", response_model=list[CharacterOut], summary="My characters")
def list_characters(caller: CallerDep) -> list[CharacterOut]:
    return [_out(r) for r in caller.services.character_studio().list(caller.owner)]


@router.post("/{name}/variations", response_model=list[VariationOut],
             summary="Pictures of the character per pose x emotion x background")  # fmt: skip
def make_variations(caller: CallerDep, name: str, body: VariationsIn) -> list[VariationOut]:
    from factory_resources.character_studio import CharacterError
    from factory_resources.faults import ProviderError

    record = _owned(caller, name)
    try:
        made = caller.services.character_studio().variations(
            caller.owner, record.name, body.poses, body.emotions, body.backgrounds
        )
    except CharacterError as exc:
        raise ApiError(409, "character_not_usable", str(exc), "name") from None
    except ProviderError as exc:
        raise ApiError(502, "provider_failed", str(exc)) from None
    return [VariationOut.model_validate(v.model_dump()) for v in made]


@router.patch("/{name}", response_model=CharacterOut, summary="Change a character's description")
def update_character(caller: CallerDep, name: str, body: CharacterPatch) -> CharacterOut:
    from factory_resources.project_db import characters

    record = _owned(caller, name)
    # CharacterStudio has no update; the row is changed here, by id *and* owner.
    with caller.services.engine.begin() as conn:
        conn.execute(
            sa.update(characters)
            .where((characters.c.id == record.id) & (characters.c.owner == caller.owner))
            .values(description=body.description.strip())
        )
    return _out(_owned(caller, record.name))


@router.delete("/{name}", status_code=204, summary="Delete a character and its pictures")
def delete_character(caller: CallerDep, name: str) -> Response:
    record = _owned(caller, name)
    caller.services.character_studio().delete(caller.owner, record.name)
    return Response(status_code=204)
