"""script: hook, points, call to action and scenes, fitted to the duration budget.

Who writes it is the channel's `providers.script.chain`, tried in order: `openai` (any
OpenAI-compatible endpoint, the `llm` resource) when its key is set, else or when it fails for
good, the next entry; `offline` is the deterministic composer and never fails. Every skipped or
failed writer is on record in the metadata (`fallbacks`) and the log.
"""

import tempfile
from pathlib import Path

import dagster as dg

from factory_assets.common import TopicContext, push_media, record_costs, topic_context
from factory_assets.partitions import topics
from factory_core.costs import CostLine
from factory_core.models import Script, Voiceover
from factory_core.quality import DURATION_TOLERANCE
from factory_core.script_prompt import target_chars_for
from factory_core.script_writer import script_from_recording
from factory_core.timing import spoken_chars
from factory_core.wer import sentence_spans
from factory_resources.elevenlabs_voice import ElevenLabsVoice
from factory_resources.faults import ProviderError
from factory_resources.ffmpeg import RenderError
from factory_resources.llm_writer import OpenAIScriptWriter, ScriptWriteError
from factory_resources.narration_pace import NarrationPace, narration_pace, offline_speed
from factory_resources.script_writers import OfflineScriptWriter
from factory_resources.store import MediaStore
from factory_resources.transcribers import Transcriber
from factory_resources.voices import OfflineVoice

# Revision rounds an LLM script gets when the voice measures it outside the budget: each one
# is a paid call, and two bring a model within a second or two in practice.
MAX_LLM_REVISIONS = 2
# How far an LLM script may miss its budget: 3 s, but never more than the script check allows,
# or a 15 s short would pass here and then fail the blocking check.
LLM_TOLERANCE_S = 3.0


@dg.asset(
    partitions_def=topics,
    group_name="production",
    kinds={"python"},
    code_version="1",
    # Caps concurrent LLM calls across runs (`dagster instance concurrency set llm N`).
    pool="llm",
    description="The narration split into scenes, with title, description and hashtags.",
)
def script(
    context: dg.AssetExecutionContext,
    store: MediaStore,
    script_writer: OfflineScriptWriter,
    voice: OfflineVoice,
    llm: OpenAIScriptWriter,
    elevenlabs: ElevenLabsVoice,
    transcriber: Transcriber,
) -> dg.MaterializeResult:
    topic = topic_context(context, store)
    settings = topic.channel.providers.script
    speed = offline_speed(topic.channel, store.root)  # the channel's, times its offline profile's
    language = topic.request.language
    pace = narration_pace(
        topic.channel,
        store.root,
        offline_rate=voice.speaking_rate(language, speed, store.cache_dir("voices")),
        offline_measure=lambda sentences: voice.measure_seconds(sentences, language, speed),
        elevenlabs_usable=elevenlabs.available(topic.channel.providers.voice.api_key_env) is None,
    )
    chain = settings.chain
    fallbacks: list[str] = []
    lines: list[CostLine] = []
    written: Script | None = None
    provider, model, refits = script_writer.provider(), "composer", 0
    # A user's own narration (text or recording) is the script: no writer to choose, nothing
    # to pay for (the estimate counts it the same way).
    own_words = bool(topic.request.script or topic.request.narration_file)
    for position, entry in enumerate([] if own_words else chain):
        last = position == len(chain) - 1
        if entry == "offline":
            break
        unavailable = llm.available(settings)
        reason = f"openai: {unavailable}"
        if unavailable is None:
            try:
                written, refits = _write_with_llm(context, topic, llm, pace, lines)
                provider, model = "openai", settings.model
                break
            except ProviderError as exc:
                reason = str(exc)  # "openai (HTTP 500): <the provider's words>"
        fallbacks.append(reason)
        if last:
            cost = record_costs(topic, lines, "script")
            raise dg.Failure(
                description=f"no script writer left for {topic.key!r}: {reason}",
                metadata={
                    "provider_chain": " → ".join(chain),
                    "fallbacks": "; ".join(fallbacks),
                    "cost_usd": cost,
                },
            )
        context.log.warning(f"script: skipping openai, using {chain[position + 1]}: {reason}")
    if topic.request.narration_file:
        written, model = _script_from_recording(topic, store, transcriber, pace.rate, lines)
        provider = "recording"
    elif written is None:
        written, refits = _write_offline(topic, script_writer, pace)
    cost = record_costs(topic, lines, "script")
    store.write_model(topic.dir / "script.json", written)
    text = "\n\n".join(f"**{i + 1}.** {scene.narration}" for i, scene in enumerate(written.scenes))
    push_media(context, store, topic)
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
            # Whose pace sized the narration: the offline voice, measured, or a studio voice's
            # learned pace (a paid voice is not run on drafts).
            "paced_for": pace.voice,
            "provider": provider,
            "provider_chain": " → ".join(chain),
            "fallbacks": "; ".join(fallbacks) or "none",
            "model": model,
            # Model requests made, repairs and revisions included (each one is billed).
            "llm_rounds": sum(1 for line in lines if line.unit == "input_token"),
            "cost_usd": cost,
            "path": dg.MetadataValue.path(str(topic.dir / "script.json")),
        }
    )


def _script_from_recording(
    topic: TopicContext, store: MediaStore, transcriber: Transcriber, rate: float,
    lines: list[CostLine],
) -> tuple[Script, str]:  # fmt: skip
    """The words heard in the user's recording become the script; their timings are kept in
    recording.json for the voiceover stage. Returns the script and the recognizer's model."""
    # Imported here: transcript_checks imports the video asset, which depends on this one.
    from factory_assets.transcript_checks import extract_speech_audio, narration_transcript

    name = topic.request.narration_file or ""
    recording = store.channel_dir(topic.request.channel) / "narration" / name
    if not recording.is_file():
        raise dg.Failure(
            description=f"the recording {name!r} for {topic.key!r} is not in "
            f"{recording.parent}; put it there and materialize again",
            allow_retries=False,
        )
    language = topic.request.language
    with tempfile.TemporaryDirectory() as tmp:
        speech = Path(tmp) / "speech.wav"
        try:
            extract_speech_audio(recording, speech)
        except RenderError as exc:
            raise dg.Failure(
                description=f"the recording {name!r} cannot be read as audio ({exc}); "
                "give a WAV, MP3, M4A, FLAC or OGG file",
                allow_retries=False,
            ) from exc
        try:
            transcript, timings, costs = narration_transcript(
                transcriber, speech, language, topic.channel.providers.transcription
            )
        except ValueError as exc:  # nothing heard
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
    lines.extend(costs)
    spans = sentence_spans(timings)
    written = script_from_recording(
        topic.request, [span.text for span in spans], transcript.duration_s, rate
    )
    heard = Voiceover(
        audio_file="voice.wav", duration_s=transcript.duration_s, sample_rate=16000,
        words=timings, sentences=spans, provider=f"recording ({transcript.provider})",
        voice=name,
    )  # fmt: skip
    store.write_model(topic.dir / "recording.json", heard)
    return written, transcript.model


def _write_offline(
    topic: TopicContext, script_writer: OfflineScriptWriter, pace: NarrationPace
) -> tuple[Script, int]:
    """The composer (or the user's own script), refitted to the narrating voice's pace."""
    rate = pace.rate
    written = script_writer.write(topic.request, rate)
    refits = 0
    if written.source == "composer":
        # The rate is an average; the real narration can run long or short (numbers, names).
        # Measure it with the voice and refit, at most twice. A refit can land further off than
        # the one before (the composer's choices are discrete), so the closest measured script
        # is kept, its measure as the estimate.
        actual = pace.seconds(written.sentences)
        target = written.target_duration_s
        best, best_s = written, actual
        while refits < 2 and abs(actual - target) > 0.04 * target:
            refits += 1
            fixed = written.estimated_duration_s - spoken_chars(written.narration) / rate
            rate = spoken_chars(written.narration) / max(1.0, actual - fixed)
            written = script_writer.write(topic.request, rate)
            actual = pace.seconds(written.sentences)
            if abs(actual - target) < abs(best_s - target):
                best, best_s = written, actual
        written = best.model_copy(update={"estimated_duration_s": round(best_s, 2)})
    return written, refits


def _write_with_llm(
    context: dg.AssetExecutionContext,
    topic: TopicContext,
    llm: OpenAIScriptWriter,
    pace: NarrationPace,
    lines: list[CostLine],
) -> tuple[Script, int]:
    """An LLM script, revised while the voice measures it outside the budget. Appends every
    call's cost to `lines`, also when a call fails (failed answers are billed too). A failed
    revision keeps the best script so far: it is valid, only off the budget."""
    request, settings = topic.request, topic.channel.providers.script
    rate = pace.rate
    target = request.duration_s
    tolerance = min(LLM_TOLERANCE_S, DURATION_TOLERANCE * target)

    def measured(candidate: Script) -> float:
        return pace.seconds(candidate.sentences)

    try:
        written, spent = llm.write(request, settings, rate, target_chars_for(target, rate))
    except ScriptWriteError as exc:
        lines.extend(exc.cost_lines)
        raise
    lines.extend(spent)
    best, best_s = written, measured(written)
    actual, revisions = best_s, 0
    while revisions < MAX_LLM_REVISIONS and abs(actual - target) > tolerance:
        revisions += 1
        try:
            written, spent = llm.revise(request, settings, written, rate, actual, target)
        except ScriptWriteError as exc:
            lines.extend(exc.cost_lines)
            context.log.warning(f"keeping the {best_s:.1f} s script: revision failed: {exc}")
            break
        lines.extend(spent)
        actual = measured(written)
        if abs(actual - target) < abs(best_s - target):
            best, best_s = written, actual
    return best.model_copy(update={"estimated_duration_s": round(best_s, 2)}), revisions
