"""Analytics over the metrics history: rollups, growth, best performers and recommendations the
numbers explain. Pure: pandas and pydantic, no I/O.

Input is a frame of snapshots (one row per post per fetch, the columns of `SNAPSHOT_COLUMNS`,
as `factory_resources.metrics_history.MetricsHistory.frame` returns it) and, optionally, what
the factory knows about each post (`PostFacts`: its topic, hook, length, publication time).
A metric that is NaN was not reported by the platform, which is not the same as 0: sums use
`min_count=1` so "nobody reported watch time" stays NaN instead of becoming 0 seconds.

`analyse(snapshots, facts, tz=...)` computes everything at once into an `Analytics` bundle
that `factory_resources.analytics_report` draws and writes; the functions it calls are public
for callers that need one piece. With no snapshots every result is empty and
`Analytics.status` is `NO_METRICS`; nothing raises.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal
from zoneinfo import ZoneInfo

import pandas as pd
from pydantic import AwareDatetime, BaseModel, Field

from factory_core.publish_metadata import Platform
from factory_core.text import STOPWORDS, words_of

NO_METRICS = "no metrics yet: no published post has been measured"

METRICS: tuple[str, ...] = (
    "views",
    "likes",
    "comments",
    "shares",
    "saves",
    "watch_time_s",
    "avg_view_duration_s",
)
IDENTITY: tuple[str, ...] = ("owner", "channel", "topic_key", "platform", "post_id")
SNAPSHOT_COLUMNS: tuple[str, ...] = (*IDENTITY, "fetched_at", *METRICS)
# A post is one platform's copy of one topic's video; these never change for a post.
POST_KEYS: list[str] = ["channel", "topic_key", "platform", "post_id"]
FACT_COLUMNS: tuple[str, ...] = (
    "topic",
    "hook",
    "hook_kind",
    "duration_s",
    "published_at",
    "language",
    "style",
)
POST_COLUMNS: tuple[str, ...] = (
    *POST_KEYS,
    "snapshots",
    "first_fetched_at",
    "fetched_at",
    *METRICS,
    "engagement_rate",
    *FACT_COLUMNS,
)
ROLLUP_METRICS: tuple[str, ...] = ("views", "likes", "comments", "shares", "saves", "watch_time_s")
ROLLUP_COLUMNS: tuple[str, ...] = (
    "posts",
    *ROLLUP_METRICS,
    "watch_time_posts",
    "median_views",
    "engagement_rate",
)

DEFAULT_LENGTH_EDGES: tuple[float, ...] = (25.0, 32.0)
DEFAULT_HOUR_BUCKETS: tuple[tuple[int, int], ...] = ((0, 6), (6, 12), (12, 18), (18, 24))


class HookKind(StrEnum):
    QUESTION = "question"
    NUMBER = "number-led"
    STATEMENT = "statement"


class PostFacts(BaseModel):
    """What the factory knows about one published post, joined to its metrics on
    (platform, post_id). Build one per published ledger row from the topic's script."""

    topic_key: str
    channel: str
    platform: Platform
    post_id: str
    published_at: AwareDatetime
    topic: str
    hook: str = Field(description="The script's first line (see `first_line`).")
    duration_s: float | None = Field(None, ge=0)
    language: str = "en"
    style: str = ""


def first_line(script_text: str) -> str:
    """The hook of a script: its first non-blank line, stripped."""
    return next((line.strip() for line in script_text.splitlines() if line.strip()), "")


# Number words a hook may open with ("Five reasons...", "Три причины..."); digits are caught
# separately. Russian numerals decline, so their common forms are listed (exact words: a stem
# like "сто" would also catch "стоит" and "сторона").
_NUMBER_WORDS = frozenset(
    """one two three four five six seven eight nine ten eleven twelve fifteen twenty thirty
    fifty hundred thousand million billion dozen top
    один одна одно одни одного одной два две двух трёх трех три четыре четырёх четырех пять пяти
    шесть шести семь семи восемь восьми девять девяти десять десяти одиннадцать двенадцать
    пятнадцать двадцать двадцати тридцать сорок пятьдесят сто сотня тысяча тысячи тысяч миллион
    миллиона миллионов миллиард топ""".split()
)
_QUESTION_WORDS = frozenset(
    """what why how who whom whose when where which did do does is are was were can could would
    will should have has ever
    что почему зачем как кто когда где какой какая какое какие каких сколько куда откуда разве
    неужели чей чья чьё чем""".split()
)
_QUESTION_MARKS = ("?", "？", "؟", "¿")
_DIGIT_LEAD = re.compile(r"^\W*\d")


def hook_kind(hook: str) -> HookKind:
    """Number-led when the hook opens with a number (digits or a number word, English or
    Russian), else a question when it asks (a question mark, an opening question word, or the
    Russian particle "ли" as its second word), else a statement."""
    text = hook.strip()
    words = [w.casefold() for w in words_of(text)]
    if _DIGIT_LEAD.match(text):
        return HookKind.NUMBER
    if words and words[0] in _NUMBER_WORDS:
        return HookKind.NUMBER
    if any(mark in text for mark in _QUESTION_MARKS):
        return HookKind.QUESTION
    if words and (words[0] in _QUESTION_WORDS or (len(words) > 1 and words[1] == "ли")):
        return HookKind.QUESTION
    return HookKind.STATEMENT


def topic_words(topic: str) -> list[str]:
    """The content words of a topic (case-folded, no stop words, no numbers), each once."""
    out: list[str] = []
    for word in words_of(topic):
        low = word.casefold().strip("'’-")
        if len(low) >= 3 and low not in STOPWORDS and not low.isdigit() and low not in out:
            out.append(low)
    return out


# --- frames ------------------------------------------------------------------------------


def snapshots_frame(rows: Iterable[Mapping[str, Any]] = ()) -> pd.DataFrame:
    """A snapshots frame from records (missing metrics NaN; naive times taken as UTC)."""
    return normalise_snapshots(pd.DataFrame(list(rows), columns=list(SNAPSHOT_COLUMNS)))


def normalise_snapshots(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with every snapshot column, text identities, UTC `fetched_at` and float
    metrics (NaN = not reported), sorted by time."""
    df = frame.copy()
    for col in SNAPSHOT_COLUMNS:
        if col not in df.columns:
            df[col] = pd.NA
    for col in IDENTITY:
        df[col] = df[col].map(lambda v: "" if v is None or v is pd.NA else str(v)).astype(str)
    df["fetched_at"] = pd.to_datetime(df["fetched_at"], utc=True)
    for col in METRICS:
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    df = df[list(SNAPSHOT_COLUMNS)]
    return df.sort_values(["fetched_at", *POST_KEYS], kind="stable").reset_index(drop=True)


def facts_frame(facts: Iterable[PostFacts]) -> pd.DataFrame:
    """One row per post: (platform, post_id) and the FACT_COLUMNS, `published_at` in UTC."""
    rows = [
        {
            "platform": str(f.platform),
            "post_id": f.post_id,
            "topic": f.topic,
            "hook": f.hook,
            "hook_kind": str(hook_kind(f.hook)),
            "duration_s": f.duration_s,
            "published_at": f.published_at,
            "language": f.language,
            "style": f.style,
        }
        for f in facts
    ]
    df = pd.DataFrame(rows, columns=["platform", "post_id", *FACT_COLUMNS])
    df["published_at"] = pd.to_datetime(df["published_at"], utc=True)
    df["duration_s"] = pd.to_numeric(df["duration_s"], errors="coerce").astype("float64")
    # The last word on a post wins if the caller passes it twice.
    return df.drop_duplicates(["platform", "post_id"], keep="last").reset_index(drop=True)


def engagement_rate(frame: pd.DataFrame) -> pd.Series:
    """(likes + comments + shares) / views per row. Components a platform does not report
    count as 0 when at least one is reported; no component, or 0 / unknown views: NaN."""
    engaged = frame[["likes", "comments", "shares"]].sum(axis=1, min_count=1)
    views = frame["views"].where(frame["views"] > 0)
    return (engaged / views).astype("float64")


def latest_snapshots(snapshots: pd.DataFrame) -> pd.DataFrame:
    """One row per post: each metric's most recent reported value (a later snapshot that left
    a metric out does not erase it), the number of snapshots and the first and last fetch."""
    s = normalise_snapshots(snapshots)
    columns = [*POST_KEYS, "snapshots", "first_fetched_at", "fetched_at", *METRICS]
    if s.empty:
        return _empty(columns, times=("first_fetched_at", "fetched_at"))
    grouped = s.groupby(POST_KEYS, sort=True)
    latest = grouped[["fetched_at", *METRICS]].last()  # last() skips NaN: latest reported
    latest.insert(0, "first_fetched_at", grouped["fetched_at"].min())
    latest.insert(0, "snapshots", grouped.size())
    return latest.reset_index()[columns]


def post_rollup(snapshots: pd.DataFrame, facts: Iterable[PostFacts] = ()) -> pd.DataFrame:
    """Per post: latest metrics, engagement rate and the post's facts (NaN where unknown),
    most viewed first."""
    latest = latest_snapshots(snapshots)
    latest["engagement_rate"] = (
        engagement_rate(latest) if not latest.empty else pd.Series(dtype="float64")
    )
    known = facts_frame(facts)
    posts = latest.merge(known, on=["platform", "post_id"], how="left")
    if posts.empty:
        return _empty(list(POST_COLUMNS), times=("first_fetched_at", "fetched_at", "published_at"))
    posts = posts.sort_values(["views", "post_id"], ascending=[False, True], na_position="last")
    return posts.reset_index(drop=True)[list(POST_COLUMNS)]


def _group_rollup(posts: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    columns = [*by, *ROLLUP_COLUMNS]
    if posts.empty:
        return _empty(columns)
    p = posts.copy()
    # Engagement of a group: engaged actions over views, both from the posts that report
    # engagement and have views, so a platform without likes does not dilute the rate.
    engaged = p[["likes", "comments", "shares"]].sum(axis=1, min_count=1)
    counted = engaged.notna() & (p["views"] > 0)
    p["_engaged"] = engaged.where(counted)
    p["_engaged_views"] = p["views"].where(counted)
    grouped = p.groupby(by, sort=True)
    out = grouped[list(ROLLUP_METRICS)].sum(min_count=1)
    out.insert(0, "posts", grouped.size())
    out["watch_time_posts"] = grouped["watch_time_s"].count()
    out["median_views"] = grouped["views"].median()
    engaged_sum = grouped["_engaged"].sum(min_count=1)
    views_sum = grouped["_engaged_views"].sum(min_count=1)
    out["engagement_rate"] = engaged_sum / views_sum.where(views_sum > 0)
    return out.reset_index()[columns]


def platform_rollup(posts: pd.DataFrame) -> pd.DataFrame:
    """Per channel and platform: posts, summed metrics (NaN when no post reports one), how many
    posts report watch time, median views and the engagement rate."""
    return _group_rollup(posts, ["channel", "platform"])


def channel_rollup(posts: pd.DataFrame) -> pd.DataFrame:
    """Per channel, over every platform: the same columns as `platform_rollup`."""
    return _group_rollup(posts, ["channel"])


# --- growth ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Growth:
    """Views gained per day (in the report's time zone) from consecutive snapshots.

    `per_post`: POST_KEYS, day, views_gained. `per_platform`: channel, platform, day,
    views_gained. `recounts`: every step where a platform lowered a post's views (it recounted,
    e.g. removed invalid views): POST_KEYS, fetched_at, views_before, views_after. Those steps
    count as 0 gained, never as negative growth; `note` says so."""

    per_post: pd.DataFrame
    per_platform: pd.DataFrame
    recounts: pd.DataFrame

    @property
    def note(self) -> str:
        if self.recounts.empty:
            return ""
        first = self.recounts.iloc[0]
        when = pd.Timestamp(first["fetched_at"]).strftime("%Y-%m-%d")
        n = len(self.recounts)
        return (
            f"{n} time{'s' if n != 1 else ''} a platform lowered a post's views (a recount, "
            f"e.g. {first['platform']} {first['post_id']}: {first['views_before']:,.0f} → "
            f"{first['views_after']:,.0f} on {when}); those steps count as 0 views gained, "
            "not as a loss"
        )


def _local_day(times: pd.Series, tz: str) -> pd.Series:
    return times.dt.tz_convert(ZoneInfo(tz)).dt.tz_localize(None).dt.normalize()


def growth(snapshots: pd.DataFrame, tz: str = "UTC") -> Growth:
    """Daily views gained per post and per platform. A step between two snapshots is counted
    on the day (in `tz`) of the later one; a post's first snapshot gains nothing (we do not
    know when its views came); a decrease is clipped to 0 and listed in `recounts`."""
    s = normalise_snapshots(snapshots)
    s = s[s["views"].notna()]
    recount_cols = [*POST_KEYS, "fetched_at", "views_before", "views_after"]
    if s.empty:
        return Growth(
            per_post=_empty([*POST_KEYS, "day", "views_gained"], times=("day",)),
            per_platform=_empty(["channel", "platform", "day", "views_gained"], times=("day",)),
            recounts=_empty(recount_cols, times=("fetched_at",)),
        )
    s = s.sort_values([*POST_KEYS, "fetched_at"], kind="stable").copy()
    s["views_before"] = s.groupby(POST_KEYS)["views"].shift()
    s = s[s["views_before"].notna()].copy()
    delta = s["views"] - s["views_before"]
    recounts = s[delta < 0].rename(columns={"views": "views_after"})[recount_cols]
    s["views_gained"] = delta.clip(lower=0)
    s["day"] = _local_day(s["fetched_at"], tz)
    per_post = s.groupby([*POST_KEYS, "day"], sort=True)["views_gained"].sum().reset_index()
    per_platform = (
        s.groupby(["channel", "platform", "day"], sort=True)["views_gained"].sum().reset_index()
    )
    return Growth(
        per_post=per_post,
        per_platform=per_platform,
        recounts=recounts.sort_values("fetched_at").reset_index(drop=True),
    )


def views_over_time(snapshots: pd.DataFrame, tz: str = "UTC") -> pd.DataFrame:
    """Per channel, platform and day (in `tz`): the sum over posts of each post's latest known
    views at the end of that day (carried forward on days without a fetch). Columns: channel,
    platform, day, views, posts."""
    s = normalise_snapshots(snapshots)
    s = s[s["views"].notna()].copy()
    columns = ["channel", "platform", "day", "views", "posts"]
    if s.empty:
        return _empty(columns, times=("day",))
    s["day"] = _local_day(s["fetched_at"], tz)
    daily = s.groupby([*POST_KEYS, "day"], sort=True)["views"].last().unstack("day")
    days = pd.date_range(s["day"].min(), s["day"].max(), freq="D")
    daily = daily.reindex(columns=days).ffill(axis=1)
    daily.columns.name = "day"
    long = daily.stack().dropna().rename("views").reset_index()
    out = long.groupby(["channel", "platform", "day"], sort=True).agg(
        views=("views", "sum"), posts=("post_id", "nunique")
    )
    return out.reset_index()[columns]


# --- best performers ---------------------------------------------------------------------


@dataclass(frozen=True)
class BestPerformers:
    """The top posts (rows of the post rollup) by views and by engagement rate."""

    by_views: pd.DataFrame
    by_engagement: pd.DataFrame


def best_performers(posts: pd.DataFrame, n: int = 5, min_views: int = 1) -> BestPerformers:
    """Top `n` posts by views, and by engagement rate among posts with at least `min_views`
    views (a post seen twice and liked once is not a 50% success)."""
    if posts.empty:
        return BestPerformers(by_views=posts.copy(), by_engagement=posts.copy())
    by_views = posts[posts["views"].notna()].sort_values(
        ["views", "post_id"], ascending=[False, True], kind="stable"
    )
    eligible = posts[posts["engagement_rate"].notna() & (posts["views"] >= min_views)]
    by_engagement = eligible.sort_values(
        ["engagement_rate", "views", "post_id"], ascending=[False, False, True], kind="stable"
    )
    return BestPerformers(
        by_views=by_views.head(n).reset_index(drop=True),
        by_engagement=by_engagement.head(n).reset_index(drop=True),
    )


# --- recommendations ---------------------------------------------------------------------

Dimension = Literal["hook", "topic_word", "length", "hour", "platform"]
Metric = Literal["views", "engagement"]


class Recommendation(BaseModel):
    """A group of a channel's posts that beats or lags the channel's median by more than the
    margin, with the numbers behind it and a sentence that cites them."""

    channel: str
    dimension: Dimension
    group: str  # "question", "lighthouse", "<25 s", "18:00–23:59", "youtube"
    metric: Metric
    direction: Literal["beats", "lags"]
    posts: int  # posts in the group with this metric
    topics: int  # distinct topics among them (one topic posted to 3 platforms is 3 posts)
    channel_posts: int  # posts of the channel with this metric
    group_median: float
    channel_median: float
    ratio: float  # group_median / channel_median
    margin: float
    sentence: str


def length_bucket(duration_s: float, edges: Sequence[float] = DEFAULT_LENGTH_EDGES) -> str:
    """The length bucket: "<25 s", "25–32 s" (both ends included) or ">32 s" for the default
    edges; with a single edge, "<25 s" or "≥25 s"."""
    ordered = sorted(edges)
    if duration_s < ordered[0]:
        return f"<{ordered[0]:g} s"
    if len(ordered) == 1:
        return f"≥{ordered[0]:g} s"
    for low, high in itertools.pairwise(ordered):
        if duration_s <= high:
            return f"{low:g}–{high:g} s"
    return f">{ordered[-1]:g} s"


def hour_bucket(hour: int, buckets: Sequence[tuple[int, int]] = DEFAULT_HOUR_BUCKETS) -> str:
    """The bucket [start, end) holding `hour`, labelled "06:00–11:59"; hours outside every
    bucket get their own "HH:00–HH:59"."""
    for start, end in buckets:
        if start <= hour < end:
            return f"{start:02d}:00–{end - 1:02d}:59"
    return f"{hour:02d}:00–{hour:02d}:59"


def _group_labels(
    posts: pd.DataFrame,
    dimension: Dimension,
    tz: str,
    length_edges: Sequence[float],
    hour_buckets: Sequence[tuple[int, int]],
) -> pd.Series:
    """Each post's group(s) for a dimension (a list for topic words), NaN when unknown."""
    if dimension == "hook":
        return posts["hook_kind"]
    if dimension == "platform":
        return posts["platform"]
    if dimension == "topic_word":
        return posts["topic"].map(lambda t: topic_words(t) if isinstance(t, str) else [])
    if dimension == "length":
        return posts["duration_s"].map(
            lambda d: length_bucket(d, length_edges) if pd.notna(d) else None
        )
    hours = posts["published_at"].dt.tz_convert(ZoneInfo(tz)).dt.hour
    return hours.map(lambda h: hour_bucket(int(h), hour_buckets) if pd.notna(h) else None)


def _describe(dimension: Dimension, group: str, tz: str) -> str:
    if dimension == "hook":
        return f"{group.capitalize()} hooks"
    if dimension == "topic_word":
        return f"Topics with the word “{group}”"
    if dimension == "length":
        if group.startswith("<"):
            return f"Videos shorter than {group[1:]}"
        if group.startswith(">"):
            return f"Videos longer than {group[1:]}"
        if group.startswith("≥"):
            return f"Videos of at least {group[1:]}"
        return f"Videos of {group}"
    if dimension == "hour":
        return f"Posts published {group} ({tz})"
    return f"Posts on {group}"


def _fmt(metric: Metric, value: float) -> str:
    return f"{value:,.0f} views" if metric == "views" else f"{value:.1%} engagement"


def _sentence(
    dimension: Dimension,
    group: str,
    metric: Metric,
    direction: str,
    posts: int,
    topics: int,
    channel_posts: int,
    group_median: float,
    channel_median: float,
    ratio: float,
    tz: str,
) -> str:
    verb = "beat" if direction == "beats" else "lag behind"
    advice = "worth doing more often" if direction == "beats" else "worth doing less or reworking"
    what = "median views" if metric == "views" else "median engagement rate"
    return (
        f"{_describe(dimension, group, tz)} {verb} the channel's {what}: "
        f"{posts} post{'s' if posts != 1 else ''} ({topics} topic{'s' if topics != 1 else ''}) "
        f"{'have' if posts != 1 else 'has'} a median of {_fmt(metric, group_median)} against "
        f"{_fmt(metric, channel_median)} for all {channel_posts} posts ({ratio:.2f}×); {advice}."
    )


def recommendations(
    posts: pd.DataFrame,
    *,
    tz: str = "UTC",
    min_posts: int = 3,
    margin: float = 0.2,
    length_edges: Sequence[float] = DEFAULT_LENGTH_EDGES,
    hour_buckets: Sequence[tuple[int, int]] = DEFAULT_HOUR_BUCKETS,
    dimensions: Sequence[Dimension] = ("hook", "topic_word", "length", "hour", "platform"),
) -> list[Recommendation]:
    """Groups of each channel's posts (a post rollup with facts) whose median views or median
    engagement rate is at least `1 + margin` times the channel's median ("beats") or at most
    `1 - margin` times it ("lags"), among groups of at least `min_posts` posts with that metric.
    Hours are bucketed in `tz`, the channel's time zone. Strongest finding first.

    Medians are over posts, all platforms together: a platform with far more reach weighs in,
    which the "platform" dimension makes visible. A group that is every post is never
    reported (its ratio is 1)."""
    ZoneInfo(tz)  # an unknown zone fails here, before any work
    if not 0 < margin < 1:
        raise ValueError(f"margin must be between 0 and 1, not {margin}")
    if posts.empty:
        return []
    found: list[Recommendation] = []
    frame = posts.copy()
    for col in FACT_COLUMNS:
        if col not in frame.columns:
            frame[col] = pd.NA
    frame["engagement"] = frame["engagement_rate"]
    for channel, chan in frame.groupby("channel", sort=True):
        for metric in ("views", "engagement"):
            measured = chan[chan[metric].notna()]
            if metric == "engagement":
                measured = measured[measured["views"] > 0]
            channel_median = float(measured[metric].median()) if len(measured) else math.nan
            if not channel_median > 0:
                continue  # nothing to compare with (no data, or a median of 0)
            for dimension in dimensions:
                labels = _group_labels(measured, dimension, tz, length_edges, hour_buckets)
                labelled = measured.assign(_group=labels).explode("_group")
                labelled = labelled[labelled["_group"].notna() & (labelled["_group"] != "")]
                for group, members in labelled.groupby("_group", sort=True):
                    n = len(members)
                    if n < min_posts or n == len(measured):
                        continue
                    group_median = float(members[metric].median())
                    ratio = group_median / channel_median
                    if ratio >= 1 + margin:
                        direction = "beats"
                    elif ratio <= 1 - margin:
                        direction = "lags"
                    else:
                        continue
                    topics = int(members["topic_key"].nunique())
                    found.append(
                        Recommendation(
                            channel=str(channel),
                            dimension=dimension,
                            group=str(group),
                            metric=metric,  # type: ignore[arg-type]
                            direction=direction,
                            posts=n,
                            topics=topics,
                            channel_posts=len(measured),
                            group_median=group_median,
                            channel_median=channel_median,
                            ratio=ratio,
                            margin=margin,
                            sentence=_sentence(
                                dimension, str(group), metric, direction, n, topics,  # type: ignore[arg-type]
                                len(measured), group_median, channel_median, ratio, tz,
                            ),
                        )
                    )  # fmt: skip
    return sorted(
        found,
        key=lambda r: (-abs(math.log(r.ratio)) if r.ratio > 0 else -math.inf, r.channel,
                       r.metric, r.dimension, r.group),
    )  # fmt: skip


# --- everything at once ------------------------------------------------------------------


@dataclass(frozen=True)
class Analytics:
    """Every result for one owner's history (one channel or several), ready to draw."""

    posts: pd.DataFrame  # post_rollup
    platforms: pd.DataFrame  # platform_rollup
    channels: pd.DataFrame  # channel_rollup
    growth: Growth
    views_over_time: pd.DataFrame
    best: BestPerformers
    recommendations: list[Recommendation] = field(default_factory=list)
    tz: str = "UTC"
    min_posts: int = 3  # the thresholds the recommendations used, for the report to state
    margin: float = 0.2

    @property
    def empty(self) -> bool:
        return self.posts.empty

    @property
    def status(self) -> str:
        """`NO_METRICS`, or e.g. "12 posts on 3 platforms, fetched 2025-01-01 to 2025-01-05"."""
        if self.empty:
            return NO_METRICS
        zone = ZoneInfo(self.tz)
        start = self.posts["first_fetched_at"].min().tz_convert(zone).strftime("%Y-%m-%d")
        end = self.posts["fetched_at"].max().tz_convert(zone).strftime("%Y-%m-%d")
        n, k = len(self.posts), self.posts["platform"].nunique()
        span = start if start == end else f"{start} to {end}"
        return (
            f"{n} post{'s' if n != 1 else ''} on {k} platform{'s' if k != 1 else ''}, "
            f"metrics fetched {span} ({self.tz})"
        )


def analyse(
    snapshots: pd.DataFrame,
    facts: Iterable[PostFacts] = (),
    *,
    tz: str = "UTC",
    top_n: int = 5,
    min_posts: int = 3,
    margin: float = 0.2,
    min_views_for_engagement: int = 1,
    length_edges: Sequence[float] = DEFAULT_LENGTH_EDGES,
    hour_buckets: Sequence[tuple[int, int]] = DEFAULT_HOUR_BUCKETS,
) -> Analytics:
    """Rollups, growth, views over time, best performers and recommendations, with days and
    posting hours in `tz` (the channel's time zone, e.g. "Europe/Moscow")."""
    ZoneInfo(tz)
    posts = post_rollup(snapshots, list(facts))
    return Analytics(
        posts=posts,
        platforms=platform_rollup(posts),
        channels=channel_rollup(posts),
        growth=growth(snapshots, tz),
        views_over_time=views_over_time(snapshots, tz),
        best=best_performers(posts, top_n, min_views_for_engagement),
        recommendations=recommendations(
            posts,
            tz=tz,
            min_posts=min_posts,
            margin=margin,
            length_edges=length_edges,
            hour_buckets=hour_buckets,
        ),
        tz=tz,
        min_posts=min_posts,
        margin=margin,
    )


def _empty(columns: Sequence[str], times: Sequence[str] = ()) -> pd.DataFrame:
    """An empty frame with the right columns (times as UTC datetimes, the rest float or text)."""
    text = {*POST_KEYS, "owner", "topic", "hook", "hook_kind", "language", "style"}
    data: dict[str, pd.Series] = {}
    for col in columns:
        if col == "day":  # days are local calendar days, without a zone
            data[col] = pd.Series(dtype="datetime64[ns]")
        elif col in times:
            data[col] = pd.Series(dtype="datetime64[ns, UTC]")
        elif col in text:
            data[col] = pd.Series(dtype=str)
        else:
            data[col] = pd.Series(dtype="float64")
    return pd.DataFrame(data)
