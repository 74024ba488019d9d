"""ElevenLabs text to speech with word timings, and the voice calls the studio needs (SDK).

Env: the key lives in the variable a channel names (`providers.voice.api_key_env`, default
ELEVENLABS_API_KEY); it is read when a call is made, passed to the SDK explicitly (the SDK's
own default reads the environment at import time) and never logged or put in an error.

One `convert_with_timestamps` call per sentence, with the neighbouring sentences as
`previous_text`/`next_text` so the prosody still flows: a sentence's audio then starts at 0 and
its character alignment maps straight onto its display tokens, and the pause between sentences
is ours, as with the offline voice (scene cuts fall into it).
"""

from __future__ import annotations

import base64
import mimetypes
import os
import re
import tempfile
import wave
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import dagster as dg
import numpy as np
from pydantic import Field

from factory_core.costs import CostLine, PriceTable, UnknownPriceError, cost_line
from factory_core.models import Language, SentenceSpan, Voiceover, WordTiming
from factory_core.timing import SENTENCE_PAUSE_S
from factory_resources.faults import ProviderError, redact, retry_after_seconds
from factory_resources.ffmpeg import RenderError, run_ffmpeg
from factory_resources.voices import display_tokens

if TYPE_CHECKING:
    from elevenlabs import ElevenLabs

T = TypeVar("T")

PROVIDER = "elevenlabs"
MULTILINGUAL_MODEL = "eleven_multilingual_v2"
# Models that only speak English; a Russian channel on one of them is switched to multilingual.
ENGLISH_ONLY_MODELS = frozenset({"eleven_monolingual_v1", "eleven_turbo_v2", "eleven_flash_v2"})
# Only these accept `language_code` (multilingual_v2 rejects it, per the SDK docstring).
LANGUAGE_CODE_MODELS = frozenset({"eleven_flash_v2_5", "eleven_turbo_v2_5"})
VOICE_SETTING_KEYS = ("stability", "similarity_boost", "style", "use_speaker_boost", "speed")
_FORMAT = re.compile(r"^(mp3|pcm|wav|opus|ulaw|alaw)_(\d+)(?:_\d+)?$")


class ElevenLabsError(ProviderError):
    """A ProviderError that also carries what was already spent (sentences spoken and billed
    before the failure), so the ledger stays honest when a narration fails half-way."""

    def __init__(self, reason: str, *, spent: list[CostLine] | None = None, **kw: Any) -> None:
        super().__init__(PROVIDER, reason, **kw)
        self.spent: list[CostLine] = spent or []


# --- pure helpers -------------------------------------------------------------------------


def model_for(language: Language, model_id: str) -> str:
    """The model to ask for: an English-only model cannot speak Russian."""
    if language != Language.EN and model_id in ENGLISH_ONLY_MODELS:
        return MULTILINGUAL_MODEL
    return model_id


def parse_output_format(output_format: str) -> tuple[str, int]:
    """('mp3', 44100) from 'mp3_44100_128'; raises ValueError on anything else."""
    match = _FORMAT.match(output_format)
    if not match:
        raise ValueError(
            f"output format {output_format!r} is not one ElevenLabs offers; use e.g. "
            "mp3_44100_128 or pcm_24000"
        )
    return match.group(1), int(match.group(2))


def token_ranges(sentence: str, tokens: list[str]) -> list[tuple[int, int]]:
    """Character range [start, end) of each display token in its sentence (tokens are
    whitespace pieces, some joined by one space, so they are found in order)."""
    ranges: list[tuple[int, int]] = []
    position = 0
    for token in tokens:
        first = token.split()[0]
        start = sentence.find(first, position)
        if start < 0:  # cannot happen for tokens made from this sentence; keep going anyway
            start = position
        end = start
        for piece in token.split():
            found = sentence.find(piece, end)
            end = (found if found >= 0 else end) + len(piece)
        ranges.append((start, end))
        position = end
    return ranges


def word_spans_from_alignment(
    sentence: str,
    tokens: list[str],
    characters: Sequence[str],
    starts: Sequence[float],
    ends: Sequence[float],
    audio_s: float,
) -> list[tuple[float, float]]:
    """(start, end) seconds per display token from a character alignment.

    A token is timed by its letters and digits (a trailing comma or dash adds no speech); if
    the aligned text differs from the sentence (it should not, but normalisation happens),
    character positions are mapped proportionally. Spans are monotonic and inside the audio.
    """
    n = len(characters)
    if n == 0 or not tokens:
        return [(0.0, 0.0)] * len(tokens)
    same = "".join(characters) == sentence

    def index(i: int) -> int:
        return i if same else min(n - 1, round(i * n / max(1, len(sentence))))

    spans: list[tuple[float, float]] = []
    floor = 0.0
    for a, b in token_ranges(sentence, tokens):
        picked = [index(i) for i in range(a, b) if sentence[i].isalnum()] or [
            index(i) for i in range(a, b) if not sentence[i].isspace()
        ]
        picked = picked or [index(a)]
        start = min(float(starts[i]) for i in picked)
        end = max(float(ends[i]) for i in picked)
        start = min(max(start, floor), audio_s)
        end = min(max(end, start), audio_s)
        spans.append((start, end))
        floor = start
    return spans


def _detail(body: object) -> tuple[str, str]:
    """(status code word, message) from an ElevenLabs error body in any of its shapes."""
    if isinstance(body, dict):
        detail = body.get("detail", body)
        if isinstance(detail, dict):
            return str(detail.get("status") or detail.get("code") or ""), str(
                detail.get("message") or ""
            )
        if isinstance(detail, list):  # 422: [{"loc": [...], "msg": ..., "type": ...}]
            parts = [
                f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg', '')}"
                if isinstance(d, dict)
                else str(d)
                for d in detail
            ]
            return "invalid_request", "; ".join(parts)
        return "", str(detail)
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    return "", " ".join(str(body or "").split())[:300]


def error_from_api(
    status: int | None,
    body: object,
    headers: dict[str, str] | None,
    *,
    key: str,
    key_env: str,
    retries: int,
) -> ElevenLabsError:
    """The provider's words, with what to do; rate limits and outages are marked retryable
    (the SDK already retried them `retries` times, honouring Retry-After)."""
    code, message = _detail(body)
    said = f"{message} ({code})" if message and code else message or code or "no details"
    if status == 401 and code == "quota_exceeded":
        reason = (
            f"out of credits: {said}; top up the ElevenLabs plan, or put 'offline' after "
            "'elevenlabs' in the channel's providers.voice.chain"
        )
    elif status == 401:
        reason = f"the API key in {key_env} was refused: {said}; check the key"
    elif status == 429:
        reason = f"rate limited after {retries} retries: {said}; try again later"
    elif status is not None and status >= 500:
        reason = f"server error after {retries} retries: {said}"
    elif status == 404:
        reason = f"not found: {said}; the voice may have been deleted at ElevenLabs"
    else:
        reason = f"request refused: {said}"
    if key:
        reason = reason.replace(key, "***")
    retryable = status is not None and (status in (408, 409, 429) or status >= 500)
    return ElevenLabsError(
        redact(reason),
        status=status,
        retryable=retryable,
        retry_after_s=retry_after_seconds(headers) if retryable else None,
    )


def decode_audio(data: bytes, output_format: str, sample_rate: int, work_dir: Path) -> np.ndarray:
    """Provider audio -> mono int16 samples at `sample_rate`, decoded by the static ffmpeg."""
    codec, rate = parse_output_format(output_format)
    if codec == "pcm":  # raw little-endian 16-bit mono
        return np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2").copy()
    raw_args = {"ulaw": ["-f", "mulaw", "-ar", str(rate), "-ac", "1"],
                "alaw": ["-f", "alaw", "-ar", str(rate), "-ac", "1"]}.get(codec, [])  # fmt: skip
    with tempfile.TemporaryDirectory(dir=work_dir, prefix=".el-") as tmp:
        source = Path(tmp) / f"in.{codec}"
        target = Path(tmp) / "out.wav"
        source.write_bytes(data)
        run_ffmpeg(
            ["-hide_banner", "-nostdin", "-y", "-loglevel", "error", *raw_args, "-i", str(source),
             "-ac", "1", "-ar", str(sample_rate), "-c:a", "pcm_s16le", str(target)],
            what="decoding the ElevenLabs audio",
        )  # fmt: skip
        with wave.open(str(target), "rb") as wav:
            return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").copy()


def voice_settings_of(settings: dict[str, Any]) -> dict[str, Any]:
    """Only the keys ElevenLabs knows, without unset ones (unset = the voice's stored value)."""
    return {k: settings[k] for k in VOICE_SETTING_KEYS if settings.get(k) is not None}


# --- the resource ---------------------------------------------------------------------------


class ElevenLabsVoice(dg.ConfigurableResource):
    """ElevenLabs: narration with character timings, and instant voice clones for the studio."""

    base_url: str | None = Field(
        None, description="None: api.elevenlabs.io. Tests point it at a local fake (no /v1)."
    )
    max_retries: int = Field(2, ge=0, le=6, description="SDK retries on 408/409/429/5xx.")
    timeout_s: float = Field(60, gt=0, description="Per request.")
    sentence_pause_s: float = Field(SENTENCE_PAUSE_S, description="Silence between sentences.")

    def available(self, api_key_env: str = "ELEVENLABS_API_KEY") -> str | None:
        """None when usable, else why not (the key itself is never part of the answer)."""
        if not os.environ.get(api_key_env, "").strip():
            return f"no {api_key_env} set"
        return None

    def _client(self, api_key_env: str) -> tuple[ElevenLabs, str]:
        from elevenlabs import ElevenLabs

        reason = self.available(api_key_env)
        if reason:
            raise ElevenLabsError(reason)
        key = os.environ[api_key_env].strip()
        return ElevenLabs(base_url=self.base_url, api_key=key, timeout=self.timeout_s), key

    def _call(self, key: str, key_env: str, call: Callable[[], T]) -> T:
        """Runs one SDK call; every failure becomes an ElevenLabsError with a clear reason."""
        import httpx
        from elevenlabs.core.api_error import ApiError
        from elevenlabs.core.parse_error import ParsingError

        try:
            return call()
        except ApiError as exc:
            raise error_from_api(
                exc.status_code, exc.body, exc.headers, key=key, key_env=key_env,
                retries=self.max_retries,
            ) from None  # fmt: skip
        except ParsingError as exc:
            raise ElevenLabsError(f"malformed response: {type(exc).__name__}") from None
        except httpx.TimeoutException:
            raise ElevenLabsError(
                f"no answer within {self.timeout_s:.0f} s", retryable=True
            ) from None
        except httpx.HTTPError as exc:
            text = str(exc).replace(key, "***") if key else str(exc)
            raise ElevenLabsError(
                f"connection failed: {type(exc).__name__}: {text}", retryable=True
            ) from None

    def _options(self) -> dict[str, Any]:
        return {"max_retries": self.max_retries}

    def synthesize(
        self,
        sentences: list[str],
        language: Language,
        voice_id: str,
        settings: dict[str, Any],
        model_id: str,
        output_format: str,
        out_wav: Path,
        *,
        api_key_env: str = "ELEVENLABS_API_KEY",
        prices: PriceTable | None = None,
    ) -> tuple[Voiceover, list[CostLine]]:
        """Speaks the sentences into a mono 16-bit WAV; returns the timings and the cost lines.

        Raises ElevenLabsError (with `.spent` for sentences already billed)."""
        from elevenlabs import VoiceSettings

        model = model_for(language, model_id)
        try:
            _, sample_rate = parse_output_format(output_format)
        except ValueError as exc:
            raise ElevenLabsError(str(exc)) from None
        try:  # before any paid call: a call that cannot be accounted for is not made
            (prices or PriceTable()).price(PROVIDER, model, "character")
        except UnknownPriceError as exc:
            raise ElevenLabsError(str(exc)) from None
        client, key = self._client(api_key_env)
        voice_settings = voice_settings_of(settings)
        extra: dict[str, Any] = {}
        if voice_settings:
            extra["voice_settings"] = VoiceSettings(**voice_settings)
        if model in LANGUAGE_CODE_MODELS:
            extra["language_code"] = language.value

        pause = np.zeros(int(sample_rate * self.sentence_pause_s), dtype=np.int16)
        pieces: list[np.ndarray] = []
        words: list[WordTiming] = []
        spans: list[SentenceSpan] = []
        clock = 0.0
        billed = 0

        def spent() -> list[CostLine]:
            table = prices or PriceTable()
            return [cost_line(table, PROVIDER, model, "character", billed)] if billed else []

        for index, sentence in enumerate(sentences):
            context = {}
            if index > 0:
                context["previous_text"] = sentences[index - 1]
            if index < len(sentences) - 1:
                context["next_text"] = sentences[index + 1]
            try:
                response = self._call(
                    key, api_key_env,
                    lambda s=sentence, c=context: client.text_to_speech.convert_with_timestamps(
                        voice_id, text=s, model_id=model, output_format=output_format,
                        request_options=self._options(), **extra, **c,
                    ),
                )  # fmt: skip
            except ElevenLabsError as exc:
                exc.spent = spent()
                raise
            billed += len(sentence)  # the API bills the characters of `text` it spoke
            alignment = getattr(response, "alignment", None)
            audio_b64 = getattr(response, "audio_base_64", None)
            if (
                alignment is None
                or not audio_b64
                or not alignment.characters
                or len(alignment.characters) != len(alignment.character_start_times_seconds)
                or len(alignment.characters) != len(alignment.character_end_times_seconds)
            ):
                raise ElevenLabsError(
                    f"malformed response for sentence {index + 1}: audio or character "
                    "alignment missing",
                    spent=spent(),
                )
            try:
                samples = decode_audio(
                    base64.b64decode(audio_b64), output_format, sample_rate, out_wav.parent
                )
            except (ValueError, RenderError) as exc:
                raise ElevenLabsError(
                    f"malformed audio for sentence {index + 1}: {exc}", spent=spent()
                ) from None
            length = len(samples) / sample_rate
            tokens = display_tokens(sentence)
            timed = word_spans_from_alignment(
                sentence, tokens, alignment.characters,
                alignment.character_start_times_seconds, alignment.character_end_times_seconds,
                length,
            )  # fmt: skip
            for token, (start, end) in zip(tokens, timed, strict=True):
                words.append(
                    WordTiming(word=token, start=round(clock + start, 3),
                               end=round(clock + end, 3), sentence_index=index)
                )  # fmt: skip
            spans.append(SentenceSpan(index=index, text=sentence, start=round(clock, 3),
                                      end=round(clock + length, 3)))  # fmt: skip
            pieces.append(samples)
            clock += length
            if index < len(sentences) - 1:
                pieces.append(pause)
                clock += self.sentence_pause_s

        audio = np.concatenate(pieces) if pieces else pause
        with wave.open(str(out_wav), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(sample_rate)
            wav.writeframes(audio.astype("<i2").tobytes())
        spoken = Voiceover(
            audio_file=out_wav.name,
            duration_s=round(len(audio) / sample_rate, 3),
            sample_rate=sample_rate,
            words=words,
            sentences=spans,
            provider=PROVIDER,
            voice=voice_id,
        )
        return spoken, spent()

    # --- voices (the studio) -------------------------------------------------------------

    def clone(
        self, name: str, files: list[Path], description: str = "", *,
        api_key_env: str = "ELEVENLABS_API_KEY",
    ) -> str:  # fmt: skip
        """Instant voice clone from sample files; returns the provider's voice id."""
        client, key = self._client(api_key_env)
        uploads = [
            (f.name, f.read_bytes(), mimetypes.guess_type(f.name)[0] or "application/octet-stream")
            for f in files
        ]
        created = self._call(
            key, api_key_env,
            lambda: client.voices.ivc.create(
                name=name, files=uploads, description=description or None,
                request_options=self._options(),
            ),
        )  # fmt: skip
        voice_id = getattr(created, "voice_id", None)
        if not voice_id:
            raise ElevenLabsError("malformed response: the clone came back without a voice_id")
        return str(voice_id)

    def push_settings(
        self, voice_id: str, settings: dict[str, Any], *, api_key_env: str = "ELEVENLABS_API_KEY"
    ) -> None:
        """Stores the settings at the provider too, so the voice sounds the same elsewhere."""
        from elevenlabs import VoiceSettings

        client, key = self._client(api_key_env)
        request = VoiceSettings(**voice_settings_of(settings))
        self._call(
            key, api_key_env,
            lambda: client.voices.settings.update(
                voice_id, request=request, request_options=self._options()
            ),
        )  # fmt: skip

    def delete_voice(self, voice_id: str, *, api_key_env: str = "ELEVENLABS_API_KEY") -> None:
        client, key = self._client(api_key_env)
        self._call(
            key, api_key_env,
            lambda: client.voices.delete(voice_id, request_options=self._options()),
        )  # fmt: skip

    def voice_info(
        self, voice_id: str, *, api_key_env: str = "ELEVENLABS_API_KEY"
    ) -> dict[str, Any]:
        """The provider's record of a voice (name, category, settings ...)."""
        client, key = self._client(api_key_env)
        voice = self._call(
            key, api_key_env,
            lambda: client.voices.get(voice_id, request_options=self._options()),
        )  # fmt: skip
        return voice.dict() if hasattr(voice, "dict") else dict(voice)
