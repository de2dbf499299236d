"""The `audit` gate end to end: the real `uv audit` against a fake OSV service.

The database itself (api.osv.dev) is never asked: where these tests run it may be unreachable,
and its answers change every day. The fake (`fake_osv.py`) serves OSV's documented API from a real
advisory record (GHSA-462w-v97r-4m45, Jinja2 before 2.10.1). The lock it is asked about is real:
a scratch project's, pinning Jinja2 2.10 (fixtures/jinja2-2.10.*), and Hangar's own. uv's cache
is the test's own, and its requests to the package index (project statuses, which the gate only
lists) meet a proxy on a closed port, so nothing outside the test answers.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gates.checks import CHECKS
from gates.engine.execution import GateContext, GateResult
from gates.engine.pipeline import Gate
from integration.gates.fake_osv import FakeOsv, affects
from integration.gates.repos import project_environ
from testkit.ci import skip_or_fail

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures"
JINJA_LINE = "jinja2 2.10: GHSA-462w-v97r-4m45 (CVE-2019-10906, PYSEC-2019-217), fixed in 2.10.1"


def closed_port() -> int:
    """A local port nothing listens on: bound, then released."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture(scope="module", autouse=True)
def uv_has_audit() -> None:
    """An older uv without `uv audit` skips these tests (fails them under CI)."""
    found = subprocess.run(["uv", "audit", "--help"], capture_output=True, check=False)
    if found.returncode != 0:
        skip_or_fail("this uv has no `uv audit`; install a newer one: uv self update")


@pytest.fixture
def environ(tmp_path: Path) -> dict[str, str]:
    """The project's environment, with uv's cache in the test's dir and the index shut out."""
    closed = f"http://127.0.0.1:{closed_port()}"
    proxies = {"http_proxy", "all_proxy"}
    env = {k: v for k, v in project_environ().items() if k.lower() not in proxies}
    return {
        **env,
        "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
        "HTTPS_PROXY": closed,
        "https_proxy": closed,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "UV_HTTP_RETRIES": "0",  # the closed proxy answers at once; retrying it is only slower
        "CI": "",
    }


@pytest.fixture
def osv() -> Iterator[tuple[FakeOsv, str]]:
    fake = FakeOsv.from_dir()
    with fake.serve() as url:
        yield fake, url


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A project whose committed lock pins Jinja2 2.10 (and its MarkupSafe)."""
    root = tmp_path / "scratch"
    root.mkdir()
    shutil.copy(FIXTURES / "jinja2-2.10.pyproject.toml", root / "pyproject.toml")
    shutil.copy(FIXTURES / "jinja2-2.10.uv.lock", root / "uv.lock")
    return root


def audit(root: Path, run_dir: Path, environ: dict[str, str], **options: Any) -> GateResult:
    ctx = GateContext(root=root, run_dir=run_dir, environ=environ)
    gate = Gate("deps", "audit", "check", "audit", options=options)
    return CHECKS["audit"](gate, ctx)


def queried(fake: FakeOsv) -> set[tuple[str, str]]:
    """Every (package, version) uv asked the fake about."""
    return {
        (q["package"]["name"], q["version"])
        for method, _, body in fake.requests
        if method == "POST"
        for q in body.get("queries", [body])
    }


def test_the_fake_decides_as_osv_does() -> None:
    [record] = FakeOsv.from_dir().records.values()
    assert affects(record, "PyPI", "Jinja2", "2.10")  # listed; the name compares normalized
    assert affects(record, "PyPI", "jinja2", "2.10.0.post1")  # in the range, not listed
    assert not affects(record, "PyPI", "jinja2", "2.10.1")  # the fix
    assert not affects(record, "PyPI", "jinja2", "3.1.6")
    assert not affects(record, "npm", "jinja2", "2.10")


def test_a_known_vulnerable_pin_fails_naming_the_advisory_and_the_fixed_version(
    scratch: Path, tmp_path: Path, environ: dict[str, str], osv: tuple[FakeOsv, str]
) -> None:
    fake, url = osv
    result = audit(scratch, tmp_path / "run", environ, service_url=url)
    assert (result.outcome, result.summary) == (
        "failed",
        f"1 known vulnerabilities in 1 locked packages (service {url})",
    ), result.key_output
    assert result.key_output == [JINJA_LINE]
    assert result.next_command.startswith("uv lock --upgrade-package")
    assert ("jinja2", "2.10") in queried(fake)
    assert ("GET", "/v1/vulns/GHSA-462w-v97r-4m45", None) in fake.requests


def test_an_advisory_ignored_by_an_alias_passes_and_is_still_listed(
    scratch: Path, tmp_path: Path, environ: dict[str, str], osv: tuple[FakeOsv, str]
) -> None:
    _, url = osv
    result = audit(scratch, tmp_path / "run", environ, service_url=url, ignore=["PYSEC-2019-217"])
    assert (result.outcome, result.key_output) == ("passed", [f"ignored: {JINJA_LINE}"])
    assert (
        result.summary
        == f"no known vulnerabilities in 2 locked packages (1 ignored) (service {url})"
    )


def test_an_unreachable_service_skips_on_a_persons_machine_and_fails_under_ci(
    scratch: Path, tmp_path: Path, environ: dict[str, str]
) -> None:
    url = f"http://127.0.0.1:{closed_port()}/"
    person = audit(scratch, tmp_path / "person", environ, service_url=url)
    assert person.outcome == "skipped", person.summary
    assert person.summary.startswith("uv audit could not reach its vulnerability service")
    assert person.summary.count(f"{url}v1/querybatch") == 1
    assert "Connection refused" in person.summary
    assert "\n" not in person.summary
    ci = audit(scratch, tmp_path / "ci", {**environ, "CI": "true"}, service_url=url)
    assert (ci.outcome, ci.summary) == ("failed", f"{person.summary} (CI=true)")


def test_hangars_lock_passes_against_the_fakes_advisories(
    tmp_path: Path, environ: dict[str, str], osv: tuple[FakeOsv, str]
) -> None:
    fake, url = osv
    result = audit(ROOT, tmp_path / "run", environ, service_url=url)
    assert result.outcome == "passed", "\n".join([result.summary, *result.key_output])
    assert result.metrics["audited"] > 100
    # The fake was asked about the Jinja2 Hangar locks, and said it is not affected.
    [jinja] = [version for name, version in queried(fake) if name == "jinja2"]
    assert not affects(fake.records["GHSA-462w-v97r-4m45"], "PyPI", "jinja2", jinja)
    assert len(queried(fake)) == result.metrics["audited"]
