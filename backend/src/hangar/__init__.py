"""Hangar: the example service of the Hangar template.

A machine manager for local QEMU VMs (and an in-memory fake provider for tests)."""

__version__ = "0.1.0"
