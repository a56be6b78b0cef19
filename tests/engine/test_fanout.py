"""Sending events: ids, storage, fan-out and trigger matching."""

from __future__ import annotations

from typing import Any

import pytest

import eventbus
from eventbus._ids import CROCKFORD
from tests.helpers import make_client, on

pytestmark = pytest.mark.anyio


async def test_quick_start_example_completes_with_output() -> None:
    """The issue's quick start: one function, one event, a completed run with its output."""
    client = make_client()

    @client.create_function(fn_id="send-receipt", trigger=on("storefront/cart.checkout.completed"))
    async def send_receipt(ctx: eventbus.Context) -> dict[str, Any]:
        return {"cart": ctx.event.data["cartId"]}

    assert send_receipt.id == "test-app-send-receipt"
    async with client:
        ids = await client.send(
            {"name": "storefront/cart.checkout.completed", "data": {"cartId": "ed12c8bde"}}
        )
        await client.settle()
        run = client.runs(event_id=ids[0])[0]
    assert run.status is eventbus.RunStatus.COMPLETED
    assert run.output == {"cart": "ed12c8bde"}
    assert run.function_id == "test-app-send-receipt"
    assert run.event_ids == (ids[0],)
    assert run.attempts == 1
    assert run.started_at is not None
    assert run.ended_at is not None
    assert run.started_at <= run.ended_at


async def test_send_returns_one_ulid_per_event_in_order() -> None:
    """Ids are 26-character Crockford ULIDs, unique and in sending order."""
    client = make_client()
    async with client:
        ids = await client.send([{"name": f"app/e{i}"} for i in range(50)])
        ids += await client.send(eventbus.Event("app/last"))
    assert len(ids) == 51
    assert len(set(ids)) == 51
    assert ids == sorted(ids)
    assert all(len(i) == 26 and set(i) <= set(CROCKFORD) for i in ids)
    assert [e.name for e in client.events()] == [f"app/e{i}" for i in range(50)] + ["app/last"]


async def test_empty_send_returns_empty_list_and_stores_nothing() -> None:
    """send([]) does nothing, even when the engine is not running."""
    client = make_client()
    assert await client.send([]) == []
    assert client.send_sync(()) == []
    async with client:
        assert await client.send([]) == []
    assert client.events() == []


async def test_every_matching_function_runs_once_per_event() -> None:
    """Fan-out: each matching function gets its own run; others are not started."""
    client = make_client()
    seen: list[str] = []

    for name in ("a", "b", "c"):

        @client.create_function(fn_id=name, trigger=on("shop/order.created"))
        async def handler(ctx: eventbus.Context, name: str = name) -> str:
            seen.append(name)
            return name

    @client.create_function(fn_id="other", trigger=on("shop/order.cancelled"))
    async def other(ctx: eventbus.Context) -> None:
        seen.append("other")

    async with client:
        (event_id,) = await client.send({"name": "shop/order.created", "data": {}})
        await client.settle()
    assert sorted(seen) == ["a", "b", "c"]
    assert sorted(r.output for r in client.runs(event_id=event_id)) == ["a", "b", "c"]


async def test_several_matching_triggers_start_one_run() -> None:
    """A function whose triggers all match the event still runs once."""
    client = make_client()

    @client.create_function(
        fn_id="multi", trigger=[on("app/user.created"), on("app/*"), on("app/user.*")]
    )
    async def multi(ctx: eventbus.Context) -> None:
        return None

    async with client:
        (event_id,) = await client.send({"name": "app/user.created"})
        await client.settle()
    assert len(client.runs(event_id=event_id)) == 1


@pytest.mark.parametrize(
    ("trigger", "name", "expected"),
    [
        ("app/user.created", "app/user.created", True),
        ("app/user.created", "app/user.Created", False),
        ("app/*", "app/user.created", True),
        ("app/user.*", "app/user.created", True),
        ("app/user.*", "app/users", False),
        ("api/v1/*", "api/v1/users", True),
        ("a.*", "a.b/c.d", True),
        ("app/*", "other/app", False),
    ],
)
async def test_trigger_names_and_wildcards(trigger: str, name: str, expected: bool) -> None:
    """Exact names match case-sensitively; 'prefix/*' and 'prefix.*' match prefixes."""
    client = make_client()

    @client.create_function(fn_id="f", trigger=on(trigger))
    async def f(ctx: eventbus.Context) -> None:
        return None

    async with client:
        (event_id,) = await client.send({"name": name})
        await client.settle()
    assert bool(client.runs(event_id=event_id)) is expected


async def test_expression_filters_runs() -> None:
    """A trigger expression decides per event; a false or failing one starts no run."""
    client = make_client()

    @client.create_function(
        fn_id="big",
        trigger=on("shop/order", "event.data.total > 100 && event.data.currency == 'EUR'"),
    )
    async def big(ctx: eventbus.Context) -> float:
        return float(ctx.event.data["total"])

    async with client:
        ids = await client.send(
            [
                {"name": "shop/order", "data": {"total": 150, "currency": "EUR"}},
                {"name": "shop/order", "data": {"total": 50, "currency": "EUR"}},
                {"name": "shop/order", "data": {"total": 150, "currency": "USD"}},
                {"name": "shop/order", "data": {}},
                {"name": "shop/order", "data": {"total": "lots", "currency": "EUR"}},
            ]
        )
        await client.settle()
    assert [len(client.runs(event_id=i)) for i in ids] == [1, 0, 0, 0, 0]


async def test_expression_sees_event_fields() -> None:
    """Expressions see name, id, ts, user and v as Inngest's event map does."""
    client = make_client()

    @client.create_function(
        fn_id="f",
        trigger=on(
            "app/*",
            "event.name == 'app/x' && event.id == 'k1' && event.ts > 0 "
            "&& event.user.plan == 'pro' && event.v == '2'",
        ),
    )
    async def f(ctx: eventbus.Context) -> None:
        return None

    async with client:
        good, bad = await client.send(
            [
                {"name": "app/x", "id": "k1", "user": {"plan": "pro"}, "v": "2"},
                {"name": "app/x", "id": "k2", "user": {"plan": "pro"}, "v": "2"},
            ]
        )
        await client.settle()
    assert len(client.runs(event_id=good)) == 1
    assert client.runs(event_id=bad) == []


async def test_ctx_event_id_is_user_id_or_engine_id() -> None:
    """ctx.event.id is the user's id when given, else the id send returned (as on Inngest)."""
    client = make_client()
    seen: list[tuple[str | None, str]] = []

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> None:
        seen.append((ctx.event.id, ctx.run_id))
        assert ctx.events == [ctx.event]
        assert ctx.attempt == 0

    async with client:
        with_id, without_id = await client.send(
            [{"name": "app/e", "id": "mine"}, {"name": "app/e"}]
        )
        await client.settle()
    assert [s[0] for s in seen] == ["mine", without_id]
    stored = client.get_event(with_id)
    assert stored is not None
    assert stored.id == "mine"
    assert stored.internal_id == with_id
    assert {s[1] for s in seen} == {r.run_id for r in client.runs(function_id="test-app-f")}


async def test_stored_event_fields() -> None:
    """Stored events expose the event fields plus internal_id, received_at, deduplicated."""
    clock = eventbus.VirtualClock()
    client = make_client(clock=clock)
    async with client:
        (event_id,) = await client.send(
            {"name": "app/e", "data": {"a": (1, 2), "_inngest": {"x": 1}}, "ts": 1_700_000_000_000}
        )
    stored = client.get_event(event_id)
    assert stored is not None
    assert stored.name == "app/e"
    assert stored.data == {"a": [1, 2]}  # JSON round trip; _inngest stripped
    assert stored.ts == 1_700_000_000_000
    assert stored.user == {}
    assert stored.v is None
    assert stored.received_at == clock.now()
    assert stored.deduplicated is False
    assert isinstance(stored, eventbus.Event)
    assert "app/e" in repr(stored)
    assert stored.to_dict()["user"] == {}
    assert client.get_event("nope") is None


async def test_ts_defaults_to_client_clock() -> None:
    """An event without ts gets the client clock's now, in epoch milliseconds."""
    clock = eventbus.VirtualClock()
    client = make_client(clock=clock)
    async with client:
        (event_id,) = await client.send({"name": "app/e"})
    stored = client.get_event(event_id)
    assert stored is not None
    assert stored.ts == clock.now_ms()


async def test_accepted_data_is_a_copy() -> None:
    """Mutating a dict after sending it cannot change the accepted event."""
    client = make_client()
    payload: dict[str, Any] = {"name": "app/e", "data": {"items": [1]}}
    async with client:
        (event_id,) = await client.send(payload)
        payload["data"]["items"].append(2)
    stored = client.get_event(event_id)
    assert stored is not None
    assert stored.data == {"items": [1]}


async def test_events_filter_by_name_oldest_first() -> None:
    """client.events(name=...) filters and keeps arrival order."""
    client = make_client()
    async with client:
        await client.send([{"name": "a"}, {"name": "b"}, {"name": "a", "data": {"n": 2}}])
    assert [e.data for e in client.events(name="a")] == [{}, {"n": 2}]


async def test_one_failing_handler_does_not_disturb_others() -> None:
    """A handler that raises fails its own run; the other runs of the event complete."""
    client = make_client()

    @client.create_function(fn_id="bad", trigger=on("app/e"), retries=0)
    async def bad(ctx: eventbus.Context) -> None:
        raise RuntimeError("boom")

    @client.create_function(fn_id="good", trigger=on("app/e"))
    async def good(ctx: eventbus.Context) -> str:
        return "ok"

    async with client:
        (event_id,) = await client.send({"name": "app/e"})
        await client.settle()
    by_fn = {r.function_id: r for r in client.runs(event_id=event_id)}
    assert by_fn["test-app-bad"].status is eventbus.RunStatus.FAILED
    assert by_fn["test-app-good"].status is eventbus.RunStatus.COMPLETED
    assert client.runs(status=eventbus.RunStatus.FAILED) == [by_fn["test-app-bad"]]


async def test_suspending_handlers_run_concurrently() -> None:
    """Runs whose handlers wait do not hold up one another: all start before any finishes."""
    import anyio

    client = make_client()
    started: list[int] = []
    gate = anyio.Event()

    @client.create_function(fn_id="slow", trigger=on("app/e"))
    async def slow(ctx: eventbus.Context) -> int:
        started.append(ctx.event.data["n"])
        if len(started) == 20:
            gate.set()
        await gate.wait()
        return int(ctx.event.data["n"])

    async with client:
        await client.send([{"name": "app/e", "data": {"n": n}} for n in range(20)])
        await client.settle()
    assert sorted(started) == list(range(20))
    assert sorted(r.output for r in client.runs(function_id="test-app-slow")) == list(range(20))


async def test_many_quick_runs_complete() -> None:
    """Thousands of runs that never suspend all complete (the workers yield fairly)."""
    client = make_client()

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> int:
        return int(ctx.event.data["n"]) * 2

    async with client:
        for start in range(0, 3000, 1000):
            await client.send(
                [{"name": "app/e", "data": {"n": n}} for n in range(start, start + 1000)]
            )
        await client.settle()
    outputs = sorted(r.output for r in client.runs(function_id="test-app-f"))
    assert outputs == [n * 2 for n in range(3000)]


async def test_exiting_the_client_finishes_queued_runs() -> None:
    """Leaving `async with client` lets runs already queued finish first."""
    client = make_client()

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> str:
        return "done"

    async with client:
        await client.send([{"name": "app/e"}] * 5)
    assert [r.status for r in client.runs(function_id="test-app-f")] == [
        eventbus.RunStatus.COMPLETED
    ] * 5


async def test_a_busy_producer_lets_runs_execute() -> None:
    """A loop of sends that never awaits anything else still lets queued runs execute."""
    from eventbus._engine import BACKLOG_YIELD

    client = make_client()
    sent = 0
    seen_at: list[int] = []

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> None:
        seen_at.append(sent)

    async with client:
        for _ in range(4 * BACKLOG_YIELD):
            await client.send({"name": "app/e"})
            sent += 1
        assert seen_at, "no run executed while the producer was sending"
        assert min(seen_at) < 2 * BACKLOG_YIELD
        await client.settle()
    assert len(seen_at) == 4 * BACKLOG_YIELD
