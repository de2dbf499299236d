"""Debian packages as image inputs: what apt would fetch (cheap) and fetching it (only on a miss).

Packages are downloaded with `apt-get download` and unpacked with `dpkg-deb -x` into a scratch
directory: nothing is installed on the host, in particular no kernel lands in /boot.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_FIELD = re.compile(r"^(?P<key>[A-Za-z0-9-]+):\s*(?P<value>.*)$")
_KERNEL_DEP = re.compile(r"\b(linux-image-[0-9][^\s,|()]*)")


class PackageError(Exception):
    """apt cannot tell about, fetch or unpack a package; the message says what to run."""


@dataclass(frozen=True, slots=True)
class Package:
    """A package version exactly as apt will fetch it; `sha256` identifies its content."""

    name: str
    version: str
    sha256: str
    depends: str = ""


def _run(argv: list[str], cwd: Path | None = None) -> str:
    tool = shutil.which(argv[0])
    if tool is None:
        raise PackageError(
            f"`{argv[0]}` not found: building the guest image needs apt and dpkg (Debian/Ubuntu)"
        )
    done = subprocess.run([tool, *argv[1:]], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PackageError(
            f"`{' '.join(argv)}` failed ({done.returncode}): {done.stderr.strip()[-2000:]}\n"
            "If apt knows no such package, run `apt-get update` first."
        )
    return done.stdout


def refresh_lists(log: Callable[[str], None] = lambda _: None) -> bool:
    """Run `apt-get update` when that needs no password; return whether the lists were refreshed.

    A machine's apt lists can be missing or stale (the listed kernel version already gone from the
    archive); one refresh fixes both. `HANGAR_PROVISION=0` forbids it, as for provisioning.
    """
    if os.environ.get("HANGAR_PROVISION", "1") == "0" or shutil.which("apt-get") is None:
        return False
    if os.geteuid() == 0:
        argv = ["apt-get", "update"]
    elif (
        shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], check=False).returncode == 0
    ):
        argv = ["sudo", "-n", "apt-get", "update"]
    else:
        return False
    log("refreshing apt's package lists (apt-get update)")
    return subprocess.run(argv, capture_output=True, check=False).returncode == 0


def parse_control(text: str) -> dict[str, str]:
    """The fields of the first paragraph of a Debian control text (continuation lines joined)."""
    fields: dict[str, str] = {}
    last = ""
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        if line[0] in " \t" and last:
            fields[last] += "\n" + line.strip()
            continue
        match = _FIELD.match(line)
        if match:
            last = match["key"]
            fields[last] = match["value"].strip()
    return fields


def candidate(name: str) -> Package:
    """The version `apt-get download NAME` would fetch now, read from apt's lists."""
    fields = parse_control(_run(["apt-cache", "show", "--no-all-versions", name]))
    try:
        return Package(name, fields["Version"], fields["SHA256"], fields.get("Depends", ""))
    except KeyError as exc:
        raise PackageError(
            f"apt has no downloadable version of {name} (field {exc} missing)"
        ) from exc


def kernel_package(meta: str = "linux-image-amd64") -> Package:
    """The concrete kernel package (`linux-image-6.1.0-NN-amd64`) the meta package points at."""
    match = _KERNEL_DEP.search(candidate(meta).depends)
    if match is None:
        raise PackageError(f"{meta} does not depend on a linux-image-<version> package")
    return candidate(match[1])


def fetch(package: Package, into: Path) -> Path:
    """Download `package` at its version and unpack it under `into`; returns the unpacked root."""
    into.mkdir(parents=True, exist_ok=True)
    _run(["apt-get", "download", f"{package.name}={package.version}"], cwd=into)
    debs = sorted(into.glob(f"{package.name}_*.deb"))
    if not debs:
        raise PackageError(f"apt-get download left no .deb of {package.name} in {into}")
    root = into / package.name
    _run(["dpkg-deb", "-x", str(debs[-1]), str(root)])
    debs[-1].unlink()
    return root
