"""Comparing speech with text: transcripts, word error rate, and word timings taken from speech.

Pure. A speech recognizer writes what it heard in its own way ("3" for "three", "blood," for
"blood", "ещё" or "еще"), so both sides are normalised the same way before they are compared;
what remains are the recognizer's real errors (or a narration that says something else).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from typing import Literal

import jiwer
from pydantic import BaseModel, Field

from factory_core.models import Language, SentenceSpan, WordTiming
from factory_core.text import split_sentences

# ---------------------------------------------------------------------------------------------
# Transcripts
# ---------------------------------------------------------------------------------------------


class TranscribedWord(BaseModel):
    """One word as a recognizer timed it. Local whisper keeps punctuation on the word ("blood,");
    the OpenAI API gives bare words ("blood")."""

    word: str
    start: float
    end: float
    probability: float | None = None


class Transcript(BaseModel):
    text: str
    language: Language
    duration_s: float = Field(ge=0, description="Seconds of audio heard.")
    words: list[TranscribedWord]
    provider: str = Field(description="'faster-whisper' (local) or 'openai-whisper'.")
    model: str


# A decoder stuck in a loop ("и, и, и, ..." or one phrase over and over until the window's
# token budget runs out) writes the same 1-8 words three or more times in a row; people don't.
_LOOP_MIN_REPEATS = 3
_LOOP_MAX_WORDS = 8
# The same inside one hyphenated "word": "Майти-ти-ти-ти-ха", "пи-о-пи-о-пи-о-".
_HYPHEN_LOOP = re.compile(r"(?<![^\W\d_])((?:[^\W\d_]{1,12}-){1,3})\1{2,}")


def _loop_free(keys: list[str]) -> list[int]:
    """Indices to keep: of a run of >= 3 back-to-back repeats of the same 1-8 keys, the first."""
    keep: list[int] = []
    i = 0
    while i < len(keys):
        skipped = False
        for n in range(1, _LOOP_MAX_WORDS + 1):
            unit = keys[i : i + n]
            if len(unit) < n or not any(unit):
                break
            repeats = 1
            while keys[i + repeats * n : i + (repeats + 1) * n] == unit:
                repeats += 1
            if repeats >= _LOOP_MIN_REPEATS:
                keep.extend(range(i, i + n))
                i += repeats * n
                skipped = True
                break
        if not skipped:
            keep.append(i)
            i += 1
    return keep


def without_loops(transcript: Transcript) -> Transcript:
    """The transcript with decoder loops cut to one copy (text and timed words alike).

    whisper-base falls into such loops on the robotic Russian voice now and then; left in, a
    loop adds hundreds of "words" and the error rate measures the loop, not the narration. What
    the loop swallowed stays missing and still counts.
    """
    tokens = [_HYPHEN_LOOP.sub(r"\1", t) for t in transcript.text.split()]
    kept_tokens = _loop_free([_bare(t) for t in tokens])
    kept_words = _loop_free([_bare(w.word) for w in transcript.words])
    text = " ".join(tokens[i] for i in kept_tokens)
    words = [transcript.words[i] for i in kept_words]
    if text == transcript.text and len(words) == len(transcript.words):
        return transcript
    return transcript.model_copy(update={"text": text, "words": words})


# ---------------------------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------------------------

_EN_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_EN_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_EN_SCALES = ((10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_EN_ORDINAL = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
    "nine": "ninth", "twelve": "twelfth",
}  # fmt: skip

_RU_ONES = (
    "ноль один два три четыре пять шесть семь восемь девять десять одиннадцать двенадцать "
    "тринадцать четырнадцать пятнадцать шестнадцать семнадцать восемнадцать девятнадцать"
).split()
_RU_TENS = "_ _ двадцать тридцать сорок пятьдесят шестьдесят семьдесят восемьдесят девяносто"
_RU_HUNDREDS = "_ сто двести триста четыреста пятьсот шестьсот семьсот восемьсот девятьсот"
# (scale, forms for 1 / 2-4 / 5+, feminine?)
_RU_SCALES = (
    (10**9, ("миллиард", "миллиарда", "миллиардов"), False),
    (10**6, ("миллион", "миллиона", "миллионов"), False),
    (1000, ("тысяча", "тысячи", "тысяч"), True),
)
_LARGEST = 10**12 - 1  # beyond this a number is read digit by digit; no script says such numbers

_APOSTROPHES = str.maketrans({"’": "'", "ʼ": "'", "‘": "'", "`": "'", "ё": "е", "Ё": "Е"})
# "1,000,000" in English; "1 000" with a no-break or thin space in Russian typography.
_EN_GROUPED = re.compile(r"(?<![\d,])\d{1,3}(?:,\d{3})+(?![,\d])")
_RU_GROUPED = re.compile(r"(?<!\d)\d{1,3}(?:[\u00a0\u202f\u2009]\d{3})+(?!\d)")
_DECIMAL = re.compile(r"(?<![\d.,])(\d+)[.,](\d+)(?![\d]|[.,]\d)")
_EN_ORDINAL_DIGITS = re.compile(r"(?<!\w)(\d+)(?:st|nd|rd|th)(?!\w)", re.IGNORECASE)
_INTEGER = re.compile(r"(?<![^\W\d_])\d+(?![^\W\d_])")
_PERCENT = re.compile(r"\s*%")
# A token: letters and digits, with apostrophes inside ("don't"); hyphens and all other
# punctuation («» — … etc.) separate tokens, so "well-known" and "well known" compare equal.
_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def _en_below_thousand(n: int) -> list[str]:
    words: list[str] = []
    if n >= 100:
        words += [_EN_ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        words.append(_EN_TENS[n // 10])
        n %= 10
        if n:
            words.append(_EN_ONES[n])
    elif n or not words:
        words.append(_EN_ONES[n])
    return words


def _en_number(n: int) -> list[str]:
    if n < 1000:
        return _en_below_thousand(n)
    words: list[str] = []
    for scale, name in _EN_SCALES:
        if n >= scale:
            words += [*_en_below_thousand(n // scale), name]
            n %= scale
    if n:
        words += _en_below_thousand(n)
    return words


def _en_ordinal(n: int) -> list[str]:
    words = _en_number(n)
    last = words[-1]
    if last in _EN_ORDINAL:
        words[-1] = _EN_ORDINAL[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return words


def _ru_below_thousand(n: int, feminine: bool = False) -> list[str]:
    words: list[str] = []
    if n >= 100:
        words.append(_RU_HUNDREDS.split()[n // 100])
        n %= 100
    if n >= 20:
        words.append(_RU_TENS.split()[n // 10])
        n %= 10
    if n or not words:
        word = _RU_ONES[n]
        if feminine and n in (1, 2):
            word = "одна" if n == 1 else "две"
        words.append(word)
    return words


def _ru_form(n: int, forms: tuple[str, str, str]) -> str:
    if 11 <= n % 100 <= 14:
        return forms[2]
    last = n % 10
    return forms[0] if last == 1 else forms[1] if 2 <= last <= 4 else forms[2]


def _ru_number(n: int) -> list[str]:
    """Cardinal, nominative: the form a recognizer and a script agree on most often."""
    if n < 1000:
        return _ru_below_thousand(n)
    words: list[str] = []
    for scale, forms, feminine in _RU_SCALES:
        if n >= scale:
            count = n // scale
            # "тысяча", not "одна тысяча": how 1000-1999 are said
            head = [] if count == 1 else _ru_below_thousand(count, feminine)
            words += [*head, _ru_form(count, forms)]
            n %= scale
    if n:
        words += _ru_below_thousand(n)
    return words


def number_words(n: int, language: Language | str) -> list[str]:
    """A non-negative integer as spoken words ("21" -> twenty one / двадцать один)."""
    if n > _LARGEST:
        return [" ".join(number_words(int(d), language)) for d in str(n)]
    return _ru_number(n) if Language(language) == Language.RU else _en_number(n)


def normalise_words(text: str, language: Language | str) -> list[str]:
    """Comparable words: case-folded, ё as е, punctuation and hyphens dropped, digits spoken.

    Digits become words on both sides, so "3" and "three" (or "три") match whichever one the
    script or the recognizer wrote.
    """
    lang = Language(language)
    point = "point" if lang == Language.EN else "запятая"
    percent = " percent" if lang == Language.EN else " процентов"
    # Digit groups first: NFKC turns the no-break spaces of "1 000" into plain spaces.
    if lang == Language.EN:
        text = _EN_GROUPED.sub(lambda m: m.group(0).replace(",", ""), text)
    else:
        text = _RU_GROUPED.sub(lambda m: re.sub(r"\D", "", m.group(0)), text)
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES)
    if lang == Language.EN:
        text = _EN_ORDINAL_DIGITS.sub(lambda m: " ".join(_en_ordinal(int(m.group(1)))), text)
    text = _PERCENT.sub(percent, text)
    text = text.replace("&", " and " if lang == Language.EN else " и ")
    text = _DECIMAL.sub(
        lambda m: " ".join(
            [*number_words(int(m.group(1)), lang), point, *number_words(int(m.group(2)), lang)]
        ),
        text,
    )
    text = _INTEGER.sub(lambda m: " " + " ".join(number_words(int(m.group(0)), lang)) + " ", text)
    return _TOKEN.findall(text.casefold())


# ---------------------------------------------------------------------------------------------
# Word error rate
# ---------------------------------------------------------------------------------------------


class WordError(BaseModel):
    """One aligned difference: what the script says there and what was heard instead."""

    kind: Literal["substitution", "deletion", "insertion"]
    reference: str = Field(description="Script words at this place ('' for an insertion).")
    hypothesis: str = Field(description="Heard words at this place ('' for a deletion).")
    position: int = Field(description="Index of the first script word concerned.")


class WerReport(BaseModel):
    wer: float = Field(description="(S + D + I) / words in the script.")
    cer: float = Field(description="The same over characters of the normalised words.")
    reference_words: int
    hypothesis_words: int
    hits: int
    substitutions: int
    deletions: int
    insertions: int
    errors: list[WordError]

    def worst_words(self, limit: int = 10) -> list[str]:
        """The most frequent differences, most frequent first, as 'said → heard' (×n)."""
        counts = Counter(
            f"{e.reference or '∅'} → {e.hypothesis or '∅'}" for e in self.errors
        ).most_common(limit)
        return [f"{pair} ×{n}" if n > 1 else pair for pair, n in counts]


def word_error_rate(reference: str, hypothesis: str, language: Language | str) -> WerReport:
    """WER of `hypothesis` (what a recognizer heard) against `reference` (what should be said).

    An empty reference gives 0 when nothing was heard either and 1 otherwise (WER is undefined
    there, and "something heard when nothing was said" is an error all the same).
    """
    ref = normalise_words(reference, language)
    hyp = normalise_words(hypothesis, language)
    if not ref:
        errors = [WordError(kind="insertion", reference="", hypothesis=" ".join(hyp), position=0)]
        return WerReport(
            wer=1.0 if hyp else 0.0, cer=1.0 if hyp else 0.0, reference_words=0,
            hypothesis_words=len(hyp), hits=0, substitutions=0, deletions=0,
            insertions=len(hyp), errors=errors if hyp else [],
        )  # fmt: skip
    if not hyp:
        return WerReport(
            wer=1.0, cer=1.0, reference_words=len(ref), hypothesis_words=0, hits=0, substitutions=0,
            deletions=len(ref),
            errors=[WordError(kind="deletion", reference=" ".join(ref), hypothesis="", position=0)],
            insertions=0,
        )  # fmt: skip
    # Words are already normalised: join them so jiwer's own default transform only splits.
    out = jiwer.process_words(" ".join(ref), " ".join(hyp))
    errors = [
        WordError(
            kind=_KINDS[chunk.type],
            reference=" ".join(ref[chunk.ref_start_idx : chunk.ref_end_idx]),
            hypothesis=" ".join(hyp[chunk.hyp_start_idx : chunk.hyp_end_idx]),
            position=chunk.ref_start_idx,
        )
        for chunk in out.alignments[0]
        if chunk.type != "equal"
    ]
    cer = jiwer.cer(" ".join(ref), " ".join(hyp))
    return WerReport(
        wer=round(out.wer, 4), cer=round(float(cer), 4), reference_words=len(ref),
        hypothesis_words=len(hyp), hits=out.hits, substitutions=out.substitutions,
        deletions=out.deletions, insertions=out.insertions, errors=errors,
    )  # fmt: skip


_KINDS: dict[str, Literal["substitution", "deletion", "insertion"]] = {
    "substitute": "substitution",
    "delete": "deletion",
    "insert": "insertion",
}


class NarrationThreshold(BaseModel):
    metric: Literal["wer", "cer"]
    max: float
    why: str


# Measured with the local whisper-base (int8, temperature 0, loops cut) on 10 rendered videos
# (15-45 s composed narrations, music ducked under the voice), against their own script,
# another topic's script, and the first half of the narration only:
# English (piper), judged by WER: 0.00-0.02 right; 0.57-1.04 another topic; 0.43-0.51 half.
# 0.25 sits far from both and leaves room for numbers and names a natural voice says its way.
# Russian (espeak-ng), judged by CER: whisper-base mishears the robotic voice badly and falls
# into loops that swallow the speech after them, so WER is 0.60-1.12 even on right narrations,
# no better than on wrong ones (0.75-2.03). CER separates the gross failures only: 0.28-0.57
# right; 0.74-0.96 another topic (0.37-0.64 where two templated scripts share most sentences);
# but 0.59-0.69 for half a narration, too close to call. 0.65 passes every right narration
# measured and fails a video that says something else, nothing, or another language; it does
# not catch a few missing sentences in Russian (English does). A natural voice or whisper-1
# would allow a tighter bound.
NARRATION_THRESHOLDS: dict[Language, NarrationThreshold] = {
    Language.EN: NarrationThreshold(metric="wer", max=0.25, why="piper + whisper-base"),
    Language.RU: NarrationThreshold(
        metric="cer",
        max=0.65,
        why="espeak-ng + whisper-base: WER 0.6-1.1 even when right; CER separates gross faults",
    ),
}


class NarrationVerdict(BaseModel):
    passed: bool
    metric: Literal["wer", "cer"]
    value: float
    max: float

    @property
    def summary(self) -> str:
        sign = "<=" if self.passed else ">"
        return f"{self.metric.upper()} {self.value:.3f} {sign} {self.max:.2f}"


def judge_narration(report: WerReport, language: Language | str) -> NarrationVerdict:
    """Whether a narration heard by a recognizer matches its script, by the language's metric."""
    threshold = NARRATION_THRESHOLDS[Language(language)]
    value = report.wer if threshold.metric == "wer" else report.cer
    return NarrationVerdict(
        passed=value <= threshold.max, metric=threshold.metric, value=value, max=threshold.max
    )


def matched_words(
    reference: list[str], hypothesis: list[str], language: Language | str
) -> list[tuple[int, int]]:
    """(reference index, hypothesis index) of words that match after alignment; each list holds
    one display token per entry ("blood," and "3" are fine). Tokens that normalise to several
    words ("21" -> twenty one) or to none are matched as a whole or skipped."""
    ref_norm = [" ".join(normalise_words(w, language)) for w in reference]
    hyp_norm = [" ".join(normalise_words(w, language)) for w in hypothesis]
    ref_keep = [i for i, w in enumerate(ref_norm) if w]
    hyp_keep = [i for i, w in enumerate(hyp_norm) if w]
    if not ref_keep or not hyp_keep:
        return []
    # One jiwer "word" per token: multi-word numbers are glued so indices stay token indices.
    out = jiwer.process_words(
        " ".join(ref_norm[i].replace(" ", "_") for i in ref_keep),
        " ".join(hyp_norm[i].replace(" ", "_") for i in hyp_keep),
    )
    pairs: list[tuple[int, int]] = []
    for chunk in out.alignments[0]:
        if chunk.type == "equal":
            pairs += [
                (ref_keep[chunk.ref_start_idx + k], hyp_keep[chunk.hyp_start_idx + k])
                for k in range(chunk.ref_end_idx - chunk.ref_start_idx)
            ]
    return pairs


# ---------------------------------------------------------------------------------------------
# Word timings from a transcript (a user's own narration audio)
# ---------------------------------------------------------------------------------------------

_SENTENCE_END_CHARS = ".!?…"
_CLOSERS = "\"»”')]"
_EDGE_PUNCT = re.compile(r"^[^\w]+|[^\w]+$")


def _bare(word: str) -> str:
    return _EDGE_PUNCT.sub("", word.strip()).casefold().translate(_APOSTROPHES)


def transcript_word_timings(transcript: Transcript) -> list[WordTiming]:
    """The transcript's words with a sentence index each, sentences as the transcript's text
    punctuates them.

    Each word is found in the text (in order), which gives its sentence and its display form with
    punctuation ("blood.") even when the recognizer timed bare words (the OpenAI API). A word the
    text does not hold keeps its own spelling and the current sentence. Tokens without letters or
    digits (a lone "-") are dropped: captions cannot show them as words.
    """
    text = transcript.text
    sentence_starts = _sentence_starts(text)
    folded = text.casefold().translate(_APOSTROPHES)
    cursor = 0
    timings: list[WordTiming] = []
    sentence = 0
    for item in transcript.words:
        bare = _bare(item.word)
        if not bare:
            continue
        found = re.compile(rf"(?<!\w){re.escape(bare)}(?!\w)").search(folded, cursor)
        display = item.word.strip()
        # Only look a little ahead: a word missing from the text must not jump a whole sentence.
        if found and found.start() - cursor <= 40 + len(bare):
            start = found.start()
            while start > 0 and not text[start - 1].isspace():
                start -= 1
            end = found.end()
            while end < len(text) and not text[end].isspace():
                end += 1
            display = text[start:end]
            cursor = end
            sentence = max(sentence, sum(1 for s in sentence_starts if s <= found.start()) - 1)
        timings.append(
            WordTiming(word=display, start=item.start, end=item.end, sentence_index=sentence)
        )
    return _renumber(timings)


def _sentence_starts(text: str) -> list[int]:
    starts: list[int] = []
    cursor = 0
    for sentence in split_sentences(text):
        at = text.find(sentence, cursor)
        if at < 0:
            continue
        starts.append(at)
        cursor = at + len(sentence)
    return starts or [0]


def _renumber(timings: list[WordTiming]) -> list[WordTiming]:
    """Sentence indices 0, 1, 2 ... without gaps, and a sentence break after a word ending in
    terminal punctuation even where the text search could not place it."""
    out: list[WordTiming] = []
    index = 0
    previous_raw: int | None = None
    ended = False
    for timing in timings:
        if out and (ended or timing.sentence_index != previous_raw):
            index += 1
        previous_raw = timing.sentence_index
        ended = timing.word.rstrip(_CLOSERS).endswith(tuple(_SENTENCE_END_CHARS))
        out.append(timing.model_copy(update={"sentence_index": index}))
    return out


def sentence_spans(words: list[WordTiming]) -> list[SentenceSpan]:
    """One span per sentence index: its words joined, from its first word's start to its last
    word's end."""
    spans: list[SentenceSpan] = []
    for word in words:
        if spans and spans[-1].index == word.sentence_index:
            last = spans[-1]
            spans[-1] = last.model_copy(
                update={"text": f"{last.text} {word.word}", "end": max(last.end, word.end)}
            )
        else:
            spans.append(
                SentenceSpan(index=word.sentence_index, text=word.word, start=word.start,
                             end=word.end)
            )  # fmt: skip
    return spans
