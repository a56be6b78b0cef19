"""rate_limit= and idempotency=, as Inngest applies them (reference §5.4, §2.3), on the
virtual clock; with a model check of many keys and times, and across a restart."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import eventbus
from eventbus.stores import SqliteStore
from eventbus.testing import running

pytestmark = pytest.mark.anyio

T0 = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
MINUTE = datetime.timedelta(minutes=1)


def app_with(**options: Any) -> eventbus.Inngest:
    app = eventbus.Inngest("shop")

    @app.create_function(
        fn_id="sync", trigger=eventbus.TriggerEvent(event="crm/contact.updated"), **options
    )
    async def sync(ctx: eventbus.Context) -> Any:
        return ctx.event.data.get("n")

    return app


async def advance(bus: Any, delta: datetime.timedelta) -> None:
    bus.clock.advance(delta)
    await bus.settle()


async def test_excess_events_start_no_run_and_are_still_stored() -> None:
    app = app_with(rate_limit=eventbus.RateLimit(limit=1, period=MINUTE))
    async with running(app, eventbus.VirtualClock(start=T0)) as bus:
        ids = [
            (await bus.send({"name": "crm/contact.updated", "data": {"n": n}}))[0] for n in range(3)
        ]
        await bus.settle()
        assert bus.outputs("sync") == [0]
        assert len(bus.events("crm/contact.updated")) == 3  # all stored
        [decision] = bus.explain(ids[1])
        assert decision.decision == "rate limited"
        assert "2030-01-01T00:01:00.000000Z" in decision.detail  # when the next may start
        await advance(bus, MINUTE - datetime.timedelta(milliseconds=1))
        await bus.send({"name": "crm/contact.updated", "data": {"n": 3}})
        await advance(bus, datetime.timedelta(milliseconds=1))
        await bus.send({"name": "crm/contact.updated", "data": {"n": 4}})
        await bus.settle()
        assert bus.outputs("sync") == [0, 4]  # not queued: the excess is dropped


async def test_ten_a_minute_is_two_at_once_then_one_every_six_seconds() -> None:
    app = app_with(rate_limit=eventbus.RateLimit(limit=10, period=60_000))
    async with running(app, eventbus.VirtualClock(start=T0)) as bus:
        for n in range(3):
            await bus.send({"name": "crm/contact.updated", "data": {"n": n}})
        await advance(bus, datetime.timedelta(seconds=5))
        await bus.send({"name": "crm/contact.updated", "data": {"n": 3}})
        await advance(bus, datetime.timedelta(seconds=1))
        await bus.send({"name": "crm/contact.updated", "data": {"n": 4}})
        await bus.settle()
        assert bus.outputs("sync") == [0, 1, 4]


async def test_keys_are_limited_apart_and_a_false_key_is_not_limited() -> None:
    app = app_with(rate_limit=eventbus.RateLimit(limit=1, period="1h", key="event.data.user"))
    async with running(app, eventbus.VirtualClock(start=T0)) as bus:
        for n, user in enumerate(["ana", "ana", "bo", None, None]):
            data = {"n": n} if user is None else {"n": n, "user": user}
            ids = await bus.send({"name": "crm/contact.updated", "data": data})
        await bus.settle()
        # ana once, bo once; events without the field (key false) are never limited.
        assert bus.outputs("sync") == [0, 2, 3, 4]
        [decision] = bus.explain(ids[0])
        assert decision.decision == "started run"


async def test_idempotency_runs_once_per_key_per_day() -> None:
    app = app_with(idempotency="event.data.order")
    async with running(app, eventbus.VirtualClock(start=T0)) as bus:
        first = await bus.send({"name": "crm/contact.updated", "data": {"n": 1, "order": 7}})
        again = await bus.send({"name": "crm/contact.updated", "data": {"n": 2, "order": 7}})
        await bus.send({"name": "crm/contact.updated", "data": {"n": 3, "order": 8}})
        await bus.settle()
        assert bus.outputs("sync") == [1, 3]
        assert bus.explain(first[0])[0].decision == "started run"
        [decision] = bus.explain(again[0])
        assert decision.decision == "idempotent duplicate"
        assert "key 7" in decision.detail
        await advance(bus, datetime.timedelta(hours=24))
        await bus.send({"name": "crm/contact.updated", "data": {"n": 4, "order": 7}})
        await bus.settle()
        assert bus.outputs("sync") == [1, 3, 4]  # a day later, the key runs again


async def test_idempotency_overrides_a_rate_limit() -> None:
    app = app_with(
        rate_limit=eventbus.RateLimit(limit=100, period=MINUTE), idempotency="event.data.order"
    )
    async with running(app, eventbus.VirtualClock(start=T0)) as bus:
        for n in range(3):
            await bus.send({"name": "crm/contact.updated", "data": {"n": n, "order": 1}})
        await bus.settle()
        assert bus.outputs("sync") == [0]


async def test_invoking_a_rate_limited_function_fails_the_step() -> None:
    app = eventbus.Inngest("shop")

    @app.create_function(
        fn_id="quote", trigger=[], rate_limit=eventbus.RateLimit(limit=1, period="1h")
    )
    async def quote(ctx: eventbus.Context) -> int:
        return 42

    @app.create_function(fn_id="caller", trigger=eventbus.TriggerEvent(event="go"))
    async def caller(ctx: eventbus.Context) -> Any:
        try:
            return await ctx.step.invoke("price", function=quote, data={})
        except eventbus.StepError as exc:
            return exc.name

    async with running(app, eventbus.VirtualClock(start=T0)) as bus:
        await bus.send({"name": "go"})
        await bus.settle()
        await bus.send({"name": "go"})
        await bus.settle()
        assert bus.outputs("caller") == [42, "InngestInvokeRateLimitedError"]
        assert len(bus.runs("quote")) == 1


async def test_an_idempotency_key_survives_a_restart(tmp_path: Path) -> None:
    clock = eventbus.VirtualClock(start=T0)
    charged: list[int] = []
    for attempt in range(2):
        app = eventbus.Inngest("shop", clock=clock, store=SqliteStore(tmp_path / "app.db"))
        charged.clear()

        @app.create_function(
            fn_id="charge",
            trigger=eventbus.TriggerEvent(event="shop/paid"),
            idempotency="event.data.order",
        )
        async def charge(ctx: eventbus.Context) -> None:
            charged.append(ctx.event.data["order"])

        async with app:
            await app.send({"name": "shop/paid", "data": {"order": 5}})  # no event id
            await app.settle()
        assert charged == ([5] if attempt == 0 else [])  # not charged again after restart


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"rate_limit": eventbus.RateLimit(limit=0, period=MINUTE)}, "at least 1"),
        ({"rate_limit": eventbus.RateLimit(limit=1, period=500)}, "1s to 24h"),
        ({"rate_limit": eventbus.RateLimit(limit=1, period="25h")}, "1s to 24h"),
        ({"rate_limit": eventbus.RateLimit(limit=1, period="soon")}, "not a duration"),
        ({"rate_limit": eventbus.RateLimit(limit=1, period=MINUTE, key="event.(")}, "not valid"),
        ({"rate_limit": eventbus.RateLimit(limit=1, period=MINUTE, key="")}, "expression"),
        ({"rate_limit": {"limit": 1}}, "eventbus.RateLimit"),
        ({"idempotency": 7}, "key expression"),
        ({"idempotency": "event.data.("}, "not valid"),
    ],
)
def test_bad_values_are_refused_at_create_function(options: dict[str, Any], problem: str) -> None:
    with pytest.raises(eventbus.FunctionConfigError, match=problem):
        app_with(**options)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@settings(max_examples=40, deadline=None)
@given(
    limit=st.integers(1, 12),
    period_s=st.integers(1, 120),
    sends=st.lists(
        st.tuples(st.integers(0, 20_000), st.sampled_from(["a", "b", None])), max_size=30
    ),
)
def test_runs_started_match_the_model(
    backend: str, limit: int, period_s: int, sends: list[tuple[int, str | None]]
) -> None:
    """Sends at random gaps with random keys: the runs that start are those the rule
    admits, key by key (the model: a leaky bucket per key, Inngest's GCRA)."""
    import anyio

    period = period_s * 1000
    interval = period * 1_000_000 // limit  # ns, as the rule keeps time
    tolerance = (limit // 10) * interval

    async def scenario() -> tuple[list[int], list[int]]:
        app = app_with(
            rate_limit=eventbus.RateLimit(limit=limit, period=period, key="event.data.user")
        )
        expected: list[int] = []
        buckets: dict[str, tuple[int, int]] = {}
        async with running(app, eventbus.VirtualClock(start=T0)) as bus:
            now = 0
            for n, (gap, user) in enumerate(sends):
                if gap:
                    await advance(bus, datetime.timedelta(milliseconds=gap))
                now += gap
                data: dict[str, Any] = {"n": n} if user is None else {"n": n, "user": user}
                await bus.send({"name": "crm/contact.updated", "data": data})
                if user is None:
                    expected.append(n)
                    continue
                level, last = buckets.get(user, (0, now))
                level = max(0, level - (now - last) * 1_000_000)
                if level <= tolerance:
                    expected.append(n)
                    level += interval
                buckets[user] = (level, now)
            await bus.settle()
            return sorted(bus.outputs("sync")), expected

    got, expected = anyio.run(scenario, backend=backend)
    assert got == expected
