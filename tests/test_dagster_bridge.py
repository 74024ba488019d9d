"""The Dagster bridge against a real dagster-webserver on loopback with PostgreSQL storage.

One webserver per module (its start-up takes seconds): a fresh database, a temporary
DAGSTER_HOME and FACTORY_HOME, the repository's workspace.yaml. Its instance uses the
DefaultRunCoordinator, so a run submitted through GraphQL is launched at once in a subprocess
(DefaultRunLauncher) without a daemon; backfills therefore stay requested (no daemon), which
is all the batch test needs. Fails (never skips) when PostgreSQL is down.

Not touched here: the weighting arithmetic (test_progress.py) and the API's routes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import httpx
import psycopg2
import pytest

from factory_api.dagster_bridge import BridgeError, GraphQLBridge, stage_of
from factory_core.progress import TopicProgress
from factory_resources.store import REPO_ROOT, MediaStore

from .conftest import make_request

PG_HOST = os.environ.get("FACTORY_TEST_PG_HOST", "127.0.0.1")
PG_USER = os.environ.get("FACTORY_TEST_PG_USER", "postgres")
TAGS = {"factory/owner": "alice", "factory/channel": "demo"}


@dataclass
class Server:
    url: str
    instance: dg.DagsterInstance
    home: Path
    bridge: GraphQLBridge


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _descendants(pid: int) -> list[int]:
    """Every process under `pid` (Linux /proc), children first found, deepest last."""
    found: list[int] = []
    stack = [pid]
    while stack:
        current = stack.pop()
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                children = [int(c) for c in task.read_text().split()]
            except OSError:
                continue
            found.extend(children)
            stack.extend(children)
    return found


def _stop(process: subprocess.Popen[bytes]) -> None:
    # Background jobs here may inherit an ignored SIGTERM (dagster-notes trap 8): end the
    # webserver's whole group, and kill it if it does not stop. The code server it spawned
    # may sit in a session of its own: it is found first and ended after the group.
    spawned = _descendants(process.pid)
    try:
        _stop_group(process)
    finally:
        for pid in spawned:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    database = f"factory_bridge_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(host=PG_HOST, port=5432, user=PG_USER, dbname="postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{database}"')
    root = tmp_path_factory.mktemp("bridge")
    dagster_home, factory_home = root / "dagster", root / "factory"
    dagster_home.mkdir()
    factory_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(
        f"""storage:
  postgres:
    postgres_url: postgresql://{PG_USER}@{PG_HOST}:5432/{database}
run_coordinator:
  module: dagster.core.run_coordinator
  class: DefaultRunCoordinator
telemetry:
  enabled: false
"""
    )
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "FACTORY_HOME": str(factory_home)}
    webserver = Path(sys.executable).with_name("dagster-webserver")
    log = (root / "webserver.log").open("wb")
    process = subprocess.Popen(
        [str(webserver), "-w", str(REPO_ROOT / "workspace.yaml"),
         "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, (root / "webserver.log").read_text()[-3000:]
            try:
                if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "dagster-webserver did not answer in 120 s"
            time.sleep(0.5)
        instance = dg.DagsterInstance.from_config(str(dagster_home))
        yield Server(url, instance, factory_home, GraphQLBridge(url, instance))
        instance.dispose()
    finally:
        _stop(process)
        log.close()
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()


def _saved_key(server: Server, topic: str) -> str:
    request = make_request("demo", topic, duration_s=15)
    MediaStore(home=str(server.home)).save_request(request)
    return request.key


@pytest.mark.slow
@pytest.mark.postgres
def test_create_short_launches_a_tagged_run_and_progress_follows_it(server: Server) -> None:
    key = _saved_key(server, "How lighthouses work")
    launched = server.bridge.create_short(key, TAGS)
    assert launched.run_id and launched.backfill_id is None
    run = server.instance.get_run_by_id(launched.run_id)
    assert run is not None and run.job_name == "produce_topic"
    assert run.tags["dagster/partition"] == key
    assert run.tags["factory/owner"] == "alice" and run.tags["factory/channel"] == "demo"
    assert server.instance.has_dynamic_partition("topics", key)

    seen: list[TopicProgress] = []
    deadline = time.monotonic() + 240  # a loaded 2-core machine; alone it takes about 40 s
    while time.monotonic() < deadline:
        progress = server.bridge.topic_progress([key])[key]
        seen.append(progress)
        if progress.state in ("done", "failed"):
            break
        time.sleep(0.5)
    final = seen[-1]
    assert final.state == "done", final.reason
    assert (final.progress, final.eta_s, final.run_id) == (1.0, None, launched.run_id)
    running = [p for p in seen if p.state == "running" and p.stage is not None]
    assert running, [p.state for p in seen]
    assert all(p.eta_s is not None and p.eta_s >= 0 for p in running)
    assert {p.stage for p in running} & {"voiceover", "scene_images", "video"}
    values = [p.progress for p in seen]
    assert values == sorted(values)  # never goes backwards

    # Publishing launches publish_topic; it is not mistaken for the topic's production run.
    posted = server.bridge.publish(key, {**TAGS, "factory/publish": "now"})
    publish_run = server.instance.get_run_by_id(posted.run_id or "")
    assert publish_run is not None and publish_run.job_name == "publish_topic"
    assert publish_run.tags["factory/publish"] == "now"
    assert publish_run.tags["dagster/partition"] == key
    assert server.bridge.topic_progress([key])[key].run_id == launched.run_id


@pytest.mark.slow
@pytest.mark.postgres
def test_create_batch_adds_partitions_and_one_backfill(server: Server) -> None:
    keys = [_saved_key(server, "Why the sea is salty"), _saved_key(server, "How bees see")]
    launched = server.bridge.create_batch(keys, TAGS)
    assert launched.backfill_id and launched.run_id is None
    backfill = server.instance.get_backfill(launched.backfill_id)
    assert backfill is not None
    assert list(backfill.partition_names or []) == keys
    assert backfill.tags["factory/owner"] == "alice"
    assert all(server.instance.has_dynamic_partition("topics", k) for k in keys)
    # No daemon here, so the backfill has made no runs yet: both topics wait in line.
    progress = server.bridge.topic_progress([*keys, "demo--never-added-00000000"])
    assert [progress[k].state for k in keys] == ["queued", "queued"]
    assert progress["demo--never-added-00000000"].state == "unknown"
    rollup, _ = server.bridge.batch_progress(keys)
    assert rollup.counts["queued"] == 2 and rollup.eta_s is not None and not rollup.finished


@pytest.mark.slow
@pytest.mark.postgres
def test_scheduled_and_failed_topics_read_from_storage(server: Server) -> None:
    scheduled, failed = "demo--scheduled-post-1a2b3c4d", "demo--failed-topic-5e6f7a8b"
    server.instance.add_dynamic_partitions("topics", [scheduled, failed])
    for key, status in ((scheduled, dg.DagsterRunStatus.SUCCESS),
                        (failed, dg.DagsterRunStatus.FAILURE)):  # fmt: skip
        server.instance.add_run(
            dg.DagsterRun(
                job_name="produce_topic",
                run_id=str(uuid.uuid4()),
                status=status,
                tags={"dagster/partition": key},
            )
        )
    server.instance.report_runless_asset_event(
        dg.AssetMaterialization(
            "publications", partition=scheduled, metadata={"state": "scheduled"}
        )
    )
    progress = server.bridge.topic_progress([scheduled, failed])
    assert progress[scheduled].state == "scheduled"
    assert progress[failed].state == "failed"
    assert "Dagster UI" in (progress[failed].reason or "")
    assert progress[failed].eta_s is None


@pytest.mark.slow
@pytest.mark.postgres
def test_a_refused_launch_names_the_job_and_topic(server: Server) -> None:
    wrong = GraphQLBridge(server.url, server.instance, repository_location_name="nowhere",
                          hold_connections=False)  # fmt: skip
    with pytest.raises(BridgeError, match=r"produce_topic.*demo--x-00000000|demo--x-00000000"):
        wrong.create_short("demo--x-00000000", TAGS)


def test_an_unreachable_webserver_is_a_clear_error() -> None:
    with dg.instance_for_test() as instance:
        bridge = GraphQLBridge(f"http://127.0.0.1:{_free_port()}", instance)
        with pytest.raises(BridgeError, match=r"cannot reach Dagster.*make api"):
            bridge.create_short("demo--x-00000000", TAGS)
        with pytest.raises(BridgeError, match="launching publish_topic for demo--x-00000000"):
            bridge.publish("demo--x-00000000", TAGS)
    with pytest.raises(ValueError, match="not an http"):
        GraphQLBridge("127.0.0.1:3000", dg.DagsterInstance.ephemeral())


@pytest.mark.parametrize(
    ("step", "stage"),
    [
        ("video", "video"),
        ("video_video_meets_spec", "video"),
        ("scene_images", "scene_images"),
        ("script_script_is_publishable", "script"),
        ("subtitles_captions_follow_narration", "subtitles"),
        ("batch_report", None),
    ],
)
def test_check_steps_belong_to_their_assets_stage(step: str, stage: str | None) -> None:
    assert stage_of(step) == stage
