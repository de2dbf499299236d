"""Only the affected benchmarks: which benchmarks a change between the baseline and the working
tree can make slower, so the bench gate runs those and skips the rest with the reason.

The rule (docs/gates.md, "Only the affected benchmarks"):

1. The change is every file that differs between the baseline commit and the working tree
   (committed, staged, unstaged, untracked), with its changed lines in the baseline's numbering
   (`git diff -U0`); a pure insertion touches the lines on both sides of it, a deleted, renamed
   or binary file is changed as a whole, a new file has no lines in the baseline.
2. A changed path matching `run_all_on` (or inside the benchmarks' own directories) runs every
   benchmark. Any other file that is not Python affects nothing.
3. Otherwise the coverage map of the baseline decides: each benchmark's test file is run once on
   the baseline under coverage with per-test contexts; a benchmark is affected when the change
   touches a line executed while it ran, or a line its test file's run executed outside any one
   benchmark's call (imports, module-level code, fixture setup and teardown of any of that
   file's tests, the live servers it started): such lines count for every benchmark of the file.
   A benchmark the map has no lines for (it was skipped on the baseline) always runs.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from gates.bench.settings import BenchSettings
from gates.bench.worktree import SCRATCH_PREFIX, sweep, synced_baseline
from gates.engine.execution import Shell
from gates.errors import GatesError
from gates.git.repository import Repository

MAP_VERSION = 1
MAP_DIR = Path(".gates") / "bench" / "affected"
# A pytest plugin for the measuring runs: --benchmark-disable (each benchmark's code runs once)
# excludes --benchmark-only, so this deselects every test that is no benchmark instead.
PLUGIN_NAME = "gates_only_benchmarks"
PLUGIN = """\
def pytest_collection_modifyitems(config, items):
    kept = [item for item in items if "benchmark" in getattr(item, "fixturenames", ())]
    dropped = [item for item in items if item not in kept]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
"""

Lines = frozenset[int]
# Run in the baseline's environment: per measured file, the contexts of each line, in the shape
# of `coverage json --show-contexts`.
READ_CONTEXTS = """\
import json, sys
from coverage import CoverageData
data = CoverageData(sys.argv[1])
data.read()
files = {}
for name in data.measured_files():
    lines = data.contexts_by_lineno(name)
    files[name] = {"contexts": {str(n): sorted(c) for n, c in lines.items() if n > 0}}
with open(sys.argv[2], "w") as out:
    json.dump({"files": files}, out)
"""


class AffectedError(GatesError):
    """The coverage map of the baseline could not be made; the message names the log."""


# ---------------------------------------------------------------------------------------- change


@dataclass(frozen=True)
class Change:
    """Per changed path (relative to the root, POSIX): its changed lines in the baseline's
    numbering, None when the file is changed as a whole (deleted, renamed away, binary, mode)."""

    files: Mapping[str, Lines | None]
    added: frozenset[str] = frozenset()  # not in the baseline: new, untracked or renamed to

    def lines(self, path: str) -> Lines | None:
        return self.files.get(path, frozenset())


_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+\d+(?:,\d+)? @@")


def parse_diff(text: str) -> dict[str, set[int]]:
    """The baseline-side lines of each file's hunks in `git diff -U0 --no-renames` output."""
    result: dict[str, set[int]] = {}
    current: str | None = None
    header = False  # between `diff --git` and the first hunk: a removed line "-- x" is no header
    for line in text.splitlines():
        if line.startswith("diff --git "):
            header, current = True, None
        elif header and line.startswith("--- "):
            old = line[4:]
            current = old[2:] if old.startswith("a/") else None
            if current is not None:
                result.setdefault(current, set())
        elif header and line.startswith("+++ "):
            continue
        elif current is not None and line.startswith("@@ "):
            header = False
            match = _HUNK.match(line)
            if match is None:
                continue
            start, count = int(match.group(1)), int(match.group(2) or "1")
            if count == 0:  # a pure insertion after line `start`: the lines around it
                result[current].update(n for n in (start, start + 1) if n > 0)
            else:
                result[current].update(range(start, start + count))
    return result


def changes(root: Path, baseline: str) -> Change:
    """Every file differing between `baseline` and the working tree at `root`, untracked ones
    included, with its changed lines (see `parse_diff`)."""
    repository = Repository(root)
    base = ["-c", "core.quotePath=false", "diff", "--no-renames", "--no-ext-diff", "--no-color"]
    status = repository.git(*base, "--name-status", "-z", baseline, "--")
    fields = [f for f in status.split("\0") if f]
    named = dict(zip(fields[1::2], fields[0::2], strict=False))  # path → status letter
    hunks = parse_diff(repository.git(*base, "-U0", baseline, "--"))
    files: dict[str, Lines | None] = {}
    added: set[str] = set()
    for path, letter in named.items():
        if letter.startswith("A"):
            files[path] = frozenset()
            added.add(path)
        elif letter.startswith("M") and hunks.get(path):
            files[path] = frozenset(hunks[path])
        else:  # deleted, type change, binary or mode only: as a whole
            files[path] = None
    untracked = repository.git("ls-files", "--others", "--exclude-standard", "-z")
    for path in filter(None, untracked.split("\0")):
        files.setdefault(path, frozenset())
        added.add(path)
    return Change(files, frozenset(added))


# --------------------------------------------------------------------------------- run all globs


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A path glob relative to the root: `*` and `?` stay within a directory, `**` spans any
    number of them (`**/x` also matches `x`); a pattern naming a directory matches below it."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + "(?:/.*)?")


def split_selection(root: Path, selection: Sequence[str]) -> tuple[list[str], list[str]]:
    """The selection's paths (items whose file part exists under `root`: directories, files,
    node ids) and its options with their values (`-k fan_out`), each in order."""
    paths: list[str] = []
    options: list[str] = []
    for item in selection:
        named = item.split("::", 1)[0]
        is_path = not item.startswith("-") and bool(named) and (root / named).exists()
        (paths if is_path else options).append(item)
    return paths, options


def run_all_globs(settings: BenchSettings, paths: Sequence[str]) -> list[str]:
    """`run_all_on`, then the directories and files of the benchmarks themselves (`paths`)."""
    own = [item.split("::", 1)[0].rstrip("/") for item in paths]
    return [*settings.run_all_on, *(p for p in own if p not in settings.run_all_on)]


def run_all_trigger(change: Change, globs: Sequence[str]) -> str | None:
    """The first changed path matching one of `globs`, as "PATH changed" (None: no match)."""
    compiled = [(g, glob_regex(g)) for g in globs]
    for path in sorted(change.files):
        for glob, regex in compiled:
            if regex.fullmatch(path):
                return f"{path} changed (run_all_on: {glob})"
    return None


def is_code(path: str) -> bool:
    return PurePosixPath(path).suffix == ".py"


# ------------------------------------------------------------------------------- coverage map


@dataclass
class FileRun:
    """What one test file's run on the baseline executed: per benchmark its own lines, and the
    lines of the whole run outside any one benchmark's call (which count for all of them)."""

    shared: dict[str, Lines] = field(default_factory=dict)
    benchmarks: dict[str, dict[str, Lines]] = field(default_factory=dict)
    unmeasured: list[str] = field(default_factory=list)  # benchmarks skipped on the baseline


@dataclass
class CoverageMap:
    baseline: str
    runs: dict[str, FileRun]  # by test file
    # What was measured (the gate's selection): a map of another selection is made again.
    selection: list[str] = field(default_factory=list)

    def benchmarks(self) -> list[str]:
        names = []
        for run in self.runs.values():
            names += [*run.benchmarks, *run.unmeasured]
        return sorted(names)

    def to_json(self) -> dict[str, Any]:
        def lines(files: Mapping[str, Lines]) -> dict[str, list[int]]:
            return {path: sorted(numbers) for path, numbers in sorted(files.items())}

        return {
            "version": MAP_VERSION,
            "baseline": self.baseline,
            "selection": list(self.selection),
            "runs": {
                name: {
                    "shared": lines(run.shared),
                    "benchmarks": {b: lines(f) for b, f in sorted(run.benchmarks.items())},
                    "unmeasured": sorted(run.unmeasured),
                }
                for name, run in sorted(self.runs.items())
            },
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> CoverageMap:
        def lines(files: Mapping[str, list[int]]) -> dict[str, Lines]:
            return {
                str(path): frozenset(int(n) for n in numbers) for path, numbers in files.items()
            }

        runs = {
            str(name): FileRun(
                lines(run["shared"]),
                {str(b): lines(f) for b, f in run["benchmarks"].items()},
                [str(u) for u in run["unmeasured"]],
            )
            for name, run in document["runs"].items()
        }
        selection = [str(item) for item in document["selection"]]
        return cls(str(document["baseline"]), runs, selection)


def map_path(root: Path, baseline: str) -> Path:
    return root / MAP_DIR / f"{baseline}.json"


def load_map(root: Path, baseline: str, selection: Sequence[str]) -> CoverageMap | None:
    """The stored map of `baseline` for `selection`; None when there is none, or it has another
    format version or selection, or is unreadable (it is then made again)."""
    path = map_path(root, baseline)
    try:
        document = json.loads(path.read_text())
        if document.get("version") != MAP_VERSION or document.get("baseline") != baseline:
            return None
        coverage_map = CoverageMap.from_json(document)
        return coverage_map if coverage_map.selection == list(selection) else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def save_map(root: Path, coverage_map: CoverageMap) -> Path:
    path = map_path(root, coverage_map.baseline)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(coverage_map.to_json()) + "\n")
    partial.replace(path)
    return path


def _relative(tree: Path, path: str) -> str | None:
    candidate = Path(path)
    if not candidate.is_absolute():
        # relative_files recorded some paths relative to "/" (seen: tmp/…/tree/testkit/…).
        rooted = Path("/") / candidate
        for base in (tree, tree.resolve()):
            if rooted.is_relative_to(base):
                return rooted.relative_to(base).as_posix()
        return candidate.as_posix()
    for base in (tree, tree.resolve()):
        try:
            return candidate.relative_to(base).as_posix()
        except ValueError:
            continue
    return None  # outside the tree: an installed library


def read_contexts(
    report: Mapping[str, Any], tree: Path
) -> tuple[dict[str, Lines], dict[str, dict[str, Lines]]]:
    """From READ_CONTEXTS' report (shaped as `coverage json --show-contexts`): the lines
    executed outside any test's call (no context, or a test's setup or teardown) and, per test
    node id, those of its call."""
    shared: dict[str, set[int]] = {}
    tests: dict[str, dict[str, set[int]]] = {}
    for name, data in report.get("files", {}).items():
        path = _relative(tree, str(name))
        if path is None:
            continue
        for number, contexts in data.get("contexts", {}).items():
            for context in contexts:
                node, _, phase = str(context).rpartition("|")
                if node and phase == "run":
                    tests.setdefault(node, {}).setdefault(path, set()).add(int(number))
                else:
                    shared.setdefault(path, set()).add(int(number))
    return (
        {p: frozenset(n) for p, n in shared.items()},
        {t: {p: frozenset(n) for p, n in files.items()} for t, files in tests.items()},
    )


def read_junit(path: Path, test_file: str) -> tuple[list[str], list[str]]:
    """Node ids of the benchmarks a junit file reports as run and as skipped."""
    ran: list[str] = []
    skipped: list[str] = []
    module = test_file.removesuffix(".py").replace("/", ".")
    for case in ElementTree.parse(path).iter("testcase"):  # noqa: S314 (our own pytest's file)
        classname = case.get("classname", "")
        classes = classname[len(module) :].strip(".") if classname.startswith(module) else ""
        node = "::".join([test_file, *filter(None, classes.split(".")), case.get("name", "")])
        (skipped if case.find("skipped") is not None else ran).append(node)
    return ran, skipped


def benchmark_files(tree: Path, paths: Sequence[str]) -> list[str]:
    """The test files of the selection's paths (a directory's test_*.py and *_test.py)."""
    found: list[str] = []
    for item in paths:
        path = tree / item.split("::", 1)[0]
        if path.is_dir():
            candidates = sorted({*path.rglob("test_*.py"), *path.rglob("*_test.py")})
        else:
            candidates = [path] if path.is_file() else []
        for candidate in candidates:
            relative = candidate.relative_to(tree).as_posix()
            if relative not in found:
                found.append(relative)
    return found


def measure_map(
    tree: Path,
    baseline: str,
    paths: Sequence[str],
    options: Sequence[str],
    *,
    shell: Shell,
    log: Path,
    environ: Mapping[str, str],
    groups: Sequence[str],
    timeout: float,
) -> CoverageMap:
    """Run each test file of the selection once on the baseline's tree (its environment synced
    already, `environ` pointing at it) with `--benchmark-disable` under coverage with per-test
    contexts, and read what each benchmark executed."""
    run_groups = [f"--group={group}" for group in groups]
    runs: dict[str, FileRun] = {}
    with tempfile.TemporaryDirectory(prefix="gates-affected-") as scratch:
        (Path(scratch) / f"{PLUGIN_NAME}.py").write_text(PLUGIN)
        path = [scratch, *filter(None, [environ.get("PYTHONPATH", "")])]
        for index, test_file in enumerate(benchmark_files(tree, paths)):
            data = Path(scratch) / f"{index}" / ".coverage"
            data.parent.mkdir()
            junit, report = data.parent / "junit.xml", data.parent / "coverage.json"
            env = {**environ, "COVERAGE_FILE": str(data), "PYTHONPATH": os.pathsep.join(path)}
            argv = ["uv", "run", "--locked", *run_groups, "pytest", "-q", "-p", "no:randomly"]
            argv += ["-p", PLUGIN_NAME, "--benchmark-disable", f"--junitxml={junit}"]
            argv += ["--cov", "--cov-context=test", "--cov-report=", *options, test_file]
            status = shell(argv, cwd=tree, log=log, env=env, timeout=timeout)
            if status in (5,):  # nothing collected in this file
                continue
            if status != 0:
                raise AffectedError(
                    f"measuring what the benchmarks of {test_file} execute on the baseline "
                    f"failed (exit status {status}); see {log}"
                )
            # Read with coverage's API, which needs no source: `coverage json` drops a file whose
            # recorded path it cannot open, as it did with paths of the QEMU benchmarks' runs
            # that relative_files recorded relative to "/" (tmp/gates-bench-…/tree/testkit/…).
            argv = ["uv", "run", "--locked", *run_groups, "python", "-c", READ_CONTEXTS]
            argv += [str(data), str(report)]
            if shell(argv, cwd=tree, log=log, env=env, timeout=timeout) != 0:
                raise AffectedError(f"reading the coverage data of {test_file} failed; see {log}")
            shared, tests = read_contexts(json.loads(report.read_text()), tree)
            ran, skipped = read_junit(junit, test_file)
            runs[test_file] = FileRun(
                shared,
                {node: tests.get(node, {}) for node in ran},
                skipped,
            )
    return CoverageMap(baseline, runs, [*paths, *options])


# ------------------------------------------------------------------------------------ selection


def _touches(files: Mapping[str, Lines], change: Change) -> list[str]:
    touched = []
    for path, executed in files.items():
        if path not in change.files:
            continue
        changed = change.files[path]
        if changed is None or changed & executed:
            touched.append(path)
    return touched


@dataclass
class Plan:
    """What the bench gate runs and why: `selection` (None: nothing), the benchmarks skipped."""

    selection: list[str] | None
    reason: str
    selected: list[str] = field(default_factory=list)  # node ids; [] with run_all
    skipped: list[str] = field(default_factory=list)
    run_all: bool = False
    changed: list[str] = field(default_factory=list)
    map_source: str = ""  # "stored" or "measured" when the coverage map decided
    unmeasured: list[str] = field(default_factory=list)  # selected: skipped on the baseline

    def lines(self) -> list[str]:
        """What the gate prints about its choice."""
        if self.run_all:
            return [f"running all benchmarks: {self.reason}"]
        out = []
        other = [path for path in self.changed if not is_code(path)]
        if other and (self.selected or self.skipped):
            out.append(f"not Python and not in run_all_on, so affecting nothing: {_shorten(other)}")
        if self.selected:
            out.append(f"running {len(self.selected)} affected benchmarks: {self.reason}")
            out += [f"  {name}" for name in self.selected]
        if self.skipped:
            shown = _shorten(self.changed)
            out.append(
                f"skipped {len(self.skipped)} benchmarks: the change ({shown}) touches no "
                "code they execute"
            )
            out += [f"  {name}" for name in self.skipped]
        if not self.selected and not self.skipped:
            out.append(f"no benchmark runs: {self.reason}")
        if self.map_source:
            out.append(f"coverage map of the baseline: {self.map_source}")
        return out

    def metrics(self) -> dict[str, Any]:
        return {
            "run_all": self.run_all,
            "reason": self.reason,
            "selected": self.selected,
            "skipped": self.skipped,
            "changed": self.changed,
            "map": self.map_source,
            "unmeasured": self.unmeasured,
        }


def _shorten(paths: Sequence[str], most: int = 3) -> str:
    if not paths:
        return "no file"
    shown = ", ".join(paths[:most])
    return shown + (f" and {len(paths) - most} more" if len(paths) > most else "")


def select(change: Change, coverage_map: CoverageMap, options: Sequence[str]) -> Plan:
    """The benchmarks whose executed lines (their own, or their test file's shared ones) the
    change touches, and those the map has no lines for; the others are skipped."""
    selected: list[str] = []
    skipped: list[str] = []
    unmeasured: list[str] = []
    why: list[str] = []
    for _test_file, run in sorted(coverage_map.runs.items()):
        shared = _touches(run.shared, change)
        for node in sorted(run.benchmarks):
            own = _touches(run.benchmarks[node], change)
            if own or shared:
                selected.append(node)
                why.append(f"{node.rsplit('::', 1)[-1]}: {', '.join(sorted({*own, *shared}))}")
            else:
                skipped.append(node)
        for node in sorted(run.unmeasured):
            selected.append(node)
            unmeasured.append(node)
            why.append(f"{node.rsplit('::', 1)[-1]}: not measured on the baseline")
    changed = sorted(change.files)
    if not selected:
        return Plan(None, "the change touches no code they execute", [], skipped, changed=changed)
    return Plan(
        [*options, *selected],
        "; ".join(why),
        selected,
        skipped,
        changed=changed,
        unmeasured=unmeasured,
    )


def plan_from_diff(
    change: Change, settings: BenchSettings, selection: Sequence[str], paths: Sequence[str]
) -> Plan | None:
    """What the diff alone decides: everything on a run-all trigger, nothing when no Python file
    changed; None when the coverage map must decide. `paths`: the selection's (split_selection)."""
    changed = sorted(change.files)
    trigger = run_all_trigger(change, run_all_globs(settings, paths))
    if trigger is not None:
        return Plan(list(selection), trigger, run_all=True, changed=changed)
    code = [path for path in changed if is_code(path)]
    if not changed:
        return Plan(None, "nothing changed since the baseline", changed=changed)
    if not code:
        return Plan(
            None,
            f"the change ({_shorten(changed)}) has no Python file and nothing in run_all_on, "
            "so it affects no benchmark",
            changed=changed,
        )
    return None


def build_map(
    root: Path,
    baseline: str,
    paths: Sequence[str],
    options: Sequence[str],
    settings: BenchSettings,
    *,
    shell: Shell,
    log: Path,
    environ: Mapping[str, str],
    timeout: float,
    run_id: str = "",
) -> CoverageMap:
    """Check the baseline out into a scratch worktree (removed on every exit, as the
    comparison's), sync its environment and measure its coverage map there."""
    sweep(root, shell=shell, log=log, environ=environ)
    prefix = f"{SCRATCH_PREFIX}{run_id}-map-" if run_id else f"{SCRATCH_PREFIX}map-"
    with synced_baseline(
        root,
        baseline,
        settings=settings,
        shell=shell,
        log=log,
        environ=environ,
        prefix=prefix,
        timeout=timeout,
        error=AffectedError,
    ) as (tree, env):
        return measure_map(
            tree,
            baseline,
            paths,
            options,
            shell=shell,
            log=log,
            environ=env,
            groups=settings.groups,
            timeout=timeout,
        )


def plan(
    root: Path,
    baseline: str,
    selection: Sequence[str],
    settings: BenchSettings,
    *,
    shell: Shell,
    log: Path,
    environ: Mapping[str, str],
    timeout: float,
    run_id: str = "",
    clock: Callable[[], float] = time.perf_counter,
) -> Plan:
    """What the bench gate runs for the change from `baseline` to the working tree: the diff
    decides alone when it can (no worktree), else the baseline's coverage map (stored under
    `.gates/bench/affected/<baseline>.json`, measured on a miss)."""
    change = changes(root, baseline)
    paths, options = split_selection(root, selection)
    decided = plan_from_diff(change, settings, selection, paths)
    if decided is not None:
        return decided
    coverage_map = load_map(root, baseline, [*paths, *options])
    source = f"stored in {MAP_DIR / (baseline + '.json')}"
    if coverage_map is None:
        start = clock()
        try:
            coverage_map = build_map(
                root,
                baseline,
                paths,
                options,
                settings,
                shell=shell,
                log=log,
                environ=environ,
                timeout=timeout,
                run_id=run_id,
            )
        except AffectedError as error:
            # Without a map nothing says which benchmarks are safe to skip: run them all.
            reason = f"no coverage map of the baseline ({error})"
            return Plan(list(selection), reason, run_all=True, changed=sorted(change.files))
        save_map(root, coverage_map)
        source = f"measured on the baseline in {clock() - start:.0f} s"
    result = select(change, coverage_map, options)
    result.map_source = source
    return result
