"""What the proxmox provider does when things go wrong, against fakepve (a fake Proxmox VE API)
with its fault injection: failed tasks, lock timeouts, lost answers, deadlines, a silent guest
agent, guests that are not its own, and requests the API schema does not allow."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import requests
from proxmoxer.backends.https import ProxmoxHttpSession

from hangar.providers.base import ProviderError
from hangar.providers.proxmox.client import (
    Deadline,
    ProxmoxApiError,
    ProxmoxError,
    TaskFailedError,
)
from hangar.providers.proxmox.provider import ProxmoxProvider

from .fakepve_support import (
    CT_IMAGE,
    OSTEMPLATE,
    RUN_ID,
    TEMPLATE_VMID,
    VM_IMAGE,
    FakePve,
    fake_provider,
    only_guest,
    requests_to,
    seed,
    spec,
    tags_of,
)

pytestmark = pytest.mark.asyncio

START = "/nodes/{node}/qemu/{vmid}/status/start"
LOCK_TIMEOUT = "can't lock file '/var/lock/qemu-server/lock-{vmid}.conf' - got timeout"


@pytest_asyncio.fixture
async def provider(fakepve: FakePve, fakepve_cafile: str) -> AsyncIterator[ProxmoxProvider]:
    async with fake_provider(seed(fakepve), fakepve_cafile) as made:
        yield made


async def created_vm(fakepve: FakePve, provider: ProxmoxProvider, key: str = "k1") -> Any:
    await provider.create(spec(key))
    return only_guest(fakepve)


def mutations_of(fakepve: FakePve, vmid: int) -> list[tuple[str, str]]:
    """Requests that could change guest `vmid`."""
    return [
        (method, path)
        for method, path, _body in fakepve.requests
        if method != "GET" and f"/{vmid}" in path
    ]


# ------------------------------------------------------------------ tasks and retries
async def test_a_failed_task_raises_with_its_log_and_is_not_sent_again(
    fakepve: FakePve, provider: ProxmoxProvider
) -> None:
    vm = await created_vm(fakepve, provider)
    vm.start_error = "kvm: -drive file=/dev/pve/vm-disk: Could not open: No such file"
    with pytest.raises(TaskFailedError) as raised:
        await provider.start("k1")
    message = str(raised.value)
    assert message.startswith(f"starting VM {vm.vmid} (web-1) failed on Proxmox: kvm: -drive")
    assert "task log:\n" in message
    assert "  TASK ERROR: kvm: -drive file=/dev/pve/vm-disk: Could not open" in message
    assert raised.value.upid.startswith("UPID:pve1:")
    assert requests_to(fakepve, "POST", f"/qemu/{vm.vmid}/status/start") == 1


async def test_a_lock_timeout_is_retried_until_it_passes(
    fakepve: FakePve, provider: ProxmoxProvider
) -> None:
    vm = await created_vm(fakepve, provider)
    fakepve.fail("POST", START, error="config_lock_timeout", times=2)
    assert (await provider.start("k1")).running
    assert vm.status == "running"
    assert requests_to(fakepve, "POST", f"/qemu/{vm.vmid}/status/start") == 3


async def test_a_lock_that_stays_is_given_up_after_the_attempts(
    fakepve: FakePve, provider: ProxmoxProvider
) -> None:
    vm = await created_vm(fakepve, provider)
    fakepve.fail("POST", START, error="config_lock_timeout")
    with pytest.raises(ProxmoxApiError) as raised:
        await provider.start("k1")
    assert raised.value.status == 500
    assert LOCK_TIMEOUT.format(vmid=vm.vmid) in str(raised.value)
    attempts = provider.config.attempts
    assert requests_to(fakepve, "POST", f"/qemu/{vm.vmid}/status/start") == attempts


async def test_other_passing_troubles_are_retried_and_refusals_are_not(
    fakepve: FakePve, provider: ProxmoxProvider
) -> None:
    vm = await created_vm(fakepve, provider)
    fakepve.fail("GET", "/cluster/resources", 502, "Bad Gateway", times=1)
    fakepve.fail("POST", START, 500, "got no worker upid - start worker failed", times=1)
    assert (await provider.start("k1")).running
    assert requests_to(fakepve, "POST", f"/qemu/{vm.vmid}/status/start") == 2

    fakepve.fail("POST", "/nodes/{node}/qemu/{vmid}/status/shutdown", 500, "VM is locked (backup)")
    with pytest.raises(ProxmoxApiError, match=r"\(500\): VM is locked \(backup\)"):
        await provider.stop("k1")
    assert requests_to(fakepve, "POST", f"/qemu/{vm.vmid}/status/shutdown") == 1


def lose_the_answer(
    monkeypatch: pytest.MonkeyPatch, method: str, suffix: str, *, delivered: bool
) -> list[str]:
    """The next `method` request to a URL ending in `suffix` gets no answer: the connection
    drops after the fake handled it (`delivered`) or before it reached the fake."""
    original = ProxmoxHttpSession.request
    lost: list[str] = []

    def request(self: Any, verb: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if verb == method and url.endswith(suffix) and not lost:
            lost.append(url)
            if delivered:
                original(self, verb, url, *args, **kwargs).close()
            raise requests.exceptions.ConnectionError(
                "('Connection aborted.', RemoteDisconnected('Remote end closed connection'))"
            )
        return original(self, verb, url, *args, **kwargs)

    monkeypatch.setattr(ProxmoxHttpSession, "request", request)
    return lost


@pytest.mark.parametrize(
    ("image", "suffix"),
    [(VM_IMAGE, f"/qemu/{TEMPLATE_VMID}/clone"), (CT_IMAGE, "/nodes/pve1/lxc")],
)
async def test_a_create_whose_answer_was_lost_after_it_succeeded_counts_as_done(
    fakepve: FakePve,
    provider: ProxmoxProvider,
    monkeypatch: pytest.MonkeyPatch,
    image: str,
    suffix: str,
) -> None:
    lost = lose_the_answer(monkeypatch, "POST", suffix, delivered=True)
    await provider.create(spec("k1", image))
    assert len(lost) == 1
    made = only_guest(fakepve)  # one guest: the create was not sent again
    assert requests_to(fakepve, "POST", suffix) == 1
    assert tags_of(fakepve, made.vmid) == {"hangar", f"run-{RUN_ID}", "key-k1"}
    assert await provider.placement("k1") == {
        "kind": "qemu" if image == VM_IMAGE else "lxc",
        "node": "pve1",
        "vmid": str(made.vmid),
    }


async def test_a_create_whose_request_never_arrived_is_sent_again(
    fakepve: FakePve, provider: ProxmoxProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    suffix = f"/qemu/{TEMPLATE_VMID}/clone"
    lost = lose_the_answer(monkeypatch, "POST", suffix, delivered=False)
    await provider.create(spec("k1"))
    assert len(lost) == 1
    assert requests_to(fakepve, "POST", suffix) == 1  # the one that arrived
    assert only_guest(fakepve).name == "web-1"


async def test_a_create_that_fails_half_way_removes_what_it_made(
    fakepve: FakePve, provider: ProxmoxProvider
) -> None:
    fakepve.fail("PUT", "/nodes/{node}/qemu/{vmid}/config", 500, "unable to write config")
    with pytest.raises(ProviderError) as raised:
        await provider.create(spec("k1"))
    assert "(500): unable to write config" in str(raised.value)
    assert raised.value.args[0].endswith(" was removed")
    assert [vm.vmid for vm in fakepve.vms] == [TEMPLATE_VMID]  # the clone is gone again
    assert await provider.inventory() == []


# ------------------------------------------------------------------ deadlines
@pytest.mark.fakepve(time_scale=0.01)  # 1 PVE second = 10 ms: the create takes 0.2 s
async def test_a_deadline_expiring_mid_task_leaves_nothing_behind(
    fakepve: FakePve, fakepve_cafile: str
) -> None:
    seed(fakepve).ct_secs["create"] = 20
    async with fake_provider(fakepve, fakepve_cafile, create_timeout=0.05) as provider:
        with pytest.raises(ProviderError) as raised:
            await provider.create(spec("c1", CT_IMAGE, name="ct-1"))
        message = str(raised.value)
        assert message.startswith("creating ct-1 did not finish within 0.05 s; task UPID:pve1:")
        assert "was still running; the half-made guest" in message
        assert message.endswith(" was removed")
        assert fakepve.cts == []
        assert await provider.inventory() == []
        [create] = [task for task in fakepve.tasklog if task["type"] == "vzcreate"]
        assert create["exitstatus"] == "OK"  # the task ended; then its guest was deleted
        assert requests_to(fakepve, "DELETE", f"/lxc/{create['id']}") == 1


async def test_the_guest_agent_not_running_is_a_bounded_wait_then_a_clear_error(
    fakepve: FakePve, provider: ProxmoxProvider
) -> None:
    vm = await created_vm(fakepve, provider)
    await provider.start("k1")
    assert vm.agent is None  # the fake's guest has no agent
    with pytest.raises(ProviderError) as raised:
        await provider.exec("k1", "true")
    assert str(raised.value) == (
        f"the QEMU guest agent of VM {vm.vmid} (web-1) did not answer within 0.05 s (QEMU guest "
        "agent is not running); install and start qemu-guest-agent in the guest and enable it "
        "in the VM's options (agent: 1)"
    )
    assert requests_to(fakepve, "POST", f"/qemu/{vm.vmid}/agent/ping") >= 2  # it waited
    assert requests_to(fakepve, "POST", f"/qemu/{vm.vmid}/agent/exec") == 0

    vm.agent, vm.agent_hangs = {}, True
    with pytest.raises(ProviderError, match="'guest-ping' failed - got timeout"):
        await provider.exec("k1", "true")


async def test_a_command_that_outlives_its_timeout_is_a_clear_error(
    fakepve: FakePve, provider: ProxmoxProvider
) -> None:
    vm = await created_vm(fakepve, provider)
    await provider.start("k1")
    vm.agent = {"exec": {"/bin/sh -c sleep 600": {"exited": False}}}
    with pytest.raises(ProviderError, match=r"still running after 0\.02 s; it was left running"):
        await provider.exec("k1", "sleep 600", timeout=0.02)
    await provider.stop("k1")
    with pytest.raises(ProviderError, match="is not running; exec needs a running guest"):
        await provider.exec("k1", "true")


async def test_a_guest_that_ignores_shutdown_and_reboot_is_stopped_hard(
    fakepve: FakePve, provider: ProxmoxProvider
) -> None:
    vm = await created_vm(fakepve, provider)
    await provider.start("k1")
    vm.acpi = False  # its OS ignores the ACPI button
    assert (await provider.restart("k1")).running  # the reboot failed: stop hard, start
    await provider.stop("k1")
    assert vm.status == "stopped"
    assert requests_to(fakepve, "POST", f"/qemu/{vm.vmid}/status/shutdown") == 2
    assert requests_to(fakepve, "POST", f"/qemu/{vm.vmid}/status/stop") == 2
    shutdowns = [task for task in fakepve.tasklog if task["type"] == "qmshutdown"]
    assert {task["exitstatus"] for task in shutdowns} == {"VM quit/powerdown failed - got timeout"}


# ------------------------------------------------------------------ whose guests
async def test_a_vmid_outside_the_range_is_refused(
    fakepve: FakePve, provider: ProxmoxProvider
) -> None:
    stray = fakepve.add_vm(500, "elsewhere", config={"tags": f"hangar;run-{RUN_ID};key-k9"})
    for action in (provider.start, provider.delete, provider.runtime, provider.stop):
        with pytest.raises(ProviderError) as raised:
            await action("k9")
        assert str(raised.value) == (
            "VM 500 (elsewhere) is outside HANGAR_PROXMOX_VMID_RANGE 9000-9099; the proxmox "
            "provider never acts on it"
        )
    assert await provider.inventory() == []
    assert (await provider.sweep(RUN_ID)).removed == []
    assert fakepve.guest(500) is stray
    assert mutations_of(fakepve, 500) == []


async def test_an_untagged_guest_is_never_touched(fakepve: FakePve, fakepve_cafile: str) -> None:
    seed(fakepve)
    persons = fakepve.add_vm(9000, "persons-vm", status="running")
    half = fakepve.add_vm(9001, "half-tagged", config={"tags": "key-k8"})
    async with fake_provider(fakepve, fakepve_cafile, vmids=range(9000, 9003)) as provider:
        await provider.create(spec("k1"))  # the one free VMID of the range
        assert await provider.placement("k1") == {"kind": "qemu", "node": "pve1", "vmid": "9002"}
        for action in (provider.start, provider.delete, provider.runtime):
            with pytest.raises(ProviderError, match=rf"lacks the tag\(s\) hangar, run-{RUN_ID}"):
                await action("k8")
        assert [r.key for r in await provider.inventory()] == ["k1"]
        swept = await provider.sweep(lambda run: True)  # every run's guests
        assert [guest.vmid for guest in swept.removed] == [9002]  # only the tagged one
        fakepve.add_vm(9002, "someone-else")
        with pytest.raises(ProviderError, match="no free VMID in HANGAR_PROXMOX_VMID_RANGE"):
            await provider.create(spec("k2"))
    assert (persons.status, fakepve.guest(9001)) == ("running", half)
    assert mutations_of(fakepve, 9000) == mutations_of(fakepve, 9001) == []


# ------------------------------------------------------------------ the fake itself
async def test_the_fake_refuses_parameters_the_api_schema_does_not_allow(
    fakepve: FakePve, provider: ProxmoxProvider
) -> None:
    params: dict[str, str | int] = {
        "vmid": 9050,
        "ostemplate": OSTEMPLATE,
        "colour": "blue",
        "cores": "many",
    }
    with pytest.raises(ProxmoxApiError) as raised:
        await provider.client.call(
            "POST", "nodes/pve1/lxc", params, deadline=Deadline.after(5, "a wrong create")
        )
    assert raised.value.status == 400
    assert raised.value.message == "Parameter verification failed."
    assert set(raised.value.errors) == {"colour", "cores"}
    assert "schema does not allow additional properties" in raised.value.errors["colour"]
    assert fakepve.cts == []
    assert requests_to(fakepve, "POST", "/nodes/pve1/lxc") == 1  # a 400 is not retried


async def test_a_node_that_cannot_tell_its_guests_state_makes_inventory_fail(
    fakepve: FakePve, provider: ProxmoxProvider
) -> None:
    await created_vm(fakepve, provider)
    fakepve.set_node_offline("pve1")
    with pytest.raises(ProxmoxError, match=r"node\(s\) pve1 do not report their guests' state"):
        await provider.inventory()
