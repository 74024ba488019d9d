"""Where a topic stands and how long it has left, from facts about its latest run.

Pure: the Dagster bridge (factory_api/dagster_bridge.py) reads the run, its steps and the
topic's materializations from the instance and hands them here as a `TopicFacts`; this module
turns them into a `TopicProgress` (state, stage, progress 0..1, ETA, reason) and rolls many
into a `BatchProgress`.

Progress is weighted by how long each stage typically takes, not by stage count: the render
is most of a topic's time, so "5 of 7 stages" before the render would overstate it. Typical
times are medians of the instance's recent step durations when it has enough of them, else
the defaults below, measured on a 2-core machine for a 30 s short.
"""

from __future__ import annotations

import heapq
import statistics
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field

TopicState = Literal["queued", "running", "done", "failed", "scheduled", "unknown"]
TOPIC_STATES: tuple[TopicState, ...] = (
    "queued",
    "running",
    "done",
    "failed",
    "scheduled",
    "unknown",
)
RunPhase = Literal["queued", "running", "succeeded", "failed", "canceled"]

# The production stages in run order (factory_assets.definitions.TOPIC_ASSETS).
TOPIC_STAGES: tuple[str, ...] = (
    "script",
    "voiceover",
    "scene_images",
    "subtitles",
    "video",
    "thumbnail",
    "publications",
)
DEFAULT_STAGE_S: dict[str, float] = {
    "script": 1.0,
    "voiceover": 4.0,
    "scene_images": 3.0,
    "subtitles": 1.0,
    "video": 12.0,
    "thumbnail": 1.0,
    "publications": 1.0,
}
# From the run's start to its first step: a fresh process importing the code on 2 cores.
DEFAULT_STARTUP_S = 10.0
UNLISTED_STAGE_S = 1.0
# Fewer samples than this and a median says more about one odd run than about the machine.
MIN_SAMPLES = 3
UNEXPLAINED_FAILURE = "run failed (see the run log in the Dagster UI)"


class TopicProgress(BaseModel):
    key: str
    state: TopicState
    stage: str | None  # the stage running now, or the last one done
    stages_done: list[str]
    progress: float  # 0..1 over the topic's stages
    eta_s: float | None  # seconds until done; None when unknown or finished
    run_id: str | None
    reason: str | None  # why it failed, in words
    updated_at: datetime | None


class StageTimes(BaseModel):
    """Typical seconds per stage, and for a run to reach its first step."""

    startup_s: float = DEFAULT_STARTUP_S
    stages: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_STAGE_S))

    def of(self, stage: str) -> float:
        return self.stages.get(stage, UNLISTED_STAGE_S)

    @classmethod
    def from_samples(
        cls, startup: Sequence[float], stages: Mapping[str, Sequence[float]]
    ) -> StageTimes:
        """Medians of measured durations; a stage with too few samples keeps its default."""
        times = cls()
        if len(startup) >= MIN_SAMPLES:
            times.startup_s = statistics.median(startup)
        for stage, samples in stages.items():
            if len(samples) >= MIN_SAMPLES:
                times.stages[stage] = statistics.median(samples)
        return times


class RunSnapshot(BaseModel):
    """A topic's latest production run as the instance records it (times are epoch seconds)."""

    run_id: str
    phase: RunPhase
    started_at: float | None = None  # None until the run process has started
    updated_at: float | None = None
    stages_done: list[str] = Field(default_factory=list)  # steps that succeeded in this run
    current_stage: str | None = None  # the step started and not finished
    current_started_at: float | None = None
    failed_stage: str | None = None
    failure_reason: str | None = None


class TopicFacts(BaseModel):
    key: str
    run: RunSnapshot | None = None
    materialized: list[str] = Field(default_factory=list)  # stages ever materialized
    publication_state: str | None = None  # "state" of the latest publications materialization
    known: bool = True  # the topic's partition exists


def _timestamp(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch is not None else None


def topic_progress(
    facts: TopicFacts,
    now: float,
    times: StageTimes | None = None,
    stages: Sequence[str] = TOPIC_STAGES,
) -> TopicProgress:
    times = times or StageTimes()
    total = times.startup_s + sum(times.of(s) for s in stages)
    run = facts.run

    def result(state: TopicState, **fields: object) -> TopicProgress:
        values: dict[str, object] = {
            "stage": None,
            "stages_done": [],
            "progress": 0.0,
            "eta_s": None,
            "reason": None,
            "run_id": run.run_id if run else None,
            "updated_at": _timestamp(run.updated_at if run else None),
        }
        values.update(fields)
        return TopicProgress(key=facts.key, state=state, **values)  # type: ignore[arg-type]

    def in_order(done: Iterable[str]) -> list[str]:
        done_set = set(done)
        return [s for s in stages if s in done_set]

    finished_state: TopicState = "scheduled" if facts.publication_state == "scheduled" else "done"
    if run is None:
        if facts.materialized and set(stages) <= set(facts.materialized):
            # Made by a run this bridge does not track (e.g. materialized from the UI).
            return result(finished_state, stage=stages[-1], stages_done=list(stages), progress=1.0)
        if not facts.known:
            return result("unknown")
        return result("queued", eta_s=round(total, 1))
    if run.phase == "succeeded":
        return result(finished_state, stage=stages[-1], stages_done=list(stages), progress=1.0)

    done = in_order(run.stages_done)
    done_s = sum(times.of(s) for s in done)
    started = run.started_at is not None
    if run.phase in ("failed", "canceled"):
        reason = run.failure_reason or (
            "the run was canceled" if run.phase == "canceled" else UNEXPLAINED_FAILURE
        )
        spent = (times.startup_s if started else 0.0) + done_s
        return result(
            "failed",
            stage=run.failed_stage or run.current_stage or (done[-1] if done else None),
            stages_done=done,
            progress=round(min(spent / total, 1.0), 3),
            reason=reason,
        )
    if run.phase == "queued":
        return result("queued", eta_s=round(total, 1))

    # Running: what is left of every stage not done, less what the current one already ran.
    remaining = sum(times.of(s) for s in stages if s not in done and s != run.current_stage)
    if run.current_stage is not None:
        ran = now - run.current_started_at if run.current_started_at is not None else 0.0
        remaining += max(times.of(run.current_stage) - ran, 0.0)
    elif not done:
        ran = now - run.started_at if run.started_at is not None else 0.0
        remaining += max(times.startup_s - ran, 0.0)
    # A run that overruns its typical time is still not done: never report 100 % or a past ETA.
    progress = min((total - remaining) / total, 0.99)
    return result(
        "running",
        stage=run.current_stage or (done[-1] if done else None),
        stages_done=done,
        progress=round(max(progress, 0.0), 3),
        eta_s=round(max(remaining, 0.0), 1),
    )


class BatchProgress(BaseModel):
    total: int
    counts: dict[str, int]  # every state, zero included
    progress: float  # 0..1; failed topics count as finished, they will not move on
    eta_s: float | None  # None when nothing is queued or running
    finished: bool


def batch_progress(
    topics: Sequence[TopicProgress], parallel_runs: int, times: StageTimes | None = None
) -> BatchProgress:
    """Rolls topics up; the ETA hands queued topics to whichever of `parallel_runs` slots
    frees first, after the running ones (the run queue's order is not known, the load is)."""
    times = times or StageTimes()
    counts = dict.fromkeys(TOPIC_STATES, 0)
    for topic in topics:
        counts[topic.state] += 1
    finished_states = ("done", "failed", "scheduled")
    weights = [1.0 if t.state in finished_states else t.progress for t in topics]
    running = [t.eta_s or 0.0 for t in topics if t.state == "running"]
    queued = [t.eta_s if t.eta_s is not None else 0.0 for t in topics if t.state == "queued"]
    eta: float | None = None
    if running or queued:
        slots = [*running, *[0.0] * max(parallel_runs - len(running), 0)] or [0.0]
        heapq.heapify(slots)
        for seconds in queued:
            heapq.heappush(slots, heapq.heappop(slots) + seconds)
        eta = round(max(slots), 1)
    return BatchProgress(
        total=len(topics),
        counts=counts,
        progress=round(sum(weights) / len(topics), 3) if topics else 1.0,
        eta_s=eta,
        finished=bool(topics) and all(t.state in finished_states for t in topics),
    )
