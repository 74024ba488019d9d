"""Provider faults: secrets never reach messages; retries honour Retry-After, then give up."""

from __future__ import annotations

import pytest

from factory_resources.faults import (
    ProviderError,
    call_with_retries,
    redact,
    retry_after_seconds,
)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Incorrect API key provided: sk-proj-abcdef123456.", "sk-proj-abcdef123456"),
        ("Authorization: Key abcd1234:secretsecret failed", "secretsecret"),
        ("authorization: Bearer abcdefgh12345 bad", "abcdefgh12345"),
        ("xi-api-key: 0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef"),
        ("url?api_key=zzzzzzzz9&x=1", "zzzzzzzz9"),
    ],
)
def test_redact_masks_credentials(text: str, secret: str) -> None:
    masked = redact(text)
    assert secret not in masked and "***" in masked


def test_redact_masks_given_secrets_and_keeps_ordinary_words() -> None:
    assert "hunter22" not in redact("the password hunter22 leaked", "hunter22")
    kept = "HTTP 500 at 2026-11-25T10:00:00; request 4f3c2a1b-aaaa-bbbb-cccc-1234567890ab"
    assert redact(kept) == kept


def test_provider_error_names_the_provider_and_never_the_key() -> None:
    err = ProviderError(
        "openai", "Incorrect API key provided: sk-live-0123456789abcdef", status=401
    )
    assert str(err).startswith("openai (HTTP 401): Incorrect API key provided")
    assert "0123456789abcdef" not in str(err)


def test_retry_after_forms() -> None:
    assert retry_after_seconds({"Retry-After": "2"}) == 2.0
    assert retry_after_seconds({"retry-after-ms": "1500"}) == 1.5
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # past
    assert retry_after_seconds({}) is None


def test_retries_wait_what_the_provider_asks_then_succeed() -> None:
    waits: list[float] = []
    calls = iter([ProviderError("fal", "busy", status=429, retryable=True, retry_after_s=1.5)])

    def call() -> str:
        error = next(calls, None)
        if error:
            raise error
        return "ok"

    assert call_with_retries(call, sleep=waits.append) == "ok"
    assert waits == [1.5]


def test_retries_back_off_with_jitter_and_give_up_with_the_reason() -> None:
    waits: list[float] = []
    attempts = 0

    def call() -> None:
        nonlocal attempts
        attempts += 1
        raise ProviderError("fal", "upstream exploded", status=503, retryable=True)

    with pytest.raises(ProviderError, match=r"fal \(HTTP 503\): upstream exploded"):
        call_with_retries(call, attempts=4, base_s=1, cap_s=8, sleep=waits.append)
    assert attempts == 4 and len(waits) == 3
    assert all(0 <= w <= cap for w, cap in zip(waits, [1, 2, 4], strict=True))


def test_terminal_errors_are_not_retried() -> None:
    attempts = 0

    def call() -> None:
        nonlocal attempts
        attempts += 1
        raise ProviderError("elevenlabs", "quota_exceeded", status=401)

    with pytest.raises(ProviderError):
        call_with_retries(call, sleep=lambda _: None)
    assert attempts == 1
