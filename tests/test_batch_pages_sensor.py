"""batch_pages_sensor: a batch's page is rewritten when its topic runs finish, not before."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from factory_assets.definitions import build_definitions
from factory_resources.store import MediaStore
from factory_sensors.batch_pages import batch_pages_sensor
from factory_sensors.topic_batch import topic_batch_sensor

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def test_pages_follow_finished_runs(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = MediaStore(home=str(home))
    (store.inbox_dir("demo") / "batch.csv").write_text("topic\nHow tides work\n", encoding="utf-8")
    with dg.instance_for_test() as instance:
        result = topic_batch_sensor(
            dg.build_sensor_context(instance=instance, resources={"store": store})
        )
        assert isinstance(result, dg.SensorResult)
        for request in result.dynamic_partitions_requests or []:
            instance.add_dynamic_partitions(
                request.partitions_def_name, list(request.partition_keys)
            )
        (run,) = result.run_requests or []

        pages = home / "reports" / "batches"
        context = dg.build_sensor_context(instance=instance, resources={"store": store})
        skipped = batch_pages_sensor(context)
        assert "no topic run has finished" in str(skipped.skip_message)
        assert not pages.exists()

        # The batch's run (its first stage only, to keep the test short) fails or succeeds:
        # either way it has finished, and the page must show it.
        job = build_definitions(home=str(home)).resolve_job_def("produce_topic")
        job.execute_in_process(
            partition_key=run.partition_key, instance=instance, tags=run.tags,
            asset_selection=[dg.AssetKey("script")], run_config=QUIET, raise_on_error=False,
        )  # fmt: skip
        context = dg.build_sensor_context(
            instance=instance, resources={"store": store}, cursor=context.cursor
        )
        message = str(batch_pages_sensor(context).skip_message)
        assert "rewrote 1 batch pages after 1 finished runs" in message
        (page,) = [p for p in pages.glob("*.html") if p.name != "index.html"]
        html = page.read_text(encoding="utf-8")
        assert "How tides work" in html and run.partition_key in html
        assert context.cursor

        again = dg.build_sensor_context(
            instance=instance, resources={"store": store}, cursor=context.cursor
        )
        assert "no topic run has finished" in str(batch_pages_sensor(again).skip_message)
