"""The bench gate: the working tree against a baseline commit, side by side.

`settings` reads `[tool.gates.bench]`; `statistics` is the pure arithmetic (quantiles, ratios,
bootstrap intervals, verdicts); `worktree` gives the baseline its own checkout and removes what
killed runs left; `compare` runs both sides in rounds and stores the table; `baseline` picks the
commit to compare with; `calibration` measures the gate's false-alarm and detection rates.
"""
