"""Durability's price: SqliteStore against MemoryStore, and against DBOS Transact.

Every SqliteStore promise is kept while timed: ``send`` returns only once its events and
the runs they start are committed, and each step's result is committed before the
handler goes on. The cases:

- ``send``: 2,000 events sent one at a time, no function to run (sends/s);
- ``send-batch``: 2,000 events in sends of 100;
- ``run``: 300 runs of a two-step function, each sent and finished before the next
  (``send`` then ``settle``: a run's latency, as runs/s);
- ``run-started``: 1,000 runs sent back to back, then every one finished;
- ``run-batch``: 1,000 runs started by sends of 100;
- ``step``: 100 runs of 10 steps each (µs per step).

The MemoryStore round of each case runs, untimed by pytest-benchmark but timed here, in
the setup of every SqliteStore round, so the two are side by side on this noisy machine.

``test_vs_dbos`` runs the same two-step workflow on DBOS Transact (SQLite), one child
process per round (``benchmarks/dbos_flow.py``), interleaved with eventbus's rounds, at
two durability levels each: both defaults that survive a killed process (WAL with
``synchronous=NORMAL`` for both) and both made to survive a power cut
(``synchronous=FULL``; DBOS's own default, with a rollback journal).
"""

from __future__ import annotations

import itertools
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

import eventbus
from eventbus.stores import SqliteStore

CASES = {  # name -> (events, events per send, steps per run or None for no function)
    "send": (2_000, 1, None),
    "send-batch": (2_000, 100, None),
    "run": (300, 1, 2),
    "run-started": (1_000, 1, 2),
    "run-batch": (1_000, 100, 2),
    "step": (100, 1, 10),
}
ROUNDS = 5
_files = itertools.count()


def _client(store: eventbus.stores.MemoryStore | None, steps: int | None) -> eventbus.Inngest:
    client = eventbus.Inngest("bench", store=store, event_retention=10_000)
    if steps is not None:

        def work(n: int) -> int:
            return n + 1

        @client.create_function(fn_id="flow", trigger=eventbus.TriggerEvent(event="bench/flow"))
        async def flow(ctx: eventbus.Context) -> int:
            total = 0
            for _ in range(steps):
                total = await ctx.step.run("work", work, total)
            return total

    return client


async def run_case(case: str, store: eventbus.stores.MemoryStore | None) -> None:
    events, per_send, steps = CASES[case]
    client = _client(store, steps)
    async with client:
        if per_send > 1:
            for _ in range(events // per_send):
                await client.send(
                    [{"name": "bench/flow", "data": {"n": n}} for n in range(per_send)]
                )
        elif case == "run":
            for n in range(events):
                await client.send({"name": "bench/flow", "data": {"n": n}})
                await client.settle()
        else:
            for n in range(events):
                await client.send({"name": "bench/flow", "data": {"n": n}})
        await client.settle()


def _new_file(directory: Path) -> Path:
    return directory / f"bench-{next(_files)}.db"


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("case", list(CASES))
def test_store(benchmark: Any, tmp_path: Path, case: str, backend: str) -> None:
    memory: list[float] = []

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        start = time.perf_counter()
        anyio.run(run_case, case, None, backend=backend)
        memory.append(time.perf_counter() - start)
        return (run_case, case, SqliteStore(_new_file(tmp_path))), {"backend": backend}

    benchmark.group = f"store-{case}-{backend}"
    benchmark.pedantic(anyio.run, setup=setup, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    events, _, steps = CASES[case]
    benchmark.extra_info.update(
        kind="store",
        case=case,
        backend=backend,
        events=events,
        steps=steps,
        memory_seconds=statistics.median(memory),
    )


#: Workflows per round: DBOS does some 30-100 a second here, eventbus some hundreds.
DBOS_WORKFLOWS = 100
EVENTBUS_WORKFLOWS = 300


async def eventbus_flows(mode: str, store: SqliteStore) -> float:
    client = _client(store, 2)
    async with client:
        start = time.perf_counter()
        for n in range(EVENTBUS_WORKFLOWS):
            await client.send({"name": "bench/flow", "data": {"n": n}})
            if mode == "sequential":
                await client.settle()
        await client.settle()
        return time.perf_counter() - start


@pytest.mark.parametrize("journal", ["wal", "full"])
@pytest.mark.parametrize("mode", ["sequential", "started"])
def test_vs_dbos(benchmark: Any, tmp_path: Path, mode: str, journal: str) -> None:
    pytest.importorskip("dbos", reason="DBOS Transact is in the bench extra")
    script = Path(__file__).with_name("dbos_flow.py")
    dbos_rates: list[float] = []
    ours: list[float] = []

    def one_round() -> None:
        path = _new_file(tmp_path)
        out = subprocess.run(
            [
                sys.executable,
                str(script),
                mode,
                str(DBOS_WORKFLOWS),
                str(path),
                "wal" if journal == "wal" else "default",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
        seconds = json.loads(out.stdout.strip().splitlines()[-1])["seconds"]
        dbos_rates.append(DBOS_WORKFLOWS / seconds)
        store = SqliteStore(
            _new_file(tmp_path), synchronous="NORMAL" if journal == "wal" else "FULL"
        )
        ours.append(EVENTBUS_WORKFLOWS / anyio.run(eventbus_flows, mode, store))

    benchmark.group = f"dbos-{mode}-{journal}"
    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1, warmup_rounds=0)
    benchmark.extra_info.update(
        kind="dbos",
        mode=mode,
        journal=journal,
        eventbus_per_s=statistics.median(ours),
        dbos_per_s=statistics.median(dbos_rates),
    )


HANDOFFS = 2_000


async def handoffs(kind: str) -> None:
    """Round trips to a thread and back, as SqliteStore makes one per commit."""
    from eventbus.stores._thread import WorkerThread

    if kind == "anyio.to_thread":
        for _ in range(HANDOFFS):
            await anyio.to_thread.run_sync(lambda: None)
        return
    thread = WorkerThread("bench")
    thread.start()
    try:
        for _ in range(HANDOFFS):
            await thread.call(lambda: None)
    finally:
        thread.stop()


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_thread_handoff(benchmark: Any, backend: str) -> None:
    """SqliteStore's own writer thread against anyio.to_thread, per round trip."""
    baseline: list[float] = []

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        start = time.perf_counter()
        anyio.run(handoffs, "anyio.to_thread", backend=backend)
        baseline.append(time.perf_counter() - start)
        return (handoffs, "worker"), {"backend": backend}

    benchmark.group = f"handoff-{backend}"
    benchmark.pedantic(anyio.run, setup=setup, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(
        kind="handoff",
        backend=backend,
        calls=HANDOFFS,
        to_thread_seconds=statistics.median(baseline),
    )
