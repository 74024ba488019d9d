"""The metrics history on SQLite and on the real PostgreSQL: snapshots round-trip (None stays
unknown, 0 stays 0), each owner sees only their rows, and a refresh survives one platform's
failure without leaking a token."""

from __future__ import annotations

import logging
import math
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from factory_core.analytics import analyse
from factory_core.publish_metadata import Platform
from factory_core.publishing import PostMetrics, PublicationState, PublishFailure
from factory_resources.faults import ProviderError
from factory_resources.metrics_history import MetricsHistory, post_metrics
from factory_resources.publication_ledger import Publication

PG_HOST = os.environ.get("FACTORY_TEST_PG_HOST", "127.0.0.1")
PG_USER = os.environ.get("FACTORY_TEST_PG_USER", "postgres")
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
TOKEN = "plainsecretaccessvalue"  # no digits: only the explicit redaction can catch it


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    if request.param == "sqlite":
        eng = sa.create_engine(f"sqlite:///{tmp_path / 'factory.db'}")
        yield eng
        eng.dispose()
        return
    # A schema of our own in the shared `test` database, so parallel runs never meet.
    schema = f"metrics_{uuid.uuid4().hex[:10]}"
    url = f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:5432/test"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    eng = sa.create_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    try:
        yield eng
    finally:
        eng.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def publication(
    post_id: str,
    platform: str = "youtube",
    *,
    owner: str = "alice",
    channel: str = "science",
    account: str = "acct-1",
    state: PublicationState = PublicationState.PUBLISHED,
) -> Publication:
    return Publication(
        marker=f"vf{uuid.uuid4().hex[:10]}", owner=owner, channel=channel,
        topic_key=f"{channel}-{post_id}", platform=Platform(platform), account=account,
        state=state, post_id=post_id if state is PublicationState.PUBLISHED else None,
        published_at=T0 if state is PublicationState.PUBLISHED else None,
    )  # fmt: skip


def metrics(
    post_id: str, platform: str = "youtube", at: datetime = T0, **values: Any
) -> PostMetrics:
    return PostMetrics(platform=Platform(platform), post_id=post_id, fetched_at=at, **values)


def test_snapshots_round_trip_with_unknown_and_zero_kept_apart(engine: sa.Engine) -> None:
    history = MetricsHistory(engine)
    pub = publication("v1")
    written = history.record(pub, [
        metrics("v1", views=0, likes=0, comments=None, watch_time_s=None),
        metrics("v1", at=T0 + timedelta(days=1), views=3_000_000_000, likes=12, comments=4,
                shares=1, saves=2, watch_time_s=1234.5, avg_view_duration_s=9.25),
    ])  # fmt: skip
    assert written == 2
    frame = history.frame("alice")
    assert len(frame) == 2
    first, second = frame.iloc[0], frame.iloc[1]
    assert (first["owner"], first["channel"], first["topic_key"]) == (
        "alice",
        "science",
        "science-v1",
    )
    assert (first["platform"], first["post_id"]) == ("youtube", "v1")
    assert first["views"] == 0 and first["likes"] == 0  # reported zero
    assert math.isnan(first["comments"]) and math.isnan(first["watch_time_s"])  # not reported
    assert second["views"] == 3_000_000_000  # past 32 bits: a BigInteger column
    assert second["watch_time_s"] == 1234.5 and second["avg_view_duration_s"] == 9.25
    assert str(frame["fetched_at"].dt.tz) == "UTC"
    assert frame["fetched_at"].tolist() == [T0, T0 + timedelta(days=1)]
    assert history.record(pub, []) == 0


def test_naive_times_are_taken_as_utc_and_aware_ones_converted(engine: sa.Engine) -> None:
    history = MetricsHistory(engine)
    pub = publication("v1")
    from zoneinfo import ZoneInfo

    moscow = datetime(2025, 3, 1, 15, 0, tzinfo=ZoneInfo("Europe/Moscow"))  # 12:00 UTC
    history.record(pub, [metrics("v1", at=moscow, views=1)])
    history.record(pub, [metrics("v1", at=datetime(2025, 3, 2, 12, 0), views=2)])
    assert history.frame("alice")["fetched_at"].tolist() == [T0, T0 + timedelta(days=1)]


def test_record_refuses_metrics_of_another_post(engine: sa.Engine) -> None:
    history = MetricsHistory(engine)
    with pytest.raises(ValueError, match="do not belong"):
        history.record(publication("v1"), [metrics("v2", views=5)])
    with pytest.raises(ValueError, match="do not belong"):
        history.record(publication("v1"), [metrics("v1", platform="tiktok", views=5)])
    assert history.frame("alice").empty


def test_each_owner_sees_only_their_own_rows(engine: sa.Engine) -> None:
    history = MetricsHistory(engine)
    history.record(publication("a1", owner="alice"), [metrics("a1", views=10)])
    history.record(publication("a2", owner="alice", channel="history"), [metrics("a2", views=20)])
    # Bob has a channel of the same name and a post id that collides on another platform.
    history.record(publication("b1", owner="bob"), [metrics("b1", views=99)])
    history.record(publication("a1", "tiktok", owner="bob"), [metrics("a1", "tiktok", views=77)])
    alice = history.frame("alice")
    assert set(alice["owner"]) == {"alice"}
    assert sorted(alice["views"]) == [10, 20]
    assert history.frame("alice", channel="science")["post_id"].tolist() == ["a1"]
    bob = history.frame("bob", channel="science")
    assert sorted(bob["views"]) == [77, 99]
    assert history.frame("carol").empty
    assert list(history.frame("carol").columns) == list(alice.columns)


class FakeSource:
    """A platform's metrics as a MetricsSource: answers from a table of views, or fails."""

    def __init__(self, platform: str, views: dict[str, int], fail: Exception | None = None):
        self.platform = Platform(platform)
        self.views = views
        self.fail = fail
        self.calls: list[tuple[list[str], dict[str, Any]]] = []

    def metrics(self, post_ids: list[str], credentials: dict[str, Any]) -> list[PostMetrics]:
        self.calls.append((list(post_ids), credentials))
        if self.fail is not None:
            raise self.fail
        return [
            metrics(pid, str(self.platform), at=T0, views=self.views[pid], likes=1)
            for pid in post_ids
            if pid in self.views  # a deleted post is left out, as the contract says
        ]


def test_refresh_groups_by_account_and_one_failing_platform_keeps_the_others(
    engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    history = MetricsHistory(engine)
    pubs = [
        publication("y1", "youtube", account="yt-main"),
        publication("y2", "youtube", account="yt-main"),
        publication("y3", "youtube", account="yt-second"),
        publication("t1", "tiktok", account="tt"),
        publication("t2", "tiktok", account="tt"),
        publication("i1", "instagram", account="ig"),
        publication("x1", "x", account="xa"),
        publication("pending", "youtube", account="yt-main", state=PublicationState.UPLOADING),
        publication("never", "telegram", account="tg", state=PublicationState.FAILED),
    ]
    youtube = FakeSource("youtube", {"y1": 100, "y2": 200, "y3": 300})
    tiktok = FakeSource("tiktok", {}, fail=RuntimeError(f"upstream said token {TOKEN} was revoked"))
    instagram = FakeSource(
        "instagram", {}, fail=PublishFailure("instagram", "reconnect the Instagram account")
    )
    x = FakeSource("x", {}, fail=ProviderError("x", "rate limited", status=429, retryable=True))

    def credentials_for(pub: Publication) -> dict[str, Any]:
        return {"access_token": TOKEN, "refresh_token": None, "account": pub.account}

    with caplog.at_level(logging.DEBUG):
        summary = history.refresh(
            pubs,
            {Platform.YOUTUBE: youtube, Platform.TIKTOK: tiktok,
             Platform.INSTAGRAM: instagram, Platform.X: x},
            credentials_for,
        )  # fmt: skip

    # One call per account with all of its published posts; unpublished rows are not asked.
    assert sorted((ids, c["account"]) for ids, c in youtube.calls) == [
        (["y1", "y2"], "yt-main"),
        (["y3"], "yt-second"),
    ]
    assert [ids for ids, _ in tiktok.calls] == [["t1", "t2"]]
    yt = summary.platforms["youtube"]
    assert (yt.posts, yt.recorded, yt.missing, yt.errors) == (3, 3, 0, [])
    tt = summary.platforms["tiktok"]
    assert (tt.posts, tt.recorded, tt.missing) == (2, 0, 2)
    assert tt.errors and "revoked" in tt.errors[0] and tt.errors[0].startswith("tt: ")
    assert "reconnect the Instagram account" in summary.platforms["instagram"].errors[0]
    assert "HTTP 429" in summary.platforms["x"].errors[0]
    assert "telegram" not in summary.platforms  # nothing published there
    assert summary.recorded == 3 and not summary.ok and len(summary.errors) == 3
    # The token is in no summary, no error text and no log line.
    assert TOKEN not in summary.model_dump_json()
    assert TOKEN not in caplog.text
    assert "revoked" in caplog.text

    frame = history.frame("alice")
    assert sorted(frame["post_id"]) == ["y1", "y2", "y3"]
    assert sorted(frame["views"]) == [100, 200, 300]
    # And the analytics read it as it is.
    assert analyse(frame).platforms.set_index("platform").loc["youtube", "views"] == 600


def test_refresh_counts_deleted_posts_and_platforms_without_a_source(engine: sa.Engine) -> None:
    history = MetricsHistory(engine)
    youtube = FakeSource("youtube", {"y1": 5})
    summary = history.refresh(
        [publication("y1"), publication("gone"), publication("tg1", "telegram", account="tg")],
        {Platform.YOUTUBE: youtube},
        lambda pub: {"access_token": TOKEN},
    )
    assert (summary.platforms["youtube"].recorded, summary.platforms["youtube"].missing) == (1, 1)
    assert summary.platforms["telegram"].missing == 1
    assert "no metrics source for telegram" in summary.platforms["telegram"].errors[0]


def test_refresh_survives_credentials_that_cannot_be_had(engine: sa.Engine) -> None:
    history = MetricsHistory(engine)
    youtube = FakeSource("youtube", {"y1": 5})
    tiktok = FakeSource("tiktok", {"t1": 7})

    def credentials_for(pub: Publication) -> dict[str, Any]:
        if pub.platform is Platform.YOUTUBE:
            raise PublishFailure("youtube", "reconnect the YouTube account")
        return {"access_token": TOKEN}

    summary = history.refresh(
        [publication("y1"), publication("t1", "tiktok", account="tt")],
        {Platform.YOUTUBE: youtube, Platform.TIKTOK: tiktok},
        credentials_for,
    )
    assert youtube.calls == []
    assert "reconnect the YouTube account" in summary.platforms["youtube"].errors[0]
    assert summary.platforms["tiktok"].recorded == 1
    assert history.frame("alice")["post_id"].tolist() == ["t1"]


def test_the_table_has_its_indexes(engine: sa.Engine) -> None:
    MetricsHistory(engine)
    indexes = {
        tuple(ix["column_names"]) for ix in sa.inspect(engine).get_indexes(post_metrics.name)
    }
    assert ("owner", "channel") in indexes
    assert ("platform", "post_id", "fetched_at") in indexes
