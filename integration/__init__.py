"""Integration tests against real QEMU, PostgreSQL and cloud APIs; a package so that the QEMU
benchmarks of bench/ can import its harness (`integration.qemu_harness`)."""
