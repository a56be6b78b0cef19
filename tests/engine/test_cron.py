"""TriggerCron, as Inngest runs it (reference §3.5), on the virtual clock."""

from __future__ import annotations

import datetime
from typing import Any

import inngest
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import eventbus
from eventbus.testing import running
from tests.helpers import close_official_client

pytestmark = pytest.mark.anyio

T0 = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)  # a Tuesday
DAY = datetime.timedelta(days=1)


def cron_app(*triggers: Any, **options: Any) -> eventbus.Inngest:
    app = eventbus.Inngest("shop")

    @app.create_function(fn_id="job", trigger=list(triggers), **options)
    async def job(ctx: eventbus.Context) -> Any:
        if ctx.event.name == "inngest/scheduled.timer":
            return ctx.event.id
        return f"event {ctx.event.name}"

    return app


async def test_a_nightly_cron_runs_a_week_of_nights_instantly() -> None:
    app = cron_app(eventbus.TriggerCron(cron="0 2 * * *"))
    async with running(app, eventbus.VirtualClock(start=T0)) as bus:
        await bus.settle(advance_time=7 * DAY)
        assert bus.outputs("job") == [f"2030-01-0{d}T02:00:00Z" for d in range(1, 8)]
        assert bus.clock.now() == T0 + 7 * DAY  # it stops at the bound
        first = bus.events("inngest/scheduled.timer")[0]
        assert first.id == "2030-01-01T02:00:00Z"
        assert first.data == {
            "cron": "0 2 * * *",
            "scheduledAt": "2030-01-01T02:00:00Z",
            "fireAt": "2030-01-01T02:00:00Z",
        }
        assert first.ts == int((T0 + datetime.timedelta(hours=2)).timestamp() * 1000)


async def test_settle_without_a_bound_does_not_chase_cron_ticks() -> None:
    app = cron_app(eventbus.TriggerCron(cron="* * * * *"))
    async with running(app, eventbus.VirtualClock(start=T0)) as bus:
        await bus.settle(advance_time=True)  # returns: ticks never run out
        assert bus.outputs("job") == []
        assert bus.clock.now() == T0


async def test_a_time_zone_prefix() -> None:
    app = cron_app(eventbus.TriggerCron(cron="TZ=Europe/Paris 0 12 * * *"))
    async with running(app, eventbus.VirtualClock(start=T0)) as bus:
        await bus.settle(advance_time=DAY)
        assert bus.outputs("job") == ["2030-01-01T11:00:00Z"]  # noon in Paris, in winter
    july = datetime.datetime(2030, 7, 1, tzinfo=datetime.timezone.utc)
    app = cron_app(eventbus.TriggerCron(cron="CRON_TZ=Europe/Paris 0 12 * * *"))
    async with running(app, eventbus.VirtualClock(start=july)) as bus:
        await bus.settle(advance_time=DAY)
        assert bus.outputs("job") == ["2030-07-01T10:00:00Z"]  # and in summer


async def test_overlapping_crons_fire_once_and_events_still_trigger() -> None:
    app = cron_app(
        eventbus.TriggerCron(cron="0 * * * *"),
        eventbus.TriggerCron(cron="0 */2 * * *"),
        eventbus.TriggerEvent(event="job/now"),
    )
    async with running(app, eventbus.VirtualClock(start=T0)) as bus:
        await bus.send({"name": "job/now"})
        await bus.settle(advance_time=datetime.timedelta(hours=4))
        assert bus.outputs("job") == [
            "event job/now",
            "2030-01-01T01:00:00Z",
            "2030-01-01T02:00:00Z",
            "2030-01-01T03:00:00Z",
            "2030-01-01T04:00:00Z",
        ]


async def test_jitter_delays_the_fire_within_its_bound() -> None:
    app = cron_app(eventbus.TriggerCron(cron="0 * * * *", jitter="30s"))
    async with running(app, eventbus.VirtualClock(start=T0), seed=7) as bus:
        await bus.settle(advance_time=datetime.timedelta(hours=5, minutes=1))
        ticks = bus.events("inngest/scheduled.timer")
        assert len(ticks) == 5
        for tick in ticks:
            scheduled = datetime.datetime.fromisoformat(tick.data["scheduledAt"][:-1] + "+00:00")
            fired = datetime.datetime.fromisoformat(tick.data["fireAt"][:-1] + "+00:00")
            assert datetime.timedelta(0) <= fired - scheduled <= datetime.timedelta(seconds=30)
            assert tick.id == tick.data["scheduledAt"]


async def test_flow_control_applies_to_cron_runs() -> None:
    app = eventbus.Inngest("shop")

    @app.create_function(
        fn_id="report",
        trigger=eventbus.TriggerCron(cron="0 * * * *"),
        singleton=eventbus.Singleton(mode="skip"),
    )
    async def report(ctx: eventbus.Context) -> str:
        await ctx.step.sleep("slow", "90m")  # longer than the period
        return ctx.event.id

    async with running(app, eventbus.VirtualClock(start=T0)) as bus:
        await bus.settle(advance_time=datetime.timedelta(hours=6))
        # 01:00 runs until 02:30: 02:00 is skipped; then 03:00 (to 04:30), 05:00.
        assert bus.outputs("report") == ["2030-01-01T01:00:00Z", "2030-01-01T03:00:00Z"]
        assert len(bus.runs("report")) == 3  # 05:00 is still sleeping at the bound


async def test_ticks_missed_while_no_engine_ran_are_not_made_up() -> None:
    clock = eventbus.VirtualClock(start=T0)
    app = cron_app(eventbus.TriggerCron(cron="0 * * * *"))
    async with running(app, clock) as bus:
        await bus.settle(advance_time=datetime.timedelta(minutes=90))
        assert bus.outputs("job") == ["2030-01-01T01:00:00Z"]
    clock.advance(datetime.timedelta(hours=3))  # no engine: 02:00 to 04:00 pass
    async with running(app, clock) as bus:
        await bus.settle(advance_time=datetime.timedelta(hours=1))
        assert bus.outputs("job") == ["2030-01-01T05:00:00Z"]


@pytest.mark.parametrize(
    ("cron", "jitter", "problem"),
    [
        ("0 2 * *", None, "five fields"),
        ("0 0 2 * * *", None, "five fields"),
        ("@daily", None, "five fields"),
        ("61 * * * *", None, "not valid"),
        ("TZ=Mars/Olympus 0 2 * * *", None, "not an IANA zone"),
        ("0 2 * * * " + "x" * 260, None, "longer than 255"),
        ("0 2 * * *", "10m", "1s to 5m"),
        ("0 2 * * *", "soon", "not a duration"),
        ("", None, "cron string"),
    ],
)
def test_bad_crons_are_refused_at_create_function(
    cron: str, jitter: str | None, problem: str
) -> None:
    with pytest.raises(eventbus.FunctionConfigError, match=problem):
        cron_app(eventbus.TriggerCron(cron=cron, jitter=jitter))


async def test_an_sdk_cron_function_runs_on_its_schedule() -> None:
    sdk = inngest.Inngest(app_id="shop", is_production=False)
    try:

        @sdk.create_function(fn_id="sweep", trigger=inngest.TriggerCron(cron="30 3 * * *"))
        async def sweep(ctx: inngest.Context) -> str:
            return str(ctx.event.id)

        async with running(sdk, eventbus.VirtualClock(start=T0), functions=[sweep]) as bus:
            await bus.settle(advance_time=2 * DAY)
            assert bus.outputs("sweep") == ["2030-01-01T03:30:00Z", "2030-01-02T03:30:00Z"]
    finally:
        close_official_client(sdk)


def test_the_bridge_registers_cron_triggers_as_the_sdk_would() -> None:
    from eventbus.contrib.inngest import to_inngest

    app = cron_app(
        eventbus.TriggerCron(cron="TZ=Europe/Paris 0 9 * * 1-5", jitter="10s"),
        eventbus.TriggerEvent(event="job/now"),
    )
    sdk = inngest.Inngest(app_id="shop", is_production=False)
    try:
        (fn,) = to_inngest(app, sdk)
        config = fn.get_config("http://127.0.0.1:8000/api/inngest").main.to_dict()
        assert config["triggers"] == [
            {"event": "job/now", "expression": None},
            {"cron": "TZ=Europe/Paris 0 9 * * 1-5", "jitter": "10s"},
        ]
    finally:
        close_official_client(sdk)


@settings(max_examples=25, deadline=None)
@given(every=st.integers(1, 59), hours=st.integers(1, 6))
def test_every_n_minutes_ticks_as_often_as_the_model_says(every: int, hours: int) -> None:
    """``*/n * * * *`` fires at the minutes divisible by n: n divides 60 or not, each
    hour has ceil(60 / n) ticks."""
    import anyio

    async def scenario() -> int:
        app = cron_app(eventbus.TriggerCron(cron=f"*/{every} * * * *"))
        async with running(app, eventbus.VirtualClock(start=T0)) as bus:
            # Ticks in (T0, T0 + hours]: T0's minute 0 is not one, the bound's is.
            await bus.settle(advance_time=datetime.timedelta(hours=hours))
            return len(bus.outputs("job"))

    per_hour = -(-60 // every)
    assert anyio.run(scenario) == per_hour * hours
