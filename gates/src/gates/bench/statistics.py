"""The bench gate's statistics: quantiles, round-wise ratios and their bootstrap interval.

Per benchmark and round, the ratio of a low quantile of the timings (candidate / baseline) is
taken between the two runs of that round; the rounds' ratios are combined by their geometric
mean and get a bootstrap confidence interval that resamples whole rounds (and the timings within
them). A benchmark regresses only when the whole interval lies above 1 + its threshold. One whose
ratio lies beyond the threshold while its interval still reaches below it is in doubt, and so is
one surely slower (its whole interval above 1) whose interval reaches beyond the threshold: more
rounds decide it (the gate runs them, up to `max_rounds`).
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from gates.bench.settings import BenchSettings

Verdict = Literal["slower", "faster", "same"]


def judge(low: float, high: float, threshold: float) -> Verdict:
    """The verdict on a ratio candidate / baseline known to lie in [low, high] (one number for a
    deterministic metric): slower when all of it exceeds 1 + threshold, faster when all of it is
    below 1 / (1 + threshold), else the same."""
    if low > 1 + threshold:
        return "slower"
    if high < 1 / (1 + threshold):
        return "faster"
    return "same"


@dataclass(frozen=True)
class Comparison:
    """One benchmark, both sides: the quantile's time in seconds, the ratio candidate/baseline
    and its interval."""

    name: str
    baseline_s: float
    candidate_s: float
    ratio: float
    low: float
    high: float
    threshold: float
    rounds: int = 0  # the rounds paired (0: not recorded)

    @property
    def verdict(self) -> Verdict:
        """slower: surely beyond the threshold; faster: surely beyond it the other way."""
        return judge(self.low, self.high, self.threshold)

    @property
    def regressed(self) -> bool:
        return self.verdict == "slower"

    @property
    def in_doubt(self) -> bool:
        """Maybe slower than the threshold allows, not surely: estimated beyond it, or surely
        slower (the whole interval above 1) with the interval reaching beyond it. More rounds
        either raise its low end past the threshold or bring it back within."""
        if self.regressed:
            return False
        beyond = 1 + self.threshold
        return self.ratio > beyond or (self.low > 1 and self.high > beyond)

    def as_metrics(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict}


def places(length: int, q: float) -> tuple[int, int, float]:
    """Where the `q` quantile of `length` sorted values lies: the index below it, the index above
    it and the share of the way between them."""
    position = q * (length - 1)
    below = int(position)
    return below, min(below + 1, length - 1), position - below


def quantile(values: Sequence[float], q: float) -> float:
    """The `q` quantile of `values`, interpolated linearly (0.5 is the median)."""
    ordered = sorted(values)
    below, above, part = places(len(ordered), q)
    return ordered[below] + (ordered[above] - ordered[below]) * part


Rounds = Sequence[Sequence[float]]  # per alternation round, that side's timings in seconds


def compare(
    name: str,
    baseline: Rounds,
    candidate: Rounds,
    *,
    threshold: float,
    q: float = BenchSettings.quantile,
    confidence: float = BenchSettings.confidence,
    resamples: int = BenchSettings.resamples,
    seed: int = BenchSettings.seed,
) -> Comparison:
    """Round by round, the ratio of the `q` quantiles (candidate / baseline); their geometric
    mean, with a percentile bootstrap interval over rounds and timings. `baseline[i]` and
    `candidate[i]` are the timings of round i. The RNG is seeded per benchmark, so the same
    timings always give the same verdict."""
    pairs = [(b, c) for b, c in zip(baseline, candidate, strict=False) if b and c]
    if not pairs:
        raise ValueError(f"benchmark {name!r} has no round with samples on both sides")
    # Reproducible resampling, not secrecy: the same samples must always give the same verdict.
    rng = random.Random(seed ^ zlib.crc32(name.encode()))  # noqa: S311
    # The bootstrap below runs `resamples` x rounds x 2 quantiles: each round's sides with the
    # places of their quantile worked out once (a resample of a side has its length), and the
    # quantile taken inline, as `quantile` takes it.
    sides = [(b, places(len(b), q), c, places(len(c), q)) for b, c in pairs]
    choices, ratios = rng.choices, []
    for _ in range(resamples):
        logs = 0.0
        for b, (b_lo, b_hi, b_part), c, (c_lo, c_hi, c_part) in choices(sides, k=len(sides)):
            b_sorted, c_sorted = sorted(choices(b, k=len(b))), sorted(choices(c, k=len(c)))
            c_q = c_sorted[c_lo] + (c_sorted[c_hi] - c_sorted[c_lo]) * c_part
            b_q = b_sorted[b_lo] + (b_sorted[b_hi] - b_sorted[b_lo]) * b_part
            logs += math.log(c_q / b_q)
        ratios.append(math.exp(logs / len(sides)))
    ratios.sort()
    tail_share = (1 - confidence) / 2
    low = ratios[int(tail_share * (resamples - 1))]
    high = ratios[round((1 - tail_share) * (resamples - 1))]
    b_time = quantile([x for b, _ in pairs for x in b], q)
    c_time = quantile([x for _, c in pairs for x in c], q)
    logs = 0.0  # summed as above: sum() rounds otherwise from Python 3.12
    for b, c in pairs:
        logs += math.log(quantile(c, q) / quantile(b, q))
    ratio = math.exp(logs / len(pairs))
    return Comparison(name, b_time, c_time, ratio, low, high, threshold, len(pairs))


def compare_all(
    baseline: Mapping[str, Rounds],
    candidate: Mapping[str, Rounds],
    settings: BenchSettings,
) -> tuple[list[Comparison], list[str]]:
    """Compare the benchmarks both sides ran; also name those only one side has."""
    common = [name for name in candidate if name in baseline]
    only = sorted(set(baseline) ^ set(candidate))
    comparisons = [
        compare(
            name,
            baseline[name],
            candidate[name],
            threshold=settings.threshold_for(name),
            q=settings.quantile_for(name),
            confidence=settings.confidence,
            resamples=settings.resamples,
            seed=settings.seed,
        )
        for name in common
    ]
    return comparisons, only
