"""fal.ai FLUX scene pictures and character variations (fal-client).

Env: the key variable a channel names (`providers.images.api_key_env`, default `FAL_KEY`).

Every picture goes through fal's queue: submit, poll until done (with our own deadline), fetch
the result, download the picture at once (fal's file URLs expire), check that it decodes, fit it
to 1080x1920 and write it. A `<scene>.fal.json` record beside the picture holds the request id:
a rerun skips pictures already made for the same request and resumes a submitted job instead of
paying for a new one.

fal-client retries 429s itself but ignores Retry-After; our transport turns a 429 into an
exception fal-client does not catch, so `faults.call_with_retries` waits as long as fal asks.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import io
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

import dagster as dg
import fal_client
import httpx
from fal_client.client import BackupDomainTransport
from pydantic import BaseModel, Field, ValidationError

from factory_core.costs import CostLine, PriceTable, UnknownPriceError, cost_line
from factory_resources.faults import (
    RETRYABLE_STATUS,
    ProviderError,
    call_with_retries,
    retry_after_seconds,
)

T = TypeVar("T")

PROVIDER = "fal"
FAL_HOSTS = frozenset({"fal.run", "queue.fal.run", "rest.fal.ai", "v3.fal.media"})
OUTPUT_SIZE = (1080, 1920)
# FLUX wants sides in multiples of 16; 768x1344 is the closest ~1 MP portrait to 9:16.
DEFAULT_IMAGE_SIZE = (768, 1344)
# The model for pictures of a studio character (the channel's `model` draws the others).
REFERENCE_MODEL = "fal-ai/flux-pulid"
REFERENCE_MAX_SIDE = 1024  # the reference travels as a data URI: keep requests small


# --- pure helpers ---------------------------------------------------------------------------


def scene_seed(topic_key: str, index: int) -> int:
    """A stable seed per scene, so a rerun asks fal for the same picture."""
    digest = hashlib.sha256(f"{topic_key}/{index}".encode()).hexdigest()
    return int(digest[:8], 16) & 0x7FFFFFFF


def text_arguments(prompt: str, seed: int, width: int, height: int) -> dict[str, Any]:
    return {
        "prompt": prompt,
        "image_size": {"width": width, "height": height},
        "seed": seed,
        "num_images": 1,
        "output_format": "png",
        "enable_safety_checker": True,
    }


def reference_arguments(
    model: str, prompt: str, reference_url: str, seed: int, width: int, height: int
) -> dict[str, Any]:
    """Arguments for a reference-conditioned model: PuLID-style models take the face as
    `reference_image_url`; edit models (Kontext, image-to-image) take it as `image_url`."""
    key = (
        "image_url" if ("kontext" in model or "image-to-image" in model) else "reference_image_url"
    )
    return {
        "prompt": prompt,
        key: reference_url,
        "image_size": {"width": width, "height": height},
        "seed": seed,
        "num_images": 1,
        "enable_safety_checker": True,
    }


def fingerprint(model: str, arguments: dict[str, Any]) -> str:
    """What was asked, as a short hash; data URIs count by their content's hash."""
    slim = {
        k: ("sha256:" + hashlib.sha256(v.encode()).hexdigest() if _is_data_uri(v) else v)
        for k, v in arguments.items()
    }
    blob = json.dumps({"model": model, "arguments": slim}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def billing_unit(table: PriceTable, model: str) -> str:
    """fal bills FLUX by output megapixel and some models per image; the table says which."""
    for unit in ("megapixel", "image"):
        try:
            table.price(PROVIDER, model, unit)
            return unit
        except UnknownPriceError:
            continue
    raise ProviderError(
        PROVIDER,
        f"no price for {model} (per megapixel or per image); add it to prices.yaml in "
        "FACTORY_HOME before using the model, so its cost can be accounted for",
    )


def first_image(result: Any) -> dict[str, Any]:
    """The first picture of a FLUX-style result, or a ProviderError saying what came back."""
    images = result.get("images") if isinstance(result, dict) else None
    if not isinstance(images, list) or not images or not isinstance(images[0], dict):
        keys = sorted(result) if isinstance(result, dict) else type(result).__name__
        raise ProviderError(PROVIDER, f"malformed result: no images (got {keys})")
    image = images[0]
    if not isinstance(image.get("url"), str) or not image["url"]:
        raise ProviderError(PROVIDER, "malformed result: the image has no url")
    nsfw = result.get("has_nsfw_concepts")
    if isinstance(nsfw, list) and nsfw and nsfw[0] is True:
        raise ProviderError(PROVIDER, "the safety checker blanked the picture; rephrase the prompt")
    return image


def _is_data_uri(value: object) -> bool:
    return isinstance(value, str) and value.startswith("data:")


def _scrub(text: str, key: str | None) -> str:
    """Removes the key (and each half of an `id:secret` key) from text; faults.redact only
    catches `Key <token>` shapes and a fal key contains a colon."""
    if key:
        for part in {key, *key.split(":")}:
            if len(part) >= 6:
                text = text.replace(part, "***")
    return text


# --- transport and errors -------------------------------------------------------------------


class FalRateLimited(Exception):
    """A 429 from fal, raised inside the transport so that fal-client's own retry loop (which
    retries 429s with fixed backoff and ignores Retry-After) lets it through to ours."""

    def __init__(self, detail: str, headers: dict[str, str]) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers


class FalTransport(httpx.BaseTransport):
    """fal-client's transport in production; with `base_url`, every fal host goes there
    instead (the Host header is kept, so a fake can tell queue from sync calls)."""

    def __init__(self, base_url: str | None) -> None:
        self._base = httpx.URL(base_url) if base_url else None
        self._inner: httpx.BaseTransport = (
            httpx.HTTPTransport() if self._base else BackupDomainTransport()
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self._base is not None and request.url.host in FAL_HOSTS:
            request.url = request.url.copy_with(
                scheme=self._base.scheme, host=self._base.host, port=self._base.port
            )
        response = self._inner.handle_request(request)
        if response.status_code == 429:
            body = response.read().decode("utf-8", "replace")
            response.close()
            raise FalRateLimited(_detail(body), dict(response.headers))
        return response

    def close(self) -> None:
        self._inner.close()


def _detail(body: str) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body[:300]
    detail = data.get("detail", data) if isinstance(data, dict) else data
    return detail if isinstance(detail, str) else json.dumps(detail)[:300]


def to_provider_error(exc: Exception, key: str | None = None) -> ProviderError:
    """Any fal-client or httpx error as a ProviderError naming fal, its status and reason."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, FalRateLimited):
        return ProviderError(
            PROVIDER, f"rate limited: {_scrub(exc.detail, key)}", status=429, retryable=True,
            retry_after_s=retry_after_seconds(exc.headers),
        )  # fmt: skip
    if isinstance(exc, fal_client.FalClientHTTPError):
        kind = f"{exc.error_type}: " if exc.error_type else ""
        return ProviderError(
            PROVIDER, _scrub(f"{kind}{exc.message}", key), status=exc.status_code,
            retryable=exc.status_code in RETRYABLE_STATUS,
            retry_after_s=retry_after_seconds(exc.response_headers),
        )  # fmt: skip
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        return ProviderError(
            PROVIDER, f"download failed: HTTP {status}", status=status,
            retryable=status in RETRYABLE_STATUS,
            retry_after_s=retry_after_seconds(dict(exc.response.headers)),
        )  # fmt: skip
    if isinstance(exc, httpx.TimeoutException | fal_client.FalClientTimeoutError):
        return ProviderError(PROVIDER, f"timed out: {type(exc).__name__}", retryable=True)
    if isinstance(exc, httpx.HTTPError):
        return ProviderError(PROVIDER, _scrub(f"connection failed: {exc}", key), retryable=True)
    return ProviderError(PROVIDER, _scrub(f"{type(exc).__name__}: {exc}", key))


@dataclasses.dataclass(frozen=True)
class _Client(fal_client.SyncClient):
    """fal-client's SyncClient over our transport (host rewrite for fakes, 429s to us)."""

    base_url: str | None = None

    # Option A in docs/providers.md: the SDK builds its httpx client in this cached property,
    # and every call and request handle uses it, so this is the one place to swap the transport.
    @functools.cached_property
    def _client(self) -> httpx.Client:  # type: ignore[override]
        return httpx.Client(
            transport=FalTransport(self.base_url),
            headers={"Authorization": self._auth.header_value, "User-Agent": "video-factory"},
            timeout=self.default_timeout,
            follow_redirects=True,
        )

    @property
    def http(self) -> httpx.Client:
        return self._client


class FalRecord(BaseModel):
    """What a picture cost us: enough to skip it or resume its job on a rerun."""

    model: str
    fingerprint: str
    request_id: str
    status_url: str
    response_url: str
    cancel_url: str
    state: Literal["submitted", "done"]
    width: int | None = None
    height: int | None = None
    sha256: str | None = Field(None, description="Of the written picture: replaced -> redo.")


def record_path(out: Path) -> Path:
    return out.with_name(f"{out.stem}.fal.json")


def _read_record(out: Path) -> FalRecord | None:
    path = record_path(out)
    try:
        return FalRecord.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValidationError, ValueError):
        return None


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class FalImages(dg.ConfigurableResource):
    """fal.ai pictures for scenes and characters, through fal's queue."""

    base_url: str | None = Field(
        None, description="Send every fal host here (tests' fake server); None in production."
    )
    poll_interval_s: float = Field(0.5, gt=0, description="Seconds between status polls.")
    timeout_s: float = Field(180, gt=0, description="Give up (and cancel) a job after this.")
    attempts: int = Field(4, ge=1, description="Tries per call on rate limits and 5xx.")
    backoff_s: float = Field(0.5, ge=0, description="First backoff step; doubles, with jitter.")

    def available(self, api_key_env: str = "FAL_KEY") -> str | None:
        """None when usable; else why not (the channel's chain goes on, on record)."""
        if not os.environ.get(api_key_env, "").strip():
            return f"{api_key_env} is not set"
        return None

    def text_to_image(
        self, model: str, prompt: str, seed: int, width: int, height: int, out: Path, *,
        api_key_env: str = "FAL_KEY", prices: PriceTable | None = None,
    ) -> list[CostLine]:  # fmt: skip
        """A picture from a prompt, fitted to 1080x1920 at `out`. Returns what it cost
        (nothing when `out` was already made by the same request)."""
        arguments = text_arguments(prompt, seed, width, height)
        return self._generate(model, arguments, out, api_key_env, prices or PriceTable())

    def with_reference(
        self, model: str, prompt: str, reference: Path, seed: int, out: Path, *,
        width: int = DEFAULT_IMAGE_SIZE[0], height: int = DEFAULT_IMAGE_SIZE[1],
        api_key_env: str = "FAL_KEY", prices: PriceTable | None = None,
    ) -> list[CostLine]:  # fmt: skip
        """A picture of the reference's character (e.g. `fal-ai/flux-pulid`). The reference
        travels as a data URI: no CDN upload, no second credential, nothing left behind."""
        arguments = reference_arguments(
            model, prompt, encode_reference(reference), seed, width, height
        )
        return self._generate(model, arguments, out, api_key_env, prices or PriceTable())

    # --- the queue round trip ----------------------------------------------------------------

    def _generate(
        self, model: str, arguments: dict[str, Any], out: Path, api_key_env: str,
        prices: PriceTable,
    ) -> list[CostLine]:  # fmt: skip
        wanted = fingerprint(model, arguments)
        record = _read_record(out)
        if record is not None and record.fingerprint != wanted:
            record = None  # a different picture was asked for: its job is of no use
        if record is not None and record.state == "done" and _sha256(out) == record.sha256:
            return []  # paid for and written on an earlier run, and not replaced since
        unit = billing_unit(prices, model)  # before paying: an unpriced call is refused
        key = os.environ.get(api_key_env, "").strip()
        if not key:
            raise ProviderError(PROVIDER, f"{api_key_env} is not set")
        client = _Client(key=key, default_timeout=self.timeout_s, base_url=self.base_url)
        try:
            handle, result = self._result(client, model, arguments, out, wanted, record, key)
            image = first_image(result)
            data = self._retry(lambda: self._download(client, image["url"]), key)
        finally:
            client.http.close()
        picture = decode_picture(data)
        png = fit_png(picture)
        _write_atomic(out, png)
        done = FalRecord(
            model=model, fingerprint=wanted, request_id=handle.request_id,
            status_url=handle.status_url, response_url=handle.response_url,
            cancel_url=handle.cancel_url, state="done", width=picture.width,
            height=picture.height, sha256=hashlib.sha256(png).hexdigest(),
        )  # fmt: skip
        _write_atomic(record_path(out), done.model_dump_json(indent=2).encode())
        units = 1.0 if unit == "image" else round(picture.width * picture.height / 1e6, 4)
        return [cost_line(prices, PROVIDER, model, unit, units, stage="scene_images")]

    def _result(
        self, client: _Client, model: str, arguments: dict[str, Any], out: Path, wanted: str,
        record: FalRecord | None, key: str,
    ) -> tuple[fal_client.SyncRequestHandle, Any]:  # fmt: skip
        if record is not None and record.state == "submitted":
            handle = fal_client.SyncRequestHandle(
                request_id=record.request_id, response_url=record.response_url,
                status_url=record.status_url, cancel_url=record.cancel_url, client=client.http,
            )  # fmt: skip
            try:
                return handle, self._wait(handle, key)
            except ProviderError as exc:
                if exc.status not in (404, 410):
                    raise
                # fal no longer knows the job (results are kept for a while only): ask again.
        handle = self._retry(lambda: client.submit(model, arguments=arguments), key)
        # Written before waiting: a crash from here on resumes this job instead of paying twice.
        submitted = FalRecord(
            model=model, fingerprint=wanted, request_id=handle.request_id,
            status_url=handle.status_url, response_url=handle.response_url,
            cancel_url=handle.cancel_url, state="submitted",
        )  # fmt: skip
        _write_atomic(record_path(out), submitted.model_dump_json(indent=2).encode())
        return handle, self._wait(handle, key)

    def _wait(self, handle: fal_client.SyncRequestHandle, key: str) -> Any:
        deadline = time.monotonic() + self.timeout_s
        while True:
            status = self._retry(handle.status, key)
            if isinstance(status, fal_client.Completed):
                if status.error:
                    kind = f"{status.error_type}: " if status.error_type else ""
                    raise ProviderError(PROVIDER, f"request {handle.request_id} failed: "
                                        f"{kind}{status.error}")  # fmt: skip
                break
            left = deadline - time.monotonic()
            if left <= 0:
                cancelled = _try_cancel(handle)
                raise ProviderError(
                    PROVIDER,
                    f"request {handle.request_id} not done after {self.timeout_s:g}s "
                    f"({type(status).__name__}); {'cancelled' if cancelled else 'cancel failed'}",
                    retryable=True,
                )
            time.sleep(min(self.poll_interval_s, left))
        return self._retry(lambda: handle.get(interval=self.poll_interval_s), key)

    def _download(self, client: _Client, url: str) -> bytes:
        if _is_data_uri(url):  # sync_mode results carry the picture inline
            return base64.b64decode(url.split(",", 1)[1])
        # No Authorization header: file URLs are public and need no key.
        with httpx.Client(
            transport=FalTransport(self.base_url), timeout=60, follow_redirects=True
        ) as http:
            response = http.get(url)
            response.raise_for_status()
            return response.content

    def _retry(self, call: Callable[[], T], key: str) -> T:
        def once() -> T:
            try:
                return call()
            except Exception as exc:  # every failure leaves as a ProviderError, key-free
                raise to_provider_error(exc, key) from None

        return call_with_retries(once, attempts=self.attempts, base_s=self.backoff_s)


def _try_cancel(handle: fal_client.SyncRequestHandle) -> bool:
    try:
        handle.cancel()
        return True
    except Exception:  # best effort: the job is abandoned either way
        return False


def encode_reference(path: Path) -> str:
    from PIL import Image, ImageOps

    with Image.open(path) as img:
        picture = ImageOps.exif_transpose(img).convert("RGB")
    picture.thumbnail((REFERENCE_MAX_SIDE, REFERENCE_MAX_SIDE))
    return fal_client.encode_image(picture, format="png")


def decode_picture(data: bytes):  # type: ignore[no-untyped-def]  # PIL.Image.Image
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return img.convert("RGB")
    except (OSError, ValueError) as exc:
        raise ProviderError(PROVIDER, f"the downloaded picture does not decode ({exc})") from None


def fit_png(picture) -> bytes:  # type: ignore[no-untyped-def]
    """Scales and crops to 1080x1920 (faces sit high in portraits: crop below centre less)."""
    from PIL import ImageOps

    fitted = ImageOps.fit(picture, OUTPUT_SIZE, method=3, centering=(0.5, 0.4))
    buf = io.BytesIO()
    fitted.save(buf, format="PNG", compress_level=3)
    return buf.getvalue()
