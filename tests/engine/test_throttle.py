"""throttle=, as Inngest applies it (reference §5.3): run starts spaced by GCRA per key,
the excess queued in order and never dropped; on the virtual clock."""

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
T0_MS = int(T0.timestamp() * 1000)
MINUTE_MS = 60_000


def throttled_app(
    clock: eventbus.VirtualClock, starts: list[tuple[Any, int]], **options: Any
) -> eventbus.Inngest:
    app = eventbus.Inngest("shop", clock=clock)

    @app.create_function(
        fn_id="call-api", trigger=eventbus.TriggerEvent(event="api/call"), **options
    )
    async def call_api(ctx: eventbus.Context) -> Any:
        starts.append((ctx.event.data.get("n"), clock.now_ms() - T0_MS))
        return ctx.event.data.get("n")

    return app


async def test_limit_plus_burst_start_at_once_then_one_per_interval() -> None:
    clock = eventbus.VirtualClock(start=T0)
    starts: list[tuple[Any, int]] = []
    app = throttled_app(clock, starts, throttle=eventbus.Throttle(limit=1, period="1m"))
    async with running(app, clock) as bus:
        ids = []
        for n in range(4):
            ids += await bus.send({"name": "api/call", "data": {"n": n}})
        await bus.settle()
        assert starts == [(0, 0), (1, 0)]  # limit 1 + burst 1
        started, why = bus.explain(ids[2])  # the run is made, and waits its turn
        assert started.decision == "started run"
        assert why.decision == "throttled"
        assert "queued until 2030-01-01T00:01:00" in why.detail
        await bus.settle(advance_time=True)
        # Never dropped, in order, one a minute.
        assert starts == [(0, 0), (1, 0), (2, MINUTE_MS), (3, 2 * MINUTE_MS)]


async def test_keys_are_throttled_apart_and_a_missing_key_shares_one_bucket() -> None:
    clock = eventbus.VirtualClock(start=T0)
    starts: list[tuple[Any, int]] = []
    app = throttled_app(
        clock,
        starts,
        throttle=eventbus.Throttle(limit=1, period=MINUTE_MS, burst=1, key="event.data.shop"),
    )
    async with running(app, clock) as bus:
        for n, shop in enumerate(["a", "a", "a", "b", None, None, None]):
            data = {"n": n} if shop is None else {"n": n, "shop": shop}
            await bus.send({"name": "api/call", "data": data})
        await bus.settle(advance_time=True)
        assert sorted(starts) == [
            (0, 0),
            (1, 0),
            (2, MINUTE_MS),
            (3, 0),
            (4, 0),
            (5, 0),
            (6, MINUTE_MS),
        ]


async def test_a_start_timeout_cancels_the_stale_backlog() -> None:
    clock = eventbus.VirtualClock(start=T0)
    starts: list[tuple[Any, int]] = []
    app = throttled_app(
        clock,
        starts,
        throttle=eventbus.Throttle(limit=1, period="1m", burst=1),
        timeouts=eventbus.Timeouts(start="90s"),
    )
    async with running(app, clock) as bus:
        for n in range(4):
            await bus.send({"name": "api/call", "data": {"n": n}})
        await bus.settle(advance_time=True)
        assert [n for n, _ in starts] == [0, 1, 2]  # the one due at 2 min was too late
        statuses = [run.status for run in bus.runs("call-api")]
        assert statuses.count(eventbus.RunStatus.CANCELLED) == 1


async def test_the_backlog_survives_a_restart(tmp_path: Path) -> None:
    clock = eventbus.VirtualClock(start=T0)
    starts: list[tuple[Any, int]] = []
    options = {"throttle": eventbus.Throttle(limit=1, period="1m", burst=1)}
    first = throttled_app(clock, starts, **options)
    first.store = SqliteStore(tmp_path / "app.db")
    async with first:
        for n in range(3):
            await first.send({"name": "api/call", "data": {"n": n}})
        await first.settle()
    assert starts == [(0, 0), (1, 0)]
    second = throttled_app(clock, starts, **options)
    second.store = SqliteStore(tmp_path / "app.db")
    async with second:
        await second.send({"name": "api/call", "data": {"n": 3}})  # after the queued one
        clock.advance(datetime.timedelta(minutes=1))
        await second.settle()
        assert starts[2:] == [(2, MINUTE_MS)]
        clock.advance(datetime.timedelta(minutes=1))
        await second.settle()
    assert starts[2:] == [(2, MINUTE_MS), (3, 2 * MINUTE_MS)]


@pytest.mark.parametrize(
    ("throttle", "problem"),
    [
        (eventbus.Throttle(limit=-1, period="1m"), "negative"),
        (eventbus.Throttle(limit=1, period=500), "1s to 7d"),
        (eventbus.Throttle(limit=1, period="8d"), "1s to 7d"),
        (eventbus.Throttle(limit=1, period="1m", burst=-2), "burst"),
        (eventbus.Throttle(limit=1, period="1m", key="event.("), "not valid"),
        (eventbus.Throttle(limit=1, period="1m", key=" "), "expression"),
        ("1/m", "eventbus.Throttle"),
    ],
)
def test_bad_values_are_refused_at_create_function(throttle: Any, problem: str) -> None:
    with pytest.raises(eventbus.FunctionConfigError, match=problem):
        throttled_app(eventbus.VirtualClock(start=T0), [], throttle=throttle)


def test_a_limit_of_zero_is_one() -> None:
    app = throttled_app(
        eventbus.VirtualClock(start=T0), [], throttle=eventbus.Throttle(limit=0, period="1m")
    )
    (function,) = app.functions()
    assert function.throttle is not None
    assert function.throttle.limit == 1


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@settings(max_examples=30, deadline=None)
@given(
    limit=st.integers(1, 5),
    burst=st.integers(1, 3),
    period_s=st.integers(1, 60),
    gaps=st.lists(st.integers(0, 30_000), max_size=15),
)
def test_start_times_match_the_model(
    backend: str, limit: int, burst: int, period_s: int, gaps: list[int]
) -> None:
    """Arrivals at random gaps: each run starts at the model's slot (arrival, or the
    key's next admission if later; the slot then taken), in arrival order."""
    interval = period_s * 1000 * 1_000_000 // limit
    tolerance = (limit + burst - 1) * interval

    async def scenario() -> tuple[list[tuple[Any, int]], list[tuple[Any, int]]]:
        clock = eventbus.VirtualClock(start=T0)
        starts: list[tuple[Any, int]] = []
        app = throttled_app(
            clock,
            starts,
            throttle=eventbus.Throttle(limit=limit, period=period_s * 1000, burst=burst),
        )
        expected: list[tuple[Any, int]] = []
        tat = 0
        now = 0
        async with running(app, clock) as bus:
            for n, gap in enumerate(gaps):
                now += gap
                # Step through the timers due on the way, so each run starts at its time.
                while (due := bus.engine._next_timer()) is not None and due <= T0_MS + now:
                    clock.advance_to_ms(due)
                    await bus.settle()
                clock.advance_to_ms(T0_MS + now)
                await bus.settle()
                await bus.send({"name": "api/call", "data": {"n": n}})
                await bus.settle()  # what may start now starts now
                start = max(now, -(-(tat - tolerance) // 1_000_000))
                tat = max(tat, start * 1_000_000) + interval
                expected.append((n, start))
            await bus.settle(advance_time=True)
        return sorted(starts), expected

    got, expected = anyio.run(scenario, backend=backend)
    assert got == expected
