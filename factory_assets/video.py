"""video: the finished short. Audio master first, then one ffmpeg pass per aspect."""

import hashlib
import os
from typing import Literal

import dagster as dg
from pydantic import Field

from factory_assets.common import load_stage, push_media, topic_context
from factory_assets.partitions import topics
from factory_assets.scene_images import scene_images
from factory_assets.subtitles import LOGO_SUFFIXES, subtitles
from factory_assets.voiceover import voiceover
from factory_core import render_plan as rp
from factory_core.models import SceneImages, Voiceover
from factory_core.timing import END_TAIL_S
from factory_resources.ffmpeg import FfmpegRenderer, RenderError, probe
from factory_resources.fonts import fonts_dir
from factory_resources.moviepy_renderer import MoviepyRenderer
from factory_resources.music import music_for_channel
from factory_resources.store import MediaStore

PICTURES = LOGO_SUFFIXES


class VideoConfig(dg.Config):
    renderer: Literal["channel", "ffmpeg", "moviepy"] = Field(
        "channel", description="Backend for this run; 'channel' uses the channel's setting."
    )


CLIPS = (".mp4", ".mov", ".webm", ".mkv")


@dg.asset(
    partitions_def=topics,
    deps=[scene_images, subtitles, voiceover],
    group_name="production",
    kinds={"ffmpeg"},
    code_version="2",
    # One render at a time: x264 already uses both cores; a second render only adds memory.
    pool="render",
    description="video.mp4: 1080x1920, 30 fps, H.264 + AAC, captions burned in, music ducked.",
)
def video(
    context: dg.AssetExecutionContext,
    config: VideoConfig,
    store: MediaStore,
    renderer: FfmpegRenderer,
    moviepy_renderer: MoviepyRenderer,
) -> dg.MaterializeResult:
    topic = topic_context(context, store)
    channel = topic.channel
    spoken = load_stage(topic, "voiceover.json", Voiceover, "voiceover")
    pictures = load_stage(topic, "scene_images.json", SceneImages, "scene_images")
    duration = round(spoken.duration_s + END_TAIL_S, 3)
    seed = int(hashlib.sha256(topic.key.encode()).hexdigest(), 16)
    name = topic.request.channel
    logo = store.brand_file(name, "logo", PICTURES)
    intro, outro = (_bumper(store.brand_file(name, s, PICTURES + CLIPS), channel.bumper_s)
                    for s in ("intro", "outro"))  # fmt: skip
    music = music_for_channel(store.channel_dir(name), store.cache_dir("music"), seed)
    mix = rp.AudioMixPlan(
        voice_file=spoken.audio_file,
        music_file=str(music),
        duration_s=duration,
        lead_in_s=intro.duration_s if intro else 0.0,
        tail_s=outro.duration_s if outro else 0.0,
        music_volume_db=channel.music_volume_db,
    )
    plans = [
        rp.build_render_plan(
            images=[(i.image_file, i.span.start, i.span.end) for i in pictures.images],
            duration_s=duration,
            audio_file="audio.m4a",
            captions_file=rp.Aspect(aspect).file_name("captions", ".ass", index == 0),
            fonts_dir=os.path.relpath(fonts_dir(), topic.dir),
            seed=seed,
            style=topic.request.style or channel.style,  # the request's, else the channel's
            aspect=rp.Aspect(aspect),
            brand_colour=channel.brand.primary,
            overlay=rp.Overlay(
                image_file=str(logo), corner=channel.logo_corner, opacity=channel.logo_opacity
            ) if logo else None,
            intro=intro,
            outro=outro,
        )
        for index, aspect in enumerate(channel.aspects)
    ]  # fmt: skip
    store.write_model(topic.dir / "render_plan.json", plans[0])
    backend = channel.renderer if config.renderer == "channel" else config.renderer
    # Audio is mastered by ffmpeg for both backends, so they sound the same.
    draw = moviepy_renderer if backend == "moviepy" else renderer
    outputs = []
    fallbacks: list[str] = []
    render_s = 0.0
    try:
        with store.atomic_path(topic.dir / "audio.m4a") as tmp_audio:
            loudness = renderer.master_audio(mix, topic.dir, tmp_audio)
        for index, plan in enumerate(plans):
            output = topic.dir / plan.aspect.file_name("video", ".mp4", index == 0)
            with store.atomic_path(output) as tmp_video:
                try:
                    render_s += draw.render(plan, topic.dir, tmp_video)
                except RenderError as exc:
                    if not exc.crashed or draw is moviepy_renderer:
                        raise
                    # The bundled static ffmpeg still crashes (SIGSEGV in a frame copy) on some
                    # filtergraphs, even after its retries; the other backend draws the same
                    # plan frame by frame, slower but without that graph.
                    context.log.warning(
                        f"{plan.aspect.value}: ffmpeg crashed on this plan; rendering it with "
                        "the moviepy backend"
                    )
                    fallbacks.append(plan.aspect.value)
                    render_s += moviepy_renderer.render(plan, topic.dir, tmp_video)
            outputs.append(output)
    except RenderError as exc:
        raise dg.Failure(description=f"rendering {topic.key} failed: {exc}") from exc
    info = probe(outputs[0])
    push_media(context, store, topic)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(outputs[0])),
            "files": ", ".join(p.name for p in outputs),
            "duration_s": round(info.duration_s, 2),
            "resolution": f"{info.width}x{info.height}",
            "fps": info.fps or 0.0,
            "codecs": f"{info.video_codec}/{info.audio_codec}",
            "loudness_lufs": loudness.integrated_lufs,
            "true_peak_dbtp": loudness.true_peak_dbtp,
            "music": music.name,
            "transitions": ", ".join(c.transition_in or "-" for c in plans[0].clips),
            "motions": ", ".join(c.motion for c in plans[0].clips),
            "branding": ", ".join(
                part for part, on in (("logo", logo), ("intro", intro), ("outro", outro)) if on
            )
            or "handle only",
            "render_s": round(render_s, 2),
            "size_mb": round(outputs[0].stat().st_size / 1e6, 2),
            "provider": backend,
            "renderer_fallbacks": ", ".join(fallbacks) or "none",
            "cost_usd": 0.0,
        }
    )


def _bumper(path, duration_s: float) -> rp.Bumper | None:  # type: ignore[no-untyped-def]
    if path is None:
        return None
    return rp.Bumper(file=str(path), is_video=path.suffix.lower() in CLIPS, duration_s=duration_s)
