"""scene_images: one 1080x1920 picture per scene, cut where the narration's sentences end."""

import dagster as dg

from factory_assets.common import PROVIDER_RETRY, image_preview, load_stage, topic_context
from factory_assets.partitions import topics
from factory_assets.script import script
from factory_assets.voiceover import voiceover
from factory_core.models import SceneImage, SceneImages, Script, Voiceover
from factory_core.timing import END_TAIL_S, scene_spans
from factory_resources.images import SceneImageMaker, match_media, media_index
from factory_resources.store import MediaStore


@dg.asset(
    partitions_def=topics,
    deps=[script, voiceover],
    group_name="production",
    kinds={"pillow"},
    code_version="1",
    retry_policy=PROVIDER_RETRY,
    description="Scene pictures: the channel's own media when it matches, else procedural.",
)
def scene_images(
    context: dg.AssetExecutionContext, store: MediaStore, image_maker: SceneImageMaker
) -> dg.MaterializeResult:
    topic = topic_context(context, store)
    written = load_stage(topic, "script.json", Script, "script")
    spoken = load_stage(topic, "voiceover.json", Voiceover, "voiceover")
    spans = scene_spans(
        spoken.sentences,
        [len(scene.sentences) for scene in written.scenes],
        spoken.duration_s + END_TAIL_S,
    )
    media = media_index(store.channel_dir(topic.request.channel) / "media")
    used: set = set()
    images: list[SceneImage] = []
    scenes_dir = topic.dir / "scenes"
    scenes_dir.mkdir(exist_ok=True)
    for scene, span in zip(written.scenes, spans, strict=True):
        out = scenes_dir / f"scene-{scene.index:02d}.png"
        match = match_media(scene.keywords, media, used)
        with store.atomic_path(out) as tmp:
            if match is not None:
                used.add(match)
                image_maker.from_media(match, tmp)
            else:
                image_maker.procedural(
                    scene.keywords, topic.channel.brand, f"{topic.key}/{scene.index}", tmp
                )
        images.append(
            SceneImage(
                index=scene.index,
                image_file=f"scenes/{out.name}",
                source=f"media:{match.name}" if match else "procedural",
                span=span,
            )
        )
    store.write_model(topic.dir / "scene_images.json", SceneImages(images=images))
    return dg.MaterializeResult(
        metadata={
            "scenes": len(images),
            "sources": ", ".join(i.source for i in images),
            "cuts_s": ", ".join(f"{i.span.start:.2f}" for i in images),
            "preview": image_preview(topic.dir / images[0].image_file),
            "provider": "channel-media+procedural",
            "cost_usd": 0.0,
            "path": dg.MetadataValue.path(str(scenes_dir)),
        }
    )
