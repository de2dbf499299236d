"""What one shard leaves in its directory, for `gates merge` to read:

    shard.json            {"format": 1, "run_id": …, "shard": I, "shards": N, "phases": […]}
                          (the phases its run selected: the merge groups shards by them)
    history.jsonl         its gate records, each tagged "I/N" (the project's history gets them
                          at the merge, once)
    <phase>-<gate>.xml    each test gate's JUnit report, for this shard's part
    <phase>-<gate>.shard.json   the tests the split was given and kept (gates_shard plugin)
    <phase>-<gate>.timing.json, .log   per-test times and the gate's output

The directory is the run's own (`.gates/runs/<run>/shard-I-of-N`), so a CI job uploads it whole.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gates.engine.history import History, Record
from gates.engine.shard import Shard
from gates.errors import GatesError

MANIFEST = "shard.json"
HISTORY = "history.jsonl"
FORMAT = 1


class MergeError(GatesError):
    """The shards' directories cannot be merged (the message says which and why)."""


def find_shards(paths: Sequence[Path]) -> list[Path]:
    """The shards' directories: each path that is one, else every one below it (a downloaded
    artifact, `.gates/runs/<run>`)."""
    found: list[Path] = []
    for path in paths:
        if (path / MANIFEST).is_file():
            found.append(path)
            continue
        below = sorted(manifest.parent for manifest in path.rglob(MANIFEST))
        if not below:
            raise MergeError(
                f"{path}: no shard's results in it (no {MANIFEST}); give the directories "
                "`gates run --shard I/N` wrote (.gates/runs/<run>/shard-I-of-N) or one above them"
            )
        found += below
    return found


def shard_dir(runs: Path, run_id: str, shard: Shard) -> Path:
    """Where shard I of N of run `run_id` keeps its results."""
    return runs / run_id / f"shard-{shard.index}-of-{shard.total}"


def write_manifest(
    directory: Path, run_id: str, shard: Shard, phases: Sequence[str] | None = None
) -> None:
    """The shard's manifest; `phases`: the phases its run selected (`--only`), so that shards of
    several selections — CI's jobs per tier — merge into one run."""
    directory.mkdir(parents=True, exist_ok=True)
    data: dict[str, object] = {
        "format": FORMAT, "run_id": run_id, "shard": shard.index, "shards": shard.total,
    }  # fmt: skip
    if phases is not None:
        data["phases"] = list(phases)
    (directory / MANIFEST).write_text(json.dumps(data) + "\n")


@dataclass(frozen=True)
class ShardResults:
    """One shard's directory, read."""

    directory: Path
    run_id: str
    shard: Shard
    records: tuple[Record, ...]
    phases: tuple[str, ...] | None = None  # the run's selection; None: not recorded (all)

    @classmethod
    def read(cls, directory: Path) -> ShardResults:
        manifest = directory / MANIFEST
        try:
            data = json.loads(manifest.read_text())
            shard = Shard(int(data["shard"]), int(data["shards"]))
            run_id = str(data["run_id"])
            listed = data.get("phases")
            if listed is not None and not (
                isinstance(listed, list) and all(isinstance(p, str) for p in listed)
            ):
                raise ValueError(f"phases must be a list of names, not {listed!r}")
            phases = tuple(listed) if listed is not None else None
        except FileNotFoundError:
            raise MergeError(
                f"{directory}: no {MANIFEST}; give the directories `gates run --shard I/N` wrote "
                "(.gates/runs/<run>/shard-I-of-N)"
            ) from None
        except (ValueError, KeyError, TypeError) as error:
            raise MergeError(f"{manifest}: unreadable ({error})") from None
        records = tuple(History(directory / HISTORY).all_records())
        return cls(directory, run_id, shard, records, phases)
