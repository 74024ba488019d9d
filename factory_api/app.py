"""The factory's REST API: creators' voices, characters, channels, videos, publishing and
analytics, each scoped to the API key's user. OpenAPI docs at /docs; routes under /v1.

`create_app(home, bridge)` builds an app over a factory home and a Dagster bridge (both
default to the environment's: `$FACTORY_HOME` and the bridge module's `default_bridge`);
`app` is one built at import, which opens nothing until its first request, so
`uvicorn factory_api.app:app` starts fast.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI

from factory_api import errors
from factory_api.routers import analytics, channels, characters, downloads, publish, videos, voices
from factory_api.services import Services
from factory_api.uploads import MB, BodyCap, BodyLimit

if TYPE_CHECKING:  # the bridge module loads dagster and the job definitions: only on first use
    from factory_api.dagster_bridge import DagsterBridge

API_PREFIX = "/v1"
JSON_BODY_MAX = 4 * MB  # a 1000-topic batch with scripts fits

# Whole-request caps of the upload endpoints (every file's own cap is checked as it is saved).
UPLOAD_CAPS = [
    BodyCap("POST", re.compile(r"/v1/voices"), 25 * 10 * MB + MB),
    BodyCap("POST", re.compile(r"/v1/characters"), 10 * MB + MB),
    BodyCap("PUT", re.compile(r"/v1/channels/[^/]+/brand/[^/]+"), 200 * MB + MB),
    BodyCap("POST", re.compile(r"/v1/channels/[^/]+/music"), 50 * MB + MB),
]


def create_app(
    home: Path | None = None, bridge: DagsterBridge | None = None, warm: bool = False
) -> FastAPI:
    """`warm`: open the database, the studios and the Dagster bridge when the server starts
    (each worker process does), not on the first requests, which would otherwise wait
    seconds behind Dagster's import. `app` below is built warm; tests build theirs cold."""
    services = Services(home, bridge)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if warm:
            await asyncio.to_thread(services.warm_up)
        yield

    app = FastAPI(
        lifespan=lifespan,
        title="Video Content Factory API",
        version="1",
        summary="Topics in, narrated shorts out: each creator's voices, characters, channels, "
        "videos, publishing and analytics.",
        docs_url="/docs",
    )
    app.state.services = services
    errors.install(app)
    for module in (voices, characters, channels, videos, downloads, publish, analytics):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(videos.batches, prefix=API_PREFIX)
    app.add_middleware(BodyLimit, caps=UPLOAD_CAPS, default=JSON_BODY_MAX)
    return app


app = create_app(warm=True)
