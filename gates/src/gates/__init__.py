"""The phased gate engine: pipeline as data, history, rollback, upgrade, bench compare, reports.

Where things live, bottom layer first; a module imports only its own package or a lower layer
(gates/tests/test_layers.py checks it), and only `cli` prints or parses arguments:

- `errors`, `files`, `project`, `tiers`, `provision`, `init`: the foundation — error types,
  atomic writes, `[tool.gates]` reading, the test tiers, system tools, the starter table.
- `pytest_plugins/`: the plugins (`timing`, `collection`: stdlib only; `shard`: pytest's own
  API) a test run loads as `-p gates_timing` / `-p gates_collection` / `-p gates_shard`, and the
  loader that copies them into the run dir.
- `git/`: git access (`repository`: commits, tree state).
- `engine/`: the pipeline as data (`pipeline`), how a gate runs (`execution`, `junit`), the run
  (`runner`, which gets the checks it may run), its record (`history`) and its part (`shard`).
- `bench/`, `parallel/`, `soak`, `changes/`, `shards/`: work built on the engine — the benchmark
  comparison (`settings`, `statistics`, `worktree`, `compare`, `baseline`, `calibration`), the
  speedup analysis, soaking a tier (and the one stored-soak model), rollback and dependency
  upgrade, and the shards' results, merge, side-by-side runs and stored durations.
- `checks/`: the built-in checks, one module each, and the `CHECKS` registry.
- `reporting/`: `console`, `github`, and `html/` (`model`, `charts`, `page`, `templates/`).
- `cli` (and `__main__`): the `gates` command; the only module that imports all the others.
"""

__version__ = "0.1.0"
