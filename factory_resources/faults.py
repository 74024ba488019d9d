"""Provider faults: one error type with the provider's reason, retries that honour Retry-After.

SDKs that already honour Retry-After and back off (openai, elevenlabs) keep their own retries;
this module serves the rest (fal-client ignores Retry-After; plain HTTP platforms) and turns
every SDK error into a `ProviderError` whose text names the provider and its reason, never a
secret.
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
_SECRETISH = re.compile(
    r"((?i:bearer)\s+|\bKey\s+|(?i:api[_-]?key|xi-api-key|token)\s*[=:]\s*)[A-Za-z0-9._\-:]{6,}"
)
# Key-shaped words anywhere: provider prefixes (sk-, xi-, key_) or long runs mixing letters and
# digits, the way keys are minted. Ordinary words, numbers and request ids (UUIDs) stay.
_KEY_SHAPED = re.compile(
    r"\b(?:sk|pk|rk|xi|key|fal)[-_][A-Za-z0-9_\-:]{8,}"
    r"|\b(?=[A-Za-z0-9_\-:]*\d)(?=[A-Za-z0-9_\-:]*[A-Za-z])[A-Za-z0-9_\-:]{24,}"
)
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def redact(text: str, *secrets: str) -> str:
    """Masks credentials in a message meant for logs, metadata or exceptions: the given secret
    values (and each half of an `id:secret` pair), then anything shaped like a key."""
    for secret in secrets:
        for part in {secret, *secret.split(":")}:
            if len(part) >= 6:
                text = text.replace(part, "***")
    text = _SECRETISH.sub(lambda m: m.group(1) + "***", text)
    return _KEY_SHAPED.sub(lambda m: m.group(0) if _UUID.fullmatch(m.group(0)) else "***", text)


class ProviderError(RuntimeError):
    """A provider call that failed for good: who failed, why (their words), whether a retry
    later may help (rate limits, outages) or never will (bad key, no credits, bad request)."""

    def __init__(
        self,
        provider: str,
        reason: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after_s: float | None = None,
    ) -> None:
        self.provider = provider
        self.reason = redact(reason)[:500]
        self.status = status
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        code = f" (HTTP {status})" if status else ""
        super().__init__(f"{provider}{code}: {self.reason}")


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from `retry-after-ms` or `retry-after` (seconds or an HTTP date)."""
    if not headers:
        return None
    lower = {k.lower(): v for k, v in headers.items()}
    if "retry-after-ms" in lower:
        try:
            return max(0.0, float(lower["retry-after-ms"]) / 1000)
        except ValueError:
            pass
    value = lower.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time()) if when else None


def call_with_retries(
    call: Callable[[], T],
    *,
    attempts: int = 4,
    base_s: float = 0.5,
    cap_s: float = 20.0,
    max_retry_after_s: float = 120.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Calls `call`; on a retryable ProviderError waits Retry-After when the provider gave one
    (up to `max_retry_after_s`), else exponential backoff with full jitter; at most `attempts`."""

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, ProviderError) and exc.retry_after_s is not None:
            return min(exc.retry_after_s, max_retry_after_s)
        return random.uniform(0, min(cap_s, base_s * 2 ** (state.attempt_number - 1)))

    retrying = Retrying(
        retry=retry_if_exception(lambda e: isinstance(e, ProviderError) and e.retryable),
        stop=stop_after_attempt(attempts),
        wait=wait,
        sleep=sleep,
        reraise=True,
    )
    return retrying(call)


class _MaskInLogs(logging.Filter):
    """Masks a secret that a library writes into its log lines (httpx logs every request's URL
    at INFO, and some URLs carry a token)."""

    def __init__(self, name: str, pattern: re.Pattern[str], replacement: str) -> None:
        super().__init__()
        self.secret_name = name
        self.pattern = pattern
        self.replacement = replacement

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = self.pattern.sub(self.replacement, message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def mask_in_httpx_logs(name: str, pattern: re.Pattern[str], replacement: str) -> None:
    """Adds, once per `name`, a filter on the `httpx` logger that replaces `pattern` in every
    line with `replacement` (e.g. a bot token in a URL path with `bot***`)."""
    logger = logging.getLogger("httpx")
    if not any(getattr(f, "secret_name", None) == name for f in logger.filters):
        logger.addFilter(_MaskInLogs(name, pattern, replacement))
