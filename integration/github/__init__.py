"""Gate reporting against the real GitHub API (with credentials)."""
