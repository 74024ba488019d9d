"""voiceover: the narration spoken, with a timing for every word."""

import dagster as dg

from factory_assets.common import PROVIDER_RETRY, load_stage, topic_context
from factory_assets.partitions import topics
from factory_assets.script import script
from factory_core.models import Script
from factory_resources.store import MediaStore
from factory_resources.voices import OfflineVoice, VoiceUnavailableError


@dg.asset(
    partitions_def=topics,
    deps=[script],
    group_name="production",
    kinds={"piper"},
    code_version="1",
    pool="tts",
    retry_policy=PROVIDER_RETRY,
    description="Narration audio (WAV) and word timings (voiceover.json).",
)
def voiceover(
    context: dg.AssetExecutionContext, store: MediaStore, voice: OfflineVoice
) -> dg.MaterializeResult:
    topic = topic_context(context, store)
    written = load_stage(topic, "script.json", Script, "script")
    try:
        with store.atomic_path(topic.dir / "voice.wav") as tmp:
            spoken = voice.synthesize(
                written.sentences, written.language, topic.channel.voice_speed, tmp
            )
    except VoiceUnavailableError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    spoken = spoken.model_copy(update={"audio_file": "voice.wav"})
    store.write_model(topic.dir / "voiceover.json", spoken)
    return dg.MaterializeResult(
        metadata={
            "duration_s": spoken.duration_s,
            "words": len(spoken.words),
            "provider": spoken.provider,
            "voice": spoken.voice,
            "estimated_s": written.estimated_duration_s,
            "cost_usd": 0.0,
            "path": dg.MetadataValue.path(str(topic.dir / "voice.wav")),
        }
    )
