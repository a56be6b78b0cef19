"""Memory of the bounded history at the default retention: bytes per retained event and
run (tracemalloc), and the growth of the process's RSS over 1,000,000 events beyond it."""

from __future__ import annotations

import gc
import os
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

import eventbus
from eventbus._bench import EVENT_NAME, event
from eventbus._client import DEFAULT_EVENT_RETENTION

BEYOND = 1_000_000
Probe = Callable[[], int]

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/statm").exists(), reason="reads the RSS from /proc (Linux)"
)


def rss_bytes() -> int:
    gc.collect()
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def traced_bytes() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


async def fill(sends: int, probe: Probe, at: int) -> dict[str, int]:
    """Send ``sends`` events to one no-op function; ``probe`` after ``at`` sends and at
    the end, with the engine running."""
    client = eventbus.Inngest("bench-memory")

    @client.create_function(fn_id="h", trigger=eventbus.TriggerEvent(event=EVENT_NAME))
    async def handler(ctx: eventbus.Context) -> None:
        return None

    found: dict[str, int] = {}
    async with client:
        store: Any = client.engine.store  # type: ignore[union-attr]
        found["start"] = probe()
        for i in range(sends):
            await client.send(event(i))
            if i + 1 == at:
                await client.settle()
                found["at"] = probe()
        await client.settle()
        found["end"] = probe()
        found["events"] = len(store._events)
        found["runs"] = len(store._runs)
    return found


def test_memory_per_retained_event_and_run(benchmark: Any) -> None:
    """Every send makes an event and a run, whose finished event is one more event: past
    the retention the store holds ``retention`` events and as many finished runs."""
    result: dict[str, int] = {}

    def measured() -> None:
        tracemalloc.start()
        try:
            result.update(anyio.run(fill, 2 * DEFAULT_EVENT_RETENTION, traced_bytes, 0))
        finally:
            tracemalloc.stop()

    benchmark.group = "memory-retention"
    benchmark.pedantic(measured, rounds=1, iterations=1)
    benchmark.extra_info.update(
        retention=DEFAULT_EVENT_RETENTION,
        events=result["events"],
        runs=result["runs"],
        bytes_per_event_and_run=round(
            (result["end"] - result["start"]) / max(result["events"], result["runs"])
        ),
    )


def test_rss_growth_beyond_retention(benchmark: Any) -> None:
    result: dict[str, int] = {}

    def measured() -> None:
        sends = DEFAULT_EVENT_RETENTION + BEYOND
        result.update(anyio.run(fill, sends, rss_bytes, DEFAULT_EVENT_RETENTION))

    benchmark.group = "memory-rss"
    benchmark.pedantic(measured, rounds=1, iterations=1)
    benchmark.extra_info.update(
        beyond=BEYOND, rss_growth_mib=round((result["end"] - result["at"]) / 2**20, 1)
    )
