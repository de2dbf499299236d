"""What every test tier shares, so that no tier directory imports another.

- `testkit.ci`: `is_ci`, `skip_or_fail` (skip on a person's machine, fail under CI=true);
- `testkit.waiting`: `retry` and `wait_until`, one deadline behind every wait.
"""
