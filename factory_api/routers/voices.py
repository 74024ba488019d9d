"""Voices: clone from samples (checked here first), offline profiles, test, settings, delete,
generate. Everything goes through the voice studio with the caller as the owner."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, File, Form, Response, UploadFile
from fastapi.responses import FileResponse

from factory_api.auth import Caller, CallerDep
from factory_api.errors import ApiError, not_found
from factory_api.schemas import ERRORS, GenerateIn, OfflineVoiceIn, SpeakIn, VoiceOut
from factory_api.uploads import AUDIO_SAMPLE, check_count, remove_tree, safe_filename, save_upload
from factory_core.models import Language

router = APIRouter(prefix="/voices", tags=["voices"], responses=ERRORS)

MAX_SAMPLES = 25


def _out(record: Any) -> VoiceOut:
    return VoiceOut.model_validate(record.model_dump())


def _studio_error(exc: Exception, field: str | None = None) -> ApiError:
    message = str(exc)
    status = 409 if "already has a voice" in message else 422
    return ApiError(status, "voice_name_taken" if status == 409 else "invalid_voice", message,
                    field)  # fmt: skip


def _owned(caller: Caller, name: str) -> Any:
    record = caller.services.voice_studio().find(caller.owner, name)
    if record is None:
        raise not_found("voice", name, "name")
    return record


@router.post("", status_code=201, response_model=VoiceOut,
             summary="Clone a voice from 1-25 samples (checked locally first)")  # fmt: skip
def clone_voice(
    caller: CallerDep,
    name: Annotated[str, Form(min_length=1, max_length=120)],
    files: Annotated[list[UploadFile], File(description="1-25 audio samples, 10 MB each")],
    language: Annotated[Language, Form()] = Language.EN,
    description: Annotated[str, Form(max_length=500)] = "",
) -> VoiceOut:
    from factory_resources.voice_studio import SamplesRejectedError, VoiceStudioError

    check_count("files", files, 1, MAX_SAMPLES, "audio samples (at least 30 s in total)")
    svc = caller.services
    studio = svc.voice_studio()
    existing = studio.find(caller.owner, name)
    if existing is not None and existing.status != "failed":
        raise ApiError(409, "voice_name_taken", f"you already have a voice named {name!r}; "
                       "delete it first or choose another name", "name")  # fmt: skip
    svc.tenancy.check_quota(caller.owner, "voice_clones")
    folder = svc.home / "cache" / "uploads" / uuid.uuid4().hex
    try:
        paths: list[Path] = []
        for i, upload in enumerate(files):
            # An index prefix: two takes both called `take.wav` stay two files.
            target = folder / f"{i + 1:02d}-{safe_filename(upload.filename or '', 'sample')}"
            save_upload(upload, f"files[{i}]", AUDIO_SAMPLE, target)
            paths.append(target)
        try:
            record = studio.clone(caller.owner, name, paths, language, description)
        except SamplesRejectedError as exc:
            raise ApiError(
                422, "samples_rejected",
                "samples rejected; nothing was sent to ElevenLabs: "
                + "; ".join(exc.report.reasons()),
                "files", samples=exc.report.model_dump(mode="json")["samples"],
            ) from None  # fmt: skip
        except VoiceStudioError as exc:
            if "without ElevenLabs" in str(exc):
                raise ApiError(503, "cloning_unavailable", str(exc)) from None
            raise _studio_error(exc, "name") from None
    finally:
        remove_tree(folder)
    if record.status != "ready":
        raise ApiError(502, "clone_failed",
                       f"ElevenLabs refused to clone {name!r}: {record.error}; try other "
                       "samples or again later", "files")  # fmt: skip
    return _out(record)


@router.post("/offline", status_code=201, response_model=VoiceOut,
             summary="Make an offline voice profile (no key needed)")  # fmt: skip
def create_offline_voice(caller: CallerDep, body: OfflineVoiceIn) -> VoiceOut:
    from factory_resources.voice_studio import VoiceStudioError

    try:
        record = caller.services.voice_studio().create_offline(
            caller.owner, body.name, body.language, speed=body.speed, pitch=body.pitch
        )
    except VoiceStudioError as exc:
        raise _studio_error(exc, "name") from None
    return _out(record)


@router.get("", response_model=list[VoiceOut], summary="My voices")
def list_voices(caller: CallerDep) -> list[VoiceOut]:
    return [_out(r) for r in caller.services.voice_studio().list(caller.owner)]


def _speak(caller: Caller, name: str, text: str | None, background: BackgroundTasks,
           count_use: bool) -> FileResponse:  # fmt: skip
    from factory_resources.faults import ProviderError
    from factory_resources.voice_studio import VoiceStudioError

    record = _owned(caller, name)
    out = caller.services.home / "cache" / "voice-tests" / f"{uuid.uuid4().hex}.wav"
    try:
        spoken = caller.services.voice_studio().test(caller.owner, record.name, text, out,
                                                     count_use=count_use)  # fmt: skip
    except VoiceStudioError as exc:
        raise ApiError(409, "voice_not_ready", str(exc), "name") from None
    except ProviderError as exc:
        raise ApiError(502, "provider_failed", str(exc)) from None
    background.add_task(out.unlink, missing_ok=True)  # sent once, then gone
    return FileResponse(
        out, media_type="audio/wav", filename=f"{safe_filename(record.name, 'voice')}.wav",
        headers={"X-Duration-S": f"{spoken.duration_s:.2f}", "X-Words": str(len(spoken.words))},
    )  # fmt: skip


@router.post("/{name}/test", response_class=FileResponse, summary="Hear a test phrase (WAV)",
             responses={200: {"content": {"audio/wav": {}}}})  # fmt: skip
def test_voice(
    caller: CallerDep, name: str, background: BackgroundTasks, body: SpeakIn | None = None
) -> FileResponse:
    return _speak(caller, name, body.text if body else None, background, count_use=True)


@router.post("/{name}/generate", response_class=FileResponse, summary="Text to speech (WAV)",
             responses={200: {"content": {"audio/wav": {}}}})  # fmt: skip
def generate_speech(
    caller: CallerDep, name: str, body: GenerateIn, background: BackgroundTasks
) -> FileResponse:
    return _speak(caller, name, body.text, background, count_use=True)


@router.patch("/{name}/settings", response_model=VoiceOut, summary="Change a voice's settings")
def update_voice_settings(caller: CallerDep, name: str, settings: dict[str, Any]) -> VoiceOut:
    from factory_resources.faults import ProviderError
    from factory_resources.voice_studio import VoiceStudioError

    record = _owned(caller, name)
    try:
        updated = caller.services.voice_studio().update_settings(
            caller.owner, record.name, **settings
        )
    except VoiceStudioError as exc:
        raise ApiError(422, "invalid_settings", str(exc), "settings") from None
    except ProviderError as exc:
        raise ApiError(502, "provider_failed", str(exc)) from None
    return _out(updated)


@router.delete("/{name}", status_code=204, summary="Delete a voice (also at ElevenLabs)")
def delete_voice(caller: CallerDep, name: str) -> Response:
    from factory_resources.faults import ProviderError
    from factory_resources.voice_studio import VoiceStudioError

    record = _owned(caller, name)
    try:
        caller.services.voice_studio().delete(caller.owner, record.name)
    except VoiceStudioError as exc:
        raise ApiError(409, "voice_error", str(exc), "name") from None
    except ProviderError as exc:
        raise ApiError(502, "provider_failed", str(exc)) from None
    return Response(status_code=204)
