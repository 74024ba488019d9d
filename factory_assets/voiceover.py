"""voiceover: the narration spoken, with a timing for every word.

The channel's `providers.voice.chain` decides who speaks. `elevenlabs` speaks with the owner's
studio voice named in `providers.voice.voice`; when it cannot (no voice named, voice missing or
not ready, no key, a provider error) the reason is logged and recorded, and the next entry
speaks. `offline` (piper / espeak-ng) is the default and needs nothing.
"""

import wave
from pathlib import Path
from typing import Any

import dagster as dg

from factory_assets.common import (
    PROVIDER_RETRY,
    TopicContext,
    load_stage,
    push_media,
    record_costs,
    topic_context,
)
from factory_assets.partitions import topics
from factory_assets.script import script
from factory_core.costs import CostLine
from factory_core.models import Script, Voiceover
from factory_resources.elevenlabs_voice import ElevenLabsError, ElevenLabsVoice
from factory_resources.faults import ProviderError
from factory_resources.ffmpeg import run_ffmpeg
from factory_resources.narration_pace import elevenlabs_speed, offline_profile, offline_speed
from factory_resources.project_db import price_table, project_engine
from factory_resources.store import MediaStore
from factory_resources.voice_studio import VoiceStudio, pitch_shift
from factory_resources.voices import OfflineVoice, VoiceUnavailableError


class _Skip(Exception):
    """This provider cannot speak for this channel right now; the reason goes on record."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _elevenlabs(
    topic: TopicContext, written: Script, out_wav: Path, store: MediaStore,
    elevenlabs: ElevenLabsVoice, spent: list[CostLine],
) -> Voiceover:  # fmt: skip
    settings = topic.channel.providers.voice
    if not settings.voice:
        raise _Skip("no studio voice named in providers.voice.voice")
    unusable = elevenlabs.available(settings.api_key_env)
    if unusable:
        raise _Skip(unusable)
    studio = VoiceStudio(project_engine(store.root), elevenlabs, store.root,
                         api_key_env=settings.api_key_env)  # fmt: skip
    record = studio.find(topic.channel.owner, settings.voice)
    if record is None:
        raise _Skip(f"owner {topic.channel.owner!r} has no studio voice {settings.voice!r}")
    if record.provider != "elevenlabs" or not record.provider_voice_id:
        raise _Skip(f"studio voice {settings.voice!r} is not an ElevenLabs voice")
    if record.status != "ready":
        detail = f": {record.error}" if record.error else ""
        raise _Skip(f"studio voice {settings.voice!r} is {record.status}{detail}")
    voice_settings: dict[str, Any] = dict(record.settings)
    speed = elevenlabs_speed(voice_settings.get("speed"), topic.channel.voice_speed)
    if speed != 1.0:
        voice_settings["speed"] = speed
    try:
        prices = price_table(store.root)
    except ValueError as exc:  # a broken prices.yaml: no paid call that cannot be accounted for
        raise _Skip(str(exc)) from None
    try:
        spoken, lines = elevenlabs.synthesize(
            written.sentences, written.language, record.provider_voice_id, voice_settings,
            settings.model_id, settings.output_format, out_wav,
            api_key_env=settings.api_key_env, prices=prices,
        )  # fmt: skip
    except ElevenLabsError as exc:
        spent.extend(exc.spent)  # sentences spoken before the failure were billed
        raise
    spent.extend(lines)
    studio.record_use(topic.channel.owner, settings.voice)
    # The next script for this voice is sized with what this narration really took.
    studio.learn_pace(topic.channel.owner, settings.voice, spoken, speed=speed)
    return spoken.model_copy(update={"voice": settings.voice})


def _offline(
    topic: TopicContext, written: Script, out_wav: Path, store: MediaStore, voice: OfflineVoice
) -> Voiceover:
    """piper or espeak-ng; with the channel's offline studio voice, at its speed and pitch."""
    settings = topic.channel.providers.voice
    profile = offline_profile(store.root, topic.channel.owner, settings.voice)
    spoken = voice.synthesize(
        written.sentences, written.language, offline_speed(topic.channel, store.root), out_wav
    )
    if profile is None:
        return spoken
    pitch_shift(out_wav, profile[1])  # keeps the length: the word timings stay true
    return spoken.model_copy(update={"voice": f"{settings.voice} ({spoken.voice})"})


@dg.asset(
    partitions_def=topics,
    deps=[script],
    group_name="production",
    kinds={"piper", "elevenlabs"},
    code_version="1",
    pool="tts",
    retry_policy=PROVIDER_RETRY,
    description="Narration audio (WAV) and word timings (voiceover.json).",
)
def voiceover(
    context: dg.AssetExecutionContext,
    store: MediaStore,
    voice: OfflineVoice,
    elevenlabs: ElevenLabsVoice,
) -> dg.MaterializeResult:
    topic = topic_context(context, store)
    written = load_stage(topic, "script.json", Script, "script")
    if topic.request.narration_file:
        result = _from_recording(topic, store, written)
        push_media(context, store, topic)
        return result
    chain = list(topic.channel.providers.voice.chain)
    fallbacks: list[str] = []
    spent: list[CostLine] = []
    spoken: Voiceover | None = None
    try:
        with store.atomic_path(topic.dir / "voice.wav") as tmp:
            for position, provider in enumerate(chain):
                last = position == len(chain) - 1
                if provider == "offline":
                    spoken = _offline(topic, written, tmp, store, voice)
                    break
                try:
                    spoken = _elevenlabs(topic, written, tmp, store, elevenlabs, spent)
                    break
                except _Skip as exc:
                    reason, retryable = f"{provider}: {exc.reason}", False
                except ProviderError as exc:  # str: provider, HTTP status, reason (redacted)
                    reason, retryable = str(exc), exc.retryable
                fallbacks.append(reason)
                then = "" if last else f"; {chain[position + 1]} speaks instead"
                context.log.warning(f"voiceover: {reason}{then}")
                if last:
                    raise dg.Failure(
                        description=f"no voice in the chain could speak; {reason}",
                        metadata={"provider_chain": " → ".join(chain),
                                  "fallbacks": "; ".join(fallbacks)},
                        allow_retries=retryable,
                    )  # fmt: skip
    except VoiceUnavailableError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    finally:
        cost = record_costs(topic, spent, "voiceover")  # paid calls count even when the stage fails
    assert spoken is not None
    spoken = spoken.model_copy(update={"audio_file": "voice.wav"})
    store.write_model(topic.dir / "voiceover.json", spoken)
    push_media(context, store, topic)
    return dg.MaterializeResult(
        metadata={
            "duration_s": spoken.duration_s,
            "words": len(spoken.words),
            "provider": spoken.provider,
            "voice": spoken.voice,
            "estimated_s": written.estimated_duration_s,
            "cost_usd": cost,
            "characters": sum(len(s) for s in written.sentences),
            "provider_chain": " → ".join(chain),
            "fallbacks": "; ".join(fallbacks) or "none",
            "path": dg.MetadataValue.path(str(topic.dir / "voice.wav")),
        }
    )


RECORDING_SAMPLE_RATE = 24000


def _from_recording(
    topic: TopicContext, store: MediaStore, written: Script
) -> dg.MaterializeResult:
    """The user's own recording is the voice; its words and timings were heard by the script
    stage (recording.json), so nothing is synthesized or paid here."""
    heard = load_stage(topic, "recording.json", Voiceover, "script")
    name = topic.request.narration_file or ""
    recording = store.channel_dir(topic.request.channel) / "narration" / name
    if not recording.is_file():
        raise dg.Failure(
            description=f"the recording {name!r} is no longer in {recording.parent}; put it "
            "back and materialize again",
            allow_retries=False,
        )
    with store.atomic_path(topic.dir / "voice.wav") as tmp:
        run_ffmpeg(
            ["-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-i", str(recording),
             "-vn", "-ac", "1", "-ar", str(RECORDING_SAMPLE_RATE), "-c:a", "pcm_s16le",
             "-f", "wav", str(tmp)],
            what=f"the recording {name}",
        )  # fmt: skip
        with wave.open(str(tmp)) as wav:
            duration = wav.getnframes() / wav.getframerate()
    spoken = heard.model_copy(update={
        "audio_file": "voice.wav", "duration_s": round(duration, 3),
        "sample_rate": RECORDING_SAMPLE_RATE,
    })  # fmt: skip
    store.write_model(topic.dir / "voiceover.json", spoken)
    return dg.MaterializeResult(
        metadata={
            "duration_s": spoken.duration_s,
            "words": len(spoken.words),
            "provider": "recording",
            "voice": name,
            "heard_by": heard.provider,
            "estimated_s": written.estimated_duration_s,
            "cost_usd": 0.0,
            "provider_chain": "recording",
            "fallbacks": "none",
            "path": dg.MetadataValue.path(str(topic.dir / "voice.wav")),
        }
    )
