"""Which part of the work one run does: shard I of N, and the pytest arguments that select it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from gates.errors import ConfigError

SHAPE = re.compile(r"(\d+)/(\d+)")
# pytest-split's greedy algorithm: each test, longest first, goes to the least loaded shard.
ALGORITHM = "least_duration"


@dataclass(frozen=True)
class Shard:
    """Shard `index` (1-based) of `total`."""

    index: int
    total: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """`I/N` with 1 ≤ I ≤ N; anything else raises ConfigError saying what is allowed."""
        match = SHAPE.fullmatch(text.strip())
        if match is None:
            raise ConfigError(f"--shard {text!r}: give I/N, e.g. --shard 1/2 (shard I of N)")
        index, total = int(match[1]), int(match[2])
        if total < 1 or not 1 <= index <= total:
            example = f"1/{max(total, 2)}"
            raise ConfigError(f"--shard {text}: I must be between 1 and N ≥ 1, e.g. {example}")
        return cls(index, total)

    @property
    def label(self) -> str:
        return f"{self.index}/{self.total}"

    @property
    def is_first(self) -> bool:
        return self.index == 1

    def pytest_args(self, durations: Path) -> list[str]:
        """pytest-split's arguments for this shard; tests missing from `durations` count as the
        mean of the stored ones (pytest-split's rule), and every test counts alike without any."""
        return [
            f"--splits={self.total}",
            f"--group={self.index}",
            f"--durations-path={durations}",
            f"--splitting-algorithm={ALGORITHM}",
        ]


def shard_count(text: str) -> int:
    """`--shards N`: a whole number ≥ 1."""
    if not text.strip().isdigit() or int(text) < 1:
        raise ConfigError(f"--shards {text!r}: give the number of shards, a whole number ≥ 1")
    return int(text)
