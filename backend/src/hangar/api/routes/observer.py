"""The observer's drift report."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from hangar.api.auth import Reader
from hangar.api.context import HangarDep
from hangar.api.schemas import Output, UtcDateTime

router = APIRouter(prefix="/api/v1/observer", tags=["observer"])


class FindingOut(Output):
    kind: str
    provider: str
    machine_id: str | None
    key: str
    message: str


class ReportOut(Output):
    checked_at: UtcDateTime
    findings: list[FindingOut]


@router.get("/report")
async def report(
    _: Reader,
    hangar: HangarDep,
    cached: Annotated[bool, Query(description="the last report instead of a new one")] = False,
) -> ReportOut:
    """Reconcile now (or, with `cached`, return the last report; the first one is made now)."""
    last = hangar.observer.last if cached else None
    return ReportOut.model_validate(last or await hangar.observer.reconcile())
