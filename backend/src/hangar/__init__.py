"""Hangar: the example service of the Hangar template.

A machine manager for QEMU, Proxmox and E2B."""

__version__ = "0.1.0"
