"""video: the finished short. Audio master first, then one ffmpeg pass for the picture."""

import hashlib
import os

import dagster as dg

from factory_assets.common import load_stage, topic_context
from factory_assets.partitions import topics
from factory_assets.scene_images import scene_images
from factory_assets.subtitles import subtitles
from factory_assets.voiceover import voiceover
from factory_core import render_plan as rp
from factory_core.models import SceneImages, Voiceover
from factory_core.timing import END_TAIL_S
from factory_resources.ffmpeg import FfmpegRenderer, RenderError, fonts_dir, probe
from factory_resources.music import music_for_channel
from factory_resources.store import MediaStore


@dg.asset(
    partitions_def=topics,
    deps=[scene_images, subtitles, voiceover],
    group_name="production",
    kinds={"ffmpeg"},
    code_version="1",
    # One render at a time: x264 already uses both cores; a second render only adds memory.
    pool="render",
    description="video.mp4: 1080x1920, 30 fps, H.264 + AAC, captions burned in, music ducked.",
)
def video(
    context: dg.AssetExecutionContext, store: MediaStore, renderer: FfmpegRenderer
) -> dg.MaterializeResult:
    topic = topic_context(context, store)
    spoken = load_stage(topic, "voiceover.json", Voiceover, "voiceover")
    pictures = load_stage(topic, "scene_images.json", SceneImages, "scene_images")
    duration = round(spoken.duration_s + END_TAIL_S, 3)
    seed = int(hashlib.sha256(topic.key.encode()).hexdigest(), 16)
    music = music_for_channel(
        store.channel_dir(topic.request.channel), store.cache_dir("music"), seed
    )
    mix = rp.AudioMixPlan(
        voice_file=spoken.audio_file,
        music_file=str(music),
        duration_s=duration,
        music_volume_db=topic.channel.music_volume_db,
    )
    plan = rp.build_render_plan(
        images=[(i.image_file, i.span.start, i.span.end) for i in pictures.images],
        duration_s=duration,
        audio_file="audio.m4a",
        captions_file="captions.ass",
        fonts_dir=os.path.relpath(fonts_dir(), topic.dir),
        seed=seed,
    )
    store.write_model(topic.dir / "render_plan.json", plan)
    try:
        with store.atomic_path(topic.dir / "audio.m4a") as tmp_audio:
            loudness = renderer.master_audio(mix, topic.dir, tmp_audio)
        with store.atomic_path(topic.dir / "video.mp4") as tmp_video:
            render_s = renderer.render(plan, topic.dir, tmp_video)
    except RenderError as exc:
        raise dg.Failure(description=f"rendering {topic.key} failed: {exc}") from exc
    info = probe(topic.dir / "video.mp4")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(topic.dir / "video.mp4")),
            "duration_s": round(info.duration_s, 2),
            "resolution": f"{info.width}x{info.height}",
            "fps": info.fps or 0.0,
            "codecs": f"{info.video_codec}/{info.audio_codec}",
            "loudness_lufs": loudness.integrated_lufs,
            "true_peak_dbtp": loudness.true_peak_dbtp,
            "music": music.name,
            "render_s": round(render_s, 2),
            "size_mb": round((topic.dir / "video.mp4").stat().st_size / 1e6, 2),
            "provider": "ffmpeg",
            "cost_usd": 0.0,
        }
    )
