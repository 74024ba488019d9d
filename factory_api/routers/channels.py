"""Channels: the caller's channels (a `ChannelProfile` each, in the tenancy's table) and their
brand files (logo, intro, outro, music) under `$FACTORY_HOME/channels/<name>/`, where the
pipeline looks for them (`MediaStore.brand_file`)."""

from __future__ import annotations

import shutil
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Query, Response, UploadFile
from pydantic import Field, ValidationError

from factory_api.auth import Caller, CallerDep
from factory_api.errors import ApiError
from factory_api.schemas import ERRORS, BrandFileOut
from factory_api.uploads import (
    CLIP_OR_IMAGE,
    IMAGE,
    MUSIC,
    UploadRule,
    remove_tree,
    safe_filename,
    save_upload,
)
from factory_core.models import ChannelProfile

router = APIRouter(prefix="/channels", tags=["channels"], responses=ERRORS)

BRAND_RULES: dict[str, UploadRule] = {"logo": IMAGE, "intro": CLIP_OR_IMAGE,
                                      "outro": CLIP_OR_IMAGE}  # fmt: skip
LOCKED_FIELDS = ("name", "owner")


class ChannelOut(ChannelProfile):
    files: list[str] = Field(default_factory=list, description="brand/ and music/ files.")


def _validation_error(exc: ValidationError) -> ApiError:
    errors = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
              for e in exc.errors()]  # fmt: skip
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    return ApiError(422, "validation_error", f"invalid channel settings: {summary}",
                    errors[0]["field"] if errors else None, errors=errors)  # fmt: skip


def _out(caller: Caller, profile: ChannelProfile) -> ChannelOut:
    folder = caller.services.store.channel_dir(profile.name)
    files = sorted(
        str(p.relative_to(folder)) for sub in ("brand", "music") if (folder / sub).is_dir()
        for p in (folder / sub).iterdir() if p.is_file() and not p.name.startswith(".")
    )  # fmt: skip
    return ChannelOut.model_validate({**profile.model_dump(), "files": files})


@router.post("", status_code=201, response_model=ChannelOut, summary="Create a channel")
def create_channel(caller: CallerDep, body: dict[str, Any]) -> ChannelOut:
    from factory_core.slugs import InvalidChannelError, channel_slug

    if "owner" in body and body["owner"] != caller.owner:
        raise ApiError(422, "validation_error", "owner is set by your API key; leave it out",
                       "owner")  # fmt: skip
    name = str(body.get("name") or "")
    try:
        slug = channel_slug(name)
    except InvalidChannelError as exc:
        raise ApiError(422, "validation_error", str(exc), "name") from None
    if slug != name:
        raise ApiError(422, "validation_error",
                       f"channel name {name!r} must be a slug; use {slug!r}", "name")  # fmt: skip
    try:
        profile = ChannelProfile.model_validate({**body, "owner": caller.owner})
    except ValidationError as exc:
        raise _validation_error(exc) from None
    # The tenancy checks the plan's channel quota and the name in one place.
    return _out(caller, caller.services.tenancy.create_channel(caller.owner, profile))


@router.get("", response_model=list[ChannelOut], summary="My channels")
def list_channels(caller: CallerDep) -> list[ChannelOut]:
    return [_out(caller, p) for p in caller.services.tenancy.list_channels(caller.owner)]


@router.get("/{name}", response_model=ChannelOut, summary="One of my channels")
def get_channel(caller: CallerDep, name: str) -> ChannelOut:
    return _out(caller, caller.services.owned_channel(caller.user, name, "name"))


@router.patch("/{name}", response_model=ChannelOut,
              summary="Change a channel's settings (deep-merged)")  # fmt: skip
def update_channel(caller: CallerDep, name: str, changes: dict[str, Any]) -> ChannelOut:
    caller.services.owned_channel(caller.user, name, "name")
    locked = [f for f in LOCKED_FIELDS if f in changes]
    if locked:
        raise ApiError(422, "validation_error",
                       f"{locked[0]} cannot be changed; create a new channel instead", locked[0])  # fmt: skip
    try:
        profile = caller.services.tenancy.update_channel(caller.owner, name, changes)
    except ValidationError as exc:
        raise _validation_error(exc) from None
    except ValueError as exc:  # the tenancy's InvalidChannelSettings: (field, reason) pairs
        pairs = [p for p in getattr(exc, "errors", None) or [] if isinstance(p, tuple)]
        errors = [{"field": field, "message": reason} for field, reason in pairs]
        raise ApiError(422, "validation_error", str(exc),
                       errors[0]["field"] if errors else None, errors=errors) from None  # fmt: skip
    return _out(caller, profile)


@router.delete("/{name}", status_code=204, summary="Delete a channel and its brand files")
def delete_channel(
    caller: CallerDep,
    name: str,
    delete_videos: Annotated[bool, Query(description="Also delete the channel's videos.")] = False,
) -> Response:
    svc = caller.services
    svc.owned_channel(caller.user, name, "name")
    keys = svc.topic_keys(caller.user, name)
    if keys and not delete_videos:
        # A freed name can be taken by someone else; the videos keyed by it must not pass on.
        raise ApiError(409, "channel_has_videos",
                       f"channel {name!r} has {len(keys)} videos; delete them with "
                       "?delete_videos=true, or keep the channel", "name")  # fmt: skip
    for key in keys:
        shutil.rmtree(svc.home / "topics" / key, ignore_errors=True)
    svc.tenancy.delete_channel(caller.owner, name)
    shutil.rmtree(svc.store.channel_dir(name), ignore_errors=True)
    return Response(status_code=204)


@router.put("/{name}/brand/{kind}", response_model=BrandFileOut,
            summary="Upload the channel's logo, intro or outro")  # fmt: skip
def upload_brand_file(
    caller: CallerDep,
    name: str,
    kind: Literal["logo", "intro", "outro"],
    file: Annotated[UploadFile, File(description="logo: an image; intro/outro: image or clip")],
) -> BrandFileOut:
    svc = caller.services
    svc.owned_channel(caller.user, name, "name")
    rule = BRAND_RULES[kind]
    folder = svc.store.channel_dir(name) / "brand"
    staging = svc.home / "cache" / "uploads" / uuid.uuid4().hex
    try:
        suffix = rule.check_name("file", file.filename or "")
        staged = staging / f"{kind}{suffix}"
        size = save_upload(file, "file", rule, staged)
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob(f"{kind}.*"):
            old.unlink(missing_ok=True)
        target = folder / staged.name
        staged.replace(target)
    finally:
        remove_tree(staging)
    return BrandFileOut(channel=name, kind=kind, file=f"brand/{target.name}", size_bytes=size)


@router.post("/{name}/music", status_code=201, response_model=BrandFileOut,
             summary="Add a music bed to the channel")  # fmt: skip
def upload_music(
    caller: CallerDep,
    name: str,
    file: Annotated[UploadFile, File(description="An .mp3, .wav or .m4a file, 50 MB at most")],
) -> BrandFileOut:
    svc = caller.services
    svc.owned_channel(caller.user, name, "name")
    folder = svc.store.channel_dir(name) / "music"
    staging = svc.home / "cache" / "uploads" / uuid.uuid4().hex
    try:
        staged = staging / safe_filename(file.filename or "", "music")
        size = save_upload(file, "file", MUSIC, staged)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / staged.name
        staged.replace(target)
    finally:
        remove_tree(staging)
    return BrandFileOut(channel=name, kind="music", file=f"music/{target.name}", size_bytes=size)
