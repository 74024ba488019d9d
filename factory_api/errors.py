"""One JSON shape for every error the API returns, and the handlers that produce it.

Every error body is `{"code": ..., "message": ..., "field": ...}`; validation errors add
`errors: [{"field", "message"}]`. Messages name the input and say what to do. Nothing here
echoes a request's headers or body, so an API key can never come back in an error.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class ApiError(Exception):
    """An error a caller can act on: its HTTP status, a stable code, a message in words and
    the input it is about (a form field, a path parameter, a JSON field)."""

    def __init__(
        self, status: int, code: str, message: str, field: str | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.extra = extra
        self.headers: dict[str, str] | None = None

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "field": self.field, **self.extra}


def not_found(what: str, name: str, field: str | None = None) -> ApiError:
    """404 for anything the caller does not own: the same answer as for something that does
    not exist, so nobody learns another user's names."""
    return ApiError(404, "not_found", f"you have no {what} {name!r}", field)


def _field_of(location: tuple[Any, ...]) -> str:
    # ("body", "topic") -> "topic"; ("path", "key") -> "key"; ("body", "files", 2) -> "files.2"
    parts = [str(p) for p in location if p not in ("body", "query", "path", "header", "form")]
    return ".".join(parts) or ".".join(str(p) for p in location)


def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"field": _field_of(tuple(e.get("loc", ()))), "message": str(e.get("msg", ""))}
              for e in exc.errors()]  # fmt: skip
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    return JSONResponse(
        status_code=422,
        content={
            "code": "validation_error",
            "message": f"invalid request: {summary}",
            "field": errors[0]["field"] if errors else None,
            "errors": errors,
        },
    )


def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(status_code=exc.status, content=exc.body(), headers=exc.headers)


_HTTP_CODES = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
               413: "too_large"}  # fmt: skip


def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else "request refused"
    if exc.status_code == 404 and message == "Not Found":
        message = f"no such endpoint {request.url.path}; see /docs for the API's routes"
    return JSONResponse(
        status_code=exc.status_code,
        content={"code": _HTTP_CODES.get(exc.status_code, "http_error"), "message": message,
                 "field": None},
        headers=exc.headers,
    )  # fmt: skip


def _quota(request: Request, exc: Exception) -> JSONResponse:
    # 403, not 402/429: the request is understood and refused by the plan, and retrying later
    # in the month is not the only cure (a bigger plan is), so a 429's "wait" would mislead.
    resource = getattr(exc, "resource", None)
    return JSONResponse(
        status_code=403,
        content={"code": "quota_exceeded", "message": str(exc), "field": None,
                 "resource": resource, "plan": getattr(exc, "plan", None),
                 "limit": getattr(exc, "limit", None), "used": getattr(exc, "used", None)},
    )  # fmt: skip


def _channel_taken(request: Request, exc: Exception) -> JSONResponse:
    message = str(exc) or "that channel name is taken"
    return JSONResponse(
        status_code=409,
        content={"code": "channel_name_taken", "message": f"{message}; choose another name",
                 "field": "name"},
    )  # fmt: skip


def install(app: FastAPI) -> None:
    from factory_resources.tenancy import ChannelNameTaken, QuotaExceeded

    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(QuotaExceeded, _quota)
    app.add_exception_handler(ChannelNameTaken, _channel_taken)
