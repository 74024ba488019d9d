"""Topic batch files (factory_core.topics_file.parse_topic_file): CSV, TXT and YAML.

Covers: reading each format with its optional columns, per-row validation with a clear reason,
duplicate detection (within the file and against keys already on the channel), isolation of bad
rows, and whole-file errors that name the file.

Deliberately does not touch the file system or Dagster: every file is an in-memory `bytes`
value with a made-up name; nothing is registered as a partition.
"""

from __future__ import annotations

import pytest

from factory_core.models import Language
from factory_core.slugs import topic_key
from factory_core.topics_file import (
    MAX_DURATION_S,
    MAX_TOPIC_CHARS,
    MIN_DURATION_S,
    RowVerdict,
    TopicBatch,
    TopicFileError,
    parse_topic_file,
)


def parse(name: str, text: str | bytes, **kwargs: object) -> TopicBatch:
    content = text.encode("utf-8") if isinstance(text, str) else text
    return parse_topic_file(name, content, channel="demo", **kwargs)  # type: ignore[arg-type]


def only_verdict(batch: TopicBatch) -> RowVerdict:
    assert len(batch.verdicts) == 1, batch.verdicts
    return batch.verdicts[0]


# --- CSV -----------------------------------------------------------------------------------------

CSV_FULL = (
    "topic,language,style,duration,script\n"
    '"Why cats purr, and ""why"" we love it\nso much",en,story,45,\n'
    "Почему небо голубое,,,,\n"
    'Black holes,,,20s,"My own script. Second sentence, with a comma!"\n'
    "Plain topic,,,,\n"
)


def test_csv_reads_all_columns() -> None:
    batch = parse("batch.csv", CSV_FULL)
    assert batch.channel == "demo"
    assert batch.source_file == "batch.csv"
    assert [v.status for v in batch.verdicts] == ["accepted"] * 4
    cats, sky, holes, plain = batch.accepted

    # commas, doubled quotes and an embedded newline survive as one cleaned topic
    assert cats.topic == 'Why cats purr, and "why" we love it so much'
    assert cats.language is Language.EN
    assert cats.style == "story"
    assert cats.duration_s == 45.0
    assert cats.script is None
    assert cats.key == topic_key("demo", cats.topic)
    assert cats.channel == "demo"
    assert cats.source_file == "batch.csv"

    assert sky.language is Language.RU  # detected from the Cyrillic text
    assert sky.duration_s == 30.0  # the default
    assert sky.style is None  # no style given: the channel's style applies

    assert holes.duration_s == 20.0  # "20s" is read as seconds
    assert holes.script == "My own script. Second sentence, with a comma!"

    assert plain.topic == "Plain topic"
    assert plain.language is Language.EN


def test_csv_with_only_the_topic_column() -> None:
    batch = parse("t.csv", "topic\nFirst\nSecond\n")
    assert [r.topic for r in batch.accepted] == ["First", "Second"]
    assert all(r.language is Language.EN and r.duration_s == 30.0 for r in batch.accepted)


def test_csv_header_is_case_and_space_insensitive_and_a_bom_is_ignored() -> None:
    content = "\ufeff Topic , Language \nBlack holes,ru\n".encode()
    batch = parse("excel.csv", content)
    (request,) = batch.accepted
    assert request.topic == "Black holes"
    assert request.language is Language.RU


def test_csv_default_duration_is_used_when_the_column_is_empty() -> None:
    batch = parse("t.csv", "topic,duration\nA topic,\n", default_duration_s=42.0)
    assert batch.accepted[0].duration_s == 42.0


def test_csv_blank_lines_are_skipped() -> None:
    batch = parse("t.csv", "topic,language\nFirst,en\n\n,\nSecond,en\n")
    assert [r.topic for r in batch.accepted] == ["First", "Second"]
    assert len(batch.verdicts) == 2


@pytest.mark.parametrize("alias", ["en", "EN", "eng", "English", "en-US", "en-gb"])
def test_csv_english_language_aliases(alias: str) -> None:
    batch = parse("t.csv", f"topic,language\nBlack holes,{alias}\n")
    assert batch.accepted[0].language is Language.EN


@pytest.mark.parametrize("alias", ["ru", "RU", "rus", "Russian", "ru-RU", "русский"])
def test_csv_russian_language_aliases(alias: str) -> None:
    batch = parse("t.csv", f"topic,language\nЧёрные дыры,{alias}\n")
    assert batch.accepted[0].language is Language.RU


# --- TXT -----------------------------------------------------------------------------------------


def test_txt_one_topic_per_line_skipping_blank_lines_and_comments() -> None:
    text = (
        "# my batch for this week\n"
        "\n"
        "First topic\n"
        "   \n"
        "   # an indented comment\n"
        "Second topic\r\n"
        "Почему небо голубое\n"
        "Topic with a # inside\n"
    )
    batch = parse("week.txt", text)
    assert [r.topic for r in batch.accepted] == [
        "First topic",
        "Second topic",
        "Почему небо голубое",
        "Topic with a # inside",
    ]
    assert [v.row for v in batch.verdicts] == [1, 2, 3, 4]
    assert batch.accepted[2].language is Language.RU
    assert batch.accepted[0].language is Language.EN


# --- YAML ----------------------------------------------------------------------------------------


def test_yaml_list_of_strings() -> None:
    batch = parse("b.yaml", "- One topic\n- Another topic\n")
    assert [r.topic for r in batch.accepted] == ["One topic", "Another topic"]


def test_yaml_list_of_mappings_with_optional_fields() -> None:
    text = (
        "- topic: One topic\n"
        "  language: ru\n"
        "  duration: 15\n"
        "  style: story\n"
        "- Topic: Два слова\n"
        "- topic: Three\n"
        "  script: Hi there. Bye now.\n"
    )
    batch = parse("b.yml", text)
    one, two, three = batch.accepted
    assert (one.topic, one.language, one.duration_s, one.style) == (
        "One topic",
        Language.RU,
        15.0,
        "story",
    )
    assert (two.topic, two.language) == ("Два слова", Language.RU)
    assert three.script == "Hi there. Bye now."


def test_yaml_topics_key() -> None:
    text = "topics:\n  - Alpha topic\n  - topic: Beta topic\n    style: story\n"
    batch = parse("b.yaml", text)
    assert [(r.topic, r.style) for r in batch.accepted] == [
        ("Alpha topic", None),
        ("Beta topic", "story"),
    ]


# --- per-row rejections --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "reason_fragment"),
    [
        (",en,,,", "topic is empty"),
        ("🎉🎉🎉,,,,", "no words to narrate"),
        ("★ ✓ ☺,,,,", "no words to narrate"),
        (f"{'a' * (MAX_TOPIC_CHARS + 1)},,,,", f"under {MAX_TOPIC_CHARS}"),
        ("Topic in German,de,,,", "'de' is not supported"),
        ("Too short,,,5,", "out of range"),
        (f"Just too short,,,{MIN_DURATION_S - 0.5},", "out of range"),
        (f"Just too long,,,{MAX_DURATION_S + 0.5},", "out of range"),
        ("Too long,,,600,", "out of range"),
        ("Not finite,,,nan,", "out of range"),
        ("Negative,,,-30,", "out of range"),
        ("Not a number,,,abc,", "not a number"),
        ("Half a minute,,,thirty,", "not a number"),
        ("太阳为什么是热的,,,,", "not in English or Russian"),
        ("Long style,,{},,".format("s" * 41), "style is longer"),
        ("Bad script,,,,🎉🎉", "script has no words"),
    ],
)
def test_csv_row_rejections_give_a_clear_reason(row: str, reason_fragment: str) -> None:
    batch = parse("t.csv", f"topic,language,style,duration,script\n{row}\n")
    verdict = only_verdict(batch)
    assert verdict.status == "rejected"
    assert verdict.key is None
    assert verdict.reason is not None
    assert reason_fragment in verdict.reason
    assert batch.accepted == []


def test_topic_of_exactly_the_maximum_length_is_accepted() -> None:
    topic = ("word " * 200)[:MAX_TOPIC_CHARS].strip() + "s"
    assert len(topic) <= MAX_TOPIC_CHARS
    batch = parse("t.txt", topic + "\n")
    assert only_verdict(batch).status == "accepted"


def test_over_long_topic_reports_its_length() -> None:
    batch = parse("t.txt", "b" * 600 + "\n")
    verdict = only_verdict(batch)
    assert verdict.status == "rejected"
    assert "600 characters" in (verdict.reason or "")
    assert len(verdict.topic) <= 200  # the verdict echoes a shortened topic


def test_chinese_topic_with_explicit_language_is_accepted() -> None:
    batch = parse("t.csv", "topic,language\n太阳为什么是热的,en\n")
    assert only_verdict(batch).status == "accepted"


@pytest.mark.parametrize(
    "duration", [str(MIN_DURATION_S), str(MAX_DURATION_S), "30.5", "45s", " 20 "]
)
def test_durations_in_range_are_accepted(duration: str) -> None:
    batch = parse("t.csv", f'topic,duration\nA topic,"{duration}"\n')
    assert only_verdict(batch).status == "accepted"
    assert batch.accepted[0].duration_s == float(duration.strip().rstrip("s"))


@pytest.mark.parametrize(("item", "reason"), [("''", "topic is empty"), ("null", "topic is empty")])
def test_yaml_empty_items_are_rejected(item: str, reason: str) -> None:
    batch = parse("b.yaml", f"- {item}\n- Fine topic\n")
    assert [v.status for v in batch.verdicts] == ["rejected", "accepted"]
    assert reason in (batch.verdicts[0].reason or "")


def test_yaml_mapping_without_topic_is_rejected() -> None:
    batch = parse("b.yaml", "- language: en\n  duration: 20\n")
    verdict = only_verdict(batch)
    assert verdict.status == "rejected"
    assert "topic is empty" in (verdict.reason or "")


def test_html_in_a_topic_is_cleaned() -> None:
    batch = parse("t.txt", "<b>Black</b> holes &amp; time\n")
    assert batch.accepted[0].topic == "Black holes & time"


def test_one_bad_row_does_not_affect_the_others() -> None:
    text = (
        "topic,language,duration\n"
        "Good one,en,20\n"
        "Bad language,de,20\n"
        "Good two,ru,\n"
        "🎉,,\n"
        "Bad duration,,99\n"
        "Good three,,\n"
    )
    batch = parse("mixed.csv", text)
    assert [v.status for v in batch.verdicts] == [
        "accepted",
        "rejected",
        "accepted",
        "rejected",
        "rejected",
        "accepted",
    ]
    assert [v.row for v in batch.verdicts] == [1, 2, 3, 4, 5, 6]
    assert [r.topic for r in batch.accepted] == ["Good one", "Good two", "Good three"]
    assert [r.language for r in batch.accepted] == [Language.EN, Language.RU, Language.EN]
    assert [v.row for v in batch.rejected] == [2, 4, 5]
    for verdict in batch.verdicts:
        if verdict.status == "accepted":
            assert verdict.key is not None and verdict.reason is None


# --- duplicates ----------------------------------------------------------------------------------


def test_duplicates_within_a_file_ignore_case_and_white_space() -> None:
    text = "Black holes\nBLACK   HOLES\n  black holes  \nWhite holes\nblack\tholes\n"
    batch = parse("t.txt", text)
    assert [v.status for v in batch.verdicts] == [
        "accepted",
        "duplicate",
        "duplicate",
        "accepted",
        "duplicate",
    ]
    first_key = batch.verdicts[0].key
    assert first_key is not None
    assert all(v.key == first_key for v in batch.verdicts if v.status == "duplicate")
    assert [r.topic for r in batch.accepted] == ["Black holes", "White holes"]
    assert all("already" in (v.reason or "") for v in batch.verdicts if v.status == "duplicate")


def test_duplicates_against_existing_keys_on_the_channel() -> None:
    existing = [topic_key("demo", "Black holes")]
    batch = parse("t.txt", "black holes\nNew topic\n", existing_keys=existing)
    assert [v.status for v in batch.verdicts] == ["duplicate", "accepted"]
    assert batch.verdicts[0].key == existing[0]
    assert [r.topic for r in batch.accepted] == ["New topic"]


def test_existing_keys_of_another_channel_are_not_duplicates() -> None:
    batch = parse("t.txt", "Black holes\n", existing_keys=[topic_key("other", "Black holes")])
    assert only_verdict(batch).status == "accepted"


def test_duplicates_across_formats_use_the_same_key() -> None:
    from_txt = parse("a.txt", "Black holes\n").accepted[0].key
    from_yaml = parse("b.yaml", "- black HOLES\n").accepted[0].key
    from_csv = parse("c.csv", "topic\n  Black holes\n").accepted[0].key
    assert from_txt == from_yaml == from_csv


def test_a_rejected_row_does_not_reserve_its_key() -> None:
    batch = parse("t.csv", "topic,language\nBlack holes,de\nBlack holes,en\n")
    assert [v.status for v in batch.verdicts] == ["rejected", "accepted"]


# --- whole-file errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("nocol.csv", b"title,language\nfoo,en\n", "no 'topic' column"),
        ("empty.csv", b"", "no 'topic' column"),
        ("quote.csv", b'topic\n"unclosed\n', "malformed CSV"),
        ("bad.yaml", b"topics: [a, b\n", "malformed YAML"),
        ("tabs.yml", b"- a\n\t- b: [\n", "malformed YAML"),
        ("scalar.yaml", b"just a string", "expected a list"),
        ("junk.csv", bytes(range(256)) * 4, "not text in UTF-8, UTF-16 or a Windows code page"),
        ("photo.txt", b"\x89PNG\r\n\x1a\n" + bytes(range(200)), "not text"),
        ("bad.json", b'[{"topic": "a",}]', "malformed JSON"),
        ("scalar.json", b'"just a string"', "expected a list"),
        ("notes.docx", b"PK\x03\x04", "unsupported file type .docx"),
        ("topics.xlsx", b"PK\x03\x04", "save it as CSV (in Excel: File > Save As > CSV UTF-8)"),
        ("noext", b"Black holes\n", "unsupported file type"),
    ],
)
def test_whole_file_errors_name_the_file(name: str, content: bytes, fragment: str) -> None:
    with pytest.raises(TopicFileError) as info:
        parse_topic_file(name, content, channel="demo")
    message = str(info.value)
    assert message.startswith(f"{name}:")
    assert fragment in message


# --- What spreadsheets and other tools write ------------------------------------------------------


def test_a_russian_excel_csv_in_windows_1251_with_semicolons_is_read() -> None:
    text = 'topic;language;duration\r\nПочему небо голубое;ru;30\r\n"Кошки; собаки";;25\r\n'
    batch = parse("темы.csv", text.encode("cp1251"))
    assert batch.encoding == "cp1251"
    assert [r.topic for r in batch.accepted] == ["Почему небо голубое", "Кошки; собаки"]
    assert [r.duration_s for r in batch.accepted] == [30, 25]


def test_an_english_windows_1252_file_keeps_its_accents_and_quotes() -> None:
    batch = parse(
        "topics.txt", "Café culture \u2014 the \u201cthird place\u201d\n".encode("cp1252")
    )
    assert batch.encoding in ("cp1252", "cp1251")  # the same characters in both
    assert batch.accepted[0].topic == "Café culture \u2014 the \u201cthird place\u201d"


def test_excel_unicode_text_utf16_tab_separated_with_a_header_is_read_as_columns() -> None:
    text = "topic\tlanguage\tduration\r\nWhy cats purr\ten\t20\r\nПочему небо голубое\t\t\r\n"
    batch = parse("export.txt", text.encode("utf-16"))
    assert batch.encoding == "utf-16"
    assert [(r.topic, r.duration_s) for r in batch.accepted] == [
        ("Why cats purr", 20),
        ("Почему небо голубое", 30),
    ]
    assert batch.accepted[1].language == Language.RU


def test_a_txt_topic_with_a_tab_but_no_header_stays_one_topic_per_line() -> None:
    batch = parse("t.txt", "Tides\tand the moon\nBlack holes\n")
    assert [r.topic for r in batch.accepted] == ["Tides and the moon", "Black holes"]


def test_tsv_reads_its_columns() -> None:
    batch = parse("t.tsv", "Topic\tDuration\nHow tides work\t45\n")
    assert [(r.topic, r.duration_s) for r in batch.accepted] == [("How tides work", 45)]
    assert batch.encoding == "utf-8"


def test_json_list_of_strings_and_mappings_and_the_topics_key() -> None:
    listed = parse("a.json", '["How tides work", {"topic": "Black holes", "duration": 20}]')
    assert [(r.topic, r.duration_s) for r in listed.accepted] == [
        ("How tides work", 30),
        ("Black holes", 20),
    ]
    keyed = parse("b.json", '{"topics": [{"topic": "Почему небо голубое"}]}')
    assert keyed.accepted[0].language == Language.RU


def test_file_error_names_the_file_not_its_folder() -> None:
    with pytest.raises(TopicFileError, match=r"^notes\.docx:"):
        parse_topic_file("/home/me/inbox/notes.docx", b"PK", channel="demo")


def test_topic_file_error_is_a_value_error() -> None:
    assert issubclass(TopicFileError, ValueError)


def test_too_many_rows_is_a_file_error() -> None:
    text = "".join(f"Topic {i}\n" for i in range(1001))
    with pytest.raises(TopicFileError, match=r"^many\.txt: 1001 rows"):
        parse("many.txt", text)


def test_suffix_is_case_insensitive() -> None:
    assert parse("BATCH.TXT", "Black holes\n").accepted[0].topic == "Black holes"
