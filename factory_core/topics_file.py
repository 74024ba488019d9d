"""Topic batch files: CSV, plain text or YAML in, validated topic requests and per-row verdicts out."""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterable
from pathlib import PurePath
from typing import Any

import yaml
from pydantic import BaseModel, Field

from factory_core.models import Language, TopicRequest
from factory_core.slugs import channel_slug, topic_key
from factory_core.text import LANGUAGE_NAMES, clean_text, detect_language, has_letters, speakable

MAX_TOPIC_CHARS = 500
MAX_SCRIPT_CHARS = 3000
MAX_ROWS = 1000
MIN_DURATION_S, MAX_DURATION_S = 15, 60
MAX_FILE_BYTES = 2_000_000
SUPPORTED_SUFFIXES = (".csv", ".tsv", ".txt", ".yaml", ".yml", ".json")
# Excel's "CSV" and "Text" exports on Windows are in the ANSI code page (1251 on Russian systems,
# 1252 on English ones), and a Russian Excel separates CSV fields with ';'.
LEGACY_ENCODINGS = ("cp1251", "cp1252")
CSV_DELIMITERS = (",", ";", "\t", "|")
SPREADSHEET_SUFFIXES = (".xlsx", ".xls", ".ods", ".numbers")
CSV_COLUMNS = ("topic", "language", "style", "duration", "script", "narration")
NARRATION_SUFFIXES = (".wav", ".mp3", ".m4a", ".flac", ".ogg")


class TopicFileError(ValueError):
    """The whole file cannot be read; the message names the file and says what to fix."""


class RowVerdict(BaseModel):
    row: int
    topic: str
    status: str  # "accepted" | "duplicate" | "rejected"
    key: str | None = None
    reason: str | None = None


class TopicBatch(BaseModel):
    channel: str
    source_file: str
    accepted: list[TopicRequest]
    known: list[TopicRequest] = Field(
        default_factory=list, description="Rows naming topics the channel already has."
    )
    verdicts: list[RowVerdict]
    encoding: str = Field("utf-8", description="What the file was read as (see LEGACY_ENCODINGS).")

    @property
    def rejected(self) -> list[RowVerdict]:
        return [v for v in self.verdicts if v.status != "accepted"]


def parse_topic_file(
    filename: str,
    content: bytes,
    *,
    channel: str,
    default_duration_s: float = 30.0,
    existing_keys: Iterable[str] = (),
) -> TopicBatch:
    """Validate every row; one bad row never rejects the others."""
    chan = channel_slug(channel)
    name = PurePath(filename).name
    check_file_type(name)
    text, encoding = _decode(name, content)
    raw_rows = _read_rows(name, text)
    existing = set(existing_keys)
    accepted: list[TopicRequest] = []
    known: list[TopicRequest] = []
    verdicts: list[RowVerdict] = []
    for number, row in enumerate(raw_rows, start=1):
        topic_text = clean_text(str(row.get("topic") or ""))
        try:
            request = _validate_row(row, chan, name, default_duration_s)
        except ValueError as exc:
            verdicts.append(
                RowVerdict(row=number, topic=topic_text[:200], status="rejected", reason=str(exc))
            )
            continue
        if request.key in existing:
            if request.key not in {r.key for r in accepted}:
                known.append(request)
            verdicts.append(
                RowVerdict(
                    row=number,
                    topic=request.topic[:200],
                    status="duplicate",
                    key=request.key,
                    reason="the same topic is already in this batch or on this channel",
                )
            )
            continue
        existing.add(request.key)
        accepted.append(request)
        verdicts.append(
            RowVerdict(row=number, topic=request.topic[:200], status="accepted", key=request.key)
        )
    return TopicBatch(
        channel=chan,
        source_file=name,
        accepted=accepted,
        known=known,
        verdicts=verdicts,
        encoding=encoding,
    )


def check_file_type(name: str) -> None:
    """Raise TopicFileError, saying what to do, for a file name that is no topic file."""
    suffix = PurePath(name).suffix.lower()
    if suffix in SPREADSHEET_SUFFIXES:
        raise TopicFileError(
            f"{name}: a spreadsheet, not a text file; save it as CSV (in Excel: File > Save As > "
            "CSV UTF-8) with a 'topic' column"
        )
    if suffix not in SUPPORTED_SUFFIXES:
        raise TopicFileError(
            f"{name}: unsupported file type {suffix or '(none)'}; use .csv or .tsv (a 'topic' "
            "column), .txt (one topic per line), .yaml or .json"
        )


def _decode(name: str, content: bytes) -> tuple[str, str]:
    """The file's text and the encoding it was read in: UTF-8 (a BOM or not), UTF-16 with its
    BOM (Excel's "Unicode text"), else the Windows code page charset-normalizer finds coherent.
    Bytes that are none of these (a picture, a spreadsheet) are a file error."""
    if len(content) > MAX_FILE_BYTES:
        raise TopicFileError(f"{name}: file is larger than {MAX_FILE_BYTES} bytes; split the batch")
    try:
        if content.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return content.decode("utf-16"), "utf-16"
        return content.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError as exc:
        utf_error = exc
    from charset_normalizer import from_bytes  # only for the rare file that is not UTF

    guess = from_bytes(content, cp_isolation=list(LEGACY_ENCODINGS)).best()
    if guess is None or "\x00" in str(guess):
        raise TopicFileError(
            f"{name}: not text in UTF-8, UTF-16 or a Windows code page ({utf_error.reason}); "
            "save it as text (in Excel: CSV UTF-8)"
        )
    return str(guess), guess.encoding


def _read_rows(name: str, text: str) -> list[dict[str, Any]]:
    suffix = PurePath(name).suffix.lower()
    # Excel's "Unicode Text" export is a .txt file of tab-separated columns under a header.
    tabular_txt = suffix == ".txt" and "\t" in text.split("\n", 1)[0] and _delimiter(text) == "\t"
    if suffix in (".csv", ".tsv") or tabular_txt:
        rows = _read_csv(name, text)
    elif suffix == ".txt":
        rows = [
            {"topic": line}
            for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ]
    elif suffix == ".json":
        rows = _read_json(name, text)
    else:
        rows = _read_yaml(name, text)
    if len(rows) > MAX_ROWS:
        raise TopicFileError(f"{name}: {len(rows)} rows; at most {MAX_ROWS} per file, split it")
    return rows


def _delimiter(text: str) -> str:
    """The separator under which the header line names a 'topic' column (a comma if none does,
    so the error shows the header as a comma-separated file would read)."""
    header = text.split("\n", 1)[0].strip("\r")
    for delimiter in CSV_DELIMITERS:
        if "topic" in (f.strip().strip('"').strip().lower() for f in header.split(delimiter)):
            return delimiter
    return ","


def _read_csv(name: str, text: str) -> list[dict[str, Any]]:
    try:
        reader = csv.DictReader(
            io.StringIO(text, newline=""), delimiter=_delimiter(text), strict=True
        )
        fields = [f.strip().lower() for f in (reader.fieldnames or [])]
        if "topic" not in fields:
            raise TopicFileError(
                f"{name}: no 'topic' column in the header (found {fields or 'no header'}); "
                f"the first line must name the columns, e.g. {','.join(CSV_COLUMNS)}"
            )
        rows = []
        for row in reader:
            clean = {(k or "").strip().lower(): v for k, v in row.items() if k is not None}
            if any((v or "").strip() for v in clean.values() if isinstance(v, str)):
                rows.append(clean)
        return rows
    except csv.Error as exc:
        raise TopicFileError(f"{name}: malformed CSV ({exc}); check quotes and separators") from exc


def _read_yaml(name: str, text: str) -> list[dict[str, Any]]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TopicFileError(
            f"{name}: malformed YAML ({exc.__class__.__name__}); fix the syntax"
        ) from exc
    return _rows_of(name, data)


def _read_json(name: str, text: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TopicFileError(
            f"{name}: malformed JSON ({exc.msg} at line {exc.lineno}); fix the syntax"
        ) from exc
    return _rows_of(name, data)


def _rows_of(name: str, data: object) -> list[dict[str, Any]]:
    """Rows from parsed YAML or JSON: a list of topics (strings or mappings), or 'topics:'."""
    if isinstance(data, dict) and "topics" in data:
        data = data["topics"]
    if not isinstance(data, list):
        raise TopicFileError(
            f"{name}: expected a list of topics (or 'topics:' with a list), got {type(data).__name__}"
        )
    rows: list[dict[str, Any]] = []
    for item in data:
        if isinstance(item, dict):
            rows.append({str(k).lower(): v for k, v in item.items()})
        else:
            rows.append({"topic": "" if item is None else str(item)})
    return rows


def _validate_row(
    row: dict[str, Any],
    channel: str,
    source_file: str,
    default_duration_s: float,
) -> TopicRequest:
    topic = clean_text(str(row.get("topic") or ""))
    if not topic:
        raise ValueError("topic is empty: write the topic text in the 'topic' field")
    if len(topic) > MAX_TOPIC_CHARS:
        raise ValueError(
            f"topic is {len(topic)} characters long; keep it under {MAX_TOPIC_CHARS} "
            "(put a long text in the 'script' column instead)"
        )
    if not has_letters(speakable(topic)):
        raise ValueError("topic has no words to narrate (only symbols or emoji); write it in words")

    script_raw = row.get("script")
    script = clean_text(str(script_raw)) if script_raw not in (None, "") else None
    if script is not None:
        if len(script) > MAX_SCRIPT_CHARS:
            raise ValueError(f"script is longer than {MAX_SCRIPT_CHARS} characters; shorten it")
        if not has_letters(speakable(script)):
            raise ValueError("script has no words to narrate; write it in words or leave it empty")

    narration = _narration_file(row.get("narration"))
    language = _language(row.get("language"), script or topic)
    duration = _duration(row.get("duration"), default_duration_s)
    style = clean_text(str(row.get("style") or "")) or None
    if style and len(style) > 40:
        raise ValueError("style is longer than 40 characters; use a short name like 'explainer'")

    return TopicRequest(
        key=topic_key(channel, topic),
        channel=channel,
        topic=topic,
        language=language,
        style=style,
        duration_s=duration,
        script=script,
        narration_file=narration,
        source_file=source_file,
    )


def _narration_file(value: Any) -> str | None:
    """A file name only: recordings live in the channel's narration/ folder, never elsewhere."""
    name = clean_text(str(value or ""))
    if not name:
        return None
    if "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(
            f"narration {name!r} must be a file name in the channel's narration/ folder, "
            "not a path; put the recording there and give its name"
        )
    if PurePath(name).suffix.lower() not in NARRATION_SUFFIXES:
        raise ValueError(
            f"narration {name!r} is not a supported recording; use one of "
            f"{', '.join(NARRATION_SUFFIXES)}"
        )
    return name


_LANGUAGE_ALIASES = {
    "en": Language.EN,
    "eng": Language.EN,
    "english": Language.EN,
    "en-us": Language.EN,
    "en-gb": Language.EN,
    "ru": Language.RU,
    "rus": Language.RU,
    "russian": Language.RU,
    "ru-ru": Language.RU,
    "русский": Language.RU,
}


def _language(value: Any, text: str) -> Language:
    given = clean_text(str(value or "")).lower()
    if given:
        if given not in _LANGUAGE_ALIASES:
            raise ValueError(f"language {given!r} is not supported; use 'en' or 'ru'")
        return _LANGUAGE_ALIASES[given]
    detected = detect_language(speakable(text))
    if detected not in ("en", "ru"):
        found = f"reads as {LANGUAGE_NAMES.get(detected, detected)}, " if detected else "is "
        raise ValueError(
            f"topic {found}not in English or Russian, which the voices speak; translate it, "
            "or set the 'language' column to 'en' or 'ru' to narrate it as it is"
        )
    return Language(detected)


def _duration(value: Any, default: float) -> float:
    if value in (None, ""):
        return default
    try:
        seconds = float(str(value).strip().rstrip("s"))
    except ValueError:
        raise ValueError(f"duration {value!r} is not a number of seconds, e.g. 30") from None
    if not MIN_DURATION_S <= seconds <= MAX_DURATION_S:
        raise ValueError(
            f"duration {seconds:g} s is out of range; use {MIN_DURATION_S} to {MAX_DURATION_S} seconds"
        )
    return seconds
