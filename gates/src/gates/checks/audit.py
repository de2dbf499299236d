"""The `audit` check: no locked dependency has a known vulnerability (`uv audit` over `uv.lock`).

`uv audit --frozen` reads the lock as written — every package of every group, extra and platform
fork, nothing resolved or installed — and asks an OSV service (api.osv.dev unless the gate names
another) which of those exact versions an advisory affects. Its JSON report is judged here: a
finding fails the gate with the advisory id, its aliases and the fixed version; a service that
cannot be reached (or a uv without `audit`) skips it with the reason on a person's machine and
fails it under CI, which must never pass a lock it could not audit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gates.engine.execution import GateContext, GateResult, tail
from gates.engine.pipeline import Gate
from gates.provision import is_ci

# uv's words when a request never got an answer (reqwest's error chain), or came back 5xx.
UNREACHABLE_MARKS = (
    "error sending request",
    "Request failed after",
    "dns error",
    "tcp connect error",
    "Connection refused",
    "timed out",
    "HTTP status server error",
    "cannot be performed in offline mode",
)
URL_IN_ERROR = re.compile(r"for url \(([^)\s]+)\)")
# What an uv older than `uv audit` says, and how a person gets a newer one.
NO_AUDIT_MARK = "unrecognized subcommand 'audit'"
UV_UPGRADE = "uv self update  # or: curl -LsSf https://astral.sh/uv/install.sh | sh"
# Another OSV service for every gate on this machine or CI (a mirror, or a test's fake), without
# editing the pipeline; the gate's summary then names it.
SERVICE_VARIABLE = "GATES_AUDIT_SERVICE_URL"
SHOWN = 30  # lines of findings or statuses shown before "… and N more"


class AuditError(ValueError):
    """uv audit's report is not in the shape this check reads (its JSON is a uv preview)."""


@dataclass(frozen=True)
class Finding:
    """One advisory against one locked package."""

    package: str
    version: str
    advisory: str
    aliases: tuple[str, ...] = ()
    fixed_in: tuple[str, ...] = ()

    def line(self) -> str:
        """`jinja2 2.10: GHSA-… (CVE-…, PYSEC-…), fixed in 2.10.1`."""
        aliases = f" ({', '.join(self.aliases)})" if self.aliases else ""
        fix = f"fixed in {', '.join(self.fixed_in)}" if self.fixed_in else "no fixed version yet"
        return f"{self.package} {self.version}: {self.advisory}{aliases}, {fix}"

    def ids(self) -> set[str]:
        return {self.advisory, *self.aliases}


@dataclass(frozen=True)
class Audit:
    """What one `uv audit --output-format json` report says."""

    audited: int
    findings: list[Finding] = field(default_factory=list)
    ignored: list[Finding] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)  # PyPI: archived, quarantined, deprecated


def _strings(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def _finding(vuln: Mapping[str, Any]) -> Finding:
    dependency = vuln["dependency"]
    return Finding(
        package=str(dependency["name"]),
        version=str(dependency["version"]),
        advisory=str(vuln["id"]),
        aliases=_strings(vuln.get("aliases")),
        fixed_in=_strings(vuln.get("fix_versions")),
    )


def _status(status: Mapping[str, Any]) -> str:
    reason = f": {status['reason']}" if status.get("reason") else ""
    return f"{status['name']} is {status['status']} on its index{reason}"


def read_report(report: object, ignore: Sequence[str] = ()) -> Audit:
    """Read uv audit's JSON report; an advisory is ignored by its id or any alias."""
    try:
        if not isinstance(report, dict):
            raise TypeError(f"a JSON {type(report).__name__}, not an object")
        audited = int(report["summary"]["audited_packages"])
        findings = [_finding(v) for v in report["vulnerabilities"]]
        statuses = [_status(s) for s in report.get("adverse_statuses") or []]
    except (KeyError, TypeError, ValueError) as bad:
        version = report.get("schema", {}).get("version") if isinstance(report, dict) else None
        raise AuditError(
            f"uv audit's JSON report (schema version {version!r}) lacks what this gate reads "
            f"(summary.audited_packages, vulnerabilities[].dependency/id/fix_versions): {bad!r}"
        ) from bad
    ignored_ids = set(ignore)
    kept = [f for f in findings if not f.ids() & ignored_ids]
    ignored = [f for f in findings if f.ids() & ignored_ids]
    return Audit(audited, kept, ignored, statuses)


def _first(lines: list[str], shown: int = SHOWN) -> list[str]:
    """At most `shown` lines, then how many more there were."""
    more = len(lines) - shown
    return lines[:shown] + ([f"… and {more} more"] if more > 0 else [])


def verdict(audit: Audit, service_url: str = "") -> GateResult:
    """Fail on any finding that is not ignored; otherwise pass with the count. A service other
    than uv's default is named in the summary: a verdict says whose database it is."""
    against = f" (service {service_url})" if service_url else ""
    metrics = {
        "audited": audit.audited,
        "vulnerabilities": len(audit.findings),
        "ignored": len(audit.ignored),
        "adverse_statuses": len(audit.statuses),
    }
    notes = _first([f"ignored: {f.line()}" for f in audit.ignored] + audit.statuses)
    if audit.findings:
        packages = len({(f.package, f.version) for f in audit.findings})
        return GateResult(
            "failed",
            summary=f"{len(audit.findings)} known vulnerabilities in {packages} locked packages"
            + against,
            metrics=metrics,
            key_output=_first([f.line() for f in audit.findings]) + notes,
            next_command="uv lock --upgrade-package NAME  # to a fixed version",
        )
    ignored = f" ({len(audit.ignored)} ignored)" if audit.ignored else ""
    return GateResult(
        "passed",
        summary=f"no known vulnerabilities in {audit.audited} locked packages{ignored}{against}",
        metrics=metrics,
        key_output=notes,
    )


def not_audited(reason: str, environ: Mapping[str, str], lines: list[str]) -> GateResult:
    """Skipped with the reason on a person's machine; failed under CI, which must never hide it."""
    if is_ci(environ):
        return GateResult("failed", summary=f"{reason} (CI=true)", key_output=lines)
    return GateResult("skipped", summary=reason, key_output=lines)


def why_not_audited(output: Sequence[str], status: int) -> str:
    """The one-line reason the audit could not be done ("" when the output names none).

    uv prints an error and its causes on lines of their own (`error: …`, `  cause: …`): the
    first says what failed and for which URL, the last why."""
    text = "\n".join(output)
    if NO_AUDIT_MARK in text:
        return f"this uv has no `uv audit`; a newer uv has it: {UV_UPGRADE}"
    if status == 124:
        return "uv audit timed out waiting for its vulnerability service"
    if not any(mark in text for mark in UNREACHABLE_MARKS):
        return ""
    url = URL_IN_ERROR.search(text)
    errors = [line.strip().removeprefix("error: ") for line in output if line.startswith("error:")]
    causes = [line.strip().removeprefix("cause: ") for line in output if "cause: " in line]
    why = ": ".join([*errors[:1], *causes[-1:]])
    where = f" ({url.group(1)})" if url and url.group(1) not in why else ""
    return f"uv audit could not reach its vulnerability service{where}: {why}"


def report_in(text: str) -> object:
    """The JSON document uv printed (it starts on a line of its own); None when there is none."""
    line = text.find("\n{\n")
    start = 0 if text.startswith("{\n") else line + 1 if line >= 0 else -1
    if start < 0:
        return None
    try:
        return json.JSONDecoder().raw_decode(text[start:])[0]
    except ValueError:
        return None


def options(gate: Gate, environ: Mapping[str, str] | None = None) -> tuple[list[str], str]:
    """The gate's `ignore` list and `service_url` (GATES_AUDIT_SERVICE_URL, when set, wins),
    checked (the pipeline checks the gate's own too)."""
    ignore = gate.options.get("ignore", [])
    if not isinstance(ignore, list) or not all(isinstance(i, str) and i for i in ignore):
        raise ValueError(
            f'gate {gate.key}: `ignore` must be a list of advisory ids, e.g. ["GHSA-…"]'
        )
    url = gate.options.get("service_url", "")
    where = f"gate {gate.key}: `service_url`"
    if environ and environ.get(SERVICE_VARIABLE):
        url, where = environ[SERVICE_VARIABLE], SERVICE_VARIABLE
    if not isinstance(url, str) or (url and urlsplit(url).scheme not in {"http", "https"}):
        raise ValueError(f"{where} must be an http(s) URL of an OSV API, e.g. https://api.osv.dev/")
    return ignore, url


def command(service_url: str = "") -> list[str]:
    """`uv audit` of the lock as written, its JSON report on stdout (preview features named)."""
    argv = [
        "uv", "audit", "--frozen", "--preview-features", "audit-command,json-output",
        "--output-format", "json", "--no-progress", "--color", "never",
    ]  # fmt: skip
    return argv + (["--service-url", service_url] if service_url else [])


def audit(gate: Gate, ctx: GateContext) -> GateResult:
    """Run `uv audit` over the lock and judge its report."""
    try:
        ignore, service_url = options(gate, ctx.environ)
    except ValueError as bad:
        return GateResult("failed", summary=str(bad))
    log = ctx.log_for(gate.key)
    start = log.stat().st_size if log.exists() else 0
    status = ctx.shell(
        command(service_url), cwd=ctx.root, log=log, env=ctx.environ, timeout=gate.timeout or 600
    )
    text = _read_from(log, start)
    report = report_in(text) if status in {0, 1} else None
    if report is None:
        # uv's own lines, without the shell's `$ argv` header
        output = [line for line in text.splitlines() if line.strip() and line[:2] != "$ "]
        reason = why_not_audited(output, status)
        if reason:
            return not_audited(reason, ctx.environ, output[-10:])
        return GateResult(
            "failed",
            summary=f"uv audit wrote no report (exit status {status})",
            key_output=tail(log),
        )
    try:
        return verdict(read_report(report, ignore), service_url)
    except AuditError as bad:
        return GateResult("failed", summary=str(bad), key_output=tail(log))


def _read_from(log: Path, offset: int) -> str:
    """What the command wrote to its log (the log may hold earlier attempts)."""
    try:
        with log.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
