"""The phased gate engine: pipeline as data, history, rollback, upgrade, bench compare, reports."""

__version__ = "0.1.0"
