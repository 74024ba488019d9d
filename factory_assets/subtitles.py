"""subtitles: word-timed captions as SRT (for platforms) and ASS (burned into the video).

One ASS per aspect the channel renders, each laid out in that frame's safe area.
"""

import dagster as dg

from factory_assets.common import load_stage, push_media, topic_context
from factory_assets.partitions import topics
from factory_assets.script import script
from factory_assets.voiceover import voiceover
from factory_core.captions import build_ass, build_srt, caption_layout, chunk_words
from factory_core.models import Script, Voiceover
from factory_core.render_plan import Aspect
from factory_core.timing import END_TAIL_S, scene_spans
from factory_resources.fonts import text_measure
from factory_resources.store import MediaStore

LOGO_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


@dg.asset(
    partitions_def=topics,
    deps=[voiceover, script],
    group_name="production",
    kinds={"pysubs2"},
    code_version="3",
    description="captions.srt and captions.ass (plus captions_<aspect>.ass), 1-3 words each.",
)
def subtitles(context: dg.AssetExecutionContext, store: MediaStore) -> dg.MaterializeResult:
    topic = topic_context(context, store)
    spoken = load_stage(topic, "voiceover.json", Voiceover, "voiceover")
    written = load_stage(topic, "script.json", Script, "script")
    # The same cuts as the scene pictures: captions never run into the next scene.
    spans = scene_spans(
        spoken.sentences,
        [len(scene.sentences) for scene in written.scenes],
        spoken.duration_s + END_TAIL_S,
    )
    cuts = [span.start for span in spans[1:]]
    style = topic.channel.captions
    measure = text_measure(style.font)
    brand = topic.channel.brand
    if not brand.handle:  # every short carries its channel's mark
        brand = brand.model_copy(update={"handle": f"@{topic.request.channel}"})
    has_logo = store.brand_file(topic.request.channel, "logo", LOGO_SUFFIXES) is not None
    logo_left = has_logo and topic.channel.logo_corner == "top_left"
    written: list[str] = []
    events_count = 0
    for index, name in enumerate(topic.channel.aspects):
        aspect = Aspect(name)
        layout = caption_layout(*aspect.size(), style)
        events = chunk_words(
            spoken.words, layout=layout, measure=measure, uppercase=style.uppercase, cuts=cuts
        )
        ass = build_ass(
            events,
            brand,
            spoken.duration_s + END_TAIL_S,
            layout=layout,
            style=style,
            handle_right=logo_left,
        )
        files = [(aspect.file_name("captions", ".ass", index == 0), ass, "ass")]
        if index == 0:
            # Platforms get the words as spoken, in the main aspect's grouping.
            plain = chunk_words(spoken.words, layout=layout, measure=measure, cuts=cuts)
            files.append(("captions.srt", build_srt(plain), "srt"))
            events_count = len(events)
            sample = "\n".join(" ".join(e.lines) for e in events[:6])
        for file_name, subs, fmt in files:
            with store.atomic_path(topic.dir / file_name) as tmp:
                subs.save(str(tmp), format_=fmt, encoding="utf-8")
            written.append(file_name)
    push_media(context, store, topic)
    return dg.MaterializeResult(
        metadata={
            "events": events_count,
            "words": len(spoken.words),
            "files": ", ".join(written),
            "sample": dg.MetadataValue.text(sample),
            "path": dg.MetadataValue.path(str(topic.dir / "captions.srt")),
        }
    )
