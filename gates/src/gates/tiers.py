"""The project's test tiers, declared once in `[tool.gates.tiers]`.

Each tier names its test directories, the nox session that runs it, the dependency groups its
environment needs and the system tools it uses:

    [tool.gates.tiers.unit]
    dirs = ["backend/tests", "gates/tests"]
    session = "unit-{python}"
    groups = ["test"]

    [tool.gates.tiers.e2e]
    dirs = ["e2e"]
    session = "e2e"
    groups = ["e2e"]
    tools = { chromium = "chromium" }   # command = Debian package

The root conftest.py (tier markers), the noxfile (default test directories), the checks,
soak and provisioning all read this table, so adding a tier is one entry plus its tests. A tier
without `dirs` has no tests of its own and only declares a session's tools (e.g. `lint`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gates.errors import ConfigError
from gates.project import gates_table, supported_pythons

TIER_KEYS = frozenset({"dirs", "session", "groups", "tools", "description"})
NAME = re.compile(r"[a-z][a-z0-9_-]*")


@dataclass(frozen=True)
class Tier:
    """One test tier: where its tests live and what running them needs."""

    name: str
    dirs: tuple[str, ...] = ()
    session: str = ""  # the nox session, "{python}" already replaced; "" when there is none
    groups: tuple[str, ...] = ()
    tools: Mapping[str, object] = field(default_factory=dict)  # command = package (provision)
    description: str = ""

    @property
    def has_tests(self) -> bool:
        return bool(self.dirs)

    def owns(self, relative: str) -> bool:
        """Whether a path (relative to the root, with `/`) lies in one of the tier's dirs."""
        return any(relative == d or relative.startswith(d.rstrip("/") + "/") for d in self.dirs)


@dataclass(frozen=True)
class Tiers:
    """Every tier of the project, in declaration order."""

    tiers: tuple[Tier, ...]

    @classmethod
    def load(cls, root: Path) -> Tiers:
        """Read and validate `[tool.gates.tiers]` of the project at `root`."""
        pythons = supported_pythons(root)
        return cls.from_table(
            gates_table(root).get("tiers", {}), python=pythons[0] if pythons else ""
        )

    @classmethod
    def from_table(cls, table: object, *, python: str = "") -> Tiers:
        """Build the tiers from the table; every mistake raises ConfigError naming it."""
        if not isinstance(table, dict):
            raise ConfigError("[tool.gates.tiers] must map tier names to tables")
        return cls(tuple(_tier(name, raw, python) for name, raw in table.items()))

    def __iter__(self) -> Iterator[Tier]:
        return iter(self.tiers)

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tiers]

    @property
    def tested(self) -> list[Tier]:
        """The tiers that have tests (every one but tool-only tiers such as lint)."""
        return [t for t in self.tiers if t.has_tests]

    def get(self, name: str) -> Tier:
        """The tier called `name`; an unknown name raises ConfigError naming the known ones."""
        for tier in self.tiers:
            if tier.name == name:
                return tier
        known = ", ".join(self.names) or "none"
        raise ConfigError(f"no tier {name!r} in [tool.gates.tiers]; known tiers: {known}")

    def tier_of(self, relative: str) -> Tier | None:
        """The tier whose directory holds `relative` (first declared wins), or None."""
        return next((t for t in self.tiers if t.owns(relative)), None)

    def dirs(self, names: Iterable[str] | None = None) -> list[str]:
        """The test directories of the named tiers (all tiers by default), in order."""
        chosen = self.tiers if names is None else [self.get(n) for n in names]
        return list(dict.fromkeys(d for t in chosen for d in t.dirs))

    def groups(self, names: Iterable[str] | None = None) -> list[str]:
        """The dependency groups of the named tiers (all tested tiers by default), in order."""
        chosen = self.tested if names is None else [self.get(n) for n in names]
        return list(dict.fromkeys(g for t in chosen for g in t.groups))


def _tier(name: object, raw: object, python: str) -> Tier:
    where = f"[tool.gates.tiers.{name}]"
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ConfigError(f"{where}: a tier name is lower-case letters, digits, - and _")
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table (dirs, session, groups, tools)")
    unknown = sorted(set(raw) - TIER_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; allowed: {sorted(TIER_KEYS)}")
    strings: dict[str, tuple[str, ...]] = {}
    for key in ("dirs", "groups"):
        value = raw.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"{where}: `{key}` must be a list of strings")
        strings[key] = tuple(value)
    for directory in strings["dirs"]:
        if Path(directory).is_absolute() or ".." in Path(directory).parts:
            raise ConfigError(f"{where}: dirs are relative to the project root, not {directory!r}")
    session = raw.get("session", "")
    if not isinstance(session, str):
        raise ConfigError(f"{where}: `session` must be the name of a nox session")
    tools = raw.get("tools", {})
    if not isinstance(tools, dict):
        raise ConfigError(f"{where}: `tools` must map a command to its Debian package")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{where}: `description` must be a string")
    return Tier(
        name,
        tuple(d.rstrip("/") for d in strings["dirs"]),
        session.replace("{python}", python) if python else session,
        strings["groups"],
        tools,
        description,
    )
