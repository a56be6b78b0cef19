"""eventbus functions served by the official SDK: config conversion and parity."""

from __future__ import annotations

import datetime
from typing import Any

import inngest
import pytest
from inngest.experimental import mocked as official

import eventbus
import eventbus.testing
from eventbus.contrib.inngest import from_inngest, to_inngest
from eventbus.testing import mocked as ours
from tests.helpers import close_official_client

app = eventbus.Inngest("shop")
trace: list[str] = []


def charge(order_id: str, *, amount: int) -> dict[str, Any]:
    trace.append(f"charge:{order_id}:{amount}")
    return {"order": order_id, "charged": amount}


def make_doc(kind: str) -> str:
    trace.append(kind)
    return f"{kind}-1"


async def handle_failure(ctx: eventbus.Context) -> None:
    trace.append("failure")


@app.create_function(fn_id="compute-tax", trigger=[])
async def compute_tax(ctx: eventbus.Context) -> float:
    return float(ctx.event.data["amount"]) * 0.2


@app.create_function(
    fn_id="checkout",
    name="Checkout",
    trigger=eventbus.TriggerEvent(event="shop/order.created", expression="event.data.total > 0"),
    retries=2,
    cancel=[
        eventbus.Cancel(
            event="shop/order.cancelled", if_exp="async.data.id == event.data.id", timeout="1d"
        )
    ],
    timeouts=eventbus.Timeouts(finish="2h"),
    on_failure=handle_failure,
)
async def checkout(ctx: eventbus.Context) -> dict[str, Any]:
    receipt = await ctx.step.run(
        "charge", charge, ctx.event.data["id"], amount=ctx.event.data["total"]
    )
    await ctx.step.sleep("cool-off", "1h")
    shipped = await ctx.step.wait_for_event(
        "shipped", event="shop/order.shipped", match="data.id", timeout="7d"
    )
    await ctx.step.send_event("notify", eventbus.Event("shop/email", {"id": ctx.event.data["id"]}))
    tax = await ctx.step.invoke("tax", function=compute_tax, data={"amount": 10})
    a, b = await ctx.group.parallel(
        (
            lambda: ctx.step.run("label", make_doc, "label"),
            lambda: ctx.step.run("invoice", make_doc, "invoice"),
        )
    )
    return {
        "receipt": receipt,
        "carrier": shipped.data["carrier"] if shipped else None,
        "tax": tax,
        "docs": [a, b],
    }


@app.create_function(fn_id="report", trigger=eventbus.TriggerEvent(event="shop/report"))
def report(ctx: eventbus.ContextSync) -> dict[str, Any]:
    rows = ctx.step.run("rows", lambda n: list(range(n)), ctx.event.data["n"])
    ctx.step.sleep("pause", 1000)
    return {"rows": len(rows)}


SDK_CLIENTS: list[Any] = []


@app.create_function(fn_id="sync-flow", trigger=eventbus.TriggerEvent(event="shop/sync"))
def sync_flow(ctx: eventbus.ContextSync) -> dict[str, Any]:
    import datetime

    total = ctx.step.run("total", lambda a, *, b: a + b, 1, b=2)
    ctx.step.sleep_until("later", datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc))
    got = ctx.step.wait_for_event(
        "go", event="shop/go", if_exp="async.data.ok == true", timeout=60_000
    )
    ctx.step.send_event("notify", [{"name": "shop/email", "data": {}}])
    tax = ctx.step.invoke("tax", function=compute_tax, data={"amount": 5})
    by_id = ctx.step.invoke_by_id("tax-2", function_id="compute-tax", data={"amount": 1})
    first = ctx.group.parallel(
        (lambda: ctx.step.run("p1", lambda: "one"), lambda: ctx.step.run("p2", lambda: "two")),
        parallel_mode=eventbus.ParallelMode.WAIT,
    )
    return {
        "total": total,
        "go": got is not None,
        "tax": tax,
        "by_id": by_id,
        "parallel": list(first),
    }


def converted() -> dict[str, Any]:
    client = inngest.Inngest(app_id="shop", is_production=False)
    SDK_CLIENTS.append(client)
    return {f.id: f for f in to_inngest(app, client)}


def run_official(fn: Any, event: Any, **kwargs: Any) -> Any:
    """official.trigger, on an event loop that is closed afterwards (it leaves its own open),
    with a mock client that is closed afterwards too."""
    import asyncio

    mock_client = official.Inngest(app_id="test")
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return official.trigger(fn, event, mock_client, **kwargs)
    finally:
        asyncio.set_event_loop(None)
        loop.close()
        close_official_client(mock_client)


@pytest.fixture(autouse=True)
def _close_sdk_clients() -> Any:
    yield
    while SDK_CLIENTS:
        close_official_client(SDK_CLIENTS.pop())


def test_configuration_is_converted() -> None:
    """Ids, names, triggers with expressions, retries, cancel, timeouts, on_failure."""
    functions = converted()
    assert set(functions) == {"shop-compute-tax", "shop-checkout", "shop-report", "shop-sync-flow"}
    config = functions["shop-checkout"].get_config("http://127.0.0.1:8000/api/inngest")
    main = config.main.to_dict()
    assert main["name"] == "Checkout"
    assert main["triggers"] == [
        {"event": "shop/order.created", "expression": "event.data.total > 0"}
    ]
    assert main["cancel"] == [
        {"event": "shop/order.cancelled", "if": "async.data.id == event.data.id", "timeout": "1d"}
    ]
    assert main["timeouts"]["finish"] == "2h"
    assert main["timeouts"].get("start") is None
    assert next(iter(main["steps"].values()))["retries"] == {"attempts": 2}
    failure = config.on_failure.to_dict()
    assert failure["id"] == "shop-checkout-failure"
    assert failure["triggers"][0]["event"] == "inngest/function.failed"


def test_same_handler_same_result_on_both_engines() -> None:
    """The same handler and event give the same output and step executions in eventbus and
    in the official SDK (through each one's mocked runner, with the same stubs)."""
    event = {"name": "shop/order.created", "data": {"id": "o-1", "total": 40}}

    trace.clear()
    mine = ours.trigger(
        checkout,
        event,
        ours.Inngest(app_id="test"),
        step_stubs={
            "shipped": eventbus.Event("shop/order.shipped", {"carrier": "UPS"}),
            "tax": 2.0,
        },
    )
    my_trace = list(trace)

    trace.clear()
    theirs = run_official(
        converted()["shop-checkout"],
        inngest.Event(name=event["name"], data=event["data"]),
        step_stubs={
            "shipped": inngest.Event(name="shop/order.shipped", data={"carrier": "UPS"}),
            "tax": 2.0,
        },
    )
    their_trace = list(trace)

    assert mine.status is ours.Status.COMPLETED
    assert theirs.status is official.Status.COMPLETED, theirs.error
    assert (
        mine.output
        == theirs.output
        == {
            "receipt": {"order": "o-1", "charged": 40},
            "carrier": "UPS",
            "tax": 2.0,
            "docs": ["label-1", "invoice-1"],
        }
    )
    assert my_trace[0] == their_trace[0] == "charge:o-1:40"
    assert sorted(my_trace[1:]) == sorted(their_trace[1:]) == ["invoice", "label"]


def test_sync_handlers_run_on_the_sdk() -> None:
    """Sync handlers get the SDK's StepSync underneath."""
    theirs = run_official(
        converted()["shop-report"], inngest.Event(name="shop/report", data={"n": 3})
    )
    assert theirs.output == {"rows": 3}


def test_mixed_on_failure_is_refused() -> None:
    """The SDK needs a handler and its on_failure to be both async or both sync."""
    mixed = eventbus.Inngest("mixed")

    def sync_failure(ctx: eventbus.ContextSync) -> None:
        return None

    @mixed.create_function(
        fn_id="f", trigger=eventbus.TriggerEvent(event="a/b"), on_failure=sync_failure
    )
    async def f(ctx: eventbus.Context) -> None:
        return None

    sdk = inngest.Inngest(app_id="mixed", is_production=False)
    SDK_CLIENTS.append(sdk)
    with pytest.raises(eventbus.FunctionConfigError, match="both be async or both"):
        to_inngest(mixed, sdk)
    with pytest.raises(eventbus.FunctionConfigError, match=r"eventbus\.Inngest"):
        to_inngest("nope", sdk)


def test_sync_handler_parity_with_every_step_kind() -> None:
    """A sync handler using every step kind gives the same output on both engines."""
    stubs_ours = {"go": eventbus.Event("shop/go", {"ok": True}), "tax": 1.0, "tax-2": 0.2}
    stubs_theirs = {
        "go": inngest.Event(name="shop/go", data={"ok": True}),
        "tax": 1.0,
        "tax-2": 0.2,
    }
    mine = ours.trigger(
        sync_flow, {"name": "shop/sync"}, ours.Inngest(app_id="test"), step_stubs=stubs_ours
    )
    theirs = run_official(
        converted()["shop-sync-flow"], inngest.Event(name="shop/sync"), step_stubs=stubs_theirs
    )
    assert theirs.status is official.Status.COMPLETED, theirs.error
    assert (
        mine.output
        == theirs.output
        == {
            "total": 3,
            "go": True,
            "tax": 1.0,
            "by_id": 0.2,
            "parallel": ["one", "two"],
        }
    )


# ---------------------------------------------------------------- middleware and serializer


def _boxing(log: list[str], *, use_async: bool) -> Any:
    """An eventbus middleware that boxes step outputs and unboxes them on replay."""

    def transform_input(self: Any, ctx: Any, function: Any, steps: eventbus.StepMemos) -> None:
        log.append(f"in:{steps.size}")
        for memo in steps.values():
            if isinstance(memo.data, dict) and "boxed" in memo.data:
                memo.data = memo.data["boxed"]

    def transform_output(self: Any, result: eventbus.TransformOutputResult) -> None:
        step = None if result.step is None else result.step.op.value
        error = None if result.error is None else type(result.error).__name__
        log.append(f"out:{step}:{error}")
        if result.step is not None and result.has_output():
            result.output = {"boxed": result.output}
        if isinstance(result.error, KeyError):
            result.error = eventbus.NonRetriableError("no such key")

    def after_send_events(self: Any, result: eventbus.SendEventsResult) -> None:
        log.append(f"sent:{len(result.ids)}")

    if use_async:

        async def a_in(self: Any, *args: Any) -> None:
            transform_input(self, *args)

        async def a_out(self: Any, result: Any) -> None:
            transform_output(self, result)

        return type(
            "Boxing", (eventbus.Middleware,), {"transform_input": a_in, "transform_output": a_out}
        )
    return type(
        "Boxing",
        (eventbus.MiddlewareSync,),
        {
            "transform_input": transform_input,
            "transform_output": transform_output,
            "after_send_events": after_send_events,
        },
    )


@pytest.mark.parametrize("use_async", [False, True], ids=["sync-hooks", "async-hooks"])
def test_eventbus_middleware_runs_on_the_sdk(use_async: bool) -> None:
    """to_inngest gives the SDK the function's middleware (the client's first), wrapped so
    its hooks get eventbus's objects: memos it changes are what the handler replays."""
    log: list[str] = []
    box = _boxing(log, use_async=use_async)
    client = eventbus.Inngest("mw", middleware=[box])

    @client.create_function(fn_id="sum", trigger=eventbus.TriggerEvent(event="mw/sum"))
    async def total(ctx: eventbus.Context) -> int:
        price = await ctx.step.run("price", lambda: 40)
        return price + 2

    @client.create_function(fn_id="lookup", retries=0, trigger=eventbus.TriggerEvent(event="mw/k"))
    async def lookup(ctx: eventbus.Context) -> None:
        raise KeyError("sku")

    sdk = inngest.Inngest(app_id="mw", is_production=False)
    SDK_CLIENTS.append(sdk)
    functions = {f.id: f for f in to_inngest(client, sdk)}
    result = run_official(functions["mw-sum"], inngest.Event(name="mw/sum"))
    assert result.status is official.Status.COMPLETED, result.error
    assert result.output == 42
    # The SDK's mocked runner plans a step in one request and runs it in the next.
    assert log == [
        "in:0",
        "out:StepPlanned:None",
        "in:0",
        "out:StepRun:None",
        "in:1",
        "out:None:None",
    ]

    log.clear()
    failed = run_official(functions["mw-lookup"], inngest.Event(name="mw/k"))
    assert failed.status is official.Status.FAILED
    assert isinstance(failed.error, inngest.NonRetriableError)  # what the middleware put
    assert log == ["in:0", "out:None:KeyError"]


def test_step_output_type_and_serializer_carry_over_to_the_sdk() -> None:
    """The eventbus client's serializer applies to output_type on the SDK too."""
    pydantic = pytest.importorskip("pydantic")

    class Item(pydantic.BaseModel):  # type: ignore[name-defined,misc]
        sku: str

    for serializer in (None, eventbus.PydanticSerializer()):
        client = eventbus.Inngest("ser", serializer=serializer)
        plain = serializer is None

        @client.create_function(
            fn_id="item", trigger=eventbus.TriggerEvent(event="ser/i"), output_type=Item
        )
        async def item(ctx: eventbus.Context, plain: bool = plain) -> Any:
            made = await ctx.step.run("make", lambda: Item(sku="a"), output_type=Item)
            assert isinstance(made, Item)
            return made.model_dump() if plain else made

        sdk = inngest.Inngest(app_id="ser", is_production=False)
        SDK_CLIENTS.append(sdk)
        (fn,) = to_inngest(client, sdk)
        result = run_official(fn, inngest.Event(name="ser/i"))
        assert result.status is official.Status.COMPLETED, result.error
        assert result.output == {"sku": "a"}


def test_rate_limits_and_idempotency_cross_the_bridge_both_ways() -> None:
    """to_inngest registers them as the SDK would (its registration config), and
    functions from the SDK run with them on eventbus."""
    crm = eventbus.Inngest(app_id="crm")

    @crm.create_function(
        fn_id="limited",
        trigger=eventbus.TriggerEvent(event="crm/a"),
        rate_limit=eventbus.RateLimit(limit=5, period="1m", key="event.data.user"),
    )
    async def limited(ctx: eventbus.Context) -> None:
        return None

    @crm.create_function(
        fn_id="once", trigger=eventbus.TriggerEvent(event="crm/b"), idempotency="event.data.email"
    )
    async def once(ctx: eventbus.Context) -> None:
        return None

    @crm.create_function(
        fn_id="spaced",
        trigger=eventbus.TriggerEvent(event="crm/c"),
        throttle=eventbus.Throttle(limit=2, period="30s", burst=3, key="event.data.shop"),
        singleton=eventbus.Singleton(mode="cancel", key="event.data.shop"),
        debounce=eventbus.Debounce(period="5s", key="event.data.shop", timeout="1m"),
        concurrency=[
            eventbus.Concurrency(limit=4),
            eventbus.Concurrency(limit=1, key="event.data.shop", scope="env"),
        ],
    )
    async def spaced(ctx: eventbus.Context) -> None:
        return None

    sdk = inngest.Inngest(app_id="crm", is_production=False)
    SDK_CLIENTS.append(sdk)
    functions = {f.id: f for f in to_inngest(crm, sdk)}
    url = "http://127.0.0.1:8000/api/inngest"
    limited_config = functions["crm-limited"].get_config(url).main.to_dict()
    assert limited_config["rateLimit"] == {"key": "event.data.user", "limit": 5, "period": "1m"}
    once_config = functions["crm-once"].get_config(url).main.to_dict()
    assert once_config["idempotency"] == "event.data.email"
    spaced_config = functions["crm-spaced"].get_config(url).main.to_dict()
    assert spaced_config["throttle"] == {
        "key": "event.data.shop",
        "limit": 2,
        "period": "30s",
        "burst": 3,
    }
    assert spaced_config["singleton"] == {"key": "event.data.shop", "mode": "cancel"}
    assert spaced_config["debounce"] == {"key": "event.data.shop", "period": "5s", "timeout": "1m"}
    assert spaced_config["concurrency"] == [
        {"key": None, "limit": 4, "scope": "fn"},
        {"key": "event.data.shop", "limit": 1, "scope": "env"},
    ]

    # And back: the SDK's functions, converted, carry the same rules.
    for fn in functions.values():
        (function, *_) = from_inngest(fn)
        if function.local_id == "spaced":
            gate = function.throttle
            assert gate is not None
            assert (gate.limit, gate.period_ms, gate.burst, gate.key) == (
                2,
                30_000,
                3,
                "event.data.shop",
            )
            assert function.debounce is not None
            assert (function.debounce.period_ms, function.debounce.timeout_ms) == (5_000, 60_000)
            assert function.singleton is not None
            assert (function.singleton.mode, function.singleton.key) == (
                "cancel",
                "event.data.shop",
            )
            assert [(c.limit, c.key, c.scope) for c in function.concurrency] == [
                (4, None, "fn"),
                (1, "event.data.shop", "env"),
            ]
            continue
        rule = function.rate_limit
        assert rule is not None
        if function.local_id == "limited":
            assert (rule.limit, rule.period_ms, rule.key) == (5, 60_000, "event.data.user")
        else:
            assert rule.idempotency
            assert rule.key == "event.data.email"


@pytest.mark.anyio
async def test_an_sdk_function_runs_with_its_rate_limit() -> None:
    sdk = inngest.Inngest(app_id="crm", is_production=False)
    SDK_CLIENTS.append(sdk)

    @sdk.create_function(
        fn_id="sync",
        trigger=inngest.TriggerEvent(event="crm/contact.updated"),
        rate_limit=inngest.RateLimit(limit=1, period=datetime.timedelta(hours=1)),
    )
    async def sync(ctx: inngest.Context) -> str:
        return str(ctx.event.data["n"])

    async with eventbus.testing.running(sdk, functions=[sync]) as bus:
        for n in range(3):
            await bus.send({"name": "crm/contact.updated", "data": {"n": n}})
        await bus.settle()
        assert bus.outputs("sync") == ["0"]


@pytest.mark.anyio
async def test_an_sdk_function_runs_with_its_concurrency_limit() -> None:
    sdk = inngest.Inngest(app_id="crm", is_production=False)
    SDK_CLIENTS.append(sdk)
    order: list[str] = []

    @sdk.create_function(
        fn_id="sync",
        trigger=inngest.TriggerEvent(event="crm/contact.updated"),
        concurrency=[inngest.Concurrency(limit=1)],
    )
    async def sync(ctx: inngest.Context) -> None:
        n = ctx.event.data["n"]
        for i in range(2):
            await ctx.step.run(f"s{i}", lambda i=i: order.append(f"{n}.{i}"))

    async with eventbus.testing.running(sdk, functions=[sync]) as bus:
        for n in range(2):
            await bus.send({"name": "crm/contact.updated", "data": {"n": n}})
        await bus.settle()
    assert order == ["0.0", "1.0", "0.1", "1.1"]  # one step at a time, taking turns


def test_batching_and_priority_go_to_the_sdk_and_back() -> None:
    """batch_events= and priority= as the SDK registers them (checked against its
    config), and back."""
    crm = eventbus.Inngest("crm")

    @crm.create_function(
        fn_id="bulk",
        trigger=eventbus.TriggerEvent(event="crm/row"),
        batch_events=eventbus.Batch(
            max_size=50, timeout="5s", key="event.data.shop", if_exp="event.data.bulk"
        ),
    )
    async def bulk(ctx: eventbus.Context) -> None:
        return None

    @crm.create_function(
        fn_id="ranked",
        trigger=eventbus.TriggerEvent(event="crm/rank"),
        priority=eventbus.Priority(run="event.data.vip ? 120 : 0"),
    )
    async def ranked(ctx: eventbus.Context) -> None:
        return None

    sdk = inngest.Inngest(app_id="crm", is_production=False)
    SDK_CLIENTS.append(sdk)
    fn, ranked_fn = to_inngest(crm, sdk)
    ranked_config = ranked_fn.get_config("http://127.0.0.1:8000/api/inngest").main.to_dict()
    assert ranked_config["priority"] == {"run": "event.data.vip ? 120 : 0"}
    (back,) = from_inngest(ranked_fn)
    assert back.priority is not None
    assert back.priority.run == "event.data.vip ? 120 : 0"
    config = fn.get_config("http://127.0.0.1:8000/api/inngest").main.to_dict()
    assert config["batchEvents"] == {
        "maxSize": 50,
        "timeout": "5s",
        "key": "event.data.shop",
        "if": "event.data.bulk",
    }
    (function,) = from_inngest(fn)
    assert function.batch is not None
    assert (function.batch.max_size, function.batch.timeout_ms) == (50, 5_000)
    assert (function.batch.key, function.batch.if_exp) == ("event.data.shop", "event.data.bulk")


@pytest.mark.anyio
async def test_an_sdk_function_runs_with_its_batches() -> None:
    sdk = inngest.Inngest(app_id="crm", is_production=False)
    SDK_CLIENTS.append(sdk)

    @sdk.create_function(
        fn_id="bulk",
        trigger=inngest.TriggerEvent(event="crm/row"),
        batch_events=inngest.Batch(max_size=2, timeout=datetime.timedelta(seconds=5)),
    )
    async def bulk(ctx: inngest.Context) -> list[int]:
        assert ctx.event.data == ctx.events[0].data
        return [e.data["n"] for e in ctx.events]

    async with eventbus.testing.running(sdk, functions=[bulk]) as bus:
        for n in range(3):
            await bus.send({"name": "crm/row", "data": {"n": n}})
        await bus.settle()
        assert bus.outputs("bulk") == [[0, 1]]
        await bus.settle(advance_time=True)
        assert bus.outputs("bulk") == [[0, 1], [2]]


def test_ignore_takes_flow_control_option_names() -> None:
    sdk = inngest.Inngest(app_id="crm", is_production=False)
    SDK_CLIENTS.append(sdk)

    @sdk.create_function(
        fn_id="bulk",
        trigger=inngest.TriggerEvent(event="crm/row"),
        batch_events=inngest.Batch(max_size=2, timeout=5000),
    )
    async def bulk(ctx: inngest.Context) -> None:
        return None

    (function,) = from_inngest(bulk, ignore=("batch_events",))
    assert function.batch is None
    with pytest.raises(eventbus.UsageError, match="'batching'"):
        from_inngest(bulk, ignore=("batching",))
