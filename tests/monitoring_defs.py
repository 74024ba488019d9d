"""Test-only code location for tests/test_run_monitoring.py: one job whose first run hangs until
the test kills its worker process, and one whose asset step fails (never to be retried)."""

import os
import time
from pathlib import Path

import dagster as dg

from factory_core.run_tags import topic_run_tags

RETRY_NUMBER_TAG = "dagster/retry_number"


def _note_pid(context: dg.OpExecutionContext) -> None:
    folder = Path(os.environ["FACTORY_TEST_MONITOR_DIR"])
    (folder / f"{context.run_id}.pid").write_text(str(os.getpid()))


@dg.op
def hold(context: dg.OpExecutionContext) -> str:
    _note_pid(context)
    if context.run.tags.get(RETRY_NUMBER_TAG) is None:
        time.sleep(300)  # the first run's worker is killed while it waits here
    return "done"


@dg.op
def refuse(context: dg.OpExecutionContext) -> None:
    raise dg.Failure(description="the provider refused the prompt", allow_retries=False)


# In-process, like produce_topic: the step runs in the run worker process itself.
@dg.job(executor_def=dg.in_process_executor, tags=topic_run_tags("ada", "demo"))
def worker_dies() -> None:
    hold()


@dg.job(executor_def=dg.in_process_executor, tags=topic_run_tags("ada", "demo"))
def step_fails() -> None:
    refuse()


defs = dg.Definitions(jobs=[worker_dies, step_fails])
