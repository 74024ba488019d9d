"""Runs whose worker died are detected and retried, with the production profile's settings.

A real `dagster-daemon run` on a fresh PostgreSQL database serves a test-only code location
(tests/monitoring_defs.py). The instance file is deploy/production/dagster.yaml with only the
poll intervals shortened and compute logs kept on local disk (S3 has its own tests). The test
SIGKILLs the run worker of one run and checks that the run is marked failed and that run retries
launch a second run that succeeds; a run whose step fails is not retried.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from .deploy_support import descendants, end_group, fresh_database, start_group

pytestmark = [pytest.mark.postgres]

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PRODUCTION = REPO / "deploy" / "production" / "dagster.yaml"


def production_under_test(dagster_home: Path) -> dict[str, Any]:
    """The production profile, with the only changes a quick test needs."""
    config = yaml.safe_load(PRODUCTION.read_text())
    config["compute_logs"] = {
        "module": "dagster.core.storage.local_compute_log_manager",
        "class": "LocalComputeLogManager",
        "config": {"base_dir": str(dagster_home / "logs")},
    }
    config["run_monitoring"]["poll_interval_seconds"] = 1
    config["run_coordinator"]["config"] = {"dequeue_interval_seconds": 1}
    return config


@dataclass
class Deployment:
    instance: dg.DagsterInstance
    env: dict[str, str]
    daemon: subprocess.Popen[bytes]
    pid_dir: Path
    workspace: Path
    log: Path

    def launch(self, job: str) -> str:
        out = subprocess.run(
            [str(BIN / "dagster"), "job", "launch", "-w", str(self.workspace), "-j", job],
            env=self.env, cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
        runs = [r for r in self.instance.get_runs() if r.job_name == job and not r.parent_run_id]
        assert len(runs) == 1, out.stdout + out.stderr
        return runs[0].run_id

    def wait(self, what: str, check: Callable[[], Any], timeout_s: float = 90) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            assert self.daemon.poll() is None, self.log.read_text(errors="replace")[-3000:]
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}:\n{self.log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    base = tmp_path_factory.mktemp("monitoring")
    dagster_home, pid_dir = base / "dagster", base / "pids"
    dagster_home.mkdir()
    pid_dir.mkdir()
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(production_under_test(dagster_home)))
    workspace = base / "workspace.yaml"
    location = {
        "module_name": "tests.monitoring_defs",
        "attribute": "defs",
        "working_directory": str(REPO),
        "location_name": "monitoring",
    }
    workspace.write_text(yaml.safe_dump({"load_from": [{"python_module": location}]}))
    with fresh_database() as pg_url:
        env = {
            **os.environ,
            "DAGSTER_HOME": str(dagster_home),
            "DAGSTER_PG_URL": pg_url,
            "FACTORY_MEDIA_BUCKET": "unused-here",
            "FACTORY_TEST_MONITOR_DIR": str(pid_dir),
        }
        os.environ["DAGSTER_PG_URL"] = pg_url
        instance = dg.DagsterInstance.from_config(str(dagster_home))
        log = base / "daemon.log"
        daemon = start_group([str(BIN / "dagster-daemon"), "run", "-w", str(workspace)], env, log)
        try:
            yield Deployment(instance, env, daemon, pid_dir, workspace, log)
        finally:
            end_group(daemon)
            instance.dispose()
            os.environ.pop("DAGSTER_PG_URL", None)


def test_profile_under_test_is_production(tmp_path: Path) -> None:
    config = production_under_test(tmp_path)
    production = yaml.safe_load(PRODUCTION.read_text())
    for key in ("storage", "concurrency", "run_retries", "run_launcher"):
        assert config[key] == production[key]
    assert {k: v for k, v in config["run_monitoring"].items() if k != "poll_interval_seconds"} == {
        k: v for k, v in production["run_monitoring"].items() if k != "poll_interval_seconds"
    }
    assert production["run_monitoring"]["enabled"] is True
    assert production["run_retries"] == {
        "enabled": True,
        "max_retries": 2,
        "retry_on_asset_or_op_failure": False,
    }


def test_dead_worker_is_detected_and_the_run_retried(deployment: Deployment) -> None:
    dying = deployment.launch("worker_dies")
    failing = deployment.launch("step_fails")
    pid_file = deployment.pid_dir / f"{dying}.pid"
    worker_pid = int(
        deployment.wait("the run worker", lambda: pid_file.exists() and pid_file.read_text())
    )
    # The step runs in a run worker the daemon's code server started, not in this test.
    assert worker_pid in descendants(deployment.daemon.pid)
    os.kill(worker_pid, signal.SIGKILL)

    instance = deployment.instance

    def status(run_id: str) -> dg.DagsterRunStatus:
        return instance.get_run_by_id(run_id).status  # type: ignore[union-attr]

    deployment.wait("the dead run to fail", lambda: status(dying) == dg.DagsterRunStatus.FAILURE)
    messages = [e.message for e in instance.all_logs(dying)]
    # The code server that started the worker saw it die (DefaultRunLauncher has no health
    # check of its own for the monitoring daemon to call).
    crash = f"Run execution process for {dying} was terminated by signal 9 (SIGKILL)"
    assert any(crash in m for m in messages), messages

    def retry_of(run_id: str) -> dg.DagsterRun | None:
        children = [r for r in instance.get_runs() if r.parent_run_id == run_id]
        return children[0] if children else None

    retry = deployment.wait("the retry run", lambda: retry_of(dying))
    assert retry.tags["dagster/retry_number"] == "1"
    # The owner and channel tags go with the retry, so its limits still apply.
    assert retry.tags["factory/owner"] == "ada"
    deployment.wait(
        "the retry to succeed", lambda: status(retry.run_id) == dg.DagsterRunStatus.SUCCESS
    )
    assert int((deployment.pid_dir / f"{retry.run_id}.pid").read_text()) != worker_pid

    # An ordinary step failure is left to the asset's own retry policy: no new run.
    deployment.wait("the failing run", lambda: status(failing) == dg.DagsterRunStatus.FAILURE)
    deployment.wait(
        "the no-retry decision",
        lambda: any("Not retrying run" in (e.message or "") for e in instance.all_logs(failing)),
    )
    assert retry_of(failing) is None
