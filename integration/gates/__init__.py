"""The gate engine run for real on this very project (slow; the integration tier runs them)."""
