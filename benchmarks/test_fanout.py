"""Fan-out throughput: eventbus against a plain anyio task group and peer libraries.

Run with ``nox -s bench`` (or see docs/benchmarks.md). Each case delivers events to
``handlers`` no-op async handlers and waits until every call finished. The machine is
shared and noisy, so the baselines are interleaved with eventbus round by round: before
each timed eventbus round, pytest-benchmark's (untimed) setup runs one round of every
baseline, timed here. The report compares medians taken side by side.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import anyio
import pytest

from benchmarks.scenarios import RUNNERS, available

#: handlers per event -> events per round (so every round makes 10,000-20,000 calls)
SIZES = {1: 10_000, 10: 2_000, 100: 200}
#: bubus slows down with every event in its history (1,000 events take ~17 s here, 3,000
#: ~180 s), so it gets short rounds; this flatters its rate.
BUBUS_SIZES = {1: 200, 10: 50, 100: 5}
ROUNDS = 7


def events_for(library: str, handlers: int) -> int:
    return (BUBUS_SIZES if library == "bubus" else SIZES)[handlers]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("handlers", list(SIZES))
def test_fanout(benchmark: Any, handlers: int, backend: str) -> None:
    peers = [name for name in RUNNERS if name != "eventbus" and available(name, backend) is None]
    seconds_per_call: dict[str, list[float]] = {name: [] for name in peers}

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        for name in peers:
            events = events_for(name, handlers)
            start = time.perf_counter()
            anyio.run(RUNNERS[name], handlers, events, backend=backend)
            seconds_per_call[name].append((time.perf_counter() - start) / (events * handlers))
        return (RUNNERS["eventbus"], handlers, SIZES[handlers]), {"backend": backend}

    benchmark.group = f"fanout-{handlers}-{backend}"
    benchmark.pedantic(anyio.run, setup=setup, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(
        handlers=handlers,
        backend=backend,
        events=SIZES[handlers],
        peer_calls_per_s={
            name: round(1 / statistics.median(samples))
            for name, samples in seconds_per_call.items()
        },
        skipped={
            name: reason for name in RUNNERS if (reason := available(name, backend)) is not None
        },
    )
