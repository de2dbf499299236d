"""What every test tier shares, so that no tier directory imports another.

- `testkit.ci`: `is_ci`, `skip_or_fail` (skip on a person's machine, fail under CI=true);
- `testkit.waiting`: `retry` and `wait_until`, one deadline behind every wait;
- `testkit.runs`: the run id and tag, the reaper that ends a run's processes and temp dirs when it
  dies, even by `kill -9` (`testkit.reaper`: its process), the sweeper of killed runs' leftovers;
- `testkit.postgres`: the `postgres` fixture, a throwaway PostgreSQL server per run.
"""
