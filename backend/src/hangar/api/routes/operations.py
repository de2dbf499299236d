"""Operations: the records of long actions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from hangar.api.auth import Reader
from hangar.api.context import HangarDep
from hangar.api.schemas import OperationOut

router = APIRouter(prefix="/api/v1/operations", tags=["operations"])


@router.get("")
async def list_operations(
    _: Reader,
    hangar: HangarDep,
    machine_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[OperationOut]:
    operations = await hangar.machines.list_operations(machine_id=machine_id, limit=limit)
    return [OperationOut.model_validate(op) for op in operations]


@router.get("/{operation_id}")
async def get_operation(operation_id: str, _: Reader, hangar: HangarDep) -> OperationOut:
    return OperationOut.model_validate(await hangar.machines.get_operation(operation_id))
