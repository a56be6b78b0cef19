"""Where a send's latency and its tail come from, on asyncio:
``python benchmarks/latency_parts.py`` (docs/benchmarks.md quotes it).

- The send-to-handler latency split in two: the send itself (``await client.send`` for
  eventbus, ``emit`` for pyee), and from its return to the handler's first line.
- The same with the cyclic collector off (its share of the tail), and the young
  collections the sends set off: how often, and how long each takes.
- Full collections per round of the fan-out benchmark (one handler, 10,000 events) in a
  process holding a heap of a million objects, as a test suite's does.
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from eventbus._bench import EVENT_NAME, event, run_eventbus, run_pyee  # noqa: E402

SAMPLES = 10_000
ROUNDS = 8


async def _eventbus(samples: int) -> list[tuple[int, int]]:
    import eventbus

    client = eventbus.Inngest("latency-parts")
    started = [0]

    @client.create_function(fn_id="h", trigger=eventbus.TriggerEvent(event=EVENT_NAME))
    async def handler(ctx: eventbus.Context) -> None:
        started[0] = time.perf_counter_ns()

    out = []
    async with client:
        for i in range(samples):
            sent = time.perf_counter_ns()
            await client.send(event(i))
            returned = time.perf_counter_ns()
            await client.settle()
            out.append((returned - sent, started[0] - returned))
    return out


async def _pyee(samples: int) -> list[tuple[int, int]]:
    from pyee.asyncio import AsyncIOEventEmitter

    started = [0]
    done = [anyio.Event()]

    async def listener(evt: dict[str, Any]) -> None:
        started[0] = time.perf_counter_ns()
        done[0].set()

    emitter = AsyncIOEventEmitter()
    emitter.on("order", listener)
    out = []
    for i in range(samples):
        done[0] = anyio.Event()
        sent = time.perf_counter_ns()
        emitter.emit("order", event(i))
        returned = time.perf_counter_ns()
        await done[0].wait()
        out.append((returned - sent, started[0] - returned))
    return out


def _percentile(values: list[int], share: float) -> float:
    ordered = sorted(values)
    return ordered[int(len(ordered) * share)] / 1000


class _Collections:
    """Counts the collector's runs by generation, and times the young ones."""

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.young_ns: list[int] = []
        self._start = 0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter_ns()
            return
        generation = info["generation"]
        self.count[generation] += 1
        if generation == 0:
            self.young_ns.append(time.perf_counter_ns() - self._start)


def split() -> None:
    """Rounds of both libraries interleaved (the machine's noise then falls on both),
    their samples pooled after each round's warm-up."""
    print("| library | collector | send p50 | return -> handler p50 | total p50 / p99 |")
    print("|---|---|---|---|---|")
    for collector in (True, False):
        pooled: dict[str, list[tuple[int, int]]] = {"eventbus": [], "pyee": []}
        for _ in range(3):
            for name, runner in (("eventbus", _eventbus), ("pyee", _pyee)):
                if not collector:
                    gc.disable()
                try:
                    pooled[name] += anyio.run(runner, SAMPLES)[SAMPLES // 10 :]
                finally:
                    gc.enable()
        for name, samples in pooled.items():
            sends = [s for s, _ in samples]
            wakes = [w for _, w in samples]
            totals = [s + w for s, w in samples]
            print(
                f"| {name} | {'on' if collector else 'off'} | {_percentile(sends, 0.5):.1f} µs "
                f"| {_percentile(wakes, 0.5):.1f} µs | {_percentile(totals, 0.5):.1f} / "
                f"{_percentile(totals, 0.99):.1f} µs |"
            )


def young_collections() -> None:
    seen = _Collections()
    gc.callbacks.append(seen)
    try:
        anyio.run(_eventbus, SAMPLES)
    finally:
        gc.callbacks.remove(seen)
    every = SAMPLES / max(1, seen.count[0])
    mean = statistics.mean(seen.young_ns) / 1000 if seen.young_ns else 0.0
    print(
        f"\neventbus, one send at a time: a young collection every {every:.0f} sends, "
        f"{mean:.0f} µs each (mean)"
    )


def full_collections() -> None:
    heap = [[i] for i in range(1_000_000)]  # a heap like a test suite's
    counts: dict[str, list[int]] = {"eventbus": [], "pyee": []}
    for _ in range(ROUNDS):
        for name, runner in (("eventbus", run_eventbus), ("pyee", run_pyee)):
            seen = _Collections()
            gc.callbacks.append(seen)
            try:
                anyio.run(runner, 1, 10_000)
            finally:
                gc.callbacks.remove(seen)
            counts[name].append(seen.count[2])
    del heap
    print(f"\nfull collections per round ({ROUNDS} rounds, 1,000,000-object heap):")
    for name, per_round in counts.items():
        met = sum(1 for n in per_round if n)
        print(f"  {name}: {per_round} ({met} of {ROUNDS} rounds met one)")


if __name__ == "__main__":
    split()
    young_collections()
    full_collections()
