"""The proxmox provider against a real Proxmox VE: only with `HANGAR_TEST_PROXMOX_URL`,
`…_TOKEN_ID`, `…_TOKEN_SECRET` and `…_NODE` (see settings.py), otherwise every test here is
skipped naming them —
also under CI, like the other credential-gated tests. The VM tests also need `…_VM_TEMPLATE`, the
container tests `…_CT_TEMPLATE`; a test whose kind lacks its variable is skipped naming it.

Cleanup. Every guest carries this run's id (`testkit.runs.RUN_ID`, or `<RUN_ID>-<label>` for a
test that plays another run): the tag `run-<id>` and, from the request that makes it on, the line
`hangar-run: <id>` in its description (a clone cannot set tags, so a clone whose process died
before tagging it is found by that line). Each test deletes what it made (a finalizer, even when it
fails); the session ends by sweeping this run's guests and checking, through the API, that none is
left; shortly before the tier's watchdog ends a hung run, a timer sweeps them too; and the session
starts by sweeping the guests of test runs made more than `STALE_AFTER` ago. Only age can tell a
dead run's guests from a live one's: the Proxmox VE is shared by machines whose processes this
one cannot see. The age is the `hangar-created:` line of the descriptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import secrets
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio

from hangar.providers.base import MachineSpec, ProviderError
from hangar.providers.proxmox.client import Deadline, ProxmoxApiError
from hangar.providers.proxmox.config import ProxmoxConfig
from hangar.providers.proxmox.guests import (
    KEY_TAG_PREFIX,
    RUN_TAG_PREFIX,
    GuestKind,
    marked_created,
    marked_key,
    parse_image,
    parse_tags,
)
from hangar.providers.proxmox.provider import ProxmoxProvider, SweepReport
from testkit.qemu import Watchdog
from testkit.runs import RUN_ID

from . import settings

STALE_AFTER = timedelta(hours=2)  # longer than a run of this tier takes (CI allows 90 min)
# testkit's run ids (`<pid>-<6 hex>`), and those of a test playing another run (`…-<label>`):
# a test run's guest, never a service's.
TEST_RUN = re.compile(r"\d+-[0-9a-f]{6}(?:-[a-z0-9]+)*")
LAST_SWEEP_BEFORE_S = 120.0  # before the tier's watchdog ends a hung run
LOOK_S = 60.0  # one look at the API
VM_MEMORY_MB = 1024
CT_MEMORY_MB = 512
IMPORTED_AT = time.monotonic()  # at collection: no earlier than the watchdog's start


def of_this_run(run: str) -> bool:
    """This run's id, or one derived from it (`<RUN_ID>-<label>`)."""
    return run == RUN_ID or run.startswith(f"{RUN_ID}-")


def look(what: str) -> Deadline:
    return Deadline.after(LOOK_S, what)


def new_key() -> str:
    """A machine key for a test's guest (it becomes the tag `key-<key>`)."""
    return f"it{secrets.token_hex(6)}"


# ------------------------------------------------------------------ the API, as a test reads it
async def resources(provider: ProxmoxProvider) -> list[dict[str, Any]]:
    """Every guest the token can see (`cluster/resources?type=vm`)."""
    return await provider.client.get_list(
        "cluster/resources", {"type": "vm"}, deadline=look("listing guests")
    )


async def config_of(provider: ProxmoxProvider, path: str) -> dict[str, Any] | None:
    """The config at a guest's API path (`nodes/N/qemu/V`); None when it has none."""
    try:
        return await provider.client.get_object(f"{path}/config", deadline=look(f"reading {path}"))
    except ProxmoxApiError as exc:
        if exc.status == 500 and "does not exist" in exc.message:
            return None
        raise


def runs_tagged(item: dict[str, Any]) -> set[str]:
    """The run ids of a guest's `run-` tags."""
    return {
        tag.removeprefix(RUN_TAG_PREFIX)
        for tag in parse_tags(item.get("tags"))
        if tag.startswith(RUN_TAG_PREFIX)
    }


def describe(item: dict[str, Any]) -> str:
    return (
        f"{item.get('type')} {item.get('vmid')} ({item.get('name', '')}, tags {item.get('tags')})"
    )


# ------------------------------------------------------------------ sweeps
async def sweep_stale(config: ProxmoxConfig) -> tuple[SweepReport, list[str]]:
    """Delete the guests of test runs (not this one) whose oldest guest was made more than
    `STALE_AFTER` ago. Returns the report, and the runs left alone because no guest of theirs
    says when it was made."""
    provider = ProxmoxProvider(config, RUN_ID)
    try:
        oldest: dict[str, datetime | None] = {}
        test_runs = await provider.leftovers(
            lambda run: TEST_RUN.fullmatch(run) is not None and not of_this_run(run)
        )
        for guest in test_runs:
            run = guest.run or ""
            made = marked_created(
                ((await config_of(provider, guest.path)) or {}).get("description")
            )
            known = oldest.get(run)
            oldest[run] = made if known is None or (made is not None and made < known) else known
        limit = datetime.now(UTC) - STALE_AFTER
        stale = {run for run, made in oldest.items() if made is not None and made < limit}
        ageless = sorted(run for run, made in oldest.items() if made is None)
        report = await provider.sweep(lambda run: run in stale) if stale else SweepReport()
        return report, ageless
    finally:
        await provider.close()


async def sweep_this_run(config: ProxmoxConfig) -> SweepReport:
    provider = ProxmoxProvider(config, RUN_ID)
    try:
        return await provider.sweep(of_this_run)
    finally:
        await provider.close()


async def traces_of_this_run(config: ProxmoxConfig) -> tuple[list[str], list[str]]:
    """What the API still shows of this run: (guests tagged with one of its run ids anywhere in
    the cluster, guests in the range whose description names one of them)."""
    provider = ProxmoxProvider(config, RUN_ID)
    try:
        tagged = [
            describe(item)
            for item in await resources(provider)
            if any(of_this_run(run) for run in runs_tagged(item))
        ]
        described = [str(guest) for guest in await provider.leftovers(of_this_run)]
        return tagged, described
    finally:
        await provider.close()


async def outside_the_range(config: ProxmoxConfig) -> list[str]:
    """Guests of this run whose VMID is not in the configured range (there must be none)."""
    provider = ProxmoxProvider(config, RUN_ID)
    try:
        return [
            describe(item)
            for item in await resources(provider)
            if any(of_this_run(run) for run in runs_tagged(item))
            and int(item["vmid"]) not in config.vmids
        ]
    finally:
        await provider.close()


def report_lines(what: str, report: SweepReport) -> str:
    removed = [f"{guest} of run {guest.run}" for guest in report.removed]
    failed = [f"{guest} of run {guest.run}: {reason}" for guest, reason in report.failed]
    return f"proxmox: {what}: removed {removed}" + (
        f", could not remove {failed}" if failed else ""
    )


def last_chance(config: ProxmoxConfig, watchdog: Watchdog) -> threading.Timer | None:
    """A timer that sweeps this run's guests shortly before the tier's watchdog ends the run
    (the watchdog exits at once: no finalizer of ours would run)."""
    fire_in = IMPORTED_AT + watchdog.seconds - LAST_SWEEP_BEFORE_S - time.monotonic()
    if fire_in <= 0:
        return None
    quick = dataclasses.replace(config, task_timeout=LAST_SWEEP_BEFORE_S / 2)

    def sweep() -> None:
        try:
            report = asyncio.run(sweep_this_run(quick))
        except Exception as exc:  # a thread of its own: say it, the watchdog ends the run
            sys.stderr.write(f"\nproxmox: the sweep before the watchdog failed: {exc}\n")
        else:
            sys.stderr.write("\n" + report_lines("before the watchdog ends the run", report) + "\n")

    timer = threading.Timer(fire_in, sweep)
    timer.daemon = True
    timer.start()
    return timer


# ------------------------------------------------------------------ fixtures
def skip_reason(missing: list[str]) -> str:
    return (
        f"set {', '.join(settings.REQUIRED)} (and {settings.VM_TEMPLATE} and/or "
        f"{settings.CT_TEMPLATE}) to run the Proxmox tests on a real Proxmox VE "
        f"(missing: {', '.join(missing)})"
    )


@pytest.fixture(scope="session")
def pve_config(watchdog: Watchdog) -> Iterator[ProxmoxConfig]:
    """The test Proxmox VE's config. Sweeps stale test runs first; at the end sweeps this run's
    guests and checks, through the API, that none is left and none was outside the range."""
    missing = settings.missing()
    if missing:
        pytest.skip(skip_reason(missing))
    try:
        config = settings.config()
    except settings.SettingError as exc:
        pytest.fail(str(exc), pytrace=False)
    stale, ageless = asyncio.run(sweep_stale(config))
    if stale.removed or stale.failed:
        sys.stderr.write("\n" + report_lines("swept stale test runs", stale) + "\n")
    if ageless:
        sys.stderr.write(f"\nproxmox: left alone (no hangar-created: line) runs {ageless}\n")
    timer = last_chance(config, watchdog)
    try:
        yield config
    finally:
        if timer is not None:
            timer.cancel()
        outside = asyncio.run(outside_the_range(config))
        report = asyncio.run(sweep_this_run(config))
        tagged, described = asyncio.run(traces_of_this_run(config))
        assert not outside, f"guests of run {RUN_ID} outside {config.vmid_range_text}: {outside}"
        assert not report.failed, report_lines(f"sweeping run {RUN_ID}", report)
        assert not tagged, f"guests tagged with run {RUN_ID} outlived the session: {tagged}"
        assert not described, f"guests described as run {RUN_ID}'s outlived it: {described}"


def image_for(kind: GuestKind) -> str:
    """The image of `kind` from its variable; skips the test naming it when it is not set."""
    if kind is GuestKind.QEMU:
        vmid = settings.value(settings.VM_TEMPLATE)
        if not vmid:
            pytest.skip(
                f"set {settings.VM_TEMPLATE} (the VMID of a template VM with the QEMU guest "
                "agent) to run the Proxmox VM tests"
            )
        image = f"pve-vm:{vmid}"
    else:
        volid = settings.value(settings.CT_TEMPLATE)
        if not volid:
            pytest.skip(
                f"set {settings.CT_TEMPLATE} (an OS template's volume id, e.g. "
                "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst) to run the Proxmox "
                "container tests"
            )
        image = f"pve-ct:{volid}"
    try:
        parse_image(image)
    except ProviderError:
        variable = settings.VM_TEMPLATE if kind is GuestKind.QEMU else settings.CT_TEMPLATE
        pytest.fail(f"{variable} is malformed: {image!r} is no image", pytrace=False)
    return image


@pytest.fixture(scope="session")
def vm_image(pve_config: ProxmoxConfig) -> str:
    return image_for(GuestKind.QEMU)


@pytest.fixture(scope="session")
def ct_image(pve_config: ProxmoxConfig) -> str:
    return image_for(GuestKind.LXC)


@dataclass
class Guests:
    """The provider as this run (or one derived from it), and the machines a test made through it
    (deleted after the test, pass or fail)."""

    provider: ProxmoxProvider
    made: list[str] = field(default_factory=list)

    @property
    def config(self) -> ProxmoxConfig:
        return self.provider.config

    async def create(self, image: str, name: str, memory_mb: int | None = None) -> str:
        """A new machine (stopped, as the protocol creates them); returns its key."""
        key = new_key()
        self.made.append(key)
        kind = parse_image(image).kind
        memory = memory_mb or (VM_MEMORY_MB if kind is GuestKind.QEMU else CT_MEMORY_MB)
        await self.provider.create(MachineSpec(key, name, image, cpus=1, memory_mb=memory))
        return key

    async def clone(self, source: str, name: str) -> str:
        """A full clone of machine `source` (stopped); returns its key."""
        key = new_key()
        self.made.append(key)
        kind = (await self.provider.placement(source))["kind"]
        memory = VM_MEMORY_MB if kind == GuestKind.QEMU.value else CT_MEMORY_MB
        spec = MachineSpec(key, name, "(a clone)", cpus=1, memory_mb=memory)
        await self.provider.clone(source, spec)
        return key

    async def path(self, key: str) -> str:
        placement = await self.provider.placement(key)
        return f"nodes/{placement['node']}/{placement['kind']}/{placement['vmid']}"

    async def guest_config(self, key: str) -> dict[str, Any]:
        found = await config_of(self.provider, await self.path(key))
        assert found is not None, f"machine {key} has no config"
        return found

    async def state(self, key: str) -> str:
        """The guest's `status/current` status, as Proxmox reports it."""
        current = await self.provider.client.get_object(
            f"{await self.path(key)}/status/current", deadline=look(f"the status of {key}")
        )
        return str(current.get("status"))

    async def tagged(self, key: str) -> list[dict[str, Any]]:
        """The guests anywhere in the cluster tagged as machine `key`."""
        return [
            item
            for item in await resources(self.provider)
            if f"{KEY_TAG_PREFIX}{key}" in parse_tags(item.get("tags"))
        ]

    async def traces(self, key: str) -> list[str]:
        """What is left of machine `key`: guests tagged as it anywhere, guests in the range whose
        description names it (an untagged clone)."""
        found = [describe(item) for item in await self.tagged(key)]
        for item in await resources(self.provider):
            if int(item["vmid"]) not in self.config.vmids or item.get("template"):
                continue
            path = f"nodes/{item['node']}/{item['type']}/{item['vmid']}"
            if marked_key(((await config_of(self.provider, path)) or {}).get("description")) == key:
                found.append(describe(item))
        return found

    async def delete_all(self) -> None:
        """Delete every machine made; raise the first failure once all were tried."""
        failures: list[BaseException] = []
        for key in self.made:
            try:
                await self.provider.delete(key)
            except ProviderError as exc:
                failures.append(exc)
        if failures:
            raise failures[0]


@contextlib.asynccontextmanager
async def made_guests(config: ProxmoxConfig, run_id: str = RUN_ID) -> AsyncIterator[Guests]:
    """Machines made as run `run_id`, all deleted when the block ends."""
    made = Guests(ProxmoxProvider(config, run_id))
    try:
        yield made
    finally:
        try:
            await made.delete_all()
        finally:
            await made.provider.close()


@pytest_asyncio.fixture
async def guests(pve_config: ProxmoxConfig) -> AsyncIterator[Guests]:
    """Machines made as this run; every one is deleted after the test, pass or fail."""
    async with made_guests(pve_config) as made:
        yield made
