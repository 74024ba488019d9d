"""topic_batch_sensor: files in the inbox become partitions and runs, exactly once.

Covers: first tick (partitions, run requests with run keys, processed/ report with per-row
verdicts), the same file again (nothing new), an unparseable file (rejected/ with the reason),
a folder that is not a valid channel name (left alone). Does not run the requested runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from factory_assets.partitions import topics
from factory_resources.store import MediaStore
from factory_sensors.topic_batch import topic_batch_sensor

BATCH = (
    "topic,language,duration\n"
    "How tides work,en,30\n"
    "how  TIDES work,en,30\n"
    ",en,30\n"
    "Почему кошки мурлычут,,\n"
    '"Commas, ""quotes"" and\na newline",en,20\n'
)


def _tick(instance: dg.DagsterInstance, home: Path) -> dg.SensorResult | dg.SkipReason:
    context = dg.build_sensor_context(
        instance=instance, resources={"store": MediaStore(home=str(home))}
    )
    return topic_batch_sensor(context)


def _apply(instance: dg.DagsterInstance, result: dg.SensorResult) -> None:
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))


def test_new_file_gives_partitions_runs_and_a_report(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox" / "demo"
    inbox.mkdir(parents=True)
    (inbox / "batch.csv").write_text(BATCH, encoding="utf-8")
    with dg.instance_for_test() as instance:
        result = _tick(instance, tmp_path)
        assert isinstance(result, dg.SensorResult)
        keys = list(result.dynamic_partitions_requests[0].partition_keys)
        assert len(keys) == 3  # the duplicate and the empty row are not topics
        assert [r.partition_key for r in result.run_requests] == keys
        assert [r.run_key for r in result.run_requests] == keys
        # Runs carry their user, channel and batch, so the UI's run list filters by them.
        [batch_id] = {r.tags["factory/batch"] for r in result.run_requests}
        assert batch_id.startswith("demo-batch-")
        assert all(
            r.tags == {"factory/owner": "default", "factory/channel": "demo",
                       "factory/batch": batch_id}
            for r in result.run_requests
        )  # fmt: skip
        # The batch's rows are recorded for the batch report, pending runs included.
        record = json.loads((tmp_path / "batches" / f"{batch_id}.json").read_text())
        assert record["source"] == "inbox" and record["file"] == "batch.csv"
        assert [r["key"] for r in record["rows"] if r["status"] == "accepted"] == keys
        assert not list(inbox.glob("*.csv"))
        reports = list((inbox / "processed").glob("*.report.json"))
        assert len(reports) == 1
        rows = json.loads(reports[0].read_text())["rows"]
        assert [r["status"] for r in rows] == [
            "accepted",
            "duplicate",
            "rejected",
            "accepted",
            "accepted",
        ]
        assert "empty" in rows[2]["reason"]
        for key in keys:
            request = MediaStore(home=str(tmp_path)).load_request(key)
            assert request.channel == "demo"
        _apply(instance, result)
        assert set(instance.get_dynamic_partitions(topics.name)) == set(keys)

        # The same file dropped again (or a restarted daemon re-reading it) submits nothing.
        (inbox / "batch.csv").write_text(BATCH, encoding="utf-8")
        again = _tick(instance, tmp_path)
        assert isinstance(again, dg.SkipReason)
        reports_now = set((inbox / "processed").glob("*.report.json"))
        assert len(reports_now) == 2
        [second] = reports_now - set(reports)
        statuses = {r["status"] for r in json.loads(second.read_text())["rows"]}
        assert statuses == {"duplicate", "rejected"}
        assert len(list((tmp_path / "batches").glob("*.json"))) == 1  # nothing new, no batch


def test_unreadable_file_is_rejected_with_the_reason(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox" / "demo"
    inbox.mkdir(parents=True)
    (inbox / "bad.yaml").write_text("topics: [unclosed\n", encoding="utf-8")
    (inbox / "notes.docx").write_bytes(b"PK\x03\x04")
    (inbox / "topics.xlsx").write_bytes(b"PK\x03\x04")
    with dg.instance_for_test() as instance:
        assert isinstance(_tick(instance, tmp_path), dg.SkipReason)
    reports = list((inbox / "rejected").glob("*.report.json"))
    [yaml_report] = [p for p in reports if p.name.endswith("-bad.yaml.report.json")]
    [docx_report] = [p for p in reports if p.name.endswith("-notes.docx.report.json")]
    assert "malformed YAML" in json.loads(yaml_report.read_text())["error"]
    assert "unsupported" in json.loads(docx_report.read_text())["error"]
    [xlsx_report] = [p for p in reports if p.name.endswith("-topics.xlsx.report.json")]
    assert "save it as CSV" in json.loads(xlsx_report.read_text())["error"]


def test_a_windows_1251_excel_export_is_read_and_its_encoding_reported(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox" / "demo"
    inbox.mkdir(parents=True)
    (inbox / "темы.csv").write_bytes(
        "topic;duration\r\nПочему кошки мурлычут;30\r\n".encode("cp1251")
    )
    with dg.instance_for_test() as instance:
        result = _tick(instance, tmp_path)
    assert isinstance(result, dg.SensorResult)
    [key] = result.dynamic_partitions_requests[0].partition_keys
    assert MediaStore(home=str(tmp_path)).load_request(key).topic == "Почему кошки мурлычут"
    [report] = (inbox / "processed").glob("*.report.json")
    assert json.loads(report.read_text())["encoding"] == "cp1251"


def test_invalid_channel_folder_is_left_alone(tmp_path: Path) -> None:
    weird = tmp_path / "inbox" / "___"
    weird.mkdir(parents=True)
    (weird / "t.txt").write_text("A topic\n", encoding="utf-8")
    with dg.instance_for_test() as instance:
        result = _tick(instance, tmp_path)
    assert isinstance(result, dg.SkipReason)
    assert (weird / "t.txt").exists()
