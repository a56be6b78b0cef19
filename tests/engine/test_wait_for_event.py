"""step.wait_for_event: matching, misses, timeouts and the rules about which events count."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

import eventbus
from tests.helpers import make_client, on

pytestmark = pytest.mark.anyio

DAY = datetime.timedelta(days=1)


def waiting_client(**wait: Any) -> tuple[eventbus.Inngest, list[eventbus.Event | None]]:
    client = make_client()
    got: list[eventbus.Event | None] = []
    wait.setdefault("timeout", datetime.timedelta(days=7))

    @client.create_function(fn_id="f", trigger=on("shop/order.created"))
    async def f(ctx: eventbus.Context) -> bool:
        shipped = await ctx.step.wait_for_event("shipped", event="shop/order.shipped", **wait)
        got.append(shipped)
        return shipped is not None

    return client, got


async def test_matching_event_resumes_the_run() -> None:
    """A later event with the same order id resumes the run with that event."""
    client, got = waiting_client(if_exp="async.data.id == event.data.id")
    async with client:
        (order,) = await client.send({"name": "shop/order.created", "data": {"id": "o-1"}})
        await client.settle()
        (run,) = client.runs(event_id=order)
        assert run.status is eventbus.RunStatus.WAITING
        assert run.steps[0].status is eventbus.StepStatus.WAITING
        assert "status=WAITING" in repr(run)
        await client.send({"name": "shop/order.shipped", "data": {"id": "o-2"}})  # another order
        await client.settle()
        assert run.status is eventbus.RunStatus.WAITING
        await client.send({"name": "shop/order.shipped", "data": {"id": "o-1", "carrier": "dhl"}})
        await client.settle()
    assert run.status is eventbus.RunStatus.COMPLETED
    assert run.output is True
    (shipped,) = got
    assert isinstance(shipped, eventbus.Event)
    assert shipped.name == "shop/order.shipped"
    assert shipped.data == {"id": "o-1", "carrier": "dhl"}
    assert run.steps[0].output["data"]["carrier"] == "dhl"


async def test_match_is_sugar_for_equal_fields() -> None:
    """match='data.id' compares event.data.id with async.data.id."""
    client, got = waiting_client(match="data.id")
    async with client:
        await client.send({"name": "shop/order.created", "data": {"id": 7}})
        await client.settle()
        await client.send(
            [
                {"name": "shop/order.shipped", "data": {"id": 8}},
                {"name": "shop/order.shipped", "data": {"id": 7}},
            ]
        )
        await client.settle()
    assert [e.data if e else None for e in got] == [{"id": 7}]


async def test_timeout_returns_none() -> None:
    """With no matching event, the wait ends at its timeout and returns None."""
    client, got = waiting_client(timeout="2d", match="data.id")
    clock = client.clock
    start = clock.now()
    async with client:
        (order,) = await client.send({"name": "shop/order.created", "data": {"id": 1}})
        await client.settle(advance_time=True)
    assert got == [None]
    assert clock.now() - start == 2 * DAY
    (run,) = client.runs(event_id=order)
    assert run.output is False


async def test_only_events_after_the_wait_began_count() -> None:
    """An event sent before the wait began does not resume it; nor does the trigger itself."""
    client = make_client()
    got: list[Any] = []

    @client.create_function(fn_id="f", trigger=on("app/ping"))
    async def f(ctx: eventbus.Context) -> None:
        got.append(await ctx.step.wait_for_event("next", event="app/ping", timeout=60_000))

    async with client:
        await client.send({"name": "app/ping", "data": {"n": 1}})
        await client.settle()
        assert got == []  # its own triggering event did not resume it
        await client.send({"name": "app/ping", "data": {"n": 2}})
        await client.settle()
    # The second ping resumed the first run and started a second run, which then waits.
    assert [e.data if e else None for e in got][:1] == [{"n": 2}]


async def test_one_event_resumes_many_runs() -> None:
    """Every waiting run whose condition holds is resumed by the same event."""
    client, got = waiting_client()
    async with client:
        await client.send([{"name": "shop/order.created", "data": {"id": i}} for i in range(3)])
        await client.settle()
        await client.send({"name": "shop/order.shipped", "data": {"batch": True}})
        await client.settle()
    assert len(got) == 3
    assert all(e is not None and e.data == {"batch": True} for e in got)


async def test_deduplicated_events_still_resume_waits() -> None:
    """A duplicate (same id within 24 h) starts no run but still matches waits."""
    client, got = waiting_client(match="data.id")
    async with client:
        await client.send({"name": "shop/order.shipped", "id": "ship-1", "data": {"id": 1}})
        await client.send({"name": "shop/order.created", "data": {"id": 1}})
        await client.settle()
        (dup,) = await client.send(
            {"name": "shop/order.shipped", "id": "ship-1", "data": {"id": 1}}
        )
        await client.settle()
    assert client.get_event(dup).deduplicated  # type: ignore[union-attr]
    assert len(got) == 1
    assert got[0] is not None


async def test_replays_return_the_same_event() -> None:
    """After resuming, later replays get the matched event from the journal."""
    client = make_client()
    seen: list[Any] = []

    @client.create_function(fn_id="f", trigger=on("app/start"))
    async def f(ctx: eventbus.Context) -> None:
        evt = await ctx.step.wait_for_event("go", event="app/go", timeout="1h")
        seen.append(evt.data if evt else None)
        await ctx.step.sleep("then", "1m")

    async with client:
        await client.send({"name": "app/start"})
        await client.settle()
        await client.send({"name": "app/go", "data": {"x": 1}})
        await client.settle(advance_time=True)
    assert seen == [{"x": 1}, {"x": 1}]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"event": "", "timeout": 1000}, "needs event="),
        ({"event": "a", "timeout": "soon"}, "is not a duration"),
        ({"event": "a", "timeout": datetime.timedelta(days=400)}, "366 days"),
        ({"event": "a", "timeout": 1000, "if_exp": "true", "match": "data.id"}, "not both"),
        ({"event": "a", "timeout": 1000, "if_exp": "async.data.id =="}, "invalid expression"),
        ({"event": "a", "timeout": 1000, "match": " "}, "field path"),
    ],
)
async def test_bad_wait_arguments(kwargs: dict[str, Any], message: str) -> None:
    """Bad arguments fail the run at once with a message naming the problem."""
    client = make_client()

    @client.create_function(fn_id="f", trigger=on("app/e"), retries=3)
    async def f(ctx: eventbus.Context) -> None:
        await ctx.step.wait_for_event("w", **kwargs)

    async with client:
        await client.send({"name": "app/e"})
        await client.settle(advance_time=True)
    (run,) = client.runs(function_id="test-app-f")
    assert run.status is eventbus.RunStatus.FAILED
    assert run.error is not None
    assert message in run.error["message"]
