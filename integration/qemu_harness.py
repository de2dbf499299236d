"""The QEMU test harness shared by the integration tier and the QEMU benchmarks: real QEMU
machines through the `qemu` provider, and nothing of theirs left behind.

`integration/conftest.py` and `bench/conftest.py` import its fixtures (`watchdog`, `run_dir`,
`tiny_image`, `qemu`, `run_id`, `accelerator`); a conftest may override `qemu_purpose`, the
words that name its tests in a skip, a failure or the watchdog's message.

What this module guarantees, whatever happens to the run:

- **Run id.** Every VM of this run carries `hangar-test-<run id>` in its key (so in its QEMU
  `-name hangar:<key>` tag and its directory), and all its files live in one temp dir named with
  the run id. The run id starts with the pid of this pytest process.
- **Sweeper.** At session start, QEMU processes and temp dirs that an earlier run left behind
  (their pytest process is gone) are killed and removed; concurrent runs are left alone.
- **Watchdog.** A timer thread ends a hung run: it kills this run's VMs, removes its temp dir
  and exits non-zero (`HANGAR_IT_WATCHDOG_S`, default 900 s). It is armed by the first use of
  `run_dir` (so of `qemu`); the integration tier arms it for the whole session.
- **Teardown.** Finalizers delete every machine; the session ends by checking that no QEMU
  process and no temp dir of this run remains.

Tools: `qemu-system-x86_64` and `qemu-img` are provisioned by `gates.provision.ensure`; the
`tiny` image is built (or found in the cache) once, in the repository's data dir, and shared.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import pytest

from hangar.images import tiny
from hangar.images.registry import Registry, default_data_dir
from hangar.providers.base import ExecResult, MachineSpec, Runtime
from hangar.providers.qemu import QemuProvider, accel, process

T = TypeVar("T")

TEST_PREFIX = "hangar-test-"
RUN_ID = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
RUN_TAG = f"{TEST_PREFIX}{RUN_ID}"
# What a run id looks like (`<pid>-<6 hex>`, maybe followed by `-…` in a dir's name): a name
# that only starts with the prefix is not a run's and is never swept.
OWNER = re.compile(r"\d+-[0-9a-f]{6}(-|$)")
RUN_DIR = Path(tempfile.gettempdir()) / RUN_TAG
# Where runs put tagged dirs: the temp dir, and /tmp, where the e2e tier's QEMU flow puts its
# data dirs (`hangar-test-<run id>-q…`: QEMU's socket paths must stay short).
TEMP_ROOTS = tuple(dict.fromkeys((Path(tempfile.gettempdir()), Path("/tmp"))))
QEMU_TOOLS = ("qemu-system-x86_64", "qemu-img")
WATCHDOG_S = float(os.environ.get("HANGAR_IT_WATCHDOG_S", "900"))
BOOT_TIMEOUT_S = float(os.environ.get("HANGAR_IT_BOOT_TIMEOUT_S", "120"))


# ------------------------------------------------------------------ run ownership, sweeping
def _owner_alive(run_id: str) -> bool:
    """Whether the pytest process that owns `run_id` (its leading pid) still runs."""
    pid_text = run_id.split("-", 1)[0]
    if not pid_text.isdigit():
        return False
    argv = process.read_cmdline(int(pid_text))
    return argv is not None and any("pytest" in part or "python" in part for part in argv)


def _run_id_of(key: str) -> str | None:
    """`hangar-test-123-abcdef-web` -> `123-abcdef`."""
    if not key.startswith(TEST_PREFIX):
        return None
    parts = key[len(TEST_PREFIX) :].split("-")
    return "-".join(parts[:2]) if len(parts) >= 2 else None


def _owner_of(qemu: process.QemuProcess, roots: tuple[Path, ...] = TEMP_ROOTS) -> str | None:
    """The run id of a QEMU: from its key, else from its pidfile under a run's tagged dir
    (machines created through the API, here or in the e2e tier, are keyed by the service's ids).
    For a dir named beyond the run id (`<run id>-q…`) it is the whole rest of the name,
    whose leading pid is what `_owner_alive` checks."""
    owner = _run_id_of(qemu.key)
    if owner is None and qemu.pidfile is not None:
        for parent in qemu.pidfile.parents:
            if parent.parent in roots and parent.name.startswith(TEST_PREFIX):
                return parent.name[len(TEST_PREFIX) :]
    return owner


def _kill_now(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _kill_run(run_id: str) -> list[int]:
    """SIGKILL every QEMU tagged with `run_id`; returns their pids."""
    killed = [qemu.pid for qemu in process.scan() if _owner_of(qemu) == run_id]
    for pid in killed:
        _kill_now(pid)
    return killed


def sweep(roots: tuple[Path, ...] = TEMP_ROOTS) -> list[str]:
    """Remove what earlier, killed runs left behind in `roots` (QEMU processes and tagged dirs,
    of this tier, the QEMU benchmarks or the e2e tier's QEMU flow); returns what went."""
    removed: list[str] = []
    for qemu in process.scan():
        owner = _owner_of(qemu, roots)
        if owner is not None and owner != RUN_ID and not _owner_alive(owner):
            _kill_now(qemu.pid)
            removed.append(f"QEMU pid {qemu.pid} ({qemu.key})")
    for root in roots:
        for stale in root.glob(f"{TEST_PREFIX}*"):
            owner = stale.name[len(TEST_PREFIX) :]
            if OWNER.match(owner) and owner != RUN_ID and not _owner_alive(owner):
                shutil.rmtree(stale, ignore_errors=True)
                removed.append(str(stale))
    return removed


# ------------------------------------------------------------------ the event loop thread
class LoopThread:
    """One event loop for the whole session, in a thread: tests stay plain functions, VMs can
    boot concurrently, and the provider's per-machine locks live on a single loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="qemu-it-loop", daemon=True
        )
        self.thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 300.0) -> T:
        return self.submit(coro).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


# ------------------------------------------------------------------ the test vocabulary
class Machine:
    """A VM under test, in the NixOS test driver's words: start, succeed, fail, wait_until_..."""

    def __init__(self, qemu: QemuFixture, suffix: str, memory_mb: int = 256) -> None:
        self.qemu = qemu
        self.key = f"{RUN_TAG}-{suffix}"
        self.name = f"{suffix}-{RUN_ID}"
        self.spec = MachineSpec(self.key, self.name, "tiny", 1, memory_mb, {"run": RUN_ID})

    @property
    def provider(self) -> QemuProvider:
        return self.qemu.provider

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float = 300.0) -> T:
        return self.qemu.loop.run(coro, timeout)

    def create(self) -> Machine:
        self._run(self.provider.create(self.spec))
        self.qemu.created.append(self.key)
        return self

    def start(self) -> Runtime:
        return self._run(self.provider.start(self.key))

    def stop(self) -> None:
        self._run(self.provider.stop(self.key))

    def delete(self) -> None:
        self._run(self.provider.delete(self.key))

    def runtime(self) -> Runtime | None:
        return self._run(self.provider.runtime(self.key))

    def execute(self, command: str, timeout: float = 30.0) -> ExecResult:
        return self._run(self.provider.exec(self.key, command, timeout))

    def succeed(self, command: str, timeout: float = 30.0) -> str:
        result = self.execute(command, timeout)
        if result.exit_status != 0:
            raise AssertionError(
                f"{self.name}: `{command}` exited {result.exit_status}:\n{result.output}"
            )
        return result.output

    def fail(self, command: str, timeout: float = 30.0) -> str:
        result = self.execute(command, timeout)
        if result.exit_status == 0:
            raise AssertionError(
                f"{self.name}: `{command}` unexpectedly succeeded:\n{result.output}"
            )
        return result.output

    def wait_until_succeeds(self, command: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            result = self.execute(command, 10)
            if result.exit_status == 0:
                return result.output
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: `{command}` never succeeded:\n{result.output}")
            time.sleep(0.5)

    def fetch(self, path: str = "/", timeout: float = 10.0) -> str:
        """GET the guest's web page through the provider's endpoint (host side)."""
        runtime = self.runtime()
        assert runtime is not None, f"{self.name} is unknown to the provider"
        assert runtime.endpoint, f"{self.name} has no endpoint"
        with urllib.request.urlopen(runtime.endpoint + path, timeout=timeout) as answer:  # noqa: S310 -- our own http://127.0.0.1 endpoint
            body: str = answer.read().decode()
            return body

    @property
    def directory(self) -> Path:
        return self.provider.paths(self.key).directory


class QemuFixture:
    """The provider of this run, its loop, and every machine created through it."""

    def __init__(self, provider: QemuProvider, loop: LoopThread) -> None:
        self.provider = provider
        self.loop = loop
        self.created: list[str] = []

    def machine(self, suffix: str, memory_mb: int = 256) -> Machine:
        return Machine(self, suffix, memory_mb)

    def delete_all(self) -> None:
        """Delete every machine the provider knows (finalizers call it; errors are collected)."""
        errors: list[str] = []
        known = [r.key for r in self.loop.run(self.provider.inventory(), 60)]
        for key in dict.fromkeys([*self.created, *known]):
            try:
                self.loop.run(self.provider.delete(key), 60)
            except Exception as exc:
                errors.append(f"{key}: {exc}")
        if errors:
            raise AssertionError("teardown could not delete: " + "; ".join(errors))


# ------------------------------------------------------------------ watchdog
class Watchdog:
    """Ends a hung run: kills this run's VMs, removes its dir, exits with status 70."""

    def __init__(
        self,
        seconds: float,
        run_dir: Path,
        config: pytest.Config | None = None,
        purpose: str = "QEMU tests",
    ) -> None:
        self.seconds = seconds
        self.run_dir = run_dir
        self.config = config
        self.purpose = purpose
        self.timer = threading.Timer(seconds, self._fire)
        self.timer.daemon = True

    def _fire(self) -> None:
        killed = _kill_run(RUN_ID)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        capture = self.config.pluginmanager.getplugin("capturemanager") if self.config else None
        if capture is not None:
            capture.suspend_global_capture(in_=False)  # else the message dies with the process
        sys.stderr.write(
            f"\nWATCHDOG: run {RUN_ID} of the {self.purpose} exceeded {self.seconds:.0f}s "
            f"(HANGAR_IT_WATCHDOG_S); killed QEMU {killed}, removed {self.run_dir}\n"
        )
        sys.stderr.flush()
        os._exit(70)

    def start(self) -> None:
        self.timer.start()

    def cancel(self) -> None:
        self.timer.cancel()


# ------------------------------------------------------------------ fixtures
def require_qemu_tools(purpose: str = "QEMU tests") -> None:
    """Return when QEMU's tools are there (provisioning them if it can); else skip with the
    reason and the install command, or fail under CI=true."""
    if all(shutil.which(tool) for tool in QEMU_TOOLS):
        return
    try:
        from gates.provision import ensure
    except ImportError:  # gates is part of the workspace; this only guards a partial checkout
        ensure = None
    if ensure is not None:
        report = ensure("integration")  # QEMU's packages are listed under the integration tier
        if not any(tool in report.missing for tool in QEMU_TOOLS):
            return
        report.skip_or_fail(purpose)
    missing = [tool for tool in QEMU_TOOLS if not shutil.which(tool)]
    message = (
        f"{purpose}: {', '.join(missing)} not found; install with: "
        "apt-get install -y --no-install-recommends qemu-system-x86 qemu-utils"
    )
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(message + " (CI=true: a missing tool fails the tier)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def qemu_purpose() -> str:
    """What the QEMU tests of this session are, in a skip, a failure or the watchdog's message
    (a conftest overrides it: "QEMU integration tests", "QEMU benchmarks")."""
    return "QEMU tests"


@pytest.fixture(scope="session")
def watchdog(pytestconfig: pytest.Config, qemu_purpose: str) -> Iterator[Watchdog]:
    """A hung run ends instead of blocking CI until its own limit (armed from first use on)."""
    dog = Watchdog(WATCHDOG_S, RUN_DIR, pytestconfig, qemu_purpose)
    dog.start()
    try:
        yield dog
    finally:
        dog.cancel()


@pytest.fixture(scope="session")
def run_dir(watchdog: Watchdog) -> Iterator[Path]:
    """This run's temp dir (named with the run id), after sweeping earlier runs' leftovers; the
    watchdog is armed before anything of the run exists."""
    swept = sweep()
    if swept:
        sys.stderr.write(f"\nswept leftovers of killed runs: {swept}\n")
    path = RUN_DIR
    path.mkdir()
    try:
        yield path
    finally:
        leftovers = _kill_run(RUN_ID)
        shutil.rmtree(path, ignore_errors=True)
        assert not leftovers, f"QEMU processes of run {RUN_ID} survived teardown: {leftovers}"
        assert not path.exists(), f"{path} survived teardown"


@pytest.fixture(scope="session")
def tiny_image(qemu_purpose: str) -> Path:
    """The data dir holding the built `tiny` image and the accelerator verdict (shared cache)."""
    require_qemu_tools(qemu_purpose)
    cache = Path(os.environ.get("HANGAR_IT_IMAGE_DIR") or default_data_dir())
    try:
        tiny.build(cache, log=lambda line: sys.stderr.write(line + "\n"))
    except Exception as exc:
        pytest.fail(f"building the tiny image failed: {exc}", pytrace=False)
    image = Registry(cache).get(tiny.NAME)
    version = asyncio.run(QemuProvider(cache).qemu_version())
    asyncio.run(accel.choose(cache, shutil.which("qemu-system-x86_64") or "", version, image))
    return cache


@pytest.fixture(scope="session")
def qemu(run_dir: Path, tiny_image: Path) -> Iterator[QemuFixture]:
    """The qemu provider on this run's data dir, with the cached image and accelerator verdict."""
    data_dir = run_dir / "data"
    (data_dir / "qemu").mkdir(parents=True)
    Registry(data_dir).save(Registry(tiny_image).get(tiny.NAME))
    verdict = tiny_image / "qemu" / "accelerator.json"
    if verdict.exists():
        shutil.copy(verdict, data_dir / "qemu" / "accelerator.json")
    loop = LoopThread()
    provider = QemuProvider(data_dir, boot_timeout=BOOT_TIMEOUT_S)
    fixture = QemuFixture(provider, loop)
    try:
        # Decided now, while the session's environment (HANGAR_QEMU_ACCEL) is as it was given:
        # a conftest may clear HANGAR_* variables around each test.
        loop.run(provider.accelerator(provider.registry.get(tiny.NAME)), 60)
        yield fixture
    finally:
        try:
            fixture.delete_all()
        finally:
            loop.close()


@pytest.fixture(scope="session")
def run_id() -> str:
    """This run's id: it names every machine and temp dir the run creates."""
    return RUN_ID


@pytest.fixture(scope="session")
def accelerator(qemu: QemuFixture) -> str:
    stored = json.loads((qemu.provider.data_dir / "qemu" / "accelerator.json").read_text())
    return str(stored["accelerator"]["name"])
