"""What every test tier shares, so that no tier directory imports another.

- `testkit.ci`: `is_ci`, `skip_or_fail` (skip on a person's machine, fail under CI=true);
- `testkit.waiting`: `retry` and `wait_until`, one deadline behind every wait;
- `testkit.runs`: the run id and tag, whose run owns what, the reaper that ends a run's processes
  and dirs when it dies (`testkit.reaper`: its process), the sweeper of killed runs' leftovers;
- `testkit.postgres`: the `postgres` fixture, a throwaway PostgreSQL server per run;
- `testkit.server`: `LiveServer`, the one `hangar serve` launcher;
- `testkit.client`: `ApiClient` (with `wait_for_state`), over HTTP or in-process;
- `testkit.loop`: `LoopThread`, one event loop in a thread for synchronous tests;
- `testkit.qemu`: the QEMU harness (machine vocabulary, watchdog, the `tiny` image fixture);
- `testkit.untraced_imports`: a pytest plugin that imports the tests' libraries before coverage
  starts measuring (`coverage_untraced_imports` in pytest's configuration).
"""
