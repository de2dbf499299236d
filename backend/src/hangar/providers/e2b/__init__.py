"""The `e2b` provider: each machine is an E2B cloud sandbox, driven through the official SDK.

This package's `__init__` imports no SDK: `E2BConfig` is what the settings build, and the SDK
(a heavy import) loads only with `hangar.providers.e2b.provider`, when the provider is enabled.
"""

from hangar.providers.e2b.config import E2BConfig, E2BSettingsError

__all__ = ["E2BConfig", "E2BSettingsError"]
