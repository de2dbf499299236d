from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

from gates.engine.history import History, Record


def record(
    commit: str = "c1", gate: str = "g", outcome: str = "passed", **changes: object
) -> Record:
    data: dict[str, object] = {
        "run_id": "r",
        "time": "2026-01-01T00:00:00+00:00",
        "commit": commit,
        "dirty": False,
        "diff_hash": "",
        "phase": "p",
        "gate": gate,
        "outcome": outcome,
        "duration_s": 1.5,
        "metrics": {"tests": 3},
        "skips": [{"test": "t", "reason": "why"}],
        "summary": "ok",
    }
    data.update(changes)
    return Record.from_dict(data)


def test_records_round_trip_one_line_each(tmp_path: Path) -> None:
    history = History(tmp_path / ".gates" / "history.jsonl")
    assert list(history.records()) == []
    first, second = record(), record(commit="c2", outcome="failed")
    history.append(first)
    history.append(second)
    lines = history.path.read_text().splitlines()
    assert len(lines) == 2
    assert json.loads(lines[0])["metrics"] == {"tests": 3}
    assert list(history.records()) == [first, second]


def test_a_torn_last_line_is_skipped_and_the_next_record_starts_a_new_line(
    tmp_path: Path,
) -> None:
    history = History(tmp_path / "history.jsonl")
    history.append(record(commit="before"))
    with history.path.open("a") as file:
        file.write('{"run_id": "torn", "commit": "x", "pha')  # a crash mid-write
    assert [r.commit for r in history.records()] == ["before"]
    history.append(record(commit="after"))
    assert [r.commit for r in history.records()] == ["before", "after"]


def test_foreign_and_odd_lines_are_tolerated(tmp_path: Path) -> None:
    history = History(tmp_path / "history.jsonl")
    history.path.write_text('not json\n{"a": 1}\n[]\n')
    history.append(record(outcome="weird"))  # an unknown outcome reads as failed
    assert [r.outcome for r in history.records()] == ["failed"]


def _append_many(path: str, worker: int) -> None:
    history = History(Path(path))
    for n in range(50):
        history.append(record(commit=f"w{worker}-{n}", summary="x" * 5000))


def test_concurrent_appends_never_interleave(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_many, args=(str(path), w)) for w in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(30)
        assert process.exitcode == 0
    lines = path.read_text().splitlines()
    assert len(lines) == 200
    assert all(json.loads(line)["summary"] == "x" * 5000 for line in lines)


def test_last_and_last_green_of_a_gate(tmp_path: Path) -> None:
    history = History(tmp_path / "h.jsonl")
    history.append(record(commit="a"))
    history.append(record(commit="b", dirty=True))
    history.append(record(commit="c", outcome="failed"))
    last = history.last("p", "g")
    green = history.last_green_of("p", "g")
    assert last is not None
    assert last.commit == "c"
    assert green is not None
    assert green.commit == "a"
    assert history.last("p", "other") is None
    assert history.last_green_of("p", "other") is None


def test_green_commit_needs_every_required_gate_clean_and_no_failure(tmp_path: Path) -> None:
    history = History(tmp_path / "h.jsonl")
    required = [("p", "g"), ("p", "h")]
    history.append(record(commit="a", gate="g"))
    history.append(record(commit="a", gate="h"))
    history.append(record(commit="b", gate="g"))  # h never ran on b
    history.append(record(commit="c", gate="g"))
    history.append(record(commit="c", gate="h", outcome="failed"))
    history.append(record(commit="d", gate="g", dirty=True))
    history.append(record(commit="d", gate="h", dirty=True))
    assert history.green_commits(required) == ["a"]
    assert history.last_green_commit(required) == "a"
    # A later clean pass of h on c makes c green (its latest record counts).
    history.append(record(commit="c", gate="h"))
    assert history.last_green_commit(required) == "c"
    # Skips count as not failing, but a commit needs at least one pass.
    history.append(record(commit="e", gate="g", outcome="skipped"))
    history.append(record(commit="e", gate="h", outcome="skipped"))
    assert history.last_green_commit(required) == "c"
    assert History(tmp_path / "none.jsonl").last_green_commit(required) is None
