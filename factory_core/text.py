"""Text helpers shared by the planners: cleaning user text, sentences, words, keywords."""

from __future__ import annotations

import html
import re
import unicodedata
from functools import cache
from typing import Any

_TAG = re.compile(r"<[^>]{0,200}>")
_SPACE = re.compile(r"\s+")
# Sentence end: terminal punctuation (optionally closed by quotes/brackets) and a space.
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"»”')\]]*\s+")
_WORD = re.compile(r"[\w][\w'’\-]*", re.UNICODE)
_CYRILLIC = re.compile(r"[\u0400-\u04FF]")
_LATIN = re.compile(r"[A-Za-z\u00C0-\u024F]")
_LETTER = re.compile(r"[^\W\d_]", re.UNICODE)

STOPWORDS = frozenset(
    """a an the and or but if of to in on at by for with from as is are was were be been being it
    its this that these those you your we our they their he she his her i me my not no do does did
    so than then there here what why how when who which will would can could should about into over
    more most much many very just also only really all any some such one two three first second
    third next finally part most people never notice thing things get got make made""".split()
    + """и в во не что он на я с со как а то все она так его но да ты к у же вы за бы по только
    ее мне было вот от меня еще нет о из ему теперь когда даже ну вдруг ли если уже или ни быть был
    него до вас нибудь опять уж вам ведь там потом себя ничего ей может они тут где есть надо ней
    для мы тебя их чем была сам чтоб без будто чего раз тоже себе под будет ж тогда кто этот того
    потому этого какой совсем ним здесь этом один почти мой тем чтобы нее сейчас были куда зачем
    всех никогда можно при наконец два об другой хоть после над больше тот через эти нас про всего
    них какая много разве три эту моя впрочем хорошо свою этой перед иногда лучше чуть том нельзя
    такой им более всегда конечно всю между это тема теме""".split()
)


def clean_text(raw: str) -> str:
    """User text made safe to speak and draw: no HTML, no control characters, single spaces."""
    text = html.unescape(_TAG.sub(" ", raw))
    text = unicodedata.normalize("NFC", text)
    text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in text)
    return _SPACE.sub(" ", text).strip()


def speakable(text: str) -> str:
    """Drop what a voice cannot read aloud (emoji, pictographs, stray symbols)."""
    kept = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat.startswith(("L", "N", "Z")) or ch in ".,!?;:'’\"«»“”-–—()…%&+$€₽#@/":
            kept.append(ch)
        else:
            kept.append(" ")
    return _SPACE.sub(" ", "".join(kept)).strip()


def normalise_for_identity(text: str) -> str:
    """Two topics are the same topic when they match ignoring case and white space."""
    return _SPACE.sub(" ", clean_text(text)).strip().casefold()


def split_sentences(text: str) -> list[str]:
    """Sentences in order; a part without letters ("1, 2, 3!") joins the sentence before it."""
    sentences: list[str] = []
    for part in (p.strip() for p in _SENTENCE_END.split(text.strip())):
        if sentences and not has_letters(part):
            sentences[-1] = f"{sentences[-1]} {part}".strip()
        elif part:
            sentences.append(part)
    return [s for s in sentences if words_of(s)]


def words_of(text: str) -> list[str]:
    return _WORD.findall(text)


def has_letters(text: str) -> bool:
    return bool(_LETTER.search(text))


# Letters of Cyrillic alphabets that Russian does not use: the Russian voice would misread a
# topic written with them. Checked in this order (Kazakh and Belarusian also use "і").
_NON_RUSSIAN_CYRILLIC = (
    ("kk", "әғқңөұүһ"),
    ("be", "ў"),
    ("uk", "іїєґ"),
    ("sr", "ђјљњћџ"),
    ("mk", "ѓќѕ"),
)
# Latin-script languages a topic is told apart from English among (a wider set names English
# phrases "Latin" or "Slovene"; this one rejected none of 40 English topics in our tests).
LATIN_SCRIPT_LANGUAGES = (
    "en", "es", "de", "fr", "it", "pt", "nl", "pl", "tr", "cs", "hu", "sv", "ro", "da", "no", "fi",
)  # fmt: skip
# What each code detect_language returns is called, in messages.
LANGUAGE_NAMES = {
    "en": "English", "ru": "Russian",
    "kk": "Kazakh", "be": "Belarusian", "uk": "Ukrainian", "sr": "Serbian", "mk": "Macedonian",
    "es": "Spanish", "de": "German", "fr": "French", "it": "Italian", "pt": "Portuguese",
    "nl": "Dutch", "pl": "Polish", "tr": "Turkish", "cs": "Czech", "hu": "Hungarian",
    "sv": "Swedish", "ro": "Romanian", "da": "Danish", "no": "Norwegian", "fi": "Finnish",
}  # fmt: skip
# A text is named non-English only this surely, and only from three words up: names and
# two-word phrases ("El Niño explained", "Tesla vs Edison") are too short to tell.
FOREIGN_MIN_PROBABILITY = 0.9
FOREIGN_MIN_WORDS = 3


@cache
def _latin_identifier() -> Any:
    """py3langid's model (it ships in the wheel; 0.7 s to load once per process)."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(list(LATIN_SCRIPT_LANGUAGES))
    return identifier


def detect_language(text: str) -> str | None:
    """The language a text is written in, as an ISO 639-1 code: 'ru' or 'en' for those the
    factory speaks, another code ('uk', 'es'...) for one it can name, None for other scripts.

    Words decide between the scripts, so Russian with brand names ("Почему iPhone дороже
    Samsung?") is Russian."""
    letters = len(_LETTER.findall(text))
    cyr = len(_CYRILLIC.findall(text))
    lat = len(_LATIN.findall(text))
    if letters == 0 or (cyr + lat) / letters < 0.5:
        return None
    words = words_of(text)
    cyr_words = sum(1 for w in words if _CYRILLIC.search(w))
    lat_words = sum(1 for w in words if _LATIN.search(w) and not _CYRILLIC.search(w))
    if cyr_words and cyr_words * 2 >= lat_words:
        low = text.lower()
        for code, alphabet in _NON_RUSSIAN_CYRILLIC:
            if any(ch in low for ch in alphabet):
                return code
        return "ru"
    if lat_words >= FOREIGN_MIN_WORDS:
        best, probability = _latin_identifier().classify(text)
        if best != "en" and probability >= FOREIGN_MIN_PROBABILITY:
            return str(best)
    return "en"


def keywords(text: str, limit: int = 3) -> list[str]:
    """The longest distinct content words, in order of first appearance."""
    seen: dict[str, str] = {}
    for word in words_of(text):
        low = word.casefold().strip("'’-")
        if len(low) < 3 or low in STOPWORDS or low.isdigit() or low in seen:
            continue
        seen[low] = word
    ranked = sorted(seen.values(), key=lambda w: (-len(w), list(seen.values()).index(w)))[:limit]
    order = list(seen.values())
    return sorted(ranked, key=order.index)


def shorten(text: str, max_words: int, max_chars: int) -> str:
    """Cut at a word boundary, never inside a word."""
    out: list[str] = []
    for word in text.split():
        candidate = " ".join([*out, word])
        if len(out) >= max_words or len(candidate) > max_chars:
            break
        out.append(word)
    if not out:
        return text[:max_chars]
    return " ".join(out)
