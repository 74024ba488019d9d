"""Which executor runs a topic's steps: in the run's own process (the default), or on Celery
workers on any machine that reaches the broker, PostgreSQL and the media bucket."""

from __future__ import annotations

import os

import dagster as dg

EXECUTOR_ENV = "FACTORY_EXECUTOR"
BROKER_ENV = "FACTORY_CELERY_BROKER"
DEFAULT_BROKER = "pyamqp://guest:guest@127.0.0.1:5672//"
# Results travel back over the broker itself: no second service to run (the redis client
# package is not a dependency). Step events go to the Dagster instance either way.
RESULT_BACKEND = "rpc://"
EXECUTORS = ("in_process", "celery")


class ExecutorChoiceError(ValueError):
    pass


def executor_name() -> str:
    name = os.environ.get(EXECUTOR_ENV, "").strip() or "in_process"
    if name not in EXECUTORS:
        raise ExecutorChoiceError(
            f"{EXECUTOR_ENV}={name!r} is not an executor; use one of: {', '.join(EXECUTORS)}"
        )
    return name


def celery_config() -> dict[str, object]:
    """The executor's config; deploy/celery/worker.yaml gives the workers the same broker.
    A broker URL set in the environment stays a `{env: ...}` reference, so its password is read
    where the run starts and never lands in the job's definition or the run record."""
    broker: object = {"env": BROKER_ENV} if os.environ.get(BROKER_ENV) else DEFAULT_BROKER
    return {"broker": broker, "backend": RESULT_BACKEND}


def topic_executor() -> dg.ExecutorDefinition:
    """`in_process` (default): one process per run, steps in order. A topic's stages are
    sequential anyway, and a subprocess per step would re-import the code (seconds each on 2
    cores). `celery`: each step is a Celery task, so runs spread over workers on many machines
    (pools and run limits still apply: they live in the instance)."""
    if executor_name() == "celery":
        # Imported here: the default path never pays for celery's import.
        from dagster_celery import celery_executor

        return celery_executor.configured(celery_config(), name="celery")
    return dg.in_process_executor
