"""Quality gates. Blocking: a failed gate stops everything downstream (and, later, publishing)."""

import warnings

import dagster as dg
import pysubs2

from factory_assets.partitions import topics
from factory_assets.script import script
from factory_assets.subtitles import subtitles
from factory_assets.video import video
from factory_core.captions import caption_problems
from factory_core.models import Script, Voiceover
from factory_core.quality import script_problems, video_problems
from factory_core.render_plan import Aspect, RenderPlan
from factory_core.text import words_of
from factory_core.timing import END_TAIL_S
from factory_resources.ffmpeg import Inspection, inspect_video, probe
from factory_resources.store import MediaStore

# Partitioned asset checks are "preview" in 1.13; we rely on them and pin the version.
warnings.filterwarnings(
    "ignore", category=dg.PreviewWarning, message=".*partitions_def on an AssetCheckSpec"
)


def _result(problems: list[str], **metadata: object) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={"problems": "; ".join(problems) or "none", **metadata},
    )


@dg.asset_check(asset=script, blocking=True, partitions_def=topics)
def script_is_publishable(
    context: dg.AssetCheckExecutionContext, store: MediaStore
) -> dg.AssetCheckResult:
    """Hook and call to action present, duration within budget, metadata within platform limits."""
    store.pull_topic(context.partition_key)  # a step on another machine starts empty
    written = Script.model_validate_json(
        (store.topic_dir(context.partition_key) / "script.json").read_text()
    )
    return _result(script_problems(written), estimated_s=written.estimated_duration_s)


@dg.asset_check(asset=subtitles, blocking=True, partitions_def=topics)
def captions_follow_narration(
    context: dg.AssetCheckExecutionContext, store: MediaStore
) -> dg.AssetCheckResult:
    """Every narration word appears in the captions in order; timings monotonic, inside the audio."""
    store.pull_topic(context.partition_key)  # a step on another machine starts empty
    folder = store.topic_dir(context.partition_key)
    written = Script.model_validate_json((folder / "script.json").read_text())
    spoken = Voiceover.model_validate_json((folder / "voiceover.json").read_text())
    subs = pysubs2.load(str(folder / "captions.srt"), encoding="utf-8")
    problems = caption_problems(words_of(written.narration), subs, spoken.duration_s + END_TAIL_S)
    return _result(problems, events=len(subs))


@dg.asset_check(asset=video, blocking=True, partitions_def=topics)
def video_meets_spec(
    context: dg.AssetCheckExecutionContext, store: MediaStore
) -> dg.AssetCheckResult:
    """Every aspect: size, 30 fps, H.264/AAC, +faststart, narration near its target length,
    -14 LUFS and true peak under -1 dBTP, audio and video lengths within 0.1 s, no picture
    frozen for 3 s, no black stretch beyond the intended fades."""
    store.pull_topic(context.partition_key)  # a step on another machine starts empty
    folder = store.topic_dir(context.partition_key)
    written = Script.model_validate_json((folder / "script.json").read_text())
    plan = RenderPlan.model_validate_json((folder / "render_plan.json").read_text())
    channel = store.channel_profile(store.load_request(context.partition_key).channel)
    problems: list[str] = []
    first: Inspection | None = None
    for index, name in enumerate(channel.aspects):
        aspect = Aspect(name)
        path = folder / aspect.file_name("video", ".mp4", index == 0)
        if not path.exists():
            problems.append(f"{path.name} is missing")
            continue
        info = probe(path)
        seen = inspect_video(path) if info.audio_codec else None
        first = first or seen
        found = video_problems(
            width=info.width,
            height=info.height,
            fps=info.fps,
            video_codec=info.video_codec,
            pix_fmt=info.pix_fmt,
            audio_codec=info.audio_codec,
            duration_s=info.duration_s - plan.intro_s - plan.outro_s,
            target_duration_s=written.target_duration_s,
            integrated_lufs=seen.integrated_lufs if seen else None,
            moov_first=info.moov_before_mdat,
            expected_size=aspect.size(),
            true_peak_dbtp=seen.true_peak_dbtp if seen else None,
            audio_s=seen.audio_s if seen else None,
            video_s=seen.video_s if seen else None,
            freezes=seen.freezes if seen else [],
            blacks=seen.blacks if seen else [],
        )
        problems.extend(f"{path.name}: {p}" for p in found)
    return _result(
        problems,
        aspects=", ".join(channel.aspects),
        duration_s=round(first.video_s, 2) if first else 0.0,
        loudness_lufs=first.integrated_lufs if first else -120.0,
        true_peak_dbtp=first.true_peak_dbtp if first else -120.0,
        av_gap_s=round(abs(first.audio_s - first.video_s), 3) if first else 0.0,
    )
