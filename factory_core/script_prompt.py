"""The LLM script writer's pure half: the prompt, the response schema, and the checks that turn
a model's answer into a Script.

No I/O and no SDK: `factory_resources.llm_writer` sends these messages to an OpenAI-compatible
endpoint and hands the parsed answer back to `to_script`. `estimate_usage` models the very same
prompt, so a cost estimate and the ledger agree.

Lengths are asked for in characters counting spaces (what a model can aim for), and converted
from the voice's measured rate of letters per second (`timing.spoken_chars`) with a fixed ratio;
the script asset measures the real narration afterwards and asks for a revision when it misses.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from factory_core.models import Language, Script, ScriptProviderSettings, TopicRequest
from factory_core.platforms import fit_description, fit_hashtags, fit_title
from factory_core.script_writer import MAX_SCENES, MIN_SCENES, timed_scenes
from factory_core.text import (
    LANGUAGE_NAMES,
    clean_text,
    detect_language,
    keywords,
    speakable,
    split_sentences,
)
from factory_core.timing import END_TAIL_S, SENTENCE_PAUSE_S, estimate_duration

# One picture per 5-6 s keeps a short moving without cutting mid-thought.
SECONDS_PER_SCENE = 5.5
# Characters with spaces and punctuation per spoken letter or digit, measured on the composer's
# English and Russian templates (1.21 and 1.19); one ratio is close enough, the asset re-measures.
CHARS_PER_SPOKEN_CHAR = 1.2
# Letters in a typical narration sentence: each sentence also costs a SENTENCE_PAUSE_S pause.
SPOKEN_CHARS_PER_SENTENCE = 55
# The approximation of tokens the estimate and the test fake share: four characters a token.
CHARS_PER_TOKEN = 4


class LlmScene(BaseModel):
    """One scene: what is said while one picture is shown."""

    model_config = ConfigDict(extra="forbid")

    narration: str = Field(description="What the voice says during this scene: 1-3 sentences.")
    visual_prompt: str = Field(
        description="One picture for this scene, for an image generator, in English."
    )
    keywords: list[str] = Field(description="Two or three content words of this scene.")


# The answer the model must give. OpenAI strict structured outputs accept it as it is: every
# field required, no extra keys, no numeric or length constraints (strict mode does not enforce
# them everywhere; `to_script` checks what matters). Docstrings and field descriptions are sent
# to the model as part of the schema, so they are written for the model.
class LlmScript(BaseModel):
    """A narration script for one short vertical video."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(description="The video title, at most 100 characters, no hashtags.")
    description: str = Field(description="One or two sentences for the platform description.")
    hashtags: list[str] = Field(description="Three to five single-word hashtags.")
    hook: str = Field(description="The opening line: the first sentence of the first scene.")
    body_points: list[str] = Field(description="The main points, a short phrase each.")
    call_to_action: str = Field(description="The closing line: the last sentence spoken.")
    scenes: list[LlmScene]


def scene_count_for(duration_s: float) -> int:
    """How many scenes to ask for: about one per 5-6 s, within the composer's range."""
    return max(MIN_SCENES, min(MAX_SCENES, round(duration_s / SECONDS_PER_SCENE)))


def target_chars_for(duration_s: float, chars_per_second: float) -> int:
    """Characters of narration (counting spaces) that fill `duration_s` at the voice's rate of
    letters per second, allowing for the pause after each sentence and the end tail."""
    per_letter_s = 1 / chars_per_second + SENTENCE_PAUSE_S / SPOKEN_CHARS_PER_SENTENCE
    letters = (duration_s - END_TAIL_S + SENTENCE_PAUSE_S) / per_letter_s
    return max(80, round(letters * CHARS_PER_SPOKEN_CHAR))


def revised_target_chars(narration: str, measured_s: float, target_s: float) -> int:
    """The narration's length scaled by how far its measured duration missed the target."""
    speech_s = max(1.0, measured_s - END_TAIL_S)
    return max(80, round(len(narration) * (target_s - END_TAIL_S) / speech_s))


# --- messages ------------------------------------------------------------------------------


def _system_message(style: str, tone: str, language: Language) -> dict[str, str]:
    lang = LANGUAGE_NAMES[language]
    return {
        "role": "system",
        "content": (
            "You write narration scripts for vertical short videos (YouTube Shorts, TikTok, "
            "Reels). A text-to-speech voice reads the narration aloud over one picture per "
            "scene.\n"
            f"Channel style: {style}. Tone: {tone or 'clear, warm, plain words, no hype'}.\n"
            "Rules:\n"
            f"- Write the title, description, hashtags, hook, points, call to action, narration "
            f"and keywords in {lang}.\n"
            "- visual_prompt is for an image generator, in English: one concrete picture in the "
            "channel's style, vertical 9:16 composition, no text in the picture.\n"
            "- Narration is plain spoken sentences that end with . ! or ?: no emoji, no "
            "hashtags, no markdown, no lists, no stage directions; write numbers and symbols "
            "the way they are said.\n"
            "- The first scene opens with the hook; the last scene ends with the call to "
            "action.\n"
            "- Be accurate; when a fact is uncertain, say so or leave it out.\n"
            "- Answer with the JSON object only."
        ),
    }


def _length_line(target_chars: int, duration_s: float) -> str:
    return (
        f"about {target_chars} characters of narration in total, counting spaces "
        f"(about {duration_s:.0f} seconds spoken)"
    )


def build_messages(
    request: TopicRequest,
    channel_settings: ScriptProviderSettings,
    style: str,
    target_chars: int,
    scene_count: int,
    language: Language,
) -> list[dict[str, str]]:
    """The system and user messages for one script: style and tone from the channel, the
    language of the topic, the scene count and length the duration budget needs."""
    lang = LANGUAGE_NAMES[language]
    user = (
        f"Topic: {request.topic}\n"
        f"Language: {lang}\n"
        f"Length: {_length_line(target_chars, request.duration_s)}.\n"
        f"Scenes: exactly {scene_count} scenes, each 1-3 sentences.\n"
        "Title: at most 100 characters. Description: one or two sentences. "
        "Hashtags: 3 to 5 single words. Body points: one short phrase (at most 8 words) "
        "per point of the middle scenes."
    )
    return [
        _system_message(style, channel_settings.tone, language),
        {"role": "user", "content": user},
    ]


def repair_messages(
    previous_messages: Sequence[dict[str, str]], bad_content: str, errors: Sequence[str]
) -> list[dict[str, str]]:
    """The conversation so far, the unusable answer, and what was wrong with it: the model
    fixes its own answer far more reliably than it rewrites from scratch."""
    problems = "\n".join(f"- {error}" for error in errors)
    return [
        *previous_messages,
        {"role": "assistant", "content": bad_content},
        {
            "role": "user",
            "content": (
                "That answer could not be used:\n"
                f"{problems}\n"
                "Reply again with the complete JSON object, with these problems fixed and "
                "everything else as asked."
            ),
        },
    ]


def revise_messages(
    previous_messages: Sequence[dict[str, str]],
    previous_content: str,
    measured_s: float,
    target_s: float,
    target_chars: int,
) -> list[dict[str, str]]:
    """Ask for a shorter or longer version with a concrete target length in characters."""
    direction = "shorter" if measured_s > target_s else "longer"
    return [
        *previous_messages,
        {"role": "assistant", "content": previous_content},
        {
            "role": "user",
            "content": (
                f"Read aloud, this narration takes {measured_s:.0f} seconds; the video must be "
                f"{target_s:.0f} seconds. Rewrite it {direction}: "
                f"{_length_line(target_chars, target_s)}. Keep the topic, the language, the "
                "number of scenes and the JSON shape."
            ),
        },
    ]


def llm_script_from(script: Script) -> LlmScript:
    """A Script as the model wrote it, to show it its own answer when asking for a revision."""
    return LlmScript(
        title=script.title,
        description=script.description,
        hashtags=script.hashtags,
        hook=script.hook,
        body_points=script.body_points,
        call_to_action=script.call_to_action,
        scenes=[
            LlmScene(narration=s.narration, visual_prompt=s.visual_prompt, keywords=s.keywords)
            for s in script.scenes
        ],
    )


def content_json(llm_script: LlmScript) -> str:
    """The JSON text of an answer, as a model writes it (UTF-8, not \\u escapes)."""
    return json.dumps(llm_script.model_dump(), ensure_ascii=False)


# --- the answer -> Script --------------------------------------------------------------------


def answer_problems(llm_script: LlmScript, language: Language) -> list[str]:
    """What makes an answer unusable, phrased so the model can fix it in a repair round."""
    problems: list[str] = []
    n = len(llm_script.scenes)
    if not MIN_SCENES <= n <= MAX_SCENES:
        problems.append(f"the script has {n} scenes; it needs {MIN_SCENES} to {MAX_SCENES}")
    for i, scene in enumerate(llm_script.scenes, start=1):
        if not split_sentences(speakable(clean_text(scene.narration))):
            problems.append(f"scene {i} has no narration")
    if not clean_text(llm_script.title):
        problems.append("the title is empty")
    narration = " ".join(scene.narration for scene in llm_script.scenes)
    found = detect_language(f"{llm_script.title} {narration}")
    if narration.strip() and found != language.value:
        problems.append(
            f"the text is not in {LANGUAGE_NAMES[language]}"
            + (f" (it reads as {found})" if found else "")
        )
    return problems


def to_script(
    llm_script: LlmScript, request: TopicRequest, chars_per_second: float, *, model: str
) -> Script:
    """The model's answer as the factory's Script, with sentences, keywords and planned timings
    computed as the offline composer computes them, and metadata fitted to platform limits.

    Raises ValueError listing every problem when the answer cannot be used.
    """
    problems = answer_problems(llm_script, request.language)
    if problems:
        raise ValueError("; ".join(problems))
    cps = chars_per_second
    style = request.style or "explainer"
    topic_words = keywords(request.topic, limit=3)
    # The voice reads whatever is here: drop markup, emoji and stray symbols first.
    groups = [split_sentences(speakable(clean_text(a.narration))) for a in llm_script.scenes]

    def describe(index: int, narration: str) -> tuple[list[str], str]:
        answer = llm_script.scenes[index]
        words = [w for w in (clean_text(k) for k in answer.keywords) if w][:3]
        scene_words = words or keywords(narration, limit=3) or topic_words
        return scene_words, clean_text(answer.visual_prompt) or ", ".join(scene_words)

    scenes = timed_scenes(groups, cps, describe)
    all_sentences = [s for scene in scenes for s in scene.sentences]
    tags = fit_hashtags([t.strip().lstrip("#") for t in llm_script.hashtags])
    return Script(
        topic=request.topic,
        language=request.language,
        title=fit_title(clean_text(llm_script.title)),
        description=fit_description(clean_text(llm_script.description)),
        hashtags=tags or fit_hashtags([*topic_words, style, "shorts"]),
        hook=clean_text(llm_script.hook) or all_sentences[0],
        body_points=[p for p in (clean_text(b) for b in llm_script.body_points) if p],
        call_to_action=clean_text(llm_script.call_to_action) or all_sentences[-1],
        scenes=scenes,
        target_duration_s=request.duration_s,
        estimated_duration_s=round(estimate_duration(all_sentences, cps), 2),
        chars_per_second=round(cps, 3),
        source=f"llm:{model}",
    )


# --- estimate ----------------------------------------------------------------------------


def approx_tokens(chars: int) -> int:
    return math.ceil(chars / CHARS_PER_TOKEN)


# The size of everything but the narration in a typical answer, in characters: assumed sizes
# of what the prompt asks for (a short title, one or two sentences of description, short
# points). The estimate adds them to the narration it asks for; tests/fakes/openai_chat.py
# answers with fields of about these sizes.
_TYPICAL_TITLE = 45
_TYPICAL_DESCRIPTION = 150
_TYPICAL_HASHTAG = 8
_TYPICAL_HASHTAGS = 5
_TYPICAL_HOOK = 50
_TYPICAL_POINT = 25
_TYPICAL_CTA = 40
_TYPICAL_VISUAL_PROMPT = 95
_TYPICAL_KEYWORD = 6
_TYPICAL_KEYWORDS = 3


def typical_answer(target_chars: int, scene_count: int) -> LlmScript:
    """A stand-in answer of the asked length: only its JSON size matters, for the estimate."""
    per_scene = max(1, target_chars // scene_count)
    return LlmScript(
        title="t" * _TYPICAL_TITLE,
        description="d" * _TYPICAL_DESCRIPTION,
        hashtags=["h" * _TYPICAL_HASHTAG] * _TYPICAL_HASHTAGS,
        hook="o" * _TYPICAL_HOOK,
        body_points=["p" * _TYPICAL_POINT] * max(1, scene_count - 2),
        call_to_action="c" * _TYPICAL_CTA,
        scenes=[
            LlmScene(
                narration="n" * per_scene,
                visual_prompt="v" * _TYPICAL_VISUAL_PROMPT,
                keywords=["k" * _TYPICAL_KEYWORD] * _TYPICAL_KEYWORDS,
            )
            for _ in range(scene_count)
        ],
    )


def estimate_usage(
    request: TopicRequest,
    settings: ScriptProviderSettings,
    chars_per_second: float,
    *,
    style: str | None = None,
) -> tuple[int, int]:
    """(input_tokens, output_tokens) of ONE write call for this request: the prompt really
    sent, and a typical answer of the asked length, at four characters a token."""
    scene_count = scene_count_for(request.duration_s)
    target_chars = target_chars_for(request.duration_s, chars_per_second)
    messages = build_messages(
        request,
        settings,
        style or request.style or "explainer",
        target_chars,
        scene_count,
        request.language,
    )
    prompt_chars = sum(len(m["content"]) for m in messages)
    answer_chars = len(content_json(typical_answer(target_chars, scene_count)))
    return approx_tokens(prompt_chars), approx_tokens(answer_chars)
