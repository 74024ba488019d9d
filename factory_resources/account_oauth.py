"""Connecting platform accounts with OAuth 2.0, and keeping their tokens fresh.

Connect: `start_connect` builds the authorize URL (a random `state`, and a PKCE S256 verifier
where the platform takes one), the user approves in a browser, the platform redirects to a
loopback server on 127.0.0.1 (an ephemeral port) that `connect_via_loopback` runs, and
`finish_connect` checks the state, exchanges the code and saves the tokens in the vault.
YouTube goes through google-auth-oauthlib (`Flow`); TikTok, Instagram (Facebook Login) and X go
through authlib's httpx `OAuth2Client`. TikTok names its client `client_key`: a client-auth
method registered on authlib's client puts `client_key` and `client_secret` in the form.
Instagram's short-lived user token is exchanged at once for a long-lived one
(`fb_exchange_token`, 60 days) and the Instagram business account id is found through
`/me/accounts`. Telegram is a bot token checked with `getMe`.

What the vault holds (what publishers read): `{"access_token", "refresh_token", "expires_at"
(epoch seconds), "token_uri", "client_id", "client_secret": None, "scopes": [...]}` plus
Instagram's `ig_user_id`, or Telegram's `{"bot_token", "chat_id"}`.

The client secret is never stored: not in the vault, not in asset metadata. It is read from
`FACTORY_<PLATFORM>_CLIENT_SECRET` whenever a token endpoint is called, so rotating the app's
secret needs no reconnect. `fresh_credentials` returns it filled in (in memory only) so that an
SDK holding the credentials (google-auth) could refresh on its own mid-call.

Refresh: `fresh_credentials` refreshes when the access token expires within `margin_s`
(Instagram: within a week, as a lapsed Facebook token cannot be exchanged any more). A
refused refresh (invalid_grant, HTTP 400/401) marks the account `needs_reconnect` and raises
`ReconnectNeededError`, whose message is the command to run; 429, 5xx, timeouts and dropped
connections raise a retryable `ProviderError`.

Concurrency: X rotates its refresh token on every use and refuses the old one, so two runs that
refresh at once must not both spend it. Refreshes of one account are serialized by a thread lock
and an `fcntl` lock file under `$FACTORY_HOME/locks/oauth/`; inside the lock the vault row is
read again, and when another process already refreshed it (the token is no longer near expiry)
that token is used without calling the platform. Processes that do not share a FACTORY_HOME
(other machines on one database) are covered by a second check: when a refresh is refused, the
row is read again, and if its refresh token is no longer the one we spent, somebody else
rotated it and their tokens are used instead of asking for a reconnect.

Secrets: token endpoints get secrets only in POST bodies or headers (never in URLs, which httpx
logs at INFO); our errors are redacted and raised `from None` so no chained HTTP exception
carries a request; the loopback server logs nothing (the redirect's query holds the code).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import http.server
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx

from factory_core.publish_metadata import Platform
from factory_resources.account_vault import AccountVault, ReconnectNeededError
from factory_resources.faults import RETRYABLE_STATUS, ProviderError, redact, retry_after_seconds

try:  # authlib's httpx client runs on httpx2 when it is installed, on httpx otherwise
    import httpx2

    _HTTP_ERRORS: tuple[type[Exception], ...] = (httpx.HTTPError, httpx2.HTTPError)
    _STATUS_ERRORS: tuple[type[Exception], ...] = (httpx.HTTPStatusError, httpx2.HTTPStatusError)
except ImportError:  # pragma: no cover
    _HTTP_ERRORS, _STATUS_ERRORS = (httpx.HTTPError,), (httpx.HTTPStatusError,)

ClientAuthStyle = Literal["client_secret_post", "client_secret_basic", "tiktok_client_key"]

GOOGLE_SCOPES = (
    "https://www.googleapis.com/auth/youtube.upload",
    "https://www.googleapis.com/auth/youtube.readonly",
    "https://www.googleapis.com/auth/yt-analytics.readonly",
)
TELEGRAM_BASE_URL = "https://api.telegram.org"
# Facebook tokens have no refresh token: a long-lived token is exchanged while it still works,
# so it is renewed a week ahead rather than minutes ahead (a lapsed one needs a reconnect).
REFRESH_AHEAD_S = {Platform.INSTAGRAM: 7 * 86400.0}
_TIMEOUT_S = 30.0


class OAuthError(RuntimeError):
    """Connecting failed; the message says what to do and holds no secret."""


class OAuthConfigError(OAuthError):
    """The app's client id or secret is not configured."""


@dataclass(frozen=True)
class OAuthSettings:
    """One platform's OAuth 2.0 endpoints and habits."""

    platform: Platform
    authorize_url: str
    token_url: str
    scopes: tuple[str, ...]
    scope_separator: str = " "
    pkce: bool = False
    client_auth: ClientAuthStyle = "client_secret_post"
    client_id_param: str = "client_id"  # TikTok's authorize URL wants `client_key`
    authorize_params: Mapping[str, str] = field(default_factory=dict)
    rotates_refresh_token: bool = False
    # Instagram only: the Graph API root (/me/accounts); derived from token_url when empty.
    graph_url: str = ""

    @property
    def graph_root(self) -> str:
        if self.graph_url:
            return self.graph_url.rstrip("/")
        return self.token_url.rstrip("/").removesuffix("/oauth/access_token")


DEFAULT_SETTINGS: dict[Platform, OAuthSettings] = {
    Platform.YOUTUBE: OAuthSettings(
        Platform.YOUTUBE,
        authorize_url="https://accounts.google.com/o/oauth2/v2/auth",
        token_url="https://oauth2.googleapis.com/token",
        scopes=GOOGLE_SCOPES,
        pkce=True,  # Google accepts PKCE for installed apps; Flow sends it.
        # Without both, Google issues no refresh token on a second consent.
        authorize_params={"access_type": "offline", "prompt": "consent"},
    ),
    Platform.TIKTOK: OAuthSettings(
        Platform.TIKTOK,
        authorize_url="https://www.tiktok.com/v2/auth/authorize/",
        token_url="https://open.tiktokapis.com/v2/oauth/token/",
        scopes=("video.publish", "video.upload", "user.info.basic", "video.list"),
        scope_separator=",",
        pkce=True,
        client_auth="tiktok_client_key",
        client_id_param="client_key",
    ),
    Platform.INSTAGRAM: OAuthSettings(
        Platform.INSTAGRAM,
        authorize_url="https://www.facebook.com/v21.0/dialog/oauth",
        token_url="https://graph.facebook.com/v21.0/oauth/access_token",
        scopes=(
            "instagram_basic",
            "instagram_content_publish",
            "instagram_manage_insights",
            "pages_read_engagement",
            "business_management",
        ),
        scope_separator=",",
    ),
    Platform.X: OAuthSettings(
        Platform.X,
        authorize_url="https://x.com/i/oauth2/authorize",
        token_url="https://api.x.com/2/oauth2/token",
        scopes=("tweet.read", "tweet.write", "users.read", "media.write", "offline.access"),
        pkce=True,
        client_auth="client_secret_basic",
        rotates_refresh_token=True,
    ),
}
OAUTH_PLATFORMS = tuple(DEFAULT_SETTINGS)


def _oauth_platform(platform: str | Platform) -> Platform:
    try:
        plat = Platform(platform)
    except ValueError:
        plat = None
    if plat not in DEFAULT_SETTINGS:
        known = ", ".join(p.value for p in OAUTH_PLATFORMS)
        raise OAuthConfigError(
            f"{platform} accounts are not connected with OAuth; use one of {known} "
            "(Telegram: factory accounts telegram)"
        )
    return plat  # type: ignore[return-value]


def oauth_settings(platform: str | Platform, env: Mapping[str, str] | None = None) -> OAuthSettings:
    """The platform's settings with `FACTORY_OAUTH_<PLATFORM>_AUTHORIZE_URL`, `_TOKEN_URL` and
    (Instagram) `_GRAPH_URL` applied, e.g. to point at a local fake."""
    plat = _oauth_platform(platform)
    env = os.environ if env is None else env
    prefix = f"FACTORY_OAUTH_{plat.value.upper()}_"
    base = DEFAULT_SETTINGS[plat]
    return replace(
        base,
        authorize_url=env.get(prefix + "AUTHORIZE_URL") or base.authorize_url,
        token_url=env.get(prefix + "TOKEN_URL") or base.token_url,
        graph_url=env.get(prefix + "GRAPH_URL") or base.graph_url,
    )


def client_credentials(
    platform: str | Platform, env: Mapping[str, str] | None = None
) -> tuple[str, str]:
    """The app's client id and secret from `FACTORY_<PLATFORM>_CLIENT_ID` / `_CLIENT_SECRET`."""
    plat = _oauth_platform(platform)
    env = os.environ if env is None else env
    names = (
        f"FACTORY_{plat.value.upper()}_CLIENT_ID",
        f"FACTORY_{plat.value.upper()}_CLIENT_SECRET",
    )
    missing = [name for name in names if not env.get(name, "").strip()]
    if missing:
        raise OAuthConfigError(
            f"set {' and '.join(missing)} to the {plat.value} app's OAuth client "
            "(from the platform's developer console) before connecting"
        )
    return env[names[0]].strip(), env[names[1]].strip()


# --- connect ----------------------------------------------------------------------------------


@dataclass
class PendingConnect:
    """What `finish_connect` needs to complete a `start_connect`."""

    vault: AccountVault = field(repr=False)
    owner: str
    channel: str
    platform: Platform
    settings: OAuthSettings
    redirect_uri: str
    state: str = field(repr=False)
    code_verifier: str | None = field(default=None, repr=False)
    account_name: str | None = None
    env: Mapping[str, str] | None = field(default=None, repr=False)
    timeout_s: float = _TIMEOUT_S


@dataclass(frozen=True)
class Connected:
    """What a connect saved (no secret)."""

    owner: str
    channel: str
    platform: Platform
    account_name: str
    expires_at: datetime | None
    scopes: list[str]


def _loopback(redirect_uri: str) -> None:
    host = urlsplit(redirect_uri).hostname
    if urlsplit(redirect_uri).scheme != "http" or host not in ("127.0.0.1", "localhost", "::1"):
        raise OAuthConfigError(
            f"the redirect URI must be a loopback http URL (http://127.0.0.1:PORT/), not "
            f"{redirect_uri}"
        )


def _pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _google_config(settings: OAuthSettings, client_id: str, secret: str, redirect: str) -> dict:
    return {
        "installed": {
            "client_id": client_id,
            "client_secret": secret,
            "auth_uri": settings.authorize_url,
            "token_uri": settings.token_url,
            "redirect_uris": [redirect],
        }
    }


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = parse_qs(parts.query, keep_blank_values=True)
    query.update({k: [v] for k, v in params.items()})
    flat = [(k, v) for k, vs in query.items() for v in vs]
    return urlunsplit(parts._replace(query=urlencode(flat)))


def start_connect(
    vault: AccountVault,
    owner: str,
    channel: str,
    platform: str | Platform,
    *,
    redirect_uri: str,
    settings: OAuthSettings | None = None,
    env: Mapping[str, str] | None = None,
    account_name: str | None = None,
    timeout_s: float = _TIMEOUT_S,
) -> tuple[str, PendingConnect]:
    """The URL to open in a browser, and what `finish_connect` needs afterwards."""
    plat = _oauth_platform(platform)
    settings = settings or oauth_settings(plat, env)
    _loopback(redirect_uri)
    client_id, secret = client_credentials(plat, env)
    state = secrets.token_urlsafe(24)
    verifier = secrets.token_urlsafe(64)[:96] if settings.pkce else None
    pending = PendingConnect(
        vault, owner, channel, plat, settings, redirect_uri, state, verifier, account_name, env,
        timeout_s,
    )  # fmt: skip
    if plat is Platform.YOUTUBE:
        from google_auth_oauthlib.flow import Flow

        flow = Flow.from_client_config(
            _google_config(settings, client_id, secret, redirect_uri),
            scopes=list(settings.scopes),
            redirect_uri=redirect_uri,
            code_verifier=verifier,
            autogenerate_code_verifier=False,
        )
        url, _ = flow.authorization_url(state=state, **settings.authorize_params)
        return url, pending

    from authlib.integrations.httpx_client import OAuth2Client

    with OAuth2Client(
        client_id=client_id,
        scope=settings.scope_separator.join(settings.scopes),
        redirect_uri=redirect_uri,
        code_challenge_method="S256" if settings.pkce else None,
    ) as client:
        url, _ = client.create_authorization_url(
            settings.authorize_url, state=state, code_verifier=verifier,
            **settings.authorize_params,
        )  # fmt: skip
    if settings.client_id_param != "client_id":
        # TikTok's authorize page reads `client_key`; authlib always writes `client_id`.
        parts = urlsplit(url)
        query = [
            (settings.client_id_param if k == "client_id" else k, v)
            for k, vs in parse_qs(parts.query, keep_blank_values=True).items()
            for v in vs
        ]
        url = urlunsplit(parts._replace(query=urlencode(query)))
    return url, pending


def finish_connect(pending: PendingConnect, callback_url: str) -> Connected:
    """Checks the redirect's state, exchanges its code and saves the account in the vault."""
    query = {k: v[0] for k, v in parse_qs(urlsplit(callback_url).query).items()}
    platform = pending.platform.value
    if "error" in query:
        reason = redact(query.get("error_description") or query["error"])[:200]
        raise OAuthError(f"{platform} did not authorize the app ({reason}); connect again")
    if not hmac.compare_digest(query.get("state", ""), pending.state):
        # A redirect we did not ask for (another tab, a forged link): never exchange its code.
        raise OAuthError(
            f"the {platform} redirect carried the wrong state; nothing was saved. Connect again "
            "from the same terminal and browser"
        )
    code = query.get("code")
    if not code:
        raise OAuthError(f"the {platform} redirect carried no authorization code; connect again")
    client_id, secret = client_credentials(pending.platform, pending.env)
    if pending.platform is Platform.YOUTUBE:
        creds, name = _exchange_google(pending, code, client_id, secret), ""
    else:
        creds, name = _exchange_authlib(pending, code, client_id, secret)
    expires = creds["expires_at"]
    expires_at = datetime.fromtimestamp(expires, UTC) if expires else None
    account_name = pending.account_name if pending.account_name is not None else name
    pending.vault.save(
        pending.owner, pending.channel, platform, account_name, creds,
        expires_at=expires_at, scopes=creds["scopes"],
    )  # fmt: skip
    return Connected(
        pending.owner, pending.channel, pending.platform, account_name, expires_at, creds["scopes"]
    )


def _credentials(
    settings: OAuthSettings, client_id: str, token: Mapping[str, Any], now: float
) -> dict[str, Any]:
    scope = token.get("scope")
    if isinstance(scope, str) and scope.strip():
        scopes = [s for s in scope.replace(",", " ").split() if s]
    elif isinstance(scope, list) and scope:  # oauthlib hands the granted scopes as a list
        scopes = [str(s) for s in scope]
    else:
        scopes = list(settings.scopes)
    expires_in = token.get("expires_in")
    return {
        "access_token": token["access_token"],
        "refresh_token": token.get("refresh_token"),
        "expires_at": now + float(expires_in) if expires_in is not None else None,
        "token_uri": settings.token_url,
        "client_id": client_id,
        "client_secret": None,  # read from the environment at refresh time, never stored
        "scopes": scopes,
    }


def _refused(status: int | None, what: str, reason: str) -> OAuthError:
    code = f" (HTTP {status})" if status else ""
    return OAuthError(f"{what}{code}: {redact(reason)[:300]}; connect again")


def _retryable_response_hook(provider: str) -> Callable[[Any], Any]:
    """A token-endpoint response hook (requests or httpx): 429/5xx become retryable errors
    before the OAuth library parses (and maybe chains) them."""

    def hook(resp: Any) -> Any:
        if resp.status_code in RETRYABLE_STATUS:
            raise ProviderError(
                provider,
                f"the token endpoint answered {resp.status_code}; try again later",
                status=resp.status_code,
                retryable=True,
                retry_after_s=retry_after_seconds(dict(resp.headers)),
            )
        return resp

    return hook


def _exchange_google(pending: PendingConnect, code: str, client_id: str, secret: str) -> dict:
    import requests
    from google_auth_oauthlib.flow import Flow
    from oauthlib.oauth2 import OAuth2Error

    settings = pending.settings
    flow = Flow.from_client_config(
        _google_config(settings, client_id, secret, pending.redirect_uri),
        scopes=list(settings.scopes),
        redirect_uri=pending.redirect_uri,
        code_verifier=pending.code_verifier,
        autogenerate_code_verifier=False,
        state=pending.state,
    )
    flow.oauth2session.register_compliance_hook(
        "access_token_response", _retryable_response_hook("youtube")
    )
    now = time.time()
    try:
        token = flow.fetch_token(code=code, timeout=pending.timeout_s)
    except OAuth2Error as exc:
        raise _refused(
            exc.status_code, "Google refused the code", exc.description or exc.error
        ) from None
    except requests.RequestException as exc:
        raise ProviderError("youtube", f"token endpoint unreachable: {type(exc).__name__}",
                            retryable=True) from None  # fmt: skip
    creds = _credentials(settings, client_id, token, now)
    if not creds["refresh_token"]:
        raise OAuthError(
            "Google gave no refresh token (access_type=offline and prompt=consent are needed); "
            "remove the app's access at myaccount.google.com/permissions and connect again"
        )
    return creds


def _tiktok_client_key(
    client: Any, method: str, uri: str, headers: dict, body: str
) -> tuple[str, dict, str]:
    """authlib client auth for TikTok: the form names the client `client_key`."""
    from authlib.common.urls import add_params_to_qs

    body = add_params_to_qs(
        body or "", [("client_key", client.client_id), ("client_secret", client.client_secret)]
    )
    return uri, headers, body


def _authlib_client(
    settings: OAuthSettings, client_id: str, secret: str, timeout_s: float, **kwargs: Any
) -> Any:
    from authlib.integrations.httpx_client import OAuth2Client

    client = OAuth2Client(
        client_id=client_id,
        client_secret=secret,
        token_endpoint_auth_method=settings.client_auth,
        timeout=timeout_s,
        **kwargs,
    )
    client.register_client_auth_method(("tiktok_client_key", _tiktok_client_key))
    hook = _retryable_response_hook(settings.platform.value)
    client.register_compliance_hook("access_token_response", hook)
    client.register_compliance_hook("refresh_token_response", hook)
    return client


def _oauth_reason(exc: Any) -> str:
    error = exc.error
    if isinstance(error, dict):  # Facebook's {"error": {"message", "type", "code"}}
        return f"{error.get('type', 'error')} {error.get('code', '')}: {error.get('message', '')}"
    return f"{error}: {exc.description or ''}".rstrip(": ")


def _exchange_authlib(
    pending: PendingConnect, code: str, client_id: str, secret: str
) -> tuple[dict, str]:
    from authlib.integrations.base_client.errors import OAuthError as AuthlibError

    settings, platform = pending.settings, pending.platform
    now = time.time()
    try:
        with _authlib_client(
            settings, client_id, secret, pending.timeout_s, redirect_uri=pending.redirect_uri
        ) as client:
            extra = {"code_verifier": pending.code_verifier} if pending.code_verifier else {}
            token = client.fetch_token(
                settings.token_url, grant_type="authorization_code", code=code, **extra
            )
    except AuthlibError as exc:
        raise _refused(None, f"{platform.value} refused the code", _oauth_reason(exc)) from None
    except _STATUS_ERRORS as exc:
        raise _refused(exc.response.status_code, f"{platform.value} refused the code",
                       "the token endpoint refused the request") from None  # fmt: skip
    except _HTTP_ERRORS as exc:
        raise ProviderError(platform.value, f"token endpoint unreachable: {type(exc).__name__}",
                            retryable=True) from None  # fmt: skip
    creds = _credentials(settings, client_id, token, now)
    name = str(token.get("open_id") or "")  # TikTok names the user in the token answer
    if platform is Platform.INSTAGRAM:
        try:
            creds = _facebook_long_lived(settings, client_id, secret, creds, pending.timeout_s)
        except _RefusedRefresh as refused:
            raise _refused(refused.status, "Facebook refused the long-lived token exchange",
                           refused.reason) from None  # fmt: skip
        creds["ig_user_id"], name = _instagram_account(settings, creds, pending.timeout_s)
    return creds, name


def _graph_error(response: httpx.Response) -> str:
    try:
        error = response.json().get("error", {})
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(error, dict):
        return f"{error.get('type', 'error')} {error.get('code', '')}: {error.get('message', '')}"
    return str(error)


def _graph_call(platform: str, call: Callable[[], httpx.Response]) -> httpx.Response:
    try:
        response = call()
    except httpx.HTTPError as exc:
        raise ProviderError(platform, f"Graph API unreachable: {type(exc).__name__}",
                            retryable=True) from None  # fmt: skip
    if response.status_code in RETRYABLE_STATUS:
        raise ProviderError(platform, _graph_error(response), status=response.status_code,
                            retryable=True,
                            retry_after_s=retry_after_seconds(dict(response.headers)))  # fmt: skip
    return response


def _facebook_long_lived(
    settings: OAuthSettings, client_id: str, secret: str, creds: dict, timeout_s: float
) -> dict:
    """Exchanges a Facebook user token (short- or long-lived) for a fresh long-lived one.

    POSTed so that the secret and the token travel in the body, not in a logged URL."""
    now = time.time()
    response = _graph_call("instagram", lambda: httpx.post(
        settings.token_url,
        data={"grant_type": "fb_exchange_token", "client_id": client_id,
              "client_secret": secret, "fb_exchange_token": creds["access_token"]},
        timeout=timeout_s,
    ))  # fmt: skip
    if response.status_code != 200:
        raise _RefusedRefresh(response.status_code, _graph_error(response))
    token = response.json()
    expires_in = token.get("expires_in")
    return {
        **creds,
        "access_token": token["access_token"],
        "refresh_token": None,  # Facebook has none: the long-lived token is exchanged again
        "expires_at": now + float(expires_in) if expires_in is not None else None,
    }


def _instagram_account(settings: OAuthSettings, creds: dict, timeout_s: float) -> tuple[str, str]:
    response = _graph_call("instagram", lambda: httpx.get(
        f"{settings.graph_root}/me/accounts",
        params={"fields": "name,instagram_business_account{id,username}"},
        headers={"Authorization": f"Bearer {creds['access_token']}"},
        timeout=timeout_s,
    ))  # fmt: skip
    if response.status_code != 200:
        raise _refused(response.status_code, "Facebook refused to list the pages",
                       _graph_error(response))  # fmt: skip
    for page in response.json().get("data", []):
        account = page.get("instagram_business_account")
        if account and account.get("id"):
            return str(account["id"]), str(account.get("username") or page.get("name") or "")
    raise OAuthError(
        "none of the Facebook Pages you granted has an Instagram professional account; link "
        "the Instagram account to a Page (Instagram settings > Account type and tools), then "
        "connect again and select that Page"
    )


class _LoopbackHandler(http.server.BaseHTTPRequestHandler):
    server: _LoopbackServer

    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        if urlsplit(self.path).path != "/" or not ({"code", "error"} & set(query)):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = (
            b"<p>Authorization received. You can close this window and return to the terminal.</p>"
        )
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.server.callback = f"http://127.0.0.1:{self.server.server_port}{self.path}"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request line holds the authorization code


class _LoopbackServer(http.server.HTTPServer):
    callback: str | None = None


def connect_via_loopback(
    vault: AccountVault,
    owner: str,
    channel: str,
    platform: str | Platform,
    *,
    open_browser: Callable[[str], None],
    timeout_s: float = 300.0,
    settings: OAuthSettings | None = None,
    env: Mapping[str, str] | None = None,
    account_name: str | None = None,
) -> Connected:
    """The whole connect: serves the redirect on 127.0.0.1 (an ephemeral port), hands the
    authorize URL to `open_browser` (a browser, a printout, or a test playing the user), waits
    up to `timeout_s` for the redirect and finishes the connect."""
    server = _LoopbackServer(("127.0.0.1", 0), _LoopbackHandler)
    server.timeout = 0.2
    deadline = time.monotonic() + timeout_s
    stop = threading.Event()

    def serve() -> None:
        while server.callback is None and not stop.is_set() and time.monotonic() < deadline:
            server.handle_request()

    thread = threading.Thread(target=serve, name="oauth-loopback", daemon=True)
    try:
        url, pending = start_connect(
            vault, owner, channel, platform, settings=settings, env=env,
            redirect_uri=f"http://127.0.0.1:{server.server_port}/", account_name=account_name,
        )  # fmt: skip
        thread.start()
        open_browser(url)
        thread.join(max(0.0, deadline - time.monotonic()) + 1.0)
        if server.callback is None:
            raise OAuthError(
                f"no redirect from {pending.platform.value} within {timeout_s:.0f}s; connect again "
                "and approve the app in the browser"
            )
        return finish_connect(pending, server.callback)
    finally:
        stop.set()
        if thread.is_alive():
            thread.join(timeout=2.0)
        server.server_close()


def connect_telegram(
    vault: AccountVault,
    owner: str,
    channel: str,
    bot_token: str,
    chat_id: str,
    *,
    base_url: str = TELEGRAM_BASE_URL,
    timeout_s: float = _TIMEOUT_S,
) -> Connected:
    """Checks the bot token with `getMe` and saves `{"bot_token", "chat_id"}`."""
    from factory_resources.telegram_publisher import _guard_httpx_logs

    _guard_httpx_logs()  # the token sits in the URL path, which httpx logs at INFO
    if not bot_token.strip() or not str(chat_id).strip():
        raise OAuthConfigError("give both a bot token (from @BotFather) and a chat id")
    try:
        response = httpx.get(f"{base_url.rstrip('/')}/bot{bot_token}/getMe", timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise ProviderError("telegram", f"Bot API unreachable: {type(exc).__name__}",
                            retryable=True) from None  # fmt: skip
    if response.status_code in RETRYABLE_STATUS:
        raise ProviderError("telegram", f"getMe answered {response.status_code}",
                            status=response.status_code, retryable=True)  # fmt: skip
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200 or not body.get("ok"):
        description = redact(str(body.get("description") or response.status_code), bot_token)
        raise OAuthError(
            f"Telegram refused the bot token ({description}); copy the token from @BotFather again"
        )
    bot = body.get("result", {})
    name = f"@{bot['username']}" if bot.get("username") else str(bot.get("first_name", ""))
    vault.save(owner, channel, Platform.TELEGRAM.value, name,
               {"bot_token": bot_token, "chat_id": str(chat_id)})  # fmt: skip
    return Connected(owner, channel, Platform.TELEGRAM, name, None, [])


# --- refresh ----------------------------------------------------------------------------------


class _RefusedRefresh(Exception):
    """The token endpoint refused the refresh for good (internal; becomes a reconnect)."""

    def __init__(self, status: int | None, reason: str) -> None:
        self.status, self.reason = status, reason
        super().__init__(reason)


_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def _account_lock(lock_dir: Path, owner: str, channel: str, platform: str) -> Iterator[None]:
    """One refresh of an account at a time: across threads, and across processes sharing the
    lock folder (flock, released by the kernel if the process dies)."""
    key = hashlib.sha256(f"{owner}\0{channel}\0{platform}".encode()).hexdigest()[:32]
    with _THREAD_LOCKS_GUARD:
        lock = _THREAD_LOCKS.setdefault(key, threading.Lock())
    with lock:
        lock_dir.mkdir(parents=True, exist_ok=True)
        with open(lock_dir / f"{key}.lock", "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _due(creds: Mapping[str, Any], margin_s: float, now: float) -> bool:
    expires_at = creds.get("expires_at")
    return expires_at is not None and float(expires_at) - now <= margin_s


def _with_secret(creds: dict[str, Any], platform: Platform, env: Mapping[str, str] | None) -> dict:
    env = os.environ if env is None else env
    secret = env.get(f"FACTORY_{platform.value.upper()}_CLIENT_SECRET", "").strip() or None
    return {**creds, "client_secret": secret}


def fresh_credentials(
    vault: AccountVault,
    owner: str,
    channel: str,
    platform: str | Platform,
    *,
    margin_s: float = 300.0,
    now: Callable[[], float] = time.time,
    env: Mapping[str, str] | None = None,
    lock_dir: Path | None = None,
    timeout_s: float = _TIMEOUT_S,
) -> dict[str, Any]:
    """The account's credentials, refreshed first when the access token expires within
    `margin_s`. Raises ReconnectNeededError (account marked) when the platform refuses the
    refresh, ProviderError(retryable=True) when its token endpoint is down or slow."""
    plat = Platform(platform)
    margin_s = max(margin_s, REFRESH_AHEAD_S.get(plat, 0.0))
    creds = vault.load(owner, channel, plat.value).credentials
    if plat is Platform.TELEGRAM or not _due(creds, margin_s, now()):
        return _with_secret(creds, plat, env) if plat is not Platform.TELEGRAM else creds
    if lock_dir is None:
        from factory_resources.store import default_home

        lock_dir = default_home() / "locks" / "oauth"
    with _account_lock(lock_dir, owner, channel, plat.value):
        # Another process may have refreshed while we waited (and, on X, spent the refresh
        # token we hold): read the row again and use theirs.
        account = vault.load(owner, channel, plat.value)
        creds = account.credentials
        if not _due(creds, margin_s, now()):
            return _with_secret(creds, plat, env)
        try:
            fresh = _refresh(plat, creds, env, timeout_s)
        except _RefusedRefresh as refused:
            current = vault.load(owner, channel, plat.value).credentials
            if current.get("refresh_token") != creds.get("refresh_token") or not _due(
                current, margin_s, now()
            ):
                return _with_secret(current, plat, env)  # rotated by a process we cannot lock
            reason = redact(refused.reason, *_secrets_of(creds))[:200]
            vault.mark_needs_reconnect(owner, channel, plat.value, reason)
            raise ReconnectNeededError(channel, plat.value, reason) from None
        expires = fresh.get("expires_at")
        vault.save(
            owner, channel, plat.value, account.account_name, fresh,
            expires_at=datetime.fromtimestamp(expires, UTC) if expires else None,
            scopes=fresh.get("scopes") or account.scopes,
        )  # fmt: skip
        return _with_secret(fresh, plat, env)


def _secrets_of(creds: Mapping[str, Any]) -> list[str]:
    return [str(creds[k]) for k in ("access_token", "refresh_token") if creds.get(k)]


def _refresh(
    plat: Platform, creds: dict[str, Any], env: Mapping[str, str] | None, timeout_s: float
) -> dict[str, Any]:
    settings = oauth_settings(plat, env)
    # The stored token_uri is where the token came from; an environment override wins.
    if settings.token_url == DEFAULT_SETTINGS[plat].token_url and creds.get("token_uri"):
        settings = replace(settings, token_url=creds["token_uri"])
    client_id, secret = client_credentials(plat, env)
    if plat is Platform.INSTAGRAM:
        if not creds.get("access_token"):
            raise _RefusedRefresh(None, "no token to exchange")
        return _facebook_long_lived(settings, client_id, secret, creds, timeout_s)
    if not creds.get("refresh_token"):
        raise _RefusedRefresh(None, "no refresh token was stored")
    if plat is Platform.YOUTUBE:
        return _refresh_google(settings, client_id, secret, creds, timeout_s)
    return _refresh_authlib(settings, client_id, secret, creds, timeout_s)


def _refresh_google(
    settings: OAuthSettings, client_id: str, secret: str, creds: dict, timeout_s: float
) -> dict[str, Any]:
    import google.auth.exceptions
    import google.auth.transport.requests
    import google.oauth2.credentials

    google_creds = google.oauth2.credentials.Credentials(
        token=None,
        refresh_token=creds["refresh_token"],
        token_uri=settings.token_url,
        client_id=client_id,
        client_secret=secret,
        scopes=creds.get("scopes") or list(settings.scopes),
    )
    try:
        google_creds.refresh(google.auth.transport.requests.Request())
    except google.auth.exceptions.RefreshError as exc:
        if getattr(exc, "retryable", False):
            raise ProviderError("youtube", "Google's token endpoint failed; try again later",
                                retryable=True) from None  # fmt: skip
        response = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], dict) else {}
        reason = str(response.get("error") or "refused")
        if response.get("error_description"):
            reason += f": {response['error_description']}"
        raise _RefusedRefresh(None, reason) from None
    except google.auth.exceptions.TransportError as exc:
        raise ProviderError("youtube", f"token endpoint unreachable: {type(exc).__name__}",
                            retryable=True) from None  # fmt: skip
    expiry = google_creds.expiry  # naive UTC, google-auth's convention
    return {
        **creds,
        "access_token": google_creds.token,
        # Google keeps the refresh token (it answers none on refresh).
        "refresh_token": google_creds.refresh_token or creds["refresh_token"],
        "expires_at": expiry.replace(tzinfo=UTC).timestamp() if expiry else None,
        "token_uri": settings.token_url,
        "client_id": client_id,
        "client_secret": None,
    }


def _refresh_authlib(
    settings: OAuthSettings, client_id: str, secret: str, creds: dict, timeout_s: float
) -> dict[str, Any]:
    from authlib.integrations.base_client.errors import OAuthError as AuthlibError

    platform = settings.platform.value
    now = time.time()
    try:
        with _authlib_client(settings, client_id, secret, timeout_s) as client:
            token = client.refresh_token(settings.token_url, refresh_token=creds["refresh_token"])
    except AuthlibError as exc:
        raise _RefusedRefresh(None, _oauth_reason(exc)) from None
    except _STATUS_ERRORS as exc:
        raise _RefusedRefresh(exc.response.status_code, "the token endpoint refused") from None
    except _HTTP_ERRORS as exc:
        raise ProviderError(platform, f"token endpoint unreachable: {type(exc).__name__}",
                            retryable=True) from None  # fmt: skip
    fresh = _credentials(settings, client_id, token, now)
    # X rotates: the answer's refresh token replaces ours (authlib keeps ours when none came).
    fresh["refresh_token"] = token.get("refresh_token") or creds["refresh_token"]
    return {**creds, **fresh}
