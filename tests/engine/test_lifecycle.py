"""Starting and stopping the engine, sync programs, transports and retention."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import anyio
import pytest

import eventbus
from eventbus.transports import EventBatch, InProcessTransport, MockTransport, Transport
from tests.helpers import make_client, on


@pytest.mark.anyio
async def test_send_before_start_says_how_to_start() -> None:
    """send() without a running engine raises EngineNotRunningError naming the fix."""
    client = make_client()
    with pytest.raises(eventbus.EngineNotRunningError, match="async with client"):
        await client.send({"name": "app/e"})
    with pytest.raises(eventbus.UsageError, match="has not run yet"):
        client.runs()


@pytest.mark.anyio
async def test_send_sync_inside_the_engine_loop_raises() -> None:
    """send_sync() on the engine's own loop raises instead of deadlocking."""
    client = make_client()
    async with client:
        with pytest.raises(eventbus.UsageError, match="deadlock"):
            client.send_sync({"name": "app/e"})
        with pytest.raises(eventbus.UsageError, match=r"await client\.settle"):
            client.settle_sync()
    with pytest.raises(eventbus.EngineNotRunningError):
        client.send_sync({"name": "app/e"})


@pytest.mark.anyio
async def test_entering_twice_is_an_error() -> None:
    """One engine per client at a time."""
    client = make_client()
    async with client:
        with pytest.raises(eventbus.UsageError, match="already running"):
            async with client:
                pass


@pytest.mark.anyio
async def test_restarting_gives_fresh_state() -> None:
    """Each `async with client` starts a new engine; records of the last one stay readable."""
    client = make_client()
    async with client:
        await client.send({"name": "app/e", "id": "k"})
    assert len(client.events()) == 1
    async with client:
        (event_id,) = await client.send({"name": "app/e", "id": "k"})
        stored = client.get_event(event_id)
        assert stored is not None
        assert not stored.deduplicated
    assert len(client.events()) == 1


@pytest.mark.anyio
async def test_settle_after_exit_is_an_error() -> None:
    """settle() needs a running engine; after exit it says so instead of waiting forever."""
    client = make_client()
    async with client:
        await client.send({"name": "app/e"})
    with pytest.raises(eventbus.EngineNotRunningError, match="nothing can settle"):
        await client.settle()


def test_async_enter_while_running_in_a_thread_is_an_error() -> None:
    """A client running under `with client:` cannot also be entered with `async with`."""
    client = eventbus.Inngest("app")

    async def enter() -> None:
        async with client:
            pass

    with client, pytest.raises(eventbus.UsageError, match="already running"):
        anyio.run(enter)


def test_sync_program_with_background_thread() -> None:
    """`with client:` runs the engine in a thread; send_sync and settle_sync work from sync code."""
    client = eventbus.Inngest("app")
    threads: set[int] = set()

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> int:
        threads.add(threading.get_ident())
        return int(ctx.event.data["n"]) + 1

    with client:
        ids = client.send_sync([{"name": "app/e", "data": {"n": n}} for n in range(10)])
        client.settle_sync()
        outputs = [client.runs(event_id=i)[0].output for i in ids]
        with pytest.raises(eventbus.UsageError, match="already running"):
            client.__enter__()
    assert outputs == list(range(1, 11))
    assert threading.get_ident() not in threads
    with pytest.raises(eventbus.EngineNotRunningError):
        client.settle_sync()


def test_async_code_on_another_loop_can_use_a_threaded_engine() -> None:
    """With `with client:`, await send()/settle() from a different event loop hop threads."""
    client = eventbus.Inngest("app")

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> str:
        return "ok"

    async def other_loop() -> list[str]:
        ids = await client.send({"name": "app/e"})
        await client.settle()
        return ids

    with client:
        ids = anyio.run(other_loop)
        assert client.runs(event_id=ids[0])[0].output == "ok"


def test_send_sync_from_another_thread_reaches_the_engine_loop() -> None:
    """send_sync() from a foreign thread while `async with` runs the engine is carried to
    the engine's own loop and starts the run there."""
    client = make_client()
    engine_threads: list[int] = []

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> str:
        engine_threads.append(threading.get_ident())
        return "ok"

    async def main() -> None:
        async with client:
            ids = await anyio.to_thread.run_sync(lambda: client.send_sync({"name": "app/e"}))
            await client.settle()
            assert client.runs(event_id=ids[0])[0].output == "ok"
            assert engine_threads == [threading.get_ident()]

    anyio.run(main)


def test_mock_transport_records_and_runs_nothing() -> None:
    """MockTransport keeps sent events in .sent, returns ids, runs no function."""
    transport = MockTransport()
    clock = eventbus.VirtualClock()
    client = eventbus.Inngest("app", transport=transport, clock=clock)
    ran: list[str] = []

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> None:
        ran.append("f")

    ids = client.send_sync([{"name": "app/e", "data": {"a": 1}}, eventbus.Event("app/e", id="k")])
    ids += anyio.run(client.send, {"name": "app/x"})
    assert len(ids) == 3
    assert len(set(ids)) == 3
    assert [e.name for e in transport.sent] == ["app/e", "app/e", "app/x"]
    assert transport.sent[0].data == {"a": 1}
    assert transport.sent[1].id == "k"
    assert all(e.ts == clock.now_ms() for e in transport.sent)
    assert ran == []
    assert "sent=3" in repr(transport)
    with pytest.raises(eventbus.UsageError, match="only with the in-process transport"):
        client.runs()
    transport.clear()
    assert transport.sent == []


def test_mock_transport_validates_like_any_send() -> None:
    """Validation happens before any transport sees the events."""
    transport = MockTransport()
    client = eventbus.Inngest("app", transport=transport)
    with pytest.raises(eventbus.EventValidationError):
        client.send_sync([{"name": "ok"}, {"name": ""}])
    assert transport.sent == []


def test_custom_transport_base_class() -> None:
    """A Transport subclass needs send and send_sync; running() defaults to a no-op."""

    class Echo(Transport):
        async def send(self, batch: EventBatch) -> list[str]:
            return [e.name for e in batch.events]

        def send_sync(self, batch: EventBatch) -> list[str]:
            return [d["name"] for d in batch.decoded]

    client = eventbus.Inngest("app", transport=Echo())
    assert client.send_sync({"name": "a"}) == ["a"]

    async def main() -> list[str]:
        async with client:
            return await client.send([{"name": "b"}])

    assert anyio.run(main) == ["b"]


@pytest.mark.anyio
async def test_history_is_bounded_but_keeps_active_runs() -> None:
    """event_retention bounds stored events and finished runs; events of active runs stay."""
    client = make_client(event_retention=20)
    gate = anyio.Event()
    holding = anyio.Event()

    @client.create_function(fn_id="hold", trigger=on("app/hold"))
    async def hold(ctx: eventbus.Context) -> str:
        holding.set()
        await gate.wait()
        return "released"

    @client.create_function(fn_id="quick", trigger=on("app/quick"))
    async def quick(ctx: eventbus.Context) -> None:
        return None

    async with client:
        (held,) = await client.send({"name": "app/hold"})
        await holding.wait()  # the gated run has started
        for _ in range(10):
            await client.send([{"name": "app/quick"}] * 10)
            await anyio.lowlevel.checkpoint()
        while client.engine.backlog:  # the quick runs never suspend: let them all finish
            await anyio.lowlevel.checkpoint()
        assert client.get_event(held) is not None
        assert len(client.events()) <= 20 + 20 // 8 + 16 + 1
        finished = [r for r in client.runs() if r.status.is_finished]
        assert len(finished) <= 20 + 20 // 8 + 16
        assert client.runs(event_id=held)[0].status is eventbus.RunStatus.RUNNING
        gate.set()
        await client.settle()
    assert client.runs(event_id=held)[0].output == "released"


@pytest.mark.anyio
async def test_an_event_with_several_runs_is_kept_until_the_last_ends() -> None:
    """An event past the retention stays readable while any run it started is active
    (here one of two), and goes once the last has ended."""
    client = make_client(event_retention=20)
    gate = anyio.Event()

    @client.create_function(fn_id="hold", trigger=on("app/both"))
    async def hold(ctx: eventbus.Context) -> None:
        await gate.wait()

    @client.create_function(fn_id="quick", trigger=[on("app/both"), on("app/quick")])
    async def quick(ctx: eventbus.Context) -> None:
        return None

    async def flood() -> None:
        for _ in range(10):
            await client.send([{"name": "app/quick"}] * 10)
            await anyio.lowlevel.checkpoint()
        while client.engine.backlog:
            await anyio.lowlevel.checkpoint()

    async with client:
        (both,) = await client.send({"name": "app/both"})
        await flood()
        # quick's run of it has ended and been pruned since; hold's is active
        (run,) = client.runs(event_id=both)
        assert run.function.local_id == "hold"
        assert run.status is eventbus.RunStatus.RUNNING
        assert client.get_event(both) is not None  # pruned from the history, held aside
        gate.set()
        await client.settle()
        await flood()  # a pass of pruning after the last run ended
        assert client.get_event(both) is None
        assert all(e.internal_id != both for e in client.events())


@pytest.mark.anyio
async def test_engine_logs_unfinished_runs_at_stop(caplog: pytest.LogCaptureFixture) -> None:
    """Runs still waiting to retry when the engine stops are reported, not silently dropped."""
    client = make_client()

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> None:
        raise ValueError("later")

    with caplog.at_level(logging.WARNING, logger="eventbus"):
        async with client:
            await client.send({"name": "app/e"})
    assert "1 unfinished run(s)" in caplog.text
    assert client.runs()[0].status is eventbus.RunStatus.RUNNING


def test_client_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """event_key and env fall back to INNGEST_EVENT_KEY and INNGEST_ENV."""
    monkeypatch.setenv("INNGEST_EVENT_KEY", "key-from-env")
    monkeypatch.setenv("INNGEST_ENV", "branch-1")
    client = eventbus.Inngest("app")
    assert client.event_key == "key-from-env"
    assert client.env == "branch-1"
    explicit = eventbus.Inngest("app", event_key="k", env="e")
    assert explicit.event_key == "k"
    assert explicit.env == "e"
    assert isinstance(client.transport, InProcessTransport)
    assert "app" in repr(client)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"app_id": ""}, "app_id"),
        ({"app_id": "a", "transport": object()}, "transport"),
        ({"app_id": "a", "clock": object()}, "clock"),
        ({"app_id": "a", "max_request_bytes": 0}, "max_request_bytes"),
        ({"app_id": "a", "max_events_per_request": True}, "max_events_per_request"),
        ({"app_id": "a", "event_retention": -1}, "event_retention"),
    ],
)
def test_client_rejects_bad_settings(kwargs: dict[str, object], match: str) -> None:
    """Every client setting is checked at construction."""
    with pytest.raises(eventbus.FunctionConfigError, match=match):
        eventbus.Inngest(**kwargs)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_handler_logger_carries_run_id(caplog: pytest.LogCaptureFixture) -> None:
    """ctx.logger tags records with the run and function ids."""
    client = make_client()

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> None:
        ctx.logger.warning("hello from %s", ctx.function_id)
        assert "attempt=0" in repr(ctx)

    with caplog.at_level(logging.WARNING, logger="eventbus"):
        async with client:
            await client.send({"name": "app/e"})
            await client.settle()
    (record,) = [r for r in caplog.records if r.getMessage() == "hello from test-app-f"]
    assert record.run_id == client.runs()[0].run_id  # type: ignore[attr-defined]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "transport",
    [InProcessTransport, MockTransport],
)
async def test_a_dropped_client_is_freed_without_the_cyclic_collector(
    transport: Callable[[], Transport],
) -> None:
    """A client, its transport and its stopped engine make no reference cycle, and the
    engine's workers end without being cancelled (a cancelled task's traceback would
    hold the engine): a client dropped with its history goes at once, not at the
    collector's next full collection."""
    import gc
    import weakref

    client = eventbus.Inngest("dropped", transport=transport())

    @client.create_function(fn_id="f", trigger=eventbus.TriggerEvent(event="app/e"))
    async def f(ctx: eventbus.Context) -> int:
        return 1

    if isinstance(client.transport, InProcessTransport):
        async with client:
            await client.send({"name": "app/e"})
            await client.settle()
        assert client.runs()[0].output == 1
    else:
        await client.send({"name": "app/e"})
    engine = client.engine if isinstance(client.transport, InProcessTransport) else None
    gone = [weakref.ref(client)] + (
        [] if engine is None else [weakref.ref(engine), weakref.ref(engine.store)]
    )
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        del client, f, engine
        assert [ref() for ref in gone] == [None] * len(gone)
    finally:
        if was_enabled:
            gc.enable()


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_an_engine_left_is_freed_without_the_cyclic_collector(backend: str) -> None:
    """The engine's idle workers and timer loop end of themselves as it stops, rather
    than by cancellation: a cancelled task's traceback would hold its frames, and so the
    engine and its history, in a reference cycle until a full collection."""
    import gc
    import weakref

    engines: list[weakref.ref[Any]] = []

    async def main() -> None:
        client = eventbus.Inngest("left")

        @client.create_function(fn_id="f", trigger=eventbus.TriggerEvent(event="app/e"))
        async def f(ctx: eventbus.Context) -> int:
            return 1

        async with client:
            await client.send([{"name": "app/e"}] * 3)
            await client.settle()
        assert client.engine is not None
        engines.append(weakref.ref(client.engine))

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        anyio.run(main, backend=backend)
        assert engines[0]() is None
    finally:
        if was_enabled:
            gc.enable()


@pytest.mark.anyio
async def test_a_run_queued_as_the_engine_stops_stays_queued() -> None:
    """An error in the block stops the engine without draining: a run still queued then
    does not start, though the workers end of themselves rather than by cancellation."""
    client = eventbus.Inngest("stopping")
    started: list[str] = []

    @client.create_function(fn_id="f", trigger=eventbus.TriggerEvent(event="app/e"))
    async def f(ctx: eventbus.Context) -> None:
        started.append(ctx.run_id)

    async def fail_with_one_queued() -> None:
        async with client:
            await client.send({"name": "app/e"})
            await client.settle()  # the worker is idle when the next send comes
            await client.send({"name": "app/e"})  # queued; the worker is woken for it
            raise RuntimeError("the block failed")

    with pytest.raises(RuntimeError, match="the block failed"):
        await fail_with_one_queued()
    assert len(started) == 1
    assert [run.status for run in client.runs()] == [
        eventbus.RunStatus.COMPLETED,
        eventbus.RunStatus.QUEUED,
    ]
