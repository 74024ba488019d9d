"""What a batch will cost before it runs: the same prices and the same sizes the stages use.

Pure. For each topic, the first usable provider of each of the channel's chains is the one
that will be paid: the script writer's prompt and a typical answer of the asked length
(tokens), the narration's characters (the length the writer is asked for), one picture per
scene (megapixels), and the transcription check's seconds of audio.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel

from factory_core.costs import CostLine, PriceTable, cost_line
from factory_core.models import ChannelProfile, TopicRequest
from factory_core.script_prompt import estimate_usage, scene_count_for, target_chars_for


class ImageSize(BaseModel):
    width: int
    height: int

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1_000_000


class TopicEstimate(BaseModel):
    key: str
    lines: list[CostLine]
    providers: dict[str, str]  # stage -> provider that will be paid (or the free one)

    @property
    def usd(self) -> float:
        return round(sum(line.amount_usd for line in self.lines), 6)


def first_usable(chain: list[str], usable: Callable[[str], bool]) -> str:
    return next((p for p in chain if usable(p)), chain[-1])


def estimate_topic(
    request: TopicRequest,
    channel: ChannelProfile,
    chars_per_second: float,
    table: PriceTable,
    usable: Callable[[str], bool],
    image_size: ImageSize,
    reference_model: str,
) -> TopicEstimate:
    """`usable(provider)` says whether a paid provider can be used (key set, voice ready)."""
    lines: list[CostLine] = []
    settings = channel.providers
    style = request.style or channel.style
    key = request.key
    writer = (
        "user"
        if request.script or request.narration_file
        else first_usable(settings.script.chain, usable)
    )
    if writer == "openai":
        tokens_in, tokens_out = estimate_usage(request, settings.script, chars_per_second,
                                               style=style)  # fmt: skip
        model = settings.script.model
        lines += [
            cost_line(table, "openai", model, "input_token", tokens_in, topic_key=key, stage="script"),
            cost_line(table, "openai", model, "output_token", tokens_out, topic_key=key, stage="script"),
        ]  # fmt: skip
    voice = "recording" if request.narration_file else first_usable(settings.voice.chain, usable)
    if voice == "elevenlabs":
        chars = (
            len(request.script)
            if request.script
            else target_chars_for(request.duration_s, chars_per_second)
        )
        lines.append(cost_line(table, "elevenlabs", settings.voice.model_id, "character", chars,
                               topic_key=key, stage="voiceover"))  # fmt: skip
    images = first_usable(settings.images.chain, usable)
    if images == "fal":
        model = reference_model if settings.images.character else settings.images.model
        scenes = scene_count_for(request.duration_s)
        lines.append(cost_line(table, "fal", model, "megapixel", scenes * image_size.megapixels,
                               topic_key=key, stage="scene_images"))  # fmt: skip
    transcription = settings.transcription
    if transcription.provider == "openai" and usable("openai-whisper"):
        lines.append(cost_line(table, "openai", transcription.model, "audio_second",
                               request.duration_s, topic_key=key, stage="checks"))  # fmt: skip
    return TopicEstimate(
        key=key,
        lines=lines,
        providers={"script": writer, "voiceover": voice, "scene_images": images,
                   "transcription": transcription.provider},
    )  # fmt: skip
