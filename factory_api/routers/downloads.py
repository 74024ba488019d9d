"""Downloads of a video's finished files: the MP4s, covers and subtitles, by name from a
fixed list. The name is never joined into a path unless it is on the list, and the file must
be a regular file (not a symlink) inside the caller's own topic folder."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from factory_api.auth import CallerDep
from factory_api.errors import not_found
from factory_api.routers.videos import DOWNLOADABLE
from factory_api.schemas import ERRORS

router = APIRouter(prefix="/videos", tags=["downloads"], responses=ERRORS)

MEDIA_TYPES = {".mp4": "video/mp4", ".jpg": "image/jpeg", ".srt": "application/x-subrip",
               ".ass": "text/x-ssa"}  # fmt: skip


@router.get("/{key}/files/{name}", response_class=FileResponse,
            summary="Download video.mp4, a cover or the subtitles")  # fmt: skip
def download_file(caller: CallerDep, key: str, name: str) -> FileResponse:
    svc = caller.services
    svc.owned_topic(caller.user, key)
    if name not in DOWNLOADABLE:
        raise not_found("file", name, "name")
    folder = (svc.home / "topics" / key).resolve()
    path = folder / name
    # A symlink planted in the folder could point anywhere; only real files inside it are sent.
    if path.is_symlink() or not path.is_file() or path.resolve().parent != folder:
        raise not_found("file", name, "name")
    suffix = path.suffix.lower()
    return FileResponse(path, media_type=MEDIA_TYPES[suffix], filename=f"{key}-{name}")
