"""thumbnail: 1080x1920 and 1280x720 covers with the title."""

import dagster as dg

from factory_assets.common import image_preview, load_stage, push_media, topic_context
from factory_assets.partitions import topics
from factory_assets.scene_images import scene_images
from factory_assets.script import script
from factory_assets.video import video
from factory_core.models import SceneImages, Script
from factory_core.render_plan import RenderPlan
from factory_resources.ffmpeg import RenderError, extract_frame
from factory_resources.images import SceneImageMaker
from factory_resources.store import MediaStore


@dg.asset(
    partitions_def=topics,
    # After the video: a channel may take its cover from a frame of it.
    deps=[script, scene_images, video],
    group_name="production",
    kinds={"pillow"},
    code_version="2",
    description="cover_9x16.jpg and cover_16x9.jpg: the hook scene with the title in large type.",
)
def thumbnail(
    context: dg.AssetExecutionContext, store: MediaStore, image_maker: SceneImageMaker
) -> dg.MaterializeResult:
    topic = topic_context(context, store)
    written = load_stage(topic, "script.json", Script, "script")
    pictures = load_stage(topic, "scene_images.json", SceneImages, "scene_images")
    # The hook scene is the strongest picture: it is what the viewer sees first.
    source = topic.dir / pictures.images[0].image_file
    if topic.channel.cover_from == "frame":
        plan = RenderPlan.model_validate_json((topic.dir / "render_plan.json").read_text())
        first = pictures.images[0].span
        second = topic.channel.cover_frame_s
        if second is None:
            second = plan.intro_s + (first.start + first.end) / 2
        source = topic.dir / "cover_frame.png"
        try:
            extract_frame(topic.dir / "video.mp4", min(second, plan.total_s - 0.1), source)
        except RenderError as exc:
            raise dg.Failure(description=f"cover frame for {topic.key}: {exc}") from exc
    vertical, wide = topic.dir / "cover_9x16.jpg", topic.dir / "cover_16x9.jpg"
    with store.atomic_path(vertical) as tmp_v, store.atomic_path(wide) as tmp_w:
        image_maker.covers(source, written.title, topic.channel.brand, tmp_v, tmp_w)
    push_media(context, store, topic)
    return dg.MaterializeResult(
        metadata={
            "title": written.title,
            "source": source.name,
            "preview": image_preview(wide, width=240),
            "vertical": dg.MetadataValue.path(str(vertical)),
            "wide": dg.MetadataValue.path(str(wide)),
        }
    )
