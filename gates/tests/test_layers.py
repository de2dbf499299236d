"""The package's layers: every import inside gates points down, never up or sideways, and the
pytest plugins stay single stdlib-only files (they are copied into environments without gates)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from gates.checks import CHECKS
from gates.engine import pipeline

SOURCE = Path(__file__).parents[1] / "src" / "gates"
# Bottom first; a module may import its own package or anything in a lower layer.
LAYERS = (
    ("__init__", "errors"),
    ("files",),
    ("project",),
    ("tiers",),
    ("provision",),
    ("init",),
    ("pytest_plugins",),
    ("git", "coverage"),
    ("engine",),
    ("ratchet",),
    ("bench", "parallel", "soak", "changes", "shards"),
    ("checks",),
    ("reporting",),
    ("cli", "__main__"),
)
RANK = {name: rank for rank, layer in enumerate(LAYERS) for name in layer}


def unit(module: str) -> str:
    """The top-level module or package of gates that `module` belongs to."""
    parts = module.split(".")
    return "__init__" if len(parts) < 2 or parts[1] == "__version__" else parts[1]


def imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [f"gates.{a.name}" for a in node.names] if node.module == "gates" else []
            found += [(node.lineno, n) for n in names or [node.module]]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
    return found


def test_every_import_points_down() -> None:
    wrong = []
    for path in sorted(SOURCE.rglob("*.py")):
        relative = path.relative_to(SOURCE).with_suffix("")
        mine = unit(".".join(("gates", *relative.parts)))
        for line, target in imports(path):
            if target.split(".")[0] != "gates" or unit(target) == mine:
                continue
            other = unit(target)
            allowed = (mine, other) == ("__main__", "cli") or RANK[other] < RANK[mine]
            if not allowed:
                wrong.append(f"{relative}:{line} imports {target}")
    assert wrong == []


def test_the_pytest_plugins_import_only_the_standard_library() -> None:
    for name in ("timing", "collection", "shard"):
        path = SOURCE / "pytest_plugins" / f"{name}.py"
        tops = {target.split(".")[0] for _, target in imports(path)}
        assert tops - set(sys.stdlib_module_names) <= {"__future__", "pytest", "_pytest"}, path


def test_the_pipeline_knows_every_check_of_the_registry() -> None:
    assert tuple(CHECKS) == pipeline.CHECKS
