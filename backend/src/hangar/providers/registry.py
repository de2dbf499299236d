"""Which providers exist and how each is built from the settings.

To add a provider, add one line to `FACTORIES`: its name and a function that builds it. Import the
provider's module inside that function so a missing optional dependency only matters when enabled.
"""

from __future__ import annotations

from collections.abc import Callable

from hangar.providers.base import Provider
from hangar.settings import Settings


class UnknownProviderError(ValueError):
    """HANGAR_PROVIDERS names a provider that does not exist."""


def _fake(settings: Settings) -> Provider:
    from hangar.providers.fake import FakeProvider

    return FakeProvider(latency=settings.fake_latency_seconds)


def _qemu(settings: Settings) -> Provider:
    from hangar.providers.qemu import QemuProvider

    return QemuProvider(settings.data_dir)


def _proxmox(settings: Settings) -> Provider:
    from hangar.providers.proxmox.provider import ProxmoxProvider

    return ProxmoxProvider(settings.proxmox_config(), settings.resolved_run_id())


def _e2b(settings: Settings) -> Provider:
    from hangar.providers.e2b.provider import E2BProvider

    return E2BProvider(settings.e2b_config(), settings.resolved_run_id())


FACTORIES: dict[str, Callable[[Settings], Provider]] = {
    "fake": _fake,
    "qemu": _qemu,
    "proxmox": _proxmox,
    "e2b": _e2b,
}


def build_providers(settings: Settings) -> dict[str, Provider]:
    """The enabled providers (`settings.providers`), in the order given, by name."""
    unknown = [name for name in settings.providers if name not in FACTORIES]
    if unknown:
        known = ", ".join(sorted(FACTORIES))
        raise UnknownProviderError(
            f"HANGAR_PROVIDERS names unknown provider(s) {', '.join(unknown)}; known: {known}"
        )
    return {name: FACTORIES[name](settings) for name in dict.fromkeys(settings.providers)}
