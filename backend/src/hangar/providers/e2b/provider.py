"""The `e2b` provider: each machine is one E2B cloud sandbox, driven through the official SDK.

How the protocol maps onto E2B:
- create: `AsyncSandbox.create(template, timeout, metadata={"hangar": "1", "run": <run id>,
  "machine": <key>})`, then pause, since the protocol creates machines stopped (a create that
  fails half-way kills the sandbox);
- start = resume (`AsyncSandbox.connect`), stop = pause; a sandbox's id stays the same across them;
- delete = kill; a sandbox that is already gone is success;
- exec = `commands.run` with explicit command and request timeouts (see commands.py);
- endpoint = `get_host(80)` as an https URL while running;
- runtime and inventory list sandboxes by metadata; inventory is this run's sandboxes only, so
  another service's (another run's) sandboxes are never reported as this one's orphans;
- disks, snapshots, clone and console are capabilities it lacks (`UnsupportedError`).

The template gives a sandbox its CPUs and memory: the spec's `cpus` and `memory_mb` are not
applied. A running sandbox expires after `timeout_s` unless `keep_alive` extends it (the observer
does, while the machine's row says running): when the server is gone, its sandboxes expire on
their own. A paused sandbox does not expire; `hangar e2b sweep` removes those of gone runs.

No local state: a machine's sandbox is found by its `machine` metadata, so a restarted server
finds its machines again. Ids found are cached; a cached sandbox that is gone raises
`NotFoundError`, as the lookup would.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

from e2b import SandboxInfo, SandboxState

from hangar.providers.base import (
    Capability,
    ExecResult,
    MachineSpec,
    NotFoundError,
    ProviderError,
    Runtime,
    UnsupportedError,
)
from hangar.providers.e2b.commands import CommandChannel, run_command
from hangar.providers.e2b.config import HANGAR_MARK, MACHINE_LABEL, RUN_LABEL, E2BConfig
from hangar.providers.e2b.control import ControlPlane, Sleep

T = TypeVar("T")

GUEST_PORT = 80  # the endpoint is the sandbox's port 80, like the qemu provider's

OpenChannel = Callable[[str], Awaitable[CommandChannel]]


class E2BProvider:
    """Machines as E2B sandboxes (see the module docstring for the mapping)."""

    name = "e2b"
    capabilities = frozenset({Capability.EXEC, Capability.ENDPOINT})

    def __init__(
        self,
        config: E2BConfig,
        run_id: str,
        *,
        sleep: Sleep | None = None,
        channel: OpenChannel | None = None,
    ) -> None:
        """`run_id` marks this service's sandboxes (metadata `run`). `sleep` waits between the
        attempts of a refused call; `channel` opens a sandbox's command channel for exec (both
        default to the real thing; unit tests pass doubles)."""
        self.config = config
        self.run_id = run_id
        self.control = ControlPlane(config) if sleep is None else ControlPlane(config, sleep=sleep)
        self._open_channel = channel or self._connect_channel
        self._ids: dict[str, str] = {}  # machine key -> sandbox id (a cache; never the truth)

    # -- finding a machine's sandbox ------------------------------------------------------
    def metadata(self, key: str) -> dict[str, str]:
        """What a machine's sandbox carries."""
        return {**HANGAR_MARK, RUN_LABEL: self.run_id, MACHINE_LABEL: key}

    async def _sandboxes_of(self, key: str) -> list[SandboxInfo]:
        found = await self.control.find(
            {**HANGAR_MARK, MACHINE_LABEL: key}, f"look up the sandbox of machine {key}"
        )
        if found:
            self._ids[key] = _preferred(found).sandbox_id
        else:
            self._ids.pop(key, None)
        return found

    async def _sandbox(self, key: str) -> SandboxInfo:
        found = await self._sandboxes_of(key)
        if not found:
            raise NotFoundError(
                f"E2B has no sandbox of machine {key}: it expired (its HANGAR_E2B_TIMEOUT_S "
                "lifetime ran out without a keep-alive) or was killed elsewhere"
            )
        return _preferred(found)

    async def _sandbox_id(self, key: str) -> str:
        cached = self._ids.get(key)
        return cached if cached is not None else (await self._sandbox(key)).sandbox_id

    def _endpoint(self, sandbox_id: str, domain: str | None) -> str:
        connection = self.control.connection()
        return f"https://{connection.get_host(sandbox_id, domain or connection.domain, GUEST_PORT)}"

    def _runtime(self, key: str, info: SandboxInfo) -> Runtime:
        running = info.state == SandboxState.RUNNING
        endpoint = self._endpoint(info.sandbox_id, info.sandbox_domain) if running else None
        return Runtime(key=key, running=running, endpoint=endpoint)

    # -- images and lifecycle -------------------------------------------------------------
    async def images(self) -> Sequence[str]:
        """The one template sandboxes are created from (HANGAR_E2B_TEMPLATE)."""
        return (self.config.template,)

    async def create(self, spec: MachineSpec) -> None:
        if spec.image != self.config.template:
            raise ProviderError(
                f"the e2b provider creates sandboxes from template {self.config.template!r} "
                f"(HANGAR_E2B_TEMPLATE) only, not {spec.image!r}"
            )
        sandbox = await self.control.create(
            spec.image, self.metadata(spec.key), f"create a sandbox for machine {spec.name}"
        )
        sandbox_id = sandbox.sandbox_id
        self._ids[spec.key] = sandbox_id
        try:
            await self.control.pause(sandbox_id, f"pause new sandbox {sandbox_id}")
        except BaseException:
            self._ids.pop(spec.key, None)
            try:  # create leaves nothing behind
                await self.control.kill(sandbox_id, f"kill sandbox {sandbox_id} after a failure")
            except ProviderError as exc:
                raise ProviderError(
                    f"E2B sandbox {sandbox_id} of machine {spec.name} could not be paused nor "
                    f"killed ({exc}); it expires within {self.config.timeout_s}s"
                ) from exc
            raise

    async def start(self, key: str) -> Runtime:
        sandbox_id = await self._sandbox_id(key)
        sandbox = await self._forgetting_gone(
            key, self.control.resume(sandbox_id, f"resume sandbox {sandbox_id} of machine {key}")
        )
        return Runtime(key=key, running=True, endpoint=f"https://{sandbox.get_host(GUEST_PORT)}")

    async def stop(self, key: str) -> None:
        info = await self._sandbox(key)
        if info.state == SandboxState.PAUSED:
            return
        await self._forgetting_gone(
            key, self.control.pause(info.sandbox_id, f"pause sandbox {info.sandbox_id}")
        )

    async def delete(self, key: str) -> None:
        """Kill every sandbox of the machine; one that is already gone is success."""
        for info in await self._sandboxes_of(key):
            await self.control.kill(info.sandbox_id, f"kill sandbox {info.sandbox_id}")
        self._ids.pop(key, None)

    async def _forgetting_gone(self, key: str, call: Awaitable[T]) -> T:
        try:
            return await call
        except NotFoundError:
            self._ids.pop(key, None)
            raise

    # -- observation ----------------------------------------------------------------------
    async def runtime(self, key: str) -> Runtime | None:
        found = await self._sandboxes_of(key)
        return self._runtime(key, _preferred(found)) if found else None

    async def inventory(self) -> Sequence[Runtime]:
        """This run's sandboxes (metadata `run`), one Runtime per machine key."""
        found = await self.control.find(
            {**HANGAR_MARK, RUN_LABEL: self.run_id}, f"list the sandboxes of run {self.run_id}"
        )
        by_key: dict[str, list[SandboxInfo]] = {}
        for info in found:
            key = info.metadata.get(MACHINE_LABEL)
            if key:
                by_key.setdefault(key, []).append(info)
        return [self._runtime(key, _preferred(infos)) for key, infos in by_key.items()]

    async def placement(self, key: str) -> Mapping[str, str]:
        """The optional `Placement` addition: the machine's sandbox id and template."""
        info = await self._sandbox(key)
        return {"sandbox": info.sandbox_id, "template": info.name or info.template_id}

    async def keep_alive(self, keys: Sequence[str]) -> None:
        """The optional `KeepAlive` addition: the running sandboxes of these machines expire
        `timeout_s` from now. A machine without a running sandbox is skipped (the observer's
        reconcile reports it); every sandbox is tried, then the failures are raised together."""
        wanted = set(keys)
        if not wanted:
            return
        found = await self.control.find(
            {**HANGAR_MARK, RUN_LABEL: self.run_id}, f"list the sandboxes of run {self.run_id}"
        )
        failures: list[str] = []
        for info in found:
            if info.metadata.get(MACHINE_LABEL) not in wanted:
                continue
            if info.state != SandboxState.RUNNING:
                continue
            try:
                await self.control.set_timeout(
                    info.sandbox_id, f"extend the lifetime of sandbox {info.sandbox_id}"
                )
            except NotFoundError:
                continue  # expired meanwhile: the observer marks its machine
            except ProviderError as exc:
                failures.append(str(exc))
        if failures:
            raise ProviderError("; ".join(failures))

    # -- exec -----------------------------------------------------------------------------
    async def exec(self, key: str, command: str, timeout: float = 30.0) -> ExecResult:  # noqa: ASYNC109 (the protocol names it)
        info = await self._sandbox(key)
        if info.state != SandboxState.RUNNING:
            raise ProviderError(
                f"machine {key} is stopped (its E2B sandbox {info.sandbox_id} is paused); "
                "start it to run commands"
            )
        channel = await self._open_channel(info.sandbox_id)
        return await run_command(
            channel,
            command,
            timeout=timeout,
            request_timeout=self.config.request_timeout_s,
            grace=self.config.exec_grace_s,
        )

    async def _connect_channel(self, sandbox_id: str) -> CommandChannel:
        """The real command channel: connect to the sandbox (which also extends its lifetime)."""
        sandbox = await self.control.resume(sandbox_id, f"connect to sandbox {sandbox_id}")
        return sandbox.commands

    # -- what E2B sandboxes do not offer ----------------------------------------------------
    def _unsupported(self, what: str) -> UnsupportedError:
        return UnsupportedError(f"the e2b provider has no {what}: E2B sandboxes do not offer it")

    async def create_disk(self, key: str, disk_key: str, size_mb: int) -> None:
        raise self._unsupported("disks")

    async def attach_disk(self, key: str, disk_key: str) -> None:
        raise self._unsupported("disks")

    async def detach_disk(self, key: str, disk_key: str) -> None:
        raise self._unsupported("disks")

    async def delete_disk(self, key: str, disk_key: str) -> None:
        raise self._unsupported("disks")

    async def create_snapshot(self, key: str, name: str) -> None:
        raise self._unsupported("snapshots")

    async def rollback_snapshot(self, key: str, name: str) -> None:
        raise self._unsupported("snapshots")

    async def delete_snapshot(self, key: str, name: str) -> None:
        raise self._unsupported("snapshots")

    async def clone(self, source_key: str, spec: MachineSpec) -> None:
        raise self._unsupported("clone")

    async def console(self, key: str, lines: int = 100) -> str:
        raise self._unsupported("console")

    async def close(self) -> None:
        """Nothing to release: every call opens what it needs, and sandboxes keep running."""


def _preferred(found: Sequence[SandboxInfo]) -> SandboxInfo:
    """The sandbox that stands for a machine when several carry its key (a create retried by
    hand): a running one, else the newest."""
    return max(found, key=lambda info: (info.state == SandboxState.RUNNING, info.started_at))
