"""Machines, their disks and snapshots. Long actions answer 202 with the pending operation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from hangar.api.auth import Admin, Reader
from hangar.api.context import HangarDep
from hangar.api.contract import raises
from hangar.api.schemas import (
    MAX_INTEGER,
    CloneIn,
    ConsoleOut,
    DiskAcceptedOut,
    DiskIn,
    DiskOut,
    MachineAcceptedOut,
    MachineIn,
    MachineOut,
    MachinePageOut,
    OperationAcceptedOut,
    OperationOut,
    SnapshotAcceptedOut,
    SnapshotIn,
    SnapshotOut,
)
from hangar.service.states import MachineState

router = APIRouter(prefix="/api/v1/machines", tags=["machines"])

# Every change of a machine goes through the state machine: it may refuse, or be busy, or a name
# may be taken; a provider may lack the capability (console too).
CONFLICT = raises(409)


def _accepted(operation: object) -> OperationAcceptedOut:
    return OperationAcceptedOut(operation=OperationOut.model_validate(operation))


@router.get("")
async def list_machines(
    _: Reader,
    hangar: HangarDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_INTEGER)] = 0,
    provider: Annotated[str | None, Query(max_length=32)] = None,
    state: MachineState | None = None,
    name: Annotated[str | None, Query(max_length=63)] = None,
) -> MachinePageOut:
    page = await hangar.machines.list_machines(
        limit=limit,
        offset=offset,
        provider=provider,
        state=state.value if state else None,
        name=name,
    )
    return MachinePageOut(
        items=[MachineOut.model_validate(m) for m in page.items],
        total=page.total,
        limit=limit,
        offset=offset,
    )


@router.post("", status_code=202, responses=CONFLICT)
async def create_machine(body: MachineIn, _: Admin, hangar: HangarDep) -> MachineAcceptedOut:
    machine, operation = await hangar.machines.create_machine(
        name=body.name,
        provider=body.provider,
        image=body.image,
        cpus=body.cpus,
        memory_mb=body.memory_mb,
        start=body.start,
    )
    return MachineAcceptedOut(
        machine=MachineOut.model_validate(machine), operation=OperationOut.model_validate(operation)
    )


@router.get("/{machine_id}")
async def get_machine(machine_id: str, _: Reader, hangar: HangarDep) -> MachineOut:
    return MachineOut.model_validate(await hangar.machines.get_machine(machine_id))


@router.delete("/{machine_id}", status_code=202, responses=CONFLICT)
async def delete_machine(machine_id: str, _: Admin, hangar: HangarDep) -> OperationAcceptedOut:
    return _accepted(await hangar.machines.delete(machine_id))


@router.post("/{machine_id}/start", status_code=202, responses=CONFLICT)
async def start_machine(machine_id: str, _: Admin, hangar: HangarDep) -> OperationAcceptedOut:
    return _accepted(await hangar.machines.start(machine_id))


@router.post("/{machine_id}/stop", status_code=202, responses=CONFLICT)
async def stop_machine(machine_id: str, _: Admin, hangar: HangarDep) -> OperationAcceptedOut:
    return _accepted(await hangar.machines.stop(machine_id))


@router.post("/{machine_id}/restart", status_code=202, responses=CONFLICT)
async def restart_machine(machine_id: str, _: Admin, hangar: HangarDep) -> OperationAcceptedOut:
    return _accepted(await hangar.machines.restart(machine_id))


@router.post("/{machine_id}/clone", status_code=202, responses=CONFLICT)
async def clone_machine(
    machine_id: str, body: CloneIn, _: Admin, hangar: HangarDep
) -> MachineAcceptedOut:
    clone, operation = await hangar.machines.clone(machine_id, body.name)
    return MachineAcceptedOut(
        machine=MachineOut.model_validate(clone), operation=OperationOut.model_validate(operation)
    )


@router.get("/{machine_id}/console", responses=CONFLICT)
async def console(
    machine_id: str,
    _: Reader,
    hangar: HangarDep,
    lines: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ConsoleOut:
    return ConsoleOut(text=await hangar.machines.console(machine_id, lines))


@router.get("/{machine_id}/operations")
async def machine_operations(
    machine_id: str,
    _: Reader,
    hangar: HangarDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[OperationOut]:
    await hangar.machines.get_machine(machine_id)
    operations = await hangar.machines.list_operations(machine_id=machine_id, limit=limit)
    return [OperationOut.model_validate(op) for op in operations]


# ---------------------------------------------------------------- disks
@router.get("/{machine_id}/disks")
async def list_disks(machine_id: str, _: Reader, hangar: HangarDep) -> list[DiskOut]:
    return [DiskOut.model_validate(d) for d in await hangar.machines.list_disks(machine_id)]


@router.post("/{machine_id}/disks", status_code=202, responses=CONFLICT)
async def create_disk(
    machine_id: str, body: DiskIn, _: Admin, hangar: HangarDep
) -> DiskAcceptedOut:
    disk, operation = await hangar.machines.create_disk(machine_id, body.name, body.size_mb)
    return DiskAcceptedOut(
        disk=DiskOut.model_validate(disk), operation=OperationOut.model_validate(operation)
    )


@router.post("/{machine_id}/disks/{disk_id}/attach", status_code=202, responses=CONFLICT)
async def attach_disk(
    machine_id: str, disk_id: str, _: Admin, hangar: HangarDep
) -> OperationAcceptedOut:
    return _accepted(await hangar.machines.attach_disk(machine_id, disk_id))


@router.post("/{machine_id}/disks/{disk_id}/detach", status_code=202, responses=CONFLICT)
async def detach_disk(
    machine_id: str, disk_id: str, _: Admin, hangar: HangarDep
) -> OperationAcceptedOut:
    return _accepted(await hangar.machines.detach_disk(machine_id, disk_id))


@router.delete("/{machine_id}/disks/{disk_id}", status_code=202, responses=CONFLICT)
async def delete_disk(
    machine_id: str, disk_id: str, _: Admin, hangar: HangarDep
) -> OperationAcceptedOut:
    return _accepted(await hangar.machines.delete_disk(machine_id, disk_id))


# ---------------------------------------------------------------- snapshots
@router.get("/{machine_id}/snapshots")
async def list_snapshots(machine_id: str, _: Reader, hangar: HangarDep) -> list[SnapshotOut]:
    snapshots = await hangar.machines.list_snapshots(machine_id)
    return [SnapshotOut.model_validate(s) for s in snapshots]


@router.post("/{machine_id}/snapshots", status_code=202, responses=CONFLICT)
async def create_snapshot(
    machine_id: str, body: SnapshotIn, _: Admin, hangar: HangarDep
) -> SnapshotAcceptedOut:
    snapshot, operation = await hangar.machines.create_snapshot(machine_id, body.name)
    return SnapshotAcceptedOut(
        snapshot=SnapshotOut.model_validate(snapshot),
        operation=OperationOut.model_validate(operation),
    )


@router.post("/{machine_id}/snapshots/{snapshot_id}/rollback", status_code=202, responses=CONFLICT)
async def rollback_snapshot(
    machine_id: str, snapshot_id: str, _: Admin, hangar: HangarDep
) -> OperationAcceptedOut:
    return _accepted(await hangar.machines.rollback_snapshot(machine_id, snapshot_id))


@router.delete("/{machine_id}/snapshots/{snapshot_id}", status_code=202, responses=CONFLICT)
async def delete_snapshot(
    machine_id: str, snapshot_id: str, _: Admin, hangar: HangarDep
) -> OperationAcceptedOut:
    return _accepted(await hangar.machines.delete_snapshot(machine_id, snapshot_id))
