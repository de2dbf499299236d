"""The e2b provider's lifecycle against replays of E2B's control plane (not E2B itself): create
with metadata, start/stop as resume/pause, delete as kill, what it reports, what it lacks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from hangar.providers.base import (
    Capability,
    KeepAlive,
    MachineSpec,
    NotFoundError,
    Provider,
    ProviderError,
    Runtime,
    UnsupportedError,
)
from hangar.providers.e2b.provider import E2BProvider

from .e2b_replay import (
    RUN,
    E2BReplay,
    RecordedWaits,
    error_body,
    listed_body,
    replay_config,
)

SPEC = MachineSpec(key="m1", name="web-1", image="base", cpus=2, memory_mb=512)
MACHINE = {"hangar": "1", "machine": "m1"}  # how the provider looks up machine m1's sandbox
OF_RUN = {"hangar": "1", "run": RUN}  # how it lists its run's sandboxes
M1 = {"hangar": "1", "run": RUN, "machine": "m1"}  # what m1's sandbox carries


@pytest.fixture
def e2b(waits: RecordedWaits) -> E2BProvider:
    return E2BProvider(replay_config(), RUN, sleep=waits)


def test_implements_the_protocol_and_its_optional_additions(e2b: E2BProvider) -> None:
    assert isinstance(e2b, Provider)
    assert isinstance(e2b, KeepAlive)
    assert e2b.name == "e2b"
    assert e2b.capabilities == {Capability.EXEC, Capability.ENDPOINT}


@pytest.mark.asyncio
async def test_create_tags_the_sandbox_with_metadata_and_leaves_it_paused(
    e2b: E2BProvider, e2b_replay: E2BReplay
) -> None:
    created = e2b_replay.sandbox_created("isb1")
    paused = e2b_replay.sandbox_paused("isb1")

    await e2b.create(SPEC)

    assert e2b_replay.sent_json(created) == {
        "templateID": "base",
        "timeout": 300,
        "metadata": {"hangar": "1", "run": RUN, "machine": "m1"},
        "envVars": {},
    }
    assert paused.call_count == 1  # the protocol creates machines stopped


@pytest.mark.asyncio
async def test_a_create_that_fails_half_way_kills_its_sandbox(
    e2b: E2BProvider, e2b_replay: E2BReplay
) -> None:
    e2b_replay.sandbox_created("isb1")
    e2b_replay.answer(
        "POST", "/sandboxes/isb1/pause", (500, error_body(500, "snapshot storage unavailable"))
    )
    killed = e2b_replay.sandbox_killed("isb1")

    with pytest.raises(ProviderError, match="snapshot storage unavailable"):
        await e2b.create(SPEC)
    assert killed.call_count == 1


@pytest.mark.asyncio
async def test_a_create_whose_cleanup_fails_too_says_the_sandbox_expires(
    e2b: E2BProvider, e2b_replay: E2BReplay
) -> None:
    e2b_replay.sandbox_created("isb1")
    e2b_replay.answer("POST", "/sandboxes/isb1/pause", (500, error_body(500, "no snapshot")))
    e2b_replay.answer("DELETE", "/sandboxes/isb1", (500, error_body(500, "no orchestrator")))
    with pytest.raises(ProviderError, match=r"could not be paused nor killed .*within 300s"):
        await e2b.create(SPEC)


@pytest.mark.asyncio
async def test_a_request_e2b_rejects_is_a_provider_error_with_its_reason(
    e2b: E2BProvider, e2b_replay: E2BReplay
) -> None:
    e2b_replay.refused("POST", "/v2/sandboxes", 400, "template 'base' is not built for arm64")
    with pytest.raises(
        ProviderError, match=r"E2B could not create a sandbox .*not built for arm64"
    ):
        await e2b.create(SPEC)


@pytest.mark.asyncio
async def test_create_refuses_another_template_before_asking_e2b(e2b: E2BProvider) -> None:
    assert await e2b.images() == ("base",)
    with pytest.raises(ProviderError, match=r"template 'base' \(HANGAR_E2B_TEMPLATE\) only"):
        await e2b.create(MachineSpec("m1", "web-1", "ubuntu", 1, 512))


@pytest.mark.asyncio
async def test_start_resumes_and_stop_pauses_the_machines_sandbox(
    e2b: E2BProvider, e2b_replay: E2BReplay
) -> None:
    e2b_replay.sandboxes_listed(MACHINE, listed_body("isb1", M1, state="paused"))
    resumed = e2b_replay.sandbox_resumed("isb1")

    runtime = await e2b.start("m1")

    assert runtime == Runtime(key="m1", running=True, endpoint="https://80-isb1.e2b.app")
    assert e2b_replay.sent_json(resumed) == {"timeout": 300}  # its lifetime starts anew

    e2b_replay.sandboxes_listed(MACHINE, listed_body("isb1", M1, state="running"))
    paused = e2b_replay.sandbox_paused("isb1")
    await e2b.stop("m1")
    assert paused.call_count == 1


@pytest.mark.asyncio
async def test_stop_of_a_paused_sandbox_asks_nothing_more(
    e2b: E2BProvider, e2b_replay: E2BReplay
) -> None:
    e2b_replay.sandboxes_listed(MACHINE, listed_body("isb1", M1, state="paused"))
    await e2b.stop("m1")  # a pause request would be unmatched and fail the test


@pytest.mark.asyncio
async def test_start_of_a_sandbox_gone_meanwhile_is_not_found(
    e2b: E2BProvider, e2b_replay: E2BReplay
) -> None:
    e2b_replay.sandbox_created("isb1")
    e2b_replay.sandbox_paused("isb1")
    await e2b.create(SPEC)
    e2b_replay.sandbox_gone("POST", "/v2/sandboxes/isb1/connect")

    with pytest.raises(NotFoundError, match="the E2B sandbox is gone"):
        await e2b.start("m1")  # the id was known from create: no lookup first

    e2b_replay.sandboxes_listed(MACHINE)
    with pytest.raises(NotFoundError, match="E2B has no sandbox of machine m1"):
        await e2b.start("m1")  # the gone id was forgotten: looked up again


@pytest.mark.asyncio
async def test_delete_kills_the_sandbox_and_an_already_gone_one_is_success(
    e2b: E2BProvider, e2b_replay: E2BReplay
) -> None:
    e2b_replay.sandboxes_listed(MACHINE, listed_body("isb1", M1))
    killed = e2b_replay.sandbox_killed("isb1")
    await e2b.delete("m1")
    assert killed.call_count == 1

    # Killed elsewhere between the lookup and the kill: E2B answers 404.
    e2b_replay.sandboxes_listed(MACHINE, listed_body("isb1", M1))
    e2b_replay.sandbox_gone("DELETE", "/sandboxes/isb1")
    await e2b.delete("m1")

    # Expired long ago: no sandbox carries the machine's key any more.
    e2b_replay.sandboxes_listed(MACHINE)
    await e2b.delete("m1")


@pytest.mark.asyncio
async def test_runtime_inventory_and_placement_come_from_the_metadata(
    e2b: E2BProvider, e2b_replay: E2BReplay
) -> None:
    m2 = {**M1, "machine": "m2"}
    e2b_replay.sandboxes_listed(
        OF_RUN, listed_body("isb1", M1), listed_body("isb2", m2, state="paused")
    )
    assert await e2b.inventory() == [
        Runtime(key="m1", running=True, endpoint="https://80-isb1.e2b.app"),
        Runtime(key="m2", running=False),
    ]

    e2b_replay.sandboxes_listed(MACHINE, listed_body("isb1", M1, state="paused"))
    assert await e2b.runtime("m1") == Runtime(key="m1", running=False)
    e2b_replay.sandboxes_listed(MACHINE)
    assert await e2b.runtime("m1") is None

    e2b_replay.sandboxes_listed(MACHINE, listed_body("isb1", M1))
    assert await e2b.placement("m1") == {"sandbox": "isb1", "template": "base"}
    e2b_replay.sandboxes_listed(MACHINE)
    with pytest.raises(NotFoundError, match="E2B has no sandbox of machine m1"):
        await e2b.placement("m1")


@pytest.mark.asyncio
async def test_a_list_of_several_pages_is_read_to_its_end(
    e2b: E2BProvider, e2b_replay: E2BReplay
) -> None:
    m2 = {**M1, "machine": "m2"}
    e2b_replay.sandboxes_listed(OF_RUN, listed_body("isb1", M1), next_page="page-2")
    e2b_replay.sandboxes_listed(OF_RUN, listed_body("isb2", m2), page="page-2")
    assert [runtime.key for runtime in await e2b.inventory()] == ["m1", "m2"]


LACKING: dict[str, Callable[[E2BProvider], Awaitable[object]]] = {
    "create_disk": lambda p: p.create_disk("m1", "d1", 10),
    "attach_disk": lambda p: p.attach_disk("m1", "d1"),
    "detach_disk": lambda p: p.detach_disk("m1", "d1"),
    "delete_disk": lambda p: p.delete_disk("m1", "d1"),
    "create_snapshot": lambda p: p.create_snapshot("m1", "s1"),
    "rollback_snapshot": lambda p: p.rollback_snapshot("m1", "s1"),
    "delete_snapshot": lambda p: p.delete_snapshot("m1", "s1"),
    "clone": lambda p: p.clone("m1", SPEC),
    "console": lambda p: p.console("m1"),
}


@pytest.mark.parametrize("action", sorted(LACKING))
@pytest.mark.asyncio
async def test_what_e2b_lacks_is_unsupported_without_asking_it(
    e2b: E2BProvider, action: str
) -> None:
    with pytest.raises(UnsupportedError, match="the e2b provider has no"):
        await LACKING[action](e2b)
    await e2b.close()
