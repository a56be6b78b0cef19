"""Flow control's price per event: the same no-op function with and without each option.

Every limit is set so that every event still starts a run at once (a rate limit, a
throttle and a concurrency limit far above the rate, idempotency and singleton keys all
distinct), so the difference is the cost of deciding, per event: evaluating the key
expression and the GCRA step, in the store, or taking a slot. A debounce keyed by event
holds every event for its period and then runs it (the clock is virtual); a batch of 10
runs once per 10 events, so its cost per event includes a tenth of a run. Priority is
measured where it acts, on runs waiting under a concurrency limit of 1 (and that limit
alone beside it, ``concurrency_1``). 5,000 events
one at a time per round; the plain function's round runs in the setup of each round.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import anyio
import pytest

import eventbus

EVENTS = 5_000
OPTIONS: dict[str, dict[str, Any]] = {
    "rate_limit": {
        "rate_limit": eventbus.RateLimit(limit=1_000_000, period="1h", key="event.data.user")
    },
    "idempotency": {"idempotency": "event.data.n"},
    "singleton": {"singleton": eventbus.Singleton(mode="skip", key="event.data.n")},
    "throttle": {
        "throttle": eventbus.Throttle(limit=1_000_000, period="1h", burst=1, key="event.data.user")
    },
    "concurrency": {"concurrency": [eventbus.Concurrency(limit=1_000, key="event.data.user")]},
    "debounce": {"debounce": eventbus.Debounce(period="1s", key="event.data.n")},
    "batch_events": {"batch_events": eventbus.Batch(max_size=10, timeout="1m")},
    # Priority orders runs that wait: under a limit of 1, each evaluated and queued by it.
    "concurrency_1": {"concurrency": [eventbus.Concurrency(limit=1)]},
    "priority": {
        "concurrency": [eventbus.Concurrency(limit=1)],
        "priority": eventbus.Priority(run="event.data.user"),
    },
}
#: Runs per round: one per event, but one per batch.
RUNS = {"batch_events": EVENTS // 10}


async def run(options: dict[str, Any]) -> None:
    client = eventbus.Inngest("bench", event_retention=10_000, clock=eventbus.VirtualClock())

    @client.create_function(fn_id="f", trigger=eventbus.TriggerEvent(event="bench/e"), **options)
    async def handler(ctx: eventbus.Context) -> None:
        return None

    async with client:
        for n in range(EVENTS):
            await client.send({"name": "bench/e", "data": {"n": n, "user": n % 100}})
        await client.settle(advance_time=True)
        option = next(iter(options), "")
        assert len(client.runs()) == RUNS.get(option, EVENTS)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("option", list(OPTIONS))
def test_flow_control_overhead(benchmark: Any, option: str, backend: str) -> None:
    plain: list[float] = []

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        start = time.perf_counter()
        anyio.run(run, {}, backend=backend)
        plain.append(time.perf_counter() - start)
        return (run, OPTIONS[option]), {"backend": backend}

    benchmark.group = f"flow-{option}-{backend}"
    benchmark.pedantic(anyio.run, setup=setup, rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(
        kind="flow",
        option=option,
        backend=backend,
        events=EVENTS,
        plain_seconds=statistics.median(plain),
    )
