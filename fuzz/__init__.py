"""Fuzz tests: schemathesis against a live backend, every check, as each kind of caller."""
