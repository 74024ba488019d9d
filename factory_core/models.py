"""Domain models: the contracts between the factory's stages.

Pure pydantic, no I/O. Every stage reads and writes these as JSON beside its media files.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from factory_core.posting_slots import PostingCalendar

HEX_COLOUR = r"^#[0-9A-Fa-f]{6}$"


class Language(StrEnum):
    EN = "en"
    RU = "ru"


class BrandKit(BaseModel):
    """A channel's colours and marks; every procedural picture and caption uses them."""

    model_config = ConfigDict(extra="forbid")

    primary: str = Field("#14213D", pattern=HEX_COLOUR)
    secondary: str = Field("#2A9D8F", pattern=HEX_COLOUR)
    accent: str = Field("#FFD166", pattern=HEX_COLOUR)
    text: str = Field("#FFFFFF", pattern=HEX_COLOUR)
    handle: str = Field("", max_length=40, description="Shown as a watermark, e.g. @mychannel.")


class CaptionStyle(BaseModel):
    """How a channel's captions look. Colours default to the brand kit's text and accent."""

    model_config = ConfigDict(extra="forbid")

    font: Literal["DejaVu Sans", "DejaVu Serif", "DejaVu Sans Mono"] = "DejaVu Sans"
    size: int = Field(84, ge=40, le=140, description="Pixels at 1080 wide.")
    colour: str | None = Field(None, pattern=HEX_COLOUR)
    highlight: str | None = Field(None, pattern=HEX_COLOUR)
    outline_colour: str = Field("#000000", pattern=HEX_COLOUR)
    position: Literal["lower", "middle", "upper"] = "lower"
    uppercase: bool = False


class ScriptProviderSettings(BaseModel):
    """Who writes a channel's scripts. `openai` is any OpenAI-compatible endpoint (OpenAI, a
    local Ollama or vLLM, a gateway); without its key the chain goes on to the next writer."""

    model_config = ConfigDict(extra="forbid")

    chain: list[Literal["openai", "offline"]] = Field(
        default_factory=lambda: ["offline"], min_length=1
    )
    model: str = "gpt-4o-mini"
    base_url: str | None = Field(None, description="None: the provider's own endpoint.")
    api_key_env: str = Field("OPENAI_API_KEY", description="The variable that holds the key.")
    temperature: float = Field(0.7, ge=0, le=2)
    tone: str = Field("", max_length=200, description="E.g. 'warm, plain words, no hype'.")


class VoiceProviderSettings(BaseModel):
    """Who speaks a channel's narration, in order of preference."""

    model_config = ConfigDict(extra="forbid")

    chain: list[Literal["elevenlabs", "offline"]] = Field(
        default_factory=lambda: ["offline"], min_length=1
    )
    voice: str | None = Field(None, description="A voice name from the owner's voice studio.")
    model_id: str = "eleven_multilingual_v2"
    output_format: str = "mp3_44100_128"
    api_key_env: str = "ELEVENLABS_API_KEY"


class ImageProviderSettings(BaseModel):
    """Who draws a channel's scenes, in order of preference; `procedural` never fails."""

    model_config = ConfigDict(extra="forbid")

    chain: list[Literal["fal", "procedural"]] = Field(
        default_factory=lambda: ["procedural"], min_length=1
    )
    model: str = "fal-ai/flux/schnell"
    character: str | None = Field(None, description="A character name from the owner's studio.")
    api_key_env: str = "FAL_KEY"


class TranscriptionSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: Literal["local", "openai"] = "local"
    model: str = "whisper-1"
    api_key_env: str = "OPENAI_API_KEY"
    base_url: str | None = None


class ProviderSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    script: ScriptProviderSettings = Field(default_factory=ScriptProviderSettings)
    voice: VoiceProviderSettings = Field(default_factory=VoiceProviderSettings)
    images: ImageProviderSettings = Field(default_factory=ImageProviderSettings)
    transcription: TranscriptionSettings = Field(default_factory=TranscriptionSettings)


PublishPlatform = Literal["youtube", "tiktok", "instagram", "x", "telegram"]


class PublishingSettings(BaseModel):
    """Where and when a channel's finished videos go. Offline default: every platform's outbox
    folder (`$FACTORY_HOME/outbox/<channel>/<platform>/`), so nothing leaves the machine unasked,
    and as soon as the video passes its checks."""

    model_config = ConfigDict(extra="forbid")

    platforms: list[PublishPlatform] = Field(
        default_factory=lambda: ["youtube", "tiktok", "instagram", "x", "telegram"],
        description="One post per platform; an empty list publishes nothing.",
    )
    publisher: Literal["outbox", "accounts"] = Field(
        "outbox",
        description="outbox: write each post to a folder for review, post nothing. accounts: "
        "post through the channel's connected accounts (`factory accounts connect`).",
    )
    link: str | None = Field(None, description="An http(s) link added to every post's text.")
    calendar: PostingCalendar | None = Field(
        None,
        description="Posting slots (time zone, times, weekdays): each topic takes the next free "
        "slot. None: post as soon as the video is ready.",
    )
    post: dict[str, object] = Field(
        default_factory=dict,
        description="Defaults for every post (privacy, category_id, made_for_kids, hashtags, "
        "extra_text, ...), as in a topic's post.yaml; fitted to each platform all the same.",
    )

    @field_validator("post")
    @classmethod
    def _post_overrides(cls, value: dict[str, object]) -> dict[str, object]:
        # Imported here: publish_metadata builds on this module.
        from factory_core.publish_metadata import PostOverrides

        PostOverrides.model_validate(value)  # a bad default fails when the channel loads
        return value


class ChannelProfile(BaseModel):
    """Per-channel settings, read from `$FACTORY_HOME/channels/<channel>/channel.yaml`."""

    model_config = ConfigDict(extra="forbid")

    name: str
    owner: str = Field("default", description="Whose voices, characters and accounts it uses.")
    language: Language = Language.EN
    style: str = "explainer"
    target_duration_s: float = Field(30.0, ge=15, le=60)
    brand: BrandKit = Field(default_factory=BrandKit)
    music_volume_db: float = Field(
        -20.0, ge=-40, le=0, description="Music bed level before ducking."
    )
    voice_speed: float = Field(1.0, ge=0.7, le=1.4, description="1.2 speaks 20% faster.")
    captions: CaptionStyle = Field(default_factory=CaptionStyle)
    aspects: list[Literal["9:16", "1:1", "16:9"]] = Field(
        default_factory=lambda: ["9:16"],
        min_length=1,
        description="The first is video.mp4; others render beside it as video_1x1.mp4 etc.",
    )
    renderer: Literal["ffmpeg", "moviepy"] = "ffmpeg"
    logo_corner: Literal["top_left", "top_right", "bottom_left", "bottom_right"] = "top_right"
    logo_opacity: float = Field(0.8, ge=0.05, le=1.0)
    bumper_s: float = Field(1.5, gt=0.2, le=2.0, description="Intro and outro length.")
    cover_from: Literal["scene", "frame"] = Field(
        "scene", description="Covers from the hook scene's picture, or from a video frame."
    )
    cover_frame_s: float | None = Field(
        None, ge=0, description="With cover_from: frame, the second to take (default: mid-hook)."
    )
    providers: ProviderSettings = Field(default_factory=ProviderSettings)
    publishing: PublishingSettings = Field(default_factory=PublishingSettings)


class TopicRequest(BaseModel):
    """One validated row of a topic batch: what the factory is asked to make."""

    model_config = ConfigDict(extra="forbid")

    key: str
    channel: str
    topic: str = Field(description="The topic text as the user gave it (cleaned of control chars).")
    language: Language = Language.EN
    style: str | None = Field(None, description="None: the channel's style.")
    duration_s: float = Field(30.0, ge=15, le=60)
    script: str | None = Field(None, description="A user's own narration, used verbatim.")
    narration_file: str | None = Field(
        None,
        description="A user's own recorded narration: an audio file in the channel's narration/ "
        "folder. It is the voice; a speech recognizer gives its words and timings.",
    )
    source_file: str = ""


class Scene(BaseModel):
    index: int
    narration: str
    sentences: list[str]
    visual_prompt: str
    keywords: list[str]
    planned_start_s: float
    planned_duration_s: float


class Script(BaseModel):
    topic: str
    language: Language
    title: str
    description: str
    hashtags: list[str]
    hook: str
    body_points: list[str]
    call_to_action: str
    scenes: list[Scene]
    target_duration_s: float
    estimated_duration_s: float
    chars_per_second: float
    source: str = Field(
        description="'composer' (offline writer), 'llm:<model>', 'user' (verbatim script) or "
        "'recording' (the words heard in the user's own recording)."
    )

    @property
    def sentences(self) -> list[str]:
        return [s for scene in self.scenes for s in scene.sentences]

    @property
    def narration(self) -> str:
        return " ".join(self.sentences)


class WordTiming(BaseModel):
    word: str
    start: float
    end: float
    sentence_index: int

    @field_validator("end")
    @classmethod
    def _end_after_start(cls, end: float, info) -> float:  # type: ignore[no-untyped-def]
        start = info.data.get("start", 0.0)
        return max(end, start)


class SentenceSpan(BaseModel):
    index: int
    text: str
    start: float
    end: float


class Voiceover(BaseModel):
    audio_file: str
    duration_s: float
    sample_rate: int
    words: list[WordTiming]
    sentences: list[SentenceSpan]
    provider: str
    voice: str


class SceneSpan(BaseModel):
    index: int
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


class SceneImage(BaseModel):
    index: int
    image_file: str
    source: str = Field(
        description="'media:<file>' when taken from the channel's folder, else 'procedural'."
    )
    span: SceneSpan


class SceneImages(BaseModel):
    images: list[SceneImage]
