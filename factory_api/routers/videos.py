"""Videos (one topic each) and batches: create-short, projects, detail, status; many topics
at once with one backfill. Topics are validated by the topic files' own code
(`parse_topic_file`), keyed by `topic_key`, counted against the plan, recorded with
`MediaStore.save_request` and launched through the Dagster bridge, tagged with the owner and
channel so the Dagster UI filters runs by them."""

from __future__ import annotations

import json
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import TypeAdapter

from factory_api.auth import Caller, CallerDep
from factory_api.errors import ApiError
from factory_api.schemas import (
    ERRORS,
    BatchIn,
    BatchOut,
    BatchRow,
    FileOut,
    ProgressOut,
    TopicIn,
    VideoCreated,
    VideoDetail,
    VideoIn,
    VideoOut,
)
from factory_core.models import ChannelProfile, TopicRequest
from factory_core.run_tags import BATCH_TAG, CHANNEL_TAG, OWNER_TAG

router = APIRouter(prefix="/videos", tags=["videos"], responses=ERRORS)
batches = APIRouter(prefix="/batches", tags=["videos"], responses=ERRORS)

DOWNLOADABLE = frozenset({
    "video.mp4", "video_1x1.mp4", "video_16x9.mp4", "cover_9x16.jpg", "cover_16x9.jpg",
    "thumbnail.jpg", "captions.srt", "captions.ass",
})  # fmt: skip
_ROW_FIELDS = ("topic", "language", "duration", "script", "style", "narration")


def run_tags(owner: str, channel: str, **extra: str) -> dict[str, str]:
    return {OWNER_TAG: owner, CHANNEL_TAG: channel, **extra}


def _launch_error(exc: Exception) -> ApiError:
    from factory_resources.faults import redact

    return ApiError(502, "launch_failed",
                    f"Dagster did not take the run ({redact(str(exc))[:300]}); nothing was "
                    "counted, try again in a moment")  # fmt: skip


def _field_of(reason: str) -> str | None:
    first = reason.split(" ", 1)[0]
    return first if first in _ROW_FIELDS else None


def _rows(topics: list[TopicIn | str]) -> bytes:
    """The topics as a topic file (JSON is YAML), so the topic files' own validation runs."""
    rows = [{"topic": t} if isinstance(t, str) else t.model_dump(exclude_none=True)
            for t in topics]  # fmt: skip
    return json.dumps(rows, ensure_ascii=False).encode()


def parse_topics(profile: ChannelProfile, topics: list[TopicIn | str], existing: list[str]) -> Any:
    from factory_core.topics_file import TopicFileError, parse_topic_file

    try:
        return parse_topic_file("api.yaml", _rows(topics), channel=profile.name,
                                default_duration_s=profile.target_duration_s,
                                existing_keys=existing)  # fmt: skip
    except TopicFileError as exc:
        raise ApiError(422, "validation_error", str(exc).replace("api.yaml: ", ""),
                       "topics") from None  # fmt: skip


def progress_of(caller: Caller, keys: list[str]) -> dict[str, ProgressOut]:
    if not keys:
        return {}
    found = caller.services.bridge.topic_progress(keys)
    return {key: ProgressOut.model_validate(found[key].model_dump()) if key in found
            else ProgressOut(key=key, state="unknown") for key in keys}  # fmt: skip


def _video(request: TopicRequest, status: ProgressOut) -> dict[str, Any]:
    return {"key": request.key, "channel": request.channel, "topic": request.topic,
            "language": request.language, "duration_s": request.duration_s, "status": status}  # fmt: skip


@router.post("", status_code=202, response_model=VideoCreated,
             responses={403: {"description": "Over the plan's videos this month."},
                        409: {"description": "The channel already has this topic."}},
             summary="Create a short from one topic")  # fmt: skip
def create_video(caller: CallerDep, body: VideoIn) -> VideoCreated:
    svc = caller.services
    profile = svc.owned_channel(caller.user, body.channel)
    batch = parse_topics(
        profile, [TopicIn.model_validate(body.model_dump(exclude={"channel"}))], []
    )
    verdict = batch.verdicts[0]
    if verdict.status != "accepted":
        reason = verdict.reason or "rejected"
        raise ApiError(422, "validation_error", reason, _field_of(reason))
    request = batch.accepted[0]
    folder = svc.home / "topics" / request.key
    if (folder / "request.json").is_file():
        raise ApiError(409, "video_exists",
                       f"channel {profile.name!r} already has this topic as {request.key}; see "
                       f"GET /v1/videos/{request.key}", "topic", key=request.key)  # fmt: skip
    svc.tenancy.check_quota(caller.owner, "videos")
    svc.store.save_request(request)
    try:
        launched = svc.bridge.create_short(request.key, tags=run_tags(caller.owner, profile.name))
    except ApiError:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    except Exception as exc:
        shutil.rmtree(folder, ignore_errors=True)  # not launched: the same call may be retried
        raise _launch_error(exc) from None
    svc.tenancy.record_video(caller.owner, request.key)
    return VideoCreated(key=request.key, channel=profile.name, run_id=launched.run_id)


_VIDEO_LIST = TypeAdapter(list[VideoOut])


@router.get("", response_model=list[VideoOut], summary="My videos (projects), newest first")
def list_videos(
    caller: CallerDep,
    channel: Annotated[str | None, Query(description="Only this channel's.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    svc = caller.services
    if channel is not None:
        svc.owned_channel(caller.user, channel)
    keys = svc.topic_keys(caller.user, channel)[offset : offset + limit]
    states = progress_of(caller, keys)
    out = []
    for key in keys:
        path = svc.home / "topics" / key / "request.json"
        try:
            request = svc.topic_request(path)
        except (OSError, ValueError):
            continue  # deleted or half-written meanwhile: it shows on the next call
        out.append(VideoOut.model_validate(_video(request, states[key])))
    # Serialized here, once: returning the models would validate all of them a second time
    # against response_model (a third of this endpoint's cost for 100 videos).
    return Response(_VIDEO_LIST.dump_json(out), media_type="application/json")


def _files(folder: Path, key: str) -> list[FileOut]:
    files = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if (
            path.is_symlink()
            or not path.is_file()
            or any(p.startswith(".") for p in relative.parts)
        ):
            continue
        name = relative.as_posix()
        files.append(FileOut(name=name, size_bytes=path.stat().st_size,
                             download=f"/v1/videos/{key}/files/{name}"
                             if name in DOWNLOADABLE else None))  # fmt: skip
    return files


def _json_file(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@router.get("/{key}", response_model=VideoDetail, summary="A video: files, script, voiceover")
def get_video(caller: CallerDep, key: str) -> VideoDetail:
    request = caller.services.owned_topic(caller.user, key)
    folder = caller.services.home / "topics" / key
    voiceover = _json_file(folder / "voiceover.json")
    if voiceover is not None:
        # Word timings are the captions' business and can run to thousands of entries.
        voiceover["words"] = len(voiceover.get("words") or [])
    return VideoDetail.model_validate({
        **_video(request, progress_of(caller, [key])[key]),
        "files": _files(folder, key),
        "script": _json_file(folder / "script.json"),
        "voiceover": voiceover,
    })  # fmt: skip


@router.get("/{key}/status", response_model=ProgressOut, summary="Stage, progress and ETA")
def video_status(caller: CallerDep, key: str) -> ProgressOut:
    caller.services.owned_topic(caller.user, key)
    return progress_of(caller, [key])[key]


# --- batches ----------------------------------------------------------------------------------


def _batch_out(caller: Caller, record: dict[str, Any]) -> BatchOut:
    keys = [r["key"] for r in record["rows"] if r["status"] == "accepted"]
    # A duplicate row names the topic the channel already has: its state is shown too.
    states = progress_of(caller, list(dict.fromkeys(r["key"] for r in record["rows"] if r["key"])))
    rows = []
    for row in record["rows"]:
        status = states.get(row["key"]) if row["key"] else None
        rows.append(BatchRow.model_validate({
            **row,
            "state": status.state if status else None,
            "stage": status.stage if status else None,
            "progress": status.progress if status else None,
            "eta_s": status.eta_s if status else None,
            "reason": (status.reason if status and status.reason else row.get("reason")),
        }))  # fmt: skip
    return BatchOut(
        id=record["id"], channel=record["channel"], backfill_id=record.get("backfill_id"),
        created_at=datetime.fromisoformat(record["created_at"]), accepted=len(keys),
        rejected=len(record["rows"]) - len(keys), rows=rows,
    )  # fmt: skip


@batches.post("", status_code=202, response_model=BatchOut,
              summary="Create many shorts: partitions and one backfill")  # fmt: skip
def create_batch(caller: CallerDep, body: BatchIn) -> BatchOut:
    from factory_resources.tenancy import QuotaExceeded

    svc = caller.services
    profile = svc.owned_channel(caller.user, body.channel)
    parsed = parse_topics(profile, body.topics, svc.topic_keys(caller.user, profile.name))
    rows = [v.model_dump() for v in parsed.verdicts]
    by_key = {r.key: r for r in parsed.accepted}
    launching: list[TopicRequest] = []
    for row in rows:
        if row["status"] != "accepted":
            continue
        try:  # one topic over the plan is reported on its row; the topics before it go ahead
            svc.tenancy.check_quota(caller.owner, "videos", adding=len(launching) + 1)
        except QuotaExceeded as exc:
            row.update(status="rejected", reason=str(exc))
            continue
        launching.append(by_key[row["key"]])
    backfill_id = None
    batch_id = uuid.uuid4().hex
    if launching:
        for request in launching:
            svc.store.save_request(request)
        keys = [r.key for r in launching]
        try:
            launched = svc.bridge.create_batch(
                keys, tags=run_tags(caller.owner, profile.name, **{BATCH_TAG: batch_id})
            )
        except Exception as exc:
            for key in keys:
                shutil.rmtree(svc.home / "topics" / key, ignore_errors=True)
            if isinstance(exc, ApiError):
                raise
            raise _launch_error(exc) from None
        backfill_id = launched.backfill_id
        for key in keys:
            svc.tenancy.record_video(caller.owner, key)
    record = {"id": batch_id, "owner": caller.owner, "channel": profile.name,
              "backfill_id": backfill_id, "created_at": datetime.now(UTC).isoformat(),
              "rows": rows}  # fmt: skip
    svc.save_batch(batch_id, record)
    return _batch_out(caller, record)


@batches.get("/{batch_id}", response_model=BatchOut, summary="Each topic's state and reason")
def get_batch(caller: CallerDep, batch_id: str) -> Response:
    out = _batch_out(caller, caller.services.load_batch(caller.user, batch_id))
    # Serialized once, as list_videos does: polled often, and rows grow with the batch.
    return Response(out.model_dump_json(), media_type="application/json")
