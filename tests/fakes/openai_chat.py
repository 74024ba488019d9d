"""A protocol-faithful OpenAI chat completions endpoint for pytest-httpserver: the real openai
SDK talks to it over HTTP (see /work/shared/docs/providers.md 0.1).

Route: `POST /v1/chat/completions` with structured outputs
(`response_format: {"type": "json_schema", "json_schema": {"name", "strict", "schema"}}`).
The answer is a normal `chat.completion` whose `message.content` is JSON with exactly the
properties the request's schema lists; the text is deterministic, built from the topic, in the
language the user message asks for, as long as it asks ("about N characters ... counting
spaces", "exactly N scenes"; the last user message that says so wins, like a model following
the latest instruction).

Usage: tokens = ceil(characters / 4): prompt_tokens over the concatenated contents of all
messages, completion_tokens over `message.content`. `factory_core.script_prompt.estimate_usage`
predicts the same counts; keep the two in step.

Auth: a missing or wrong `Authorization: Bearer <key>` gets the service's 401, which echoes the
key it was given (as the real one does, partly masked) so tests can prove it never leaks.

Faults: `rate_limit_once` (an `expect_oneshot_request`, served before the permanent route),
`fail_always` (persistent 5xx), and `queue(...)` of per-request misbehaviours served in order
before normal answers: "invalid_json", "too_few_scenes", "english" (ignores the language),
"too_long" (half as long again as asked), "refusal", "length" (cut off at the token limit).
Every request is recorded with its headers, JSON body and arrival time.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

API_KEY = "sk-test-fake-0123456789abcdef"
PATH = "/v1/chat/completions"

MISBEHAVIOURS = ("invalid_json", "too_few_scenes", "english", "too_long", "refusal", "length")

_TARGET = re.compile(r"about (\d+) characters")
_SCENES = re.compile(r"exactly (\d+) scenes")
_LANGUAGE = re.compile(r"^Language: (\w+)", re.MULTILINE)
_TOPIC = re.compile(r"^Topic: (.+)$", re.MULTILINE)

_TEXT = {
    "en": {
        "hook": "Here is the short story of {s}.",
        "body": (
            "Scientists have studied it for a long time.",
            "The first thing to know is surprisingly simple.",
            "It all comes down to a few clear rules.",
            "Each part has its own job to do.",
            "That is why it works so well in practice.",
            "Most people never look at it this closely.",
            "Small details change the whole picture.",
            "Once you see the pattern, it is hard to miss.",
        ),
        "fillers": (
            "It matters.",
            "Here is why.",
            "Think about that.",
            "That is the key idea.",
            "And that is worth knowing.",
            "Now you can see the whole picture.",
        ),
        "cta": "Follow for more short explainers.",
        "description": "A short explainer about {s}: the key facts in under a minute, in plain "
        "words. New shorts every day, follow so you do not miss the next one.",
        "point": "Point {n} about the topic",
        "picture": "A clear illustration of {w}, bold shapes, soft light, rich colours, "
        "vertical composition",
        "tags": ("science", "facts", "explainer", "learning", "shorts"),
    },
    "ru": {
        "hook": "Вот короткая история о том, {s}.",
        "body": (
            "Учёные изучают это уже очень давно.",
            "Первое, что нужно знать, удивительно просто.",
            "Всё сводится к нескольким ясным правилам.",
            "У каждой части есть своя задача.",
            "Поэтому это так хорошо работает на практике.",
            "Большинство людей никогда не смотрят так внимательно.",
            "Мелкие детали меняют всю картину.",
            "Когда видишь закономерность, её трудно не заметить.",
        ),
        "fillers": (
            "Это важно.",
            "Вот почему.",
            "Задумайтесь об этом.",
            "В этом и есть главная идея.",
            "И это стоит знать каждому.",
            "Теперь вы видите всю картину целиком.",
        ),
        "cta": "Подписывайтесь, чтобы узнать больше.",
        "description": "Короткое объяснение на тему «{s}»: главные факты меньше чем за минуту, "
        "простыми словами. Новые ролики каждый день, подписывайтесь.",
        "point": "Пункт {n} по теме",
        "picture": "A clear illustration of {w}, bold shapes, soft light, rich colours, "
        "vertical composition",
        "tags": ("наука", "факты", "объяснение", "знания", "shorts"),
    },
}


@dataclass
class Recorded:
    headers: dict[str, str]
    body: dict[str, Any]
    status: int
    at: float

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))


@dataclass
class FakeOpenAIChat:
    """Register on a pytest-httpserver; point the SDK at `base_url`."""

    server: HTTPServer
    api_key: str = API_KEY
    calls: list[Recorded] = field(default_factory=list)
    _queued: deque[str] = field(default_factory=deque)
    _fail_status: int | None = None

    def __post_init__(self) -> None:
        self.server.expect_request(PATH, method="POST").respond_with_handler(self._handle)

    @property
    def base_url(self) -> str:
        return self.server.url_for("/v1")

    # --- faults -------------------------------------------------------------------------------

    def rate_limit_once(self, retry_after_s: int = 1) -> None:
        """The next request gets a 429 with `retry-after`, then service resumes."""

        def limited(request: Request) -> Response:
            self._record(request, 429)
            return _error(
                429,
                "Rate limit reached for gpt-4o-mini on requests per min (RPM): Limit 3, Used 3.",
                "requests",
                "rate_limit_exceeded",
                headers={"retry-after": str(retry_after_s)},
            )

        self.server.expect_oneshot_request(PATH, method="POST").respond_with_handler(limited)

    def fail_always(self, status: int = 500) -> None:
        self._fail_status = status

    def queue(self, *misbehaviours: str) -> None:
        unknown = set(misbehaviours) - set(MISBEHAVIOURS)
        assert not unknown, f"unknown misbehaviours {unknown}; use {MISBEHAVIOURS}"
        self._queued.extend(misbehaviours)

    # --- protocol -----------------------------------------------------------------------------

    def _record(self, request: Request, status: int) -> dict[str, Any]:
        try:
            body = json.loads(request.get_data(as_text=True) or "{}")
        except ValueError:
            body = {}
        self.calls.append(Recorded(dict(request.headers), body, status, time.monotonic()))
        return body

    def _handle(self, request: Request) -> Response:
        auth = request.headers.get("Authorization", "")
        given = auth.removeprefix("Bearer ").strip()
        if given != self.api_key:
            self._record(request, 401)
            return _error(
                401,
                f"Incorrect API key provided: {given}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                "invalid_request_error",
                "invalid_api_key",
            )
        if self._fail_status is not None:
            self._record(request, self._fail_status)
            return _error(
                self._fail_status,
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
                None,
            )
        body = self._record(request, 200)
        schema = _schema_of(body)
        if schema is None:
            self.calls[-1].status = 400
            return _error(
                400,
                "response_format must be a strict json_schema for this fake",
                "invalid_request_error",
                "invalid_response_format",
            )
        messages = body.get("messages", [])
        misbehaviour = self._queued.popleft() if self._queued else None
        content, refusal, finish = _answer(messages, schema, misbehaviour)
        prompt_chars = sum(len(m.get("content") or "") for m in messages)
        completion_chars = len(content or refusal or "")
        usage = {
            "prompt_tokens": math.ceil(prompt_chars / 4),
            "completion_tokens": math.ceil(completion_chars / 4),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        completion = {
            "id": f"chatcmpl-fake{len(self.calls)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": f"{body.get('model', 'gpt-4o-mini')}-2024-07-18",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": finish,
                    "logprobs": None,
                    "message": {"role": "assistant", "content": content, "refusal": refusal},
                }
            ],
            "usage": usage,
            "system_fingerprint": "fp_fake",
        }
        return Response(
            json.dumps(completion, ensure_ascii=False),
            status=200,
            content_type="application/json",
            headers={"x-request-id": f"req_fake{len(self.calls)}"},
        )


def _error(
    status: int,
    message: str,
    kind: str,
    code: str | None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return Response(
        json.dumps(body), status=status, content_type="application/json", headers=headers or {}
    )


def _schema_of(body: dict[str, Any]) -> dict[str, Any] | None:
    fmt = body.get("response_format") or {}
    spec = fmt.get("json_schema") or {}
    if fmt.get("type") != "json_schema" or not spec.get("strict") or "schema" not in spec:
        return None
    return spec["schema"]


def _last(pattern: re.Pattern[str], messages: list[dict[str, Any]]) -> str | None:
    found = None
    for message in messages:
        if message.get("role") == "user":
            for match in pattern.finditer(message.get("content") or ""):
                found = match.group(1)
    return found


def _answer(
    messages: list[dict[str, Any]], schema: dict[str, Any], misbehaviour: str | None
) -> tuple[str | None, str | None, str]:
    """(content, refusal, finish_reason) for the conversation."""
    if misbehaviour == "refusal":
        return None, "I'm sorry, I can't help with that request.", "stop"
    topic = (_last(_TOPIC, messages) or "this topic").strip()
    language = "ru" if (_last(_LANGUAGE, messages) or "").lower() == "russian" else "en"
    if misbehaviour == "english":
        language = "en"
    scenes = int(_last(_SCENES, messages) or 5)
    if misbehaviour == "too_few_scenes":
        scenes = 2
    target = int(_last(_TARGET, messages) or 450)
    if misbehaviour == "too_long":  # a model that overshoots the asked length by half
        target = target * 3 // 2
    script = _script(topic, language, scenes, target)
    # Only the properties the schema asks for, in its order: what strict mode guarantees.
    content = json.dumps(
        {name: script.get(name, "") for name in schema.get("properties", {})},
        ensure_ascii=False,
    )
    if misbehaviour == "invalid_json":
        return content[: len(content) // 2], None, "stop"
    if misbehaviour == "length":
        return content[: len(content) // 3], None, "length"
    return content, None, "stop"


def _script(topic: str, language: str, scene_count: int, target_chars: int) -> dict[str, Any]:
    text = _TEXT[language]
    subject = topic.rstrip(" ?!.")
    subject = subject[:1].lower() + subject[1:]
    sentences = [text["hook"].format(s=subject)]
    body = text["body"]
    cta = text["cta"]

    def length(extra: list[str]) -> int:
        return len(" ".join([*sentences, *extra, cta]))

    # Whole sentences while they fit, then the short filler that lands closest to the target:
    # a model that follows the asked length to within a few characters.
    while length([body[(len(sentences) - 1) % len(body)]]) <= target_chars or (
        len(sentences) + 1 < scene_count
    ):
        sentences.append(body[(len(sentences) - 1) % len(body)])
    closest = min(
        [[], *([f] for f in text["fillers"])], key=lambda f: abs(length(f) - target_chars)
    )
    sentences.extend([*closest, cta])
    groups = _split(sentences, scene_count)
    words = [w for w in re.findall(r"\w{4,}", topic)] or ["idea"]
    return {
        "title": topic[:1].upper() + topic[1:],
        "description": text["description"].format(s=subject),
        "hashtags": list(text["tags"]),
        "hook": sentences[0],
        "body_points": [text["point"].format(n=n) for n in range(1, scene_count - 1)],
        "call_to_action": cta,
        "scenes": [
            {
                "narration": " ".join(group),
                "visual_prompt": text["picture"].format(w=words[i % len(words)]),
                "keywords": [words[(i + k) % len(words)] for k in range(min(3, len(words)))],
            }
            for i, group in enumerate(groups)
        ],
    }


def _split(sentences: list[str], parts: int) -> list[list[str]]:
    """Contiguous groups of near-equal counts, the first groups one longer."""
    base, extra = divmod(len(sentences), parts)
    groups, start = [], 0
    for i in range(parts):
        end = start + base + (1 if i < extra else 0)
        groups.append(sentences[start:end])
        start = end
    return groups
