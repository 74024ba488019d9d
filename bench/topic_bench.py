"""One topic, end to end, offline, in one process: wall time, stage times, render vs floor, memory.

    .venv/bin/python -m bench.topic_bench        (what `make bench` runs)

Everything runs cold in a fresh temporary FACTORY_HOME (voice calibration, music bed and fonts
are made from nothing, as on a first run) with a temporary SQLite Dagster instance. Nothing is
excluded as warm-up. Figures:

    topic_s          wall time of the `produce_topic` run for the topic (every stage and check)
    stage <name>     STEP_START to STEP_SUCCESS of each step, from the run's event log
    render_s         the `video` step: audio master plus the one video pass
    floor_s          the encoder floor: the first scene picture encoded as a still at the same
                     size, fps, duration and x264 settings (FfmpegRenderer.encode_still)
    render_vs_floor  render_s / floor_s
    peak_rss_mb      the larger of this process's and its largest child's peak resident memory

The last line is machine-readable. Set BENCH_KEEP=1 to keep the temporary folder.
"""

from __future__ import annotations

import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

TOPIC = "Why octopuses have three hearts"
CHANNEL = "bench"
TARGET_TOPIC_S = 45.0
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


class BenchError(RuntimeError):
    """The bench cannot produce figures; the message says why."""


def stage_times(instance: object, run_id: str) -> list[tuple[str, float]]:
    """Seconds from a step's first STEP_START to its last STEP_SUCCESS, in the order steps began."""
    import dagster as dg

    started: dict[str, float] = {}
    finished: dict[str, float] = {}
    kinds = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS}
    for record in instance.all_logs(run_id, of_type=kinds):  # type: ignore[attr-defined]
        event = record.dagster_event
        step = record.step_key or (event.step_key if event else None)
        if event is None or step is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            started.setdefault(step, record.timestamp)
        else:
            finished[step] = record.timestamp
    missing = sorted(set(started) - set(finished))
    if missing:
        raise BenchError(f"steps started but never succeeded: {', '.join(missing)}")
    order = sorted(started, key=started.__getitem__)
    return [(step, finished[step] - started[step]) for step in order]


def peak_rss_mb() -> tuple[int, int]:
    """Peak resident memory in MB (ru_maxrss is KiB on Linux) of this process and of its
    largest child (ffmpeg, the voice); the peak is the larger of the two. Caveat: Linux counts a
    spawned child's pre-exec memory, i.e. the parent's RSS at that moment, in its ru_maxrss."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(own / 1024), round(children / 1024)


def run_bench(home: Path) -> dict[str, float | int]:
    t_import = time.perf_counter()
    import dagster as dg

    from factory_assets.definitions import build_definitions
    from factory_assets.partitions import topics
    from factory_assets.status import failure_reason
    from factory_core import render_plan as rp
    from factory_core.models import TopicRequest
    from factory_core.slugs import topic_key
    from factory_resources.ffmpeg import FfmpegRenderer, probe
    from factory_resources.store import MediaStore

    import_s = time.perf_counter() - t_import

    dagster_dir = home / "dagster"
    dagster_dir.mkdir()
    with dg.instance_for_test(temp_dir=str(dagster_dir)) as instance:
        t_setup = time.perf_counter()
        defs = build_definitions(home=str(home))
        store = MediaStore(home=str(home))
        key = topic_key(CHANNEL, TOPIC)
        store.save_request(TopicRequest(key=key, channel=CHANNEL, topic=TOPIC))
        instance.add_dynamic_partitions(topics.name, [key])
        job = defs.resolve_job_def("produce_topic")
        setup_s = time.perf_counter() - t_setup

        t_topic = time.perf_counter()
        result = job.execute_in_process(
            partition_key=key, instance=instance, raise_on_error=False, run_config=QUIET_LOGS
        )
        topic_s = time.perf_counter() - t_topic

        # Read the event log here, but raise only once the test instance is closed (it reports
        # an exception raised inside its context as a failed test, noisily).
        failure = None if result.success else failure_reason(instance, result.run_id)
        try:
            stages = stage_times(instance, result.run_id) if failure is None else []
        except BenchError as exc:
            failure, stages = str(exc), []

    if failure is not None:
        raise BenchError(f"the produce_topic run {result.run_id} failed: {failure}")
    topic_dir = store.topic_dir(key)
    video_file = topic_dir / "video.mp4"
    if not video_file.is_file() or video_file.stat().st_size == 0:
        raise BenchError(f"the run succeeded but {video_file} is missing or empty")
    render = dict(stages).get("video")
    if render is None:
        raise BenchError(f"no 'video' step in the run; steps were {[s for s, _ in stages]}")

    plan_file = topic_dir / "render_plan.json"
    image = topic_dir / "scenes" / "scene-00.png"
    for needed in (plan_file, image):
        if not needed.is_file():
            raise BenchError(f"{needed} is missing after a successful run")
    plan = rp.RenderPlan.model_validate_json(plan_file.read_text(encoding="utf-8"))
    floor_out = home / "floor.mp4"
    floor_s = FfmpegRenderer().encode_still(image, plan, floor_out)
    if not floor_out.is_file() or floor_out.stat().st_size == 0:
        raise BenchError(f"the floor encode wrote no {floor_out.name}")

    info = probe(video_file)
    print(f"topic   {key} ({TOPIC!r}, channel {CHANNEL})")
    print(
        f"video   {info.width}x{info.height} {info.fps or 0:g} fps {info.duration_s:.2f}s "
        f"{info.video_codec}/{info.audio_codec} {video_file.stat().st_size / 1e6:.2f} MB; "
        f"cpus {os.cpu_count()}"
    )
    print(f"setup   import {import_s:.1f}s, definitions+request {setup_s:.1f}s (not in topic_s)")
    width = max(len(name) for name, _ in stages)
    for name, seconds in stages:
        print(f"stage {name:<{width}} {seconds:6.2f}")
    print(f"stage {'(sum)':<{width}} {sum(s for _, s in stages):6.2f}")
    own_mb, child_mb = peak_rss_mb()
    # Linux charges a child with the parent's RSS at spawn time (pre-exec memory), so the
    # child figure is never below this process's size when ffmpeg or the voice started.
    print(f"memory  peak rss: this process {own_mb} MB, largest child {child_mb} MB (>= parent)")
    print(
        f"note: target is topic_s <= {TARGET_TOPIC_S:.0f} on 2 cores (cold caches, warm-up "
        f"included); this run {topic_s:.1f}s on {os.cpu_count()} cores"
    )
    return {
        "topic_s": topic_s,
        "render_s": render,
        "floor_s": floor_s,
        "render_vs_floor": render / floor_s,
        "peak_rss_mb": max(own_mb, child_mb),
    }


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="factory-bench-")).resolve()
    # Nothing may fall back to the repository's .factory/: the store is given `home`, and this
    # process's environment points there too.
    os.environ["FACTORY_HOME"] = str(home)
    keep = os.environ.get("BENCH_KEEP") == "1"
    try:
        figures = run_bench(home)
    except BenchError as exc:
        print(f"bench: FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if keep:
            print(f"bench: kept {home}", file=sys.stderr)
        else:
            shutil.rmtree(home, ignore_errors=True)
    print(
        f"bench: topic_s={figures['topic_s']:.1f} render_s={figures['render_s']:.1f} "
        f"floor_s={figures['floor_s']:.1f} render_vs_floor={figures['render_vs_floor']:.2f} "
        f"peak_rss_mb={figures['peak_rss_mb']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
