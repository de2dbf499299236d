"""The pipeline as data: ordered phases of ordered gates, read from `[tool.gates]`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gates.coverage.settings import CoverageSettings
from gates.errors import ConfigError
from gates.project import gates_table, supported_pythons
from gates.tiers import Tiers

GateKind = Literal["session", "run", "check"]
CHECKS = ("provision", "collect", "categorization", "speedup", "bench", "audit", "coverage")
DEFAULT_HISTORY = ".gates/history.jsonl"
# pytest-split's stored durations, one JSON file per tier (committed; `gates durations` refreshes).
DEFAULT_DURATIONS = "test-durations"
# The checks' own options, kept in Gate.options.
OPTION_KEYS = (
    "tier", "tiers", "dirs", "groups", "min_speedup", "serial", "parallel", "ignore", "service_url"
)  # fmt: skip
# The speedup check reads the timings of these earlier gates of its phase (option: default).
SPEEDUP_RUNS = {"serial": "serial", "parallel": "isolation"}
# Keys a gate may carry beyond its kind; anything else is a typo worth an error.
GATE_KEYS = frozenset(
    (
        "name",
        "session",
        "run",
        "check",
        "args",
        "junit",
        "same_outcomes_as",
        "ok_exit_codes",
        "timeout",
        "every_shard",
        *OPTION_KEYS,
    )
)


@dataclass(frozen=True)
class Gate:
    """One gate: what it runs (a nox session, a command or a built-in check) and how it passes."""

    phase: str
    name: str
    kind: GateKind
    target: str | tuple[str, ...]  # session name, argv, or check name
    args: tuple[str, ...] = ()
    junit: bool = False
    same_outcomes_as: str | None = None
    ok_exit_codes: tuple[int, ...] = (0,)
    timeout: float | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    # Runs in every shard of a sharded run (test runs do, each its part); else only in shard 1.
    every_shard: bool = False

    @property
    def key(self) -> str:
        return f"{self.phase}/{self.name}"

    @property
    def durations_name(self) -> str:
        """The stem of its stored durations file: its tier, else its phase (a phase's test runs
        usually run the same tests: serially, then in parallel)."""
        tier = self.options.get("tier")
        return tier if isinstance(tier, str) else self.phase

    def describe(self) -> str:
        """What the gate runs, in a few words."""
        if self.kind == "session":
            return f"nox -s {self.target}"
        if self.kind == "run":
            return " ".join(self.target)
        return f"check {self.target}"

    def command_for_a_person(self) -> str:
        """The command a person runs to retry just this gate by hand."""
        if self.kind == "session":
            posargs = f" -- {' '.join(self.args)}" if self.args else ""
            return f"uv run nox -s {self.target}{posargs}"
        if self.kind == "run":
            return " ".join(self.target)
        return f"gates run --only {self.phase}"


@dataclass(frozen=True)
class Phase:
    """An ordered list of gates; a phase passes when all its gates pass."""

    index: int
    name: str
    gates: tuple[Gate, ...]


@dataclass(frozen=True)
class Pipeline:
    """The ordered phases, where history lives, and which phases make a commit green."""

    phases: tuple[Phase, ...]
    history: str = DEFAULT_HISTORY
    green_phases: tuple[str, ...] = ()
    durations: str = DEFAULT_DURATIONS
    # `[tool.gates.coverage]`: every command gate measures into its own data file; None: off.
    coverage: CoverageSettings | None = None

    @classmethod
    def load(cls, root: Path) -> Pipeline:
        """Read and validate the pipeline of the project at `root`."""
        return cls.from_table(gates_table(root), pythons=supported_pythons(root))

    @classmethod
    def from_table(cls, table: Mapping[str, Any], *, pythons: Sequence[str] = ()) -> Pipeline:
        """Build a pipeline from `[tool.gates]`; every mistake raises ConfigError naming it."""
        raw_phases = table.get("phases")
        if not isinstance(raw_phases, list) or not raw_phases:
            raise ConfigError("[tool.gates] needs [[tool.gates.phases]] entries (name, gates)")
        python = pythons[0] if pythons else ""
        tiers = Tiers.from_table(table.get("tiers", {}), python=python)
        phases: list[Phase] = []
        for index, raw in enumerate(raw_phases):
            if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
                raise ConfigError(f"phase #{index} of [tool.gates] needs a string `name`")
            name = raw["name"]
            if any(p.name == name for p in phases):
                raise ConfigError(f"phase {name!r} is declared twice in [tool.gates]")
            raw_gates = raw.get("gates", [])
            if not isinstance(raw_gates, list):
                raise ConfigError(f"phase {name!r}: `gates` must be a list of tables")
            gates = tuple(_gate(name, g, python, tiers) for g in raw_gates)
            _check_names(name, gates)
            phases.append(Phase(index, name, gates))
        names = [p.name for p in phases]
        green = table.get("green_phases", names)
        if not isinstance(green, list) or any(g not in names for g in green):
            raise ConfigError(f"[tool.gates] green_phases must list phases among {names}")
        history = table.get("history", DEFAULT_HISTORY)
        if not isinstance(history, str):
            raise ConfigError("[tool.gates] history must be a path relative to the project root")
        durations = table.get("durations", DEFAULT_DURATIONS)
        if not isinstance(durations, str):
            raise ConfigError(
                "[tool.gates] durations must be a directory relative to the project root"
            )
        raw_coverage = table.get("coverage")
        coverage = CoverageSettings.from_table(raw_coverage) if raw_coverage is not None else None
        if coverage is None and any(g.target == "coverage" for p in phases for g in p.gates):
            raise ConfigError(
                'a gate runs check = "coverage", which needs a [tool.gates.coverage] table '
                'naming the measured packages: packages = ["mypkg"]'
            )
        return cls(tuple(phases), history, tuple(green), durations, coverage)

    @property
    def phase_names(self) -> list[str]:
        return [p.name for p in self.phases]

    def phase(self, name: str) -> Phase:
        for phase in self.phases:
            if phase.name == name:
                return phase
        raise ConfigError(f"unknown phase {name!r}; phases are: {', '.join(self.phase_names)}")

    def select(self, only: Sequence[str] = (), start: str | None = None) -> list[Phase]:
        """The phases to run: `only` those (in pipeline order), or all from `start` on."""
        if only and start:
            raise ConfigError("use either --only or --from, not both")
        if only:
            wanted = {self.phase(name).name for name in only}
            return [p for p in self.phases if p.name in wanted]
        if start:
            return list(self.phases[self.phase(start).index :])
        return list(self.phases)

    def green_gates(self) -> list[tuple[str, str]]:
        """(phase, gate) pairs that must pass clean for a commit to be green."""
        return [
            (p.name, g.name) for p in self.phases if p.name in self.green_phases for g in p.gates
        ]


def _audit_options(where: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The audit check's `ignore` (advisory ids) and `service_url` (an OSV API), checked."""
    options: dict[str, Any] = {}
    if "ignore" in raw:
        if not isinstance(raw["ignore"], list) or not all(
            isinstance(i, str) and i for i in raw["ignore"]
        ):
            raise ConfigError(f'{where}: `ignore` must be a list of advisory ids, e.g. ["GHSA-…"]')
        options["ignore"] = list(raw["ignore"])
    if "service_url" in raw:
        url = raw["service_url"]
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(
                f"{where}: `service_url` must be an http(s) URL of an OSV API, "
                "e.g. https://api.osv.dev/"
            )
    return options


def _gate(phase: str, raw: object, python: str, tiers: Tiers) -> Gate:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise ConfigError(f"phase {phase!r}: every gate needs a string `name`")
    name = raw["name"]
    where = f"gate {phase}/{name}"
    unknown = sorted(set(raw) - GATE_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; allowed: {sorted(GATE_KEYS)}")
    kinds = [k for k in ("session", "run", "check") if k in raw]
    if len(kinds) != 1:
        raise ConfigError(
            f"{where}: give exactly one of session, run, check (got {kinds or 'none'})"
        )
    kind: GateKind = kinds[0]  # type: ignore[assignment]
    target: str | tuple[str, ...]
    if kind == "run":
        target = _strings(where, "run", raw["run"])
        if not target:
            raise ConfigError(f"{where}: `run` must be a non-empty argv list")
    elif not isinstance(raw[kind], str):
        raise ConfigError(f"{where}: `{kind}` must be a string")
    elif kind == "session":
        target = raw["session"].replace("{python}", python) if python else raw["session"]
    else:
        target = raw["check"]
        if target not in CHECKS:
            raise ConfigError(f"{where}: unknown check {target!r}; built-in checks: {list(CHECKS)}")
    timeout = raw.get("timeout")
    if timeout is not None and not isinstance(timeout, int | float):
        raise ConfigError(f"{where}: `timeout` must be seconds")
    codes = raw.get("ok_exit_codes", [0])
    if not isinstance(codes, list) or not all(isinstance(c, int) for c in codes):
        raise ConfigError(f"{where}: `ok_exit_codes` must be a list of integers")
    every_shard = raw.get("every_shard")
    if every_shard is not None and not isinstance(every_shard, bool):
        raise ConfigError(f"{where}: `every_shard` must be true or false")
    same = raw.get("same_outcomes_as")
    if same is not None and not isinstance(same, str):
        raise ConfigError(f"{where}: `same_outcomes_as` must name an earlier gate of {phase!r}")
    options = {k: raw[k] for k in OPTION_KEYS if k in raw}
    args = _strings(where, "args", raw.get("args", []))
    options.update(_audit_options(where, raw))
    if "tier" in raw:
        if not isinstance(raw["tier"], str):
            raise ConfigError(f"{where}: `tier` must name a tier of [tool.gates.tiers]")
        try:
            tier = tiers.get(raw["tier"])
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}") from None
        # A session gate runs the tier's tests unless `args` says otherwise.
        if kind == "session" and not args:
            args = tier.dirs
    junit = bool(raw.get("junit", False)) or same is not None
    if junit and kind == "check":
        raise ConfigError(f"{where}: `junit` and `same_outcomes_as` are for session and run gates")
    return Gate(
        phase=phase,
        name=name,
        kind=kind,
        target=target,
        args=args,
        junit=junit,
        same_outcomes_as=same,
        ok_exit_codes=tuple(codes),
        timeout=float(timeout) if timeout is not None else None,
        options=options,
        # A test run splits its tests between the shards; anything else is done once.
        every_shard=junit if every_shard is None else every_shard,
    )


def _strings(where: str, key: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: `{key}` must be a list of strings")
    return tuple(value)


def _check_names(phase: str, gates: Sequence[Gate]) -> None:
    seen: list[str] = []
    for gate in gates:
        if gate.name in seen:
            raise ConfigError(f"phase {phase!r} declares gate {gate.name!r} twice")
        if gate.same_outcomes_as is not None:
            baseline = next((g for g in gates if g.name == gate.same_outcomes_as), None)
            if gate.same_outcomes_as not in seen or baseline is None or not baseline.junit:
                raise ConfigError(
                    f"gate {phase}/{gate.name}: same_outcomes_as={gate.same_outcomes_as!r} "
                    "must name an earlier gate of the same phase with junit = true"
                )
        if gate.kind == "check" and gate.target == "speedup":
            for option, default in SPEEDUP_RUNS.items():
                name = gate.options.get(option, default)
                timed = next((g for g in gates if g.name == name), None)
                if name not in seen or timed is None or not timed.junit:
                    raise ConfigError(
                        f"gate {phase}/{gate.name}: {option}={name!r} must name an earlier gate "
                        "of the same phase with junit = true (the speedup check reads its timings)"
                    )
        seen.append(gate.name)
