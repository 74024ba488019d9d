"""The batch report as HTML: one page per batch and an index, from plain rows (no I/O).

The asset (factory_assets/report.py) gathers facts from the Dagster instance and the media store
into the models below; this module decides each topic's state on the page and renders it with
Jinja2. Autoescaping is on for every template: topic text, reasons and file names are user
input in any language and must stay text, never markup or script.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Literal
from urllib.parse import quote, urlencode

import jinja2
from pydantic import BaseModel, Field, field_validator

from factory_core.progress import RunPhase
from factory_core.run_tags import BATCH_TAG
from factory_core.topics_file import RowVerdict

PageStatus = Literal["done", "running", "pending", "failed", "rejected"]
# The order of the progress bar and of the counts.
PAGE_STATUSES: tuple[PageStatus, ...] = ("done", "failed", "running", "pending", "rejected")
DEFAULT_DAGSTER_URL = "http://127.0.0.1:3000"
# While a batch runs the page reloads itself this often (seconds); a finished one never does.
DEFAULT_REFRESH_S = 15


class BatchRecord(BaseModel):
    """What a batch was given, as written when it was taken in. The API's batch records
    ($FACTORY_HOME/api/batches/<id>.json) have the same fields, less `source` and `file`."""

    id: str
    owner: str = ""
    channel: str = ""
    source: str = "api"  # inbox | cli | api | runs (found only through run tags)
    file: str | None = None
    created_at: datetime | None = None
    rows: list[RowVerdict] = Field(default_factory=list)

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        # Run storages keep naive UTC times; naive and aware times cannot be compared.
        return value.replace(tzinfo=UTC) if value and value.tzinfo is None else value


class RunFact(BaseModel):
    """A topic's latest run in the batch (times are epoch seconds)."""

    run_id: str
    phase: RunPhase
    started_at: float | None = None
    ended_at: float | None = None


class TopicRow(BaseModel):
    key: str | None  # None for a rejected row: it never became a topic
    topic: str
    status: PageStatus
    reason: str | None = None
    cost_usd: float = 0.0
    duration_s: float | None = None
    run_id: str | None = None
    thumbnail: str | None = None  # URL relative to the page
    video: str | None = None  # URL relative to the page


class BatchView(BaseModel):
    record: BatchRecord
    rows: list[TopicRow]
    started_at: datetime | None = None
    ended_at: datetime | None = None  # the last run's end, once nothing is left to run
    generated_at: datetime

    @property
    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(PAGE_STATUSES, 0)
        for row in self.rows:
            counts[row.status] += 1
        return counts

    @property
    def topics(self) -> list[TopicRow]:
        """The rows that became topics (everything but rejected rows)."""
        return [r for r in self.rows if r.status != "rejected"]

    @property
    def finished(self) -> bool:
        return not any(r.status in ("running", "pending") for r in self.rows)

    @property
    def total_cost_usd(self) -> float:
        return round(sum(r.cost_usd for r in self.rows), 6)

    @property
    def wall_s(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.ended_at if self.finished and self.ended_at else self.generated_at
        return max((end - self.started_at).total_seconds(), 0.0)

    @property
    def progress(self) -> float:
        """Finished topics (done or failed) over all topics; rejected rows are not topics."""
        topics = self.topics
        if not topics:
            return 1.0
        return sum(r.status in ("done", "failed") for r in topics) / len(topics)


def page_status(
    topic_status: str, error: str | None, run: RunFact | None
) -> tuple[PageStatus, str | None]:
    """A topic's state on the page from factory_assets.status (done | failed | pending, with
    the failure's reason) and the phase of its run in this batch, which tells running from
    waiting and names a canceled run."""
    if topic_status == "done":
        return "done", None
    if topic_status == "failed":
        return "failed", error or "the run failed (see its log in the Dagster UI)"
    if run is None or run.phase == "queued":
        return "pending", None
    if run.phase == "running":
        return "running", None
    if run.phase == "canceled":
        return "failed", "the run was canceled"
    if run.phase == "failed":
        return "failed", error or "the run failed (see its log in the Dagster UI)"
    # Succeeded, yet the topic has no video: it was removed since, or made by another code path.
    return "pending", "the run succeeded but video.mp4 is not in the topic's folder"


class DagsterLinks(BaseModel):
    """Deep links into the Dagster webserver (routes of the Dagster 1.13 UI)."""

    base: str = DEFAULT_DAGSTER_URL

    def _root(self) -> str:
        return self.base.rstrip("/")

    def run(self, run_id: str) -> str:
        return f"{self._root()}/runs/{quote(run_id, safe='')}"

    def asset_partition(self, key: str, asset: str = "video") -> str:
        # The asset page's partitions tab with the partition selected.
        query = urlencode({"view": "partitions", "partition": key}, quote_via=quote)
        return f"{self._root()}/assets/{quote(asset, safe='')}?{query}"

    def batch_runs(self, batch_id: str) -> str:
        # The run list filtered by tag, as the UI writes it (`q[]=tag:<key>=<value>`).
        query = urlencode({"q[]": f"tag:{BATCH_TAG}={batch_id}"}, quote_via=quote)
        return f"{self._root()}/runs?{query}"


def format_usd(value: float) -> str:
    return f"${value:,.2f}" if value >= 1 else f"${value:.4f}"


def format_seconds(value: float | None) -> str:
    if value is None:
        return "–"
    seconds = round(value)
    if seconds < 60:
        return f"{value:.1f} s" if value < 10 else f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def format_time(value: datetime | None) -> str:
    if value is None:
        return "–"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("factory_core", "templates"),
        autoescape=True,  # every template, whatever its name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(usd=format_usd, seconds=format_seconds, when=format_time)
    return env


def render_batch_page(
    view: BatchView,
    dagster_url: str = DEFAULT_DAGSTER_URL,
    refresh_s: int = DEFAULT_REFRESH_S,
    index_href: str | None = "index.html",
) -> str:
    """One batch: progress, counts, cost, wall time, a thumbnail grid and a row per topic."""
    counts = view.counts
    topics = len(view.topics)
    segments = [
        (state, counts[state], 100 * counts[state] / topics if topics else 0.0)
        for state in PAGE_STATUSES
        if state != "rejected"
    ]
    return (
        _environment()
        .get_template("batch.html.j2")
        .render(
            view=view,
            counts=counts,
            topics=topics,
            segments=segments,
            links=DagsterLinks(base=dagster_url),
            refresh_s=refresh_s if not view.finished else None,
            index_href=index_href,
            statuses=PAGE_STATUSES,
        )
    )


def render_index(
    views: Sequence[BatchView],
    generated_at: datetime,
    dagster_url: str = DEFAULT_DAGSTER_URL,
    refresh_s: int = DEFAULT_REFRESH_S,
) -> str:
    """Every batch, newest first, with its progress and a link to its page."""
    ordered = sorted(
        views,
        key=lambda v: v.record.created_at or datetime.min.replace(tzinfo=UTC),
        reverse=True,
    )
    running = any(not v.finished for v in views)
    return (
        _environment()
        .get_template("index.html.j2")
        .render(
            views=ordered,
            generated_at=generated_at,
            links=DagsterLinks(base=dagster_url),
            refresh_s=refresh_s if running else None,
        )
    )


def batch_page_name(batch_id: str) -> str:
    return f"{quote(batch_id, safe='')}.html"
