"""Provisioning: install the system tools a test tier needs, or say exactly how to get them.

The tools of each tier and the Debian package that provides each are data, declared with the
tier in `[tool.gates.tiers.<tier>] tools` of the root pyproject.toml. `ensure(tier)` finds them (on
PATH and in the `[tool.gates.provision] extra_dirs` where Debian hides some, such as
/usr/lib/postgresql/<ver>/bin), installs what is missing when that needs no password (root, or
passwordless sudo) unless the switch variable (`[tool.gates.provision] switch`, default
GATES_PROVISION) is 0, and returns a report. A tier whose tools are still missing is skipped
with the reason and the install command, except under CI=true, where it fails: CI never hides a
tier.

Run `gates provision [TIER ...]` to provision from a shell (all tiers by default).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gates.errors import ConfigError, ToolsMissingError
from gates.project import find_root, gates_table
from gates.tiers import Tiers

# Runs one command and returns its completed process; injected by tests so apt never really runs.
Runner = Callable[[Sequence[str], Mapping[str, str]], "subprocess.CompletedProcess[str]"]

VERSION_TIMEOUT_S = 10
DEFAULT_SWITCH = "GATES_PROVISION"
# apt waits for a dpkg lock held by a concurrent install instead of failing at once.
APT_OPTIONS = ("-o", "DPkg::Lock::Timeout=300")


def is_ci(environ: Mapping[str, str] | None = None) -> bool:
    """Return whether the environment says this is CI (CI=true, 1 or yes)."""
    return (environ if environ is not None else os.environ).get("CI", "").lower() in {
        "1",
        "true",
        "yes",
    }


@dataclass(frozen=True)
class Requirement:
    """One command a tier needs, the Debian package that provides it, how to ask its version."""

    command: str
    package: str
    version_args: tuple[str, ...] = ("--version",)


@dataclass(frozen=True)
class Tool:
    """A tool that was found: where it is and the first line it prints about its version."""

    name: str
    path: Path
    version: str


@dataclass(frozen=True)
class ProvisionSpec:
    """What every tier needs, and the extra directories (globs) searched after PATH."""

    tiers: Mapping[str, tuple[Requirement, ...]]
    extra_dirs: tuple[str, ...] = ()
    switch: str = DEFAULT_SWITCH  # the variable that turns installing off when it is 0

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> ProvisionSpec:
        """Build the spec from `[tool.gates.provision]` plus `tiers`, each tier's `tools`
        (command = package); a bad entry raises ConfigError."""
        extra = table.get("extra_dirs", [])
        tiers_table = table.get("tiers", {})
        switch = table.get("switch", DEFAULT_SWITCH)
        if not isinstance(extra, list) or not all(isinstance(d, str) for d in extra):
            raise ConfigError("[tool.gates.provision] extra_dirs must be a list of path globs")
        if not isinstance(switch, str) or not switch.isidentifier():
            raise ConfigError("[tool.gates.provision] switch must name an environment variable")
        if not isinstance(tiers_table, dict):
            raise ConfigError("[tool.gates.tiers] must map a tier to its table")
        tiers: dict[str, tuple[Requirement, ...]] = {}
        for tier, tools in tiers_table.items():
            if not isinstance(tools, dict):
                raise ConfigError(f"[tool.gates.tiers.{tier}] tools must map command → package")
            tiers[tier] = tuple(_requirement(tier, name, value) for name, value in tools.items())
        return cls(tiers=tiers, extra_dirs=tuple(extra), switch=switch)

    @classmethod
    def load(cls, root: Path | None = None) -> ProvisionSpec:
        """Read the spec from the project at `root` (found from the working directory if None):
        the tools of `[tool.gates.tiers]` and the settings of `[tool.gates.provision]`."""
        root = root or find_root()
        tools = {tier.name: dict(tier.tools) for tier in Tiers.load(root) if tier.tools}
        return cls.from_table({**gates_table(root).get("provision", {}), "tiers": tools})

    def requirements(self, tier: str) -> tuple[Requirement, ...]:
        """Return what `tier` needs; an unknown tier raises ConfigError naming the known ones."""
        if tier not in self.tiers:
            known = ", ".join(sorted(self.tiers)) or "none"
            raise ConfigError(
                f"no tier {tier!r} with tools in [tool.gates.tiers]; known tiers: {known}"
            )
        return self.tiers[tier]


def _requirement(tier: str, name: str, value: object) -> Requirement:
    if isinstance(value, str):
        return Requirement(name, value)
    if isinstance(value, dict) and isinstance(value.get("package"), str):
        args = value.get("version_args", ["--version"])
        if isinstance(args, list) and all(isinstance(a, str) for a in args):
            return Requirement(name, value["package"], tuple(args))
    raise ConfigError(
        f"[tool.gates.tiers.{tier}] tools: {name} must be a package name or "
        '{ package = "...", version_args = ["..."] }'
    )


@dataclass
class ProvisionReport:
    """What `ensure` found for one tier; `missing` is empty when the tier can run."""

    tier: str
    tools: dict[str, Tool] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    packages: list[str] = field(default_factory=list)  # the packages providing `missing`
    # Why the missing tools were not installed (or how installing failed); empty when all found.
    not_installed_because: str = ""
    installed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every tool the tier needs was found."""
        return not self.missing

    @property
    def install_command(self) -> str:
        """The command that installs the missing tools on a person's Debian/Ubuntu machine."""
        if not self.packages:
            return ""
        return "sudo apt-get install -y " + " ".join(self.packages)

    def reason(self, reason_prefix: str) -> str:
        """One line saying what is missing, why it was not installed and how to install it."""
        why = f" ({self.not_installed_because})" if self.not_installed_because else ""
        return (
            f"{reason_prefix}: {', '.join(self.missing)} not found{why}; "
            f"install with: {self.install_command}"
        )

    def skip_or_fail(self, reason_prefix: str) -> None:
        """Do nothing when the tier can run; otherwise skip it, or fail it under CI=true.

        pytest is imported here, not at module level, so provisioning works without pytest
        installed; without pytest a missing tool raises ToolsMissingError.
        """
        if self.ok:
            return
        message = self.reason(reason_prefix)
        try:
            import pytest
        except ImportError:  # pragma: no cover - the test suite always has pytest
            raise ToolsMissingError(message) from None
        if is_ci():
            pytest.fail(f"{message} (CI=true: a missing tool fails the tier)", pytrace=False)
        pytest.skip(message)

    def as_metrics(self) -> dict[str, Any]:
        """A JSON-ready summary for gate history."""
        return {
            "tools": {
                n: {"path": str(t.path), "version": t.version} for n, t in self.tools.items()
            },
            "missing": list(self.missing),
            "install_command": self.install_command,
            "installed": list(self.installed),
        }


def find_tool(name: str, extra_dirs: Sequence[str] | None = None) -> Path | None:
    """Return the path of command `name` on PATH or in the extra directories, else None.

    The extra directories are globs; when several match (several PostgreSQL versions), the
    highest version wins. With `extra_dirs=None` they are read from the project, when there is one.
    """
    found = shutil.which(name)
    if found:
        return Path(found)
    if extra_dirs is None:
        try:
            extra_dirs = ProvisionSpec.load().extra_dirs
        except ConfigError:
            extra_dirs = ()
    for pattern in extra_dirs:
        for directory in sorted(_glob(pattern), key=_version_key, reverse=True):
            candidate = Path(directory) / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return candidate
    return None


def _glob(pattern: str) -> list[str]:
    """Expand an absolute or relative glob; Path.glob needs a base, so split it off."""
    path = Path(pattern)
    anchor = Path(path.anchor) if path.is_absolute() else Path()
    relative = str(path.relative_to(anchor)) if path.is_absolute() else pattern
    return [str(p) for p in anchor.glob(relative)]


def _version_key(path: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders /usr/lib/postgresql/9/bin below /usr/lib/postgresql/15/bin."""
    parts = Path(path).parts
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


def _run(argv: Sequence[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv),
        env=dict(env),
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
        timeout=1800,
    )


def tool_version(path: Path, version_args: Sequence[str] = ("--version",)) -> str:
    """Return the first non-empty line the tool prints when asked its version ('' if none)."""
    try:
        result = subprocess.run(
            [str(path), *version_args],
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
            timeout=VERSION_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    for line in (result.stdout + "\n" + result.stderr).splitlines():
        if line.strip():
            return line.strip()
    return ""


class Installer:
    """Installs Debian packages without a password prompt, running `apt-get update` once."""

    def __init__(
        self,
        runner: Runner = _run,
        *,
        environ: Mapping[str, str] | None = None,
        euid: int | None = None,
        switch: str = DEFAULT_SWITCH,
    ) -> None:
        self.switch = switch
        self._runner = runner
        self._environ = dict(os.environ if environ is None else environ)
        self._euid = os.geteuid() if euid is None else euid
        self._updated = False

    def unavailable_because(self) -> str:
        """Return why packages cannot be installed here, or '' when they can."""
        if self._environ.get(self.switch, "1") == "0":
            return f"{self.switch}=0 turns installing off"
        if shutil.which("apt-get", path=self._environ.get("PATH")) is None:
            return "no apt-get on this machine"
        if self._euid == 0:
            return ""
        if shutil.which("sudo", path=self._environ.get("PATH")) is None:
            return "not root and no sudo"
        probe = self._runner(["sudo", "-n", "true"], self._environ)
        if probe.returncode != 0:
            return "not root and sudo needs a password"
        return ""

    def install(self, packages: Sequence[str]) -> str:
        """Install `packages`; return '' on success, else what went wrong (apt's last words)."""
        prefix = [] if self._euid == 0 else ["sudo", "-n"]
        env = {**self._environ, "DEBIAN_FRONTEND": "noninteractive"}
        if not self._updated:
            update = self._runner([*prefix, "apt-get", *APT_OPTIONS, "update"], env)
            if update.returncode != 0:
                return "apt-get update failed: " + _last_line(update)
            self._updated = True
        argv = [*prefix, "apt-get", *APT_OPTIONS, "install", "-y", "--no-install-recommends"]
        result = self._runner([*argv, *packages], env)
        if result.returncode != 0:
            return "apt-get install failed: " + _last_line(result)
        return ""


def _last_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in (result.stderr or result.stdout or "").splitlines() if line.strip()]
    return lines[-1].strip() if lines else f"exit status {result.returncode}"


_default_installer: Installer | None = None


def ensure(
    tier: str,
    *,
    install: bool | None = None,
    spec: ProvisionSpec | None = None,
    installer: Installer | None = None,
) -> ProvisionReport:
    """Find the tools `tier` needs, install the missing ones when allowed, report what is there.

    `install=None` installs when that needs no password and the switch variable is not 0;
    `install=False` only looks. `spec` and `installer` default to the project's data and the real
    apt-get (tests inject both).
    """
    global _default_installer
    spec = spec or ProvisionSpec.load()
    requirements = spec.requirements(tier)
    report = _look(tier, requirements, spec.extra_dirs)
    if report.ok:
        return report
    if install is False:
        report.not_installed_because = "installing was not asked for"
        return report
    if installer is None:
        if _default_installer is None or _default_installer.switch != spec.switch:
            _default_installer = Installer(switch=spec.switch)
        installer = _default_installer
    blocked = installer.unavailable_because()
    if blocked:
        report.not_installed_because = blocked
        return report
    packages = list(report.packages)
    failure = installer.install(packages)
    after = _look(tier, requirements, spec.extra_dirs)
    after.installed = [] if failure else packages
    if failure:
        after.not_installed_because = failure
    elif not after.ok:
        after.not_installed_because = "installed, yet still not found on PATH or in extra_dirs"
    return after


def _look(
    tier: str, requirements: Sequence[Requirement], extra_dirs: Sequence[str]
) -> ProvisionReport:
    report = ProvisionReport(tier)
    for requirement in requirements:
        path = find_tool(requirement.command, extra_dirs)
        if path is None:
            report.missing.append(requirement.command)
            if requirement.package not in report.packages:
                report.packages.append(requirement.package)
        else:
            version = tool_version(path, requirement.version_args)
            report.tools[requirement.command] = Tool(requirement.command, path, version)
    return report
