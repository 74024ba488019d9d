"""Listening to the finished video: does it say what the script says?

A speech recognizer hears the video's narration and the transcript is compared with the script.
The check warns and never blocks: a recognizer's own errors (a robotic voice, a small model)
must not stop a topic from being published. It catches what no other check sees: narration
cut short, the wrong audio muxed in, a voice reading the wrong language or gibberish.

Also here: word timings of a user's own narration audio, for the voiceover stage.
"""

import time
import warnings
from pathlib import Path

import dagster as dg

from factory_assets.common import TopicContext, record_costs
from factory_assets.partitions import topics
from factory_assets.video import video
from factory_core.costs import CostLine
from factory_core.models import Language, Script, TranscriptionSettings, Voiceover, WordTiming
from factory_core.render_plan import RenderPlan
from factory_core.wer import (
    NarrationVerdict,
    Transcript,
    judge_narration,
    matched_words,
    transcript_word_timings,
    word_error_rate,
)
from factory_resources.faults import ProviderError
from factory_resources.ffmpeg import RenderError, run_ffmpeg
from factory_resources.store import MediaStore
from factory_resources.transcribers import Transcriber

# Partitioned asset checks are "preview" in 1.13; we rely on them and pin the version.
warnings.filterwarnings(
    "ignore", category=dg.PreviewWarning, message=".*partitions_def on an AssetCheckSpec"
)

TRANSCRIPT_PREVIEW_CHARS = 600


def extract_speech_audio(
    media: Path, output: Path, start_s: float = 0.0, duration_s: float | None = None
) -> None:
    """16 kHz mono 16-bit WAV (what whisper listens to) from any audio or video file; `start_s`
    and `duration_s` cut out the narration between the intro and outro bumpers."""
    span = ["-t", f"{duration_s:.3f}"] if duration_s is not None else []
    run_ffmpeg(
        ["-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-ss", f"{start_s:.3f}",
         "-i", str(media), *span, "-vn", "-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le",
         str(output)],
        what=f"speech audio of {media.name}",
    )  # fmt: skip


def narration_transcript(
    transcriber: Transcriber, audio: Path, language: Language, settings: TranscriptionSettings
) -> tuple[Transcript, list[WordTiming], list[CostLine]]:
    """`narration_timings`, plus the transcript and the cost lines of a paid transcription (the
    caller records them)."""
    transcript, costs = transcriber.transcribe(audio, language, settings)
    timings = transcript_word_timings(transcript)
    if not timings:
        raise ValueError(
            f"no words heard in {audio.name} ({transcript.duration_s:.1f} s, "
            f"{transcript.provider} {transcript.model}); is it silent, or in another language "
            f"than {language.value}?"
        )
    return transcript, timings, costs


def narration_timings(
    transcriber: Transcriber, audio: Path, language: Language, settings: TranscriptionSettings
) -> list[WordTiming]:
    """Word timings of a user's own narration audio, one sentence index per sentence of what
    was heard (as the recognizer punctuated it). Raises ProviderError, or ValueError when no
    words were heard."""
    return narration_transcript(transcriber, audio, language, settings)[1]


def listen_to_video(
    folder: Path, transcriber: Transcriber, settings: TranscriptionSettings
) -> tuple[dict[str, object], NarrationVerdict, list[CostLine]]:
    """Transcribes `folder/video.mp4`'s narration and compares it with `folder/script.json`.

    Returns the check's metadata, its verdict and the cost lines. Raises ProviderError or
    RenderError when nothing could be heard.
    """
    written = Script.model_validate_json((folder / "script.json").read_text(encoding="utf-8"))
    plan = RenderPlan.model_validate_json((folder / "render_plan.json").read_text(encoding="utf-8"))
    language = written.language
    wav = folder / ".narration-check.wav"
    started = time.perf_counter()
    try:
        # Bumpers carry music or a logo sting, no narration: whisper would only invent words there.
        extract_speech_audio(folder / "video.mp4", wav, plan.intro_s, plan.duration_s)
        transcript, costs = transcriber.transcribe(wav, language, settings)
    finally:
        wav.unlink(missing_ok=True)
    seconds = time.perf_counter() - started
    report = word_error_rate(written.narration, transcript.text, language)
    verdict = judge_narration(report, language)
    metadata: dict[str, object] = {
        "passed_on": verdict.summary,
        "wer": report.wer,
        "cer": report.cer,
        "substitutions": report.substitutions,
        "deletions": report.deletions,
        "insertions": report.insertions,
        "script_words": report.reference_words,
        "heard_words": report.hypothesis_words,
        "worst_words": "; ".join(report.worst_words(8)) or "none",
        "provider": transcript.provider,
        "model": transcript.model,
        "transcript": transcript.text[:TRANSCRIPT_PREVIEW_CHARS]
        + ("…" if len(transcript.text) > TRANSCRIPT_PREVIEW_CHARS else ""),
        "audio_s": transcript.duration_s,
        "seconds": round(seconds, 2),
    }
    offset = _caption_offset(folder, transcript, language)
    if offset is not None:
        # Captions are timed from the voice's own word timings; this is how far the words heard
        # start from them (not judged: a recognizer's timestamps are only good to ~0.1-0.2 s).
        metadata["caption_offset_s"] = offset
    return metadata, verdict, costs


def _caption_offset(folder: Path, transcript: Transcript, language: Language) -> float | None:
    path = folder / "voiceover.json"
    if not path.exists() or not transcript.words:
        return None
    spoken = Voiceover.model_validate_json(path.read_text(encoding="utf-8"))
    pairs = matched_words(
        [w.word for w in spoken.words], [w.word for w in transcript.words], language
    )
    if not pairs:
        return None
    gaps = [abs(spoken.words[i].start - transcript.words[j].start) for i, j in pairs]
    return round(sum(gaps) / len(gaps), 3)


@dg.asset_check(asset=video, blocking=False, partitions_def=topics)
def narration_matches_script(
    context: dg.AssetCheckExecutionContext, store: MediaStore, transcriber: Transcriber
) -> dg.AssetCheckResult:
    """The video's narration, transcribed with the channel's transcription settings, matches the
    script: English by word error rate, Russian by character error rate (see factory_core.wer
    for the thresholds and the measurements behind them). Warns, never blocks."""
    store.pull_topic(context.partition_key)  # a step on another machine starts empty
    key = context.partition_key
    folder = store.topic_dir(key)
    request = store.load_request(key)
    channel = store.channel_profile(request.channel)
    settings = channel.providers.transcription
    if not (folder / "video.mp4").exists():
        return dg.AssetCheckResult(
            passed=False, severity=dg.AssetCheckSeverity.WARN,
            metadata={"problems": "video.mp4 is missing"},
        )  # fmt: skip
    try:
        metadata, verdict, costs = listen_to_video(folder, transcriber, settings)
    except (ProviderError, RenderError) as exc:
        # No verdict without a transcript; say why instead of failing the run.
        return dg.AssetCheckResult(
            passed=False, severity=dg.AssetCheckSeverity.WARN,
            metadata={"problems": f"could not transcribe the narration: {exc}",
                      "provider": settings.provider},
        )  # fmt: skip
    if costs:
        topic = TopicContext(key=key, request=request, channel=channel, dir=folder)
        metadata["cost_usd"] = record_costs(topic, costs, "checks")
    metadata["problems"] = "none" if verdict.passed else verdict.summary
    return dg.AssetCheckResult(
        passed=verdict.passed, severity=dg.AssetCheckSeverity.WARN, metadata=metadata
    )
