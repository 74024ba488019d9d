"""50 generated topics through the inbox sensor, on the production profile, on this machine.

    .venv/bin/python -m bench.batch_bench        (what `make bench-batch` runs)
    BENCH_TOPICS=10 make bench-batch            (a smaller batch)

What it starts, all on 127.0.0.1 and all torn down at the end:
  - a fresh PostgreSQL database for Dagster's storage and the project's tables,
  - an S3-compatible server (moto) holding the media bucket and the compute logs,
  - `dagster-daemon run` on deploy/production/dagster.yaml (FACTORY_PROFILE=production): the
    sensor, the queued run coordinator and the run launcher, exactly as a deployment runs them.

It then drops one topic file into the inbox, as a user would, and waits until every run the
sensor made has finished. Figures:

    wall_s        from the file landing in the inbox to the last run finishing
    topics/hour   finished videos per hour of wall time
    stage <name>  median and p95 of each step's STEP_START..STEP_SUCCESS over the batch
    run start     queued..RUN_START (waiting for a slot, then the run process starting up)
    failures      each failed topic with the reason its run gives
    peak_rss_mb   the peak of the summed resident memory of every process the bench started
                  (daemon, code server, run workers, ffmpeg, voice, the S3 server), sampled 4x/s

The last line is machine-readable. Set BENCH_KEEP=1 to keep the temporary folder and database.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from bench.batch_topics import generated_topics, topics_csv
from bench.topic_bench import BenchError, stage_times

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PROFILE = REPO / "deploy" / "production" / "dagster.yaml"
CHANNEL = "bench"
TOPICS = int(os.environ.get("BENCH_TOPICS", "50"))
TARGET_WALL_S = 30 * 60
# A hard stop well past the target: a stuck batch must end the bench, not hang CI.
TIMEOUT_S = float(os.environ.get("BENCH_TIMEOUT_S", str(75 * 60)))
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def scratch_database() -> Iterator[str]:
    """A new PostgreSQL database for this bench, dropped afterwards (unless BENCH_KEEP=1)."""
    import sqlalchemy as sa

    name = f"factory_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        raise BenchError(
            f"cannot create a database on {PG_ADMIN_URL.rsplit('@', 1)[-1]}: is PostgreSQL "
            "running? (.ci/run starts it; set BENCH_PG_ADMIN_URL for another server)"
        ) from exc
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        if os.environ.get("BENCH_KEEP") != "1":
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def wait_for_port(port: int, what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.2)
    raise BenchError(f"{what} did not listen on 127.0.0.1:{port} within {timeout_s:.0f}s")


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A child in its own process group, so the whole tree it spawns can be stopped at once."""
    out = log.open("wb")
    return subprocess.Popen(
        command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )


def stop(proc: subprocess.Popen[bytes], grace_s: float = 20) -> None:
    """Ends the child's whole process group (the daemon's code server and run workers too),
    even when the child itself has already exited."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and _group_alive(proc.pid):
        proc.poll()  # reaps the leader, which would otherwise linger as a zombie of the group
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


class TreeMemory:
    """Samples the summed RSS of every process in the given process groups (via /proc)."""

    def __init__(self, groups: list[int]) -> None:
        self.groups = set(groups)
        self.peak_mb = 0.0
        self.peak_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def sample(self) -> None:
        total_kb, count = 0, 0
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    # Field 5 (after the parenthesised name) is the process group.
                    pgrp = int(f.read().rsplit(b")", 1)[1].split()[2])
                if pgrp not in self.groups:
                    continue
                with open(f"/proc/{entry.name}/status", "rb") as f:
                    for line in f:
                        if line.startswith(b"VmRSS:"):
                            total_kb += int(line.split()[1])
                            count += 1
                            break
            except (OSError, ValueError, IndexError):
                continue  # the process ended between listing and reading
        if total_kb / 1024 > self.peak_mb:
            self.peak_mb, self.peak_processes = total_kb / 1024, count

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self.sample()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def wait_for_batch(instance: object, expected: int, deadline: float) -> list[object]:
    """Every produce_topic run of the batch, once all `expected` have reached a final state."""
    import dagster as dg

    done_states = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE,
                   dg.DagsterRunStatus.CANCELED}  # fmt: skip
    last_report = 0.0
    while True:
        records = instance.get_run_records(  # type: ignore[attr-defined]
            filters=dg.RunsFilter(job_name="produce_topic")
        )
        finished = [r for r in records if r.dagster_run.status in done_states]
        # A run that run-monitoring retried leaves its failed first attempt behind; a topic
        # counts once, by its latest run.
        latest: dict[str, object] = {}
        for record in sorted(records, key=lambda r: r.create_timestamp):
            latest[record.dagster_run.tags.get("dagster/partition", record.dagster_run.run_id)] = (
                record
            )
        settled = [r for r in latest.values() if r.dagster_run.status in done_states]  # type: ignore[attr-defined]
        now = time.monotonic()
        if now - last_report > 30:
            print(
                f"  ... {len(finished)} runs finished, {len(records) - len(finished)} queued or "
                f"running, {len(latest)}/{expected} topics launched",
                flush=True,
            )
            last_report = now
        if len(latest) >= expected and len(settled) == len(latest):
            return list(latest.values())
        if now > deadline:
            raise BenchError(
                f"timed out: {len(settled)}/{expected} topics finished after "
                f"{TIMEOUT_S:.0f}s (set BENCH_TIMEOUT_S to wait longer)"
            )
        time.sleep(2)


def run_bench(home: Path, db_url: str) -> dict[str, float | int]:
    import boto3

    if not PROFILE.is_file():
        raise BenchError(f"{PROFILE} is missing: the production profile is what this bench runs")
    s3_port = free_port()
    bucket = "factory-bench"
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True)
    shutil.copyfile(PROFILE, dagster_home / "dagster.yaml")
    logs = home / "logs"
    logs.mkdir()
    env = {
        **os.environ,
        "FACTORY_HOME": str(home),
        "DAGSTER_HOME": str(dagster_home),
        "FACTORY_PROFILE": "production",
        "DAGSTER_PG_URL": db_url,
        "FACTORY_DB_URL": db_url,
        "FACTORY_MEDIA_BUCKET": bucket,
        "FACTORY_S3_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}",
        # boto3's own name for it, read by dagster-aws' compute-log manager in every process.
        "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{s3_port}",
        # The local S3 server takes any credentials; real deployments set their own.
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "PYTHONUNBUFFERED": "1",
    }
    os.environ.update({k: env[k] for k in ("FACTORY_HOME", "DAGSTER_HOME", "DAGSTER_PG_URL",
                                           "FACTORY_DB_URL", "FACTORY_MEDIA_BUCKET",
                                           "FACTORY_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID",
                                           "AWS_SECRET_ACCESS_KEY", "AWS_REGION",
                                           "AWS_DEFAULT_REGION", "FACTORY_PROFILE",
                                           "AWS_ENDPOINT_URL_S3")})  # fmt: skip

    s3 = start([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)], env,
               logs / "s3.log")  # fmt: skip
    daemon: subprocess.Popen[bytes] | None = None
    try:
        wait_for_port(s3_port, "the S3 server (moto)")
        boto3.client("s3", endpoint_url=env["FACTORY_S3_ENDPOINT_URL"]).create_bucket(Bucket=bucket)
        import dagster as dg

        instance = dg.DagsterInstance.get()  # creates the schema in the new database
        t_daemon = time.perf_counter()
        daemon = start([str(BIN / "dagster-daemon"), "run", "-w", str(REPO / "workspace.yaml")],
                       env, logs / "daemon.log")  # fmt: skip
        with TreeMemory([s3.pid, daemon.pid]) as memory:
            topics = generated_topics(TOPICS)
            inbox = home / "inbox" / CHANNEL
            inbox.mkdir(parents=True)
            staged = home / "batch.csv"
            staged.write_text(topics_csv(topics), encoding="utf-8")
            # Submitted the way a user does: one file into the channel's inbox.
            t0 = time.perf_counter()
            os.replace(staged, inbox / "batch.csv")
            print(
                f"batch   {len(topics)} topics ({sum(lang == 'ru' for _, lang in topics)} Russian)"
                f" submitted to {inbox} (the daemon was started {t0 - t_daemon:.1f}s before: its"
                " start-up counts in wall_s)",
                flush=True,
            )
            records = wait_for_batch(instance, len(topics), time.monotonic() + TIMEOUT_S)
            wall_s = time.perf_counter() - t0
        figures = report(instance, records, wall_s, memory, home)
        keep_batch_page(instance, home)
        return figures
    finally:
        if daemon is not None:
            stop(daemon)
        stop(s3)


def report(instance: object, records: list[object], wall_s: float, memory: TreeMemory,
           home: Path) -> dict[str, float | int]:  # fmt: skip
    import dagster as dg

    from factory_assets.status import failure_reason
    from factory_resources.ffmpeg import probe

    ok, failures = 0, []
    per_stage: dict[str, list[float]] = {}
    starts: list[float] = []
    for record in records:
        run = record.dagster_run  # type: ignore[attr-defined]
        key = run.tags.get("dagster/partition", "?")
        video = home / "topics" / key / "video.mp4"
        if run.status == dg.DagsterRunStatus.SUCCESS:
            info = probe(video) if video.is_file() else None
            if info is None or (info.width, info.height) != (1080, 1920):
                failures.append((key, f"run succeeded but {video.name} is missing or off-spec"))
            else:
                ok += 1
            with contextlib.suppress(BenchError):
                for step, seconds in stage_times(instance, run.run_id):
                    per_stage.setdefault(step, []).append(seconds)
        else:
            failures.append((key, failure_reason(instance, run.run_id)))  # type: ignore[arg-type]
        if record.start_time:  # type: ignore[attr-defined]
            starts.append(record.start_time - record.create_timestamp.timestamp())  # type: ignore[attr-defined]

    print(f"done    {ok} videos, {len(failures)} failed, wall {wall_s:.1f}s, "
          f"{ok / (wall_s / 3600):.1f} topics/hour, cpus {os.cpu_count()}")  # fmt: skip
    width = max((len(s) for s in per_stage), default=5)
    print(f"stage {'':<{width}}  median     p95   (seconds, over the batch's runs)")
    for step, values in per_stage.items():
        print(
            f"stage {step:<{width}} {statistics.median(values):7.2f} {percentile(values, 0.95):7.2f}"
        )
    if starts:
        print(f"run start (queued -> RUN_START) median {statistics.median(starts):.1f}s, "
              f"p95 {percentile(starts, 0.95):.1f}s")  # fmt: skip
    for key, reason in failures:
        print(f"failed  {key}: {reason}")
    print(f"memory  peak summed rss {memory.peak_mb:.0f} MB over {memory.peak_processes} processes")
    verdict = "within" if wall_s <= TARGET_WALL_S else "OVER"
    print(f"note: target is {TOPICS} topics in <= {TARGET_WALL_S // 60} min on 2 cores; "
          f"this batch {wall_s / 60:.1f} min ({verdict})")  # fmt: skip
    return {"topics": len(records), "ok": ok, "failed": len(failures), "wall_s": wall_s,
            "peak_rss_mb": round(memory.peak_mb)}  # fmt: skip


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def keep_batch_page(instance: object, home: Path) -> None:
    """The batch's HTML page (what batch_pages_sensor keeps current), written once more now that
    every run has finished and copied with its thumbnails to .artifacts/bench-batch/."""
    from factory_assets.report import write_batch_pages
    from factory_assets.status import all_statuses
    from factory_resources.store import MediaStore

    store = MediaStore(home=str(home))
    folder = home / "reports" / "batches"
    pages = write_batch_pages(instance, store, all_statuses(instance, store), folder)  # type: ignore[arg-type]
    target = Path(os.environ.get("FACTORY_TEST_ARTIFACTS") or REPO / ".artifacts") / "bench-batch"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(folder, target)
    print(f"report  {target / pages[-1].name} (index: {target / 'index.html'})")


def main() -> int:
    # SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so the daemon, its runs, the S3
    # server and the scratch database are cleaned up either way.
    signal.signal(signal.SIGTERM, _interrupted)
    home = Path(tempfile.mkdtemp(prefix="factory-batch-")).resolve()
    keep = os.environ.get("BENCH_KEEP") == "1"
    try:
        with scratch_database() as db_url:
            figures = run_bench(home, db_url)
    except BenchError as exc:
        print(f"bench-batch: FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if keep:
            print(f"bench-batch: kept {home}", file=sys.stderr)
        else:
            shutil.rmtree(home, ignore_errors=True)
    print(
        f"bench-batch: topics={figures['topics']} ok={figures['ok']} failed={figures['failed']} "
        f"wall_s={figures['wall_s']:.1f} peak_rss_mb={figures['peak_rss_mb']}"
    )
    return 0 if figures["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
