"""What the e2b provider is told: its key, template, sandbox lifetime and API domain.

No SDK import here: the settings build an `E2BConfig` without loading the e2b package.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The metadata every sandbox of hangar carries; the provider finds a machine's sandbox by them.
HANGAR_MARK = {"hangar": "1"}
RUN_LABEL = "run"
MACHINE_LABEL = "machine"

KEY_VARIABLE = "HANGAR_E2B_API_KEY"
SDK_KEY_VARIABLE = "E2B_API_KEY"  # the SDK's own variable, accepted too


class E2BSettingsError(ValueError):
    """The e2b provider cannot be built from the settings; the message names the variable."""


@dataclass(frozen=True, slots=True)
class E2BConfig:
    """How to reach E2B and what to create there.

    `timeout_s` is each sandbox's lifetime: E2B kills a sandbox when it runs out, and the
    observer extends it while the machine's row says running. It is a dead-man switch: when
    the server is gone, its sandboxes expire on their own. `backoff_s` are the waits between
    attempts of a call that E2B refused for its rate limit or concurrency cap (429) or as busy
    (503); after the last one the call fails with a clear message. The key is never shown:
    it is left out of `repr`, and `key_variable` names where it came from for messages.
    """

    api_key: str = field(repr=False)
    template: str = "base"
    timeout_s: int = 300
    domain: str | None = None  # None: the SDK's default (E2B_DOMAIN, else e2b.app)
    key_variable: str = KEY_VARIABLE
    request_timeout_s: float = 30.0  # one control-plane request, and opening a command stream
    backoff_s: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
    # How long past its own timeout a command may take before hangar stops waiting and kills
    # it (the SDK's stream deadline normally ends it first).
    exec_grace_s: float = 10.0

    def __post_init__(self) -> None:
        if not self.api_key:
            raise E2BSettingsError(
                f"{KEY_VARIABLE} (or the SDK's {SDK_KEY_VARIABLE}) is not set; the e2b provider "
                "needs an E2B API key (https://e2b.dev/dashboard?tab=keys)"
            )
        if self.timeout_s < 1:
            raise E2BSettingsError(f"HANGAR_E2B_TIMEOUT_S must be at least 1, got {self.timeout_s}")
