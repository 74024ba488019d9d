"""Protocol-faithful OAuth 2.0 authorization servers for pytest-httpserver: Google, TikTok,
Facebook (Instagram) and X, plus Telegram's `getMe` (see /work/shared/docs/providers.md).

`FakeAuthServer(server, flavor, prefix=...)` registers, under `prefix`:
- `GET /authorize`: checks the client (`client_id`, TikTok `client_key`), `response_type=code`,
  a loopback `redirect_uri` (http://127.0.0.1:PORT/...), a `state`, and the PKCE challenge
  (`code_challenge` + `code_challenge_method=S256`) where the flavor requires it; then plays the
  user's consent: 302 to `redirect_uri?code=..&state=..` (Google adds `scope`). A bad client or
  redirect gets a 400 page (no redirect, as real servers do); `deny_next()` redirects with
  `error=access_denied`.
- `POST /token`: `authorization_code` (single-use code, same client and redirect_uri, PKCE
  verifier checked against the challenge), `refresh_token` (unknown or revoked -> 400
  `invalid_grant`; with `rotate_refresh_tokens` the old one dies and a new one is issued, as X
  does). Client auth by flavor: X requires HTTP Basic; TikTok `client_key`+`client_secret` in the
  form; Google and Facebook accept the form or Basic. Facebook also takes
  `grant_type=fb_exchange_token` (a live user token -> a 60-day token) and answers errors in its
  own `{"error": {"message", "type": "OAuthException", "code"}}` shape.
- Facebook: `GET /me/accounts?fields=...instagram_business_account...` with a Bearer token.

Refresh tokens: Google only with `access_type=offline&prompt=consent`; X only with the
`offline.access` scope; TikTok always; Facebook never.

Faults on the token endpoint: `fail_once(status)` (served before normal answers), `revoke_all()`.
`calls` records `(path, grant_type, status)`; `issued_access` every access token issued.

`FakeTelegramBot(server)` answers `GET|POST /bot<token>/getMe`.

`tls_httpserver()` starts an HTTPS pytest-httpserver with a self-signed certificate for
127.0.0.1 (requests/oauthlib refuse plain-http token endpoints; point `REQUESTS_CA_BUNDLE` at
`cert_path`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from .tls import tls_context

Flavor = Literal["google", "tiktok", "facebook", "x"]

CLIENT_ID = "fake-client-id-0123"
CLIENT_SECRET = "fake-client-SECRET-9f8e7d6c5b4a"
IG_USER_ID = "17841400000000001"
IG_USERNAME = "vf_demo"
BOT_TOKEN = "7012345678:AAH-fakeBotToken_0123456789abcdefghij"


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    challenge: str | None
    scope: str
    offline: bool


@dataclass
class _Refresh:
    client_id: str
    scope: str
    alive: bool = True


@dataclass
class FakeAuthServer:
    server: HTTPServer
    flavor: Flavor
    prefix: str = ""
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    rotate_refresh_tokens: bool = False
    access_ttl_s: int = 3600
    calls: list[tuple[str, str, int]] = field(default_factory=list)
    issued_access: list[str] = field(default_factory=list)
    _codes: dict[str, _Code] = field(default_factory=dict)
    _refresh: dict[str, _Refresh] = field(default_factory=dict)
    _live_access: set[str] = field(default_factory=set)
    _faults: deque[int] = field(default_factory=deque)
    _deny: bool = False

    def __post_init__(self) -> None:
        self.prefix = self.prefix or f"/{self.flavor}"
        p = re.escape(self.prefix)
        route = self.server.expect_request
        route(re.compile(f"^{p}/authorize$"), method="GET").respond_with_handler(self._authorize)
        route(re.compile(f"^{p}/token$"), method="POST").respond_with_handler(self._token)
        if self.flavor == "facebook":
            # Facebook serves the token endpoint to GET too; we only ever POST.
            route(re.compile(f"^{p}/me/accounts$"), method="GET").respond_with_handler(
                self._accounts
            )

    # --- where to point the client -------------------------------------------------------------

    def url(self, path: str) -> str:
        return self.server.url_for(f"{self.prefix}{path}")

    @property
    def authorize_url(self) -> str:
        return self.url("/authorize")

    @property
    def token_url(self) -> str:
        return self.url("/token")

    @property
    def graph_url(self) -> str:
        return self.server.url_for(self.prefix).rstrip("/")

    # --- faults and inspection ----------------------------------------------------------------

    def fail_once(self, status: int = 500) -> None:
        self._faults.append(status)

    def deny_next(self) -> None:
        self._deny = True

    def revoke_all(self) -> None:
        for refresh in self._refresh.values():
            refresh.alive = False
        self._live_access.clear()

    def live_refresh_tokens(self) -> list[str]:
        return [token for token, r in self._refresh.items() if r.alive]

    def token_calls(self, grant_type: str) -> int:
        return sum(1 for _, grant, _ in self.calls if grant == grant_type)

    # --- protocol -----------------------------------------------------------------------------

    def _json(
        self, request: Request, status: int, body: dict[str, Any], grant: str = ""
    ) -> Response:
        self.calls.append((request.path, grant, status))
        return Response(json.dumps(body), status=status, content_type="application/json")

    def _oauth_error(
        self, request: Request, status: int, error: str, description: str, grant: str = ""
    ) -> Response:
        if self.flavor == "facebook":
            body = {
                "error": {
                    "message": description,
                    "type": "OAuthException",
                    "code": 100 if error == "invalid_request" else 190,
                    "fbtrace_id": "Afake",
                }
            }
            return self._json(request, status, body, grant)
        body = {"error": error, "error_description": description}
        if self.flavor == "tiktok":
            body["log_id"] = "20240101000000FAKE"
        return self._json(request, status, body, grant)

    def _page(self, status: int, text: str) -> Response:
        return Response(
            f"<html><body>{text}</body></html>", status=status, content_type="text/html"
        )

    def _authorize(self, request: Request) -> Response:
        args = request.args
        id_param = "client_key" if self.flavor == "tiktok" else "client_id"
        if args.get(id_param) != self.client_id:
            return self._page(400, f"invalid {id_param}")
        redirect = args.get("redirect_uri", "")
        parts = urlsplit(redirect)
        if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost"):
            return self._page(400, "redirect_uri must be a loopback address")
        if args.get("response_type") != "code" or not args.get("state"):
            return self._page(400, "response_type=code and state are required")
        challenge = args.get("code_challenge")
        if self.flavor in ("x", "tiktok") and not challenge:
            return self._page(400, "PKCE is required")
        if challenge and args.get("code_challenge_method") != "S256":
            return self._page(400, "code_challenge_method must be S256")
        state = args["state"]
        if self._deny:
            self._deny = False
            return _redirect(redirect, error="access_denied", state=state)
        scope = args.get("scope", "")
        offline = {
            "google": args.get("access_type") == "offline" and args.get("prompt") == "consent",
            "x": "offline.access" in scope.split(),
            "tiktok": True,
            "facebook": False,
        }[self.flavor]
        code = "code-" + secrets.token_urlsafe(16)
        self._codes[code] = _Code(self.client_id, redirect, challenge, scope, offline)
        extra = {"scope": scope} if self.flavor == "google" else {}
        return _redirect(redirect, code=code, state=state, **extra)

    def _client(self, request: Request) -> tuple[str | None, str | None, str]:
        """(client id, secret, how) from Basic auth or the form."""
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            raw = base64.b64decode(header[6:]).decode()
            client_id, _, secret = raw.partition(":")
            return client_id, secret, "basic"
        id_param = "client_key" if self.flavor == "tiktok" else "client_id"
        return request.form.get(id_param), request.form.get("client_secret"), "body"

    def _token(self, request: Request) -> Response:
        grant = request.form.get("grant_type", "")
        if self._faults:
            status = self._faults.popleft()
            self.calls.append((request.path, grant, status))
            return Response("<html>upstream error</html>", status=status, content_type="text/html")
        client_id, secret, how = self._client(request)
        wrong_style = (self.flavor == "x" and how != "basic") or (
            self.flavor == "tiktok" and how != "body"
        )
        if wrong_style or client_id != self.client_id or secret != self.client_secret:
            return self._oauth_error(
                request, 401, "invalid_client", "client authentication failed", grant
            )
        if grant == "authorization_code":
            return self._code_grant(request, grant)
        if grant == "refresh_token" and self.flavor != "facebook":
            return self._refresh_grant(request, grant)
        if grant == "fb_exchange_token" and self.flavor == "facebook":
            token = request.form.get("fb_exchange_token", "")
            if token not in self._live_access:
                return self._oauth_error(
                    request,
                    400,
                    "invalid_token",
                    "Error validating access token: the session is invalid",
                    grant,
                )
            return self._json(request, 200, self._issue("", None, long_lived=True), grant)
        return self._oauth_error(
            request, 400, "unsupported_grant_type", f"grant_type {grant!r}", grant
        )

    def _code_grant(self, request: Request, grant: str) -> Response:
        code = self._codes.pop(request.form.get("code", ""), None)  # single use
        if code is None or code.client_id != self.client_id:
            return self._oauth_error(
                request, 400, "invalid_grant", "authorization code is invalid or used", grant
            )
        if request.form.get("redirect_uri") != code.redirect_uri:
            return self._oauth_error(request, 400, "invalid_grant", "redirect_uri mismatch", grant)
        if code.challenge is not None:
            verifier = request.form.get("code_verifier", "")
            digest = hashlib.sha256(verifier.encode()).digest()
            expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            if not verifier or expected != code.challenge:
                return self._oauth_error(
                    request,
                    400,
                    "invalid_grant",
                    "code_verifier does not match the code_challenge",
                    grant,
                )
        refresh = None
        if code.offline:
            refresh = self._new_refresh(code.scope)
        return self._json(request, 200, self._issue(code.scope, refresh), grant)

    def _refresh_grant(self, request: Request, grant: str) -> Response:
        token = request.form.get("refresh_token", "")
        known = self._refresh.get(token)
        if known is None or not known.alive or known.client_id != self.client_id:
            return self._oauth_error(
                request, 400, "invalid_grant", "refresh token is invalid, expired or revoked", grant
            )
        if self.rotate_refresh_tokens:
            known.alive = False
            token = self._new_refresh(known.scope)
        body = self._issue(
            known.scope, token if self.rotate_refresh_tokens or self.flavor == "tiktok" else None
        )
        return self._json(request, 200, body, grant)

    def _new_refresh(self, scope: str) -> str:
        token = f"rt-{self.flavor}-" + secrets.token_urlsafe(24)
        self._refresh[token] = _Refresh(self.client_id, scope)
        return token

    def _issue(self, scope: str, refresh: str | None, long_lived: bool = False) -> dict[str, Any]:
        access = f"at-{self.flavor}-" + secrets.token_urlsafe(24)
        self._live_access.add(access)
        self.issued_access.append(access)
        ttl = 5_184_000 if long_lived else self.access_ttl_s
        body: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "expires_in": ttl}
        if self.flavor == "x":
            body["token_type"] = "bearer"
        if refresh:
            body["refresh_token"] = refresh
        if scope and self.flavor != "facebook":
            body["scope"] = scope
        if self.flavor == "tiktok":
            body.update(open_id="_000fakeOpenId", refresh_expires_in=31_536_000)
        return body

    def _accounts(self, request: Request) -> Response:
        header = request.headers.get("Authorization", "")
        token = (
            header.removeprefix("Bearer ")
            if header.startswith("Bearer ")
            else request.args.get("access_token", "")
        )
        if token not in self._live_access:
            return self._oauth_error(request, 400, "invalid_token", "Invalid OAuth access token")
        page: dict[str, Any] = {"id": "102000000000001", "name": "VF Demo Page"}
        if "instagram_business_account" in request.args.get("fields", ""):
            page["instagram_business_account"] = {"id": IG_USER_ID, "username": IG_USERNAME}
        return self._json(
            request, 200, {"data": [{"id": "102000000000000", "name": "No IG"}, page]}
        )


def _redirect(uri: str, **params: str) -> Response:
    sep = "&" if urlsplit(uri).query else "?"
    return Response("", status=302, headers={"Location": f"{uri}{sep}{urlencode(params)}"})


@dataclass
class FakeTelegramBot:
    server: HTTPServer
    token: str = BOT_TOKEN
    calls: int = 0

    def __post_init__(self) -> None:
        self.server.expect_request(re.compile(r"^/bot[^/]*/getMe$")).respond_with_handler(
            self._get_me
        )

    @property
    def base_url(self) -> str:
        return self.server.url_for("").rstrip("/")

    def _get_me(self, request: Request) -> Response:
        self.calls += 1
        if request.path != f"/bot{self.token}/getMe":
            body = {"ok": False, "error_code": 401, "description": "Unauthorized"}
            return Response(json.dumps(body), status=401, content_type="application/json")
        bot = {"id": 7012345678, "is_bot": True, "first_name": "VF Bot", "username": "vf_demo_bot"}
        return Response(json.dumps({"ok": True, "result": bot}), content_type="application/json")


# --- HTTPS ------------------------------------------------------------------------------------


@dataclass
class TlsServer:
    server: HTTPServer
    cert_path: Path

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert_path))


def tls_httpserver(folder: Path) -> TlsServer:
    """A started HTTPS HTTPServer on 127.0.0.1 with a fresh self-signed certificate."""
    context, cert_path = tls_context(folder)
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context)
    server.start()
    return TlsServer(server, cert_path)


def play_user(verify: ssl.SSLContext | bool = True) -> Callable[[str], None]:
    """An `open_browser` that approves at the fake's /authorize and follows its redirect to the
    loopback server, as a browser would."""
    import httpx

    def open_browser(url: str) -> None:
        response = httpx.get(url, follow_redirects=True, verify=verify, timeout=10)
        assert response.status_code == 200, response.text

    return open_browser
