"""Text helpers shared by the planners: cleaning user text, sentences, words, keywords."""

from __future__ import annotations

import html
import re
import unicodedata

_TAG = re.compile(r"<[^>]{0,200}>")
_SPACE = re.compile(r"\s+")
# Sentence end: terminal punctuation (optionally closed by quotes/brackets) and a space.
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"»”')\]]*\s+")
_WORD = re.compile(r"[\w][\w'’\-]*", re.UNICODE)
_CYRILLIC = re.compile(r"[\u0400-\u04FF]")
_LATIN = re.compile(r"[A-Za-z]")
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


def detect_language(text: str) -> str | None:
    """'ru' for mostly Cyrillic text, 'en' for mostly Latin, None for other scripts."""
    cyr = len(_CYRILLIC.findall(text))
    lat = len(_LATIN.findall(text))
    letters = len(_LETTER.findall(text))
    if letters == 0:
        return None
    if cyr >= lat and cyr / letters >= 0.5:
        return "ru"
    if lat / letters >= 0.5:
        return "en"
    return None


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
