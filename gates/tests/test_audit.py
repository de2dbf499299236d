"""The `audit` check: `uv audit`'s JSON report read into findings, and the gate's verdicts.

`uv audit` needs a vulnerability service, so these tests stand a scripted shell in for it: it
writes to the gate's log what uv 0.13 writes there — a report (fixtures/uv-audit/, made by uv
against the fake OSV service of integration/gates) or its own error lines. The real `uv audit`
runs in integration/gates/test_audit.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from gates.checks import CHECKS
from gates.checks.audit import (
    UV_UPGRADE,
    Audit,
    AuditError,
    Finding,
    read_report,
    verdict,
    why_not_audited,
)
from gates.engine.execution import GateContext, GateResult
from gates.engine.pipeline import Gate

FIXTURES = Path(__file__).parent / "fixtures" / "uv-audit"
REPORT_TEXT = (FIXTURES / "jinja2-2.10.json").read_text()
JINJA = json.loads(REPORT_TEXT)
JINJA_LINE = "jinja2 2.10: GHSA-462w-v97r-4m45 (CVE-2019-10906, PYSEC-2019-217), fixed in 2.10.1"
# What uv 0.13.9 prints on a machine that cannot resolve api.osv.dev (exit status 2).
NO_DNS = """\
error: Request failed after 3 retries
  cause: error sending request for url (https://api.osv.dev/v1/querybatch)
  cause: client error (Connect)
  cause: dns error
  cause: error resolving DNS
  cause: failed to lookup address information: Name or service not known"""
NO_DNS_REASON = (
    "uv audit could not reach its vulnerability service (https://api.osv.dev/v1/querybatch): "
    "Request failed after 3 retries: failed to lookup address information: Name or service "
    "not known"
)
OLD_UV = "error: unrecognized subcommand 'audit'\n\nUsage: uv [OPTIONS] <COMMAND>"
STATUS = {"name": "old-lib", "status": "archived", "reason": "no longer maintained"}


class ScriptedAudit:
    """Stands in for `uv audit`: appends the given output to the log, returns the given status."""

    def __init__(self, output: str, status: int) -> None:
        self.output, self.status = output, status
        self.calls: list[list[str]] = []

    def __call__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        log: Path,
        env: Mapping[str, str],
        timeout: float | None,
    ) -> int:
        self.calls.append(list(argv))
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as out:
            out.write(f"$ {' '.join(argv)}\n{self.output}\n")
        return self.status


def run(
    tmp_path: Path,
    shell: ScriptedAudit,
    ci: bool = False,
    environ: dict[str, str] | None = None,
    **options: Any,
) -> GateResult:
    environ = {**(environ or {}), **({"CI": "true"} if ci else {})}
    ctx = GateContext(root=tmp_path, run_dir=tmp_path / "run", shell=shell, environ=environ)
    return CHECKS["audit"](Gate("deps", "audit", "check", "audit", options=options), ctx)


def report(*vulns: dict[str, Any], statuses: Sequence[dict[str, str]] = ()) -> str:
    return json.dumps(
        {
            "schema": {"version": "preview"},
            "summary": {"audited_packages": 3, "vulnerabilities": len(vulns)},
            "vulnerabilities": list(vulns),
            "adverse_statuses": list(statuses),
        },
        indent=2,
    )


def test_a_finding_names_package_version_advisory_aliases_and_fixed_version() -> None:
    audit = read_report(JINJA)
    assert audit.audited == 2
    assert [f.line() for f in audit.findings] == [JINJA_LINE]


def test_an_advisory_without_a_fix_says_so() -> None:
    assert Finding("lib", "1.0", "GHSA-x").line() == "lib 1.0: GHSA-x, no fixed version yet"


def test_a_known_vulnerable_pin_fails_the_gate_with_advisory_and_fixed_version(
    tmp_path: Path,
) -> None:
    result = run(tmp_path, ScriptedAudit(REPORT_TEXT, status=1))
    assert (result.outcome, result.summary) == (
        "failed",
        "1 known vulnerabilities in 1 locked packages",
    )
    assert result.key_output == [JINJA_LINE]
    assert result.metrics == {
        "audited": 2,
        "vulnerabilities": 1,
        "ignored": 0,
        "adverse_statuses": 0,
    }
    assert result.next_command == "uv lock --upgrade-package NAME  # to a fixed version"


@pytest.mark.parametrize("by", ["GHSA-462w-v97r-4m45", "PYSEC-2019-217", "CVE-2019-10906"])
def test_an_ignored_advisory_is_matched_by_id_or_alias_and_still_listed(
    tmp_path: Path, by: str
) -> None:
    result = run(tmp_path, ScriptedAudit(REPORT_TEXT, status=1), ignore=[by])
    assert (result.outcome, result.key_output) == ("passed", [f"ignored: {JINJA_LINE}"])
    assert result.summary == "no known vulnerabilities in 2 locked packages (1 ignored)"


def test_a_clean_lock_passes_with_the_count(tmp_path: Path) -> None:
    result = run(tmp_path, ScriptedAudit(report(), status=0))
    assert (result.outcome, result.summary) == (
        "passed",
        "no known vulnerabilities in 3 locked packages",
    )


def test_adverse_project_statuses_are_listed_without_failing(tmp_path: Path) -> None:
    result = run(tmp_path, ScriptedAudit(report(statuses=[STATUS]), status=0))
    assert result.outcome == "passed"
    assert result.key_output == ["old-lib is archived on its index: no longer maintained"]
    assert result.metrics["adverse_statuses"] == 1


def test_many_findings_show_the_first_thirty_and_how_many_more() -> None:
    findings = [Finding(f"lib{i}", "1", f"GHSA-{i}") for i in range(32)]
    result = verdict(Audit(32, findings))
    assert result.summary == "32 known vulnerabilities in 32 locked packages"
    assert len(result.key_output) == 31
    assert result.key_output[-1] == "… and 2 more"


def test_an_unreachable_service_skips_with_a_one_line_reason_on_a_persons_machine(
    tmp_path: Path,
) -> None:
    result = run(tmp_path, ScriptedAudit(NO_DNS, status=2))
    assert (result.outcome, result.summary) == ("skipped", NO_DNS_REASON)
    assert result.key_output == NO_DNS.splitlines()


def test_an_unreachable_service_fails_under_ci(tmp_path: Path) -> None:
    result = run(tmp_path, ScriptedAudit(NO_DNS, status=2), ci=True)
    assert (result.outcome, result.summary) == ("failed", f"{NO_DNS_REASON} (CI=true)")


@pytest.mark.parametrize(
    ("output", "status", "reason"),
    [
        (OLD_UV, 2, f"this uv has no `uv audit`; a newer uv has it: {UV_UPGRADE}"),
        ("", 124, "uv audit timed out waiting for its vulnerability service"),
        (
            "error: Auditing requires network access and cannot be performed in offline mode",
            2,
            "uv audit could not reach its vulnerability service: Auditing requires network "
            "access and cannot be performed in offline mode",
        ),
        (
            "error: Failed to fetch: https://osv.example/v1/vulns/X\n  cause: HTTP status server "
            "error (503 Service Unavailable) for url (https://osv.example/v1/vulns/X)",
            2,
            "uv audit could not reach its vulnerability service: Failed to fetch: "
            "https://osv.example/v1/vulns/X: HTTP status server error (503 Service Unavailable) "
            "for url (https://osv.example/v1/vulns/X)",
        ),
    ],
)
def test_what_keeps_the_audit_from_being_done_is_named(
    output: str, status: int, reason: str
) -> None:
    assert why_not_audited(output.splitlines(), status) == reason


def test_a_misconfigured_service_is_a_failure_not_a_skip(tmp_path: Path) -> None:
    not_found = (
        "error: Failed to fetch: http://osv.example/nope/v1/vulns/X\n  cause: HTTP status client "
        "error (404 Not Found) for url (http://osv.example/nope/v1/vulns/X)"
    )
    result = run(tmp_path, ScriptedAudit(not_found, status=2))
    assert result.outcome == "failed"
    assert result.summary == "uv audit wrote no report (exit status 2)"
    assert "  cause: HTTP status client error (404 Not Found) for url" in result.key_output[-1]


def test_a_report_of_an_unknown_shape_fails_saying_what_is_missing(tmp_path: Path) -> None:
    changed = json.dumps({"schema": {"version": "2"}, "packages": []}, indent=2)
    result = run(tmp_path, ScriptedAudit(changed, status=0))
    assert result.outcome == "failed"
    assert result.summary.startswith("uv audit's JSON report (schema version '2') lacks what")
    with pytest.raises(AuditError, match="not an object"):
        read_report([])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ignore": "PYSEC-2019-217"}, "`ignore` must be a list of advisory ids"),
        ({"service_url": "ftp://osv.example/"}, "`service_url` must be an http(s) URL"),
    ],
)
def test_bad_options_fail_before_uv_runs(
    tmp_path: Path, options: dict[str, Any], message: str
) -> None:
    shell = ScriptedAudit(REPORT_TEXT, status=1)
    result = run(tmp_path, shell, **options)
    assert result.outcome == "failed"
    assert result.summary.startswith(f"gate deps/audit: {message}")
    assert shell.calls == []


def test_the_lock_is_audited_as_written_against_the_named_service(tmp_path: Path) -> None:
    shell = ScriptedAudit(report(), status=0)
    run(tmp_path, shell)
    run(tmp_path, shell, service_url="http://127.0.0.1:9/")
    default, named = shell.calls
    assert default[:3] == ["uv", "audit", "--frozen"]
    assert {"--output-format", "json", "--preview-features", "audit-command,json-output"} <= set(
        default
    )
    assert "--service-url" not in default
    assert named[-2:] == ["--service-url", "http://127.0.0.1:9/"]


def test_the_service_variable_wins_over_the_gate_and_the_verdict_names_the_service(
    tmp_path: Path,
) -> None:
    shell = ScriptedAudit(report(), status=0)
    mirror = {"GATES_AUDIT_SERVICE_URL": "http://osv.mirror.example/"}
    result = run(tmp_path, shell, environ=mirror, service_url="http://127.0.0.1:9/")
    assert shell.calls[0][-2:] == ["--service-url", "http://osv.mirror.example/"]
    assert result.summary == (
        "no known vulnerabilities in 3 locked packages (service http://osv.mirror.example/)"
    )
    bad = run(tmp_path, shell, environ={"GATES_AUDIT_SERVICE_URL": "osv.mirror.example"})
    assert (bad.outcome, bad.summary) == (
        "failed",
        "GATES_AUDIT_SERVICE_URL must be an http(s) URL of an OSV API, e.g. https://api.osv.dev/",
    )
    assert len(shell.calls) == 1  # the bad one never ran uv


def test_only_this_attempts_output_is_read(tmp_path: Path) -> None:
    """The log keeps earlier attempts; an old report there must not pass a failed attempt."""
    run(tmp_path, ScriptedAudit(report(), status=0))
    result = run(tmp_path, ScriptedAudit(NO_DNS, status=2))
    assert result.outcome == "skipped"
