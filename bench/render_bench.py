"""The same 30 s render plan through the ffmpeg backend, the moviepy backend and the encoder floor.

    .venv/bin/python -m bench.render_bench        (what `make bench-render` runs)

A topic is made first (in a child process, so this process stays small) to get a real plan:
scene pictures, captions, mastered audio. Then, one after another in this process's children:

    ffmpeg_s    the ffmpeg backend's one video pass for the plan
    moviepy_s   the moviepy backend for the same plan (per-frame compositing in Python)
    floor_s     the encoder floor: the first scene picture as a still, same size, fps,
                duration and x264 settings, no filters
    peak_rss_mb the largest peak resident memory of any of those renders (each child's own
                figure from wait4, not this process's)

Then the ffmpeg backend's cost taken apart, in CPU seconds (the render is CPU-bound on 2 cores):
the filtergraph alone (frames made, not encoded), and the encoder alone on those same frames
read back raw from memory (the floor for this moving picture: what no renderer of this plan
can beat with these x264 settings). Skipped when /dev/shm lacks room for the raw frames.

Ratios are taken within the run, so a busy machine shifts all three alike. Set BENCH_KEEP=1 to
keep the temporary folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from factory_core.render_plan import RenderPlan

TOPICS = "topic,duration\nWhy octopuses have three hearts,30\n"


def _timed_child(command: list[str], cwd: Path) -> tuple[float, int]:
    """Wall seconds and the child's own peak RSS in MB (a crashed ffmpeg is run again, as the
    renderer does; only the successful run is timed)."""
    seconds, _, peak_mb = _measured_child(command, cwd)
    return seconds, peak_mb


def _measured_child(command: list[str], cwd: Path) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + system) and peak RSS in MB of one child."""
    for _ in range(3):
        started = time.perf_counter()
        child = subprocess.Popen(
            command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        stderr = child.stderr.read().decode(errors="replace") if child.stderr else ""
        code = os.waitstatus_to_exitcode(status)
        if code == 0:
            return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss // 1024
        if code > 0:
            break
    raise SystemExit(f"bench-render: FAILED: {' '.join(command[:3])}: {stderr[-400:]}")


def main() -> int:
    from factory_core import ffmpeg_commands as fc
    from factory_core.render_plan import EncoderSettings, RenderPlan
    from factory_resources.ffmpeg import ffmpeg_exe, probe

    home = Path(tempfile.mkdtemp(prefix="bench-render-"))
    try:
        batch = home / "topics.csv"
        batch.write_text(TOPICS, encoding="utf-8")
        env = {**os.environ, "FACTORY_HOME": str(home)}
        env.pop("DAGSTER_HOME", None)
        factory = str(Path(sys.executable).with_name("factory"))
        made = subprocess.run([factory, "run", str(batch), "--channel", "bench", "--json"],
                              check=False, env=env, capture_output=True, text=True)  # fmt: skip
        if made.returncode != 0:
            raise SystemExit(f"bench-render: FAILED: the topic was not made: {made.stdout[-600:]}")
        topic_dir = next((home / "topics").iterdir())
        plan = RenderPlan.model_validate_json((topic_dir / "render_plan.json").read_text())
        plan = plan.model_copy(update={"encoder": EncoderSettings()})
        print(f"plan    {plan.total_s:.1f}s {plan.width}x{plan.height}, {len(plan.clips)} scenes, "
              f"transitions {[c.transition_in for c in plan.clips[1:]]}")  # fmt: skip

        ffmpeg_s, ffmpeg_cpu, ffmpeg_mb = _measured_child(
            [ffmpeg_exe(), *fc.video_args(plan, str(home / "ffmpeg.mp4"))], topic_dir
        )
        floor_s, floor_cpu, floor_mb = _measured_child(
            [ffmpeg_exe(),
             *fc.still_floor_args(plan.clips[0].image_file, plan, str(home / "floor.mp4"))],
            topic_dir,
        )  # fmt: skip
        # For reference only: the floor as a `-loop 1` still input, decoded again for every frame
        # (the usual way to encode a still, and how the 12.5 s figure in DEVELOPERS.md was taken).
        frames = round(plan.total_s * plan.fps)
        loop1_args = [
            "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-loop", "1",
            "-framerate", str(plan.fps), "-i", plan.clips[0].image_file,
            "-vf", f"scale={plan.width}:{plan.height},format=yuv420p", "-frames:v", str(frames),
            *fc.encoder_args(plan.encoder, plan.fps), "-an", str(home / "floor_loop1.mp4"),
        ]  # fmt: skip
        loop1_s, _ = _timed_child([ffmpeg_exe(), *loop1_args], topic_dir)
        moviepy_code = (
            "import sys; from pathlib import Path;"
            "from factory_core.render_plan import RenderPlan;"
            "from factory_resources.moviepy_renderer import MoviepyRenderer;"
            "plan = RenderPlan.model_validate_json(Path(sys.argv[1]).read_text());"
            "MoviepyRenderer().render(plan, Path(sys.argv[2]), Path(sys.argv[3]))"
        )
        moviepy_s, moviepy_mb = _timed_child(
            [sys.executable, "-c", moviepy_code, str(topic_dir / "render_plan.json"),
             str(topic_dir), str(home / "moviepy.mp4")],
            topic_dir,
        )  # fmt: skip
        for name in ("ffmpeg.mp4", "moviepy.mp4"):
            info = probe(home / name)
            print(f"output  {name}: {info.width}x{info.height} {info.fps} fps "
                  f"{info.video_codec}/{info.audio_codec} {info.duration_s:.2f}s")  # fmt: skip
        print(f"time    ffmpeg {ffmpeg_s:.1f}s  moviepy {moviepy_s:.1f}s  floor {floor_s:.1f}s")
        print(f"ref     floor with a '-loop 1' input: {loop1_s:.1f}s "
              f"(ffmpeg backend = {ffmpeg_s / loop1_s:.2f}x that)")  # fmt: skip
        print(f"memory  ffmpeg {ffmpeg_mb} MB  moviepy {moviepy_mb} MB  floor {floor_mb} MB")
        _cost_breakdown(plan, topic_dir, home, (ffmpeg_s, ffmpeg_cpu), (floor_s, floor_cpu))
        print("targets ffmpeg_vs_floor <= 1.5, moviepy_vs_ffmpeg >= 10, peak_rss_mb <= 1024")
        print(
            f"bench-render: ffmpeg_s={ffmpeg_s:.1f} moviepy_s={moviepy_s:.1f} floor_s={floor_s:.1f} "
            f"ffmpeg_vs_floor={ffmpeg_s / floor_s:.2f} moviepy_vs_ffmpeg={moviepy_s / ffmpeg_s:.1f} "
            f"peak_rss_mb={max(ffmpeg_mb, moviepy_mb, floor_mb)}"
        )
        return 0
    finally:
        if os.environ.get("BENCH_KEEP") != "1":
            shutil.rmtree(home, ignore_errors=True)


def _cost_breakdown(
    plan: RenderPlan,
    topic_dir: Path,
    home: Path,
    render: tuple[float, float],
    floor: tuple[float, float],
) -> None:
    """Where the ffmpeg backend's time goes: filters alone, then the encoder alone on the same
    frames, against the still floor (CPU seconds, so the two halves can be added up).
    `render` and `floor` are the (wall, CPU) seconds already measured for them."""
    from factory_core import ffmpeg_commands as fc
    from factory_resources.ffmpeg import ffmpeg_exe

    video = fc.video_args(plan, str(home / "unused.mp4"))  # only its graph part is run
    # Every graph frame is one 1/fps tick; declaring the rate keeps the raw copy frame-exact.
    graph_only = [*video[: video.index("-map")], "-map", "[v]", "-r", str(plan.fps)]
    (render_s, render_cpu), (floor_s, floor_cpu) = render, floor
    _, filters_cpu, _ = _measured_child([ffmpeg_exe(), *graph_only, "-f", "null", "-"], topic_dir)
    line = (f"cpu     render {render_cpu:.1f} CPU-s ({render_s:.1f}s)  floor {floor_cpu:.1f} CPU-s  "
            f"filters alone {filters_cpu:.1f} CPU-s")  # fmt: skip
    frames = round(plan.total_s * plan.fps)
    raw_bytes = frames * plan.width * plan.height * 3 // 2
    shm = Path("/dev/shm")
    if not shm.is_dir() or shutil.disk_usage(shm).free < raw_bytes * 1.2:
        print(f"{line}  (encoder-alone figure skipped: /dev/shm lacks {raw_bytes >> 20} MB)")
        return
    raw = Path(tempfile.mkdtemp(prefix="bench-render-", dir=shm)) / "frames.y4m"
    try:
        _measured_child([ffmpeg_exe(), *graph_only, "-f", "yuv4mpegpipe", str(raw)], topic_dir)
        encode_s, encode_cpu, _ = _measured_child(
            [ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
             "-i", str(raw), *fc.encoder_args(plan.encoder, plan.fps),
             "-an", str(home / "encoded.mp4")],
            topic_dir,
        )  # fmt: skip
        written = (raw.stat().st_size - len(raw.open("rb").readline())) // (raw_bytes // frames + 6)
    finally:
        shutil.rmtree(raw.parent, ignore_errors=True)
    if written != frames:
        raise SystemExit(f"bench-render: FAILED: the raw copy has {written} frames, not {frames}")
    print(f"{line}  encoder alone on the same frames {encode_cpu:.1f} CPU-s ({encode_s:.1f}s)")
    print(
        f"parts   encoder alone / floor = {encode_s / floor_s:.2f} (wall; includes reading "
        f"{raw_bytes >> 20} MB of raw frames), render / encoder alone = {render_s / encode_s:.2f}"
    )


if __name__ == "__main__":
    sys.exit(main())
