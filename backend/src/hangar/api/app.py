"""The FastAPI app factory: `create_app(settings)`; uvicorn uses `create_app` with `--factory`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import hangar
from hangar.api.context import Hangar
from hangar.api.contract import install_contract
from hangar.api.errors import install_error_handlers
from hangar.api.middleware import RequestMetrics
from hangar.api.routes import (
    auth,
    events,
    machines,
    observer,
    operations,
    probes,
    providers,
    tokens,
)
from hangar.api.static import SinglePageApp
from hangar.metrics import Metrics
from hangar.settings import Settings

ROUTERS = (
    probes.router,
    auth.router,
    tokens.router,
    machines.router,
    operations.router,
    events.router,
    providers.router,
    observer.router,
)


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new app. The database is checked (and the services built) when its lifespan starts:
    an unmigrated database makes startup fail with DatabaseNotMigratedError naming the fix."""
    settings = settings if settings is not None else Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.hangar = await Hangar.start(settings, metrics)
        try:
            yield
        finally:
            await app.state.hangar.stop()

    app = FastAPI(
        title="hangar",
        version=hangar.__version__,
        lifespan=lifespan,
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/v1/openapi.json",
    )
    app.state.settings = settings
    app.state.metrics = metrics
    install_error_handlers(app)
    # The document names the providers this server enabled: another one is refused (a 422).
    install_contract(app, ROUTERS, enums={("MachineIn", "provider"): settings.providers})
    app.add_middleware(RequestMetrics, metrics=metrics)
    for router in ROUTERS:
        app.include_router(router)
    frontend = settings.frontend_dir
    if frontend is not None and frontend.is_dir():
        app.mount("/", SinglePageApp(str(frontend)), name="frontend")
    return app
