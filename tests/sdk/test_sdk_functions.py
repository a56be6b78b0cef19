"""Functions written for the official ``inngest`` SDK, run unchanged on eventbus."""

from __future__ import annotations

import datetime
from typing import Any

import anyio
import inngest
import pydantic
import pytest

import eventbus
import eventbus.testing
from eventbus.contrib import _sdk
from eventbus.contrib.inngest import from_inngest

pytestmark = pytest.mark.anyio

sdk = inngest.Inngest(app_id="shop", is_production=False, serializer=inngest.PydanticSerializer())


class Receipt(pydantic.BaseModel):
    order: str
    total: int


@sdk.create_function(
    fn_id="checkout",
    name="Checkout",
    retries=2,
    trigger=inngest.TriggerEvent(event="shop/order.created", expression="event.data.total > 0"),
    cancel=[inngest.Cancel(event="shop/order.cancelled", if_exp="async.data.id == event.data.id")],
    timeouts=inngest.Timeouts(finish=datetime.timedelta(days=2)),
)
async def checkout(ctx: inngest.Context) -> dict[str, Any]:
    assert isinstance(ctx.event, inngest.Event)
    order = ctx.event.data["id"]

    async def charge(order_id: str, total: int) -> Receipt:
        return Receipt(order=order_id, total=total)  # the SDK's serializer stores it as JSON

    receipt = await ctx.step.run(
        "charge", charge, order, ctx.event.data["total"], output_type=Receipt
    )
    await ctx.step.sleep("cool-off", datetime.timedelta(hours=1))
    await ctx.step.sleep("a-bit-more", 1000)  # int milliseconds
    shipped = await ctx.step.wait_for_event(
        "shipped",
        event="shop/order.shipped",
        if_exp="async.data.id == event.data.id",
        timeout=datetime.timedelta(days=1),
    )
    assert shipped is None or isinstance(shipped, inngest.Event)
    ids = await ctx.step.send_event("notify", inngest.Event(name="shop/email", data={"id": order}))
    tax = await ctx.step.invoke("tax", function=compute_tax, data={"total": receipt.total})
    labels = await ctx.group.parallel(
        (
            lambda: ctx.step.run("label", lambda: "label-1"),
            lambda: ctx.step.run("invoice", lambda: "inv-1"),
        )
    )
    return {
        "receipt": receipt.model_dump(),
        "shipped": None if shipped is None else shipped.data,
        "sent": len(ids),
        "tax": tax,
        "labels": list(labels),
        "run_id": ctx.run_id,
    }


@sdk.create_function(fn_id="compute-tax", trigger=[])
async def compute_tax(ctx: inngest.Context) -> float:
    return float(ctx.event.data["total"]) * 0.1


@sdk.create_function(fn_id="nightly-sync", trigger=inngest.TriggerEvent(event="shop/sync"))
def nightly_sync(ctx: inngest.ContextSync) -> dict[str, Any]:
    rows = ctx.step.run("query", lambda n: list(range(n)), 3)
    ctx.step.sleep_until("until", datetime.datetime.now() - datetime.timedelta(minutes=1))
    found = ctx.step.invoke_by_id("tax", function_id="compute-tax", data={"total": 50})
    return {"rows": rows, "tax": found, "attempt": ctx.attempt, "events": len(ctx.events)}


def on_failure_handler(ctx: inngest.ContextSync) -> str:
    return f"handled {ctx.event.data['function_id']}"


@sdk.create_function(
    fn_id="flaky",
    retries=0,
    trigger=inngest.TriggerEvent(event="shop/flaky"),
    on_failure=on_failure_handler,
)
def flaky(ctx: inngest.ContextSync) -> None:
    raise ValueError("broken")


FUNCTIONS = [checkout, compute_tax, nightly_sync, flaky]


async def test_an_sdk_app_runs_unchanged_in_a_test_engine() -> None:
    """An official SDK app's functions, passed as to serve(), run with every step kind:
    SDK events in and out, int and timedelta durations, output_type, invoke of an SDK
    function, parallel steps."""
    async with eventbus.testing.running(sdk, functions=FUNCTIONS) as bus:
        (order,) = await bus.send(
            {"name": "shop/order.created", "data": {"id": "o-1", "total": 40}}
        )
        await bus.settle()
        bus.clock.advance(datetime.timedelta(hours=1))  # the timedelta sleep ends...
        await bus.settle()
        bus.clock.advance(datetime.timedelta(seconds=1))  # ...then the 1000 ms one
        await bus.settle()
        assert bus.runs(event_id=order)[0].status is eventbus.RunStatus.WAITING
        await bus.send({"name": "shop/order.shipped", "data": {"id": "o-1", "carrier": "ups"}})
        await bus.settle(advance_time=True)
        (run,) = bus.runs(event_id=order)
        assert run.status is eventbus.RunStatus.COMPLETED, run.error
        assert run.output == {
            "receipt": {"order": "o-1", "total": 40},
            "shipped": {"id": "o-1", "carrier": "ups"},
            "sent": 1,
            "tax": 4.0,
            "labels": ["label-1", "inv-1"],
            "run_id": run.run_id,
        }
        bus.assert_sent("shop/email", data={"id": "o-1"}, count=1)


async def test_the_sdk_configuration_is_applied() -> None:
    """Trigger expressions, cancel rules, retries and on_failure come from the SDK's
    registration config."""
    async with eventbus.testing.running(sdk, functions=FUNCTIONS) as bus:
        (free,) = await bus.send({"name": "shop/order.created", "data": {"id": "o-2", "total": 0}})
        assert [d.decision for d in bus.explain(free) if "checkout" in d.function_id] == [
            "expression false"
        ]
        (order,) = await bus.send({"name": "shop/order.created", "data": {"id": "o-3", "total": 9}})
        await bus.settle()
        await bus.send({"name": "shop/order.cancelled", "data": {"id": "o-3"}})
        await bus.settle()
        (run,) = bus.runs(event_id=order)
        assert run.status is eventbus.RunStatus.CANCELLED
        await bus.send({"name": "shop/flaky"})
        await bus.settle(advance_time=True)
        (failed,) = bus.runs("flaky")
        assert failed.status is eventbus.RunStatus.FAILED
        assert failed.attempts == 1  # retries=0
        assert bus.outputs("flaky-failure") == ["handled shop-flaky"]
    function = from_inngest(checkout)[0]
    assert (function.id, function.name, function.retries) == ("shop-checkout", "Checkout", 2)
    assert function.timeouts is not None
    assert function.timeouts.finish_ms == 2 * 86_400_000


async def test_sync_sdk_handlers_get_the_sync_step_api() -> None:
    """A def handler gets StepSync-style tools: positional args, naive sleep_until (local
    time, already past), invoke_by_id; ctx.attempt and ctx.events as in the SDK."""
    async with eventbus.testing.running(sdk, functions=FUNCTIONS) as bus:
        await bus.send({"name": "shop/sync"})
        await bus.settle(advance_time=True)
        assert bus.outputs("nightly-sync") == [
            {"rows": [0, 1, 2], "tax": 5.0, "attempt": 0, "events": 1}
        ]


async def test_race_mode_and_step_errors_come_through() -> None:
    """inngest.ParallelMode.RACE is honoured, and a failed step raises inngest-style
    StepError whose str() is the message."""
    app = inngest.Inngest(app_id="race", is_production=False)

    @app.create_function(fn_id="race", retries=0, trigger=inngest.TriggerEvent(event="app/go"))
    async def race(ctx: inngest.Context) -> list[Any]:
        winner = await ctx.group.parallel(
            (lambda: ctx.step.run("fast", lambda: "fast"), lambda: ctx.step.sleep("slow", 60_000)),
            parallel_mode=inngest.ParallelMode.RACE,
        )

        def boom() -> None:
            raise KeyError("missing")

        try:
            await ctx.step.run("boom", boom)
        except inngest.StepError as exc:  # SDK code gets the SDK's own StepError
            return [winner, exc.name, str(exc)]
        return [winner]

    async with eventbus.testing.running(app, functions=[race]) as bus:
        await bus.send({"name": "app/go"})
        await bus.settle(advance_time=True)
        # As in the SDK, RACE gives every branch's result (the sleep's is None).
        assert bus.outputs("race") == [[["fast", None], "KeyError", "'missing'"]]


async def test_an_sdk_function_runs_with_its_priority() -> None:
    """priority= of an SDK function orders its runs waiting for a concurrency slot."""
    app = inngest.Inngest(app_id="flow", is_production=False)
    started: list[int] = []

    @app.create_function(
        fn_id="queued",
        trigger=inngest.TriggerEvent(event="app/e"),
        concurrency=[inngest.Concurrency(limit=1)],
        priority=inngest.Priority(run="event.data.vip ? 60 : 0"),
    )
    async def queued(ctx: inngest.Context) -> None:
        started.append(ctx.event.data["n"])

    async with eventbus.testing.running(app, functions=[queued]) as bus:
        events = [{"name": "app/e", "data": {"n": n, "vip": n == 2}} for n in range(3)]
        await bus.send(events)
        await bus.settle()
    assert started == [0, 2, 1]


async def test_running_checks_what_it_is_given() -> None:
    """Wrong combinations of client and functions say what running() takes."""
    with pytest.raises(eventbus.UsageError, match="functions="):
        async with eventbus.testing.running(sdk):
            pass  # pragma: no cover
    with pytest.raises(eventbus.UsageError, match="for an official"):
        async with eventbus.testing.running(eventbus.Inngest("x"), functions=FUNCTIONS):
            pass  # pragma: no cover
    with pytest.raises(eventbus.UsageError, match=r"an eventbus\.Inngest or an inngest\.Inngest"):
        async with eventbus.testing.running(object()):
            pass  # pragma: no cover
    with pytest.raises(eventbus.FunctionConfigError, match="already"):
        async with eventbus.testing.running(sdk, functions=[checkout, checkout]):
            pass  # pragma: no cover


def test_unsupported_sdk_versions_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """An SDK version eventbus cannot read is a clear error naming the versions it can."""
    monkeypatch.setattr(_sdk, "sdk_version", lambda: "0.6.0")
    with pytest.raises(eventbus.UsageError, match=r"inngest 0\.6\.0; it supports inngest 0\.5\.x"):
        from_inngest(checkout)
    monkeypatch.setattr(_sdk, "sdk_version", lambda: "weird")
    with pytest.raises(eventbus.UsageError, match="weird"):
        from_inngest(checkout)


def test_from_inngest_takes_sdk_functions_only() -> None:
    """Anything else is refused by name."""
    with pytest.raises(eventbus.UsageError, match=r"takes an inngest\.Function"):
        from_inngest(lambda ctx: None)
    assert not _sdk.is_sdk_function(object())


async def test_send_takes_sdk_events() -> None:
    """client.send accepts inngest.Event values, alone or in a list."""
    client = eventbus.Inngest("plain", clock=eventbus.VirtualClock())
    async with client:
        one = await client.send(inngest.Event(name="app/one", data={"n": 1}))
        two = await client.send([inngest.Event(name="app/two", id="k"), {"name": "app/three"}])
        assert [e.name for e in client.events()] == ["app/one", "app/two", "app/three"]
        stored = client.get_event(two[0])
        assert stored is not None
        assert stored.id == "k"
    assert len(one) == 1
    await anyio.lowlevel.checkpoint()


async def test_output_type_needs_the_clients_serializer_as_in_the_sdk() -> None:
    """Without a serializer on the SDK client, output_type changes nothing (a dict comes
    back), exactly as the SDK behaves."""
    plain = inngest.Inngest(app_id="plain", is_production=False)

    @plain.create_function(fn_id="f", trigger=inngest.TriggerEvent(event="app/e"))
    def f(ctx: inngest.ContextSync) -> str:
        value = ctx.step.run("r", lambda: {"order": "o", "total": 1}, output_type=Receipt)
        return type(value).__name__

    async with eventbus.testing.running(plain, functions=[f]) as bus:
        await bus.send({"name": "app/e"})
        await bus.settle()
        assert bus.outputs("f") == ["dict"]


async def test_eventbus_steps_take_output_type_and_invoke_takes_v() -> None:
    """eventbus's own step.run(output_type=M) returns the model (a model result is stored
    as JSON), and invoke(v=...) versions the invocation event."""
    client = eventbus.Inngest("typed", clock=eventbus.VirtualClock())

    @client.create_function(fn_id="target", trigger=[])
    async def target(ctx: eventbus.Context) -> str | None:
        return ctx.event.v

    @client.create_function(fn_id="f", trigger=eventbus.TriggerEvent(event="app/e"))
    async def f(ctx: eventbus.Context) -> list[Any]:
        made = await ctx.step.run("made", lambda: Receipt(order="o", total=3), output_type=Receipt)
        loaded = await ctx.step.run(
            "loaded", lambda: {"order": "p", "total": 4}, output_type=Receipt
        )
        version = await ctx.step.invoke("call", function=target, v="2024-01")
        return [type(made).__name__, made.total, loaded.order, version]

    async with client:
        await client.send({"name": "app/e"})
        await client.settle()
        (run,) = client.runs(function_id="typed-f")
    assert run.output == ["Receipt", 3, "p", "2024-01"]
    assert run.steps[0].output == {"order": "o", "total": 3}


async def test_output_type_without_model_validate_is_refused() -> None:
    """output_type must be able to validate JSON; anything else fails clearly."""
    client = eventbus.Inngest("typed", clock=eventbus.VirtualClock())

    @client.create_function(fn_id="f", retries=0, trigger=eventbus.TriggerEvent(event="app/e"))
    async def f(ctx: eventbus.Context) -> None:
        await ctx.step.run("r", lambda: 1, output_type=int)

    async with client:
        await client.send({"name": "app/e"})
        await client.settle()
        (run,) = client.runs()
    assert run.error is not None
    assert "has no model_validate()" in run.error["message"]


def test_event_offers_the_sdk_models_methods() -> None:
    """model_dump, model_validate and from_raw behave as on inngest.Event."""
    ours = eventbus.Event("app/e", {"x": 1})
    theirs = inngest.Event(name="app/e", data={"x": 1})
    assert (
        ours.model_dump()
        == theirs.model_dump()
        == {
            "data": {"x": 1},
            "id": "",
            "name": "app/e",
            "ts": 0,
        }
    )
    assert eventbus.Event.model_validate({"name": "app/e", "data": {"x": 1}}) == ours
    assert eventbus.Event.model_validate(theirs) == ours
    assert eventbus.Event.model_validate(ours) is ours
    assert eventbus.Event.from_raw({"name": "app/e", "data": {"x": 1}}) == ours
    assert isinstance(eventbus.Event.from_raw({"data": {}}), eventbus.EventValidationError)
    assert isinstance(inngest.Event.from_raw({"data": {}}), Exception)  # the SDK does alike
    full = eventbus.Event("app/e", {}, id="k", ts=1_700_000_000_000, v="1", user={"u": 1})
    assert full.model_dump(mode="json") == {
        "data": {},
        "id": "k",
        "name": "app/e",
        "ts": 1_700_000_000_000,
        "v": "1",
        "user": {"u": 1},
    }
