"""Request and response bodies of the API (what /docs shows)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from factory_core.models import Language


class ErrorBody(BaseModel):
    code: str
    message: str
    field: str | None = None


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No valid API key."},
    404: {"model": ErrorBody, "description": "Not found, or not yours."},
}


# --- voices -----------------------------------------------------------------------------------


class VoiceOut(BaseModel):
    name: str
    provider: str
    language: Language
    status: str
    error: str | None = None
    settings: dict[str, Any] = Field(default_factory=dict)
    samples: list[dict[str, Any]] = Field(default_factory=list)
    usage_count: int = 0
    chars_per_second: float | None = None
    created_at: datetime | None = None


class OfflineVoiceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=120)
    language: Language = Language.EN
    speed: float = Field(1.0, ge=0.7, le=1.4)
    pitch: float = Field(0.0, ge=-12, le=12)


class SpeakIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(None, max_length=5000, description="None: the voice's test phrase.")


class GenerateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=5000)


# --- characters -------------------------------------------------------------------------------


class CharacterOut(BaseModel):
    name: str
    description: str
    status: str
    error: str | None = None
    created_at: datetime | None = None


class VariationsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    poses: list[str] = Field(default_factory=lambda: ["front"], max_length=6)
    emotions: list[str] = Field(default_factory=lambda: ["calm"], max_length=6)
    backgrounds: list[str] = Field(default_factory=list, max_length=6)


class VariationOut(BaseModel):
    file: str
    pose: str
    emotion: str
    background: str
    similarity: float | None
    measure: str
    flagged: bool


class CharacterPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = Field(max_length=2000)


# --- channels ---------------------------------------------------------------------------------


class BrandFileOut(BaseModel):
    channel: str
    kind: str
    file: str
    size_bytes: int


# --- videos -----------------------------------------------------------------------------------


class TopicIn(BaseModel):
    """One topic, with the fields of a topic file's row (validated by the same code)."""

    model_config = ConfigDict(extra="forbid")

    topic: str = Field(min_length=1, max_length=500)
    language: str | None = Field(None, description="en or ru; detected from the text if empty.")
    duration: float | None = Field(None, description="15 to 60 seconds; default 30.")
    style: str | None = Field(None, max_length=40)
    script: str | None = Field(None, max_length=3000, description="Your own narration.")


class VideoIn(TopicIn):
    channel: str


class VideoCreated(BaseModel):
    key: str
    channel: str
    run_id: str | None
    state: str = "queued"


class ProgressOut(BaseModel):
    key: str
    state: str
    stage: str | None = None
    stages_done: list[str] = Field(default_factory=list)
    progress: float = 0.0
    eta_s: float | None = None
    run_id: str | None = None
    reason: str | None = None
    updated_at: datetime | None = None


class VideoOut(BaseModel):
    key: str
    channel: str
    topic: str
    language: Language
    duration_s: float
    status: ProgressOut


class FileOut(BaseModel):
    name: str
    size_bytes: int
    download: str | None = Field(None, description="The download URL, for downloadable files.")


class VideoDetail(VideoOut):
    files: list[FileOut]
    script: dict[str, Any] | None = None
    voiceover: dict[str, Any] | None = None


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: str
    topics: list[TopicIn | str] = Field(min_length=1, max_length=1000)


class BatchRow(BaseModel):
    row: int
    topic: str
    status: str  # accepted | duplicate | rejected
    key: str | None = None
    reason: str | None = None
    state: str | None = None
    stage: str | None = None
    progress: float | None = None
    eta_s: float | None = None


class BatchOut(BaseModel):
    id: str
    channel: str
    backfill_id: str | None
    created_at: datetime
    accepted: int
    rejected: int
    rows: list[BatchRow]


# --- publishing -------------------------------------------------------------------------------


class PublishIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    when: Literal["now", "calendar", "at"] = Field(
        "now", description="now; at the channel's next posting slot; or `at` a time."
    )
    at: AwareDatetime | None = Field(
        None, description="With when=at: an RFC 3339 time with a zone (YouTube's publish_at)."
    )


class PublishOut(BaseModel):
    key: str
    run_id: str | None
    when: str
    at: datetime | None = None
    note: str


class PublicationOut(BaseModel):
    platform: str
    account: str
    state: str
    post_id: str | None = None
    url: str | None = None
    error: str | None = None
    attempts: int = 0
    published_at: datetime | None = None


class AccountOut(BaseModel):
    channel: str
    platform: str
    account_name: str
    status: str
    expires_at: datetime | None = None
    scopes: list[str] = Field(default_factory=list)
    error: str | None = None


class ConnectOut(BaseModel):
    authorize_url: str
    redirect_uri: str
    expires_in_s: int


class ConnectedOut(BaseModel):
    channel: str
    platform: str
    account_name: str
    expires_at: datetime | None = None
    scopes: list[str] = Field(default_factory=list)
