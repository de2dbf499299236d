"""Fixtures of the template's end-to-end tests: one scratch template per run, made of this
checkout's working tree (so what is tested is what is here, committed or not), in a dir tagged
with the run (`testkit.runs`), removed at the end, and by the run's reaper if the run is killed."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.gates.fake_osv import FakeOsv
from integration.template.copies import AUDIT_SERVICE, git, snapshot
from testkit import runs


@pytest.fixture(scope="package")
def workspace() -> Iterator[Path]:
    """Where the scratch template and the copies live."""
    path = runs.new_dir("template")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="package", autouse=True)
def audit_service() -> Iterator[str]:
    """A fake OSV service (integration/gates/fake_osv.py, with its one real advisory) that the
    copies' deps/audit gate asks instead of api.osv.dev; its verdicts name the service."""
    with FakeOsv.from_dir().serve() as url:
        AUDIT_SERVICE.append(url)
        try:
            yield url
        finally:
            AUDIT_SERVICE.remove(url)


@pytest.fixture(scope="package")
def template(workspace: Path) -> Path:
    """The template under test, as a git repository of one commit. Never changed by a test."""
    root = workspace / "template"
    root.mkdir()
    return snapshot(root)


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A dir of the test's own for copies (with their environments: hundreds of MB), removed
    when the test ends, however it ends. Its name is short: a full copy's unit tests put QEMU's
    sockets under `<copy>/.nox/<session>/tmp`, and a socket path must stay under 108 bytes."""
    path = runs.new_dir("c", runs.SOCKET_ROOT)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def template_clone(template: Path, scratch: Path) -> Path:
    """A scratch clone of the template, for a test that makes later commits in it."""
    clone = scratch / "template"
    git(scratch, "clone", "--quiet", str(template), str(clone))
    return clone
