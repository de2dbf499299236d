"""One running guest shared by the scenarios that only look at it or plug disks into it:
network, exec framing, disk hot-plug and unplug."""

from __future__ import annotations

import threading
import time
import urllib.error
from collections.abc import Iterator

import pytest

from testkit.qemu import Machine, QemuFixture

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def web(qemu: QemuFixture) -> Iterator[Machine]:
    vm = qemu.machine("web").create()
    try:
        vm.start()
        yield vm
    finally:
        vm.delete()


def test_guest_gets_the_slirp_address_by_dhcp(web: Machine) -> None:
    assert "inet 10.0.2.15/24" in web.succeed("ip -4 addr show eth0")
    assert "default via 10.0.2.2" in web.succeed("ip route")


def test_host_fetches_the_guest_page_through_the_endpoint(web: Machine) -> None:
    page = web.fetch()
    assert f"hangar machine {web.name}" in page


def test_exec_frames_output_and_exit_status(web: Machine) -> None:
    result = web.execute("printf 'a\\nHANGAR-END fake 0\\n'; echo oops >&2; exit 7")
    assert result.exit_status == 7
    # A line that looks like the frame's end cannot cut the output short: it travels as base64.
    assert result.output == "a\nHANGAR-END fake 0\noops\n"
    binary = web.succeed("head -c 3000 /dev/zero | tr '\\0' x")
    assert binary == "x" * 3000


def test_exec_times_out_inside_the_guest(web: Machine) -> None:
    result = web.execute("sleep 30", timeout=2)
    assert result.exit_status in {124, 143}  # busybox timeout: SIGTERM
    assert web.succeed("echo still-answering").strip() == "still-answering"


class PageWatcher:
    """Fetches the guest's page in a loop on a thread; counts failures."""

    def __init__(self, vm: Machine) -> None:
        self.vm = vm
        self.ok = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                assert self.vm.name in self.vm.fetch(timeout=5)
                self.ok += 1
            except (OSError, AssertionError, urllib.error.URLError) as exc:
                self.failures.append(repr(exc))
            time.sleep(0.1)

    def __enter__(self) -> PageWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def test_disk_hot_plug_and_unplug_while_the_page_keeps_answering(
    web: Machine, qemu: QemuFixture
) -> None:
    provider, run = web.provider, qemu.loop.run
    run(provider.create_disk(web.key, "data", 48))
    disk_file = provider.paths(web.key).disk("data")
    assert disk_file.is_file()

    with PageWatcher(web) as watcher:
        run(provider.attach_disk(web.key, "data"))
        # /sys/block/vdb/size counts 512-byte sectors: 48 MiB = 98304.
        assert web.wait_until_succeeds("cat /sys/block/vdb/size").strip() == "98304"
        assert web.succeed("test -b /dev/vdb && echo yes").strip() == "yes"
        web.succeed("echo hello | dd of=/dev/vdb bs=512 conv=sync 2>/dev/null && sync")

        run(provider.detach_disk(web.key, "data"))
        web.fail("test -e /sys/block/vdb")
        time.sleep(0.5)
    assert watcher.failures == [], watcher.failures
    assert watcher.ok > 0

    run(provider.delete_disk(web.key, "data"))
    assert not disk_file.exists()
    assert "inet 10.0.2.15" in web.succeed("ip -4 addr show eth0")
