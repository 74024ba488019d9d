"""factory_core/progress.py: states, weighted progress, ETAs and batch rollups, from plain facts.

No Dagster, no I/O: the bridge's reading of the instance is tested in test_dagster_bridge.py.
Default typical times: start-up 10 s, script 1, voiceover 4, scene_images 3, subtitles 1,
video 12, thumbnail 1, publications 1 (33 s in all).
"""

from __future__ import annotations

import pytest

from factory_core.progress import (
    TOPIC_STAGES,
    RunSnapshot,
    StageTimes,
    TopicFacts,
    TopicProgress,
    batch_progress,
    topic_progress,
)

NOW = 1_000_000.0
TOTAL = 33.0
BEFORE_VIDEO = ["script", "voiceover", "scene_images", "subtitles"]


def _run(phase: str, **fields: object) -> RunSnapshot:
    return RunSnapshot(run_id="r1", phase=phase, updated_at=NOW - 1, **fields)  # type: ignore[arg-type]


def _progress(run: RunSnapshot | None, **facts: object) -> TopicProgress:
    return topic_progress(TopicFacts(key="demo--t", run=run, **facts), NOW)  # type: ignore[arg-type]


def test_a_queued_run_has_everything_ahead() -> None:
    result = _progress(_run("queued"))
    assert (result.state, result.stage, result.progress, result.eta_s) == (
        "queued",
        None,
        0.0,
        TOTAL,
    )
    assert result.run_id == "r1"


def test_a_running_stage_counts_what_it_already_ran() -> None:
    run = _run("running", started_at=NOW - 30, stages_done=BEFORE_VIDEO,
               current_stage="video", current_started_at=NOW - 5)  # fmt: skip
    result = _progress(run)
    assert result.state == "running"
    assert result.stage == "video"
    assert result.stages_done == BEFORE_VIDEO
    assert result.eta_s == pytest.approx(12 - 5 + 1 + 1)
    # Weighted by typical time: 4 of 7 stages done is only (10 + 9 + 5) / 33 of the work.
    assert result.progress == pytest.approx(round((TOTAL - 9) / TOTAL, 3))


def test_an_overrunning_stage_never_gives_a_negative_eta_or_100_percent() -> None:
    run = _run("running", started_at=NOW - 300,
               stages_done=[*BEFORE_VIDEO, "video", "thumbnail"],
               current_stage="publications", current_started_at=NOW - 200)  # fmt: skip
    result = _progress(run)
    assert result.eta_s == 0.0
    assert result.progress == 0.99


def test_start_up_counts_down_before_the_first_step() -> None:
    result = _progress(_run("running", started_at=NOW - 4))
    assert result.stage is None
    assert result.eta_s == pytest.approx(TOTAL - 4)
    launching = _progress(_run("running"))  # STARTING: no start time yet
    assert launching.eta_s == TOTAL


def test_progress_only_grows_as_a_run_moves_on() -> None:
    times = StageTimes()
    seen: list[float] = []
    clock = NOW
    done: list[str] = []
    for stage in TOPIC_STAGES:
        started = clock
        for ran in (0.0, times.of(stage) / 2, times.of(stage) * 3):  # on time, then overrunning
            run = _run("running", started_at=NOW - 10, stages_done=list(done),
                       current_stage=stage, current_started_at=started)  # fmt: skip
            seen.append(topic_progress(TopicFacts(key="k", run=run), started + ran).progress)
        clock = started + times.of(stage)
        done.append(stage)
    assert seen == sorted(seen)


def test_a_finished_run_is_done_or_scheduled() -> None:
    done = _progress(_run("succeeded"), publication_state="published")
    assert (done.state, done.progress, done.eta_s, done.stage) == (
        "done",
        1.0,
        None,
        "publications",
    )
    assert done.stages_done == list(TOPIC_STAGES)
    scheduled = _progress(_run("succeeded"), publication_state="scheduled")
    assert scheduled.state == "scheduled"


def test_a_failed_run_says_where_and_why() -> None:
    run = _run("failed", started_at=NOW - 40, stages_done=["script", "voiceover"],
               failed_stage="scene_images", failure_reason="scene_images: fal.ai refused")  # fmt: skip
    result = _progress(run)
    assert (result.state, result.stage, result.eta_s) == ("failed", "scene_images", None)
    assert result.reason == "scene_images: fal.ai refused"
    assert result.progress == pytest.approx(round((10 + 1 + 4) / TOTAL, 3))
    canceled = _progress(_run("canceled", started_at=NOW - 5))
    assert (canceled.state, canceled.reason) == ("failed", "the run was canceled")


def test_without_a_run_a_topic_is_queued_if_its_partition_exists() -> None:
    assert _progress(None).state == "queued"
    assert _progress(None, known=False).state == "unknown"
    made_elsewhere = _progress(None, materialized=list(TOPIC_STAGES))
    assert (made_elsewhere.state, made_elsewhere.progress) == ("done", 1.0)


def test_typical_times_are_medians_once_there_are_enough_samples() -> None:
    times = StageTimes.from_samples(
        startup=[8.0, 9.0, 30.0], stages={"video": [20.0, 22.0, 90.0], "script": [5.0, 6.0]}
    )
    assert times.startup_s == 9.0
    assert times.of("video") == 22.0
    assert times.of("script") == 1.0  # two samples: the default stays
    assert times.of("a_new_stage") == 1.0


def _topic(state: str, progress: float = 0.0, eta: float | None = None) -> TopicProgress:
    return TopicProgress(key=f"k-{state}-{eta}", state=state, stage=None, stages_done=[],  # type: ignore[arg-type]
                         progress=progress, eta_s=eta, run_id=None, reason=None, updated_at=None)  # fmt: skip


def test_a_batch_eta_fills_free_run_slots_first() -> None:
    topics = [
        _topic("running", 0.5, 5.0),
        _topic("running", 0.2, 10.0),
        *[_topic("queued", 0.0, TOTAL) for _ in range(3)],
        _topic("done", 1.0),
        _topic("failed", 0.3),
    ]
    rollup = batch_progress(topics, parallel_runs=2)
    # Slots free at 5 and 10 s; the three queued topics take 33 s each: 5+33, 10+33, 38+33.
    assert rollup.eta_s == pytest.approx(71.0)
    assert rollup.counts == {"queued": 3, "running": 2, "done": 1, "failed": 1,
                             "scheduled": 0, "unknown": 0}  # fmt: skip
    assert rollup.progress == pytest.approx(round((0.5 + 0.2 + 1 + 1) / 7, 3))
    assert not rollup.finished
    wider = batch_progress(topics, parallel_runs=5)
    assert wider.eta_s == pytest.approx(TOTAL)  # three idle slots take the queued topics at once


def test_a_finished_batch_has_no_eta() -> None:
    rollup = batch_progress([_topic("done", 1.0), _topic("failed", 0.2)], parallel_runs=3)
    assert (rollup.eta_s, rollup.finished, rollup.progress) == (None, True, 1.0)
    assert batch_progress([], parallel_runs=3).total == 0
