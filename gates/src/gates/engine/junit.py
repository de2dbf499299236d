"""Per-test outcomes read from pytest's --junitxml report."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TestReport:
    """What one pytest run did to each test, keyed by `classname::name`."""

    __test__ = False  # not a pytest test class, despite the name

    outcomes: dict[str, str] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)
    skips: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def read(cls, path: Path) -> TestReport:
        """Parse a junit XML file; a missing or unreadable file gives an empty report."""
        report = cls()
        try:
            root = ET.parse(path).getroot()  # noqa: S314 - our own pytest's output
        except (OSError, ET.ParseError):
            return report
        for case in root.iter("testcase"):
            test_id = f"{case.get('classname', '')}::{case.get('name', '')}"
            outcome, message = "passed", ""
            for child in case:
                if child.tag in {"failure", "error", "skipped"}:
                    outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[
                        child.tag
                    ]
                    message = child.get("message", "") or (child.text or "").strip()
                    if outcome != "skipped":
                        break
            # A test that failed in teardown after passing appears twice; the worse one counts.
            if report.outcomes.get(test_id) in {"failed", "error"}:
                continue
            report.outcomes[test_id] = outcome
            if message:
                report.messages[test_id] = message
            if outcome == "skipped":
                report.skips.append({"test": test_id, "reason": message})
        return report

    @property
    def counts(self) -> dict[str, int]:
        counted = Counter(self.outcomes.values())
        return {k: counted.get(k, 0) for k in ("passed", "failed", "error", "skipped")}

    def metrics(self) -> dict[str, Any]:
        return {"tests": len(self.outcomes), **self.counts}

    def failures(self) -> list[str]:
        """One line per failed or errored test: its id and the first line of its message."""
        lines = []
        for test, outcome in self.outcomes.items():
            if outcome in {"failed", "error"}:
                message = self.messages.get(test, "").strip()
                lines.append(f"{test}: {message.splitlines()[0] if message else outcome}")
        return lines

    def differences(self, other: TestReport) -> list[str]:
        """Tests whose outcome differs between this run and `other`, one line each."""
        lines = []
        for test in sorted(set(self.outcomes) | set(other.outcomes)):
            mine = self.outcomes.get(test, "absent")
            theirs = other.outcomes.get(test, "absent")
            if mine != theirs:
                lines.append(f"{test}: {mine} serially, {theirs} in parallel")
        return lines
