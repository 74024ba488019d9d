"""A topic's steps on a real Celery worker: RabbitMQ on 127.0.0.1:5672, a worker process started
with deploy/celery/worker.yaml exactly as docs/deploy.md says, Dagster's storage on a fresh
PostgreSQL database. The run is launched by `dagster job execute` with FACTORY_EXECUTOR=celery,
so only the executor choice in factory_assets/execution.py sends the steps away.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from dagster_celery.make_app import make_app

from factory_assets.execution import DEFAULT_BROKER, celery_config, topic_executor
from factory_assets.partitions import topics
from factory_core.run_tags import topic_run_tags
from factory_resources.store import MediaStore

from .conftest import make_request
from .deploy_support import descendants, end_group, fresh_database, start_group

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TOPIC_ASSETS = ["script", "voiceover", "scene_images", "subtitles", "video", "thumbnail"]


@dataclass
class CeleryRun:
    key: str
    home: Path
    instance: dg.DagsterInstance
    run: dg.DagsterRun
    worker_name: str
    worker_pids: set[int]
    launcher_pid: int
    wall_s: float


def _instance_yaml(dagster_home: Path) -> None:
    (dagster_home / "dagster.yaml").write_text(
        "storage:\n  postgres:\n    postgres_url: {env: DAGSTER_PG_URL}\n"
        "compute_logs:\n  module: dagster.core.storage.local_compute_log_manager\n"
        f"  class: LocalComputeLogManager\n  config: {{base_dir: {dagster_home / 'logs'}}}\n"
        "telemetry: {enabled: false}\n"
    )


def _purge() -> None:
    """Tasks a failed earlier attempt left on the queue would run on this test's worker."""
    make_app({"broker": DEFAULT_BROKER, "backend": "rpc://"}).control.purge()


def _wait_ready(worker: subprocess.Popen[bytes], log: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if " ready." in log.read_text(errors="replace"):
            return
        if worker.poll() is not None:
            break
        time.sleep(0.5)
    raise AssertionError(f"celery worker did not start:\n{log.read_text(errors='replace')}")


@pytest.fixture(scope="module")
def celery_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CeleryRun]:
    base = tmp_path_factory.mktemp("celery")
    dagster_home, home = base / "dagster", base / "home"
    dagster_home.mkdir()
    _instance_yaml(dagster_home)
    request = make_request("demo", "How lighthouses work", duration_s=15)
    MediaStore(home=str(home)).save_request(request)
    with fresh_database() as pg_url:
        env = {
            **os.environ,
            # `dagster-celery worker start` runs `celery` from PATH, as in an activated venv.
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "FACTORY_HOME": str(home),
            "DAGSTER_HOME": str(dagster_home),
            "DAGSTER_PG_URL": pg_url,
            "FACTORY_EXECUTOR": "celery",
            "FACTORY_CELERY_BROKER": DEFAULT_BROKER,
        }
        # The instance the worker and the launcher load, read the same way here.
        os.environ["DAGSTER_PG_URL"] = pg_url
        instance = dg.DagsterInstance.from_config(str(dagster_home))
        instance.add_dynamic_partitions(topics.name, [request.key])
        _purge()
        worker_name = f"factory-test-{uuid.uuid4().hex[:6]}"
        worker_log = base / "worker.log"
        worker = start_group(
            [
                str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
                "-y", str(REPO / "deploy" / "celery" / "worker.yaml"), "-n", worker_name,
                "--", "--concurrency=1",
            ],
            env,
            worker_log,
        )  # fmt: skip
        try:
            _wait_ready(worker, worker_log)
            worker_pids = {worker.pid} | descendants(worker.pid)
            tags = {"dagster/partition": request.key, **topic_run_tags("ada", "demo")}
            started = time.monotonic()
            launcher = subprocess.Popen(
                [
                    str(BIN / "dagster"), "job", "execute", "-m", "factory_assets.definitions",
                    "-a", "defs", "-j", "produce_topic", "--tags", json.dumps(tags),
                ],
                env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            )  # fmt: skip
            output, _ = launcher.communicate(timeout=300)
            wall_s = time.monotonic() - started
            worker_pids |= descendants(worker.pid)
            runs = instance.get_runs()
            assert len(runs) == 1, output.decode(errors="replace")[-3000:]
            yield CeleryRun(
                request.key,
                home,
                instance,
                runs[0],
                worker_name,
                worker_pids,
                launcher.pid,
                wall_s,
            )
        finally:
            end_group(worker)
            _purge()
            instance.dispose()
            os.environ.pop("DAGSTER_PG_URL", None)


def test_executor_choice_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FACTORY_EXECUTOR", raising=False)
    assert topic_executor() is dg.in_process_executor
    monkeypatch.setenv("FACTORY_EXECUTOR", "celery")
    assert topic_executor().name == "celery"
    # The broker URL (it may carry a password) stays an env reference when it is set.
    monkeypatch.setenv("FACTORY_CELERY_BROKER", "pyamqp://u:secret@broker:5672//")
    assert celery_config()["broker"] == {"env": "FACTORY_CELERY_BROKER"}
    monkeypatch.setenv("FACTORY_EXECUTOR", "kubernetes")
    with pytest.raises(ValueError, match=r"FACTORY_EXECUTOR='kubernetes'.*in_process, celery"):
        topic_executor()


def test_topic_run_succeeds_with_celery(celery_run: CeleryRun) -> None:
    assert celery_run.run.status == dg.DagsterRunStatus.SUCCESS
    assert celery_run.run.tags["factory/owner"] == "ada"
    for asset in TOPIC_ASSETS:
        materialized = celery_run.instance.get_materialized_partitions(dg.AssetKey(asset))
        assert celery_run.key in materialized, asset
    video = celery_run.home / "topics" / celery_run.key / "video.mp4"
    assert video.stat().st_size > 10_000
    print(f"celery topic run: wall_s={celery_run.wall_s:.1f}")


def test_steps_ran_in_the_worker_processes(celery_run: CeleryRun) -> None:
    records = celery_run.instance.get_records_for_run(celery_run.run.run_id).records
    events = [
        r.event_log_entry.dagster_event for r in records if r.event_log_entry.is_dagster_event
    ]
    starts = {e.step_key: e.pid for e in events if e.event_type == dg.DagsterEventType.STEP_START}
    assert set(TOPIC_ASSETS) <= set(starts)
    # Every step started in a process of the worker's tree, none in the launching process.
    assert set(starts.values()) <= celery_run.worker_pids, (starts, celery_run.worker_pids)
    assert celery_run.launcher_pid not in starts.values()
    assert os.getpid() not in starts.values()
    (run_start,) = [e for e in events if e.event_type == dg.DagsterEventType.RUN_START]
    assert run_start.pid == celery_run.launcher_pid
    # And Celery says which worker took each step.
    handed = [
        e
        for e in events
        if e.event_type == dg.DagsterEventType.ENGINE_EVENT
        and "in celery worker" in (e.message or "")
    ]
    assert {e.step_key for e in handed} >= set(TOPIC_ASSETS)
    hosts = {str(e.engine_event_data.metadata["Celery worker"].value) for e in handed}
    assert hosts and all(h.startswith(f"{celery_run.worker_name}@") for h in hosts)
