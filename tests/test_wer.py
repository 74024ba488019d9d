"""Word error rate, its normalisation, and word timings from transcripts (pure)."""

from __future__ import annotations

import pytest

from factory_core.models import Language
from factory_core.wer import (
    TranscribedWord,
    Transcript,
    judge_narration,
    matched_words,
    normalise_words,
    number_words,
    sentence_spans,
    transcript_word_timings,
    without_loops,
    word_error_rate,
)


def test_identical_text_scores_zero_whatever_the_punctuation_and_case() -> None:
    report = word_error_rate(
        "Octopuses have THREE hearts — and «blue» blood…",
        "octopuses have three hearts, and blue blood.",
        Language.EN,
    )
    assert report.wer == 0.0 and report.cer == 0.0
    assert report.hits == report.reference_words == 7
    assert report.errors == []


def test_counts_substitutions_deletions_and_insertions() -> None:
    report = word_error_rate(
        "one two three four five six", "one too three five six seven", Language.EN
    )
    assert (report.substitutions, report.deletions, report.insertions) == (1, 1, 1)
    assert report.wer == pytest.approx(3 / 6, abs=1e-4)
    kinds = {(e.kind, e.reference, e.hypothesis) for e in report.errors}
    assert kinds == {
        ("substitution", "two", "too"),
        ("deletion", "four", ""),
        ("insertion", "", "seven"),
    }
    assert report.errors[0].position == 1


def test_worst_words_lists_the_most_frequent_differences_first() -> None:
    report = word_error_rate(
        "the cat sat. the cat ran. the cat ate. a dog", "the bat sat. the bat ran. the bat ate.",
        Language.EN,
    )  # fmt: skip
    worst = report.worst_words()
    assert worst[0] == "cat → bat ×3"
    assert "a dog → ∅" in worst


def test_digits_and_number_words_compare_equal_in_both_languages() -> None:
    assert word_error_rate("It has 3 hearts", "it has three hearts", Language.EN).wer == 0.0
    assert word_error_rate("about 1,250 people", "About 1250 people.", Language.EN).wer == 0.0
    assert word_error_rate("the 21st century", "the twenty first century", "en").wer == 0.0
    assert word_error_rate("у него 3 сердца", "У него три сердца.", Language.RU).wer == 0.0
    assert word_error_rate("ровно 1\u00a0000 шагов", "ровно 1000 шагов", Language.RU).wer == 0.0
    assert word_error_rate("рост 3,5%", "рост три запятая пять процентов", Language.RU).wer == 0.0


def test_russian_yo_hyphens_and_apostrophes_are_normalised() -> None:
    assert normalise_words("Ещё «ёжик» по-русски", Language.RU) == [
        "еще", "ежик", "по", "русски",
    ]  # fmt: skip
    assert normalise_words("It’s well-known", Language.EN) == ["it's", "well", "known"]
    assert word_error_rate("Всё ещё", "все еще", Language.RU).wer == 0.0


@pytest.mark.parametrize(
    ("n", "en", "ru"),
    [
        (0, "zero", "ноль"),
        (13, "thirteen", "тринадцать"),
        (21, "twenty one", "двадцать один"),
        (100, "one hundred", "сто"),
        (1000, "one thousand", "тысяча"),
        (2021, "two thousand twenty one", "две тысячи двадцать один"),
        (5000, "five thousand", "пять тысяч"),
        (12345, "twelve thousand three hundred forty five", "двенадцать тысяч триста сорок пять"),
        (2_000_001, "two million one", "два миллиона один"),
    ],
)
def test_number_words(n: int, en: str, ru: str) -> None:
    assert " ".join(number_words(n, Language.EN)) == en
    assert " ".join(number_words(n, Language.RU)) == ru


def test_empty_sides() -> None:
    assert word_error_rate("", "", Language.EN).wer == 0.0
    nothing_heard = word_error_rate("two words", "", Language.EN)
    assert nothing_heard.wer == 1.0 and nothing_heard.deletions == 2
    nothing_said = word_error_rate("…", "thanks for watching", Language.EN)
    assert nothing_said.wer == 1.0 and nothing_said.insertions == 3


def test_judge_uses_wer_for_english_and_cer_for_russian() -> None:
    good_en = word_error_rate("a b c d e f g h", "a b c d e f g x", Language.EN)
    assert judge_narration(good_en, Language.EN).passed
    bad_en = word_error_rate("a b c d", "a x y z", Language.EN)
    verdict = judge_narration(bad_en, Language.EN)
    assert not verdict.passed and verdict.summary == "WER 0.750 > 0.25"
    # A typical espeak + whisper-base Russian mishearing: most words wrong by a letter or two.
    ru = word_error_rate(
        "Вот что многие упускают. Начнём с основ.", "Вот, что многие пускают, начнем со основ.",
        Language.RU,
    )  # fmt: skip
    assert ru.wer > 0.25
    ru_verdict = judge_narration(ru, Language.RU)
    assert ru_verdict.metric == "cer" and ru_verdict.passed


def test_matched_words_pairs_display_tokens_across_spellings() -> None:
    reference = ["Octopuses", "have", "3", "hearts.", "Wow!"]
    heard = ["Ocupuses", "have", "three", "hearts", "—", "wow"]
    assert matched_words(reference, heard, Language.EN) == [(1, 1), (2, 2), (3, 3), (4, 5)]


def _transcript(text: str, words: list[str]) -> Transcript:
    timed = [TranscribedWord(word=w, start=i * 0.5, end=i * 0.5 + 0.4) for i, w in enumerate(words)]
    return Transcript(
        text=text, language=Language.EN, duration_s=len(words) * 0.5, words=timed,
        provider="test", model="test",
    )  # fmt: skip


def test_word_timings_from_bare_api_words_take_punctuation_and_sentences_from_the_text() -> None:
    transcript = _transcript(
        "Octopuses have three hearts. Two pump blood to the gills! Why?",
        [
            "Octopuses",
            "have",
            "three",
            "hearts",
            "Two",
            "pump",
            "blood",
            "to",
            "the",
            "gills",
            "Why",
        ],
    )
    timings = transcript_word_timings(transcript)
    assert [t.word for t in timings] == [
        "Octopuses", "have", "three", "hearts.", "Two", "pump", "blood", "to", "the", "gills!",
        "Why?",
    ]  # fmt: skip
    assert [t.sentence_index for t in timings] == [0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 2]
    assert timings[3].start == 1.5 and timings[3].end == pytest.approx(1.9)
    spans = sentence_spans(timings)
    assert [s.text for s in spans] == [
        "Octopuses have three hearts.", "Two pump blood to the gills!", "Why?",
    ]  # fmt: skip
    assert spans[1].start == 2.0 and spans[1].end == pytest.approx(4.9)


def test_word_timings_from_local_words_with_punctuation_and_unknown_words() -> None:
    # Local whisper keeps punctuation on words; a word missing from the text keeps its spelling
    # and its sentence; a lone dash is not a word.
    transcript = _transcript(
        "Hello, world. This is «it».", ["Hello,", "world.", "-", "This", "iz", "it»."]
    )
    timings = transcript_word_timings(transcript)
    assert [(t.word, t.sentence_index) for t in timings] == [
        ("Hello,", 0), ("world.", 0), ("This", 1), ("iz", 1), ("«it».", 1),
    ]  # fmt: skip


def test_word_timings_break_sentences_on_terminal_punctuation_even_off_text() -> None:
    # "uno." is not in the text, so the text cannot place it; its own full stop still counts.
    transcript = _transcript("one two", ["uno.", "two"])
    timings = transcript_word_timings(transcript)
    assert [(t.word, t.sentence_index) for t in timings] == [("uno.", 0), ("two", 1)]


def test_decoder_loops_are_cut_to_one_copy_in_text_and_words() -> None:
    looped = _transcript(
        "Спросите, кому это выгодно, и, и, и, и, и, и. Майти-ти-ти-ти-ха, пи-о-пи-о-пи-о-пи-о-",
        ["Спросите,", "кому", "это", "выгодно,", "и,", "и,", "и,", "и,", "и."],
    )
    clean = without_loops(looped)
    assert clean.text == "Спросите, кому это выгодно, и, Майти-ти-ха, пи-о-"
    assert [w.word for w in clean.words] == ["Спросите,", "кому", "это", "выгодно,", "и,"]
    phrase = _transcript("10 лет с нами, 10 лет с нами, 10 лет с нами, конец", [])
    assert without_loops(phrase).text == "10 лет с нами, конец"


def test_real_repetition_is_not_a_loop() -> None:
    said = _transcript(
        "Снова и снова, again and again. Ha ha! Very, very good. Кто-то по-русски.",
        ["Снова", "и", "снова,", "again", "and", "again."],
    )
    assert without_loops(said) is said
