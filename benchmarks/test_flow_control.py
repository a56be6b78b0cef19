"""Flow control's price per event: the same no-op function with and without each option.

Every option is set so that every event still starts a run at once (a rate limit and a
throttle far above the rate, idempotency and singleton keys all distinct), so the difference is the
cost of deciding, per event: evaluating the key expression and the GCRA step, in the
store. 5,000 events one
at a time per round; the plain function's round runs in the setup of each round.
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
}


async def run(options: dict[str, Any]) -> None:
    client = eventbus.Inngest("bench", event_retention=10_000)

    @client.create_function(fn_id="f", trigger=eventbus.TriggerEvent(event="bench/e"), **options)
    async def handler(ctx: eventbus.Context) -> None:
        return None

    async with client:
        for n in range(EVENTS):
            await client.send({"name": "bench/e", "data": {"n": n, "user": n % 100}})
        await client.settle()
        assert len(client.runs()) == EVENTS


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
