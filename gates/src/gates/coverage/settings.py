"""`[tool.gates.coverage]`: which packages count, where the combined result goes, the floor and
the ratchet's tolerance. The engine hands every command gate the data file of its own
(`variable`, coverage.py's COVERAGE_FILE by default), so a tool that honours it measures into the
run's directory and no stale file of an earlier run is ever combined."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gates.errors import ConfigError

KEYS = ("packages", "variable", "output", "floor", "tolerance")
DEFAULT_VARIABLE = "COVERAGE_FILE"
DEFAULT_OUTPUT = ".gates/coverage"
DEFAULT_FLOOR = 90.0
DEFAULT_TOLERANCE = 0.1  # percentage points: coverage.py's own rounding moves figures this much


@dataclass(frozen=True)
class CoverageSettings:
    """The coverage table, validated."""

    packages: tuple[str, ...]
    variable: str = DEFAULT_VARIABLE
    output: str = DEFAULT_OUTPUT
    floor: float = DEFAULT_FLOOR
    tolerance: float = DEFAULT_TOLERANCE

    @classmethod
    def from_table(cls, raw: object) -> CoverageSettings:
        """Build from `[tool.gates.coverage]`; every mistake raises ConfigError naming it."""
        where = "[tool.gates.coverage]"
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{where} must be a table (packages, variable, output, floor, …)")
        unknown = sorted(set(raw) - set(KEYS))
        if unknown:
            raise ConfigError(f"{where}: unknown keys {unknown}; allowed: {list(KEYS)}")
        packages = raw.get("packages")
        if (
            not isinstance(packages, list)
            or not packages
            or not all(isinstance(p, str) and p.isidentifier() for p in packages)
        ):
            raise ConfigError(
                f"{where}: `packages` must list the measured packages' import names, "
                f'e.g. packages = ["mypkg"]; got {packages!r}'
            )
        variable = _string(where, "variable", raw.get("variable", DEFAULT_VARIABLE))
        output = _string(where, "output", raw.get("output", DEFAULT_OUTPUT))
        floor = _percent(where, "floor", raw.get("floor", DEFAULT_FLOOR))
        tolerance = _percent(where, "tolerance", raw.get("tolerance", DEFAULT_TOLERANCE))
        return cls(tuple(packages), variable, output, floor, tolerance)


def _string(where: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: `{key}` must be a non-empty string; got {value!r}")
    return value


def _percent(where: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
        raise ConfigError(f"{where}: `{key}` must be a percentage from 0 to 100; got {value!r}")
    return float(value)
