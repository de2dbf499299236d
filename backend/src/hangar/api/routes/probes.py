"""Probes for people and orchestrators: /health, /ready, /metrics (no auth)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from hangar.api.context import HangarDep
from hangar.api.contract import raises
from hangar.api.errors import database_reason, error_response
from hangar.db.migrate import DatabaseNotMigratedError, check_current

router = APIRouter(tags=["probes"])


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


# A write that changes nothing: it needs the write lock, which a SQLite file locked by another
# process refuses (reads still succeed there, in WAL mode), so /ready tells what writes will meet.
WRITE_PROBE = text("UPDATE alembic_version SET version_num = version_num WHERE 1 = 0")


async def _check_writable(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(WRITE_PROBE)
        await connection.rollback()


@router.get("/ready", response_model=None, responses=raises(503))
async def ready(hangar: HangarDep) -> JSONResponse | dict[str, str]:
    """Ready when the database answers, can be written and is migrated; else 503 with why."""
    try:
        await check_current(hangar.engine)
        await _check_writable(hangar.engine)
    except DatabaseNotMigratedError as exc:
        return error_response(503, "not_ready", str(exc))
    except Exception as exc:  # any database failure means "not ready", never a 500
        return error_response(503, "not_ready", f"database does not answer: {database_reason(exc)}")
    return {"status": "ready"}


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(hangar: HangarDep) -> Response:
    hangar.metrics.set_machine_counts(await hangar.machines.machine_counts())
    return Response(hangar.metrics.render(), media_type=CONTENT_TYPE_LATEST)
