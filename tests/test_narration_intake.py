"""A topic row may name the user's own recording (`narration` column): the name is checked when
the file is read, and the recording must be in the channel's narration/ folder."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from factory_core.topics_file import parse_topic_file
from factory_resources.store import MediaStore
from factory_sensors.intake import read_batch

CSV = (
    "topic,narration\n"
    "My morning routine,routine.wav\n"
    "A topic without a recording,\n"
    "A recording that is missing,missing.mp3\n"
    "A path is refused,../../etc/passwd.wav\n"
    "A document is refused,notes.docx\n"
)


def test_narration_names_are_validated_per_row() -> None:
    batch = parse_topic_file("topics.csv", CSV.encode(), channel="demo")
    by_topic = {v.topic: v for v in batch.verdicts}
    assert by_topic["My morning routine"].status == "accepted"
    assert by_topic["A topic without a recording"].status == "accepted"
    assert by_topic["A recording that is missing"].status == "accepted"  # checked at intake
    path = by_topic["A path is refused"]
    assert path.status == "rejected" and "must be a file name" in (path.reason or "")
    doc = by_topic["A document is refused"]
    assert doc.status == "rejected" and ".wav" in (doc.reason or "")
    requests = {r.topic: r for r in batch.accepted}
    assert requests["My morning routine"].narration_file == "routine.wav"
    assert requests["A topic without a recording"].narration_file is None


def test_intake_rejects_a_row_whose_recording_is_not_in_the_channel_folder(
    tmp_path: Path,
) -> None:
    store = MediaStore(home=str(tmp_path / "home"))
    folder = store.channel_dir("demo") / "narration"
    folder.mkdir(parents=True)
    (folder / "routine.wav").write_bytes(b"RIFF")  # only its presence matters here
    topics = tmp_path / "topics.csv"
    topics.write_text(CSV, encoding="utf-8")
    with dg.instance_for_test() as instance:
        batch = read_batch(topics, "demo", store, instance)
    accepted = {r.topic for r in batch.accepted}
    assert accepted == {"My morning routine", "A topic without a recording"}
    missing = next(v for v in batch.verdicts if v.topic == "A recording that is missing")
    assert missing.status == "rejected"
    assert "missing.mp3" in (missing.reason or "") and str(folder) in (missing.reason or "")
    # the rejected row was not recorded; the accepted ones were
    assert not store.topic_dir(missing.key or "x").joinpath("request.json").exists()
    for request in batch.accepted:
        assert (store.topic_dir(request.key) / "request.json").exists()


@pytest.mark.parametrize("name", ["", "  "])
def test_an_empty_narration_cell_means_a_synthetic_voice(name: str) -> None:
    batch = parse_topic_file("t.csv", f"topic,narration\nTides,{name}\n".encode(), channel="demo")
    assert batch.accepted[0].narration_file is None
