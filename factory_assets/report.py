"""batch_report: every topic's status, duration, files, cost and error, in one place; and an
HTML page per batch (progress, reasons, cost, thumbnails, links into the Dagster UI)."""

import os
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from pydantic import ValidationError

from factory_assets.status import TopicStatus, all_statuses, dagster_url, run_phase
from factory_assets.thumbnail import thumbnail
from factory_assets.video import video
from factory_core.batch_page import (
    BatchRecord,
    BatchView,
    RunFact,
    TopicRow,
    batch_page_name,
    page_status,
    render_batch_page,
    render_index,
)
from factory_core.run_tags import BATCH_TAG, CHANNEL_TAG, OWNER_TAG, is_batch_id
from factory_core.topics_file import RowVerdict
from factory_resources.store import MediaStore

PARTITION_TAG = "dagster/partition"
# Grid thumbnails: a 9:16 cover scaled to this box is ~10 KB, so a page of 50+ topics stays light.
THUMB_BOX = (216, 384)


@dg.asset(
    # deps, not inputs: an input would load every partition, including ones never made.
    deps=[video, thumbnail],
    group_name="reporting",
    kinds={"python", "html"},
    description="report.json and report.md under $FACTORY_HOME/reports: one row per topic; "
    "reports/batches/<batch>.html and index.html: one page per batch.",
)
def batch_report(context: dg.AssetExecutionContext, store: MediaStore) -> dg.MaterializeResult:
    statuses = all_statuses(context.instance, store)
    reports = store.cache_dir().parent / "reports"
    reports.mkdir(exist_ok=True)
    store.write_json(reports / "report.json", [s.as_dict() for s in statuses])
    lines = [
        "| topic | status | duration (s) | cost (USD) | video | error |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {s.topic[:60].replace('|', '/')} | {s.status} | {s.duration_s or ''} | "
        f"{s.cost_usd:.4f} | {s.video or ''} | {(s.error or '').replace('|', '/')[:200]} |"
        for s in statuses
    ]
    total_cost = round(sum(s.cost_usd for s in statuses), 6)
    lines.append(f"| **total** | | | {total_cost:.4f} | | |")
    store.write_text(reports / "report.md", "\n".join(lines) + "\n")
    counts = {
        state: sum(s.status == state for s in statuses) for state in ("done", "failed", "pending")
    }
    pages = write_batch_pages(context.instance, store, statuses, reports / "batches", context.log)
    html: dict[str, dg.MetadataValue] = {
        "batches": dg.MetadataValue.int(len(pages) - 1),
        "html_index": dg.MetadataValue.path(str(pages[0])),
    }
    if len(pages) > 1:
        html["html_latest_batch"] = dg.MetadataValue.path(str(pages[1]))
    return dg.MaterializeResult(
        metadata={
            **{f"topics_{k}": v for k, v in counts.items()},
            "total_cost_usd": total_cost,
            "total_duration_s": round(sum(s.duration_s or 0 for s in statuses), 1),
            "report": dg.MetadataValue.md("\n".join(lines[:52])),
            "path": dg.MetadataValue.path(str(reports / "report.json")),
            **html,
        }
    )


def write_batch_pages(
    instance: dg.DagsterInstance,
    store: MediaStore,
    statuses: list[TopicStatus],
    folder: Path,
    log: dg.DagsterLogManager | None = None,
) -> list[Path]:
    """index.html, then one page per batch, newest first. Batches are the records written when
    topics were taken in (sensor, `factory run`, API) plus any `factory/batch` run tag with no
    record; each topic's state comes from `statuses` and the batch's runs."""
    now = datetime.now(UTC)
    url = dagster_url()
    by_key = {s.key: s for s in statuses}
    views = [
        _batch_view(instance, store, record, by_key, folder, now)
        for record in batch_records(instance, store, by_key, log)
    ]
    views.sort(key=lambda v: v.record.created_at or now, reverse=True)
    index = store.write_text(folder / "index.html", render_index(views, now, url))
    pages = [
        store.write_text(folder / batch_page_name(view.record.id), render_batch_page(view, url))
        for view in views
    ]
    return [index, *pages]


def batch_records(
    instance: dg.DagsterInstance,
    store: MediaStore,
    statuses: dict[str, TopicStatus],
    log: dg.DagsterLogManager | None = None,
) -> list[BatchRecord]:
    records: dict[str, BatchRecord] = {}
    # The sensor's and `factory run`'s records, then the API's (same fields).
    for folder in (store.root / "batches", store.root / "api" / "batches"):
        for path in sorted(folder.glob("*.json")):
            try:
                record = BatchRecord.model_validate_json(path.read_text(encoding="utf-8"))
            except (OSError, ValidationError) as exc:
                if log:
                    log.warning(f"skipping batch record {path}: {str(exc).splitlines()[0]}")
                continue
            if is_batch_id(record.id):
                records.setdefault(record.id, record)
    # Runs tagged with a batch nobody recorded (launched from elsewhere with the tag).
    for _, values in instance.get_run_tags(tag_keys=[BATCH_TAG]):
        for batch_id in sorted(values - records.keys()):
            if is_batch_id(batch_id):
                records[batch_id] = _record_from_runs(instance, batch_id, statuses)
    return list(records.values())


def _record_from_runs(
    instance: dg.DagsterInstance, batch_id: str, statuses: dict[str, TopicStatus]
) -> BatchRecord:
    runs = instance.get_run_records(filters=dg.RunsFilter(tags={BATCH_TAG: batch_id}))
    keys = list(dict.fromkeys(r.dagster_run.tags.get(PARTITION_TAG) for r in reversed(runs)))
    first = runs[-1] if runs else None
    tags = first.dagster_run.tags if first else {}
    return BatchRecord(
        id=batch_id,
        owner=tags.get(OWNER_TAG, ""),
        channel=tags.get(CHANNEL_TAG, ""),
        source="runs",
        created_at=first.create_timestamp if first else None,
        rows=[
            RowVerdict(row=i, topic=statuses[k].topic if k in statuses else k, status="accepted",
                       key=k)
            for i, k in enumerate(keys, 1)
            if k
        ],
    )  # fmt: skip


def _batch_runs(instance: dg.DagsterInstance, batch_id: str) -> tuple[dict[str, RunFact], float]:
    """Each topic's latest run in the batch, and when the batch's first run was created."""
    facts: dict[str, RunFact] = {}
    first = float("inf")
    for record in instance.get_run_records(filters=dg.RunsFilter(tags={BATCH_TAG: batch_id})):
        first = min(first, _epoch(record.create_timestamp))
        key = record.dagster_run.tags.get(PARTITION_TAG)
        if key is None or key in facts:  # newest first: the first seen is the latest
            continue
        facts[key] = RunFact(
            run_id=record.dagster_run.run_id,
            phase=run_phase(record.dagster_run.status),
            started_at=record.start_time,
            ended_at=record.end_time,
        )
    return facts, first


def _batch_view(
    instance: dg.DagsterInstance,
    store: MediaStore,
    record: BatchRecord,
    statuses: dict[str, TopicStatus],
    folder: Path,
    now: datetime,
) -> BatchView:
    runs, first_run = _batch_runs(instance, record.id)
    rows: list[TopicRow] = []
    seen: set[str] = set()
    for verdict in record.rows:
        if verdict.status == "rejected" or verdict.key is None:
            rows.append(TopicRow(key=None, topic=verdict.topic, status="rejected",
                                 reason=verdict.reason))  # fmt: skip
            continue
        if verdict.key in seen:  # the same topic twice in one file is made once
            continue
        seen.add(verdict.key)
        rows.append(_topic_row(store, verdict, statuses.get(verdict.key), runs, folder))
    ends = [r.ended_at for r in runs.values() if r.ended_at is not None]
    starts = [t for t in (record.created_at.timestamp() if record.created_at else None,
                          first_run if runs else None) if t is not None]  # fmt: skip
    return BatchView(
        record=record,
        rows=rows,
        started_at=datetime.fromtimestamp(min(starts), UTC) if starts else None,
        ended_at=datetime.fromtimestamp(max(ends), UTC) if ends else None,
        generated_at=now,
    )


def _topic_row(
    store: MediaStore,
    verdict: RowVerdict,
    status: TopicStatus | None,
    runs: dict[str, RunFact],
    folder: Path,
) -> TopicRow:
    key = verdict.key or ""
    run = runs.get(key)
    state, reason = page_status(status.status if status else "pending",
                                status.error if status else None, run)  # fmt: skip
    if reason is None and verdict.status == "duplicate":
        reason = verdict.reason  # asked for again: made once, in an earlier batch
    thumb = _thumbnail(store, key, folder) if state == "done" else None
    video_file = Path(status.video) if status and status.video else None
    return TopicRow(
        key=key,
        topic=(status.topic if status and status.topic else verdict.topic),
        status=state,
        reason=reason,
        cost_usd=status.cost_usd if status else 0.0,
        duration_s=status.duration_s if status else None,
        run_id=run.run_id if run else None,
        thumbnail=_relative_url(thumb, folder) if thumb else None,
        video=_relative_url(video_file, folder) if video_file and video_file.exists() else None,
    )


def _thumbnail(store: MediaStore, key: str, folder: Path) -> Path | None:
    """A small copy of the topic's 9:16 cover next to the pages (made again when the cover
    changes), so the grid loads ~10 KB per topic instead of a full-size cover."""
    from PIL import Image, UnidentifiedImageError

    cover = store.topic_dir(key) / "cover_9x16.jpg"
    if not cover.is_file():
        return None
    small = folder / "thumbs" / f"{key}.jpg"
    if small.is_file() and small.stat().st_mtime >= cover.stat().st_mtime:
        return small
    try:
        with Image.open(cover) as image:
            image.draft("RGB", THUMB_BOX)  # JPEG: decode at a reduced scale, much faster
            picture = image.convert("RGB")
    except (OSError, UnidentifiedImageError):
        return None
    picture.thumbnail(THUMB_BOX)
    with store.atomic_path(small) as tmp:
        picture.save(tmp, format="JPEG", quality=80, optimize=True)
    return small


def _epoch(value: datetime) -> float:
    """Run storages keep naive UTC datetimes."""
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def _relative_url(path: Path, folder: Path) -> str:
    from urllib.parse import quote

    return quote(Path(os.path.relpath(path, folder)).as_posix())
