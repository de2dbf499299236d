"""Run ids, tags and the sweeper, with real short-lived processes and dirs in tmp_path. The "VMs",
"servers", "postmasters" and "browsers" here are sleeping Python processes that carry on their
command line (or in their environment) what the real ones carry; nothing real is started. The
reaper's own tests (a run killed with `kill -9`) are in test_reaper.py."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit import runs
from testkit.waiting import wait_until

# SIGQUIT back to its default: a shell starts a background job with SIGQUIT ignored, and its
# children inherit that; the PostgreSQL it stands in for handles SIGQUIT whatever it inherited.
SLEEP = [
    sys.executable,
    "-c",
    "import signal, time; signal.signal(signal.SIGQUIT, signal.SIG_DFL); time.sleep(120)",
]


class Processes:
    """Starts sleeping processes and ends every one of them after the test."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, *argv: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """A sleeper with `argv` and `env`; it carries no run's tag in its environment unless
        `env` gives one (this run's would be inherited otherwise)."""
        inherited = {key: value for key, value in os.environ.items() if key != runs.ENV_TAG}
        child = subprocess.Popen([*SLEEP, *argv], env={**inherited, **(env or {})})
        self.started.append(child)
        # Until its exec is done a child's command line is not yet its own.
        wait_until(
            lambda: runs.read_cmdline(child.pid),
            until=lambda argv: argv is not None and SLEEP[-1] in argv,
            what=f"pid {child.pid} to run",
            timeout=10,
            interval=0.01,
        )
        return child

    def dead_pid(self) -> int:
        """The pid of a process that has ended (the pid of a killed run)."""
        child = subprocess.Popen([sys.executable, "-c", "pass"])
        child.wait()
        return child.pid


@pytest.fixture
def processes() -> Iterator[Processes]:
    made = Processes()
    yield made
    for child in made.started:
        child.kill()
        child.wait()


def run_dir(root: Path, run_id: str, label: str = "q") -> Path:
    """A dir named as a run names its own: `hangar-test-<run id>-<label>…`."""
    return Path(tempfile.mkdtemp(prefix=f"{runs.TEST_PREFIX}{run_id}-{label}", dir=root))


def fake_vm(processes: Processes, data_dir: Path, key: str) -> subprocess.Popen[bytes]:
    """A "VM" keyed `key` whose pidfile lives in `data_dir` (as the service's VMs do)."""
    pidfile = data_dir / "qemu" / "machines" / key / "qemu.pid"
    pidfile.parent.mkdir(parents=True)
    return processes.start("-name", f"hangar:{key},debug-threads=on", "-pidfile", str(pidfile))


# ------------------------------------------------------------------------------ run ids
def test_the_run_id_is_this_pid_and_six_hex_digits() -> None:
    assert re.fullmatch(rf"{os.getpid()}-[0-9a-f]{{6}}", runs.RUN_ID)
    assert f"hangar-test-{runs.RUN_ID}" == runs.RUN_TAG
    assert runs.run_id_of(runs.RUN_TAG) == runs.RUN_ID


@pytest.mark.parametrize(
    ("name", "run_id"),
    [
        ("hangar-test-123-abcdef", "123-abcdef"),
        ("hangar-test-123-abcdef-web", "123-abcdef"),
        ("hangar-test-123-abcdef-q1x2y3z4", "123-abcdef"),
        ("hangar-test-notes", None),  # only starts like a tag
        ("hangar-test-123-abcdefg", None),  # seven hex digits: not a run id
        ("hangar-test-123-ABCDEF", None),
        ("hangar-it-pg-123-abcdef", None),
        ("x-hangar-test-123-abcdef", None),
    ],
)
def test_run_id_of_a_name(name: str, run_id: str | None) -> None:
    assert runs.run_id_of(name) == run_id


def test_new_dir_carries_the_tag_and_a_label(tmp_path: Path) -> None:
    made = runs.new_dir("pg", tmp_path)
    assert made.is_dir()
    assert made.parent == tmp_path
    assert made.name.startswith(f"{runs.RUN_TAG}-pg")
    assert runs.tagged_dir_of(made / "data" / "postmaster.pid", (tmp_path,)) == made
    assert runs.tagged_dir_of(made, (Path("/elsewhere"),)) is None
    assert runs.tagged_dir_of(tmp_path / "a" / made.name / "b", None) == tmp_path / "a" / made.name


def test_an_owner_is_alive_while_its_python_process_runs(processes: Processes) -> None:
    live = processes.start()
    assert runs.owner_alive(runs.RUN_ID)
    assert runs.owner_alive(f"{live.pid}-abcdef")
    assert not runs.owner_alive(f"{processes.dead_pid()}-abcdef")
    assert not runs.owner_alive("notapid-abcdef")
    sleeper = subprocess.Popen(["sleep", "60"])  # a reused pid that is no python: not an owner
    try:
        assert not runs.owner_alive(f"{sleeper.pid}-abcdef")
    finally:
        sleeper.kill()
        sleeper.wait()


def test_wait_ended(processes: Processes) -> None:
    child = processes.start()
    child.kill()
    runs.wait_ended(child.pid, timeout=10)  # a zombie counts as ended
    with pytest.raises(AssertionError, match=rf"waiting for pid {os.getpid()} to end"):
        runs.wait_ended(os.getpid(), timeout=0)


# ------------------------------------------------------------------------------ tags
@pytest.mark.parametrize(
    ("text", "run_id"),
    [
        ("/tmp/hangar-test-123-abcdef/data", "123-abcdef"),
        ("hangar:hangar-test-123-abcdef-web,process=x", "123-abcdef"),
        ("--user-data-dir=/tmp/hangar-test-123-abcdef-br1/p", "123-abcdef"),
        ("hangar-test-123-abcdef", "123-abcdef"),
        ("/tmp/hangar-test-123-abcdefg/data", None),  # seven hex digits
        ("/tmp/x-hangar-test-123-abcdef", None),  # a longer name that only contains a tag
        ("/tmp/hangar-test-notes", None),
    ],
)
def test_a_tag_in_a_text(text: str, run_id: str | None) -> None:
    found = [match.group(1) for match in runs.TAG_IN_TEXT.finditer(text)]
    assert found == ([run_id] if run_id else [])


def test_this_runs_children_carry_its_tag_in_their_environment() -> None:
    assert os.environ[runs.ENV_TAG] == runs.RUN_TAG
    child = subprocess.Popen(SLEEP)
    try:
        wait_until(
            lambda: runs.runs_of(child.pid),
            what=f"pid {child.pid} to carry a run's tag",
            timeout=10,
            interval=0.01,
        )
        assert runs.runs_of(child.pid) == {runs.RUN_ID}
    finally:
        child.kill()
        child.wait()


def test_the_processes_of_a_run_are_recognised(processes: Processes, tmp_path: Path) -> None:
    mine = run_dir(tmp_path, runs.RUN_ID)
    started = [
        fake_vm(processes, mine, "m-0123"),  # its pidfile lies in a tagged dir
        processes.start("-name", f"hangar:{runs.RUN_TAG}-web"),  # keyed with the run's tag
        processes.start("serve", env={"HANGAR_DATA_DIR": str(mine / "data")}),
        processes.start("-D", str(mine / "data"), "-k", str(mine)),
        processes.start(f"--user-data-dir={mine}/playwright_chromiumdev_profile-x"),
        processes.start(env={runs.ENV_TAG: runs.RUN_TAG}),  # only its environment says so
    ]
    untagged = processes.start("-D", str(tmp_path / "hangar-test-notes"))
    found = {p.pid: p for p in runs.processes_of(runs.RUN_ID)}
    assert {child.pid for child in started} <= set(found)
    assert untagged.pid not in found
    program = Path(SLEEP[0]).name
    assert {str(found[child.pid]) for child in started} == {
        f"{program} pid {child.pid}" for child in started
    }


def write_journal(run_id: str, *entries: dict[str, object]) -> Path:
    """The journal of another run (as `register_pidfile` writes this run's)."""
    journal = runs.journal_dir(run_id)
    journal.mkdir()
    lines = "".join(json.dumps(entry) + "\n" for entry in entries)
    (journal / runs.JOURNAL).write_text(lines)
    return journal


def pid_in(entry: str) -> int | None:
    words = entry.split()
    return int(words[-1]) if len(words) >= 2 and words[-2] == "pid" else None


def test_a_dead_runs_leftovers_are_swept_a_live_runs_are_not(
    processes: Processes, tmp_path: Path
) -> None:
    live_owner = processes.start()  # another run, still alive (a python process)
    dead_run = f"{processes.dead_pid()}-dead00"
    live_run = f"{live_owner.pid}-a11ce0"
    leftovers: dict[str, list[subprocess.Popen[bytes]]] = {}
    dirs: dict[str, list[Path]] = {}
    runs_by_owner = {"dead": dead_run, "mine": runs.RUN_ID, "live": live_run}
    journal = write_journal(dead_run)
    try:
        for who, run in runs_by_owner.items():
            # The e2e QEMU flow's data dir with a VM keyed by the service's id and its server, a
            # VM keyed with the run's tag, the fake-only server in pytest's own temp dir, a
            # PostgreSQL cluster, a browser with its profile, a process tagged by its environment.
            data_dir, cluster, profiles = (run_dir(tmp_path, run, x) for x in ["q", "pg", "br"])
            dirs[who] = [data_dir, cluster, profiles]
            pytest_dir = tmp_path / "pytest-of-me" / "pytest-7" / "popen-gw0"
            in_pytest = pytest_dir / f"hangar-test-{run}-gw00"
            in_pytest.mkdir(parents=True)
            postmaster = processes.start("-D", str(cluster / "data"), "-k", str(cluster))
            (cluster / "data").mkdir()
            (cluster / "data" / "postmaster.pid").write_text(f"{postmaster.pid}\n{cluster}\n")
            leftovers[who] = [
                fake_vm(processes, data_dir, "m-0123"),
                processes.start("-name", f"hangar:hangar-test-{run}-web"),
                processes.start("serve", env={"HANGAR_DATA_DIR": str(data_dir)}),
                processes.start("serve", env={"HANGAR_DATA_DIR": str(in_pytest)}),
                postmaster,
                processes.start(f"--user-data-dir={profiles}/playwright_chromiumdev_profile-x"),
                processes.start(env={runs.ENV_TAG: f"hangar-test-{run}"}),
            ]
        pidfile = dirs["dead"][1] / "data" / "postmaster.pid"
        (journal / runs.JOURNAL).write_text(
            json.dumps({"pidfile": str(pidfile), "stop": "SIGQUIT"})
        )
        not_a_run = tmp_path / "hangar-test-notes"  # only starts like a tag: never swept
        not_a_run.mkdir()
        stranger = processes.start("serve", env={"HANGAR_DATA_DIR": str(not_a_run)})
        # A dead run's key, but a live run's environment: the live run's, never swept.
        shared = processes.start(
            "-name",
            f"hangar:hangar-test-{dead_run}-x",
            env={runs.ENV_TAG: f"hangar-test-{live_run}"},
        )

        swept = runs.sweep(roots=(tmp_path,))

        *killed, postmaster = leftovers["dead"][:5]
        for leftover in [*killed, *leftovers["dead"][5:]]:
            assert leftover.wait(10) == -signal.SIGKILL
        assert postmaster.wait(10) == -signal.SIGQUIT  # PostgreSQL's immediate shutdown
        for leftover in [*leftovers["mine"], *leftovers["live"], stranger, shared]:
            assert leftover.poll() is None, f"pid {leftover.pid} of a live run (or none) was killed"
        assert not any(path.exists() for path in dirs["dead"])
        assert not journal.exists()
        assert all(path.exists() for path in [*dirs["mine"], *dirs["live"], not_a_run])
        assert (tmp_path / "pytest-of-me").exists()  # pytest rotates its own temp dirs
        assert {str(path) for path in dirs["dead"]} <= set(swept)
        ended = {pid_in(entry) for entry in swept}
        assert {leftover.pid for leftover in leftovers["dead"]} <= ended
        # Of this test's things nothing else went (leftovers of real killed runs may go too).
        assert not ended & {p.pid for p in processes.started if p not in leftovers["dead"]}
        assert not {e for e in swept if e.startswith(str(tmp_path))} - {
            str(p) for p in dirs["dead"]
        }
    finally:
        shutil.rmtree(journal, ignore_errors=True)


def test_the_sweeper_looks_where_runs_put_their_dirs() -> None:
    assert Path("/tmp") in runs.TEMP_ROOTS  # QEMU's socket paths: the QEMU flow's data dirs
    assert Path(tempfile.gettempdir()) in runs.TEMP_ROOTS


def test_sweep_once_sweeps_only_the_first_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def sweep() -> list[str]:
        calls.append(1)
        return ["x"]

    monkeypatch.setattr(runs, "sweep", sweep)
    runs.sweep_once.cache_clear()
    try:
        assert runs.sweep_once() == ("x",)
        assert runs.sweep_once() == ("x",)
        assert calls == [1]
    finally:
        runs.sweep_once.cache_clear()
