"""Hangar: the example service of the Hangar template.

A machine manager for local QEMU VMs, Proxmox VE guests and E2B cloud sandboxes (and an
in-memory fake provider for tests)."""

__version__ = "0.1.0"
