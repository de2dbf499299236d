"""Helpers shared by the gate engine's tests (a unique module name: tests dirs share sys.path)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PY = sys.executable


def git(root: Path, *args: str) -> str:
    """Run git in `root`, failing the test with git's message when it fails."""
    result = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr}"
    return result.stdout


def toml_list(items: list[str]) -> str:
    """A TOML array of basic strings (JSON's escaping is valid TOML)."""
    return "[" + ", ".join(json.dumps(item) for item in items) + "]"


def pipeline_toml(phases: dict[str, list[str]], *, green: list[str] | None = None) -> str:
    """A [tool.gates] table; each gate is an inline-table body such as "name='a', run=[...]"."""
    lines = ["[tool.gates]", "history = '.gates/history.jsonl'"]
    if green is not None:
        lines.append(f"green_phases = {toml_list(green)}")
    for name, gates in phases.items():
        lines += ["", "[[tool.gates.phases]]", f"name = '{name}'", "gates = ["]
        lines += [f"  {{ {gate} }}," for gate in gates]
        lines.append("]")
    return "\n".join(lines) + "\n"


def ok_gate(name: str) -> str:
    return f"name = '{name}', run = {toml_list([PY, '-c', 'pass'])}"


def failing_gate(name: str, message: str = "boom") -> str:
    code = f"import sys; print('{message}'); sys.exit(3)"
    return f"name = '{name}', run = {toml_list([PY, '-c', code])}"


def placeholder_save(_figure: object, directory: Path, name: str) -> str:
    """Stands in for `charts._save`: the chart's file, with no drawing in it."""
    from gates.reporting.html import charts  # the report extra: only where a test needs it

    file = f"{charts.CHART_PREFIX}{name}.svg"
    (directory / file).write_text("<svg/>")
    return file


def callgrind_dump(total: int, part: int = 1) -> str:
    """A dump in callgrind's format as `--dump-after` writes it: the window's count is its
    `totals:` line (the `summary:` line is garbage in the last dump; a wrong one here)."""
    return (
        "# callgrind format\nversion: 1\ncreator: callgrind-3.19.0\npid: 4242\n"
        f"cmd:  python -m pytest\npart: {part}\n\n"
        "desc: Trigger: --dump-after=callgrind_stop_instrumentation\n\n"
        f"positions: line\nevents: Ir\nsummary: 18446744073680293453\n\n\ntotals: {total}\n"
    )
