"""Pool rows are created by the sensor before a batch's runs race to create them."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from factory_assets.definitions import TOPIC_ASSETS
from factory_resources.store import MediaStore
from factory_sensors.pools import TOPIC_POOLS, ensure_pool_rows
from factory_sensors.topic_batch import topic_batch_sensor

from .test_postgres import postgres_url  # noqa: F401  (fixture)


def test_the_declared_pools_are_the_ones_the_topic_assets_use() -> None:
    used = {a.op.pool for a in TOPIC_ASSETS if a.op.pool}
    assert used == set(TOPIC_POOLS)


@pytest.mark.postgres
def test_pool_rows_are_created_once_at_the_default_and_operator_limits_kept(
    postgres_url: str,  # noqa: F811
) -> None:
    overrides = {
        "storage": {"postgres": {"postgres_url": postgres_url}},
        "concurrency": {"pools": {"default_limit": 1}},
    }
    with dg.instance_for_test(overrides=overrides) as instance:
        storage = instance.event_log_storage
        storage.set_concurrency_slots("render", 2)  # an operator's own limit
        created = ensure_pool_rows(instance)
        assert sorted(created) == sorted(set(TOPIC_POOLS) - {"render"})
        assert storage.get_concurrency_info("render").slot_count == 2
        assert storage.get_concurrency_info("tts").slot_count == 1
        assert ensure_pool_rows(instance) == []


@pytest.mark.postgres
def test_the_sensor_creates_the_pool_rows_before_requesting_runs(
    tmp_path: Path,
    postgres_url: str,  # noqa: F811
) -> None:
    overrides = {
        "storage": {"postgres": {"postgres_url": postgres_url}},
        "concurrency": {"pools": {"default_limit": 1}},
    }
    store = MediaStore(home=str(tmp_path / "home"))
    (store.inbox_dir("demo") / "batch.csv").write_text(
        "topic\nHow tides work\nWhy owls hunt at night\n", encoding="utf-8"
    )
    with dg.instance_for_test(overrides=overrides) as instance:
        context = dg.build_sensor_context(instance=instance, resources={"store": store})
        result = topic_batch_sensor(context)
        assert isinstance(result, dg.SensorResult) and len(result.run_requests or []) == 2
        assert set(TOPIC_POOLS) <= instance.event_log_storage.get_concurrency_keys()
