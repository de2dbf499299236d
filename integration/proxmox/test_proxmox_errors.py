"""What a real Proxmox VE refuses, and that nothing is left of it (see conftest.py): a guest that
does not exist, a template VM or an OS template that does not exist, memory below what Proxmox
allows, and memory the node cannot give."""

from __future__ import annotations

import pytest

from hangar.providers.base import NotFoundError, ProviderError
from hangar.providers.proxmox.guests import GuestKind, parse_image
from hangar.providers.proxmox.provider import ProxmoxProvider

from .conftest import Guests, image_for, new_key, resources

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(900)]

# Above any node's RAM and swap (4 TiB), within what Proxmox's config accepts.
MORE_THAN_A_NODE_HAS_MB = 4 * 1024 * 1024
BELOW_THE_MINIMUM_MB = 8  # Proxmox's minimum is 16 MiB, for VMs and containers alike
NO_SUCH_OS_TEMPLATE = "hangar-no-such-template_1.0_amd64.tar.zst"


async def test_a_guest_that_does_not_exist_cannot_be_started(guests: Guests) -> None:
    provider = guests.provider
    key = new_key()
    with pytest.raises(NotFoundError, match=f"no guest tagged as machine '{key}'"):
        await provider.start(key)
    with pytest.raises(NotFoundError):
        await provider.stop(key)
    assert await provider.runtime(key) is None
    await provider.delete(key)  # nothing to delete: success


async def free_vmid(provider: ProxmoxProvider) -> int:
    """A VMID that no guest has, far above where people put theirs."""
    taken = {int(item["vmid"]) for item in await resources(provider)}
    return next(vmid for vmid in range(999_999_000, 1_000_000_000) if vmid not in taken)


async def test_a_template_vm_that_does_not_exist_is_refused_and_leaves_nothing(
    guests: Guests,
) -> None:
    missing = await free_vmid(guests.provider)
    with pytest.raises(ProviderError, match=str(missing)):
        await guests.create(f"pve-vm:{missing}", "it-no-template")
    assert await guests.traces(guests.made[-1]) == []


async def test_an_os_template_that_does_not_exist_is_refused_and_leaves_nothing(
    guests: Guests, ct_image: str
) -> None:
    storage = parse_image(ct_image).source.split(":", 1)[0]
    with pytest.raises(ProviderError, match=NO_SUCH_OS_TEMPLATE):
        await guests.create(f"pve-ct:{storage}:vztmpl/{NO_SUCH_OS_TEMPLATE}", "it-no-ostemplate")
    assert await guests.traces(guests.made[-1]) == []


@pytest.mark.parametrize("kind", [GuestKind.LXC, GuestKind.QEMU], ids=["lxc", "qemu"])
async def test_memory_below_the_minimum_is_refused_and_leaves_nothing(
    guests: Guests, kind: GuestKind
) -> None:
    image = image_for(kind)
    with pytest.raises(ProviderError, match="memory") as raised:
        await guests.create(image, "it-too-little", memory_mb=BELOW_THE_MINIMUM_MB)
    if kind is GuestKind.QEMU:  # the clone was made before its memory was set: it went again
        assert "was removed" in str(raised.value)
    assert await guests.traces(guests.made[-1]) == []


async def test_memory_the_node_cannot_give_is_refused_and_nothing_runs(
    guests: Guests, vm_image: str
) -> None:
    """Proxmox refuses it when it is set or, at the latest, when the VM starts."""
    provider = guests.provider
    refused = None
    try:
        key = await guests.create(vm_image, "it-too-much", memory_mb=MORE_THAN_A_NODE_HAS_MB)
    except ProviderError as exc:  # refused when set: the half-made clone went again
        refused = str(exc)
    if refused is not None:
        assert "memory" in refused
        assert await guests.traces(guests.made[-1]) == []
        return
    with pytest.raises(ProviderError, match="not running; exec needs a running guest"):
        await provider.exec(key, "true")
    with pytest.raises(ProviderError):
        await provider.start(key)
    runtime = await provider.runtime(key)
    assert runtime is not None
    assert not runtime.running
    assert await guests.state(key) == "stopped"
    await provider.delete(key)
    assert await guests.traces(key) == []
