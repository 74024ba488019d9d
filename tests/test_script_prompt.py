"""The LLM script writer's pure half (factory_core.script_prompt).

Covers: scene counts per duration, the response schema's strict-mode shape, the messages sent
(style, tone, language, scene count, target length; repair and revision turns), turning an
answer into a Script (checks, cleaning, timings, platform limits) and the usage estimate.

Deliberately does not touch the SDK, HTTP or Dagster: tests/test_llm_writer.py does that.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from factory_core.models import Language, ScriptProviderSettings, TopicRequest
from factory_core.platforms import HASHTAGS_MAX, TITLE_MAX
from factory_core.script_prompt import (
    LlmScene,
    LlmScript,
    build_messages,
    content_json,
    estimate_usage,
    llm_script_from,
    repair_messages,
    revise_messages,
    revised_target_chars,
    scene_count_for,
    target_chars_for,
    to_script,
    typical_answer,
)
from factory_core.script_writer import MAX_SCENES, MIN_SCENES, compose_script
from factory_core.slugs import topic_key
from factory_core.timing import estimate_duration

CPS = 14.8
EN_TOPIC = "Why octopuses have three hearts"
RU_TOPIC = "Почему небо голубое"
SETTINGS = ScriptProviderSettings(chain=["openai", "offline"], tone="warm, no hype")


def request(
    topic: str = EN_TOPIC, language: Language = Language.EN, duration_s: float = 30
) -> TopicRequest:
    return TopicRequest(
        key=topic_key("demo", topic),
        channel="demo",
        topic=topic,
        language=language,
        duration_s=duration_s,
        style="explainer",
    )


def answer(n_scenes: int = 5, language: Language = Language.EN, **fields: Any) -> LlmScript:
    if language is Language.EN:
        lines = ["Octopuses pump blue blood.", "Two hearts serve the gills. One serves the body."]
        title, tags = "Why octopuses have three hearts", ["#octopus", "science", "#sea life"]
    else:
        lines = ["У осьминога голубая кровь.", "Два сердца качают кровь через жабры."]
        title, tags = "Почему небо голубое", ["#небо", "наука"]
    data: dict[str, Any] = {
        "title": title,
        "description": "Three hearts, one animal.",
        "hashtags": tags,
        "hook": lines[0],
        "body_points": ["gills", "body"],
        "call_to_action": "Follow for more.",
        "scenes": [
            LlmScene(
                narration=lines[i % 2], visual_prompt=f"an octopus, view {i}", keywords=["octopus"]
            )
            for i in range(n_scenes)
        ],
    }
    return LlmScript(**{**data, **fields})


# --- sizes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("duration", "scenes"), [(15, 4), (20, 4), (30, 5), (40, 7), (60, 7)])
def test_scene_count_is_about_one_per_five_seconds_within_range(
    duration: float, scenes: int
) -> None:
    assert scene_count_for(duration) == scenes
    assert MIN_SCENES <= scenes <= MAX_SCENES


@pytest.mark.parametrize(("language", "topic"), [(Language.EN, EN_TOPIC), (Language.RU, RU_TOPIC)])
@pytest.mark.parametrize("duration", [15, 30, 60])
def test_target_length_matches_what_the_composer_fits_in_the_budget(
    language: Language, topic: str, duration: float
) -> None:
    composed = compose_script(request(topic, language, duration), CPS)
    assert abs(composed.estimated_duration_s - duration) < 0.1 * duration
    target = target_chars_for(duration, CPS)
    assert target == pytest.approx(len(composed.narration), rel=0.12)


def test_revised_target_scales_with_the_miss() -> None:
    narration = "x" * 600
    assert revised_target_chars(narration, measured_s=40.7, target_s=30.7) == 450
    assert revised_target_chars(narration, measured_s=20.7, target_s=30.7) == 900


# --- schema ----------------------------------------------------------------------------------


def _objects(schema: dict[str, Any]) -> list[dict[str, Any]]:
    found = [schema] if schema.get("type") == "object" else []
    for value in schema.values():
        if isinstance(value, dict):
            found += _objects(value)
    return found


def test_schema_is_strict_mode_compatible() -> None:
    """OpenAI strict mode: every object closed and every property required."""
    objects = _objects(LlmScript.model_json_schema())
    assert len(objects) == 2  # the script and its scene
    for obj in objects:
        assert obj["additionalProperties"] is False
        assert set(obj["required"]) == set(obj["properties"])


# --- messages --------------------------------------------------------------------------------


def test_messages_carry_style_tone_length_scenes_and_topic() -> None:
    messages = build_messages(request(), SETTINGS, "story", 480, 5, Language.EN)
    assert [m["role"] for m in messages] == ["system", "user"]
    system, user = messages[0]["content"], messages[1]["content"]
    assert "Channel style: story" in system and "Tone: warm, no hype" in system
    assert f"Topic: {EN_TOPIC}" in user
    assert "exactly 5 scenes" in user
    assert "about 480 characters" in user
    assert "in English" in system


def test_russian_topics_are_asked_for_in_russian() -> None:
    messages = build_messages(request(RU_TOPIC, Language.RU), SETTINGS, "x", 300, 4, Language.RU)
    assert "in Russian" in messages[0]["content"]
    assert "Language: Russian" in messages[1]["content"]


def test_a_channel_without_tone_gets_a_default_tone() -> None:
    messages = build_messages(request(), ScriptProviderSettings(), "x", 300, 4, Language.EN)
    assert "Tone: clear, warm" in messages[0]["content"]


def test_repair_sends_the_bad_answer_and_every_problem_back() -> None:
    first = build_messages(request(), SETTINGS, "x", 300, 4, Language.EN)
    repaired = repair_messages(first, '{"title": ', ["scenes: Field required", "title is empty"])
    assert repaired[:2] == first and len(first) == 2  # the original is not modified
    assert repaired[2] == {"role": "assistant", "content": '{"title": '}
    assert repaired[3]["role"] == "user"
    assert "- scenes: Field required\n- title is empty" in repaired[3]["content"]


@pytest.mark.parametrize(("measured", "word"), [(40.0, "shorter"), (20.0, "longer")])
def test_revision_asks_for_a_concrete_length(measured: float, word: str) -> None:
    first = build_messages(request(), SETTINGS, "x", 480, 5, Language.EN)
    asked = revise_messages(first, content_json(answer()), measured, 30.0, 355)
    assert asked[2]["role"] == "assistant" and asked[2]["content"] == content_json(answer())
    last = asked[3]["content"]
    assert f"Rewrite it {word}" in last
    assert "about 355 characters" in last and f"takes {measured:.0f} seconds" in last


# --- answer -> Script ------------------------------------------------------------------------


def test_answer_becomes_a_timed_script() -> None:
    written = to_script(answer(), request(), CPS, model="gpt-4o-mini")
    assert written.source == "llm:gpt-4o-mini"
    assert len(written.scenes) == 5
    assert written.scenes[1].sentences == ["Two hearts serve the gills.", "One serves the body."]
    clock = 0.0
    for scene in written.scenes:
        assert scene.planned_start_s == pytest.approx(clock, abs=0.02)
        assert scene.planned_duration_s == pytest.approx(
            estimate_duration(scene.sentences, CPS), abs=0.01
        )
        clock += scene.planned_duration_s
    assert written.estimated_duration_s == pytest.approx(
        estimate_duration(written.sentences, CPS), abs=0.01
    )
    assert written.target_duration_s == 30
    assert written.hashtags == ["#octopus", "#science", "#sea_life"]
    assert written.hook == "Octopuses pump blue blood."


def test_metadata_is_fitted_to_platform_limits_and_narration_to_speech() -> None:
    long_title = "Octopus " * 30
    tags = [f"tag{i}" for i in range(9)]
    scenes = [
        LlmScene(narration="**Hearts** 🐙 pump blood.", visual_prompt="", keywords=[])
        for _ in range(4)
    ]
    written = to_script(
        answer(title=long_title, hashtags=tags, scenes=scenes), request(), CPS, model="m"
    )
    assert len(written.title) <= TITLE_MAX and written.title.endswith("…")
    assert len(written.hashtags) == HASHTAGS_MAX
    assert written.scenes[0].narration == "Hearts pump blood."
    # Empty keywords and picture: taken from the narration, so images still match the words.
    assert written.scenes[0].keywords == ["Hearts", "pump", "blood"]
    assert written.scenes[0].visual_prompt == "Hearts, pump, blood"


def test_unusable_answers_list_every_problem() -> None:
    bad = answer(n_scenes=2, title=" ")
    bad.scenes[0].narration = "  "
    with pytest.raises(ValueError) as caught:
        to_script(bad, request(), CPS, model="m")
    message = str(caught.value)
    assert f"2 scenes; it needs {MIN_SCENES} to {MAX_SCENES}" in message
    assert "scene 1 has no narration" in message
    assert "title is empty" in message


def test_an_answer_in_the_wrong_language_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"not in Russian .*reads as en"):
        to_script(answer(language=Language.EN), request(RU_TOPIC, Language.RU), CPS, model="m")
    russian = to_script(
        answer(language=Language.RU), request(RU_TOPIC, Language.RU), CPS, model="m"
    )
    assert russian.language is Language.RU


def test_a_script_shown_back_to_the_model_round_trips() -> None:
    written = to_script(answer(), request(), CPS, model="m")
    again = to_script(llm_script_from(written), request(), CPS, model="m")
    assert again.narration == written.narration
    assert again.title == written.title and again.hashtags == written.hashtags


# --- estimate --------------------------------------------------------------------------------


def test_estimate_models_the_prompt_really_sent() -> None:
    asked = request(duration_s=30)
    sent = build_messages(
        asked, SETTINGS, "explainer", target_chars_for(30, CPS), scene_count_for(30), Language.EN
    )
    tokens_in, tokens_out = estimate_usage(asked, SETTINGS, CPS)
    assert tokens_in == math.ceil(sum(len(m["content"]) for m in sent) / 4)
    # The answer: the narration asked for, in the JSON shape with the metadata around it.
    typical = typical_answer(target_chars_for(30, CPS), scene_count_for(30))
    assert sum(len(s.narration) for s in typical.scenes) == pytest.approx(486, abs=5)
    assert tokens_out == math.ceil(len(content_json(typical)) / 4)
    _, longer_out = estimate_usage(request(duration_s=60), SETTINGS, CPS)
    assert longer_out > tokens_out
