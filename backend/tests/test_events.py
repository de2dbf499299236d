"""The event stream (SSE) and the event log."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from hangar.settings import Settings

from .conftest import ADMIN, Api, hangar_of, log_in, make_settings
from .streaming import SseReader, StreamingASGITransport

pytestmark = pytest.mark.asyncio


def streaming_client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=StreamingASGITransport(app), base_url="http://hangar.test")


async def stored_ids(api: Api, **params: str | int) -> list[int]:
    response = await api.client.get("/api/v1/events/log", params={"limit": 500, **params})
    assert response.status_code == 200
    return [event["id"] for event in response.json()]


async def test_resume_with_last_event_id_replays_then_streams_live(api: Api, app: FastAPI) -> None:
    first = await api.create("web-1")
    ids = sorted(await stored_ids(api))
    resume_from = ids[1]
    async with streaming_client(app) as client:
        await log_in(client, *ADMIN)
        headers = {"Last-Event-ID": str(resume_from)}
        async with client.stream("GET", "/api/v1/events", headers=headers) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            reader = SseReader(response)
            replayed = await reader.events(len(ids) - 2)
            assert [int(e["id"]) for e in replayed] == ids[2:]
            # Now a live change: it arrives after the replay, with a larger id, exactly once.
            await api.act(first["id"], "stop")
            live = await reader.events(3)
    live_ids = [int(e["id"]) for e in live]
    assert live_ids == sorted(live_ids)
    assert live_ids[0] > ids[-1]
    states = [json.loads(e["data"])["state"] for e in live if e["event"] == "state"]
    assert states == ["stopping", "stopped"]


async def test_resume_with_after_query_and_machine_filter(api: Api, app: FastAPI) -> None:
    one = await api.create("one")
    await api.create("two")
    expected = sorted(await stored_ids(api, machine_id=one["id"]))
    async with streaming_client(app) as client:
        await log_in(client, *ADMIN)
        params = {"after": 0, "machine_id": one["id"]}
        async with client.stream("GET", "/api/v1/events", params=params) as response:
            events = await SseReader(response).events(len(expected))
    assert [int(e["id"]) for e in events] == expected
    assert {json.loads(e["data"])["machine_id"] for e in events} == {one["id"]}
    assert all(e["event"] == json.loads(e["data"])["kind"] for e in events)


async def test_no_event_lost_or_repeated_when_changes_race_the_replay(
    api: Api, app: FastAPI
) -> None:
    machine = await api.create("web-1")
    async with streaming_client(app) as client:
        await log_in(client, *ADMIN)
        async with client.stream("GET", "/api/v1/events?after=0") as response:
            # Changes happen while the stream replays: every stored event must come exactly once.
            await api.act(machine["id"], "stop")
            await api.act(machine["id"], "start")
            total = len(await stored_ids(api))
            events = await SseReader(response).events(total)
    received = [int(e["id"]) for e in events]
    assert received == sorted(await stored_ids(api))
    assert len(set(received)) == len(received)


async def test_heartbeat_comment_is_sent(tmp_path: Path, migrated_template: Path) -> None:
    settings: Settings = make_settings(tmp_path, sse_heartbeat_seconds=0.05)
    settings.ensure_data_dir()
    shutil.copyfile(migrated_template, settings.data_dir / "hangar.db")  # migrating is slow
    from hangar.api.app import create_app

    application = create_app(settings)
    async with application.router.lifespan_context(application), streaming_client(application) as c:
        await log_in(c, *ADMIN)
        async with c.stream("GET", "/api/v1/events") as response:
            reader = SseReader(response)
            await reader.read_until(lambda _e, comments: len(comments) >= 2)
    assert len(reader.comments) >= 2
    assert all(comment.startswith("ping") for comment in reader.comments)


async def test_stream_ends_when_the_server_shuts_down(api: Api, app: FastAPI) -> None:
    async with streaming_client(app) as client:
        await log_in(client, *ADMIN)
        async with client.stream("GET", "/api/v1/events") as response:
            machines = hangar_of(app).machines
            machines.bus.close()
            events = await SseReader(response).read_until(lambda _e, _c: False)
    assert events == []
    assert machines.bus.subscriber_count == 0


async def test_subscribing_to_a_closed_bus_ends_at_once(app: FastAPI) -> None:
    bus = hangar_of(app).machines.bus
    bus.close()
    with bus.subscribe() as subscription:
        assert await subscription.get() is None


@pytest.mark.parametrize("last_event_id", ["abc", "-1", str(2**63)])
async def test_bad_last_event_id_is_422(admin: httpx.AsyncClient, last_event_id: str) -> None:
    response = await admin.get("/api/v1/events", headers={"Last-Event-ID": last_event_id})
    assert response.status_code == 422
    assert response.json()["error"]["details"]["fields"][0]["field"] == "Last-Event-ID"


async def test_event_log_is_newest_first_and_pages_with_before(api: Api) -> None:
    one = await api.create("one")
    await api.create("two")
    everything = await stored_ids(api)
    assert everything == sorted(everything, reverse=True)
    page = (await api.client.get("/api/v1/events/log", params={"limit": 2})).json()
    assert [e["id"] for e in page] == everything[:2]
    older = await api.client.get("/api/v1/events/log", params={"before": page[-1]["id"]})
    assert [e["id"] for e in older.json()] == everything[2:]
    mine = await stored_ids(api, machine_id=one["id"])
    assert mine
    assert set(mine) < set(everything)
    event = page[0]
    assert set(event) == {"id", "machine_id", "kind", "state", "message", "created_at"}


async def test_event_stream_needs_login(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/api/v1/events")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


async def test_live_events_of_other_machines_are_filtered_out(api: Api, app: FastAPI) -> None:
    mine = await api.create("mine", start=False)
    async with streaming_client(app) as client:
        await log_in(client, *ADMIN)
        params = {"machine_id": mine["id"]}
        async with client.stream("GET", "/api/v1/events", params=params) as response:
            reader = SseReader(response)
            await api.create("other")  # events of another machine: not for this stream
            await api.act(mine["id"], "start")
            events = await reader.events(3)
    assert {json.loads(e["data"])["machine_id"] for e in events} == {mine["id"]}
    assert [json.loads(e["data"])["state"] for e in events[:2]] == ["starting", "running"]
