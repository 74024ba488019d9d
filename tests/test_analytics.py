"""Analytics over generated metric histories: rollups, engagement, growth with recounts, best
performers and recommendations that cite their numbers."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from factory_core.analytics import (
    NO_METRICS,
    HookKind,
    PostFacts,
    analyse,
    best_performers,
    channel_rollup,
    engagement_rate,
    first_line,
    growth,
    hook_kind,
    hour_bucket,
    length_bucket,
    platform_rollup,
    post_rollup,
    recommendations,
    snapshots_frame,
    topic_words,
    views_over_time,
)

PLATFORMS = ("youtube", "tiktok", "telegram")
START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
RECOUNTED = "youtube-2"  # the post whose views a platform lowers once


def generate_history(
    seed: int = 7, topics: int = 6, days: int = 5, channel: str = "science", owner: str = "alice"
) -> tuple[list[dict[str, Any]], list[PostFacts]]:
    """Snapshot rows (as the history stores them) and facts for `topics` topics posted to three
    platforms, fetched once a day for `days` days. Telegram reports views and forwards only
    (no likes, comments or watch time: None); youtube post 2 is recounted down on day 3."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    facts: list[PostFacts] = []
    for t in range(topics):
        key = f"{channel}-topic-{t}"
        published = START + timedelta(hours=rng.randint(0, 12))
        duration = rng.choice([20.0, 28.0, 40.0])
        hook = rng.choice(["Why is the sky blue?", "5 facts about owls", "Lighthouses glow."])
        for platform in PLATFORMS:
            post_id = f"{platform}-{t}"
            facts.append(
                PostFacts(
                    topic_key=key, channel=channel, platform=platform, post_id=post_id,
                    published_at=published, topic=f"Topic {t} about lighthouses", hook=hook,
                    duration_s=duration,
                )
            )  # fmt: skip
            views = 0
            for d in range(days):
                views += rng.randint(50, 500)
                if post_id == RECOUNTED and d == 3:
                    views -= 700  # the platform removed invalid views
                telegram = platform == "telegram"
                rows.append({
                    "owner": owner, "channel": channel, "topic_key": key, "platform": platform,
                    "post_id": post_id,
                    "fetched_at": published + timedelta(days=d + 1, minutes=rng.randint(0, 59)),
                    "views": views,
                    "likes": None if telegram else views // 20 + d,
                    "comments": None if telegram else views // 100,
                    "shares": views // 50,
                    "saves": None,
                    "watch_time_s": None if telegram else views * 11.5,
                    "avg_view_duration_s": None if telegram else 11.5,
                })  # fmt: skip
    return rows, facts


def last_rows(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: r["fetched_at"]):
        latest[row["post_id"]] = row
    return latest


def test_post_rollup_takes_each_posts_latest_snapshot() -> None:
    rows, facts = generate_history()
    posts = post_rollup(snapshots_frame(rows), facts).set_index("post_id")
    expected = last_rows(rows)
    assert len(posts) == len(expected) == 18
    for post_id, row in expected.items():
        assert posts.loc[post_id, "views"] == row["views"]
        assert posts.loc[post_id, "snapshots"] == 5
        assert posts.loc[post_id, "topic"].startswith("Topic ")
    # The recount lowered views and the latest value is what the platform says now.
    recounted = [r["views"] for r in rows if r["post_id"] == RECOUNTED]
    assert recounted[3] < recounted[2]
    assert posts.loc[RECOUNTED, "views"] == recounted[-1]
    # Telegram does not report likes or watch time: NaN, not 0.
    assert math.isnan(posts.loc["telegram-0", "likes"])
    assert math.isnan(posts.loc["telegram-0", "watch_time_s"])
    tg = expected["telegram-0"]
    assert posts.loc["telegram-0", "engagement_rate"] == pytest.approx(tg["shares"] / tg["views"])
    yt = expected["youtube-0"]
    engaged = yt["likes"] + yt["comments"] + yt["shares"]
    assert posts.loc["youtube-0", "engagement_rate"] == pytest.approx(engaged / yt["views"])


def test_platform_and_channel_rollups_match_the_generated_history() -> None:
    rows, facts = generate_history()
    posts = post_rollup(snapshots_frame(rows), facts)
    latest = last_rows(rows).values()
    platforms = platform_rollup(posts).set_index("platform")
    assert list(platforms.index) == sorted(PLATFORMS)
    for platform in PLATFORMS:
        mine = [r for r in latest if r["platform"] == platform]
        assert platforms.loc[platform, "posts"] == 6
        assert platforms.loc[platform, "views"] == sum(r["views"] for r in mine)
        assert platforms.loc[platform, "shares"] == sum(r["shares"] for r in mine)
        assert (
            platforms.loc[platform, "median_views"]
            == pd.Series([r["views"] for r in mine]).median()
        )
    yt = [r for r in latest if r["platform"] == "youtube"]
    assert platforms.loc["youtube", "watch_time_s"] == pytest.approx(
        sum(r["watch_time_s"] for r in yt)
    )
    assert platforms.loc["youtube", "watch_time_posts"] == 6
    engaged = sum(r["likes"] + r["comments"] + r["shares"] for r in yt)
    assert platforms.loc["youtube", "engagement_rate"] == pytest.approx(
        engaged / sum(r["views"] for r in yt)
    )
    # Nobody on telegram reports watch time: unknown, not zero seconds.
    assert math.isnan(platforms.loc["telegram", "watch_time_s"])
    assert platforms.loc["telegram", "watch_time_posts"] == 0
    assert math.isnan(platforms.loc["telegram", "likes"])

    channel = channel_rollup(posts).set_index("channel").loc["science"]
    assert channel["posts"] == 18
    assert channel["views"] == sum(r["views"] for r in latest)
    # Watch time where available: the youtube and tiktok posts, not telegram.
    assert channel["watch_time_posts"] == 12
    assert channel["watch_time_s"] == pytest.approx(
        sum(r["watch_time_s"] for r in latest if r["watch_time_s"] is not None)
    )


def test_a_metric_left_out_later_keeps_its_last_reported_value() -> None:
    snaps = snapshots_frame([
        {"channel": "c", "platform": "x", "post_id": "1", "fetched_at": START,
         "views": 10, "likes": 5},
        {"channel": "c", "platform": "x", "post_id": "1",
         "fetched_at": START + timedelta(hours=1), "views": 12, "likes": None},
    ])  # fmt: skip
    post = post_rollup(snaps).iloc[0]
    assert (post["views"], post["likes"]) == (12, 5)


def test_engagement_with_zero_views_is_nan_not_inf() -> None:
    frame = pd.DataFrame({
        "views": [0.0, 100.0, math.nan, 50.0, 200.0],
        "likes": [3.0, 5.0, 1.0, math.nan, math.nan],
        "comments": [0.0, 3.0, 1.0, 2.0, math.nan],
        "shares": [0.0, 2.0, 1.0, math.nan, math.nan],
    })  # fmt: skip
    rates = engagement_rate(frame)
    assert math.isnan(rates[0])  # 0 views
    assert rates[1] == pytest.approx(0.1)
    assert math.isnan(rates[2])  # views unknown
    assert rates[3] == pytest.approx(2 / 50)  # only comments reported: they count
    assert math.isnan(rates[4])  # no engagement reported at all
    assert not any(math.isinf(r) for r in rates if not math.isnan(r))

    snaps = snapshots_frame([
        {"channel": "c", "platform": "tiktok", "post_id": "a", "fetched_at": START,
         "views": 0, "likes": 0, "comments": 0, "shares": 0},
    ])  # fmt: skip
    posts = post_rollup(snaps)
    assert math.isnan(posts.loc[0, "engagement_rate"])
    assert math.isnan(platform_rollup(posts).loc[0, "engagement_rate"])
    assert best_performers(posts).by_engagement.empty


def test_growth_clips_recounts_at_zero_and_says_so() -> None:
    def snap(hours: float, views: int, post: str = "p") -> dict[str, Any]:
        return {
            "channel": "c", "topic_key": "t", "platform": "youtube", "post_id": post,
            "fetched_at": START + timedelta(hours=hours), "views": views,
        }  # fmt: skip

    snaps = snapshots_frame([
        snap(0, 100), snap(24, 150), snap(48, 120), snap(72, 200),
        # 23:30 UTC on day 3 is 02:30 on day 4 in Moscow.
        snap(0, 10, "q"), snap(14.5 + 48, 30, "q"),
    ])  # fmt: skip
    result = growth(snaps, tz="UTC")
    per_post = result.per_post[result.per_post["post_id"] == "p"]
    assert per_post["views_gained"].tolist() == [50, 0, 80]
    assert (result.per_post["views_gained"] >= 0).all()
    assert len(result.recounts) == 1
    recount = result.recounts.iloc[0]
    assert (recount["views_before"], recount["views_after"]) == (150, 120)
    assert "150 → 120" in result.note and "0 views gained" in result.note
    per_platform = result.per_platform.set_index("day")["views_gained"]
    assert per_platform[pd.Timestamp("2025-03-03")] == 0 + 20  # p's recount day, q's step
    moscow = growth(snaps, tz="Europe/Moscow").per_post
    q_day = moscow[moscow["post_id"] == "q"]["day"].tolist()
    assert q_day == [pd.Timestamp("2025-03-04")]
    assert growth(snaps.iloc[:0]).note == ""


def test_views_over_time_carries_each_posts_views_forward() -> None:
    snaps = snapshots_frame([
        {"channel": "c", "platform": "youtube", "post_id": "a", "fetched_at": START, "views": 100},
        {"channel": "c", "platform": "youtube", "post_id": "b",
         "fetched_at": START + timedelta(days=1), "views": 40},
        {"channel": "c", "platform": "youtube", "post_id": "a",
         "fetched_at": START + timedelta(days=2), "views": 300},
    ])  # fmt: skip
    over = views_over_time(snaps)
    assert over["views"].tolist() == [100, 140, 340]  # day 2 still counts a's 100
    assert over["posts"].tolist() == [1, 2, 2]


def test_best_performers_by_views_and_by_engagement() -> None:
    rows, facts = generate_history()
    posts = post_rollup(snapshots_frame(rows), facts)
    best = best_performers(posts, n=3)
    by_views = sorted(last_rows(rows).values(), key=lambda r: -r["views"])[:3]
    assert best.by_views["post_id"].tolist() == [r["post_id"] for r in by_views]
    rates = best.by_engagement["engagement_rate"].tolist()
    assert len(rates) == 3 and rates == sorted(rates, reverse=True)
    assert rates[0] == posts["engagement_rate"].max()
    # A post seen twice and liked once is not the best performer when views are required.
    tiny = snapshots_frame([
        {"channel": "c", "platform": "x", "post_id": "tiny", "fetched_at": START,
         "views": 2, "likes": 1},
        {"channel": "c", "platform": "x", "post_id": "big", "fetched_at": START,
         "views": 1000, "likes": 50},
    ])  # fmt: skip
    assert best_performers(post_rollup(tiny), min_views=100).by_engagement["post_id"].tolist() == [
        "big"
    ]


@pytest.mark.parametrize(
    ("hook", "kind"),
    [
        ("Why is the sky blue?", HookKind.QUESTION),
        ("Have you ever seen a lighthouse at night", HookKind.QUESTION),
        ("Почему небо голубое?", HookKind.QUESTION),
        ("Знаете ли вы, как работает маяк", HookKind.QUESTION),
        ("Как устроен маяк", HookKind.QUESTION),
        ("5 facts about owls", HookKind.NUMBER),
        ("Five facts about owls?", HookKind.NUMBER),
        ("Три причины любить маяки", HookKind.NUMBER),
        ("«7 чудес света»", HookKind.NUMBER),
        ("Lighthouses guided ships for centuries.", HookKind.STATEMENT),
        ("Стоит посмотреть на маяк.", HookKind.STATEMENT),  # "сто" is a prefix, not the word
        ("Маяки светят всю ночь.", HookKind.STATEMENT),
    ],
)
def test_hook_kind_in_english_and_russian(hook: str, kind: HookKind) -> None:
    assert hook_kind(hook) is kind


def test_small_helpers() -> None:
    assert first_line("\n  Why do owls hoot?  \nBody text\n") == "Why do owls hoot?"
    assert [length_bucket(d) for d in (20, 25, 32, 32.5)] == [
        "<25 s",
        "25–32 s",
        "25–32 s",
        ">32 s",
    ]
    assert hour_bucket(19) == "18:00–23:59" and hour_bucket(0) == "00:00–05:59"
    assert topic_words("Как работают маяки и 3 lighthouses") == ["работают", "маяки", "lighthouses"]


def _designed(
    hooks: list[str],
    views: list[int],
    *,
    hours: list[int] | None = None,
    durations: list[float] | None = None,
) -> tuple[pd.DataFrame, list[PostFacts]]:
    """One youtube post per topic with the given hook and views; engagement 5% everywhere so
    only views can differ; distinct topic words so no word is shared by 3 posts."""
    rows, facts = [], []
    for i, (hook, v) in enumerate(zip(hooks, views, strict=True)):
        hour = hours[i] if hours else 10
        published = datetime(2025, 3, 1, hour, tzinfo=UTC)
        rows.append({
            "owner": "alice", "channel": "science", "topic_key": f"t{i}", "platform": "youtube",
            "post_id": f"v{i}", "fetched_at": published + timedelta(days=1), "views": v,
            "likes": v // 20, "comments": 0, "shares": 0,
        })  # fmt: skip
        facts.append(
            PostFacts(
                topic_key=f"t{i}", channel="science", platform="youtube", post_id=f"v{i}",
                published_at=published, topic=f"subject{chr(97 + i)}", hook=hook,
                duration_s=durations[i] if durations else 28.0,
            )
        )  # fmt: skip
    return snapshots_frame(rows), facts


QUESTIONS = ["Why do owls hoot?", "Почему небо голубое?", "How do bees fly?"]
STATEMENTS = [f"Statement number {w}." for w in ("one", "two", "three", "four", "five", "six")]


def test_question_hooks_with_twice_the_median_are_recommended_with_their_numbers() -> None:
    snaps, facts = _designed(QUESTIONS + STATEMENTS, [2000, 2000, 2000] + [1000] * 6)
    posts = post_rollup(snaps, facts)
    found = recommendations(posts, min_posts=3, margin=0.2)
    assert len(found) == 1  # statements sit at the median; engagement is flat; no shared words
    rec = found[0]
    assert (rec.dimension, rec.group, rec.metric, rec.direction) == (
        "hook", "question", "views", "beats",
    )  # fmt: skip
    assert (rec.posts, rec.topics, rec.channel_posts) == (3, 3, 9)
    assert rec.group_median == 2000 and rec.channel_median == 1000
    assert rec.ratio == pytest.approx(2.0)
    for cited in (
        "Question hooks",
        "3 posts",
        "2,000 views",
        "1,000 views",
        "all 9 posts",
        "2.00×",
    ):
        assert cited in rec.sentence

    # Too few posts: a group of 3 is not evidence when 4 are required.
    assert recommendations(posts, min_posts=4) == []
    # Within the margin: 1.1x is not a finding at a 20% margin, but is at 5%.
    snaps, facts = _designed(QUESTIONS + STATEMENTS, [1100, 1100, 1100] + [1000] * 6)
    close = post_rollup(snaps, facts)
    assert recommendations(close, margin=0.2) == []
    assert [r.ratio for r in recommendations(close, margin=0.05)] == [pytest.approx(1.1)]
    with pytest.raises(ValueError, match="margin"):
        recommendations(close, margin=1.5)


def test_lagging_groups_and_hours_in_the_channels_time_zone() -> None:
    # Three posts at 16:00 UTC (19:00 in Moscow) get a quarter of the others' views.
    hours = [16, 16, 16, 8, 8, 8, 8, 8, 8]
    views = [250, 250, 250] + [1000] * 6
    snaps, facts = _designed(STATEMENTS[:3] + STATEMENTS, views, hours=hours)
    posts = post_rollup(snaps, facts)
    found = recommendations(posts, tz="Europe/Moscow")
    evening = [r for r in found if r.dimension == "hour"]
    assert [(r.group, r.direction, r.posts) for r in evening] == [("18:00–23:59", "lags", 3)]
    assert evening[0].ratio == pytest.approx(0.25)
    assert "(Europe/Moscow)" in evening[0].sentence and "0.25×" in evening[0].sentence
    in_utc = [r.group for r in recommendations(posts, tz="UTC") if r.dimension == "hour"]
    assert in_utc == ["12:00–17:59"]


def test_length_buckets_and_platforms_are_compared_too() -> None:
    durations = [20.0, 21.0, 22.0, 28.0, 28.0, 28.0, 40.0, 40.0, 40.0]
    views = [3000, 3000, 3000, 1000, 1000, 1000, 1000, 1000, 1000]
    snaps, facts = _designed(STATEMENTS + STATEMENTS[:3], views, durations=durations)
    found = recommendations(post_rollup(snaps, facts))
    lengths = [(r.group, r.ratio) for r in found if r.dimension == "length"]
    assert lengths == [("<25 s", pytest.approx(3.0))]
    assert "Videos shorter than 25 s" in found[0].sentence


def test_no_metrics_gives_empty_results_and_says_so() -> None:
    _, facts = generate_history(topics=2)
    for result in (analyse(snapshots_frame()), analyse(snapshots_frame(), facts, tz="Asia/Tokyo")):
        assert result.empty
        assert result.status == NO_METRICS
        assert result.posts.empty and result.platforms.empty and result.channels.empty
        assert result.growth.per_post.empty and result.growth.note == ""
        assert result.views_over_time.empty
        assert result.best.by_views.empty and result.best.by_engagement.empty
        assert result.recommendations == []
    assert "views" in analyse(snapshots_frame()).platforms.columns


def test_analyse_bundles_everything() -> None:
    rows, facts = generate_history()
    result = analyse(snapshots_frame(rows), facts, tz="Europe/Moscow", top_n=4)
    assert not result.empty
    assert result.status.startswith("18 posts on 3 platforms, metrics fetched 2025-03-02 to ")
    assert len(result.best.by_views) == 4
    assert len(result.growth.recounts) == 1
    assert result.growth.recounts.iloc[0]["post_id"] == RECOUNTED
    assert set(result.views_over_time["platform"]) == set(PLATFORMS)
    for rec in result.recommendations:
        assert rec.posts >= 3
        assert rec.ratio >= 1.2 or rec.ratio <= 0.8
        assert f"{rec.ratio:.2f}×" in rec.sentence
