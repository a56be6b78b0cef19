"""Fan-out scenarios: N events, each delivered to k no-op async handlers.

The runners of ``python -m eventbus bench`` (``eventbus._bench``), plus bubus. Every
runner does the whole job in one event loop and returns once every handler call has
finished. Only eventbus validates events, assigns ids, deduplicates, records runs and
emits system events; the others only call handlers.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable

from eventbus._bench import available as _available
from eventbus._bench import (
    event,
    run_blinker,
    run_eventbus,
    run_pyee,
    run_taskgroup,
)

Runner = Callable[[int, int], Awaitable[None]]
__all__ = ["RUNNERS", "available", "event"]


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
        try:
            __import__("bubus")
        except ImportError:
            return "bubus is not installed (pip install -e '.[bench]')"
        return None
    return _available(name, backend)
