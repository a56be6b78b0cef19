"""A test suite of 1,000 small tests (send, settle, assert): tests per second.

Compared, in the same run and interleaved round by round, with the official SDK's
``inngest.experimental.mocked.trigger`` running the same function (one step that
doubles a number), the closest thing it can express.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import anyio
import pytest

import eventbus
from eventbus.testing import mocked, running

TESTS = 1_000
ROUNDS = 5

app = eventbus.Inngest(app_id="bench")


@app.create_function(fn_id="double", trigger=eventbus.TriggerEvent(event="bench/number"))
async def double(ctx: eventbus.Context) -> int:
    return await ctx.step.run("double", lambda: ctx.event.data["n"] * 2)


async def eventbus_suite() -> None:
    """1,000 tests, each with a fresh engine: send, settle, assert."""
    for n in range(TESTS):
        async with running(app) as bus:
            await app.send({"name": "bench/number", "data": {"n": n}})
            await bus.settle()
            assert bus.outputs("double") == [n * 2]


def eventbus_mocked_suite() -> None:
    """The same with eventbus.testing.mocked.trigger."""
    client = mocked.Inngest(app_id="test")
    for n in range(TESTS):
        result = mocked.trigger(double, eventbus.Event("bench/number", {"n": n}), client)
        assert result.output == n * 2


def official_mocked_suite() -> Any:
    """The same with inngest.experimental.mocked (official SDK), or None if not installed."""
    try:
        import inngest
        from inngest.experimental import mocked as official
    except ImportError:  # pragma: no cover - the bench extra installs it
        return None
    client = inngest.Inngest(app_id="bench", is_production=False)

    @client.create_function(fn_id="double", trigger=inngest.TriggerEvent(event="bench/number"))
    def official_double(ctx: inngest.ContextSync) -> int:
        return int(ctx.step.run("double", lambda: ctx.event.data["n"] * 2))

    def suite() -> None:
        mock_client = official.Inngest(app_id="test")
        for n in range(TESTS):
            result = official.trigger(
                official_double, inngest.Event(name="bench/number", data={"n": n}), mock_client
            )
            assert result.output == n * 2

    return suite


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_thousand_small_tests(benchmark: Any, backend: str) -> None:
    official = official_mocked_suite()
    seconds: dict[str, list[float]] = {"eventbus mocked.trigger": []}
    if official is not None:
        seconds["inngest mocked.trigger"] = []

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        start = time.perf_counter()
        eventbus_mocked_suite()
        seconds["eventbus mocked.trigger"].append(time.perf_counter() - start)
        if official is not None:
            start = time.perf_counter()
            official()
            seconds["inngest mocked.trigger"].append(time.perf_counter() - start)
        return (eventbus_suite,), {"backend": backend}

    benchmark.group = f"test-suite-{backend}"
    benchmark.pedantic(anyio.run, setup=setup, rounds=ROUNDS, iterations=1)
    benchmark.extra_info.update(
        tests=TESTS,
        backend=backend,
        peer_tests_per_s={
            name: round(TESTS / statistics.median(samples)) for name, samples in seconds.items()
        },
    )
