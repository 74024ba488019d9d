"""Publishing: post a video now, at the channel's next slot, or at a time (YouTube's
`publish_at`); the publication ledger's rows; connected accounts; OAuth connect and callback.
No response carries a token: accounts come from `AccountVault.list` (no credentials) and
ledger rows leave out their `progress` (upload session URLs)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Depends, Request

from factory_api.auth import CallerDep, optional_user, services
from factory_api.errors import ApiError, not_found
from factory_api.routers.videos import _launch_error, run_tags
from factory_api.schemas import (
    ERRORS,
    AccountOut,
    ConnectedOut,
    ConnectOut,
    PublicationOut,
    PublishIn,
    PublishOut,
)
from factory_api.services import PENDING_CONNECT_TTL_S, Services
from factory_resources.tenancy import User

router = APIRouter(tags=["publishing"], responses=ERRORS)

PUBLISH_TAG = "factory/publish"  # the publications asset's own tag: "now" skips the calendar
POST_FILE = "post.yaml"
MIN_LEAD = timedelta(minutes=2)  # YouTube refuses a publish_at in the past; leave room to upload


def _schedule_on_youtube(topic_dir: Any, at: datetime) -> None:
    """Writes `youtube: {publish_at, privacy: private}` into the topic's post.yaml, keeping
    whatever else the file says (YouTube publishes private videos at publish_at)."""
    from factory_core.publish_metadata import PostOverrides

    path = topic_dir / POST_FILE
    current: dict[str, Any] = {}
    if path.is_file():
        try:
            current = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError:
            current = None  # type: ignore[assignment]
        if not isinstance(current, dict):
            raise ApiError(409, "bad_post_file",
                           f"the video's {POST_FILE} is not a mapping of fields; fix or remove it "
                           "first")  # fmt: skip
    section = dict(current.get("youtube") or {})
    section.update(publish_at=at.astimezone(UTC).isoformat(), privacy="private")
    PostOverrides.model_validate(section)
    path.write_text(yaml.safe_dump({**current, "youtube": section}, sort_keys=False,
                                   allow_unicode=True), encoding="utf-8")  # fmt: skip


@router.post("/videos/{key}/publish", status_code=202, response_model=PublishOut,
             summary="Publish a video now, at the next slot, or at a time")  # fmt: skip
def publish_video(caller: CallerDep, key: str, body: PublishIn) -> PublishOut:
    svc = caller.services
    request = svc.owned_topic(caller.user, key)
    profile = svc.owned_channel(caller.user, request.channel)
    settings = profile.publishing
    tags = run_tags(caller.owner, profile.name)
    if body.when == "at":
        if body.at is None:
            raise ApiError(422, "validation_error", "at is required with when=at, e.g. "
                           "2030-01-31T18:00:00+00:00", "at")  # fmt: skip
        if body.at < datetime.now(UTC) + MIN_LEAD:
            raise ApiError(422, "validation_error",
                           "at must be at least 2 minutes in the future", "at")  # fmt: skip
        if "youtube" not in settings.platforms:
            raise ApiError(422, "validation_error",
                           "only YouTube publishes at a given time, and this channel does not "
                           "post to YouTube; use when=calendar with a posting calendar", "at")  # fmt: skip
        _schedule_on_youtube(svc.home / "topics" / key, body.at)
        tags[PUBLISH_TAG] = "now"  # uploaded now, made public by YouTube at `at`
        others = [p for p in settings.platforms if p != "youtube"]
        note = f"YouTube publishes at {body.at.isoformat()}" + (
            f"; {', '.join(others)} post as soon as the run gets there" if others else ""
        )
    elif body.when == "calendar":
        if body.at is not None:
            raise ApiError(422, "validation_error", "at goes with when=at only", "at")
        if settings.calendar is None:
            raise ApiError(422, "validation_error",
                           f"channel {profile.name!r} has no posting calendar; set "
                           "publishing.calendar or publish with when=now", "when")  # fmt: skip
        note = "posts at the channel's next free posting slot"
    else:
        if body.at is not None:
            raise ApiError(422, "validation_error", "at goes with when=at only", "at")
        tags[PUBLISH_TAG] = "now"
        note = f"posting now to {', '.join(settings.platforms) or 'no platform'}"
    try:
        launched = svc.bridge.publish(key, tags=tags)
    except ApiError:
        raise
    except Exception as exc:
        raise _launch_error(exc) from None
    return PublishOut(key=key, run_id=launched.run_id, when=body.when, at=body.at, note=note)


@router.get("/videos/{key}/publications", response_model=list[PublicationOut],
            summary="Where the video was posted (the publication ledger)")  # fmt: skip
def list_publications(caller: CallerDep, key: str) -> list[PublicationOut]:
    from factory_resources.publication_ledger import PublicationLedger

    caller.services.owned_topic(caller.user, key)
    rows = PublicationLedger(caller.services.engine).for_topic(key)
    return [
        PublicationOut(platform=str(p.platform), account=p.account, state=str(p.state),
                       post_id=p.post_id, url=p.url, error=p.error, attempts=p.attempts,
                       published_at=p.published_at)
        for p in rows if p.owner == caller.owner
    ]  # fmt: skip


@router.get("/accounts", response_model=list[AccountOut], summary="My connected accounts")
def list_accounts(caller: CallerDep) -> list[AccountOut]:
    return [
        AccountOut(channel=a.channel, platform=str(a.platform), account_name=a.account_name,
                   status=str(a.status), expires_at=a.expires_at, scopes=a.scopes, error=a.error)
        for a in caller.services.vault().list(caller.owner)
    ]  # fmt: skip


@router.post("/accounts/{channel}/{platform}/connect", response_model=ConnectOut,
             summary="Start connecting a platform account (OAuth)")  # fmt: skip
def start_connect(caller: CallerDep, channel: str, platform: str, request: Request) -> ConnectOut:
    from factory_resources import account_oauth

    svc = caller.services
    svc.owned_channel(caller.user, channel)
    try:
        account_oauth.oauth_settings(platform)
    except account_oauth.OAuthConfigError as exc:
        raise ApiError(422, "validation_error", str(exc), "platform") from None
    redirect_uri = str(request.url_for("oauth_callback"))
    try:
        url, pending = account_oauth.start_connect(
            svc.vault(), caller.owner, channel, platform, redirect_uri=redirect_uri
        )
    except account_oauth.OAuthConfigError as exc:
        raise ApiError(503, "oauth_not_configured", str(exc)) from None
    svc.remember_connect(pending)
    return ConnectOut(authorize_url=url, redirect_uri=redirect_uri,
                      expires_in_s=PENDING_CONNECT_TTL_S)  # fmt: skip


@router.get("/oauth/callback", name="oauth_callback", response_model=ConnectedOut,
            summary="Where the platform sends the browser back (no API key needed)")  # fmt: skip
def oauth_callback(
    request: Request,
    svc: Annotated[Services, Depends(services)],
    user: Annotated[User | None, Depends(optional_user)],
    state: str = "",
) -> ConnectedOut:
    from factory_resources import account_oauth
    from factory_resources.faults import ProviderError

    # The browser brings no API key: the state (random, single use) is the credential. A
    # caller that does send a key must be the one who started the connect.
    pending = svc.peek_connect(state) if state else None
    if pending is None or (user is not None and user.name != pending.owner):
        raise not_found("pending account connect", "state", "state")
    pending = svc.take_connect(state)
    if pending is None:
        raise not_found("pending account connect", "state", "state")
    try:
        done = account_oauth.finish_connect(pending, str(request.url))
    except account_oauth.OAuthError as exc:
        raise ApiError(400, "oauth_failed", str(exc)) from None
    except ProviderError as exc:
        raise ApiError(502, "provider_failed", str(exc)) from None
    return ConnectedOut(channel=done.channel, platform=str(done.platform),
                        account_name=done.account_name, expires_at=done.expires_at,
                        scopes=done.scopes)  # fmt: skip
