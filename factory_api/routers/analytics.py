"""Analytics of the caller's published posts: an overview per channel, one video, one
platform. The metrics history (`MetricsHistory.frame`, filtered by owner in SQL) goes through
`factory_core.analytics.analyse`; pandas is imported here, per request, so the API starts
without it."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter

from factory_api.auth import Caller, CallerDep
from factory_api.errors import ApiError
from factory_api.schemas import ERRORS

if TYPE_CHECKING:
    import pandas as pd

    from factory_core.analytics import Analytics, PostFacts

router = APIRouter(prefix="/analytics", tags=["analytics"], responses=ERRORS)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    # to_json turns NaN into null and timestamps into ISO strings in one step.
    return json.loads(frame.to_json(orient="records", date_format="iso"))


def _facts(caller: Caller) -> list[PostFacts]:
    """What each of the caller's published posts was (topic, hook, length), from its script."""
    from factory_core.analytics import PostFacts, first_line
    from factory_core.models import Script
    from factory_resources.publication_ledger import PublicationLedger

    svc = caller.services
    facts = []
    scripts: dict[str, Script | None] = {}
    for post in PublicationLedger(svc.engine).published():
        if post.owner != caller.owner or post.published_at is None or post.post_id is None:
            continue
        if post.topic_key not in scripts:
            path = svc.home / "topics" / post.topic_key / "script.json"
            scripts[post.topic_key] = (
                Script.model_validate_json(path.read_text(encoding="utf-8"))
                if path.is_file() else None
            )  # fmt: skip
        written = scripts[post.topic_key]
        facts.append(PostFacts(
            topic_key=post.topic_key, channel=post.channel, platform=post.platform,
            post_id=post.post_id, published_at=post.published_at,
            topic=written.topic if written else post.topic_key,
            hook=first_line(written.hook) if written else "",
            duration_s=written.estimated_duration_s if written else None,
            language=str(written.language) if written else "en",
        ))  # fmt: skip
    return facts


def _analyse(caller: Caller) -> Analytics:
    from factory_core.analytics import analyse
    from factory_resources.metrics_history import MetricsHistory

    frame = MetricsHistory(caller.services.engine).frame(caller.owner)
    return analyse(frame, _facts(caller))


@router.get("", summary="Overview: per channel and platform, best posts, recommendations")
def overview(caller: CallerDep) -> dict[str, Any]:
    result = _analyse(caller)
    return {
        "status": result.status,
        "channels": _records(result.channels),
        "platforms": _records(result.platforms),
        "best_by_views": _records(result.best.by_views),
        "best_by_engagement": _records(result.best.by_engagement),
        "recommendations": [r.model_dump(mode="json") for r in result.recommendations],
        "growth_note": result.growth.note,
    }


@router.get("/videos/{key}", summary="One video's posts and daily growth")
def video_analytics(caller: CallerDep, key: str) -> dict[str, Any]:
    caller.services.owned_topic(caller.user, key)
    result = _analyse(caller)
    posts = result.posts[result.posts["topic_key"] == key]
    growth = result.growth.per_post
    growth = growth[growth["topic_key"] == key] if not growth.empty else growth
    return {"key": key, "posts": _records(posts), "growth": _records(growth)}


@router.get("/platforms/{platform}", summary="One platform across my channels")
def platform_analytics(caller: CallerDep, platform: str) -> dict[str, Any]:
    from factory_core.publish_metadata import Platform

    try:
        chosen = Platform(platform)
    except ValueError:
        known = ", ".join(p.value for p in Platform)
        raise ApiError(422, "validation_error", f"unknown platform {platform!r}; use one of "
                       f"{known}", "platform") from None  # fmt: skip
    result = _analyse(caller)
    rollup = result.platforms
    return {
        "platform": chosen.value,
        "summary": _records(rollup[rollup["platform"] == chosen.value]),
        "posts": _records(result.posts[result.posts["platform"] == chosen.value]),
    }
