"""Cancellation: cancel rules, client.cancel and timeouts; always between steps."""

from __future__ import annotations

import datetime
from typing import Any

import anyio
import pytest

import eventbus
from tests.helpers import make_client, on

pytestmark = pytest.mark.anyio

Cancelled = eventbus.RunStatus.CANCELLED


def order_client(**options: Any) -> tuple[eventbus.Inngest, list[str]]:
    client = make_client()
    progress: list[str] = []

    @client.create_function(fn_id="f", trigger=on("shop/order.created"), **options)
    async def f(ctx: eventbus.Context) -> str:
        await ctx.step.run("reserve", lambda: progress.append("reserve"))
        await ctx.step.sleep("wait", "1d")
        await ctx.step.run("ship", lambda: progress.append("ship"))
        return "shipped"

    return client, progress


async def test_cancel_rule_cancels_a_sleeping_run() -> None:
    """A matching event cancels the run; it ends CANCELLED and emits Inngest's events."""
    rule = eventbus.Cancel(event="shop/order.cancelled", if_exp="async.data.id == event.data.id")
    client, progress = order_client(cancel=[rule])
    async with client:
        (order,) = await client.send({"name": "shop/order.created", "data": {"id": 1}})
        await client.settle()
        await client.send({"name": "shop/order.cancelled", "data": {"id": 2}})  # another order
        (run,) = client.runs(event_id=order)
        assert run.status is eventbus.RunStatus.SLEEPING
        await client.send({"name": "shop/order.cancelled", "data": {"id": 1}})
        assert run.status is Cancelled
        await client.settle(advance_time=True)
    assert progress == ["reserve"]
    assert run.error == {
        "error": "function cancelled",
        "message": "function cancelled",
        "name": "Error",
    }
    (cancelled,) = client.events(name="inngest/function.cancelled")
    assert cancelled.id == run.run_id
    assert cancelled.data["_inngest"] == {"status": "Cancelled"}
    (finished,) = client.events(name="inngest/function.finished")
    assert finished.data["_inngest"] == {"status": "Cancelled"}
    assert finished.data["error"]["message"] == "function cancelled"
    assert repr(run).startswith("<Run fn='f' status=CANCELLED")


async def test_cancellation_waits_for_the_running_step() -> None:
    """A cancel that arrives during a step lets that step finish, then stops the run."""
    client = make_client()
    release = anyio.Event()
    started = anyio.Event()
    done: list[str] = []

    async def long_step() -> str:
        started.set()
        await release.wait()
        done.append("long")
        return "long"

    @client.create_function(
        fn_id="f", trigger=on("app/start"), cancel=[eventbus.Cancel(event="app/stop")]
    )
    async def f(ctx: eventbus.Context) -> str:
        await ctx.step.run("long", long_step)
        await ctx.step.run("next", lambda: done.append("next"))
        return "finished"

    async with client:
        (start,) = await client.send({"name": "app/start"})
        await started.wait()  # the step is running now
        await client.send({"name": "app/stop"})
        (run,) = client.runs(event_id=start)
        assert run.status is eventbus.RunStatus.RUNNING  # not inside a running step
        release.set()
        await client.settle()
    assert done == ["long"]
    assert run.status is Cancelled
    assert [(s.id, s.status.name) for s in run.steps] == [("long", "COMPLETED")]


async def test_client_cancel() -> None:
    """client.cancel stops a suspended run at once; ended runs return False."""
    client, progress = order_client()
    async with client:
        first, second = await client.send(
            [{"name": "shop/order.created"}, {"name": "shop/order.created"}]
        )
        await client.settle()
        (run,) = client.runs(event_id=first)
        assert client.cancel(run.run_id) is True
        assert run.status is Cancelled
        assert client.cancel(run.run_id) is False
        with pytest.raises(eventbus.UsageError, match="no run 'nope'"):
            client.cancel("nope")
        await client.settle(advance_time=True)
    (other,) = client.runs(event_id=second)
    assert other.output == "shipped"
    assert progress == ["reserve", "reserve", "ship"]


async def test_cancelled_while_queued_never_runs() -> None:
    """A run cancelled before a worker picked it up never executes."""
    client, progress = order_client()
    async with client:
        (order,) = await client.send({"name": "shop/order.created"})
        (run,) = client.runs(event_id=order)
        assert client.cancel(run.run_id)
        await client.settle(advance_time=True)
    assert progress == []
    assert run.status is Cancelled


async def test_the_triggering_event_cannot_cancel_its_own_run() -> None:
    """A cancel rule on the trigger's own name does not cancel the run it started."""
    client = make_client()

    @client.create_function(
        fn_id="f", trigger=on("app/tick"), cancel=[eventbus.Cancel(event="app/tick")]
    )
    async def f(ctx: eventbus.Context) -> str:
        await ctx.step.sleep("nap", "1h")
        return "done"

    async with client:
        (first,) = await client.send({"name": "app/tick"})
        await client.settle()
        assert client.runs(event_id=first)[0].status is eventbus.RunStatus.SLEEPING
        await client.send({"name": "app/tick"})  # a later tick cancels the first run
        assert client.runs(event_id=first)[0].status is Cancelled


async def test_cancel_rules_expire() -> None:
    """A cancel rule applies only within its timeout."""
    rule = eventbus.Cancel(event="shop/order.cancelled", timeout="1h")
    client, _ = order_client(cancel=[rule])
    clock = client.clock
    assert isinstance(clock, eventbus.VirtualClock)
    async with client:
        (order,) = await client.send({"name": "shop/order.created"})
        await client.settle()
        clock.advance(datetime.timedelta(hours=2))
        await client.send({"name": "shop/order.cancelled"})
        await client.settle(advance_time=True)
    assert client.runs(event_id=order)[0].output == "shipped"


async def test_start_timeout_cancels_runs_that_never_started() -> None:
    """Timeouts(start=...) cancels a run still waiting to start (here: a future-dated event)."""
    client, progress = order_client(timeouts=eventbus.Timeouts(start="10m"))
    clock = client.clock
    async with client:
        (order,) = await client.send(
            {"name": "shop/order.created", "ts": clock.now_ms() + 3_600_000}
        )
        await client.settle(advance_time=True)
    assert client.runs(event_id=order)[0].status is Cancelled
    assert progress == []


async def test_finish_timeout_cancels_long_runs() -> None:
    """Timeouts(finish=...) cancels a run that is still going that long after it started."""
    client, progress = order_client(timeouts=eventbus.Timeouts(finish=datetime.timedelta(hours=1)))
    async with client:
        (order,) = await client.send({"name": "shop/order.created"})
        await client.settle(advance_time=True)
    assert client.runs(event_id=order)[0].status is Cancelled
    assert progress == ["reserve"]


async def test_timeouts_do_not_cancel_quick_runs() -> None:
    """Runs that start and finish in time are not affected by their timeouts."""
    client = make_client()

    @client.create_function(
        fn_id="f", trigger=on("app/e"), timeouts=eventbus.Timeouts(start="1m", finish="1h")
    )
    async def f(ctx: eventbus.Context) -> str:
        return "quick"

    async with client:
        await client.send({"name": "app/e"})
        await client.settle(advance_time=True)
    assert client.runs(function_id="test-app-f")[0].output == "quick"


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"cancel": [eventbus.Cancel(event=f"e{i}") for i in range(6)]}, "limit of 5"),
        ({"cancel": "app/stop"}, "list of eventbus.Cancel"),
        ({"timeouts": {"start": "1m"}}, "eventbus.Timeouts"),
    ],
)
def test_bad_cancellation_config(options: dict[str, Any], match: str) -> None:
    """Cancellation settings are checked at create_function."""
    client = make_client()
    with pytest.raises(eventbus.FunctionConfigError, match=match):
        client.create_function(fn_id="f", trigger=on("app/e"), **options)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: eventbus.Cancel(event=""), "non-empty"),
        (lambda: eventbus.Cancel(event="a", if_exp="async.x =="), "expected a value"),
        (lambda: eventbus.Cancel(event="a", if_exp=5), "must be a non-empty string, got 5"),
        (lambda: eventbus.Cancel(event="a", timeout="soon"), "not a duration"),
        (lambda: eventbus.Timeouts(start=500), "1-second minimum"),
    ],
)
def test_bad_cancel_values(build: Any, match: str) -> None:
    """Cancel and Timeouts validate at construction."""
    with pytest.raises(eventbus.FunctionConfigError, match=match):
        build()


async def test_advance_time_does_not_jump_to_timers_of_ended_runs() -> None:
    """settle(advance_time=True) stops when work is done, not at a dead year-long timer."""
    rule = eventbus.Cancel(event="shop/order.cancelled")  # expires after 365 days
    client, _ = order_client(cancel=[rule], timeouts=eventbus.Timeouts(finish="30d"))
    clock = client.clock
    start = clock.now()
    async with client:
        (order,) = await client.send({"name": "shop/order.created"})
        await client.settle(advance_time=True)
    assert client.runs(event_id=order)[0].output == "shipped"
    assert clock.now() - start == datetime.timedelta(days=1)  # the sleep, nothing more


async def test_ended_runs_leave_no_timers_behind() -> None:
    """Timers of ended runs are dropped, so the engine's timer state does not grow."""
    rule = eventbus.Cancel(event="shop/order.cancelled")
    client, _ = order_client(cancel=[rule])
    async with client:
        for _ in range(20):
            await client.send({"name": "shop/order.created"})
        await client.settle(advance_time=True)
        engine = client.engine
        assert engine._next_timer() is None
        assert not engine._timers._dead
        assert all(not run._timers for run in client.runs())


async def test_one_event_that_cancels_a_run_and_matches_its_wait() -> None:
    """An event that is both a run's cancel rule and what it waits for cancels the run
    (the rule came first) and leaves the engine whole: its wait is dropped with it."""
    client = make_client()

    @client.create_function(
        fn_id="f",
        trigger=eventbus.TriggerEvent(event="shop/order.created"),
        cancel=[eventbus.Cancel(event="shop/order.closed")],
    )
    async def f(ctx: eventbus.Context) -> str:
        await ctx.step.wait_for_event("closed", event="shop/order.closed", timeout="1h")
        return "resumed"

    async with client:
        await client.send({"name": "shop/order.created"})
        await client.settle()
        await client.send({"name": "shop/order.closed"})
        await client.settle(advance_time=True)
        (run,) = client.runs(f.id)
        assert run.status is eventbus.RunStatus.CANCELLED
        await client.send({"name": "shop/order.closed"})  # the engine still works
        assert not client.engine._pauses
