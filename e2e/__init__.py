"""Browser tests (pytest-playwright) of the hangar web UI against a live backend."""
