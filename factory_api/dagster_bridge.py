"""How the API talks to Dagster: launches through the webserver's GraphQL API, reads from storage.

Launches go through Dagster's GraphQL API (the webserver on 127.0.0.1, `make api` starts it), as
the UI's own do, so the daemon, run queue and run coordinator treat them like any other run:
`DagsterGraphQLClient.submit_job_execution` for one topic, raw GraphQL for what the client lacks
(`addDynamicPartition`, sent for many keys in one request with aliases, and
`launchPartitionBackfill` over the `produce_topic` job's partition set for a batch).

Reads (progress, ETA, batch status) come straight from the Dagster instance's storage, which is
what the GraphQL resolvers read too, without an HTTP hop: list and status endpoints must answer
in milliseconds. `topic_progress` costs one run query for any number of topics, two more for the
publication state of finished ones, one per run still in flight (at most the run queue's limit)
and one or two per failed run the first time it is seen; step-duration medians are cached.
The arithmetic (weights, ETA, rollups) is factory_core/progress.py.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import dagster as dg
import httpx
import sqlalchemy as sa
from dagster._core.execution.stats import RunStepKeyStatsSnapshot, StepEventStatus
from dagster._core.storage.runs.schema import RunsTable, RunTagsTable
from dagster._core.storage.runs.sql_run_storage import SqlRunStorage
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError
from pydantic import BaseModel

from factory_assets.partitions import topics
from factory_assets.status import (
    DAGSTER_URL_ENV,
    dagster_url,
    failure_reason,
    run_phase,
)
from factory_core.progress import (
    TOPIC_STAGES,
    BatchProgress,
    RunPhase,
    RunSnapshot,
    StageTimes,
    TopicFacts,
    TopicProgress,
    TopicState,
    batch_progress,
)
from factory_core.progress import topic_progress as estimate_progress
from factory_sensors.jobs import produce_topic, publish_topic

__all__ = [
    "DAGSTER_URL_ENV",
    "BridgeError",
    "DagsterBridge",
    "GraphQLBridge",
    "LaunchResult",
    "TopicProgress",
    "TopicState",
    "default_bridge",
]

PARTITION_TAG = "dagster/partition"
PUBLICATIONS = dg.AssetKey("publications")
# Definitions (not a @repository) always load as this repository name.
DEFAULT_REPOSITORY = "__repository__"
DEFAULT_LOCATION = "factory"  # workspace.yaml's location_name


_ADD_PARTITION_FIELDS = """__typename
  ... on AddDynamicPartitionSuccess { partitionKey }
  ... on DuplicateDynamicPartitionError { partitionName }
  ... on UnauthorizedError { message }
  ... on PythonError { message }"""

_LAUNCH_BACKFILL = """mutation LaunchTopicBackfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PartitionSetNotFoundError { message }
    ... on InvalidSubsetError { message }
    ... on UnauthorizedError { message }
    ... on PythonError { message }
  }
}"""


class BridgeError(RuntimeError):
    """Dagster refused or could not be reached; the message names what failed and where."""


class LaunchResult(BaseModel):
    run_id: str | None = None  # one topic
    backfill_id: str | None = None  # a batch


class DagsterBridge(Protocol):
    def create_short(self, topic_key: str, tags: dict[str, str]) -> LaunchResult:
        """Adds the topic's partition and launches produce_topic for it."""
        ...

    def create_batch(self, topic_keys: list[str], tags: dict[str, str]) -> LaunchResult:
        """Adds the partitions and launches one backfill of produce_topic over them."""
        ...

    def publish(self, topic_key: str, tags: dict[str, str]) -> LaunchResult:
        """Launches publish_topic for the topic (tags may carry factory/publish=now)."""
        ...

    def topic_progress(self, topic_keys: list[str]) -> dict[str, TopicProgress]:
        """Each topic's state, stage, progress and ETA, in one pass over the instance."""
        ...


def stage_of(step_key: str, stages: Sequence[str] = TOPIC_STAGES) -> str | None:
    """The stage a step belongs to: the asset's own step, or one of its checks
    (`video_video_meets_spec` is part of `video`: the next stage waits for it)."""
    if step_key in stages:
        return step_key
    matches = [s for s in stages if step_key.startswith(f"{s}_")]
    return max(matches, key=len) if matches else None


@dataclass(frozen=True)
class RunRow:
    """The few columns of a run that progress needs (no run body to deserialize)."""

    run_id: str
    partition: str
    status: dg.DagsterRunStatus
    start_time: float | None
    updated_at: float | None

    @property
    def phase(self) -> RunPhase:
        return run_phase(self.status)


def run_snapshot(
    run: RunRow,
    steps: Sequence[RunStepKeyStatsSnapshot],
    reason: str | None = None,
    stages: Sequence[str] = TOPIC_STAGES,
) -> RunSnapshot:
    """The stages a run finished, the one it is in and since when, from its step stats."""
    first_start: dict[str, float] = {}
    succeeded: set[str] = set()
    running: set[str] = set()
    failed: str | None = None
    for step in steps:
        stage = stage_of(step.step_key, stages)
        if stage is None:
            continue
        if step.start_time is not None:
            first_start[stage] = min(first_start.get(stage, step.start_time), step.start_time)
        if step.status == StepEventStatus.IN_PROGRESS:
            running.add(stage)
        elif step.status == StepEventStatus.FAILURE:
            failed = failed or stage
        elif step.status == StepEventStatus.SUCCESS and step.step_key == stage:
            succeeded.add(stage)
    done = [s for s in stages if s in succeeded and s not in running]
    current = next((s for s in stages if s in running), None)
    return RunSnapshot(
        run_id=run.run_id,
        phase=run.phase,
        started_at=run.start_time,
        updated_at=run.updated_at,
        stages_done=done,
        current_stage=current,
        current_started_at=first_start.get(current) if current else None,
        failed_stage=failed,
        failure_reason=reason,
    )


def _epoch(value: datetime | None) -> float | None:
    """Run storages keep naive UTC datetimes."""
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def stage_durations(
    steps: Iterable[RunStepKeyStatsSnapshot], stages: Sequence[str] = TOPIC_STAGES
) -> dict[str, float]:
    """Seconds from a stage's first step start to its last step end (checks included)."""
    spans: dict[str, tuple[float, float]] = {}
    for step in steps:
        stage = stage_of(step.step_key, stages)
        if stage is None or step.start_time is None or step.end_time is None:
            continue
        start, end = spans.get(stage, (step.start_time, step.end_time))
        spans[stage] = (min(start, step.start_time), max(end, step.end_time))
    return {stage: end - start for stage, (start, end) in spans.items()}


class GraphQLBridge:
    """The API's `DagsterBridge`: GraphQL for launches, the instance for reads."""

    def __init__(
        self,
        webserver_url: str,
        instance: dg.DagsterInstance,
        repository_location_name: str = DEFAULT_LOCATION,
        repository_name: str = DEFAULT_REPOSITORY,
        timeout_s: float = 30.0,
        parallel_runs: int | None = None,
        durations_ttl_s: float = 300.0,
        duration_sample_runs: int = 10,
        hold_connections: bool = True,
        facts_ttl_s: float = 1.0,
    ) -> None:
        parts = urlsplit(webserver_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"webserver_url {webserver_url!r} is not an http(s) URL; "
                "pass e.g. http://127.0.0.1:3000 (where `make api` serves Dagster)"
            )
        self.webserver_url = webserver_url.rstrip("/")
        self.graphql_url = f"{self.webserver_url}/graphql"
        self._parts = parts
        self.instance = instance
        if hold_connections:
            # dagster-postgres opens a connection per query unless told it serves a webserver
            # (tens of ms each); the API is one, so keep a small pool as dagster-webserver does.
            instance.optimize_for_webserver(
                statement_timeout=int(timeout_s * 1000), pool_recycle=3600, max_overflow=10
            )
        self.repository = {
            "repositoryLocationName": repository_location_name,
            "repositoryName": repository_name,
        }
        self.timeout_s = timeout_s
        self._parallel_runs = parallel_runs
        self._durations_ttl_s = durations_ttl_s
        self._duration_sample_runs = duration_sample_runs
        self._client: DagsterGraphQLClient | None = None
        self._lock = threading.Lock()
        self._times: tuple[float, StageTimes] | None = None
        # Finished runs never change: their step stats and failure reasons are read once.
        self._finished: dict[str, tuple[list[RunStepKeyStatsSnapshot], str | None]] = {}
        self._publication_state_by_id: dict[int, str | None] = {}
        # What the instance said about each topic, for `facts_ttl_s`: clients poll status
        # endpoints many times a second, and a second-old state is as good to them; progress
        # and ETA are still computed at the moment of each request.
        self._facts_ttl_s = facts_ttl_s
        self._recent_facts: dict[str, tuple[float, TopicFacts]] = {}

    # ---- launches (GraphQL) ----

    def create_short(self, topic_key: str, tags: dict[str, str]) -> LaunchResult:
        self.add_partitions([topic_key])
        return LaunchResult(run_id=self._submit(produce_topic.name, topic_key, tags))

    def create_batch(self, topic_keys: list[str], tags: dict[str, str]) -> LaunchResult:
        if not topic_keys:
            raise ValueError("create_batch needs at least one topic key")
        self.add_partitions(topic_keys)
        params = {
            "selector": {
                # define_asset_job names its partition set `<job>_partition_set`; a job backfill
                # makes produce_topic runs (one per topic), which topic_progress follows.
                "partitionSetName": f"{produce_topic.name}_partition_set",
                "repositorySelector": self.repository,
            },
            "partitionNames": list(topic_keys),
            "tags": [{"key": k, "value": str(v)} for k, v in tags.items()],
            "title": f"{len(topic_keys)} topics",
        }
        data = self._graphql(
            _LAUNCH_BACKFILL, {"params": params}, f"a backfill of {len(topic_keys)} topics"
        )
        outcome = data["launchPartitionBackfill"]
        if outcome.get("__typename") != "LaunchBackfillSuccess":
            raise BridgeError(
                f"Dagster refused the backfill of {produce_topic.name} over {len(topic_keys)} "
                f"topics ({outcome.get('__typename')}: {outcome.get('message', 'no message')})"
            )
        return LaunchResult(backfill_id=outcome["backfillId"])

    def publish(self, topic_key: str, tags: dict[str, str]) -> LaunchResult:
        return LaunchResult(run_id=self._submit(publish_topic.name, topic_key, tags))

    def add_partitions(self, topic_keys: Sequence[str]) -> None:
        """Adds the topics' partitions in one request; existing ones are left as they are."""
        if not topic_keys:
            return
        declarations = ", ".join(f"$k{i}: String!" for i in range(len(topic_keys)))
        fields = "\n".join(
            f"a{i}: addDynamicPartition(partitionKey: $k{i}, partitionsDefName: $defName, "
            f"repositorySelector: $repo) {{ {_ADD_PARTITION_FIELDS} }}"
            for i in range(len(topic_keys))
        )
        query = (
            f"mutation AddTopics($defName: String!, $repo: RepositorySelector!, {declarations}) "
            f"{{\n{fields}\n}}"
        )
        variables: dict[str, Any] = {"defName": topics.name, "repo": self.repository}
        variables.update({f"k{i}": key for i, key in enumerate(topic_keys)})
        what = f"adding the partition of {topic_keys[0]}" + (
            f" and {len(topic_keys) - 1} more" if len(topic_keys) > 1 else ""
        )
        data = self._graphql(query, variables, what)
        refused = [
            f"{key} ({data[f'a{i}'].get('__typename')}: {data[f'a{i}'].get('message', '')})"
            for i, key in enumerate(topic_keys)
            if data[f"a{i}"].get("__typename")
            not in ("AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError")
        ]
        if refused:
            raise BridgeError(f"Dagster refused to add the partitions {', '.join(refused)}")

    def _submit(self, job_name: str, topic_key: str, tags: Mapping[str, str]) -> str:
        run_tags = {**{k: str(v) for k, v in tags.items()}, PARTITION_TAG: topic_key}
        try:
            return self._graphql_client().submit_job_execution(
                job_name,
                repository_location_name=self.repository["repositoryLocationName"],
                repository_name=self.repository["repositoryName"],
                tags=run_tags,
            )
        except DagsterGraphQLClientError as exc:
            # The client's own message repeats the whole query; its cause says what happened.
            cause = exc.__cause__ or exc
            detail = (
                str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
            )
            raise BridgeError(
                f"launching {job_name} for {topic_key} through {self.graphql_url} failed: "
                f"{detail}. Is the Dagster webserver running (`make api` starts it)?"
            ) from None

    def _graphql_client(self) -> DagsterGraphQLClient:
        if self._client is None:
            self._client = DagsterGraphQLClient(
                self._parts.hostname or "127.0.0.1",
                port_number=self._parts.port,
                use_https=self._parts.scheme == "https",
                timeout=int(self.timeout_s),
                path_prefix=self._parts.path.rstrip("/"),
            )
        return self._client

    def _graphql(self, query: str, variables: dict[str, Any], what: str) -> dict[str, Any]:
        try:
            response = httpx.post(
                self.graphql_url,
                json={"query": query, "variables": variables},
                timeout=self.timeout_s,
            )
        except httpx.HTTPError as exc:
            raise BridgeError(
                f"{what} failed: cannot reach Dagster at {self.graphql_url} ({exc}). "
                "Is the Dagster webserver running (`make api` starts it)?"
            ) from None
        if response.status_code != 200:
            raise BridgeError(
                f"{what} failed: Dagster at {self.graphql_url} answered HTTP "
                f"{response.status_code}: {response.text[:300]}"
            )
        body = response.json()
        if body.get("errors"):
            messages = "; ".join(str(e.get("message", e)) for e in body["errors"])
            raise BridgeError(f"{what} failed: GraphQL errors from {self.graphql_url}: {messages}")
        return body["data"]

    # ---- reads (the instance) ----

    def topic_progress(self, topic_keys: list[str]) -> dict[str, TopicProgress]:
        facts = self._fresh_facts(topic_keys)
        times = self.stage_times()
        now = time.time()
        return {key: estimate_progress(facts[key], now, times) for key in topic_keys}

    def batch_progress(
        self, topic_keys: list[str]
    ) -> tuple[BatchProgress, dict[str, TopicProgress]]:
        """The batch's rollup and each topic's progress, from one `topic_progress` pass."""
        progress = self.topic_progress(topic_keys)
        rollup = batch_progress(list(progress.values()), self.parallel_runs(), self.stage_times())
        return rollup, progress

    def parallel_runs(self) -> int:
        """Runs in flight at once: the caller's figure, else the instance's run queue limit."""
        if self._parallel_runs is not None:
            return self._parallel_runs
        limit = self.instance.get_concurrency_config().run_queue_config
        configured = getattr(limit, "max_concurrent_runs", None) if limit else None
        return configured if isinstance(configured, int) and configured > 0 else 1

    def _fresh_facts(self, topic_keys: Sequence[str]) -> dict[str, TopicFacts]:
        """`_facts`, reusing what was read less than `facts_ttl_s` ago."""
        now = time.monotonic()
        recent = self._recent_facts
        facts = {
            key: entry[1]
            for key in topic_keys
            if (entry := recent.get(key)) is not None and now - entry[0] < self._facts_ttl_s
        }
        missing = [key for key in topic_keys if key not in facts]
        if missing:
            read = self._facts(missing)
            with self._lock:
                if len(recent) > 50_000:  # a bound, not an eviction policy: drop and refill
                    recent.clear()
                for key, fact in read.items():
                    recent[key] = (now, fact)
            facts.update(read)
        return facts

    def _facts(self, topic_keys: Sequence[str]) -> dict[str, TopicFacts]:
        keys = list(dict.fromkeys(topic_keys))
        facts = {key: TopicFacts(key=key) for key in keys}
        if not keys:
            return facts
        latest = self._latest_runs(keys)
        succeeded: list[str] = []
        for key in keys:
            run = latest.get(key)
            if run is None:
                continue
            if run.phase == "succeeded":
                succeeded.append(key)
            if run.phase in ("succeeded", "queued"):
                facts[key].run = run_snapshot(run, [])
            else:
                steps, reason = self._steps_and_reason(run)
                facts[key].run = run_snapshot(run, steps, reason)
        for key, state in self._publication_states(succeeded).items():
            facts[key].publication_state = state
        without_run = [key for key in keys if key not in latest]
        if without_run:
            existing = set(self.instance.get_dynamic_partitions(topics.name))
            for key in without_run:
                facts[key].known = key in existing
        return facts

    def _latest_runs(self, keys: Sequence[str]) -> dict[str, RunRow]:
        """Each topic's newest produce_topic run, in one query. SQL run storages (SQLite,
        PostgreSQL) are asked for five columns: deserializing whole runs cost ~1 ms each."""
        storage = self.instance.run_storage
        if not isinstance(storage, SqlRunStorage):
            records = self.instance.get_run_records(
                dg.RunsFilter(job_name=produce_topic.name, tags={PARTITION_TAG: list(keys)})
            )
            rows = [
                RunRow(r.dagster_run.run_id, r.dagster_run.tags.get(PARTITION_TAG, ""),
                       r.dagster_run.status, r.start_time, r.update_timestamp.timestamp())
                for r in records
            ]  # fmt: skip
        else:
            query = (
                sa.select(RunsTable.c.run_id, RunTagsTable.c.value, RunsTable.c.status,
                          RunsTable.c.start_time, RunsTable.c.update_timestamp)
                .join(RunTagsTable, RunTagsTable.c.run_id == RunsTable.c.run_id)
                .where(RunTagsTable.c.key == PARTITION_TAG, RunTagsTable.c.value.in_(list(keys)),
                       RunsTable.c.pipeline_name == produce_topic.name)
                .order_by(RunsTable.c.id.desc())
            )  # fmt: skip
            with storage.connect() as conn:
                found = conn.execute(query).all()
            rows = [
                RunRow(run_id, partition, dg.DagsterRunStatus(status), start_time,
                       _epoch(updated))
                for run_id, partition, status, start_time, updated in found
            ]  # fmt: skip
        latest: dict[str, RunRow] = {}
        for row in rows:  # newest first: the first seen is the latest
            latest.setdefault(row.partition, row)
        return latest

    def _steps_and_reason(self, run: RunRow) -> tuple[list[RunStepKeyStatsSnapshot], str | None]:
        cached = self._finished.get(run.run_id)
        if cached is not None:
            return cached
        steps = list(self.instance.get_run_step_stats(run.run_id))
        if run.phase == "running":
            return steps, None
        reason = failure_reason(self.instance, run.run_id) if run.phase == "failed" else None
        with self._lock:
            self._finished[run.run_id] = (steps, reason)
        return steps, reason

    def _publication_states(self, keys: Sequence[str]) -> dict[str, str]:
        """The `state` metadata ("scheduled", "published") of each topic's latest publication."""
        if not keys:
            return {}
        storage_ids = self.instance.get_latest_storage_id_by_partition(
            PUBLICATIONS, dg.DagsterEventType.ASSET_MATERIALIZATION, set(keys)
        )
        # An event never changes: only materializations not seen before are read and decoded.
        unseen = [i for i in storage_ids.values() if i not in self._publication_state_by_id]
        if unseen:
            result = self.instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=PUBLICATIONS, storage_ids=unseen),
                limit=len(unseen),
            )
            with self._lock:
                for record in result.records:
                    materialization = record.asset_materialization
                    state = materialization.metadata.get("state") if materialization else None
                    value = getattr(state, "value", state)
                    self._publication_state_by_id[record.storage_id] = (
                        str(value) if value is not None else None
                    )
        states: dict[str, str] = {}
        for key, storage_id in storage_ids.items():
            state = self._publication_state_by_id.get(storage_id)
            if state is not None:
                states[key] = state
        return states

    def stage_times(self) -> StageTimes:
        """Medians of the last successful runs' stage durations, cached for a few minutes."""
        now = time.monotonic()
        cached = self._times
        if cached is not None and now - cached[0] < self._durations_ttl_s:
            return cached[1]
        records = self.instance.get_run_records(
            dg.RunsFilter(job_name=produce_topic.name, statuses=[dg.DagsterRunStatus.SUCCESS]),
            limit=self._duration_sample_runs,
        )
        samples: dict[str, list[float]] = {}
        for record in records:
            steps = self.instance.get_run_step_stats(record.dagster_run.run_id)
            for stage, seconds in stage_durations(steps).items():
                samples.setdefault(stage, []).append(seconds)
        # Start-up (process launch and code import) is not in the step stats: keep the default.
        times = StageTimes.from_samples([], samples)
        self._times = (now, times)
        return times


def default_bridge(home: Path) -> GraphQLBridge:
    """The API's bridge from the environment: the webserver at $FACTORY_DAGSTER_URL (default
    http://127.0.0.1:3000) and the instance at $DAGSTER_HOME, else the embedded one under
    `home`/dagster, set up as the `factory` command does, so the API and `make ui` share it."""
    if not os.environ.get("DAGSTER_HOME"):
        # The profile's instance (FACTORY_PROFILE), exactly as the `factory` command picks it.
        from factory_cli.environment import current_profile, prepare_dagster_home

        os.environ["DAGSTER_HOME"] = str(prepare_dagster_home(Path(home), current_profile()))
    url = dagster_url()
    return GraphQLBridge(url, dg.DagsterInstance.get())
