"""Fan-out scenarios: N events, each delivered to k no-op async handlers.

Every runner does the whole job in one event loop and returns once every handler call has
finished. Only eventbus validates events, assigns ids, deduplicates, records runs and
emits system events; the others only call handlers.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

import eventbus

Runner = Callable[[int, int], Awaitable[None]]


def event(i: int) -> dict[str, Any]:
    return {"name": "bench/order.created", "data": {"orderId": i, "total": 42}}


async def run_eventbus(handlers: int, events: int) -> None:
    """eventbus: `await client.send(event)` per event, then `settle()`."""
    client = eventbus.Inngest("bench", event_retention=10_000)

    async def handler(ctx: eventbus.Context) -> None:
        return None

    for i in range(handlers):
        client.create_function(
            fn_id=f"h{i}", trigger=eventbus.TriggerEvent(event="bench/order.created")
        )(handler)
    async with client:
        send = client.send
        for i in range(events):
            await send(event(i))
        await client.settle()


async def run_taskgroup(handlers: int, events: int) -> None:
    """Plain anyio: `tg.start_soon(handler, event)` for every handler of every event."""

    async def handler(evt: dict[str, Any]) -> None:
        return None

    callbacks = [handler] * handlers
    async with anyio.create_task_group() as tg:
        for i in range(events):
            evt = event(i)
            for callback in callbacks:
                tg.start_soon(callback, evt)


async def run_blinker(handlers: int, events: int) -> None:
    """blinker: `await signal.send_async(...)` awaits each receiver in turn."""
    import blinker

    signal = blinker.Signal()
    for _ in range(handlers):

        async def receiver(sender: object, **kwargs: Any) -> None:
            return None

        signal.connect(receiver, weak=False)
    for i in range(events):
        await signal.send_async(None, evt=event(i))


async def run_pyee(handlers: int, events: int) -> None:
    """pyee: AsyncIOEventEmitter (asyncio) or TrioEventEmitter (trio), one task per call."""
    import sniffio

    if sniffio.current_async_library() == "trio":
        from pyee.trio import TrioEventEmitter

        async with TrioEventEmitter() as ee:
            for _ in range(handlers):

                async def listener(evt: dict[str, Any]) -> None:
                    return None

                ee.on("order", listener)
            for i in range(events):
                ee.emit("order", event(i))
        return

    from pyee.asyncio import AsyncIOEventEmitter

    done = anyio.Event()
    remaining = handlers * events
    emitter = AsyncIOEventEmitter()

    for _ in range(handlers):

        async def counting(evt: dict[str, Any]) -> None:
            nonlocal remaining
            remaining -= 1
            if not remaining:
                done.set()

        emitter.on("order", counting)
    for i in range(events):
        emitter.emit("order", event(i))
    await done.wait()


async def run_bubus(handlers: int, events: int) -> None:
    """bubus: `bus.dispatch(Event)` per event, then `wait_until_idle()` (asyncio only)."""
    from bubus import BaseEvent, EventBus

    class OrderCreated(BaseEvent[None]):
        orderId: int
        total: int

    bus = EventBus(max_history_size=None)  # bounded history caps pending events at 100
    for i in range(handlers):

        async def handler(evt: OrderCreated) -> None:
            return None

        handler.__name__ = handler.__qualname__ = f"handler_{i}"  # bubus warns on repeats
        bus.on(OrderCreated, handler)
    for i in range(events):
        bus.dispatch(OrderCreated(orderId=i, total=42))
    await bus.wait_until_idle()
    await bus.stop()


RUNNERS: dict[str, Runner] = {
    "eventbus": run_eventbus,
    "anyio-taskgroup": run_taskgroup,
    "blinker": run_blinker,
    "pyee": run_pyee,
    "bubus": run_bubus,
}


def available(name: str, backend: str) -> str | None:
    """Why a runner cannot run here, or None if it can."""
    if name == "bubus":
        if backend != "asyncio":
            return "bubus runs on asyncio only"
        if sys.version_info < (3, 11):  # pragma: no cover
            return "bubus needs Python 3.11"
    module = {"blinker": "blinker", "pyee": "pyee", "bubus": "bubus"}.get(name)
    if module is not None:
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install -e '.[bench]')"
    return None
