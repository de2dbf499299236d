"""exec's mapping onto the SDK's command channel, at the seam, with a fake of the SDK's commands
object (`FakeCommands`). The channel itself (Connect-RPC to envd inside a sandbox) cannot be
faked honestly: it is tested only for real, in the integration tier."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal

import pytest
from e2b import (
    CommandExitException,
    CommandResult,
    SandboxException,
    SandboxNotRunningException,
    SandboxUnreachableException,
    TimeoutException,
)

from hangar.providers.base import ExecResult, NotFoundError, ProviderError
from hangar.providers.e2b.commands import CommandChannel, run_command
from hangar.providers.e2b.provider import E2BProvider

from .e2b_replay import (
    RUN,
    E2BReplay,
    listed_body,
    replay_config,
)

pytestmark = pytest.mark.asyncio

MACHINE = {"hangar": "1", "machine": "m1"}
M1 = {"hangar": "1", "run": RUN, "machine": "m1"}

Ending = CommandResult[str] | BaseException | Literal["hangs"]


@dataclass
class FakeCommandHandle:
    """A fake of the SDK's `AsyncCommandHandle`: ends as told, records kills."""

    ending: Ending
    kills: int = 0

    async def wait(self) -> CommandResult[str]:
        if self.ending == "hangs":
            await asyncio.Event().wait()  # until the caller's deadline cancels the wait
        if isinstance(self.ending, BaseException):
            raise self.ending
        assert isinstance(self.ending, CommandResult)
        return self.ending

    async def kill(self) -> bool:
        self.kills += 1
        return True


@dataclass
class FakeCommands:
    """A fake of the SDK's `sandbox.commands`: records each run, answers with one handle."""

    handle: FakeCommandHandle
    runs: list[dict[str, object]] = field(default_factory=list)
    refusal: BaseException | None = None

    async def run(
        self,
        cmd: str,
        background: Literal[True],
        *,
        timeout: float | None,  # noqa: ASYNC109 (the SDK's parameter)
        request_timeout: float | None,
    ) -> FakeCommandHandle:
        self.runs.append(
            {
                "cmd": cmd,
                "background": background,
                "timeout": timeout,
                "request_timeout": request_timeout,
            }
        )
        return self.handle


def fake_commands(ending: Ending) -> FakeCommands:
    return FakeCommands(FakeCommandHandle(ending))


def finished(exit_code: int, stdout: str = "", stderr: str = "") -> CommandResult[str]:
    return CommandResult(stdout=stdout, stderr=stderr, exit_code=exit_code, error=None)


async def run(commands: CommandChannel, seconds: float = 5.0, grace: float = 10.0) -> ExecResult:
    """`uname -a` with a command timeout of `seconds` and a request timeout of 3 s."""
    return await run_command(
        commands, "uname -a", timeout=seconds, request_timeout=3.0, grace=grace
    )


async def test_the_command_runs_with_explicit_command_and_request_timeouts() -> None:
    commands = fake_commands(finished(0, "Linux\n"))
    assert await run(commands, seconds=7.5) == ExecResult(0, "Linux\n")
    assert commands.runs == [
        {"cmd": "uname -a", "background": True, "timeout": 7.5, "request_timeout": 3.0}
    ]


async def test_a_non_zero_exit_is_a_result_not_an_error() -> None:
    exited = CommandExitException(
        stdout="partial\n", stderr="no such file\n", exit_code=2, error=None
    )
    assert await run(fake_commands(exited)) == ExecResult(2, "partial\nno such file\n")


async def test_a_command_that_times_out_is_killed() -> None:
    commands = fake_commands(TimeoutException("context deadline exceeded"))
    with pytest.raises(ProviderError, match=r"did not finish within 5s and was killed$"):
        await run(commands)
    assert commands.handle.kills == 1


async def test_a_command_whose_stream_hangs_is_killed_at_hangars_own_deadline() -> None:
    commands = fake_commands("hangs")
    with pytest.raises(ProviderError, match=r"did not finish within 0\.001s and was killed"):
        await run(commands, seconds=0.001, grace=0.0)
    assert commands.handle.kills == 1


async def test_a_sandbox_that_stopped_running_is_not_found() -> None:
    commands = fake_commands(SandboxNotRunningException("sandbox was not found"))
    with pytest.raises(NotFoundError, match="not running any more"):
        await run(commands)
    assert commands.handle.kills == 0


async def test_a_command_that_cannot_start_says_why() -> None:
    class Refusing(FakeCommands):
        async def run(
            self,
            cmd: str,
            background: Literal[True],
            *,
            timeout: float | None,  # noqa: ASYNC109 (the SDK's parameter)
            request_timeout: float | None,
        ) -> FakeCommandHandle:
            assert self.refusal is not None
            raise self.refusal

    refusing = Refusing(FakeCommandHandle(finished(0)))
    refusing.refusal = SandboxNotRunningException("sandbox was not found")
    with pytest.raises(NotFoundError, match="not running any more"):
        await run(refusing)
    refusing.refusal = SandboxException("envd: permission denied")
    with pytest.raises(ProviderError, match=r"could not start the command .*permission denied"):
        await run(refusing)


async def test_a_command_whose_kill_fails_says_it_was_not_killed() -> None:
    class Unkillable(FakeCommandHandle):
        async def kill(self) -> bool:
            raise SandboxUnreachableException("port is not open")

    commands = FakeCommands(Unkillable(TimeoutException("context deadline exceeded")))
    with pytest.raises(ProviderError, match="was not killed: killing it failed too"):
        await run(commands)


async def test_another_failure_of_the_command_channel_is_a_provider_error() -> None:
    commands = fake_commands(SandboxException("stream reset"))
    with pytest.raises(ProviderError, match="the command failed in the E2B sandbox: stream reset"):
        await run(commands)


async def test_a_sandbox_lost_while_the_command_ran_says_so() -> None:
    commands = fake_commands(SandboxUnreachableException("port is not open"))
    with pytest.raises(ProviderError, match="lost the E2B sandbox while the command ran"):
        await run(commands)


# ------------------------------------------------------------------ through the provider
async def test_exec_runs_in_the_running_sandbox_of_the_machine(e2b_replay: E2BReplay) -> None:
    commands = fake_commands(finished(0, "hi\n"))
    opened: list[str] = []

    async def channel(sandbox_id: str) -> CommandChannel:
        opened.append(sandbox_id)
        return commands

    provider = E2BProvider(replay_config(request_timeout_s=4.0), RUN, channel=channel)
    e2b_replay.sandboxes_listed(MACHINE, listed_body("isb1", M1))

    assert await provider.exec("m1", "echo hi", timeout=9) == ExecResult(0, "hi\n")
    assert opened == ["isb1"]
    assert commands.runs[0]["timeout"] == 9
    assert commands.runs[0]["request_timeout"] == 4.0


async def test_exec_in_a_stopped_machine_is_refused(e2b_replay: E2BReplay) -> None:
    async def channel(sandbox_id: str) -> CommandChannel:
        raise AssertionError("a paused sandbox must not be connected to (that resumes it)")

    provider = E2BProvider(replay_config(), RUN, channel=channel)
    e2b_replay.sandboxes_listed(MACHINE, listed_body("isb1", M1, state="paused"))
    with pytest.raises(ProviderError, match=r"machine m1 is stopped .*start it to run commands"):
        await provider.exec("m1", "true")


async def test_the_real_channel_is_opened_through_the_control_plane(e2b_replay: E2BReplay) -> None:
    """Only the connect is a request; the SDK's commands object speaks to envd when used, which
    the unit tests never do."""
    provider = E2BProvider(replay_config(), RUN)
    resumed = e2b_replay.sandbox_resumed("isb1")
    channel = await provider._connect_channel("isb1")
    assert type(channel).__name__ == "Commands"
    assert resumed.call_count == 1
