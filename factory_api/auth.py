"""Who is calling: `Authorization: Bearer <key>` or `X-API-Key: <key>`, checked by the tenancy
(keys are stored as SHA-256 digests). Every endpoint but the OAuth callback depends on
`caller`; a missing, unknown or revoked key is 401 with a message saying how to send one.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from factory_api.errors import ApiError
from factory_api.services import Services
from factory_resources.tenancy import User

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer vf_...`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key, `vf_...`")


@dataclass(frozen=True)
class Caller:
    user: User
    services: Services

    @property
    def owner(self) -> str:
        return self.user.name


async def services(request: Request) -> Services:
    # async: an attribute read, which would otherwise cost a hop through the thread pool.
    return request.app.state.services


def _unauthorized(message: str) -> ApiError:
    error = ApiError(401, "unauthorized", message)
    error.extra["hint"] = "send `Authorization: Bearer <your API key>` or `X-API-Key: <key>`"
    error.headers = {"WWW-Authenticate": "Bearer"}
    return error


def api_key_of(bearer: HTTPAuthorizationCredentials | None, header: str | None) -> str | None:
    if bearer is not None and bearer.credentials.strip():
        return bearer.credentials.strip()
    if header and header.strip():
        return header.strip()
    return None


# A key checked in the last few seconds is not looked up again: every request authenticates,
# and the lookup (a query, plus a write of last use) was a tenth of a list request's cost. The
# price: a revoked key keeps working for at most this long in each API process.
AUTH_CACHE_S = 5.0
_recent: dict[str, tuple[float, User]] = {}
_recent_lock = threading.Lock()


def _authenticate(svc: Services, key: str) -> User | None:
    digest = hashlib.sha256(key.encode()).hexdigest()  # the cache holds no key text either
    now = time.monotonic()
    hit = _recent.get(digest)
    if hit is not None and hit[0] > now and hit[1] is not None:
        return hit[1]
    user = svc.tenancy.authenticate(key)
    if user is not None:
        with _recent_lock:
            if len(_recent) > 10_000:
                _recent.clear()
            _recent[digest] = (now + AUTH_CACHE_S, user)
    return user


def forget_cached_keys() -> None:
    """Drops every cached key check (after a revocation, in tests)."""
    with _recent_lock:
        _recent.clear()


def optional_user(
    svc: Annotated[Services, Depends(services)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    header: Annotated[str | None, Security(_header)],
) -> User | None:
    key = api_key_of(bearer, header)
    return _authenticate(svc, key) if key else None


def caller(
    svc: Annotated[Services, Depends(services)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    header: Annotated[str | None, Security(_header)],
) -> Caller:
    key = api_key_of(bearer, header)
    if key is None:
        raise _unauthorized("no API key given")
    user = _authenticate(svc, key)
    if user is None:
        # The same words for unknown, revoked and malformed keys: nothing to probe with.
        raise _unauthorized(
            "the API key is not valid (unknown or revoked); ask the factory's operator for a "
            "new one"
        )
    return Caller(user, svc)


CallerDep = Annotated[Caller, Depends(caller)]
