"""``python -m eventbus bench``: fan-out throughput and latency, eventbus against its
peers, measured on this machine (``pip install 'eventbus[bench]'`` for the peers).

Every runner does the whole job in one event loop: ``events`` events, each delivered to
``handlers`` no-op async handlers, returning once every call has finished. Only eventbus
validates events, gives them ids, deduplicates, records runs and announces their end; the
others only call handlers. Rounds of every library are interleaved (a shared machine's
noise then falls on all of them alike) and the medians compared.
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TextIO

import anyio

Runner = Callable[[int, int], Awaitable[None]]
#: Measures ``samples`` sends one at a time: nanoseconds from each send to its handler's start.
LatencyRunner = Callable[[int], Awaitable[list[int]]]

#: handlers per event -> events per round (every round makes 10,000-20,000 calls)
EVENTS_PER_ROUND = {1: 10_000, 10: 2_000, 100: 200}
LIBRARIES = ("eventbus", "anyio-taskgroup", "pyee", "blinker")
EVENT_NAME = "bench/order.created"


def event(i: int) -> dict[str, Any]:
    return {"name": EVENT_NAME, "data": {"orderId": i, "total": 42}}


# ---------------------------------------------------------------------- throughput


async def run_eventbus(handlers: int, events: int) -> None:
    """eventbus, every feature on, default settings: ``await client.send(event)`` per
    event, then ``settle()``."""
    import eventbus

    client = eventbus.Inngest("bench")

    async def handler(ctx: eventbus.Context) -> None:
        return None

    for i in range(handlers):
        client.create_function(fn_id=f"h{i}", trigger=eventbus.TriggerEvent(event=EVENT_NAME))(
            handler
        )
    async with client:
        send = client.send
        for i in range(events):
            await send(event(i))
        await client.settle()


async def run_taskgroup(handlers: int, events: int) -> None:
    """Plain anyio: ``tg.start_soon(handler, event)`` for every handler of every event."""

    async def handler(evt: dict[str, Any]) -> None:
        return None

    callbacks = [handler] * handlers
    async with anyio.create_task_group() as tg:
        for i in range(events):
            evt = event(i)
            for callback in callbacks:
                tg.start_soon(callback, evt)


async def run_blinker(handlers: int, events: int) -> None:
    """blinker: ``await signal.send_async(...)`` awaits each receiver in turn."""
    import blinker

    signal = blinker.Signal()
    for _ in range(handlers):

        async def receiver(sender: object, **kwargs: Any) -> None:
            return None

        signal.connect(receiver, weak=False)
    for i in range(events):
        await signal.send_async(None, evt=event(i))


async def run_pyee(handlers: int, events: int) -> None:
    """pyee: AsyncIOEventEmitter (asyncio) or TrioEventEmitter (trio), a task per call."""
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


RUNNERS: dict[str, Runner] = {
    "eventbus": run_eventbus,
    "anyio-taskgroup": run_taskgroup,
    "pyee": run_pyee,
    "blinker": run_blinker,
}


# ---------------------------------------------------------------------- latency


async def latency_eventbus(samples: int) -> list[int]:
    """One event at a time to one handler: from ``send`` to the handler's first line."""
    import eventbus

    client = eventbus.Inngest("bench-latency")
    started = [0]

    @client.create_function(fn_id="h", trigger=eventbus.TriggerEvent(event=EVENT_NAME))
    async def handler(ctx: eventbus.Context) -> None:
        started[0] = time.perf_counter_ns()

    out: list[int] = []
    async with client:
        for i in range(samples):
            sent = time.perf_counter_ns()
            await client.send(event(i))
            await client.settle()
            out.append(started[0] - sent)
    return out


async def latency_taskgroup(samples: int) -> list[int]:
    started = [0]
    out: list[int] = []
    async with anyio.create_task_group() as tg:
        for i in range(samples):
            done = anyio.Event()

            async def handler(evt: dict[str, Any], done: anyio.Event = done) -> None:
                started[0] = time.perf_counter_ns()
                done.set()

            sent = time.perf_counter_ns()
            tg.start_soon(handler, event(i))
            await done.wait()
            out.append(started[0] - sent)
    return out


async def latency_pyee(samples: int) -> list[int]:
    import sniffio

    started = [0]
    out: list[int] = []
    done = [anyio.Event()]

    async def listener(evt: dict[str, Any]) -> None:
        started[0] = time.perf_counter_ns()
        done[0].set()

    async def measure(emitter: Any) -> None:
        emitter.on("order", listener)
        for i in range(samples):
            done[0] = anyio.Event()
            sent = time.perf_counter_ns()
            emitter.emit("order", event(i))
            await done[0].wait()
            out.append(started[0] - sent)

    if sniffio.current_async_library() == "trio":
        from pyee.trio import TrioEventEmitter

        async with TrioEventEmitter() as ee:
            await measure(ee)
    else:
        from pyee.asyncio import AsyncIOEventEmitter

        await measure(AsyncIOEventEmitter())
    return out


async def latency_blinker(samples: int) -> list[int]:
    import blinker

    started = [0]
    signal = blinker.Signal()

    async def receiver(sender: object, **kwargs: Any) -> None:
        started[0] = time.perf_counter_ns()

    signal.connect(receiver, weak=False)
    out: list[int] = []
    for i in range(samples):
        sent = time.perf_counter_ns()
        await signal.send_async(None, evt=event(i))
        out.append(started[0] - sent)
    return out


LATENCY: dict[str, LatencyRunner] = {
    "eventbus": latency_eventbus,
    "anyio-taskgroup": latency_taskgroup,
    "pyee": latency_pyee,
    "blinker": latency_blinker,
}


def available(name: str, backend: str) -> str | None:
    """Why ``name`` cannot run on ``backend`` here, or None if it can."""
    needed = {"pyee": "pyee", "blinker": "blinker"}.get(name)
    for module in (needed, "trio" if backend == "trio" else None):
        if module is None:
            continue
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install 'eventbus[bench]')"
    return None


# ---------------------------------------------------------------------- the run


class Progress:
    """A one-line progress bar on a terminal (nothing when ``stream`` is None)."""

    def __init__(self, total: int, stream: TextIO | None, width: int = 30) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.stream = stream
        self.width = width

    def step(self, label: str) -> None:
        self.done += 1
        if self.stream is None:
            return
        filled = self.width * self.done // self.total
        bar = "#" * filled + "-" * (self.width - filled)
        percent = 100 * self.done // self.total
        self.stream.write(f"\r[{bar}] {percent:3d}% {label:<40.40}")
        if self.done >= self.total:
            self.stream.write("\n")
        self.stream.flush()


def _percentile(samples: Sequence[int], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] / 1000


def measure(
    *,
    backends: Sequence[str] = ("asyncio", "trio"),
    widths: Sequence[int] = (1, 10, 100),
    rounds: int = 5,
    scale: float = 1.0,
    latency_samples: int = 2000,
    progress: TextIO | None = None,
) -> dict[str, Any]:
    """Run the comparison; returns what the table shows, as plain data."""
    libraries = {b: [n for n in LIBRARIES if available(n, b) is None] for b in backends}
    skipped = {
        f"{name} on {b}": why
        for b in backends
        for name in LIBRARIES
        if (why := available(name, b)) is not None
    }
    steps = sum(
        len(libraries[b]) * (len(widths) * rounds + (1 if latency_samples else 0)) for b in backends
    )
    bar = Progress(steps, progress)
    throughput: list[dict[str, Any]] = []
    latency: list[dict[str, Any]] = []
    for backend in backends:
        names = libraries[backend]
        for name in names:  # warm-up: imports, first-call costs
            anyio.run(RUNNERS[name], 1, 10, backend=backend)
        for handlers in widths:
            events = max(1, round(EVENTS_PER_ROUND.get(handlers, 20_000 // handlers) * scale))
            per_call: dict[str, list[float]] = {name: [] for name in names}
            for _ in range(rounds):
                for name in names:
                    start = time.perf_counter()
                    anyio.run(RUNNERS[name], handlers, events, backend=backend)
                    per_call[name].append((time.perf_counter() - start) / (events * handlers))
                    bar.step(f"{backend} {handlers} handler(s): {name}")
            rates = {name: 1 / statistics.median(samples) for name, samples in per_call.items()}
            throughput.append(
                {
                    "backend": backend,
                    "handlers": handlers,
                    "events_per_round": events,
                    "calls_per_s": {name: round(rate) for name, rate in rates.items()},
                    "eventbus_ratio": {
                        name: round(rates["eventbus"] / rate, 3)
                        for name, rate in rates.items()
                        if name != "eventbus"
                    },
                }
            )
        if latency_samples:
            for name in names:
                samples = anyio.run(LATENCY[name], latency_samples, backend=backend)
                latency.append(
                    {
                        "backend": backend,
                        "library": name,
                        "samples": len(samples),
                        "p50_us": round(_percentile(samples, 0.5), 2),
                        "p99_us": round(_percentile(samples, 0.99), 2),
                    }
                )
                bar.step(f"{backend} latency: {name}")
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "rounds": rounds,
        "throughput": throughput,
        "latency": latency,
        "skipped": skipped,
    }


def format_table(results: dict[str, Any]) -> str:
    """The results as two plain-text tables: calls per second with eventbus's ratio to
    each peer (above 1: eventbus is faster), and latency percentiles."""
    lines = []
    peers = [n for n in LIBRARIES if n != "eventbus"]
    header = ["backend", "handlers", "eventbus calls/s", *(f"vs {p}" for p in peers)]
    rows = [header]
    for row in results["throughput"]:
        rates = row["calls_per_s"]
        cells = [row["backend"], str(row["handlers"]), f"{rates['eventbus']:,}"]
        for peer in peers:
            if peer in rates:
                cells.append(f"{row['eventbus_ratio'][peer]:.2f}x ({rates[peer]:,}/s)")
            else:
                cells.append("n/a")
        rows.append(cells)
    lines += _aligned(rows)
    if results["latency"]:
        lines.append("")
        rows = [["backend", "library", "send -> handler p50", "p99"]]
        for row in results["latency"]:
            rows.append(
                [
                    row["backend"],
                    row["library"],
                    f"{row['p50_us']:.1f} us",
                    f"{row['p99_us']:.1f} us",
                ]
            )
        lines += _aligned(rows)
    for what, why in results["skipped"].items():
        lines.append(f"skipped {what}: {why}")
    lines.append(
        f"Python {results['python']}, {results['platform']}; medians of {results['rounds']} "
        "interleaved rounds"
    )
    return "\n".join(lines)


def _aligned(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def main(args: Any) -> int:
    """The ``bench`` command (``args`` from the CLI's parser)."""
    out, err = sys.stdout, sys.stderr
    backends = ("asyncio", "trio") if args.backend == "both" else (args.backend,)
    show = args.progress if args.progress is not None else err.isatty()
    results = measure(
        backends=backends,
        widths=args.handlers,
        rounds=args.rounds,
        scale=args.scale,
        latency_samples=args.latency_samples,
        progress=err if show else None,
    )
    out.write((json.dumps(results, indent=2) if args.json else format_table(results)) + "\n")
    return 0
