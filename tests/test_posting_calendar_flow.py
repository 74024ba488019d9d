"""A channel with a posting calendar: the topic takes a slot, nothing goes out before it, the
sensor releases it when it comes, and `factory/publish: now` posts at once."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from factory_assets.definitions import build_definitions
from factory_assets.publications import PUBLISH_TAG
from factory_resources.post_schedule import PostSchedule, post_slots
from factory_resources.project_db import project_engine
from factory_resources.publication_ledger import PublicationLedger
from factory_resources.store import MediaStore
from factory_sensors.posting_slots import posting_slots_sensor

from .conftest import QUIET, Rendered, make_request, produce

pytestmark = pytest.mark.slow

CHANNEL = "calendar"


def _outbox_posts(home: Path, topic_key: str | None = None) -> dict[str, dict]:
    """platform -> post.json of every outbox post (of one topic)."""
    posts = {}
    for path in sorted((home / "outbox").glob("*/*/*/post.json")):
        post = json.loads(path.read_text(encoding="utf-8"))
        if topic_key is None or post["topic_key"] == topic_key:
            posts[f"{post['topic_key']}/{post['platform']}"] = post
    return posts


@pytest.fixture(scope="module")
def scheduled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rendered]:
    """Two short topics of a channel that posts at 03:00 and 15:00 in Asia/Tokyo, on
    Saturdays only, with per-post defaults: the first run of each reserves a slot."""
    home = tmp_path_factory.mktemp("calendar-home")
    folder = home / "channels" / CHANNEL
    folder.mkdir(parents=True)
    calendar = {"timezone": "Asia/Tokyo", "times": ["03:00", "15:00"], "weekdays": ["sat"]}
    profile = {"publishing": {"calendar": calendar, "platforms": ["youtube", "telegram"],
                              "post": {"privacy": "unlisted"}}}  # fmt: skip
    (folder / "channel.yaml").write_text(yaml.safe_dump(profile), encoding="utf-8")
    requests = [
        make_request(CHANNEL, "Why the sea is salty", duration_s=15),
        make_request(CHANNEL, "How bees dance", duration_s=15),
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


def _publish(home: Path, instance: dg.DagsterInstance, key: str, tags: dict[str, str]) -> bool:
    job = build_definitions(home=str(home)).resolve_job_def("publish_topic")
    return job.execute_in_process(
        partition_key=key, instance=instance, tags=tags, run_config=QUIET
    ).success


def test_topics_wait_for_their_slots_then_the_sensor_releases_them(scheduled: Rendered) -> None:
    home, instance = scheduled.home, scheduled.instance
    first, second = scheduled.requests
    assert all(result.success for result in scheduled.results.values())
    schedule = PostSchedule(project_engine(home))
    slots = [schedule.get(key) for key in (first, second)]
    assert all(slot is not None for slot in slots)
    times = [slot.slot_at for slot in slots]  # type: ignore[union-attr]
    assert times[0] != times[1] and all(t > datetime.now(UTC) for t in times)
    for when in times:  # Saturdays, 03:00 or 15:00 Tokyo time
        local = when.astimezone(ZoneInfo("Asia/Tokyo"))
        assert local.weekday() == 5 and (local.hour, local.minute) in {(3, 0), (15, 0)}
    meta = scheduled.results[first].asset_materializations_for_node("publications")[0].metadata
    assert meta["state"].value == "scheduled" and "Asia/Tokyo" in meta["slot"].value
    assert _outbox_posts(home) == {}  # nothing before its slot

    context = dg.build_sensor_context(
        instance=instance, resources={"store": MediaStore(home=str(home))}
    )
    assert isinstance(posting_slots_sensor(context), dg.SkipReason)

    # The clock reaches the first topic's slot.
    with project_engine(home).begin() as conn:
        conn.execute(
            post_slots.update()
            .where(post_slots.c.topic_key == first)
            .values(slot_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    result = posting_slots_sensor(context)
    assert isinstance(result, dg.SensorResult)
    (request,) = result.run_requests or []
    assert request.partition_key == first and request.run_key and first in request.run_key
    assert _publish(home, instance, first, request.tags)
    posted = _outbox_posts(home)
    assert sorted(posted) == [f"{first}/telegram", f"{first}/youtube"]
    assert posted[f"{first}/youtube"]["metadata"]["privacy"] == "unlisted"  # channel default
    assert schedule.get(first).released_at is not None  # type: ignore[union-attr]
    assert isinstance(posting_slots_sensor(context), dg.SkipReason)  # released once


def test_publish_now_ignores_the_calendar(scheduled: Rendered) -> None:
    home, instance = scheduled.home, scheduled.instance
    second = list(scheduled.requests)[1]
    topic_dir = home / "topics" / second
    (topic_dir / "post.yaml").write_text(
        yaml.safe_dump({"youtube": {"title": "A title of our own"}}), encoding="utf-8"
    )
    assert _outbox_posts(home, second) == {}
    assert _publish(home, instance, second, {PUBLISH_TAG: "now"})
    rows = PublicationLedger(project_engine(home)).for_topic(second)
    assert [row.state.value for row in rows] == ["published", "published"]
    posted = _outbox_posts(home, second)
    assert sorted(posted) == [f"{second}/telegram", f"{second}/youtube"]
    assert posted[f"{second}/youtube"]["metadata"]["title"] == "A title of our own"
    with project_engine(home).connect() as conn:
        released = conn.execute(
            sa.select(post_slots.c.released_at).where(post_slots.c.topic_key == second)
        ).scalar_one()
    assert released is not None  # its slot is given up, so the sensor will not post it again
