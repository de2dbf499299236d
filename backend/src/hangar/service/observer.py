"""The observer: compares what the database says with what the providers report; reports drift.

What callers rely on:
- `reconcile()` returns the drift found now, as findings of five kinds: a machine the database
  calls running (or starting) whose process is gone (`machine_not_running`), a machine the
  database calls stopped that its provider no longer has (`machine_missing`: after a crash of a
  provider that keeps nothing, a machine directory removed by hand), a machine a provider has
  that no row names (`orphan_machine`), a disk row whose file is missing (`disk_file_missing`),
  and a disk file that no row names (`orphan_disk_file`).
- Machines with an operation in flight are never flagged: a start or a disk creation in progress
  is not drift. A finding must hold in the database both before and after the providers were
  asked, so an operation that began and ended in between cannot produce one either.
- A machine whose process is gone is marked `error` (message: when it was observed), from where a
  start recovers it; so is a stopped machine its provider no longer has (only a delete helps
  there). It is marked under the machine's lock, the one every operation holds
  (`OperationRunner.holding`), so a mark and an operation never interleave. Nothing else is
  changed: orphans and files are reported, never removed.
- Each finding becomes one `observer` event when it first appears, not on every reconcile; one
  that went away and comes back is new again. This memory lives in the process: after a server
  restart, drift that is still there is reported once more.
- `start(interval)` reconciles every `interval` seconds until `stop()`; a failing reconcile is
  logged and the loop goes on. A provider that cannot be asked is skipped for that reconcile
  (logged), so its machines are never marked because of a failed look.
- Before each reconcile, the loop keeps alive the running machines of providers that offer
  `KeepAlive` (`keep_alive()`; see there).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping, Set
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hangar.db.models import Disk, Machine, utcnow
from hangar.providers.base import (
    Capability,
    DiskInventory,
    KeepAlive,
    Provider,
    ProviderError,
    Runtime,
)
from hangar.service.errors import BusyError, NotFoundError
from hangar.service.machines import MachineService
from hangar.service.states import MachineState

log = logging.getLogger(__name__)

EVENT_KIND = "observer"
# States in which the database says a machine's process exists.
EXPECTS_PROCESS = frozenset({MachineState.RUNNING.value, MachineState.STARTING.value})
# States in which the database says the provider has the machine, without a process. (An `error`
# row may name a machine the provider never made: a failed create. It already says what is wrong.)
EXPECTS_MACHINE = frozenset({MachineState.STOPPED.value})


class FindingKind(StrEnum):
    MACHINE_NOT_RUNNING = "machine_not_running"
    MACHINE_MISSING = "machine_missing"
    ORPHAN_MACHINE = "orphan_machine"
    DISK_FILE_MISSING = "disk_file_missing"
    ORPHAN_DISK_FILE = "orphan_disk_file"


@dataclass(frozen=True, slots=True)
class Finding:
    """One drift. `machine_id` is the row's id (None for an orphan machine: it has no row);
    `key` is the provider's key of the machine, or of the disk for the disk kinds."""

    kind: FindingKind
    provider: str
    machine_id: str | None
    key: str
    message: str

    @property
    def identity(self) -> tuple[str, str, str, str]:
        """What makes two findings the same drift (the message may differ in its timestamp)."""
        return (self.kind.value, self.provider, self.machine_id or "", self.key)


@dataclass(frozen=True, slots=True)
class Report:
    checked_at: datetime
    findings: list[Finding]


# ------------------------------------------------------------------ what each side says
@dataclass(frozen=True, slots=True)
class MachineRow:
    id: str
    name: str
    provider: str
    state: str
    busy: bool


@dataclass(frozen=True, slots=True)
class DatabaseView:
    machines: dict[str, MachineRow]
    disks: dict[str, dict[str, str]]  # machine id -> disk id -> disk name


@dataclass(frozen=True, slots=True)
class ProviderView:
    name: str
    machines: dict[str, Runtime]
    disks: Mapping[str, Set[str]] | None  # None: the provider cannot list its disk files


# The findings that mark their machine `error`: the states the row must still be in, and what of
# the provider's runtime means the drift went away meanwhile.
MARKED: dict[FindingKind, tuple[frozenset[str], Callable[[Runtime], bool]]] = {
    FindingKind.MACHINE_NOT_RUNNING: (EXPECTS_PROCESS, lambda runtime: runtime.running),
    FindingKind.MACHINE_MISSING: (EXPECTS_MACHINE, lambda runtime: True),
}


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def find_drift(
    database: DatabaseView, providers: list[ProviderView], checked_at: datetime
) -> list[Finding]:
    """Every drift between one look at the database and one look at each provider."""
    return [
        finding
        for provider in providers
        for finding in _drift_of(database, provider, _stamp(checked_at))
    ]


def _drift_of(database: DatabaseView, provider: ProviderView, seen: str) -> Iterator[Finding]:
    rows = {m.id: m for m in database.machines.values() if m.provider == provider.name}
    idle = [row for row in rows.values() if not row.busy]
    for row in idle:
        if row.state in EXPECTS_MACHINE and row.id not in provider.machines:
            yield Finding(
                FindingKind.MACHINE_MISSING,
                provider.name,
                row.id,
                row.id,
                f"{row.name}: the {provider.name} provider no longer has this machine "
                f"(observed at {seen}); delete it",
            )
        if row.state not in EXPECTS_PROCESS:
            continue
        runtime = provider.machines.get(row.id)
        if runtime is None:
            message = (
                f"{row.name}: the {provider.name} provider no longer has this machine "
                f"(observed at {seen}); delete it"
            )
        elif not runtime.running:
            message = f"{row.name}: the VM process is gone (observed at {seen}); start it again"
        else:
            continue
        yield Finding(FindingKind.MACHINE_NOT_RUNNING, provider.name, row.id, row.id, message)
    for key, runtime in provider.machines.items():
        if key in rows:
            continue
        what = f"runs machine {key!r}" if runtime.running else f"has machine {key!r} (stopped)"
        pid = f" as pid {runtime.pid}" if runtime.pid is not None else ""
        yield Finding(
            FindingKind.ORPHAN_MACHINE,
            provider.name,
            None,
            key,
            f"the {provider.name} provider {what}{pid} that no machine row names; the observer "
            "leaves it alone: remove it with the provider's own tools if nobody needs it",
        )
    if provider.disks is None:
        return
    # Disks of a machine without a row are left out: its orphan_machine finding covers them.
    for row in idle:
        files = provider.disks.get(row.id, frozenset())
        disk_rows = database.disks.get(row.id, {})
        for disk_id, disk_name in disk_rows.items():
            if disk_id not in files:
                yield Finding(
                    FindingKind.DISK_FILE_MISSING,
                    provider.name,
                    row.id,
                    disk_id,
                    f"{row.name}: the file of disk {disk_name!r} is missing; the disk cannot be "
                    "used: delete it and create it again",
                )
        for disk_key in sorted(files - disk_rows.keys()):
            yield Finding(
                FindingKind.ORPHAN_DISK_FILE,
                provider.name,
                row.id,
                disk_key,
                f"{row.name}: the {provider.name} provider has a disk file {disk_key!r} that no "
                "disk row names; remove it if nobody needs it",
            )


# ------------------------------------------------------------------ the observer
class Observer:
    """Reconciles the database with the providers, on demand and in a loop."""

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], machines: MachineService
    ) -> None:
        self._sessionmaker = sessionmaker
        self.machines = machines
        self._runner = machines.runner
        self.last: Report | None = None
        self._reported: set[tuple[str, str, str, str]] = set()
        # The loop and the report endpoint may reconcile at once; one at a time keeps the
        # memory of reported findings consistent.
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    @property
    def providers(self) -> dict[str, Provider]:
        return self.machines.providers

    async def reconcile(self) -> Report:
        """Look at both sides now, mark machines whose process is gone, publish new findings."""
        async with self._lock:
            checked_at = utcnow()
            before = await self._database()
            looks = [await self._look(name, provider) for name, provider in self.providers.items()]
            views = [view for view in looks if view is not None]
            after = await self._database()
            held_before = {f.identity for f in find_drift(before, views, checked_at)}
            findings: list[Finding] = []
            for finding in find_drift(after, views, checked_at):
                if finding.identity not in held_before:
                    continue
                if finding.kind in MARKED:
                    if await self._mark_gone(finding):
                        findings.append(finding)  # marking published its event
                    continue
                if finding.identity not in self._reported:
                    await self._publish(finding)
                findings.append(finding)
            self._reported = {f.identity for f in findings}
            self.last = Report(checked_at, findings)
            return self.last

    async def _database(self) -> DatabaseView:
        async with self._sessionmaker() as session:
            machines = {
                m.id: MachineRow(m.id, m.name, m.provider, m.state, self._runner.busy(m.id))
                for m in await session.scalars(select(Machine))
            }
            disks: dict[str, dict[str, str]] = {}
            for disk_id, machine_id, name in await session.execute(
                select(Disk.id, Disk.machine_id, Disk.name)
            ):
                disks.setdefault(machine_id, {})[disk_id] = name
        return DatabaseView(machines, disks)

    async def _look(self, name: str, provider: Provider) -> ProviderView | None:
        try:
            machines = {runtime.key: runtime for runtime in await provider.inventory()}
            disks = None
            if Capability.DISKS in provider.capabilities and isinstance(provider, DiskInventory):
                disks = await provider.disk_inventory()
        except ProviderError as exc:
            log.warning("observer: skipped provider %s this time: %s", name, exc)
            return None
        except Exception:
            log.exception("observer: skipped provider %s this time: its inventory failed", name)
            return None
        return ProviderView(name, machines, disks)

    async def _mark_gone(self, finding: Finding) -> bool:
        """Mark the machine `error` if, under its lock, it still expects a process (or, for
        `machine_missing`, a machine) that the provider still does not have. False when it
        changed meanwhile (not drift after all)."""
        assert finding.machine_id is not None
        expects, still_there = MARKED[finding.kind]
        try:
            machine = await self.machines.get_machine(finding.machine_id)
            async with self._runner.holding(machine):
                runtime = await self.providers[finding.provider].runtime(finding.key)
                if runtime is not None and still_there(runtime):
                    return False
                async with self._runner.transaction() as tx:
                    row = await tx.session.get(Machine, finding.machine_id)
                    if row is None or row.state not in expects:
                        return False
                    row.error = finding.message
                    row.endpoint = None
                    tx.set_state(row, MachineState.ERROR, finding.message)
                    tx.event(row, EVENT_KIND, f"{finding.kind.value}: {finding.message}")
        except (BusyError, NotFoundError):
            return False  # an operation began or the machine went: check again next time
        except ProviderError as exc:
            log.warning("observer: could not confirm %s: %s", finding.message, exc)
            return False
        return True

    async def _publish(self, finding: Finding) -> None:
        async with self._runner.transaction() as tx:
            tx.event(
                None,
                EVENT_KIND,
                f"{finding.kind.value}: {finding.message}",
                machine_id=finding.machine_id or "",
            )

    # ------------------------------------------------------------------ keep-alive
    async def keep_alive(self) -> None:
        """Extend the lifetime of every machine whose row says running, at each provider that
        offers `KeepAlive` (E2B sandboxes expire unless extended: a dead-man switch, so when the
        server is gone its machines expire on their own). The loop calls it before each
        reconcile. A provider that fails is logged and tried again at the next tick; a machine
        it no longer has is the reconcile's to mark. Never raises."""
        keeping = {n: p for n, p in self.providers.items() if isinstance(p, KeepAlive)}
        if not keeping:
            return
        running: dict[str, list[str]] = {}
        try:
            async with self._sessionmaker() as session:
                rows = await session.execute(
                    select(Machine.provider, Machine.id).where(
                        Machine.state == MachineState.RUNNING.value,
                        Machine.provider.in_(list(keeping)),
                    )
                )
                for provider_name, machine_id in rows:
                    running.setdefault(provider_name, []).append(machine_id)
        except Exception:
            log.exception("observer: could not read the running machines to keep them alive")
            return
        for name, keys in running.items():
            try:
                await keeping[name].keep_alive(keys)
            except ProviderError as exc:
                log.warning("observer: could not keep %s's machines alive: %s", name, exc)
            except Exception:
                log.exception("observer: keeping %s's machines alive failed", name)

    # ------------------------------------------------------------------ the loop
    def start(self, interval: float) -> None:
        """Reconcile every `interval` seconds (the first one after `interval`); 0 does nothing."""
        if interval > 0 and self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(interval), name="hangar-observer"
            )

    async def _run(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.keep_alive()
            try:
                await self.reconcile()
            except Exception:
                log.exception("observer: reconcile failed; next try in %.1fs", interval)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        """End the loop (waits for a reconcile in progress to be cancelled)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
