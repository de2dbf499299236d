"""The `qemu` provider: local QEMU machines (see provider.py for the on-disk layout)."""

from hangar.providers.qemu.provider import QemuProvider

__all__ = ["QemuProvider"]
