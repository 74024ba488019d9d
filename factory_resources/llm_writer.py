"""Scripts from any OpenAI-compatible endpoint (openai SDK): OpenAI, a local Ollama or vLLM, a
gateway. A thin adapter: the prompt, the schema and the checks live in factory_core.script_prompt.

Environment: the channel's `providers.script.api_key_env` (default OPENAI_API_KEY) holds the key;
it is read at call time and never written to messages, logs or errors.

Prices: every response's token usage becomes cost lines priced from the price table
(`factory_resources.project_db.price_table`: defaults plus `$FACTORY_HOME/prices.yaml`). A model
without a price is not used at all (`available()` says why), because a call that cannot be
accounted for would make the ledger and the estimates lie; a local model gets a price of 0 in
prices.yaml.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field, ValidationError

from factory_core.costs import CostLine, PriceTable, UnknownPriceError, cost_line
from factory_core.models import Script, ScriptProviderSettings, TopicRequest
from factory_core.script_prompt import (
    LlmScript,
    answer_problems,
    build_messages,
    content_json,
    llm_script_from,
    repair_messages,
    revise_messages,
    revised_target_chars,
    scene_count_for,
    target_chars_for,
    to_script,
)
from factory_resources.faults import RETRYABLE_STATUS, ProviderError, retry_after_seconds

if TYPE_CHECKING:  # the SDK takes half a second to import: only calls pay for it
    import openai

PROVIDER = "openai"
STAGE = "script"


class ScriptWriteError(ProviderError):
    """A write or revision that failed for good, with what its calls cost until then (a
    malformed answer is billed like a good one, so the ledger must still see it)."""

    def __init__(
        self,
        reason: str,
        *,
        cost_lines: list[CostLine],
        status: int | None = None,
        retryable: bool = False,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(
            PROVIDER, reason, status=status, retryable=retryable, retry_after_s=retry_after_s
        )
        self.cost_lines = cost_lines


class _Unusable(Exception):
    """An answer that arrived but cannot be used; its problems go back to the model."""

    def __init__(self, content: str, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.content = content
        self.problems = problems


class OpenAIScriptWriter(dg.ConfigurableResource):
    """Writes and revises scripts with structured outputs (`chat.completions.parse`)."""

    base_url: str | None = Field(
        None, description="Overrides the channel's base_url when set (e.g. a test server)."
    )
    max_retries: int = Field(
        2, ge=0, description="SDK retries on 408/409/429/5xx, honouring Retry-After."
    )
    timeout_s: float = Field(60.0, gt=0, description="Per request.")
    repair_rounds: int = Field(
        1, ge=0, description="Times an unusable answer is sent back with its problems."
    )

    def available(self, settings: ScriptProviderSettings) -> str | None:
        """None when this writer can be used for these settings, else why not."""
        if not os.environ.get(settings.api_key_env, "").strip():
            return f"no {settings.api_key_env} set"
        try:
            self._prices(settings)
        except UnknownPriceError as exc:
            return str(exc)
        return None

    def write(
        self,
        request: TopicRequest,
        settings: ScriptProviderSettings,
        chars_per_second: float,
        target_chars: int,
    ) -> tuple[Script, list[CostLine]]:
        """A script of about `target_chars` characters of narration, and what it cost."""
        messages = self._first_messages(request, settings, target_chars)
        return self._converse(request, settings, messages, chars_per_second)

    def revise(
        self,
        request: TopicRequest,
        settings: ScriptProviderSettings,
        script: Script,
        chars_per_second: float,
        measured_s: float,
        target_s: float,
    ) -> tuple[Script, list[CostLine]]:
        """The script rewritten shorter or longer, after the voice measured `measured_s`."""
        # The model sees the original request and its own last answer, not every draft: it
        # needs the task and the text to change, and older drafts only cost input tokens.
        messages = revise_messages(
            self._first_messages(
                request, settings, target_chars_for(request.duration_s, chars_per_second)
            ),
            content_json(llm_script_from(script)),
            measured_s,
            target_s,
            revised_target_chars(script.narration, measured_s, target_s),
        )
        return self._converse(request, settings, messages, chars_per_second)

    # --- internals ---------------------------------------------------------------------------

    @staticmethod
    def _first_messages(
        request: TopicRequest, settings: ScriptProviderSettings, target_chars: int
    ) -> list[dict[str, str]]:
        return build_messages(
            request,
            settings,
            request.style or "explainer",
            target_chars,
            scene_count_for(request.duration_s),
            request.language,
        )

    @staticmethod
    def _prices(settings: ScriptProviderSettings) -> PriceTable:
        from factory_resources.project_db import price_table

        table = price_table()
        for unit in ("input_token", "output_token"):
            table.price(PROVIDER, settings.model, unit)  # raises UnknownPriceError
        return table

    def _converse(
        self,
        request: TopicRequest,
        settings: ScriptProviderSettings,
        messages: list[dict[str, str]],
        chars_per_second: float,
    ) -> tuple[Script, list[CostLine]]:
        key = os.environ.get(settings.api_key_env, "").strip()
        if not key:
            raise ScriptWriteError(f"no {settings.api_key_env} set", cost_lines=[])
        table = self._prices(settings)
        lines: list[CostLine] = []
        problems: list[str] = []
        import openai

        with openai.OpenAI(
            base_url=self.base_url or settings.base_url,
            api_key=key,
            max_retries=self.max_retries,
            timeout=self.timeout_s,
        ) as client:
            for _ in range(self.repair_rounds + 1):
                try:
                    answer, content = self._ask(client, settings, key, messages, table, lines)
                    problems = answer_problems(answer, request.language)
                    if problems:
                        raise _Unusable(content, problems)
                    return to_script(answer, request, chars_per_second, model=settings.model), lines
                except _Unusable as bad:
                    problems = bad.problems
                    messages = repair_messages(messages, bad.content, problems)
                except ProviderError as exc:
                    raise ScriptWriteError(
                        _scrub(exc.reason, key),
                        cost_lines=lines,
                        status=exc.status,
                        retryable=exc.retryable,
                        retry_after_s=exc.retry_after_s,
                    ) from None
        rounds = f"{self.repair_rounds} repair round" + ("s" if self.repair_rounds != 1 else "")
        raise ScriptWriteError(
            _scrub(f"the answer was still unusable after {rounds}: {'; '.join(problems)}", key),
            cost_lines=lines,
        )

    def _ask(
        self,
        client: openai.OpenAI,
        settings: ScriptProviderSettings,
        key: str,
        messages: list[dict[str, str]],
        table: PriceTable,
        lines: list[CostLine],
    ) -> tuple[LlmScript, str]:
        """One request: the parsed answer and its raw text. Appends its cost to `lines` as soon
        as the answer arrives, whatever it is; raises _Unusable for an answer the model can fix,
        ProviderError for the rest."""
        import openai

        try:
            raw = client.chat.completions.with_raw_response.parse(
                model=settings.model,
                messages=messages,  # type: ignore[arg-type]
                response_format=LlmScript,
                temperature=settings.temperature,
            )
        except openai.APIStatusError as exc:
            raise _status_error(exc, key) from None
        except openai.APITimeoutError:
            raise ProviderError(
                PROVIDER,
                f"no answer within {self.timeout_s:g} s (after {self.max_retries} retries)",
                retryable=True,
            ) from None
        except openai.APIConnectionError as exc:
            raise ProviderError(
                PROVIDER, _scrub(f"cannot reach the endpoint: {exc}", key), retryable=True
            ) from None
        body = _json_or_empty(raw.http_response)
        lines.extend(_usage_lines(table, settings.model, body.get("usage")))
        content = _first_content(body)
        try:
            completion = raw.parse()
        except openai.LengthFinishReasonError:
            raise ProviderError(
                PROVIDER, "the answer was cut off at the token limit (finish_reason=length)"
            ) from None
        except openai.ContentFilterFinishReasonError:
            raise ProviderError(
                PROVIDER,
                "the answer was stopped by the content filter (finish_reason=content_filter)",
            ) from None
        except ValidationError as exc:
            raise _Unusable(content, _validation_problems(exc)) from None
        except openai.APIResponseValidationError:
            raise ProviderError(
                PROVIDER, "the endpoint's answer is not a chat completion"
            ) from None
        message = completion.choices[0].message if completion.choices else None
        if message is None:
            raise ProviderError(PROVIDER, "the response has no choices")
        if message.refusal:
            raise ProviderError(PROVIDER, f"the model refused: {message.refusal}")
        if message.parsed is None:
            raise _Unusable(content, ["the answer is empty; reply with the JSON object"])
        return message.parsed, content


def _scrub(text: str, key: str) -> str:
    """The key itself out of any text: providers echo a rejected key in their 401 message, in
    a form `faults.redact`'s patterns do not always recognise."""
    return text.replace(key, "***") if key else text


def _status_error(exc: openai.APIStatusError, key: str) -> ProviderError:
    body = exc.body
    detail = body.get("message") if isinstance(body, dict) else None
    if not detail:
        detail = str(body) if body else exc.response.text or exc.response.reason_phrase
    status = exc.status_code
    return ProviderError(
        PROVIDER,
        _scrub(str(detail), key),  # before ProviderError cuts it: no half key left at the cut
        status=status,
        retryable=status in RETRYABLE_STATUS,
        retry_after_s=retry_after_seconds(dict(exc.response.headers)),
    )


def _json_or_empty(response: object) -> dict:
    try:
        data = response.json()  # type: ignore[attr-defined]
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _first_content(body: dict) -> str:
    try:
        return body["choices"][0]["message"].get("content") or ""
    except (KeyError, IndexError, TypeError, AttributeError):
        return ""


def _usage_lines(table: PriceTable, model: str, usage: object) -> list[CostLine]:
    """Cost lines from a response's usage, priced by the model asked for: the API answers
    with a dated snapshot name (gpt-4o-mini-2024-07-18) that the price table does not list."""
    if not isinstance(usage, dict):
        return []
    counts = (
        ("input_token", usage.get("prompt_tokens")),
        ("output_token", usage.get("completion_tokens")),
    )
    return [
        cost_line(table, PROVIDER, model, unit, float(n), stage=STAGE)
        for unit, n in counts
        if isinstance(n, int | float)
    ]


def _validation_problems(exc: ValidationError) -> list[str]:
    """Pydantic's errors as short lines the model can act on (invalid JSON, missing fields)."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False)[:10]:
        where = ".".join(str(part) for part in error.get("loc", ()))
        problems.append(f"{where}: {error['msg']}" if where else str(error["msg"]))
    return problems or ["the answer is not the JSON object asked for"]
