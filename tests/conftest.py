"""Shared fixtures. Every test gets its own FACTORY_HOME and Dagster instance; nothing touches
the user's `.factory/` folder. Rendered topics are made once per session and shared, because a
real render takes seconds.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from factory_assets.definitions import build_definitions
from factory_assets.partitions import topics
from factory_core.models import Language, TopicRequest
from factory_core.slugs import topic_key
from factory_resources.store import MediaStore
from tests.fakes.s3_server import s3_server  # noqa: F401  (an S3 server on 127.0.0.1)

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never write to the repository's .factory/ or the user's Dagster home."""
    monkeypatch.setenv("FACTORY_HOME", str(tmp_path / "factory-home"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)


def make_request(channel: str, topic: str, **fields: object) -> TopicRequest:
    return TopicRequest(key=topic_key(channel, topic), channel=channel, topic=topic, **fields)


@dataclass
class Rendered:
    home: Path
    instance: dg.DagsterInstance
    results: dict[str, dg.ExecuteInProcessResult]
    requests: dict[str, TopicRequest]

    def topic_dir(self, key: str) -> Path:
        return self.home / "topics" / key


def produce(
    home: Path, instance: dg.DagsterInstance, requests: list[TopicRequest]
) -> dict[str, dg.ExecuteInProcessResult]:
    store = MediaStore(home=str(home))
    for request in requests:
        store.save_request(request)
    instance.add_dynamic_partitions(topics.name, [r.key for r in requests])
    job = build_definitions(home=str(home)).resolve_job_def("produce_topic")
    return {
        r.key: job.execute_in_process(
            partition_key=r.key, instance=instance, raise_on_error=False, run_config=QUIET
        )
        for r in requests
    }


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rendered]:
    """An English and a Russian topic, rendered once through the whole graph."""
    home = tmp_path_factory.mktemp("rendered-home")
    requests = [
        make_request("demo", "Why octopuses have three hearts", duration_s=20),
        make_request("demo", "Почему небо голубое", language=Language.RU, duration_s=15),
    ]
    saved = os.environ.get("FACTORY_HOME")
    os.environ["FACTORY_HOME"] = str(home)
    try:
        with dg.instance_for_test() as instance:
            results = produce(home, instance, requests)
            yield Rendered(home, instance, results, {r.key: r for r in requests})
    finally:
        if saved is None:
            os.environ.pop("FACTORY_HOME", None)
        else:
            os.environ["FACTORY_HOME"] = saved
