"""The same materialization with Dagster's storage on the real PostgreSQL at 127.0.0.1:5432.

A fresh database per run of this module, dropped afterwards. Fails (never skips) when
PostgreSQL is down: `.ci/run` starts it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg2
import pytest

from factory_assets.status import topic_status
from factory_resources.store import MediaStore

from .conftest import make_request, produce
from .deploy_support import fresh_database

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with fresh_database("factory_test") as url:
        yield url


def test_topic_materializes_with_postgres_storage(tmp_path: Path, postgres_url: str) -> None:
    home = tmp_path / "home"
    request = make_request("demo", "How lighthouses work", duration_s=15)
    overrides = {"storage": {"postgres": {"postgres_url": postgres_url}}}
    with dg.instance_for_test(overrides=overrides) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        result = produce(home, instance, [request])[request.key]
        assert result.success
        assert request.key in instance.get_materialized_partitions(dg.AssetKey("video"))
        status = topic_status(instance, MediaStore(home=str(home)), request.key)
        assert status.status == "done"
    # The run and its events are in PostgreSQL itself, not in a local file.
    with psycopg2.connect(postgres_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM runs WHERE status = 'SUCCESS'")
        assert cur.fetchone()[0] == 1
        cur.execute("SELECT count(*) FROM dynamic_partitions WHERE partition = %s", (request.key,))
        assert cur.fetchone()[0] == 1
