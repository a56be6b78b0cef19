"""Cost per step: runs of 10 and of 100 ``step.run`` calls, without and with middleware.

On the happy path a run executes inline and each step is journaled once, so the cost
per step must not grow with the length of the run (no O(steps²) replays). A function
with middleware executes one new step per execution, as on Inngest, so it replays its
earlier steps every time: the same runs with a no-op middleware measure that price.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

import eventbus

RUNS = {10: 1_000, 100: 100}  # steps per run -> runs per round (10,000 steps a round)


class NoopMiddleware(eventbus.MiddlewareSync):
    """Every hook inherited (they do nothing): the cost is the execution model's."""


async def run_steps(steps: int, runs: int, middleware: bool = False) -> None:
    client = eventbus.Inngest(
        "bench", event_retention=10_000, middleware=[NoopMiddleware] if middleware else None
    )

    def work(n: int) -> int:
        return n

    @client.create_function(fn_id="steps", trigger=eventbus.TriggerEvent(event="bench/steps"))
    async def handler(ctx: eventbus.Context) -> int:
        total = 0
        for n in range(steps):
            total += await ctx.step.run("work", work, n)
        return total

    async with client:
        for _ in range(runs):
            await client.send({"name": "bench/steps"})
        await client.settle()


@pytest.mark.parametrize("middleware", [False, True], ids=["plain", "middleware"])
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("steps", list(RUNS))
def test_steps_per_run(benchmark: Any, steps: int, backend: str, middleware: bool) -> None:
    runs = RUNS[steps] // (10 if middleware else 1)  # replays make these runs dearer
    benchmark.group = f"steps-{backend}"
    benchmark.extra_info.update(steps=steps, runs=runs, backend=backend, middleware=middleware)
    benchmark.pedantic(
        anyio.run,
        args=(run_steps, steps, runs, middleware),
        kwargs={"backend": backend},
        rounds=5,
        iterations=1,
        warmup_rounds=1,
    )
