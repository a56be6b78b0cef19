"""Synchronous handlers: def fn(ctx) in worker threads, with the same step semantics."""

from __future__ import annotations

import threading
from typing import Any

import anyio
import pytest

import eventbus
from tests.helpers import make_client, on

pytestmark = pytest.mark.anyio


async def test_sync_handler_with_steps() -> None:
    """A sync handler runs off the event loop; its steps are memoized like async ones."""
    client = make_client()
    loop_thread = threading.get_ident()
    threads: set[int] = set()
    calls = {"charge": 0, "flaky": 0}

    def charge(amount: int) -> dict[str, int]:
        calls["charge"] += 1
        threads.add(threading.get_ident())
        return {"charged": amount}

    def flaky() -> str:
        calls["flaky"] += 1
        if calls["flaky"] < 2:
            raise ConnectionError("again")
        return "ok"

    @client.create_function(fn_id="f", trigger=on("app/e"))
    def f(ctx: eventbus.ContextSync) -> dict[str, Any]:
        threads.add(threading.get_ident())
        receipt = ctx.step.run("charge", charge, 5)
        ctx.step.sleep("pause", "10m")
        status = ctx.step.run("flaky", flaky)
        ids = ctx.step.send_event("notify", {"name": "app/notified"})
        return {"receipt": receipt, "status": status, "sent": len(ids), "attempt": ctx.attempt}

    async with client:
        await client.send({"name": "app/e"})
        await client.settle(advance_time=True)
    (run,) = client.runs(function_id="test-app-f")
    assert run.output == {"receipt": {"charged": 5}, "status": "ok", "sent": 1, "attempt": 0}
    assert calls == {"charge": 1, "flaky": 2}
    assert loop_thread not in threads
    assert len(client.events(name="app/notified")) == 1
    assert [s.id for s in run.steps] == ["charge", "pause", "flaky", "notify"]


async def test_sync_handler_does_not_block_the_loop() -> None:
    """While a sync handler blocks, async runs keep going on the event loop."""
    client = make_client()
    release = threading.Event()

    @client.create_function(fn_id="blocking", trigger=on("app/block"))
    def blocking(ctx: eventbus.ContextSync) -> str:
        release.wait(timeout=30)
        return "released"

    @client.create_function(fn_id="quick", trigger=on("app/quick"))
    async def quick(ctx: eventbus.Context) -> str:
        release.set()
        return "quick"

    async with client:
        await client.send({"name": "app/block"})
        await anyio.lowlevel.checkpoint()
        await client.send({"name": "app/quick"})
        await client.settle()
    outputs = {r.function.local_id: r.output for r in client.runs()}
    assert outputs == {"blocking": "released", "quick": "quick"}


async def test_sync_waits_invokes_and_parallel() -> None:
    """wait_for_event, invoke and group.parallel work from sync handlers."""
    client = make_client()

    @client.create_function(fn_id="double", trigger=[])
    def double(ctx: eventbus.ContextSync) -> int:
        return int(ctx.event.data["n"]) * 2

    @client.create_function(fn_id="f", trigger=on("app/start"))
    def f(ctx: eventbus.ContextSync) -> Any:
        a, b = ctx.group.parallel(
            (lambda: ctx.step.run("a", lambda: "A"), lambda: ctx.step.run("b", lambda: "B"))
        )
        doubled = ctx.step.invoke("double", function=double, data={"n": 21})
        by_id = ctx.step.invoke_by_id("double-again", function_id="double", data={"n": 1})
        go = ctx.step.wait_for_event("go", event="app/go", timeout="1h", match="data.k")
        ctx.step.sleep_until("soon", ctx.event.received_at)
        return [a, b, doubled, by_id, go.data if go else None]

    async with client:
        await client.send({"name": "app/start", "data": {"k": 1}})
        await client.settle()
        await client.send({"name": "app/go", "data": {"k": 1}})
        await client.settle()
    (run,) = client.runs(function_id="test-app-f")
    assert run.output == ["A", "B", 42, 2, {"k": 1}]


async def test_sync_step_errors_and_retries() -> None:
    """StepError and attempts behave the same in sync handlers."""
    client = make_client()
    attempts: list[int] = []

    @client.create_function(fn_id="f", trigger=on("app/e"), retries=1)
    def f(ctx: eventbus.ContextSync) -> str:
        def boom() -> None:
            attempts.append(ctx.attempt)
            raise ValueError("nope")

        try:
            ctx.step.run("boom", boom)
        except eventbus.StepError as exc:
            return exc.message
        return "no error"

    async with client:
        await client.send({"name": "app/e"})
        await client.settle(advance_time=True)
    assert client.runs(function_id="test-app-f")[0].output == "nope"
    assert attempts == [0, 1]


async def test_sync_parallel_needs_callables() -> None:
    """group.parallel in a sync handler explains its arguments."""
    client = make_client()

    @client.create_function(fn_id="f", trigger=on("app/e"))
    def f(ctx: eventbus.ContextSync) -> None:
        assert "StepSync" in repr(ctx.step)
        assert "GroupSync" in repr(ctx.group)
        ctx.group.parallel((1,))  # type: ignore[arg-type]

    async with client:
        await client.send({"name": "app/e"})
        await client.settle()
    (run,) = client.runs()
    assert run.status is eventbus.RunStatus.FAILED
    assert run.error is not None
    assert "takes callables" in run.error["message"]
