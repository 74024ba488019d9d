"""Deployment profiles: FACTORY_PROFILE picks the instance file, the production file loads as a
real instance (PostgreSQL, S3 compute logs on the test S3 server), and the Kubernetes values,
the Dockerfile and docs/deploy.md agree with it and with the names the code reads."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from factory_assets.definitions import build_definitions
from factory_cli.environment import ProfileError, prepare_environment
from tests.fakes.s3_server import S3Server

from .deploy_support import fresh_database

REPO = Path(__file__).resolve().parent.parent
PRODUCTION = REPO / "deploy" / "production" / "dagster.yaml"
VALUES = REPO / "deploy" / "k8s" / "values.yaml"
DOCS = REPO / "docs" / "deploy.md"


def _load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (
        "FACTORY_PROFILE",
        "DAGSTER_HOME",
        "DAGSTER_PG_URL",
        "FACTORY_MEDIA_BUCKET",
        "FACTORY_S3_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_local_profile_is_the_default(clean_env: pytest.MonkeyPatch) -> None:
    home = prepare_environment()
    config = Path(os.environ["DAGSTER_HOME"]) / "dagster.yaml"
    assert config.parent == home / "dagster"
    assert config.resolve() == (REPO / "dagster.yaml").resolve()


def test_production_profile_needs_its_storage(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("FACTORY_PROFILE", "production")
    with pytest.raises(ProfileError, match="DAGSTER_PG_URL and FACTORY_MEDIA_BUCKET"):
        prepare_environment()
    clean_env.setenv("FACTORY_PROFILE", "staging")
    with pytest.raises(ProfileError, match="'staging' is not a profile; use one of: local"):
        prepare_environment()


def test_production_profile_links_its_file(clean_env: pytest.MonkeyPatch) -> None:
    local_home = prepare_environment()  # a local instance first: switching must not reuse it
    clean_env.delenv("DAGSTER_HOME")
    clean_env.setenv("FACTORY_PROFILE", "production")
    clean_env.setenv("DAGSTER_PG_URL", "postgresql://u@db:5432/dagster")
    clean_env.setenv("FACTORY_MEDIA_BUCKET", "media")
    clean_env.setenv("FACTORY_S3_ENDPOINT_URL", "http://127.0.0.1:9000")
    assert prepare_environment() == local_home
    config = Path(os.environ["DAGSTER_HOME"]) / "dagster.yaml"
    assert config.parent == local_home / "dagster-production"
    assert config.resolve() == PRODUCTION.resolve()
    # The instance file has no endpoint: boto3 takes it from its own variable.
    assert os.environ["AWS_ENDPOINT_URL_S3"] == "http://127.0.0.1:9000"


@pytest.fixture
def production_instance(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[dg.DagsterInstance, str]]:
    bucket = s3_server.bucket("compute-logs")
    with fresh_database() as pg_url:
        monkeypatch.setenv("DAGSTER_PG_URL", pg_url)
        monkeypatch.setenv("FACTORY_MEDIA_BUCKET", bucket)
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint_url)
        dagster_home = tmp_path / "dagster"
        dagster_home.mkdir()
        (dagster_home / "dagster.yaml").symlink_to(PRODUCTION)
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            yield instance, bucket


@pytest.mark.postgres
def test_production_instance_loads_and_ships_logs_to_s3(
    production_instance: tuple[dg.DagsterInstance, str], s3_server: S3Server
) -> None:
    instance, bucket = production_instance
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
    assert type(instance.compute_log_manager).__name__ == "S3ComputeLogManager"
    assert instance.run_monitoring_enabled
    assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
    assert not instance.run_retries_retry_on_asset_or_op_failure
    limits = instance.get_concurrency_config().run_queue_config
    assert limits.max_concurrent_runs == 3
    assert {t["key"] for t in limits.tag_concurrency_limits} == {"factory/owner", "factory/channel"}
    # A real run's step output lands in the bucket under the profile's prefix.
    result = dg.materialize([_loud], instance=instance)
    assert result.success
    keys = s3_server.keys(bucket, "dagster/compute-logs/")
    logs = b"".join(s3_server.read(bucket, k) for k in keys)
    assert b"written by the step" in logs


@dg.asset
def _loud() -> None:
    print("written by the step")


def _asset_pools() -> set[str]:
    graph = build_definitions().resolve_asset_graph()
    return {a.op.pool for a in graph.assets_defs if a.is_executable and a.op.pool}


def test_docs_set_a_limit_for_every_pool_the_assets_use() -> None:
    pools = _asset_pools()
    assert pools >= {"llm", "tts", "images", "render"}
    docs = DOCS.read_text()
    for pool in pools:
        assert re.search(rf"dagster instance concurrency set {pool} \d+", docs), pool


def _env_names(block: dict[str, Any]) -> set[str]:
    return {item["name"] for item in block.get("env", [])}


def test_k8s_values_match_the_production_profile() -> None:
    values, production = _load(VALUES), _load(PRODUCTION)
    deployment = values["dagster-user-deployments"]["deployments"][0]
    images = {
        yaml.safe_dump(part["image"])
        for part in (values["dagsterWebserver"], values["dagsterDaemon"], deployment)
    }
    assert len(images) == 1, "webserver, daemon and code server must run the same image"
    workspace = _load(REPO / "workspace.yaml")["load_from"][0]["python_module"]
    assert deployment["dagsterApiGrpcArgs"] == [
        "-m",
        workspace["module_name"],
        "-a",
        workspace["attribute"],
    ]
    assert values["additionalInstanceConfig"]["concurrency"] == production["concurrency"]
    retries = values["dagsterDaemon"]["runRetries"]
    assert retries == {
        "enabled": production["run_retries"]["enabled"],
        "maxRetries": production["run_retries"]["max_retries"],
        "retryOnAssetOrOpFailure": production["run_retries"]["retry_on_asset_or_op_failure"],
    }
    monitoring = values["dagsterDaemon"]["runMonitoring"]
    for key in ("start_timeout_seconds", "cancel_timeout_seconds", "max_runtime_seconds"):
        camel = re.sub(r"_(\w)", lambda m: m.group(1).upper(), key)
        assert monitoring[camel] == production["run_monitoring"][key]
    logs = values["computeLogManager"]["config"]["s3ComputeLogManager"]
    assert logs["prefix"] == production["compute_logs"]["config"]["prefix"]
    bucket_env = {
        e["value"]
        for part in (values["dagsterWebserver"], values["dagsterDaemon"], deployment)
        for e in part["env"]
        if e["name"] == "FACTORY_MEDIA_BUCKET"
    }
    assert bucket_env == {logs["bucket"]}


def _names_the_code_reads() -> set[str]:
    names: set[str] = set()
    for path in [*REPO.glob("factory_*/**/*.py"), PRODUCTION, REPO / "deploy/celery/worker.yaml"]:
        names |= set(re.findall(r"\b((?:FACTORY|DAGSTER|AWS)_[A-Z0-9_]+)\b", path.read_text()))
    return names


def test_k8s_values_use_our_env_names_and_no_literal_secrets() -> None:
    values = _load(VALUES)
    deployment = values["dagster-user-deployments"]["deployments"][0]
    used = set()
    for part in (values["dagsterWebserver"], values["dagsterDaemon"], deployment):
        used |= _env_names(part)
        assert part["envSecrets"] == [{"name": "factory-secrets"}]
    # AWS_REGION is boto3's own; everything else is a name the code or the profile reads.
    assert used - {"AWS_REGION"} <= _names_the_code_reads(), used - _names_the_code_reads()
    text = VALUES.read_text()
    assert "postgresqlPassword" not in text
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"]
    # No key that looks like a credential carries a value.
    secretish = re.compile(r"(password|secret|token|api_key|access_key)", re.I)
    for part in (values["dagsterWebserver"], values["dagsterDaemon"], deployment):
        for item in part["env"]:
            assert not secretish.search(item["name"]), item
    assert not re.search(r"://[^/\s:]+:[^@\s]+@", text), "credentials inside a URL"


def test_dockerfile_builds_from_the_lock_with_the_pinned_uv() -> None:
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", dockerfile, re.M)
    assert "uv sync --frozen --no-dev" in dockerfile
    pinned = re.search(r"^UV_VERSION := (\S+)", (REPO / "Makefile").read_text(), re.M)
    assert pinned and f"ARG UV_VERSION={pinned.group(1)}" in dockerfile
    for package in re.findall(r'"([a-z_]+)"', _load_pyproject_packages()):
        assert f"COPY {package} ./{package}" in dockerfile, package


def _load_pyproject_packages() -> str:
    text = (REPO / "pyproject.toml").read_text()
    match = re.search(r"^packages = \[(.*)\]$", text, re.M)
    assert match
    return match.group(1)
