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


def quantile(values: Sequence[float], q: float) -> float:
    """The `q` quantile of `values`, interpolated linearly (0.5 is the median)."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    below = int(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


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

    def mean_ratio(
        chosen: Sequence[tuple[Sequence[float], Sequence[float]]], resample: bool
    ) -> float:
        logs = 0.0
        for b, c in chosen:
            if resample:
                b, c = rng.choices(b, k=len(b)), rng.choices(c, k=len(c))
            logs += math.log(quantile(c, q) / quantile(b, q))
        return math.exp(logs / len(chosen))

    ratios = sorted(
        mean_ratio(rng.choices(pairs, k=len(pairs)), resample=True) for _ in range(resamples)
    )
    tail_share = (1 - confidence) / 2
    low = ratios[int(tail_share * (resamples - 1))]
    high = ratios[round((1 - tail_share) * (resamples - 1))]
    b_time = quantile([x for b, _ in pairs for x in b], q)
    c_time = quantile([x for _, c in pairs for x in c], q)
    ratio = mean_ratio(pairs, resample=False)
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
