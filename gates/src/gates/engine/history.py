"""Gate history: one JSON record per gate run, appended to `.gates/history.jsonl`.

Appends are crash-safe: each record is one `write` of one line to a file opened with O_APPEND
(under an exclusive flock), then fsync'd, so concurrent writers never interleave and a crash can
at worst leave a torn last line, which reading skips and the next append closes.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Outcome = Literal["passed", "failed", "skipped"]
OUTCOMES: tuple[Outcome, ...] = ("passed", "failed", "skipped")


@dataclass(frozen=True)
class Record:
    """One gate run: where (commit, dirty, diff hash), what (phase, gate), and how it went."""

    run_id: str
    time: str
    commit: str
    dirty: bool
    diff_hash: str
    phase: str
    gate: str
    outcome: Outcome
    duration_s: float
    metrics: dict[str, Any] = field(default_factory=dict)
    skips: list[dict[str, str]] = field(default_factory=list)
    summary: str = ""
    # "I/N" for one shard's part of a gate (`gates run --shard I/N`); "" for the whole gate,
    # whether it ran unsharded or was merged from shards (then metrics["shards"] says how many).
    shard: str = ""

    @property
    def partial(self) -> bool:
        """One shard's part: it never speaks for the whole gate (green, status, rollback)."""
        return bool(self.shard)

    @property
    def clean_pass(self) -> bool:
        """A pass on a tree identical to its commit: the only kind that makes a commit green."""
        return self.outcome == "passed" and not self.dirty

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        return cls(
            run_id=str(data["run_id"]),
            time=str(data["time"]),
            commit=str(data["commit"]),
            dirty=bool(data["dirty"]),
            diff_hash=str(data.get("diff_hash", "")),
            phase=str(data["phase"]),
            gate=str(data["gate"]),
            outcome=data["outcome"] if data["outcome"] in OUTCOMES else "failed",
            duration_s=float(data.get("duration_s", 0.0)),
            metrics=dict(data.get("metrics") or {}),
            skips=list(data.get("skips") or []),
            summary=str(data.get("summary", "")),
            shard=str(data.get("shard", "")),
        )


class History:
    """The append-only record file of one project."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, record: Record) -> None:
        """Append one record as one line, in one write, and fsync it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = (record.to_json() + "\n").encode()
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            # The lock orders the torn-line check with the write; readers never need it.
            fcntl.flock(fd, fcntl.LOCK_EX)
            # A torn line left by a crash must not glue itself to this record.
            if _ends_without_newline(fd):
                line = b"\n" + line
            written = os.write(fd, line)
            if written != len(line):  # pragma: no cover - regular files take whole writes
                raise OSError(f"short write to {self.path}: {written} of {len(line)} bytes")
            os.fsync(fd)
        finally:
            os.close(fd)

    def records(self) -> Iterator[Record]:
        """Yield every readable record of a whole gate, oldest first: a shard's part, torn or
        foreign lines are skipped (`all_records` has the parts too)."""
        return (record for record in self.all_records() if not record.partial)

    def all_records(self) -> Iterator[Record]:
        """Yield every readable record, the shards' parts too, oldest first."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        for raw in data.splitlines():
            try:
                parsed = json.loads(raw)
                yield Record.from_dict(parsed)
            except (ValueError, KeyError, TypeError):
                continue

    def last(self, phase: str, gate: str) -> Record | None:
        """The most recent record of one gate, or None."""
        found = None
        for record in self.records():
            if record.phase == phase and record.gate == gate:
                found = record
        return found

    def last_green_of(self, phase: str, gate: str) -> Record | None:
        """The most recent clean pass of one gate, or None."""
        found = None
        for record in self.records():
            if record.phase == phase and record.gate == gate and record.clean_pass:
                found = record
        return found

    def green_commits(self, required: Iterable[tuple[str, str]]) -> list[str]:
        """Commits, most recently verified first, on which every required gate passed clean
        and no clean run of any gate failed afterwards (its latest clean record counts)."""
        required_set = set(required)
        latest: dict[str, dict[tuple[str, str], Record]] = {}
        order: list[str] = []
        for record in self.records():
            if record.dirty:
                continue
            latest.setdefault(record.commit, {})[(record.phase, record.gate)] = record
            if record.commit in order:
                order.remove(record.commit)
            order.append(record.commit)
        green = []
        for commit in reversed(order):
            gates = latest[commit]
            if any(r.outcome == "failed" for r in gates.values()):
                continue
            covered = all(key in gates for key in required_set)
            if covered and any(r.outcome == "passed" for r in gates.values()):
                green.append(commit)
        return green

    def last_green_commit(self, required: Sequence[tuple[str, str]]) -> str | None:
        """The most recently verified green commit, or None when history has none."""
        commits = self.green_commits(required)
        return commits[0] if commits else None


def _ends_without_newline(fd: int) -> bool:
    size = os.fstat(fd).st_size
    return size > 0 and os.pread(fd, 1, size - 1) != b"\n"
