"""A channel that posts through its connected accounts: one rendered topic goes to YouTube,
TikTok, Instagram, X and Telegram (each a protocol-faithful fake on 127.0.0.1, reached by the
real client), exactly once; then the analytics schedule's job pulls the metrics back and writes
the channel's report. No token appears in any event of any run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import yaml
from pytest_httpserver import HTTPServer

from factory_assets.definitions import build_definitions
from factory_core.publishing import PublicationState
from factory_resources.account_vault import account_vault
from factory_resources.metrics_history import MetricsHistory
from factory_resources.platform_clients import PlatformClients
from factory_resources.project_db import project_engine
from factory_resources.publication_ledger import PublicationLedger
from factory_resources.store import MediaStore
from factory_sensors.jobs import analytics_schedule

from .conftest import QUIET, make_request
from .fakes import instagram, telegram, tiktok, x_api, youtube
from .fakes.instagram import FakeInstagram
from .fakes.telegram import FakeTelegram
from .fakes.tiktok import FakeTikTok
from .fakes.x_api import FakeX
from .fakes.youtube import FakeYouTube, https_server

pytestmark = pytest.mark.slow

CHANNEL = "live"
OWNER = "erin"
SECRETS = [
    youtube.ACCESS_TOKEN,
    youtube.REFRESH_TOKEN,
    youtube.CLIENT_SECRET,
    tiktok.ACCESS_TOKEN,
    instagram.ACCESS_TOKEN,
    x_api.USER_TOKEN,
    telegram.BOT_TOKEN,
]


@dataclass
class Platforms:
    youtube: FakeYouTube
    tiktok: FakeTikTok
    instagram: FakeInstagram
    x: FakeX
    telegram: FakeTelegram
    clients: PlatformClients


@pytest.fixture
def platforms(tmp_path: Path) -> Iterator[Platforms]:
    tls_server, pem = https_server(tmp_path / "tls")
    plain = [HTTPServer(host="127.0.0.1", threaded=True) for _ in range(4)]
    for server in plain:
        server.start()
    fakes = Platforms(
        youtube=FakeYouTube(tls_server),
        tiktok=FakeTikTok(plain[0]),
        instagram=FakeInstagram(plain[1]),
        x=FakeX(plain[2]),
        telegram=FakeTelegram(plain[3]),
        clients=PlatformClients(),
    )
    fakes.clients = PlatformClients(
        youtube_api=fakes.youtube.api_endpoint,
        youtube_analytics_api=fakes.youtube.api_endpoint,
        youtube_ca_certs=str(pem),
        tiktok_api=fakes.tiktok.base_url,
        instagram_api=fakes.instagram.base_url,
        instagram_upload_api=fakes.instagram.upload_base_url,
        x_api=fakes.x.base_url,
        telegram_api=fakes.telegram.base_url,
        poll_interval_s=0.01,
        timeout_s=20,
    )
    try:
        yield fakes
    finally:
        for server in [tls_server, *plain]:
            server.clear()
            server.stop()


def _connect_accounts(home: Path, fakes: Platforms) -> None:
    """What `factory accounts connect` leaves in the vault (the OAuth flows themselves are
    tested in test_account_oauth.py): tokens that need no refresh yet."""
    vault = account_vault(home)
    later = datetime.now(UTC) + timedelta(hours=1)

    def oauth(token: str, refresh: str | None = None, **extra: str) -> dict[str, object]:
        return {"access_token": token, "refresh_token": refresh, "expires_at": later.timestamp(),
                "token_uri": fakes.youtube.token_uri, "client_id": youtube.CLIENT_ID,
                "client_secret": None, "scopes": [], **extra}  # fmt: skip

    vault.save(OWNER, CHANNEL, "youtube", "Erin's channel",
               oauth(youtube.ACCESS_TOKEN, youtube.REFRESH_TOKEN), expires_at=later)  # fmt: skip
    vault.save(OWNER, CHANNEL, "tiktok", tiktok.USERNAME, oauth(tiktok.ACCESS_TOKEN),
               expires_at=later)  # fmt: skip
    # A long-lived Instagram token lasts 60 days and is renewed in its last week.
    in_a_month = datetime.now(UTC) + timedelta(days=30)
    vault.save(OWNER, CHANNEL, "instagram", "vf_demo",
               {**oauth(instagram.ACCESS_TOKEN, ig_user_id=instagram.IG_USER_ID),
                "expires_at": in_a_month.timestamp()}, expires_at=in_a_month)  # fmt: skip
    vault.save(OWNER, CHANNEL, "x", "@vf_demo", oauth(x_api.USER_TOKEN), expires_at=later)
    vault.save(OWNER, CHANNEL, "telegram", telegram.PUBLIC_CHAT,
               {"bot_token": telegram.BOT_TOKEN, "chat_id": telegram.PUBLIC_CHAT})  # fmt: skip


def _run_texts(instance: dg.DagsterInstance) -> str:
    """Every event of every run, as text: messages, metadata, failures."""
    texts = []
    for run in instance.get_runs():
        for record in instance.all_logs(run.run_id):
            texts.append(record.message or "")
            if record.dagster_event is not None:
                texts.append(repr(record.dagster_event.event_specific_data))
        texts.append(repr(run.run_config) + repr(run.tags))
    return "\n".join(texts)


def test_a_topic_posts_once_to_every_platform_and_its_metrics_come_back(
    platforms: Platforms, tmp_path: Path
) -> None:
    home = Path(os.environ["FACTORY_HOME"])
    folder = home / "channels" / CHANNEL
    folder.mkdir(parents=True)
    profile = {
        "owner": OWNER,
        "publishing": {"publisher": "accounts", "post": {"privacy": "public"},
                       "link": "https://example.org/more"},
    }  # fmt: skip
    (folder / "channel.yaml").write_text(yaml.safe_dump(profile), encoding="utf-8")
    _connect_accounts(home, platforms)
    request = make_request(CHANNEL, "Why octopuses have three hearts", duration_s=15)
    MediaStore(home=str(home)).save_request(request)
    defs = build_definitions(home=str(home), overrides={"platforms": platforms.clients})

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("topics", [request.key])
        produced = defs.resolve_job_def("produce_topic").execute_in_process(
            partition_key=request.key, instance=instance, run_config=QUIET, raise_on_error=False
        )
        assert produced.success, [e.message for e in produced.all_events if e.is_failure]
        meta = produced.asset_materializations_for_node("publications")[0].metadata
        for name in ("youtube", "tiktok", "instagram", "x", "telegram"):
            assert meta[f"{name}_state"].value == "published", name
        assert meta["youtube_post"].value.startswith("https://youtu.be/")

        counts = {
            "youtube": len(platforms.youtube.videos),
            "tiktok": len(platforms.tiktok.posts),
            "instagram": len(platforms.instagram.posts),
            "x": len(platforms.x.posts),
            "telegram": len(platforms.telegram.posts),
        }
        assert counts == dict.fromkeys(counts, 1)
        ledger = PublicationLedger(project_engine(home))
        rows = ledger.for_topic(request.key)
        assert {row.state for row in rows} == {PublicationState.PUBLISHED}
        assert {row.account for row in rows} >= {"Erin's channel", "@vf_demo", tiktok.USERNAME}

        # Running publications again (a retried run) posts nothing new.
        again = defs.resolve_job_def("publish_topic").execute_in_process(
            partition_key=request.key, instance=instance, run_config=QUIET
        )
        assert again.success
        assert len(platforms.youtube.videos) == len(platforms.x.posts) == 1
        assert len(platforms.telegram.posts) == len(platforms.tiktok.posts) == 1

        # The audience arrives; then the analytics schedule's job pulls it back.
        reel = platforms.instagram.posts[0].id
        platforms.instagram.insights[reel] = {"views": 1200, "likes": 80, "comments": 4,
                                              "shares": 9, "saved": 3}  # fmt: skip
        video = str(platforms.tiktok.posts[0].post_id)
        platforms.tiktok.metrics[video] = {"view_count": 5400, "like_count": 300,
                                           "comment_count": 12, "share_count": 40}  # fmt: skip
        tick = analytics_schedule.evaluate_tick(
            dg.build_schedule_context(instance=instance, scheduled_execution_time=datetime.now(UTC))
        )
        assert len(tick.run_requests or []) == 1
        refreshed = defs.resolve_job_def("refresh_analytics").execute_in_process(
            instance=instance, run_config=QUIET
        )
        assert refreshed.success
        metrics_meta = refreshed.asset_materializations_for_node("post_metrics")[0].metadata
        assert metrics_meta["errors"].value == 0
        assert metrics_meta["telegram_note"].value == "the Bot API reports no view counts"
        frame = MetricsHistory(project_engine(home)).frame(OWNER, CHANNEL)
        assert {"youtube", "tiktok", "instagram", "x"} == set(frame["platform"])
        assert frame.loc[frame["platform"] == "instagram", "views"].tolist() == [1200]
        assert frame.loc[frame["platform"] == "tiktok", "views"].tolist() == [5400]
        report = home / "analytics" / CHANNEL / "report.html"
        assert report.is_file() and "Why octopuses have three hearts" in report.read_text()
        analytics_meta = refreshed.asset_materializations_for_node("channel_analytics")[0].metadata
        assert "post" in analytics_meta[f"{CHANNEL}_status"].value

        everything = _run_texts(instance)
    for secret in SECRETS:
        assert secret not in everything
