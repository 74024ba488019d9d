"""script: hook, points, call to action and scenes, fitted to the duration budget."""

import dagster as dg

from factory_assets.common import topic_context
from factory_assets.partitions import topics
from factory_core.timing import END_TAIL_S, spoken_chars
from factory_resources.script_writers import OfflineScriptWriter
from factory_resources.store import MediaStore
from factory_resources.voices import OfflineVoice


@dg.asset(
    partitions_def=topics,
    group_name="production",
    kinds={"python"},
    code_version="1",
    description="The narration split into scenes, with title, description and hashtags.",
)
def script(
    context: dg.AssetExecutionContext,
    store: MediaStore,
    script_writer: OfflineScriptWriter,
    voice: OfflineVoice,
) -> dg.MaterializeResult:
    topic = topic_context(context, store)
    speed = topic.channel.voice_speed
    rate = voice.speaking_rate(topic.request.language, speed, store.cache_dir("voices"))
    written = script_writer.write(topic.request, rate)
    refits = 0
    if written.source == "composer":
        # The rate is an average; the real narration can run long or short (numbers, names).
        # Measure it with the voice and refit, at most twice; the last measure is the estimate.
        actual = voice.measure_seconds(written.sentences, written.language, speed) + END_TAIL_S
        tolerance = 0.04 * written.target_duration_s
        while refits < 2 and abs(actual - written.target_duration_s) > tolerance:
            refits += 1
            fixed = written.estimated_duration_s - spoken_chars(written.narration) / rate
            rate = spoken_chars(written.narration) / max(1.0, actual - fixed)
            written = script_writer.write(topic.request, rate)
            actual = voice.measure_seconds(written.sentences, written.language, speed) + END_TAIL_S
        written = written.model_copy(update={"estimated_duration_s": round(actual, 2)})
    store.write_model(topic.dir / "script.json", written)
    text = "\n\n".join(f"**{i + 1}.** {scene.narration}" for i, scene in enumerate(written.scenes))
    return dg.MaterializeResult(
        metadata={
            "topic": topic.request.topic,
            "channel": topic.request.channel,
            "language": written.language.value,
            "title": written.title,
            "hashtags": " ".join(written.hashtags),
            "script": dg.MetadataValue.md(text),
            "scenes": len(written.scenes),
            "estimated_duration_s": written.estimated_duration_s,
            "target_duration_s": written.target_duration_s,
            "source": written.source,
            "refits": refits,
            "provider": script_writer.provider(),
            "cost_usd": 0.0,
            "path": dg.MetadataValue.path(str(topic.dir / "script.json")),
        }
    )
