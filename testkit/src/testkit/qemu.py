"""The QEMU harness shared by every tier that boots real machines (the integration tier, the QEMU
benchmarks, the e2e tier's QEMU flow): real QEMU machines through the `qemu` provider, and
nothing of theirs left behind.

A tier's conftest imports the fixtures it uses (`watchdog`, `run_dir`, `tiny_image`, `qemu`,
`run_id`, `accelerator`) and may override `qemu_purpose`, the words that name its tests in a
skip, a failure or the watchdog's message.

What this module guarantees, whatever happens to the run:

- **Run id.** Every VM of this run carries `hangar-test-<run id>` in its key (so in its QEMU
  `-name hangar:<key>` tag and its directory), and all its files live in one temp dir named with
  the run's tag (`testkit.runs`). The run id starts with the pid of this pytest process.
- **Reaper.** Before the run's dir exists, the run's reaper is running (`testkit.runs`): if the
  run is killed, even by `kill -9`, its VMs (which carry its tag) are killed and its dir removed
  within seconds.
- **Sweeper.** Before the run's dir exists, what earlier runs left behind (their pytest process is
  gone) is killed and removed (`testkit.runs.sweep`); concurrent runs are left alone.
- **Watchdog.** A timer thread ends a hung run: it kills this run's VMs, removes its temp dir
  and exits non-zero (`HANGAR_IT_WATCHDOG_S`, default 900 s). It is armed by the first use of
  `run_dir` (so of `qemu`); the integration tier arms it for the whole session and re-arms it
  as each test starts, so it ends a run in which no test started for that long.
- **Teardown.** Finalizers delete every machine; the session ends by checking that no QEMU
  process and no temp dir of this run remains.
- **One image.** `tiny_image` builds the `tiny` guest image (or finds it in the cache) once, in
  the repository's data dir (`HANGAR_IT_IMAGE_DIR`, default `./.hangar`), shared by every tier;
  `seed_data_dir` registers it, with the accelerator verdict, in a service's own data dir.

Tools: `qemu-system-x86_64` and `qemu-img` are provisioned by `gates.provision.ensure`; missing
still, the tests skip with the install command, or fail under CI=true.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from gates import provision
from hangar.images import tiny
from hangar.images.registry import Registry, default_data_dir
from hangar.providers.base import ExecResult, MachineSpec, Runtime
from hangar.providers.qemu import QemuProvider, accel, process
from testkit import runs
from testkit.loop import LoopThread
from testkit.waiting import wait_until

__all__ = [
    "BOOT_TIMEOUT_S",
    "QEMU_TOOLS",
    "RUN_DIR",
    "Machine",
    "QemuFixture",
    "Watchdog",
    "accelerator",
    "kill_qemu_of",
    "qemu",
    "qemu_purpose",
    "require_qemu_tools",
    "run_dir",
    "run_id",
    "seed_data_dir",
    "tiny_image",
    "watchdog",
]

T = TypeVar("T")

RUN_DIR = Path(tempfile.gettempdir()) / runs.RUN_TAG
QEMU_TOOLS = ("qemu-system-x86_64", "qemu-img")
WATCHDOG_S = float(os.environ.get("HANGAR_IT_WATCHDOG_S", "900"))
BOOT_TIMEOUT_S = float(os.environ.get("HANGAR_IT_BOOT_TIMEOUT_S", "120"))
ACCELERATOR_FILE = Path("qemu") / "accelerator.json"


def kill_qemu_of(run_id: str) -> list[int]:
    """SIGKILL every QEMU of run `run_id` (a process of the run with a machine's `-name` tag);
    returns their pids."""
    killed = [p.pid for p in runs.processes_of(run_id) if process.tag_of(p.argv) is not None]
    for pid in killed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return killed


# ------------------------------------------------------------------ the test vocabulary
class Machine:
    """A VM under test, in the NixOS test driver's words: start, succeed, fail, wait_until_..."""

    def __init__(self, qemu: QemuFixture, suffix: str, memory_mb: int = 256) -> None:
        self.qemu = qemu
        self.key = f"{runs.RUN_TAG}-{suffix}"
        self.name = f"{suffix}-{runs.RUN_ID}"
        self.spec = MachineSpec(self.key, self.name, "tiny", 1, memory_mb, {"run": runs.RUN_ID})

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
        """Run `command` until it exits 0 (every 0.5 s); returns its output. Past `timeout`
        WaitTimeoutError, carrying the last exit status and output."""
        result = wait_until(
            lambda: self.execute(command, 10),
            until=lambda result: result.exit_status == 0,
            what=f"{self.name}: `{command}` to succeed",
            timeout=timeout,
            interval=0.5,
        )
        return result.output

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
        self.limit = seconds  # of the timer running now (rearm may lengthen it for one test)
        self.timer = self._timer(seconds)

    def _timer(self, seconds: float) -> threading.Timer:
        timer = threading.Timer(seconds, self._fire)
        timer.daemon = True
        return timer

    def _fire(self) -> None:
        killed = kill_qemu_of(runs.RUN_ID)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        capture = self.config.pluginmanager.getplugin("capturemanager") if self.config else None
        if capture is not None:
            capture.suspend_global_capture(in_=False)  # else the message dies with the process
        sys.stderr.write(
            f"\nWATCHDOG: run {runs.RUN_ID} of the {self.purpose} made no progress for "
            f"{self.limit:.0f}s (HANGAR_IT_WATCHDOG_S); killed QEMU {killed}, removed "
            f"{self.run_dir}\n"
        )
        sys.stderr.flush()
        os._exit(70)

    def start(self) -> None:
        self.timer.start()

    def rearm(self, seconds: float | None = None) -> None:
        """Count again from now, for `seconds` (default: the configured limit). A tier that
        re-arms it as each test starts ends a run that stopped making progress, never a long
        run that still does."""
        self.timer.cancel()
        self.limit = self.seconds if seconds is None else seconds
        self.timer = self._timer(self.limit)
        self.timer.start()

    def cancel(self) -> None:
        self.timer.cancel()


# ------------------------------------------------------------------ the image
def require_qemu_tools(purpose: str = "QEMU tests") -> None:
    """Return when QEMU's tools are there (provisioning them if it can); else skip with the
    reason and the install command, or fail under CI=true."""
    if all(shutil.which(tool) for tool in QEMU_TOOLS):
        return
    report = provision.ensure("integration")  # QEMU's packages are listed under integration
    if any(tool in report.missing for tool in QEMU_TOOLS):  # PostgreSQL is not needed here
        report.skip_or_fail(purpose)


def seed_data_dir(data_dir: Path, image_dir: Path) -> Path:
    """Make `data_dir` a service data dir that has the `tiny` image of `image_dir` (the
    `tiny_image` fixture's) and its accelerator verdict, so no service builds or probes again."""
    (data_dir / "qemu").mkdir(parents=True, exist_ok=True)
    Registry(data_dir).save(Registry(image_dir).get(tiny.NAME))
    verdict = image_dir / ACCELERATOR_FILE
    if verdict.exists():
        shutil.copy(verdict, data_dir / ACCELERATOR_FILE)
    return data_dir


def _log(line: str) -> None:
    sys.stderr.write(line + "\n")


def _build_tiny(cache: Path) -> None:
    tiny.build(cache, log=_log)
    image = Registry(cache).get(tiny.NAME)
    version = asyncio.run(QemuProvider(cache).qemu_version())
    asyncio.run(accel.choose(cache, shutil.which("qemu-system-x86_64") or "", version, image))


# ------------------------------------------------------------------ fixtures
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
    """This run's temp dir (named with the run's tag), after sweeping earlier runs' leftovers;
    the watchdog is armed before anything of the run exists."""
    runs.start_reaper()
    swept = runs.sweep_once()
    if swept:
        sys.stderr.write(f"\nswept leftovers of killed runs: {list(swept)}\n")
    path = RUN_DIR
    path.mkdir()
    try:
        yield path
    finally:
        leftovers = kill_qemu_of(runs.RUN_ID)
        shutil.rmtree(path, ignore_errors=True)
        assert not leftovers, f"QEMU processes of run {runs.RUN_ID} survived teardown: {leftovers}"
        assert not path.exists(), f"{path} survived teardown"


@pytest.fixture(scope="session")
def tiny_image(qemu_purpose: str) -> Path:
    """The data dir holding the built `tiny` image and the accelerator verdict (shared cache)."""
    require_qemu_tools(qemu_purpose)
    cache = Path(os.environ.get("HANGAR_IT_IMAGE_DIR") or default_data_dir())
    # In a thread of its own: the build and the probe run event loops, and a tier may already
    # have one running in this thread (Playwright's sync API does).
    with ThreadPoolExecutor(1, thread_name_prefix="tiny-image") as pool:
        try:
            pool.submit(_build_tiny, cache).result()
        except Exception as exc:
            pytest.fail(f"building the tiny image failed: {exc}", pytrace=False)
    return cache


@pytest.fixture(scope="session")
def qemu(run_dir: Path, tiny_image: Path) -> Iterator[QemuFixture]:
    """The qemu provider on this run's data dir, with the cached image and accelerator verdict."""
    data_dir = seed_data_dir(run_dir / "data", tiny_image)
    loop = LoopThread("qemu-loop")
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
    return runs.RUN_ID


@pytest.fixture(scope="session")
def accelerator(qemu: QemuFixture) -> str:
    stored = json.loads((qemu.provider.data_dir / ACCELERATOR_FILE).read_text())
    return str(stored["accelerator"]["name"])
