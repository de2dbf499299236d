"""Enabled providers, and fault injection into the fake provider (used by tests).

The faults go through the service like every other action: the API never calls a provider."""

from __future__ import annotations

from fastapi import APIRouter

from hangar.api.auth import Admin, Reader
from hangar.api.context import HangarDep
from hangar.api.contract import raises
from hangar.api.schemas import FaultIn, ProviderOut

router = APIRouter(prefix="/api/v1/providers", tags=["providers"])

# 404 when the fake provider is not enabled; 409 when a provider takes no faults.
FAULTS = raises(404, 409)


@router.get("")
async def list_providers(_: Reader, hangar: HangarDep) -> list[ProviderOut]:
    return [ProviderOut.model_validate(p) for p in await hangar.machines.provider_info()]


@router.post("/fake/faults", status_code=204, responses=FAULTS)
async def inject_fault(body: FaultIn, _: Admin, hangar: HangarDep) -> None:
    hangar.machines.inject_fault(body.action, body.message, body.times, provider="fake")


@router.delete("/fake/faults", status_code=204, responses=FAULTS)
async def clear_faults(_: Admin, hangar: HangarDep) -> None:
    hangar.machines.clear_faults(provider="fake")
