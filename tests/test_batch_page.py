"""factory_core/batch_page.py: the batch report's HTML from plain rows, no I/O.

Covers: counts, progress and wall time; each topic's state from its status and run; hostile
topic text, reasons and file names rendered as inert text; links into the Dagster UI; the
index; batch ids; API batch records read as batch records.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest

from factory_core.batch_page import (
    BatchRecord,
    BatchView,
    DagsterLinks,
    RunFact,
    TopicRow,
    format_seconds,
    format_usd,
    page_status,
    render_batch_page,
    render_index,
)
from factory_core.run_tags import is_batch_id, new_batch_id, topic_run_tags

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
HOSTILE = "<script>alert('x')</script>\"><img src=x onerror=alert(1)> {{ 7*7 }} & Тема"


class Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text += data

    def of(self, tag: str) -> list[dict[str, str]]:
        return [attrs for name, attrs in self.tags if name == tag]


def parse(html: str) -> Elements:
    parsed = Elements()
    parsed.feed(html)
    return parsed


def row(key: str | None, status: str, **fields: object) -> TopicRow:
    return TopicRow(key=key, topic=f"Topic {key}", status=status, **fields)  # type: ignore[arg-type]


def view(rows: list[TopicRow], ended: bool = True, **record: object) -> BatchView:
    fields: dict[str, object] = {
        "id": "demo-topics-20261125-120000-ab12", "channel": "demo", "source": "inbox",
        "file": "topics.csv", "created_at": T0, **record,
    }  # fmt: skip
    return BatchView(
        record=BatchRecord.model_validate(fields),
        rows=rows,
        started_at=T0,
        ended_at=T0 + timedelta(seconds=95) if ended else None,
        generated_at=T0 + timedelta(seconds=300),
    )


MIXED = [
    row(
        "demo--a", "done", cost_usd=0.01, duration_s=31.5, run_id="run-a", thumbnail="thumbs/a.jpg"
    ),
    row("demo--b", "done", cost_usd=0.02, run_id="run-b", thumbnail="thumbs/b.jpg"),
    row("demo--c", "failed", reason="script: the LLM refused", cost_usd=0.005, run_id="run-c"),
    row("demo--d", "running", run_id="run-d"),
    row("demo--e", "pending"),
    row(None, "rejected", reason="topic has no words"),
]


def test_counts_progress_cost_and_refresh_while_running() -> None:
    batch = view(MIXED)
    assert batch.counts == {"done": 2, "failed": 1, "running": 1, "pending": 1, "rejected": 1}
    assert batch.progress == pytest.approx(3 / 5)  # rejected rows are not topics
    assert not batch.finished
    assert batch.total_cost_usd == pytest.approx(0.035)
    assert batch.wall_s == 300  # still running: until the page was made
    html = render_batch_page(batch, refresh_s=20)
    page = parse(html)
    values = {a["id"]: a for a in page.of("div") if a.get("id", "").startswith("count-")}
    assert set(values) == {f"count-{s}" for s in ("topics", *batch.counts)}
    assert '<div class="value" id="count-done">2</div>' in html
    assert '<div class="value" id="count-topics">5</div>' in html
    assert 'id="total-cost">$0.0350<' in html
    assert "60% finished" in html
    assert '<meta http-equiv="refresh" content="20">' in html
    widths = [a["style"] for a in page.of("div") if "seg" in a.get("class", "").split()]
    assert widths == ["width: 40.000%", "width: 20.000%", "width: 20.000%", "width: 20.000%"]
    # Thumbnails only for the topics that have one, lazy and sized (no layout jumps).
    thumbs = page.of("img")
    assert [t["src"] for t in thumbs] == ["thumbs/a.jpg", "thumbs/b.jpg"]
    assert all(t["loading"] == "lazy" and t["width"] and t["height"] for t in thumbs)


def test_finished_batch_does_not_reload_and_counts_its_own_wall_time() -> None:
    batch = view([r for r in MIXED if r.status in ("done", "failed")])
    assert batch.finished and batch.progress == 1.0
    assert batch.wall_s == 95
    html = render_batch_page(batch)
    assert "http-equiv" not in html
    assert "100% finished" in html and "1 min 35 s" in html


def test_reasons_are_shown_for_failed_and_rejected_rows() -> None:
    page = parse(render_batch_page(view(MIXED)))
    rows = [a for a in page.of("tr") if "topic-row" in a.get("class", "")]
    assert [r["data-status"] for r in rows] == [
        "done", "done", "failed", "running", "pending", "rejected"
    ]  # fmt: skip
    assert "script: the LLM refused" in page.text
    assert "topic has no words" in page.text


def test_hostile_text_is_inert() -> None:
    hostile = [
        TopicRow(key="demo--x", topic=HOSTILE, status="failed", reason=HOSTILE, run_id="r1"),
        TopicRow(key=None, topic=HOSTILE, status="rejected", reason=HOSTILE),
    ]
    html = render_batch_page(view(hostile, channel="<b>demo</b>", file="<i>f</i>.csv"))
    page = parse(html)
    assert len(page.of("script")) == 1  # the page's own image check, nothing else
    assert page.of("img") == []  # the failed topic has no thumbnail; no injected one either
    assert not page.of("b") and not page.of("i")
    assert page.text.count(HOSTILE) >= 4  # grid, table and reason show it as typed
    assert "49" not in page.text  # not evaluated as a template
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert "<script>alert" not in html
    # In attributes too (the card's title and alt): the quote does not close the attribute.
    assert all("onerror" not in attrs for _, attrs in page.tags)


def test_links_into_the_dagster_ui() -> None:
    links = DagsterLinks(base="https://dagster.example.com/prefix/")
    assert links.run("1a2b") == "https://dagster.example.com/prefix/runs/1a2b"
    assert links.asset_partition("demo--a b/c") == (
        "https://dagster.example.com/prefix/assets/video?view=partitions&partition=demo--a%20b%2Fc"
    )
    assert links.batch_runs("demo-x-1") == (
        "https://dagster.example.com/prefix/runs?q%5B%5D=tag%3Afactory%2Fbatch%3Ddemo-x-1"
    )
    page = parse(render_batch_page(view(MIXED), dagster_url="http://ui:3000"))
    hrefs = [a["href"] for a in page.of("a") if "href" in a]
    assert "http://ui:3000/runs/run-c" in hrefs
    assert "http://ui:3000/assets/video?view=partitions&partition=demo--e" in hrefs
    assert sum(h.startswith("http://ui:3000/runs/") for h in hrefs) == 4  # a, b, c, d


@pytest.mark.parametrize(
    ("status", "error", "phase", "expected"),
    [
        ("done", None, "succeeded", ("done", None)),
        ("failed", "video: ffmpeg died", "failed", ("failed", "video: ffmpeg died")),
        ("pending", None, None, ("pending", None)),
        ("pending", None, "queued", ("pending", None)),
        ("pending", None, "running", ("running", None)),
        ("pending", None, "canceled", ("failed", "the run was canceled")),
    ],
)
def test_page_status(
    status: str, error: str | None, phase: str | None, expected: tuple[str, str | None]
) -> None:
    run = RunFact(run_id="r", phase=phase) if phase else None  # type: ignore[arg-type]
    assert page_status(status, error, run) == expected


def test_index_lists_batches_newest_first() -> None:
    old = view(MIXED[:2])
    new = view(MIXED, id="demo-later-20261126-090000-cd34", created_at=T0 + timedelta(days=1))
    page = parse(render_index([old, new], generated_at=T0, dagster_url="http://ui:3000"))
    batches = [a["data-batch"] for a in page.of("tr") if "data-batch" in a]
    assert batches == [new.record.id, old.record.id]
    hrefs = [a["href"] for a in page.of("a")]
    assert f"{new.record.id}.html" in hrefs and f"{old.record.id}.html" in hrefs
    assert any(a.get("http-equiv") == "refresh" for a in page.of("meta"))  # one still runs


def test_batch_ids_and_tags() -> None:
    batch_id = new_batch_id("demo", "Мои темы (v2).CSV", now=T0, nonce="ab12")
    assert batch_id == "demo-moi-temy-v2-20261125-120000-ab12"
    assert (
        new_batch_id("demo", "???.txt", now=T0, nonce="ab12") == "demo-topics-20261125-120000-ab12"
    )
    assert len(new_batch_id("demo", "x" * 300 + ".csv")) < 80
    assert is_batch_id(batch_id) and is_batch_id("0123456789abcdef0123456789abcdef")
    assert not any(is_batch_id(v) for v in ("../etc", "a/b", "", "A B", "-x"))
    assert topic_run_tags("ann", "demo", batch_id)["factory/batch"] == batch_id
    assert "factory/batch" not in topic_run_tags("ann", "demo")


def test_api_batch_record_reads_as_a_batch_record() -> None:
    api = {
        "id": "0123456789abcdef0123456789abcdef", "owner": "ann", "channel": "demo",
        "backfill_id": "bf1", "created_at": "2026-11-25T12:00:00+00:00",
        "rows": [{"row": 1, "topic": "Tides", "status": "accepted", "key": "demo--tides-1"},
                 {"row": 2, "topic": "x", "status": "rejected", "reason": "over the plan"}],
    }  # fmt: skip
    record = BatchRecord.model_validate(api)
    assert record.source == "api" and record.file is None and record.created_at == T0
    assert [r.key for r in record.rows] == ["demo--tides-1", None]


def test_formats() -> None:
    assert format_usd(0.0125) == "$0.0125" and format_usd(12.5) == "$12.50"
    assert format_seconds(None) == "–" and format_seconds(4.25) == "4.2 s"
    assert format_seconds(42) == "42 s" and format_seconds(3725) == "1 h 02 min"
