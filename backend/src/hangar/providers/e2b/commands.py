"""`exec` in a sandbox: one command through the SDK's command channel (`commands.run`, which
speaks Connect-RPC to envd inside the sandbox), mapped onto the provider protocol.

What callers rely on: the command runs with explicit timeouts (`timeout` bounds the command,
`request_timeout` the opening of its stream); a non-zero exit is an `ExecResult`, not an error;
a command that does not finish in time is killed (SIGKILL), never left running, and the caller
gets a `ProviderError` saying so.
"""

from __future__ import annotations

import asyncio
from typing import Literal, Protocol

from e2b import (
    CommandExitException,
    CommandResult,
    SandboxException,
    SandboxNotRunningException,
    SandboxUnreachableException,
    TimeoutException,
)

from hangar.providers.base import ExecResult, NotFoundError, ProviderError


class CommandHandle(Protocol):
    """What `commands.run(..., background=True)` returns (the SDK's `AsyncCommandHandle`)."""

    async def wait(self) -> CommandResult[str]: ...
    async def kill(self) -> bool: ...


class CommandChannel(Protocol):
    """The part of the SDK's `sandbox.commands` that exec uses."""

    async def run(
        self,
        cmd: str,
        background: Literal[True],
        *,
        timeout: float | None,  # noqa: ASYNC109 (the SDK's parameter: the stream's deadline)
        request_timeout: float | None,
    ) -> CommandHandle: ...


async def run_command(
    channel: CommandChannel,
    command: str,
    *,
    timeout: float,  # noqa: ASYNC109 (handed to the SDK, and hangar's own deadline follows it)
    request_timeout: float,
    grace: float,
) -> ExecResult:
    """Run `command` to its end and return its exit status and output (stdout, then stderr).

    Started in the background so that hangar holds a handle to kill it: the SDK's stream
    deadline (`timeout`) ends the wait, and a local deadline `grace` seconds later ends it
    should the stream hang; either way the command is killed."""
    try:
        handle = await channel.run(
            command, background=True, timeout=timeout, request_timeout=request_timeout
        )
    except SandboxNotRunningException as exc:
        raise _gone(exc) from exc
    except SandboxException as exc:
        raise ProviderError(f"could not start the command in the E2B sandbox: {exc}") from exc
    try:
        async with asyncio.timeout(timeout + grace):
            result = await handle.wait()
    except CommandExitException as exited:
        return ExecResult(exited.exit_code, (exited.stdout or "") + (exited.stderr or ""))
    except SandboxNotRunningException as exc:
        raise _gone(exc) from exc
    except SandboxUnreachableException as exc:
        raise ProviderError(f"lost the E2B sandbox while the command ran: {exc}") from exc
    except (TimeoutException, TimeoutError) as exc:
        raise ProviderError(
            f"the command did not finish within {timeout:g}s and was {await _kill(handle)}"
        ) from exc
    except SandboxException as exc:
        raise ProviderError(f"the command failed in the E2B sandbox: {exc}") from exc
    return ExecResult(result.exit_code, (result.stdout or "") + (result.stderr or ""))


async def _kill(handle: CommandHandle) -> str:
    try:
        await handle.kill()
    except SandboxException as exc:
        return f"not killed: killing it failed too ({exc})"
    return "killed"


def _gone(error: BaseException) -> NotFoundError:
    return NotFoundError(f"the E2B sandbox is not running any more: {error}")
