"""Which language a topic is in (factory_core.text.detect_language), and what the intake does
with one the voices do not speak.

Covers: Russian with Latin brand names stays Russian; Cyrillic alphabets other than Russian's
are named; Latin-script sentences in other languages are named (py3langid's model from its
wheel); English with foreign names, and phrases too short to tell, stay English; a named
language is rejected with what to do, and an explicit 'language' column overrides detection.
"""

from __future__ import annotations

import pytest

from factory_core.models import Language
from factory_core.text import detect_language
from factory_core.topics_file import parse_topic_file


@pytest.mark.parametrize(
    "text",
    [
        "Почему небо голубое",
        "Почему iPhone дороже Samsung?",
        "Топ 5 фактов о NASA и SpaceX",
        "Как YouTube Shorts считает просмотры",
    ],
)
def test_russian_with_latin_brand_names_is_russian(text: str) -> None:
    assert detect_language(text) == "ru"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Київ: історія міста", "uk"),
        ("Неліктен мысықтар пырылдайды?", "kk"),
        ("Чаму коты мурлычуць? Бо ім добра ў хаце", "be"),
    ],
)
def test_other_cyrillic_alphabets_are_named(text: str, code: str) -> None:
    assert detect_language(text) == code


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("¿Por qué los gatos ronronean?", "es"),
        ("Warum schnurren Katzen?", "de"),
        ("Pourquoi les chats ronronnent-ils ?", "fr"),
        ("Come fanno i gatti a fare le fusa", "it"),
        ("Dlaczego koty mruczą?", "pl"),
        ("Kedi neden mırlar?", "tr"),
        ("Die Geschichte des Buchdrucks", "de"),
    ],
)
def test_latin_script_sentences_in_other_languages_are_named(text: str, code: str) -> None:
    assert detect_language(text) == code


@pytest.mark.parametrize(
    "text",
    [
        "Why do cats sleep so much?",
        "How the Roman aqueducts carried water, without pumps",
        "Tiny habits, huge results: the 1% rule",
        "Why bees dance",
        "El Niño explained",
        "La Casa de Papel ending explained",
        "Die Hard: the best action movie?",
        "Café culture in Paris",
        "Is Zürich expensive?",
        "Jalapeño health benefits",
        "Quantum computing",
        "Tesla vs Edison",
        "Feng shui basics",
        "Marie Curie's discoveries",
        "Why do cats purr? Почему?",
        "iPhone 17 vs Samsung S26",
        "DROP TABLE topics;",
    ],
)
def test_english_with_foreign_names_and_short_phrases_stays_english(text: str) -> None:
    assert detect_language(text) == "en"


def test_other_scripts_are_not_named() -> None:
    assert detect_language("猫为什么会发出呼噜声 iPhone") is None
    assert detect_language("12345 !!!") is None


def test_a_topic_in_a_named_language_is_rejected_with_what_to_do() -> None:
    batch = parse_topic_file(
        "t.csv",
        b"topic,language\nWarum schnurren Katzen?,\nWarum schnurren Katzen,en\n",
        channel="demo",
    )
    [rejected] = batch.rejected
    assert rejected.reason is not None
    assert rejected.reason.startswith("topic reads as German, not in English or Russian")
    assert "set the 'language' column to 'en' or 'ru'" in rejected.reason
    # The column is the user's word: the same topic with 'en' is narrated as it is.
    [accepted] = batch.accepted
    assert accepted.language is Language.EN
