"""A finished event nothing saw as it was sent is built when it is read: every reader
sees the same events, with the same ids, times and order, as if each had been built as
its run ended (``Engine.defer_finished = False`` builds them so, for comparison)."""

from __future__ import annotations

import datetime
import gc
import random
from typing import Any

import httpx
import pytest

import eventbus
import eventbus._ids
import eventbus.testing
from eventbus._step import Execution
from eventbus.server import create_app
from tests.helpers import make_client, on

pytestmark = pytest.mark.anyio

FINISHED = "inngest/function.finished"


def snapshot(event: eventbus.StoredEvent | None) -> tuple[Any, ...] | None:
    if event is None:
        return None
    return (
        event.internal_id,
        event.name,
        event.id,
        event.ts,
        event.v,
        event.to_dict(),
        event.received_at_ms,
        event.deduplicated,
    )


START = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


def deferred(engine: Any) -> list[eventbus.Run]:
    """The runs whose finished event ``engine``'s store holds unbuilt."""
    store: Any = engine.store
    return [v for v in store._events.values() if isinstance(v, eventbus.Run)]


def build(retention: int) -> eventbus.Inngest:
    client = make_client(event_retention=retention, clock=eventbus.VirtualClock(START))

    @client.create_function(fn_id="ok", trigger=on("app/e"))
    async def ok(ctx: eventbus.Context) -> dict[str, Any]:
        return {"n": ctx.event.data["n"], "seen": [ctx.event.data]}

    @client.create_function(fn_id="picky", trigger=on("app/e", "event.data.n % 3 == 0"), retries=0)
    async def picky(ctx: eventbus.Context) -> None:
        if ctx.event.data["n"] % 2:
            raise ValueError("odd")  # .failed, and a finished event with the error

    @client.create_function(fn_id="sleepy", trigger=on("app/slow"))
    async def sleepy(ctx: eventbus.Context) -> int:
        await ctx.step.sleep("nap", 1000)
        return 7

    return client


async def observe(retention: int, defer: bool, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Run one history and read it every way there is."""
    entropy = random.Random(1234)
    monkeypatch.setattr(eventbus._ids.os, "urandom", lambda n: entropy.randbytes(n))
    client = build(retention)
    seen: dict[str, Any] = {}
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(client)), base_url="http://test"
    )
    async with client, http:
        client.engine.defer_finished = defer
        sent: list[str] = []
        for n in range(40):
            event: dict[str, Any] = {"name": "app/e", "data": {"n": n}}
            if n % 5 == 0:
                event["id"] = f"dup-{n % 10}"  # some are deduplicated
            sent += await client.send(event)
            if n % 7 == 0:
                sent += await client.send({"name": "app/slow"})
                client.clock.advance(datetime.timedelta(milliseconds=250))  # type: ignore[attr-defined]
        await client.settle(advance_time=True)
        every = client.events()
        seen["events"] = [snapshot(e) for e in every]
        seen["finished"] = [snapshot(e) for e in client.events(name=FINISHED)]
        ids = sent + [e.internal_id for e in every]
        seen["by_id"] = [snapshot(client.get_event(i)) for i in ids]
        seen["identity"] = all(client.get_event(e.internal_id) is e for e in every)
        seen["runs"] = [[r.run_id for r in client.runs(event_id=i)] for i in ids]
        listed = (await http.get("/v1/events", params={"limit": "1000"})).json()["data"]
        seen["http"] = listed
        seen["http_one"] = [
            (await http.get(f"/v1/events/{e.internal_id}")).json()["data"] for e in every[-5:]
        ]
    return seen


@pytest.mark.parametrize("retention", [10_000, 23])
async def test_every_reader_sees_the_same_history(
    retention: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    eager = await observe(retention, False, monkeypatch)
    deferred = await observe(retention, True, monkeypatch)
    assert eager["finished"], "the history has finished events"
    # 40 events, 6 app/slow, 40 + 6 - 4 finished (4 deduplicated), 6 failed: all kept, or
    # the oldest pruned (in batches of an eighth of the retention).
    assert len(eager["events"]) == 104 if retention > 104 else len(eager["events"]) < 50
    for key in eager:
        assert deferred[key] == eager[key], key
    assert deferred["identity"] is True


async def test_the_store_holds_the_run_until_the_event_is_read() -> None:
    """Deferred: the store keeps the run under the event's id, and builds it once."""
    client = make_client()

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> int:
        return 1

    async with client:
        await client.send({"name": "app/e"})
        await client.settle()
        assert [r.function_id for r in deferred(client.engine)] == ["test-app-f"]
        (finished,) = client.events(name=FINISHED)
        assert client.events(name=FINISHED)[0] is finished
        assert deferred(client.engine) == []


async def test_built_as_sent_when_something_can_see_it() -> None:
    """A function triggered by finished events gets them as they are sent."""
    client = make_client()

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> int:
        return 1

    only_f = "event.data.function_id == 'test-app-f'"

    @client.create_function(fn_id="audit", trigger=on(FINISHED, only_f))
    async def audit(ctx: eventbus.Context) -> str:
        return str(ctx.event.data["run_id"])

    async with client:
        await client.send({"name": "app/e"})
        await client.settle()
        held = deferred(client.engine)
        (audit_run,) = client.runs(function_id="test-app-audit")
        (f_run,) = client.runs(function_id="test-app-f")
        assert audit_run.output == f_run.run_id
        assert held == []  # (the audit run, started by a system event, announces nothing)


async def test_a_wait_for_a_finished_event_gets_it_as_sent() -> None:
    """A run waiting for inngest/function.finished resumes with it; the event it got is
    the one the history holds."""
    client = make_client()

    @client.create_function(fn_id="work", trigger=on("app/work"))
    async def work(ctx: eventbus.Context) -> int:
        return 41

    @client.create_function(fn_id="watch", trigger=on("app/watch"))
    async def watch(ctx: eventbus.Context) -> Any:
        got = await ctx.step.wait_for_event(
            "done", event=FINISHED, timeout=datetime.timedelta(minutes=1)
        )
        return None if got is None else {"id": got.id, "result": got.data["result"]}

    async with client:
        await client.send({"name": "app/watch"})
        await client.settle()  # waiting now
        await client.send({"name": "app/work"})
        await client.settle()
        (watched,) = client.runs(function_id="test-app-watch")
        (finished,) = [
            e for e in client.events(name=FINISHED) if e.data["function_id"] == "test-app-work"
        ]
        assert watched.output == {"id": finished.id, "result": 41}


async def test_under_the_test_harness_every_event_is_built_as_sent() -> None:
    """eventbus.testing records every event as it is sent (explain, assertions)."""
    client = make_client()

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> int:
        return 1

    async with eventbus.testing.running(client) as bus:
        (event_id,) = await bus.send({"name": "app/e"})
        await bus.settle()
        assert deferred(bus.engine) == []
        (finished,) = [e for e in bus.engine.events() if e.name == FINISHED]
        assert finished.data["events"][0]["id"] == event_id


async def test_runs_leave_no_reference_cycles() -> None:
    """What a run makes (its record, context, execution, events) is freed as soon as it
    is dropped: none of it waits for the cyclic collector."""
    client = make_client(event_retention=10)

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> int:
        return 1

    async with client:
        await client.send({"name": "app/e"})
        await client.settle()
        gc.collect()
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            for n in range(200):  # past the retention: the oldest are pruned
                await client.send({"name": "app/e", "data": {"n": n}})
            await client.settle()
            gc.collect()
            ours = (eventbus.Run, eventbus.StoredEvent, eventbus.Context, Execution)
            cyclic = [type(o).__name__ for o in gc.garbage if isinstance(o, ours)]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
        assert len(client.events()) < 50  # pruned: the dropped records were freed
        assert cyclic == []
