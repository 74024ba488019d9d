"""`factory run` on a file with one bad row: the exit code, the table and the JSON; a second run
makes nothing again. Also `factory submit` and `factory status`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from factory_cli.main import main

pytestmark = pytest.mark.slow


def test_run_reports_every_row_and_fails_on_a_bad_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = tmp_path / "batch.csv"
    batch.write_text(
        "topic,duration\nHow rainbows form,15\n😀😀😀,15\n../../etc/passwd <b>x</b>,15\n",
        encoding="utf-8",
    )
    code = main(["run", str(batch), "--channel", "demo", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    by_status = {row["status"]: row for row in out["topics"]}
    assert [row["status"] for row in out["topics"]] == ["done", "rejected", "done"]
    assert "no words" in by_status["rejected"]["error"]
    # The batch's HTML page, with every row of the file (the rejected one with its reason).
    page = Path(out["report_html"]).read_text(encoding="utf-8")
    assert out["batch"].startswith("demo-batch-") and page.count('class="topic-row') == 3
    assert 'data-status="rejected"' in page and "no words" in page
    for row in out["topics"]:
        assert set(row) >= {"topic", "key", "status", "video", "error"}
        if row["status"] == "done":
            video = Path(row["video"])
            assert video.exists() and video.stat().st_size > 50_000
            home = Path(__import__("os").environ["FACTORY_HOME"]).resolve()
            assert home in video.resolve().parents  # nothing outside FACTORY_HOME

    # Again: finished work is not redone; the table names every row.
    code = main(["run", str(batch), "--channel", "demo"])
    table = capsys.readouterr().out
    assert code == 1
    assert sum(line.startswith("cached") for line in table.splitlines()) == 2
    assert "rejected" in table and "no words" in table
    assert table.strip().splitlines()[-1].startswith("batch: 3 topics, 0 made, 2 cached")

    # Publishing from the shell: already posted to the outbox, so asking again posts nothing new.
    key = by_status["done"]["key"]
    outbox = Path(__import__("os").environ["FACTORY_HOME"]) / "outbox"
    before = sorted(outbox.rglob("post.json"))
    assert len(before) == 10  # two topics, five platforms
    assert main(["publish", key, "--now"]) == 0
    assert capsys.readouterr().out.strip() == (
        f"{key}: published to instagram, telegram, tiktok, x, youtube"
    )
    assert sorted(outbox.rglob("post.json")) == before
    assert main(["publish", "demo--no-such-topic"]) == 1
    assert "no such topic" in capsys.readouterr().err
    # Outbox posts are on no platform, so there are no metrics to pull yet.
    assert main(["analytics"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == (
        "analytics: posts=0 snapshots=0 errors=0"
    )


def test_missing_file_and_bad_channel_are_clear_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", str(tmp_path / "nope.csv"), "--channel", "demo"]) == 2
    assert "nope.csv is not a file" in capsys.readouterr().err
    topics = tmp_path / "t.txt"
    topics.write_text("A topic\n", encoding="utf-8")
    assert main(["run", str(topics), "--channel", "!!!"]) == 2
    assert "channel '!!!'" in capsys.readouterr().err


def test_submit_puts_the_file_in_the_inbox(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    topics = tmp_path / "t.txt"
    topics.write_text("A topic\n", encoding="utf-8")
    assert main(["submit", str(topics), "--channel", "My Channel"]) == 0
    home = Path(__import__("os").environ["FACTORY_HOME"])
    assert (home / "inbox" / "my-channel" / "t.txt").read_text() == "A topic\n"
    assert main(["status", "--json"]) == 0
    capsys.readouterr()


def test_a_removed_topic_folder_is_made_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    batch = tmp_path / "batch.txt"
    batch.write_text("How kites fly\n", encoding="utf-8")
    assert main(["run", str(batch), "--channel", "demo", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)["topics"]
    shutil.rmtree(Path(row["video"]).parent)  # the user cleans the topic's folder away
    assert main(["run", str(batch), "--channel", "demo", "--json"]) == 0
    [again] = json.loads(capsys.readouterr().out)["topics"]
    assert again["status"] == "done" and Path(again["video"]).exists()
