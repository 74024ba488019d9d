"""Where each topic stands, read from the Dagster instance and the media store."""

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import dagster as dg

from factory_assets.partitions import topics
from factory_core.batch_page import DEFAULT_DAGSTER_URL
from factory_core.progress import RunPhase
from factory_resources.project_db import cost_totals, project_engine
from factory_resources.store import MediaStore

DAGSTER_URL_ENV = "FACTORY_DAGSTER_URL"
_RUN_PHASES: dict[dg.DagsterRunStatus, RunPhase] = {
    dg.DagsterRunStatus.QUEUED: "queued",
    dg.DagsterRunStatus.NOT_STARTED: "queued",
    dg.DagsterRunStatus.STARTING: "running",
    dg.DagsterRunStatus.STARTED: "running",
    dg.DagsterRunStatus.CANCELING: "running",
    dg.DagsterRunStatus.SUCCESS: "succeeded",
    dg.DagsterRunStatus.FAILURE: "failed",
    dg.DagsterRunStatus.CANCELED: "canceled",
}


def run_phase(status: dg.DagsterRunStatus) -> RunPhase:
    """A run's state as the API and the batch pages show it."""
    return _RUN_PHASES.get(status, "running")


def dagster_url() -> str:
    """The Dagster webserver's base URL: links in the batch pages, launches from the API."""
    return os.environ.get(DAGSTER_URL_ENV, "").strip() or DEFAULT_DAGSTER_URL


@dataclass
class TopicStatus:
    key: str
    topic: str
    channel: str
    status: str  # done | failed | pending
    video: str | None
    duration_s: float | None
    cost_usd: float
    error: str | None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def failure_reason(instance: dg.DagsterInstance, run_id: str) -> str:
    """The first step failure of a run, as the user-facing description or error message."""
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = record.dagster_event.event_specific_data if record.dagster_event else None
        if evaluation is not None and not getattr(evaluation, "passed", True):
            problems = evaluation.metadata.get("problems")
            return f"check {evaluation.check_name} failed: {problems.value if problems else ''}"
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        data = record.dagster_event.step_failure_data if record.dagster_event else None
        if data is None:
            continue
        step = record.dagster_event.step_key if record.dagster_event else "step"
        if data.user_failure_data and data.user_failure_data.description:
            return f"{step}: {data.user_failure_data.description}"
        if data.error:
            return f"{step}: {data.error.message.strip().splitlines()[-1]}"
    return "run failed (see the run log in the Dagster UI)"


def topic_status(
    instance: dg.DagsterInstance,
    store: MediaStore,
    key: str,
    made_videos: set[str] | None = None,
    costs: dict[str, float] | None = None,
) -> TopicStatus:
    """One topic's state; pass `made_videos` when listing many, to query the instance once."""
    folder = store.topic_dir(key)
    try:
        request = store.load_request(key)
        topic, channel = request.topic, request.channel
    except (FileNotFoundError, ValueError):
        topic, channel = "", ""
    video = folder / "video.mp4"
    if made_videos is None:
        made_videos = instance.get_materialized_partitions(dg.AssetKey("video"))
    done = key in made_videos
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": key}), limit=1)
    latest = runs[0] if runs else None
    error = None
    status = "pending"
    if latest is not None and latest.status == dg.DagsterRunStatus.FAILURE:
        status, error = "failed", failure_reason(instance, latest.run_id)
    elif done and video.exists():
        status = "done"
    duration = _video_duration(folder) if status == "done" else None
    if costs is None:
        costs = cost_totals(project_engine(store.root))
    return TopicStatus(
        key=key,
        topic=topic,
        channel=channel,
        status=status,
        video=str(video) if status == "done" else None,
        duration_s=duration,
        cost_usd=costs.get(key, 0.0),
        error=error,
    )


def _video_duration(folder: Path) -> float | None:
    plan = folder / "render_plan.json"
    if plan.exists():
        return float(json.loads(plan.read_text())["total_s"])
    return None


def all_statuses(instance: dg.DagsterInstance, store: MediaStore) -> list[TopicStatus]:
    keys = instance.get_dynamic_partitions(topics.name)
    made_videos = instance.get_materialized_partitions(dg.AssetKey("video"))
    costs = cost_totals(project_engine(store.root))
    return [topic_status(instance, store, key, made_videos, costs) for key in keys]
