"""Transient faults in front of any fake: a share of calls never reaches the fake's handlers and
gets what a flaky network or an overloaded edge gives instead.

`ChaosHTTPServer` is a pytest-httpserver `HTTPServer` whose `dispatch` (its documented entry
point for every request) first rolls a seeded die. On a hit the call gets one of:
- `503` Service Unavailable (an edge or backend outage),
- `429` Too Many Requests with `Retry-After: 0` (and X's `x-rate-limit-reset` header),
- a stall longer than the client's timeout, then `504` (the client has given up by then).
The fake's own handler never runs for a faulted call, so a fault has no side effect on the
platform: these are the faults a retry must survive without losing a post. The side-effect
cases (a post made, its answer lost) are each publisher's own tests.

`chaos_https_server(directory, ...)` is the same over TLS, with the certificate of
tests/fakes/youtube.py's `https_server` (the YouTube SDK only speaks https). Servers are
returned unstarted: the caller starts and stops them.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from .tls import tls_context

FAULT_KINDS = ("503", "429", "timeout")


class ChaosHTTPServer(HTTPServer):
    def __init__(
        self, *args: Any, fault_rate: float = 0.0, seed: int = 0, stall_s: float = 0.5, **kw: Any
    ) -> None:
        kw.setdefault("threaded", True)  # a stalled call must not hold up the others
        super().__init__(*args, **kw)
        self.fault_rate = fault_rate
        self.stall_s = stall_s
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.calls = 0
        self.faults: Counter[str] = Counter()

    @property
    def faulted(self) -> int:
        """Calls that got a fault instead of the fake's answer."""
        return sum(self.faults.values())

    def _roll(self) -> str | None:
        with self._lock:
            self.calls += 1
            if self._random.random() >= self.fault_rate:
                return None
            kind = self._random.choice(FAULT_KINDS)
            self.faults[kind] += 1
            return kind

    def dispatch(self, request: Request) -> Response:
        if self._readiness_check_pending:  # the server's own start-up probe
            return super().dispatch(request)
        kind = self._roll()
        if kind == "503":
            return Response("Service Unavailable", status=503)
        if kind == "429":
            reset = str(int(time.time()))
            return Response(
                '{"error": "rate limited"}',
                status=429,
                headers={"Retry-After": "0", "x-rate-limit-reset": reset},
                content_type="application/json",
            )
        if kind == "timeout":
            time.sleep(self.stall_s)
            return Response("Gateway Timeout", status=504)
        return super().dispatch(request)


def chaos_https_server(
    directory: Path, *, fault_rate: float = 0.0, seed: int = 0, stall_s: float = 0.5
) -> tuple[ChaosHTTPServer, Path]:
    """An unstarted TLS ChaosHTTPServer on 127.0.0.1 and the PEM file that trusts it."""
    context, pem = tls_context(directory)
    server = ChaosHTTPServer(
        host="127.0.0.1",
        port=0,
        ssl_context=context,
        fault_rate=fault_rate,
        seed=seed,
        stall_s=stall_s,
    )
    return server, pem
