"""The run's coverage as one result: the gates' data files combined by coverage.py into
`<output>/.coverage`, `coverage.json` and `html/`, and the figures the history keeps.

coverage.py runs as a command (`python -m coverage`) from the project root, so its
configuration and relative paths are the project's own and gates never imports it."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gates.errors import GatesError

# gates.engine.execution.Shell's shape (this package sits below the engine): runs one command
# with its output appended to a log, returns the exit status.
Shell = Callable[..., int]
DATA_DIR = "coverage"  # in a run's (or shard's) directory: one subdirectory per gate
DATA_NAME = ".coverage"


class CoverageError(GatesError):
    """The data could not be combined or read."""


def data_file(run_dir: Path, gate_key: str) -> Path:
    """Where one gate's data lands (its own directory: its processes' parallel files too)."""
    return run_dir / DATA_DIR / gate_key.replace("/", "-") / DATA_NAME


def data_files(directories: Iterable[Path]) -> list[Path]:
    """Every data file the gates of these run (or shard) directories left, sorted."""
    found: list[Path] = []
    for directory in directories:
        found += (directory / DATA_DIR).glob(f"*/{DATA_NAME}*")
    return sorted(path for path in found if path.is_file())


def sources(files: Sequence[Path]) -> list[str]:
    """The gates that measured: the names of their data directories (`phase-gate`)."""
    return sorted({path.parent.name for path in files})


@dataclass(frozen=True)
class Figures:
    """Percentages (lines and branches together, as coverage.py counts them)."""

    total: float
    packages: dict[str, float]
    # Per module: (covered lines, missed lines); what names the files that lost covered lines.
    files: dict[str, tuple[int, int]] = field(default_factory=dict)

    def metrics(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "packages": dict(self.packages),
            "files": {path: list(counts) for path, counts in self.files.items()},
        }

    @classmethod
    def from_metrics(cls, metrics: Mapping[str, Any]) -> Figures | None:
        """The figures a history record holds, or None when it holds none."""
        total = metrics.get("total")
        if not isinstance(total, int | float):
            return None
        packages = metrics.get("packages") or {}
        files = metrics.get("files") or {}
        return cls(
            float(total),
            {str(k): float(v) for k, v in packages.items()},
            {str(k): (int(v[0]), int(v[1])) for k, v in files.items()},
        )


def combine(
    root: Path,
    files: Sequence[Path],
    output: Path,
    *,
    shell: Shell,
    log: Path,
    environ: Mapping[str, str] = os.environ,
) -> Path:
    """Combine `files` into `output` (data, coverage.json, html/); returns coverage.json.

    The gates' files are kept (`--keep`): a shard's data is combined again by `gates merge`."""
    if not files:
        raise CoverageError("no coverage data to combine")
    if output.exists():
        shutil.rmtree(output)
    output.mkdir(parents=True)
    data = output / DATA_NAME
    coverage = [sys.executable, "-m", "coverage"]
    steps = [
        [*coverage, "combine", "--keep", f"--data-file={data}", *map(str, files)],
        # --ignore-errors: a measured module that is gone since (a scratch copy a test made and
        # removed) is left out of the figures instead of failing the report.
        [*coverage, "json", "-i", f"--data-file={data}", "-o", str(output / "coverage.json")],
        [*coverage, "html", "-i", f"--data-file={data}", "-d", str(output / "html")],
    ]
    # Not the gates' own data file, nor a subprocess patch: this combines, it measures nothing.
    env = {k: v for k, v in environ.items() if not k.startswith("COVERAGE_")}
    for argv in steps:
        status = shell(argv, cwd=root, log=log, env=env, timeout=600)
        # `json` and `html` exit 2 when the total is under a fail_under of the config: the
        # figures are still written, and the floor is this check's to judge.
        if status not in (0, 2) or (status == 2 and argv[3] == "combine"):
            raise CoverageError(f"`{' '.join(argv[2:4])}` failed with exit status {status}")
    return output / "coverage.json"


def figures(report: Path, packages: Sequence[str]) -> Figures:
    """Total, per package and per module figures from coverage.py's JSON report."""
    try:
        data = json.loads(report.read_text())
        files: dict[str, Any] = data["files"]
        totals = data["totals"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CoverageError(f"cannot read {report}: {error}") from None
    counts: dict[str, list[int]] = {name: [0, 0] for name in packages}
    per_file: dict[str, tuple[int, int]] = {}
    for path, entry in sorted(files.items()):
        summary = entry["summary"]
        per_file[path] = (int(summary["covered_lines"]), int(summary["missing_lines"]))
        package = package_of(path, packages)
        if package is not None:
            counts[package][0] += summary["covered_lines"] + summary.get("covered_branches", 0)
            counts[package][1] += summary["num_statements"] + summary.get("num_branches", 0)
    return Figures(
        total=_percent(
            totals["covered_lines"] + totals.get("covered_branches", 0),
            totals["num_statements"] + totals.get("num_branches", 0),
        ),
        packages={name: _percent(c, n) for name, (c, n) in counts.items() if n},
        files=per_file,
    )


def package_of(path: str, packages: Sequence[str]) -> str | None:
    """The measured package a file belongs to: the innermost directory named like one
    (`backend/src/shop/api/app.py` is `shop`'s)."""
    parts = Path(path).parts[:-1]
    for part in reversed(parts):
        if part in packages:
            return part
    return None


def _percent(covered: int, total: int) -> float:
    return round(100.0 * covered / total, 2) if total else 100.0
