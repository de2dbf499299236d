"""Errors of the qemu provider; all are ProviderErrors, so the service shows their message."""

from __future__ import annotations

from collections.abc import Sequence

from hangar.providers.base import ProviderError


class InvalidConfigError(ProviderError):
    """A value cannot go on a QEMU command line; the message names it and what is allowed."""


class LaunchError(ProviderError):
    """QEMU did not start or the guest did not become ready; carries the command line and log."""

    def __init__(self, reason: str, argv: Sequence[str], log: str) -> None:
        self.reason = reason
        self.argv = list(argv)
        self.log = log
        tail = "\n".join(log.splitlines()[-30:])
        super().__init__(f"{reason}\n--- QEMU and console log (tail) ---\n{tail}")


class MonitorError(ProviderError):
    """A QMP command failed or timed out."""


class GuestError(ProviderError):
    """The guest did not answer on its control console in time."""
