"""A bounded load test of the API's list and status endpoints on loopback, PostgreSQL behind.

Sets up a temporary FACTORY_HOME and two fresh PostgreSQL databases (the project's tables via
FACTORY_DB_URL, and the Dagster instance's storage), seeds one user with an API key, a channel,
an offline voice and ~50 topics as records only (request files, dynamic partitions, and fake
runs in every state: nothing is rendered), then serves `factory_api.app:app` with uvicorn in a
subprocess and sends a fixed number of requests from a few concurrent clients over:

    GET /v1/videos, GET /v1/videos/{key}/status, GET /v1/voices, GET /v1/characters,
    GET /v1/batches/{id}

Prints each endpoint's p50/p95/max and ends with exactly one line
`bench-api: requests=N p95_ms=X errors=E`. Everything it made is removed at the end. Reads
need no Dagster webserver (the bridge reads the instance), so none is started.

    python -m bench.api_bench [--requests 2000] [--concurrency 8] [--topics 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg2

REPO_ROOT = Path(__file__).resolve().parent.parent
PG_HOST = os.environ.get("FACTORY_TEST_PG_HOST", "127.0.0.1")
PG_USER = os.environ.get("FACTORY_TEST_PG_USER", "postgres")
TIME_LIMIT_S = 180.0  # the load stops here whatever is left, so the bench always ends
OWNER, CHANNEL = "bench", "benchchan"


@dataclass
class Seeded:
    api_key: str
    keys: list[str]
    batch_id: str


@dataclass
class Samples:
    latencies_ms: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    first_error: str | None = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def databases(*names: str) -> Iterator[dict[str, str]]:
    admin = psycopg2.connect(host=PG_HOST, port=5432, user=PG_USER, dbname="postgres")
    admin.autocommit = True
    made: list[str] = []
    try:
        urls = {}
        for name in names:
            database = f"bench_api_{name}_{uuid.uuid4().hex[:8]}"
            with admin.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{database}"')
            made.append(database)
            urls[name] = f"postgresql://{PG_USER}@{PG_HOST}:5432/{database}"
        yield urls
    finally:
        with admin.cursor() as cur:
            for database in made:
                cur.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()


def seed(home: Path, topic_count: int) -> Seeded:
    """The records a creator with a running batch has; runs are faked through the instance."""
    import dagster as dg

    from factory_assets.partitions import topics
    from factory_core.models import ChannelProfile
    from factory_core.topics_file import parse_topic_file
    from factory_resources.project_db import project_engine
    from factory_resources.store import MediaStore
    from factory_resources.tenancy import Tenancy

    tenancy = Tenancy(project_engine(home), home)
    _, api_key = tenancy.create_user(OWNER, plan="pro")
    tenancy.create_channel(OWNER, ChannelProfile(name=CHANNEL))
    rows = [{"topic": f"Bench topic number {i}: why things happen", "duration": 30}
            for i in range(topic_count)]  # fmt: skip
    batch = parse_topic_file("bench.yaml", json.dumps(rows).encode(), channel=CHANNEL,
                             default_duration_s=30, existing_keys=[])  # fmt: skip
    store = MediaStore(home=str(home))
    for request in batch.accepted:
        store.save_request(request)
    keys = [r.key for r in batch.accepted]

    instance = dg.DagsterInstance.get()
    instance.add_dynamic_partitions(topics.name, keys)
    # A batch in flight: most done, some failed, a few running or queued, the rest not started.
    # (A queued run needs a code origin to be faked; "not started" reads as queued too.)
    statuses = [dg.DagsterRunStatus.SUCCESS] * 30 + [dg.DagsterRunStatus.FAILURE] * 5
    statuses += [dg.DagsterRunStatus.STARTED] * 3 + [dg.DagsterRunStatus.NOT_STARTED] * 5
    for key, status in zip(keys, statuses, strict=False):
        instance.add_run(
            dg.DagsterRun(
                job_name="produce_topic",
                run_id=str(uuid.uuid4()),
                status=status,
                tags={"dagster/partition": key, "factory/owner": OWNER, "factory/channel": CHANNEL},
            )
        )
        if status == dg.DagsterRunStatus.SUCCESS:
            state = "scheduled" if key in keys[:5] else "published"
            instance.report_runless_asset_event(
                dg.AssetMaterialization("publications", partition=key, metadata={"state": state})
            )
    instance.dispose()

    batch_id = uuid.uuid4().hex
    record = {"id": batch_id, "owner": OWNER, "channel": CHANNEL, "backfill_id": "benchbf",
              "created_at": datetime.now(UTC).isoformat(),
              "rows": [v.model_dump() for v in batch.verdicts]}  # fmt: skip
    store.write_json(home / "api" / "batches" / f"{batch_id}.json", record)
    return Seeded(api_key, keys, batch_id)


@contextmanager
def api_server(env: dict[str, str], log: Path) -> Iterator[str]:
    port = _free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "factory_api.app:app", "--host", "127.0.0.1",
             "--port", str(port), "--log-level", "warning", "--no-access-log",
             # As `make api` serves it: one process per core.
             "--workers", os.environ.get("API_WORKERS", "2")],
            cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"uvicorn exited early:\n{log.read_text()[-3000:]}")
                try:
                    if httpx.get(f"{url}/openapi.json", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"uvicorn did not answer in 60 s:\n{log.read_text()[-3000:]}"
                    )
                time.sleep(0.3)
            yield url
        finally:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(process.pid, sig)
                    process.wait(timeout=10)
                    break
                except ProcessLookupError:
                    break
                except subprocess.TimeoutExpired:
                    continue


def plan_requests(seeded: Seeded, count: int, rng: random.Random) -> list[tuple[str, str]]:
    """(endpoint name, path), the five endpoints in equal shares, shuffled."""
    endpoints = [
        ("GET /v1/videos", lambda: "/v1/videos"),
        ("GET /v1/videos/{key}/status", lambda: f"/v1/videos/{rng.choice(seeded.keys)}/status"),
        ("GET /v1/voices", lambda: "/v1/voices"),
        ("GET /v1/characters", lambda: "/v1/characters"),
        ("GET /v1/batches/{id}", lambda: f"/v1/batches/{seeded.batch_id}"),
    ]
    planned = [(name, make()) for i in range(count) for name, make in [endpoints[i % 5]]]
    rng.shuffle(planned)
    return planned


class _Connection:
    """One keep-alive HTTP/1.1 connection that sends GETs and reads whole answers. The load
    generator shares the server's 2 cores, so it is kept as lean as `wrk` would be: httpx's
    own per-request work was a large share of the CPU the measured latencies waited for."""

    def __init__(self, host: str, port: int, api_key: str) -> None:
        self.host, self.port = host, port
        self.head = f"Host: {host}:{port}\r\nAuthorization: Bearer {api_key}\r\n\r\n".encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, bytes]:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(f"GET {path} HTTP/1.1\r\n".encode() + self.head)
        await self.writer.drain()
        header = await self.reader.readuntil(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {
            k.strip().lower(): v.strip()
            for k, _, v in (line.partition(":") for line in lines[1:] if line)
        }
        if "content-length" not in fields:
            raise RuntimeError(f"{path}: no content-length in the answer")
        body = await self.reader.readexactly(int(fields["content-length"]))
        if fields.get("connection", "").lower() == "close":
            self.writer.close()
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def load(url: str, api_key: str, planned: list[tuple[str, str]], concurrency: int) -> Samples:
    samples = Samples()
    queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    for item in planned:
        queue.put_nowait(item)
    deadline = time.monotonic() + TIME_LIMIT_S
    parts = httpx.URL(url)
    connections = [_Connection(parts.host, parts.port or 80, api_key) for _ in range(concurrency)]

    async def worker(connection: _Connection) -> None:
        while not queue.empty() and time.monotonic() < deadline:
            name, path = queue.get_nowait()
            started = time.perf_counter()
            try:
                status, body = await asyncio.wait_for(connection.get(path), timeout=30)
                problem = None if status == 200 else f"{name}: HTTP {status} {body[:200]!r}"
            except (TimeoutError, OSError, RuntimeError, ValueError,
                    asyncio.IncompleteReadError) as exc:  # fmt: skip
                connection.close()
                connection.writer = None
                problem = f"{name}: {type(exc).__name__} {exc}"
            elapsed = (time.perf_counter() - started) * 1000
            samples.latencies_ms.setdefault(name, []).append(elapsed)
            if problem:
                samples.errors[name] = samples.errors.get(name, 0) + 1
                samples.first_error = samples.first_error or problem

    try:
        await asyncio.gather(*(worker(c) for c in connections))
    finally:
        for connection in connections:
            connection.close()
    return samples


def percentile(values: list[float], share: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(share * 100) - 1]


def report(samples: Samples) -> str:
    lines = [f"{'endpoint':<30} {'n':>5} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'errors':>6}"]
    for name, values in sorted(samples.latencies_ms.items()):
        lines.append(f"{name:<30} {len(values):>5} {percentile(values, 0.5):>8.1f} "
                     f"{percentile(values, 0.95):>8.1f} {max(values):>8.1f} "
                     f"{samples.errors.get(name, 0):>6}")  # fmt: skip
    every = [v for values in samples.latencies_ms.values() for v in values]
    errors = sum(samples.errors.values())
    if samples.first_error:
        lines.append(f"first error: {samples.first_error}")
    p95 = percentile(every, 0.95) if every else float("nan")
    lines.append(f"bench-api: requests={len(every)} p95_ms={p95:.1f} errors={errors}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--topics", type=int, default=50)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="api-bench-"))
    try:
        with databases("project", "dagster") as urls:
            home, dagster_home = work / "factory", work / "dagster"
            home.mkdir()
            dagster_home.mkdir()
            (dagster_home / "dagster.yaml").write_text(
                f"storage:\n  postgres:\n    postgres_url: {urls['dagster']}\n"
                "telemetry:\n  enabled: false\n"
            )
            env = {**os.environ, "FACTORY_HOME": str(home), "DAGSTER_HOME": str(dagster_home),
                   "FACTORY_DB_URL": urls["project"],
                   # Launches are not measured; a closed port makes any launch fail fast.
                   "FACTORY_DAGSTER_URL": f"http://127.0.0.1:{_free_port()}"}  # fmt: skip
            os.environ.update(env)
            started = time.perf_counter()
            seeded = seed(home, args.topics)
            print(f"seeded {len(seeded.keys)} topics in {time.perf_counter() - started:.1f} s")
            with api_server(env, work / "uvicorn.log") as url:
                headers = {"Authorization": f"Bearer {seeded.api_key}"}
                voice = httpx.post(f"{url}/v1/voices/offline", json={"name": "narrator"},
                                   headers=headers, timeout=30)  # fmt: skip
                if voice.status_code != 201:
                    print(f"note: the offline voice was not made ({voice.status_code}): "
                          f"{voice.text[:200]}")  # fmt: skip
                rng = random.Random(7)
                # Warm-up (not counted): first requests open pools and fill caches, in every
                # worker process (hence the same concurrency as the measured load).
                warm_up = plan_requests(seeded, 200, rng)
                asyncio.run(load(url, seeded.api_key, warm_up, args.concurrency))
                planned = plan_requests(seeded, args.requests, rng)
                started = time.perf_counter()
                samples = asyncio.run(load(url, seeded.api_key, planned, args.concurrency))
                took = time.perf_counter() - started
                sent = sum(len(v) for v in samples.latencies_ms.values())
                print(f"{sent} requests in {took:.1f} s ({sent / took:.0f}/s), "
                      f"concurrency {args.concurrency}")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(report(samples))
    return 0 if sum(samples.errors.values()) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
