"""Charts (PNG) and an HTML report of `factory_core.analytics.Analytics`.

Charts are drawn on matplotlib's Agg canvas directly (a `Figure` with `FigureCanvasAgg`, never
pyplot), so there is no global backend to switch, no GUI and no state shared between threads;
matplotlib is imported only when a chart is drawn. Text is set in DejaVu Sans, which matplotlib
ships and which covers Cyrillic, so Russian topics and titles render. PNGs carry no timestamp:
the same data gives the same bytes.

The HTML report is one file: every text from the data (topics, hooks, channel names) goes
through `html.escape`, and the charts are embedded as data URIs (or, on request, linked by a
path relative to the report).
"""

from __future__ import annotations

import base64
import html
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from factory_core.analytics import NO_METRICS, Analytics

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CHART_NAMES = ("views_over_time", "engagement_by_platform", "top_posts")
FONT_FAMILY = "DejaVu Sans"
_SIZE_IN = (8.0, 4.5)
_DPI = 100  # 800 x 450 px: readable in the Dagster UI and in the report


def _figure() -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=_SIZE_IN, dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # No "Software"/date chunks: identical data gives identical files.
    fig.savefig(path, format="png", metadata={"Software": None})
    return path


def _series_label(channel: str, platform: str, several_channels: bool) -> str:
    return f"{channel} · {platform}" if several_channels else platform


def _channels_title(analytics: Analytics) -> str:
    names = sorted(set(analytics.posts["channel"]))
    return ", ".join(names) if names else ""


def _short(text: str, limit: int = 42) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _draw_views_over_time(fig: Figure, analytics: Analytics, title: str) -> None:
    ax = fig.add_subplot()
    data = analytics.views_over_time
    several = data["channel"].nunique() > 1
    for (channel, platform), rows in data.groupby(["channel", "platform"], sort=True):
        ax.plot(
            rows["day"],
            rows["views"],
            marker="o",
            label=_series_label(str(channel), str(platform), several),
        )
    ax.set_title(title)
    ax.set_ylabel("views (latest known, all posts)")
    ax.yaxis.set_major_formatter(_thousands())
    # Whole days on the axis (the data is daily): a locator that never drops to hours.
    from matplotlib.dates import DateFormatter, DayLocator

    days = max(1, (data["day"].max() - data["day"].min()).days)
    ax.xaxis.set_major_locator(DayLocator(interval=max(1, math.ceil(days / 8))))
    ax.xaxis.set_major_formatter(DateFormatter("%Y-%m-%d"))
    ax.legend(loc="upper left", fontsize="small")
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()


def _draw_engagement(fig: Figure, analytics: Analytics, title: str) -> None:
    ax = fig.add_subplot()
    data = analytics.platforms[analytics.platforms["engagement_rate"].notna()]
    ax.set_title(title)
    if data.empty:
        ax.text(0.5, 0.5, "no platform reported likes, comments or shares", ha="center")
        ax.set_axis_off()
        return
    several = analytics.platforms["channel"].nunique() > 1
    labels = [
        _series_label(str(c), str(p), several)
        for c, p in zip(data["channel"], data["platform"], strict=True)
    ]
    values = (data["engagement_rate"] * 100).tolist()
    # Positions, not category names: two equal labels must stay two bars.
    bars = ax.bar(range(len(values)), values, color="#2A9D8F", tick_label=labels)
    ax.bar_label(bars, labels=[f"{v:.1f}%" for v in values], fontsize="small")
    ax.set_ylabel("engagement rate, %")
    ax.set_xlabel("(likes + comments + shares) / views")
    ax.grid(axis="y", alpha=0.3)


def _draw_top_posts(fig: Figure, analytics: Analytics, title: str) -> None:
    ax = fig.add_subplot()
    top = analytics.best.by_views.iloc[::-1]  # barh draws bottom-up: best on top
    labels = [
        f"{_short(topic) if isinstance(topic, str) and topic else post_id} · {platform}"
        for topic, post_id, platform in zip(
            top["topic"], top["post_id"], top["platform"], strict=True
        )
    ]
    # Positions, not category names: one topic on two platforms must stay two bars.
    bars = ax.barh(range(len(labels)), top["views"].tolist(), color="#14213D", tick_label=labels)
    ax.bar_label(bars, labels=[f"{v:,.0f}" for v in top["views"]], fontsize="small")
    ax.set_title(title)
    ax.set_xlabel("views")
    ax.xaxis.set_major_formatter(_thousands())
    ax.grid(axis="x", alpha=0.3)


def _thousands() -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _pos: f"{v:,.0f}")


def write_charts(
    analytics: Analytics, out_dir: Path, titles: Mapping[str, str] | None = None
) -> dict[str, Path]:
    """Draws `views_over_time`, `engagement_by_platform` and `top_posts` as
    `<out_dir>/<name>.png` (800 x 450) and returns {name: path}. `titles` overrides a chart's
    title (any language). With no metrics yet nothing is drawn and the result is {}."""
    if analytics.empty:
        return {}
    import matplotlib

    channels = _channels_title(analytics)
    default_titles = {
        "views_over_time": f"Views over time — {channels}",
        "engagement_by_platform": f"Engagement per platform — {channels}",
        "top_posts": f"Top posts by views — {channels}",
    }
    chosen = {**default_titles, **(titles or {})}
    drawers: dict[str, Callable[[Figure, Analytics, str], None]] = {
        "views_over_time": _draw_views_over_time,
        "engagement_by_platform": _draw_engagement,
        "top_posts": _draw_top_posts,
    }
    written: dict[str, Path] = {}
    with matplotlib.rc_context({"font.family": FONT_FAMILY}):
        for name in CHART_NAMES:
            if name == "views_over_time" and analytics.views_over_time.empty:
                continue  # no post reports views: nothing to plot
            if name == "top_posts" and analytics.best.by_views.empty:
                continue
            fig = _figure()
            drawers[name](fig, analytics, chosen[name])
            written[name] = _save(fig, out_dir / f"{name}.png")
    return written


# --- HTML --------------------------------------------------------------------------------

_CSS = """
body { font-family: "DejaVu Sans", system-ui, sans-serif; margin: 2em; color: #14213D; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccd; padding: 0.25em 0.6em; text-align: right; }
th { background: #eef; }
td.text, th.text { text-align: left; }
img { max-width: 100%; display: block; margin: 0.5em 0 1.5em; }
.status { font-weight: bold; }
.note { color: #555; }
"""


def _number(value: Any, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "—"
    return f"{float(value):,.{digits}f}"


def _percent(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "—"
    return f"{float(value):.1%}"


def _hours(seconds: Any) -> str:
    if isinstance(seconds, (int, float)) and not math.isnan(seconds):
        return _number(seconds / 3600, 1)
    return "—"


def _length(seconds: Any) -> str:
    return _number(seconds, 1)


def _text(value: Any) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


# (column, header, formatter, is_text)
Column = tuple[str, str, Callable[[Any], str], bool]
_ROLLUP_COLUMNS: list[Column] = [
    ("posts", "posts", _number, False),
    ("views", "views", _number, False),
    ("likes", "likes", _number, False),
    ("comments", "comments", _number, False),
    ("shares", "shares", _number, False),
    ("watch_time_s", "watch time, h", _hours, False),
    ("median_views", "median views", _number, False),
    ("engagement_rate", "engagement", _percent, False),
]
_POST_COLUMNS: list[Column] = [
    ("topic", "topic", _text, True),
    ("platform", "platform", _text, True),
    ("post_id", "post", _text, True),
    ("hook_kind", "hook", _text, True),
    ("duration_s", "length, s", _length, False),
    ("views", "views", _number, False),
    ("likes", "likes", _number, False),
    ("comments", "comments", _number, False),
    ("shares", "shares", _number, False),
    ("watch_time_s", "watch time, h", _hours, False),
    ("engagement_rate", "engagement", _percent, False),
]


def _table(frame: pd.DataFrame, columns: list[Column]) -> str:
    present = [c for c in columns if c[0] in frame.columns]
    head = "".join(
        f'<th class="{"text" if is_text else "num"}">{html.escape(header)}</th>'
        for _, header, _, is_text in present
    )
    body = []
    for _, row in frame.iterrows():
        cells = "".join(
            f'<td class="{"text" if is_text else "num"}">{html.escape(fmt(row[col]))}</td>'
            for col, _, fmt, is_text in present
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _image_src(path: Path, report_dir: Path, embed: bool) -> str:
    if embed:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f"data:image/png;base64,{data}"
    return Path(os.path.relpath(path.resolve(), report_dir.resolve())).as_posix()


def render_html(
    analytics: Analytics,
    *,
    charts: Mapping[str, Path] | None = None,
    title: str = "Analytics",
    report_dir: Path | None = None,
    embed_images: bool = True,
) -> str:
    """The report as an HTML string (see `write_html_report`)."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="status">{esc(analytics.status)}</p>',
    ]
    if analytics.empty:
        parts.append(
            f'<p class="note">{esc(NO_METRICS.capitalize())}. Metrics appear after the first '
            "refresh of posts that are published.</p></body></html>"
        )
        return "\n".join(parts)

    parts.append("<h2>Recommendations</h2>")
    if analytics.recommendations:
        items = "".join(f"<li>{esc(r.sentence)}</li>" for r in analytics.recommendations)
        parts.append(f"<ul>{items}</ul>")
    else:
        parts.append(f'<p class="note">{esc(_no_findings(analytics))}</p>')
    if analytics.growth.note:
        parts.append(f'<p class="note">{esc(analytics.growth.note)}.</p>')

    for name, path in (charts or {}).items():
        src = _image_src(Path(path), report_dir or Path.cwd(), embed_images)
        parts.append(f'<img src="{esc(src)}" alt="{esc(name.replace("_", " "))}">')

    parts.append("<h2>Channels</h2>")
    parts.append(
        _table(analytics.channels, [("channel", "channel", _text, True), *_ROLLUP_COLUMNS])
    )
    parts.append("<h2>Platforms</h2>")
    parts.append(
        _table(
            analytics.platforms,
            [
                ("channel", "channel", _text, True),
                ("platform", "platform", _text, True),
                *_ROLLUP_COLUMNS,
            ],
        )
    )
    parts.append("<h2>Best performers by views</h2>")
    parts.append(_table(analytics.best.by_views, _POST_COLUMNS))
    parts.append("<h2>Best performers by engagement</h2>")
    parts.append(_table(analytics.best.by_engagement, _POST_COLUMNS))
    parts.append("<h2>All posts</h2>")
    parts.append(_table(analytics.posts, _POST_COLUMNS))
    parts.append(
        '<p class="note">— : not reported by the platform (which is not the same as 0). '
        "Engagement = (likes + comments + shares) / views.</p></body></html>"
    )
    return "\n".join(parts)


def _no_findings(analytics: Analytics) -> str:
    return (
        f"No group of at least {analytics.min_posts} posts (by hook, topic word, length, "
        f"posting hour or platform) beats or lags the channel's median by "
        f"{analytics.margin:.0%} or more yet."
    )


def write_html_report(
    analytics: Analytics,
    out_path: Path,
    *,
    charts: Mapping[str, Path] | None = None,
    title: str = "Analytics",
    embed_images: bool = True,
) -> Path:
    """Writes the report to `out_path` (UTF-8): status, recommendations, the growth note,
    the charts (from `write_charts`; embedded as data URIs, or linked relative to the report
    with `embed_images=False`), rollups per channel and platform, best performers and every
    post. With no metrics yet it says so. Returns `out_path`."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    text = render_html(
        analytics,
        charts=charts,
        title=title,
        report_dir=out_path.parent,
        embed_images=embed_images,
    )
    out_path.write_text(text, encoding="utf-8")
    return out_path
