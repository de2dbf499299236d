"""Fixtures of the benchmarks: `measure` (`testkit.bench`), the one way a benchmark times its
code, slowed down on request by `HANGAR_BENCH_SLOWDOWN` for `invoke calibrate`."""

from __future__ import annotations

from testkit.bench import measure

__all__ = ["measure"]
