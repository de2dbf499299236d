"""Integration tests against real QEMU, PostgreSQL and cloud APIs; shared test code (the QEMU
harness among it) lives in the `testkit` package, never here."""
