"""The web UI's static files at `/`, with the history-API fallback to index.html."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

# Paths that belong to the API or the probes never fall back to the UI.
RESERVED_PREFIXES = ("api/", "health", "ready", "metrics")
RESERVED = frozenset({"api", "health", "ready", "metrics"})


def is_reserved(path: str) -> bool:
    path = path.lstrip("/")
    return path in RESERVED or path.startswith(RESERVED_PREFIXES)


class SinglePageApp(StaticFiles):
    """Serves files that exist; any other GET (outside the API and probes) gets index.html."""

    def __init__(self, directory: str) -> None:
        super().__init__(directory=directory, html=True)

    async def get_response(self, path: str, scope: Scope) -> Response:
        try:
            return await super().get_response(path, scope)
        except HTTPException as exc:
            fallback = exc.status_code == 404 and scope["method"] in ("GET", "HEAD")
            if not fallback or is_reserved(path):
                raise
            return await super().get_response("index.html", scope)
