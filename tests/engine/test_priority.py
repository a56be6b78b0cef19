"""priority=, as Inngest applies it (reference §5.7): runs waiting to start (here, for a
concurrency slot) are ordered by when they queued less their factor, in seconds."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import eventbus
from eventbus.stores import SqliteStore
from eventbus.testing import running

pytestmark = pytest.mark.anyio

T0 = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)


def prioritized_app(
    run: str = "event.data.boost", limit: int = 1
) -> tuple[eventbus.Inngest, list[int]]:
    app = eventbus.Inngest("shop")
    started: list[int] = []

    @app.create_function(
        fn_id="work",
        trigger=eventbus.TriggerEvent(event="job/queued"),
        concurrency=[eventbus.Concurrency(limit=limit)],
        priority=eventbus.Priority(run=run),
    )
    async def work(ctx: eventbus.Context) -> Any:
        started.append(ctx.event.data["n"])
        return ctx.event.data["n"]

    return app, started


def job(n: int, boost: object = None) -> dict[str, Any]:
    data: dict[str, Any] = {"n": n}
    if boost is not None:
        data["boost"] = boost
    return {"name": "job/queued", "data": data}


async def test_a_vip_run_goes_ahead_of_those_waiting() -> None:
    app, started = prioritized_app()
    async with running(app, eventbus.VirtualClock(start=T0)) as bus:
        await bus.send([job(0), job(1), job(2), job(3, boost=60), job(4, boost=-60)])
        await bus.settle()
        assert [r.output for r in bus.runs("work")] == [0, 1, 2, 3, 4]  # records: sent order
        assert started == [0, 3, 1, 2, 4]


async def test_waiting_longer_than_the_factor_wins() -> None:
    """A factor moves a run as if it had queued that many seconds earlier: a run that
    has waited longer still goes first."""
    app, started = prioritized_app()
    async with running(app, eventbus.VirtualClock(start=T0)) as bus:
        await bus.send([job(0), job(1)])  # 1 waits behind 0, from t=0
        bus.clock.advance(datetime.timedelta(seconds=30))
        await bus.send(job(2, boost=20))  # as if queued at t=10: after 1
        await bus.send(job(3, boost=40))  # as if queued at t=-10: before 1
        await bus.settle()
        assert started == [0, 3, 1, 2]


@pytest.mark.parametrize(
    ("boost", "rank"),
    [
        (43_200, 0),  # the most Inngest allows: ahead of 30 s of waiting
        (10**9, 0),  # clamped to 12 h, still first
        (-(10**9), 2),  # clamped, last
        (1.5, 1),  # not an int: 0, so first come first served
        ("60", 1),
        (None, 1),  # a missing field: 0
    ],
)
async def test_factors_are_clamped_and_non_ints_count_zero(boost: object, rank: int) -> None:
    app, started = prioritized_app()
    async with running(app, eventbus.VirtualClock(start=T0)) as bus:
        await bus.send([job(0), job(1)])
        bus.clock.advance(datetime.timedelta(seconds=30))
        await bus.send([job(2, boost=boost), job(3)])
        await bus.settle()
        assert started[0] == 0
        assert started[1:].index(2) == rank


async def test_an_expression_error_counts_zero() -> None:
    app, started = prioritized_app(run="event.data.boost + 1")  # a string + int errors
    async with running(app, eventbus.VirtualClock(start=T0)) as bus:
        await bus.send([job(0), job(1), job(2, boost="x"), job(3, boost=10)])
        await bus.settle()
        assert started == [0, 3, 1, 2]


async def test_priority_orders_steps_taking_turns() -> None:
    """Each step queues again: a run's later steps wait in priority order too."""
    app = eventbus.Inngest("shop")
    done: list[str] = []

    @app.create_function(
        fn_id="steps",
        trigger=eventbus.TriggerEvent(event="job/queued"),
        concurrency=[eventbus.Concurrency(limit=1)],
        priority=eventbus.Priority(run="event.data.boost"),
    )
    async def steps(ctx: eventbus.Context) -> None:
        n = ctx.event.data["n"]
        for i in range(2):
            await ctx.step.run(f"s{i}", lambda i=i: done.append(f"{n}.{i}"))

    async with running(app, eventbus.VirtualClock(start=T0)) as bus:
        await bus.send([job(0, boost=0), job(1, boost=0), job(2, boost=600)])
        await bus.settle()
    # The slot a step gives back goes to the head of the queue; the run then queues
    # again at its score, ahead of the others (without priority: 0.0, 1.0, 2.0, 0.1, ...).
    assert done == ["0.0", "2.0", "1.0", "2.1", "0.1", "1.1"]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@settings(max_examples=30, deadline=None)
@given(boosts=st.lists(st.integers(-100, 100), min_size=1, max_size=8))
def test_start_order_matches_the_model(backend: str, boosts: list[int]) -> None:
    """Jobs queued at once behind a running one start by factor, highest first, then in
    the order they were sent."""

    async def scenario() -> list[int]:
        app, started = prioritized_app()
        async with running(app, eventbus.VirtualClock(start=T0)) as bus:
            await bus.send([job(0), *(job(n + 1, boost=b) for n, b in enumerate(boosts))])
            await bus.settle()
        return started

    started = anyio.run(scenario, backend=backend)
    expected = [n + 1 for n, _ in sorted(enumerate(boosts), key=lambda item: -item[1])]
    assert started == [0, *expected]


def throttled_app(**client: Any) -> tuple[eventbus.Inngest, list[int]]:
    app = eventbus.Inngest("shop", **client)
    started: list[int] = []

    @app.create_function(
        fn_id="work",
        trigger=eventbus.TriggerEvent(event="job/queued"),
        throttle=eventbus.Throttle(limit=1, period="1m", burst=1),
        priority=eventbus.Priority(run="event.data.boost"),
    )
    async def work(ctx: eventbus.Context) -> Any:
        started.append(ctx.event.data["n"])
        return ctx.event.data["n"]

    return app, started


def start_seconds(bus: Any) -> dict[int, int]:
    return {
        r.output: (r._started_ms - int(T0.timestamp() * 1000)) // 1000
        for r in bus.runs("work")
        if r._started_ms is not None
    }


async def test_priority_orders_a_throttled_backlog() -> None:
    """The throttle's turns stay as they were reserved (limit + burst at once, then one
    a minute); each goes to the best run waiting when it comes."""
    app, started = throttled_app()
    async with running(app, eventbus.VirtualClock(start=T0)) as bus:
        await bus.send([job(0), job(1), job(2), job(3, boost=600), job(4)])
        await bus.settle(advance_time=True)
        assert started == [0, 1, 3, 2, 4]
        assert start_seconds(bus) == {0: 0, 1: 0, 3: 60, 2: 120, 4: 180}


async def test_a_cancelled_run_leaves_the_throttled_backlog() -> None:
    app, started = throttled_app()
    async with running(app, eventbus.VirtualClock(start=T0)) as bus:
        ids = await bus.send([job(0), job(1), job(2), job(3, boost=600), job(4, boost=900)])
        await bus.settle()
        (boosted,) = bus.engine.runs(event_id=ids[4])
        assert bus.cancel(boosted.run_id)
        await bus.settle(advance_time=True)
        assert started == [0, 1, 3, 2]
        assert start_seconds(bus)[2] == 120  # the cancelled run's turn went with it


async def test_a_throttled_backlog_keeps_its_order_across_a_restart(tmp_path: Path) -> None:
    clock = eventbus.VirtualClock(start=T0)
    first, _ = throttled_app(clock=clock, store=SqliteStore(tmp_path / "app.db"))
    async with first:
        await first.send([job(0), job(1), job(2), job(3), job(4, boost=600)])
        await first.settle()
    second, started = throttled_app(clock=clock, store=SqliteStore(tmp_path / "app.db"))
    async with second:
        await second.settle(advance_time=True)
        assert started == [4, 2, 3]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@settings(max_examples=25, deadline=None)
@given(boosts=st.lists(st.integers(-100, 100), min_size=3, max_size=8))
def test_throttled_start_order_matches_the_model(backend: str, boosts: list[int]) -> None:
    """Jobs sent at once to a throttle of 1 a minute (burst 1): the first two start at
    once, the rest one a minute, highest factor first, then in the order sent."""

    async def scenario() -> tuple[list[int], dict[int, int]]:
        app, started = throttled_app()
        async with running(app, eventbus.VirtualClock(start=T0)) as bus:
            await bus.send([job(n, boost=b) for n, b in enumerate(boosts)])
            await bus.settle(advance_time=True)
            return started, start_seconds(bus)

    started, seconds = anyio.run(scenario, backend=backend)
    waiting = sorted(enumerate(boosts[2:], start=2), key=lambda item: -item[1])
    assert started == [0, 1, *(n for n, _ in waiting)]
    assert [seconds[n] for n in started] == [0, 0, *(60 * (i + 1) for i in range(len(waiting)))]
