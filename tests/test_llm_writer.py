"""The LLM script writer (factory_resources.llm_writer) with the real openai SDK against a local
fake of `POST /v1/chat/completions` (tests/fakes/openai_chat.py), and the `script` asset's
provider chain.

Covers: a structured-output request and its ledger lines (and the estimate against them), the
SDK's Retry-After wait on 429, 5xx until retries run out, malformed answers repaired once and
failing after that, Russian scripts, revisions asking for a target length, keys and prices that
are missing, the key never appearing in errors, and the asset using the endpoint or falling back
to the offline composer on record.

Deliberately does not touch the real OpenAI service or any other stage than `script`.
"""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml
from pytest_httpserver import HTTPServer

from factory_assets.definitions import offline_resources
from factory_assets.partitions import topics
from factory_assets.script import script
from factory_core.costs import PriceTable
from factory_core.models import Language, Script, ScriptProviderSettings, TopicRequest
from factory_core.script_prompt import (
    build_messages,
    estimate_usage,
    revised_target_chars,
    scene_count_for,
    target_chars_for,
)
from factory_core.text import detect_language
from factory_resources.faults import ProviderError
from factory_resources.llm_writer import OpenAIScriptWriter, ScriptWriteError
from factory_resources.project_db import project_engine, topic_costs
from factory_resources.store import MediaStore
from factory_resources.voices import OfflineVoice

from .conftest import QUIET, make_request
from .fakes.openai_chat import API_KEY, FakeOpenAIChat

CPS = 14.8
MODEL = "gpt-4o-mini"


@pytest.fixture
def fake(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAIChat:
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    return FakeOpenAIChat(httpserver)


def settings_for(fake: FakeOpenAIChat, **fields: object) -> ScriptProviderSettings:
    return ScriptProviderSettings.model_validate(
        {"chain": ["openai", "offline"], "base_url": fake.base_url, **fields}
    )


# max_retries=1 keeps the failing cases to one SDK back-off (about a second).
WRITER = OpenAIScriptWriter(max_retries=1, timeout_s=10)


def en_request(duration_s: float = 30) -> TopicRequest:
    return make_request("demo", "Why octopuses have three hearts", duration_s=duration_s)


def write(fake: FakeOpenAIChat, request: TopicRequest | None = None) -> tuple[Script, list]:
    request = request or en_request()
    target = target_chars_for(request.duration_s, CPS)
    return WRITER.write(request, settings_for(fake), CPS, target)


# --- the happy path ---------------------------------------------------------------------------


def test_writes_a_script_with_structured_outputs_and_prices_its_usage(
    fake: FakeOpenAIChat,
) -> None:
    request = en_request()
    written, lines = write(fake, request)

    [call] = fake.calls
    assert call.headers["Authorization"] == f"Bearer {API_KEY}"
    assert call.body["model"] == MODEL and call.body["temperature"] == 0.7
    fmt = call.body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["name"] == "LlmScript"
    target = target_chars_for(30, CPS)
    assert call.messages == build_messages(
        request, settings_for(fake), "explainer", target, scene_count_for(30), Language.EN
    )

    assert written.source == f"llm:{MODEL}"
    assert len(written.scenes) == scene_count_for(30)
    assert written.title == "Why octopuses have three hearts"
    assert len(written.narration) == pytest.approx(target, rel=0.1)
    assert written.estimated_duration_s == pytest.approx(30, abs=3)

    prompt_tokens = math.ceil(sum(len(m["content"]) for m in call.messages) / 4)
    assert [line.unit for line in lines] == ["input_token", "output_token"]
    assert lines[0].units == prompt_tokens
    assert all(line.provider == "openai" and line.model == MODEL for line in lines)
    assert all(line.stage == "script" for line in lines)
    price = PriceTable().price("openai", MODEL, "output_token").usd_per_unit
    assert lines[1].amount_usd == pytest.approx(lines[1].units * price, abs=1e-6)

    # `factory estimate` relies on this: one write call predicted within 10% of its ledger.
    tokens_in, tokens_out = estimate_usage(request, settings_for(fake), CPS)
    assert tokens_in == lines[0].units
    assert tokens_out == pytest.approx(lines[1].units, rel=0.1)


def test_a_russian_topic_gets_a_russian_script(fake: FakeOpenAIChat) -> None:
    request = make_request("demo", "Почему небо голубое", language=Language.RU, duration_s=20)
    written, lines = write(fake, request)
    assert "Language: Russian" in fake.calls[0].messages[1]["content"]
    tokens_in, tokens_out = estimate_usage(request, settings_for(fake), CPS)
    assert (tokens_in, tokens_out) == (lines[0].units, pytest.approx(lines[1].units, rel=0.1))
    assert written.language is Language.RU
    assert detect_language(written.narration) == "ru"
    assert detect_language(written.title) == "ru"
    assert len(written.scenes) == scene_count_for(20)


# --- faults the SDK handles -------------------------------------------------------------------


def test_a_rate_limit_is_retried_after_retry_after(fake: FakeOpenAIChat) -> None:
    fake.rate_limit_once(retry_after_s=1)
    written, lines = write(fake)
    assert [c.status for c in fake.calls] == [429, 200]
    assert fake.calls[1].at - fake.calls[0].at >= 0.95  # waited as told, not the 0.5 s default
    assert fake.calls[1].headers.get("X-Stainless-Retry-Count") == "1"
    assert written.scenes and len(lines) == 2  # only the answered request is billed


def test_server_errors_until_retries_run_out_name_openai_and_the_status(
    fake: FakeOpenAIChat,
) -> None:
    fake.fail_always(500)
    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        write(fake)
    assert time.monotonic() - started < 5
    assert len(fake.calls) == 2  # the first try and max_retries=1
    error = caught.value
    assert str(error).startswith("openai (HTTP 500): The server had an error")
    assert error.provider == "openai" and error.status == 500 and error.retryable


def test_an_unreachable_endpoint_is_a_clear_provider_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    closed = ScriptProviderSettings(base_url="http://127.0.0.1:9/v1")  # discard port: refused
    with pytest.raises(ProviderError, match=r"^openai: cannot reach the endpoint") as caught:
        OpenAIScriptWriter(max_retries=0, timeout_s=5).write(en_request(), closed, CPS, 400)
    assert API_KEY not in str(caught.value)


# --- answers that cannot be used --------------------------------------------------------------


def test_invalid_json_is_sent_back_once_and_repaired(fake: FakeOpenAIChat) -> None:
    fake.queue("invalid_json")
    written, lines = write(fake)
    assert len(fake.calls) == 2
    first, repair = fake.calls
    *asked, bad, complaint = repair.messages
    assert asked == first.messages
    assert bad["role"] == "assistant" and not bad["content"].endswith("}")
    assert complaint["role"] == "user" and "Invalid JSON" in complaint["content"]
    assert written.source == f"llm:{MODEL}"
    assert [line.unit for line in lines] == ["input_token", "output_token"] * 2  # both billed


def test_a_wrong_scene_count_is_sent_back_with_the_rule(fake: FakeOpenAIChat) -> None:
    fake.queue("too_few_scenes")
    written, _ = write(fake)
    complaint = fake.calls[1].messages[-1]["content"]
    assert "the script has 2 scenes; it needs 4 to 7" in complaint
    assert len(written.scenes) == scene_count_for(30)


def test_a_script_in_the_wrong_language_is_sent_back(fake: FakeOpenAIChat) -> None:
    fake.queue("english")
    request = make_request("demo", "Почему небо голубое", language=Language.RU, duration_s=20)
    written, _ = write(fake, request)
    assert "not in Russian" in fake.calls[1].messages[-1]["content"]
    assert detect_language(written.narration) == "ru"


def test_a_second_bad_answer_is_a_clear_error_with_its_cost(fake: FakeOpenAIChat) -> None:
    fake.queue("invalid_json", "too_few_scenes")
    with pytest.raises(ScriptWriteError) as caught:
        write(fake)
    assert len(fake.calls) == 2
    message = str(caught.value)
    assert message.startswith("openai: the answer was still unusable after 1 repair round:")
    assert "2 scenes; it needs 4 to 7" in message
    assert len(caught.value.cost_lines) == 4  # two billed answers, none used


@pytest.mark.parametrize(
    ("misbehaviour", "reason"),
    [("refusal", "the model refused: I'm sorry"), ("length", "cut off at the token limit")],
)
def test_refusals_and_cut_off_answers_are_not_retried(
    fake: FakeOpenAIChat, misbehaviour: str, reason: str
) -> None:
    fake.queue(misbehaviour)
    with pytest.raises(ScriptWriteError, match=reason):
        write(fake)
    assert len(fake.calls) == 1


# --- revisions --------------------------------------------------------------------------------


def test_revise_asks_for_a_shorter_version_with_the_target_length(fake: FakeOpenAIChat) -> None:
    request = en_request()
    first, _ = write(fake, request)
    shorter, lines = WRITER.revise(request, settings_for(fake), first, CPS, 40.0, 30.0)

    asked = revised_target_chars(first.narration, 40.0, 30.0)
    revision = fake.calls[1].messages
    assert (
        revision[-2]["role"] == "assistant" and first.scenes[0].narration in revision[-2]["content"]
    )
    assert "takes 40 seconds" in revision[-1]["content"]
    assert f"Rewrite it shorter: about {asked} characters" in revision[-1]["content"]
    assert len(shorter.narration) == pytest.approx(asked, rel=0.1)
    assert len(shorter.narration) < len(first.narration)
    assert len(lines) == 2


# --- keys and prices --------------------------------------------------------------------------


def test_available_names_what_is_missing(
    fake: FakeOpenAIChat, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert WRITER.available(settings_for(fake)) is None
    monkeypatch.delenv("OPENAI_API_KEY")
    assert WRITER.available(settings_for(fake)) == "no OPENAI_API_KEY set"
    assert WRITER.available(settings_for(fake, api_key_env="GATEWAY_KEY")) == ("no GATEWAY_KEY set")
    with pytest.raises(ProviderError, match="no OPENAI_API_KEY set"):
        write(fake)
    assert fake.calls == []

    # A model without a price is not used: its calls could not be accounted for.
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    local = settings_for(fake, model="llama3.1")
    assert "no price for openai llama3.1 per input_token" in (WRITER.available(local) or "")
    home = Path(MediaStore().root)
    home.mkdir(parents=True, exist_ok=True)
    (home / "prices.yaml").write_text(
        "- {provider: openai, model: llama3.1, unit: input_token, usd_per_unit: 0}\n"
        "- {provider: openai, model: llama3.1, unit: output_token, usd_per_unit: 0}\n",
        encoding="utf-8",
    )
    assert WRITER.available(local) is None


def test_the_key_never_appears_in_errors(
    fake: FakeOpenAIChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-live-THIS-IS-SECRET-123456789"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    with pytest.raises(ProviderError) as caught:
        write(fake)
    # The fake, like the service, echoes the rejected key in its 401 message.
    assert fake.calls[0].headers["Authorization"] == f"Bearer {secret}"
    error = caught.value
    assert error.status == 401 and "Incorrect API key" in str(error)
    for text in (str(error), repr(error), error.reason, str(error.__cause__ or "")):
        assert secret not in text
        assert "THIS-IS-SECRET" not in text


# --- the script asset -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def voice_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The English voice's speaking rate, measured once for the module (seconds each time)."""
    folder = tmp_path_factory.mktemp("voice-cache")
    OfflineVoice().speaking_rate(Language.EN, 1.0, folder)
    return folder


def _materialize(
    home: Path, voice_cache: Path, chain: list[str], base_url: str
) -> tuple[str, dg.ExecuteInProcessResult]:
    shutil.copytree(voice_cache, home / "cache" / "voices", dirs_exist_ok=True)
    channel = home / "channels" / "llmchan"
    channel.mkdir(parents=True, exist_ok=True)
    providers = {"script": {"chain": chain, "base_url": base_url, "tone": "curious"}}
    (channel / "channel.yaml").write_text(
        yaml.safe_dump({"owner": "alice", "providers": providers}), encoding="utf-8"
    )
    request = make_request("llmchan", "How tides work", duration_s=15)
    MediaStore(home=str(home)).save_request(request)
    resources = {**offline_resources(str(home)), "llm": OpenAIScriptWriter(max_retries=0)}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(topics.name, [request.key])
        result = dg.materialize(
            [script],
            partition_key=request.key,
            resources=resources,
            instance=instance,
            run_config=QUIET,
            raise_on_error=False,
        )
    return request.key, result


def _home() -> Path:
    return MediaStore().root


def test_the_asset_writes_with_the_endpoint_and_records_the_cost(
    fake: FakeOpenAIChat, voice_cache: Path
) -> None:
    fake.queue("too_long")  # the first draft overshoots: the voice measures it, one revision
    key, result = _materialize(_home(), voice_cache, ["openai", "offline"], fake.base_url)
    assert result.success
    meta = result.asset_materializations_for_node("script")[0].metadata
    written = Script.model_validate_json((_home() / "topics" / key / "script.json").read_text())
    assert written.source == f"llm:{MODEL}"
    assert "Tone: curious" in fake.calls[0].messages[0]["content"]
    assert "Rewrite it shorter" in fake.calls[1].messages[-1]["content"]
    assert meta["provider"].value == "openai" and meta["model"].value == MODEL
    assert meta["provider_chain"].value == "openai → offline"
    assert meta["fallbacks"].value == "none"
    assert meta["llm_rounds"].value == len(fake.calls) == 2
    assert meta["refits"].value == 1
    assert meta["source"].value == f"llm:{MODEL}"
    # The measured duration, within the tolerance the blocking script check allows.
    assert meta["estimated_duration_s"].value == pytest.approx(15, abs=1.5)

    ledger = topic_costs(project_engine(), key)
    assert {(c.provider, c.stage, c.model) for c in ledger} == {("openai", "script", MODEL)}
    assert len(ledger) == 2 * len(fake.calls)
    assert meta["cost_usd"].value == pytest.approx(sum(c.amount_usd for c in ledger))
    assert meta["cost_usd"].value > 0


def test_the_asset_without_a_key_falls_back_to_the_composer_on_record(
    fake: FakeOpenAIChat, voice_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    key, result = _materialize(_home(), voice_cache, ["openai", "offline"], fake.base_url)
    assert result.success
    meta = result.asset_materializations_for_node("script")[0].metadata
    assert meta["provider"].value == "offline-composer"
    assert meta["source"].value == "composer"
    assert meta["fallbacks"].value == "openai: no OPENAI_API_KEY set"
    assert meta["cost_usd"].value == 0.0 and meta["llm_rounds"].value == 0
    assert fake.calls == []
    assert topic_costs(project_engine(), key) == []


def test_the_asset_fails_clearly_when_the_last_writer_fails(
    fake: FakeOpenAIChat, voice_cache: Path
) -> None:
    fake.fail_always(503)
    key, result = _materialize(_home(), voice_cache, ["openai"], fake.base_url)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    data = failure.step_failure_data.user_failure_data
    assert data is not None
    assert data.description == (
        f"no script writer left for {key!r}: openai (HTTP 503): The server had an error while "
        "processing your request. Sorry about that!"
    )
    assert data.metadata["provider_chain"].value == "openai"
    assert not (_home() / "topics" / key / "script.json").exists()
