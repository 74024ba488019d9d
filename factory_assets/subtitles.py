"""subtitles: word-timed captions as SRT (for platforms) and ASS (burned into the video)."""

import dagster as dg

from factory_assets.common import load_stage, topic_context
from factory_assets.partitions import topics
from factory_assets.voiceover import voiceover
from factory_core.captions import build_ass, build_srt, chunk_words
from factory_core.models import Voiceover
from factory_core.timing import END_TAIL_S
from factory_resources.store import MediaStore


@dg.asset(
    partitions_def=topics,
    deps=[voiceover],
    group_name="production",
    kinds={"pysubs2"},
    code_version="1",
    description="captions.srt and captions.ass, one to three words per caption.",
)
def subtitles(context: dg.AssetExecutionContext, store: MediaStore) -> dg.MaterializeResult:
    topic = topic_context(context, store)
    spoken = load_stage(topic, "voiceover.json", Voiceover, "voiceover")
    events = chunk_words(spoken.words)
    srt = build_srt(events)
    brand = topic.channel.brand
    if not brand.handle:  # every short carries its channel's mark
        brand = brand.model_copy(update={"handle": f"@{topic.request.channel}"})
    ass = build_ass(events, brand, spoken.duration_s + END_TAIL_S)
    for name, subs, fmt in (("captions.srt", srt, "srt"), ("captions.ass", ass, "ass")):
        with store.atomic_path(topic.dir / name) as tmp:
            subs.save(str(tmp), format_=fmt, encoding="utf-8")
    sample = "\n".join(" ".join(e.lines) for e in events[:6])
    return dg.MaterializeResult(
        metadata={
            "events": len(events),
            "words": len(spoken.words),
            "sample": dg.MetadataValue.text(sample),
            "path": dg.MetadataValue.path(str(topic.dir / "captions.srt")),
        }
    )
