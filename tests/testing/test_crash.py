"""bus.crash_after / bus.crash / bus.restart: crash behaviour, tested without processes.

Each test runs on a MemoryStore (what eventbus.testing uses by default) and on a
SqliteStore (a file in tmp_path): after the crash a fresh engine takes up the store, as
a restarted process takes up its database.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
import pytest

import eventbus
from eventbus.stores import MemoryStore, SqliteStore, StoreError
from eventbus.testing import running

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], MemoryStore]:
    if request.param == "memory":
        return MemoryStore
    return lambda: SqliteStore(tmp_path / "app.db")


def shop() -> tuple[eventbus.Inngest, dict[str, int]]:
    app = eventbus.Inngest("shop", shutdown_timeout=0.0)
    calls: dict[str, int] = {"charge": 0, "ship": 0}

    def charge(order: int) -> str:
        calls["charge"] += 1
        return f"receipt-{order}"

    def ship(receipt: str) -> str:
        calls["ship"] += 1
        return f"shipped {receipt}"

    @app.create_function(fn_id="checkout", trigger=eventbus.TriggerEvent(event="shop/order"))
    async def checkout(ctx: eventbus.Context) -> str:
        receipt = await ctx.step.run("charge", charge, ctx.event.data["id"])
        await ctx.step.sleep("cool-off", "1h")
        return await ctx.step.run("ship", ship, receipt)

    return app, calls


async def test_a_committed_step_is_not_run_again(make_store: Callable[[], MemoryStore]) -> None:
    app, calls = shop()
    async with running(app, store=make_store()) as bus:
        bus.crash_after("checkout", "charge")
        [event_id] = await bus.send({"name": "shop/order", "data": {"id": 7}})
        await bus.settle()
        assert bus.crashed
        assert calls == {"charge": 1, "ship": 0}
        await bus.restart()
        assert not bus.crashed
        await bus.settle(advance_time=True)
        [run] = bus.assert_ran("checkout", count=1)
        assert run.output == "shipped receipt-7"
        assert run.event.id == event_id
        assert calls == {"charge": 1, "ship": 1}
        assert len(bus.step_calls("checkout", "charge")) == 1


async def test_an_uncommitted_step_runs_again(make_store: Callable[[], MemoryStore]) -> None:
    app, calls = shop()
    async with running(app, store=make_store()) as bus:
        bus.crash_after("checkout", "charge", committed=False)
        await bus.send({"name": "shop/order", "data": {"id": 7}})
        await bus.settle()
        assert bus.crashed
        await bus.restart()
        await bus.settle(advance_time=True)
        [run] = bus.assert_ran("checkout", count=1)
        assert run.output == "shipped receipt-7"
        # At least once: the step's code ran twice, its result was recorded once.
        assert calls == {"charge": 2, "ship": 1}
        assert [c.result for c in bus.step_calls("checkout", "charge")] == [
            None,
            "receipt-7",
        ]
        # The interrupted attempt left no trace: the step succeeded at its first
        # recorded attempt.
        assert run.journal["charge"].attempts == 1


async def test_a_crash_while_sleeping_keeps_the_wake_time(
    make_store: Callable[[], MemoryStore],
) -> None:
    app, calls = shop()
    async with running(app, store=make_store()) as bus:
        await bus.send({"name": "shop/order", "data": {"id": 1}})
        await bus.settle()
        [run] = bus.runs("checkout")
        assert run.status is eventbus.RunStatus.SLEEPING
        wake = run.journal["cool-off"].wake_ms
        bus.crash()
        await bus.restart()
        await bus.settle()
        assert bus.runs("checkout")[0].status is eventbus.RunStatus.SLEEPING
        clock = bus.clock
        assert isinstance(clock, eventbus.VirtualClock)
        clock.advance(datetime.timedelta(minutes=59))
        await bus.settle()
        assert calls["ship"] == 0
        clock.advance(datetime.timedelta(minutes=1))
        await bus.settle()
        [run] = bus.assert_ran("checkout", count=1)
        assert run.journal["cool-off"].wake_ms == wake
        assert calls == {"charge": 1, "ship": 1}


async def test_a_crash_while_waiting_keeps_the_wait(
    make_store: Callable[[], MemoryStore],
) -> None:
    app = eventbus.Inngest("shop", shutdown_timeout=0.0)

    @app.create_function(fn_id="approve", trigger=eventbus.TriggerEvent(event="doc/new"))
    async def approve(ctx: eventbus.Context) -> Any:
        got = await ctx.step.wait_for_event(
            "ok", event="doc/ok", if_exp="async.data.id == event.data.id", timeout="1d"
        )
        return None if got is None else got.data["by"]

    async with running(app, store=make_store()) as bus:
        await bus.send({"name": "doc/new", "data": {"id": 3}})
        await bus.settle()
        bus.crash()
        await bus.restart()
        await bus.send({"name": "doc/ok", "data": {"id": 4, "by": "nobody"}})
        await bus.send({"name": "doc/ok", "data": {"id": 3, "by": "ana"}})
        await bus.settle()
        assert bus.outputs("approve") == ["ana"]


async def test_queued_runs_start_after_the_restart(
    make_store: Callable[[], MemoryStore],
) -> None:
    app = eventbus.Inngest("shop", shutdown_timeout=0.0, max_concurrency=1)
    done: list[int] = []

    @app.create_function(fn_id="work", trigger=eventbus.TriggerEvent(event="job"))
    async def work(ctx: eventbus.Context) -> int:
        n = int(ctx.event.data["n"])
        await ctx.step.run("do", lambda: done.append(n))
        return n

    async with running(app, store=make_store()) as bus:
        bus.crash_after("work", "do")
        await bus.send([{"name": "job", "data": {"n": n}} for n in range(4)])
        await bus.settle()
        assert bus.crashed
        assert done == [0]
        await bus.restart()
        await bus.settle()
        assert sorted(bus.outputs("work")) == [0, 1, 2, 3]
        assert sorted(done) == [0, 1, 2, 3]  # the committed step of run 0 not again


async def test_sends_to_a_crashed_engine_are_refused(
    make_store: Callable[[], MemoryStore],
) -> None:
    app, _ = shop()
    async with running(app, store=make_store()) as bus:
        bus.crash()
        bus.crash()  # once crashed, crashing again does nothing
        with pytest.raises(eventbus.EngineNotRunningError):
            await app.send({"name": "shop/order", "data": {"id": 1}})
        await bus.restart()
        await app.send({"name": "shop/order", "data": {"id": 1}})  # client.send follows
        await bus.settle(advance_time=True)
        bus.assert_ran("checkout", count=1)


async def test_a_sync_handler_crashes_too(make_store: Callable[[], MemoryStore]) -> None:
    app = eventbus.Inngest("shop", shutdown_timeout=0.0)
    calls: list[str] = []

    @app.create_function(fn_id="sync", trigger=eventbus.TriggerEvent(event="go"))
    def handler(ctx: eventbus.ContextSync) -> str:
        ctx.step.run("one", lambda: calls.append("one"))
        ctx.step.run("two", lambda: calls.append("two"))
        return "done"

    async with running(app, store=make_store()) as bus:
        bus.crash_after("sync", "one")
        await bus.send({"name": "go"})
        await bus.settle()
        assert bus.crashed
        await bus.restart()
        await bus.settle()
        assert bus.outputs("sync") == ["done"]
        assert calls == ["one", "two"]


async def test_an_abandoned_thread_runs_no_more_steps() -> None:
    app = eventbus.Inngest("shop", shutdown_timeout=0.0)
    calls: list[str] = []
    refused: list[Exception] = []
    finished = threading.Event()

    @app.create_function(fn_id="stubborn", trigger=eventbus.TriggerEvent(event="go"))
    def handler(ctx: eventbus.ContextSync) -> str:
        with contextlib.suppress(Exception):  # it swallows the crash ...
            ctx.step.run("one", lambda: calls.append("one"))
        try:
            ctx.step.run("two", lambda: calls.append("two"))  # ... and goes on: refused
        except eventbus.EngineNotRunningError as exc:
            refused.append(exc)
        finished.set()
        return "done"

    async with running(app) as bus:
        bus.crash_after("stubborn", "one")
        await bus.send({"name": "go"})
        await bus.settle()
        # The abandoned thread finishes on its own time.
        assert await anyio.to_thread.run_sync(finished.wait, 10)
        assert calls == ["one"]
        assert "crashed" in str(refused[0])


async def test_a_crash_point_matches_every_reuse_of_the_id_once() -> None:
    app = eventbus.Inngest("shop", shutdown_timeout=0.0)
    seen: list[int] = []

    @app.create_function(fn_id="items", trigger=eventbus.TriggerEvent(event="go"))
    async def items(ctx: eventbus.Context) -> int:
        for n in range(3):
            await ctx.step.run("item", lambda n=n: seen.append(n))
        return len(seen)

    async with running(app) as bus:
        bus.crash_after("items", "item", committed=False)
        await bus.send({"name": "go"})
        await bus.settle()
        assert bus.crashed
        assert seen == [0]
        await bus.restart()
        await bus.settle()
        assert seen == [0, 0, 1, 2]  # the crash point fired once, at the first reuse
        assert not bus.crashed


async def test_a_restart_without_a_crash_drains_first() -> None:
    app, calls = shop()
    async with running(app) as bus:
        await bus.send({"name": "shop/order", "data": {"id": 2}})
        await bus.settle()
        await bus.restart()  # a clean stop: the sleeping run stays, and is taken up
        await bus.settle(advance_time=True)
        bus.assert_ran("checkout", count=1)
        assert calls == {"charge": 1, "ship": 1}


async def test_the_block_error_comes_out_after_a_restart() -> None:
    app, _ = shop()

    async def body() -> None:
        async with running(app) as bus:
            bus.crash()
            await bus.restart()
            raise LookupError("mine")

    with pytest.raises(LookupError, match="mine"):
        await body()


async def test_a_send_cut_off_by_the_crash_is_an_error_not_an_id(tmp_path: Path) -> None:
    """A send still waiting for its commit when the engine crashes gets StoreError: its
    ids were never returned. The write under way may still land (as when a process dies
    between its commit and its reply), so a sender that retries gives the event an
    ``id``: the retry is then deduplicated."""
    app = eventbus.Inngest("shop", shutdown_timeout=0.0)

    @app.create_function(fn_id="record", trigger=eventbus.TriggerEvent(event="order"))
    async def record(ctx: eventbus.Context) -> Any:
        return ctx.event.data["n"]

    store = SqliteStore(tmp_path / "app.db")
    writing, release = anyio.Event(), threading.Event()
    token = anyio.lowlevel.current_token()
    write = store._write

    def slow_write(batch: Any) -> None:
        anyio.from_thread.run_sync(writing.set, token=token)
        release.wait(10)
        write(batch)

    async with running(app, store=store) as bus:
        store._write = slow_write  # type: ignore[method-assign]
        errors: list[BaseException] = []

        async def send() -> None:
            try:
                await bus.send({"name": "order", "id": "order-1", "data": {"n": 1}})
            except StoreError as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(send)
            await writing.wait()  # the send's events are being written
            bus.crash()
            release.set()
        [error] = errors
        assert "simulated crash" in str(error)
        store._write = write  # type: ignore[method-assign]
        await bus.restart()
        await bus.settle()
        # The write landed: the event runs once, and a retry of the send is a duplicate.
        assert bus.outputs("record") == [1]
        await bus.send({"name": "order", "id": "order-1", "data": {"n": 1}})
        await bus.settle()
        assert bus.outputs("record") == [1]


async def test_the_crash_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    app, _ = shop()
    caplog.set_level(logging.WARNING, "eventbus")
    async with running(app) as bus:
        await bus.send({"name": "shop/order", "data": {"id": 2}})
        await bus.settle()
        bus.crash()
        await bus.restart()
        await bus.settle(advance_time=True)
    assert "eventbus engine crashed (simulated by eventbus.testing)" in caplog.text
