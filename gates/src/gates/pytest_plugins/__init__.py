"""The pytest plugins that gates hands to a project's test runs, loadable in any environment.

A project's test environment need not contain gates at all (`uvx --from … gates run` in a
project that never added it), so the plugins are stdlib-only modules: each is copied into the
run's directory under a top-level name, that directory goes first on PYTHONPATH, and pytest gets
`-p <name>`. The copy is the installed module's own source, so both ways load the same code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib.util import find_spec
from pathlib import Path

# Top-level module name -> the gates module whose source it is (found, not imported: a plugin may
# import pytest, which the engine's own environment need not have).
PLUGINS = {
    "gates_timing": "gates.pytest_plugins.timing",
    "gates_collection": "gates.pytest_plugins.collection",
    "gates_shard": "gates.pytest_plugins.shard",
}


def plugin(
    name: str, run_dir: Path, environ: Mapping[str, str]
) -> tuple[list[str], dict[str, str]]:
    """pytest's `-p NAME` and the environment that makes NAME importable (PYTHONPATH first)."""
    spec = find_spec(PLUGINS[name])
    if spec is None or spec.origin is None:  # pragma: no cover - the plugins ship with gates
        raise ImportError(f"no module {PLUGINS[name]}")
    directory = run_dir / "pytest-plugins"
    directory.mkdir(parents=True, exist_ok=True)
    source = Path(spec.origin).read_text()
    target = directory / f"{name}.py"
    if not target.exists() or target.read_text() != source:
        target.write_text(source)
    path = os.pathsep.join(p for p in (str(directory), environ.get("PYTHONPATH", "")) if p)
    return ["-p", name], {**environ, "PYTHONPATH": path}
