"""Analytics: platform metrics pulled on a schedule, and what they say per channel.

`post_metrics` asks every platform for the statistics of every post it holds (one call per
platform account, so quotas go a long way) and appends a snapshot to the metrics history.
`channel_analytics` rolls the history up per post, platform and channel, finds what beats the
channel's median, and writes charts and an HTML report per channel.

These two read every topic at once, so they are not partitioned: a refresh is one run, not one
run per topic (a run costs seconds of start-up on 2 cores). Outbox posts have no platform, so
they have no metrics; the Telegram Bot API reports no view counts.
"""

import base64
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from factory_core.models import Script
from factory_core.publish_metadata import Platform
from factory_core.slugs import channel_slug
from factory_resources.faults import redact
from factory_resources.outbox import OUTBOX_ACCOUNT
from factory_resources.platform_clients import PlatformClients, metrics_source
from factory_resources.project_db import project_engine
from factory_resources.publication_ledger import Publication, PublicationLedger
from factory_resources.store import MediaStore

if TYPE_CHECKING:
    from factory_core.analytics import PostFacts

# pandas (behind factory_core.analytics and the history) is imported inside the assets: every
# run imports this module, and pandas alone costs seconds of start-up on 2 cores.
NO_METRICS_API = {Platform.TELEGRAM: "the Bot API reports no view counts"}


def _published(store: MediaStore) -> list[Publication]:
    return PublicationLedger(project_engine(store.root)).published(
        exclude_accounts=(OUTBOX_ACCOUNT,)
    )


@dg.asset(
    group_name="analytics",
    description="Appends the latest statistics of every published post (views, likes, comments, "
    "shares, watch time where the platform reports it) to the metrics history.",
)
def post_metrics(
    context: dg.AssetExecutionContext, store: MediaStore, platforms: PlatformClients
) -> dg.MaterializeResult:
    from factory_resources.metrics_history import MetricsHistory

    published = _published(store)
    measurable = [p for p in published if p.platform not in NO_METRICS_API]
    sources = {}
    for platform in sorted({p.platform for p in measurable}):
        source = metrics_source(platforms.publisher(platform))
        if source is not None:
            sources[platform] = source

    def credentials_for(post: Publication) -> dict:
        return platforms.account(store.root, post.owner, post.channel, post.platform)[1]

    history = MetricsHistory(project_engine(store.root))
    summary = history.refresh(measurable, sources, credentials_for)
    metadata: dict[str, object] = {
        "posts": len(published),
        "snapshots_recorded": summary.recorded,
        "errors": len(summary.errors),
    }
    for name, result in summary.platforms.items():
        metadata[f"{name}_recorded"] = result.recorded
        if result.errors:
            metadata[f"{name}_errors"] = redact("; ".join(result.errors))[:500]
    for platform, reason in NO_METRICS_API.items():
        if any(p.platform is platform for p in published):
            metadata[f"{platform}_note"] = reason
    for error in summary.errors:
        context.log.warning(f"metrics: {redact(error)}")
    return dg.MaterializeResult(metadata=metadata)


def _facts(store: MediaStore, posts: list[Publication]) -> list["PostFacts"]:
    """What each post was: its topic, hook and length, from the topic's own files."""
    from factory_core.analytics import PostFacts, first_line

    facts = []
    scripts: dict[str, Script | None] = {}
    for post in posts:
        if post.published_at is None or post.post_id is None:
            continue
        if post.topic_key not in scripts:
            path = store.topic_dir(post.topic_key) / "script.json"
            scripts[post.topic_key] = (
                Script.model_validate_json(path.read_text(encoding="utf-8"))
                if path.is_file()
                else None
            )  # a topic whose folder was cleaned up still counts, without its words
        written = scripts[post.topic_key]
        facts.append(
            PostFacts(
                topic_key=post.topic_key,
                channel=post.channel,
                platform=post.platform,
                post_id=post.post_id,
                published_at=post.published_at,
                topic=written.topic if written else post.topic_key,
                hook=first_line(written.hook) if written else "",
                duration_s=written.estimated_duration_s if written else None,
                language=str(written.language) if written else "en",
            )
        )
    return facts


def _image_markdown(path: Path) -> dg.MetadataValue:
    # There is no image MetadataValue; the UI's markdown renders data-URI images.
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return dg.MetadataValue.md(f"![{path.stem}](data:image/png;base64,{encoded})")


@dg.asset(
    group_name="analytics",
    deps=[post_metrics],
    description="Per channel: rollups per post and platform, growth, best performers and "
    "recommendations with their numbers; charts (PNG) and an HTML report in "
    "$FACTORY_HOME/analytics/<channel>/.",
)
def channel_analytics(context: dg.AssetExecutionContext, store: MediaStore) -> dg.MaterializeResult:
    from factory_core.analytics import analyse
    from factory_resources.analytics_report import write_charts, write_html_report
    from factory_resources.metrics_history import MetricsHistory

    history = MetricsHistory(project_engine(store.root))
    by_channel: dict[tuple[str, str], list[Publication]] = defaultdict(list)
    for post in _published(store):
        by_channel[(post.owner, post.channel)].append(post)
    metadata: dict[str, object] = {"channels": len(by_channel)}
    for (owner, channel), posts in sorted(by_channel.items()):
        profile = store.channel_profile(channel)
        calendar = profile.publishing.calendar
        tz = calendar.timezone if calendar is not None else "UTC"
        result = analyse(history.frame(owner, channel), _facts(store, posts), tz=tz)
        out_dir = store.root / "analytics" / channel_slug(channel)
        charts = write_charts(result, out_dir)
        report = write_html_report(
            result, out_dir / "report.html", charts=charts, title=f"Analytics: {channel}"
        )
        prefix = channel_slug(channel)
        metadata[f"{prefix}_status"] = result.status
        metadata[f"{prefix}_report"] = dg.MetadataValue.path(str(report))
        if not result.empty:
            totals = result.channels.iloc[0]
            metadata[f"{prefix}_views"] = int(totals.get("views", 0) or 0)
            metadata[f"{prefix}_recommendations"] = dg.MetadataValue.md(
                "\n".join(f"- {r.sentence}" for r in result.recommendations)
                or "- none yet: no group differs enough from the channel's median"
            )
        for name, chart in charts.items():
            metadata[f"{prefix}_{name}"] = _image_markdown(chart)
        context.log.info(f"{channel}: {result.status}; report {report}")
    return dg.MaterializeResult(metadata=metadata)
