"""A throwaway PostgreSQL server for the integration tier: the `postgres` fixture of
`testkit.postgres` (real `initdb` + `pg_ctl`, one per run, in /tmp/hangar-test-<run id>-pg…).

The tools are found (and installed, when that needs no password) by the project's provisioning;
still missing, the tier is skipped with the install command on a person's machine and fails under
CI=true. The cluster listens only on 127.0.0.1 at a free port, trusts local connections, and is
stopped and deleted when the session ends, even when tests fail; when the run is killed, its
reaper (`testkit.runs`) stops and deletes it within seconds, and the next run sweeps what a
killed reaper left.
"""

from __future__ import annotations

from testkit.postgres import PostgresServer, postgres

__all__ = ["PostgresServer", "postgres"]
