"""Where the project is and what its pyproject.toml says about the gates."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from gates.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # gates runs on 3.10 too, where the same parser is the tomli package
    import tomli as tomllib

TOMLDecodeError = tomllib.TOMLDecodeError
toml_loads = tomllib.loads

PYPROJECT = "pyproject.toml"


def find_root(start: Path | None = None) -> Path:
    """Return the nearest directory at or above `start` whose pyproject.toml has `[tool.gates]`.

    The search stops at the root of the git repository: a project never reaches above it.
    """
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / PYPROJECT
        if candidate.is_file() and "gates" in _load(candidate).get("tool", {}):
            return directory
        if (directory / ".git").exists():
            break
    raise ConfigError(
        f"no pyproject.toml with a [tool.gates] table at or above {here}; "
        "run from inside the project (the workspace root declares the pipeline)"
    )


def load_pyproject(root: Path) -> dict[str, Any]:
    """Return the parsed pyproject.toml of `root`."""
    return _load(root / PYPROJECT)


def gates_table(root: Path) -> dict[str, Any]:
    """Return `[tool.gates]` of the project at `root`."""
    table = load_pyproject(root).get("tool", {}).get("gates")
    if not isinstance(table, dict):
        raise ConfigError(f"{root / PYPROJECT} has no [tool.gates] table")
    return table


def supported_pythons(root: Path) -> list[str]:
    """Return the Python versions the project's classifiers declare, oldest first (like nox)."""
    classifiers = load_pyproject(root).get("project", {}).get("classifiers", [])
    versions = [
        match.group(1)
        for item in classifiers
        if (match := re.fullmatch(r"Programming Language :: Python :: (3\.\d+)", item))
    ]
    return sorted(versions, key=lambda v: tuple(int(p) for p in v.split(".")))


def _load(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from error
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist: is this the project's root?") from None
