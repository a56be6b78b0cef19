"""eventbus.testing.running: a fresh engine per test over an existing client."""

from __future__ import annotations

import datetime
from typing import Any

import anyio
import pytest

import eventbus
from eventbus.testing import Decision, running

pytestmark = pytest.mark.anyio

# A module-level client, as apps have them.
app = eventbus.Inngest(app_id="shop")
charged: list[Any] = []


def charge_card(order_id: str, amount: int) -> dict[str, Any]:
    charged.append((order_id, amount))
    return {"order": order_id, "charged": amount}


@app.create_function(
    fn_id="checkout",
    trigger=eventbus.TriggerEvent(event="shop/order.created", expression="event.data.total > 0"),
    retries=2,
)
async def checkout(ctx: eventbus.Context) -> dict[str, Any]:
    receipt = await ctx.step.run(
        "charge", charge_card, ctx.event.data["id"], ctx.event.data["total"]
    )
    shipped = await ctx.step.wait_for_event(
        "shipped", event="shop/order.shipped", match="data.id", timeout="7d"
    )
    await ctx.step.sleep("reminder-delay", "1d")
    await ctx.step.send_event(
        "remind", {"name": "shop/reminder", "data": {"id": ctx.event.data["id"]}}
    )
    tax = await ctx.step.invoke(
        "tax", function=compute_tax, data={"amount": ctx.event.data["total"]}
    )
    return {"receipt": receipt, "shipped": shipped is not None, "tax": tax}


@app.create_function(fn_id="compute-tax", trigger=[])
async def compute_tax(ctx: eventbus.Context) -> float:
    return float(ctx.event.data["amount"]) * 0.1


@pytest.fixture(autouse=True)
def _reset() -> None:
    charged.clear()


async def test_a_week_long_flow_takes_no_time() -> None:
    """The real engine on a virtual clock: a 7-day wait and a 1-day sleep, skipped."""
    async with running(app) as bus:
        start = bus.clock.now()
        await app.send({"name": "shop/order.created", "data": {"id": "o-1", "total": 50}})
        await bus.settle(advance_time=True)
        (run,) = bus.assert_ran("checkout")
        assert run.output == {
            "receipt": {"order": "o-1", "charged": 50},
            "shipped": False,
            "tax": 5.0,
        }
        assert bus.clock.now() - start == datetime.timedelta(days=8)
        bus.assert_sent("shop/reminder", by="checkout", count=1, data={"id": "o-1"})
    assert charged == [("o-1", 50)]


async def test_client_send_routes_to_the_test_engine_only_inside() -> None:
    """Inside running(), client.send reaches the test engine; outside, the client's own."""
    async with running(app) as bus:
        ids = await app.send({"name": "shop/other"})
        assert bus.get_event(ids[0]) is not None
    with pytest.raises(eventbus.EngineNotRunningError):
        await app.send({"name": "shop/other"})


async def test_engines_do_not_share_state() -> None:
    """Two test engines, even at once, have their own events, runs and dedup index."""
    results: dict[str, int] = {}

    async def one_test(name: str) -> None:
        async with running(app) as bus:
            await app.send(
                {"name": "shop/order.created", "id": "same-id", "data": {"id": name, "total": 1}}
            )
            await bus.settle(advance_time=True)
            results[name] = len(bus.runs("checkout"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(one_test, "a")
        tg.start_soon(one_test, "b")
    assert results == {"a": 1, "b": 1}


async def test_mocked_steps_receive_real_arguments() -> None:
    """mock_step replaces steps; callables see the real arguments; calls are recorded."""
    async with running(app, seed=7) as bus:
        seen: list[tuple[str, int]] = []

        def fake_charge(order_id: str, amount: int) -> dict[str, Any]:
            seen.append((order_id, amount))
            return {"order": order_id, "charged": 0}

        bus.mock_step("checkout", "charge", fake_charge)
        bus.mock_step(checkout, "shipped", {"name": "shop/order.shipped", "data": {"id": "o-2"}})
        bus.mock_step("shop-checkout", "tax", lambda data: data["amount"] * 100)
        await bus.send({"name": "shop/order.created", "data": {"id": "o-2", "total": 3}})
        await bus.settle(advance_time=True)
        assert bus.outputs("checkout") == [
            {"receipt": {"order": "o-2", "charged": 0}, "shipped": True, "tax": 300}
        ]
        (call,) = bus.step_calls("checkout", "charge")
        assert call.args == ("o-2", 3)
        assert call.mocked
        assert call.result == {"order": "o-2", "charged": 0}
        assert bus.runs("compute-tax") == []  # the invoke was mocked
    assert seen == [("o-2", 3)]
    assert charged == []


async def test_a_raising_mock_is_retried_like_a_failing_step() -> None:
    """A mock that raises goes through the engine's real retries, then StepError."""
    async with running(app) as bus:
        attempts: list[int] = []

        def declined(order_id: str, amount: int) -> None:
            attempts.append(amount)
            raise ConnectionError("card network down")

        bus.mock_step("checkout", "charge", declined)
        await bus.send({"name": "shop/order.created", "data": {"id": "o-3", "total": 9}})
        await bus.settle(advance_time=True)
        (run,) = bus.runs("checkout")
        assert run.status is eventbus.RunStatus.FAILED
        assert len(attempts) == 3  # 1 + retries=2
        assert [c.error is not None for c in bus.step_calls("checkout")] == [True, True, True]
        bus.clear_mocks()


async def test_wait_mock_none_means_timeout() -> None:
    """Mocking wait_for_event with None behaves like its timeout."""
    async with running(app) as bus:
        bus.mock_step("checkout", "shipped", None)
        await bus.send({"name": "shop/order.created", "data": {"id": "o-4", "total": 1}})
        await bus.settle(advance_time=True)
        assert bus.outputs("checkout")[0]["shipped"] is False


async def test_capture_and_drain() -> None:
    """Captured runs are recorded but not executed until drained."""
    async with running(app) as bus:
        bus.capture("checkout")
        await bus.send(
            [{"name": "shop/order.created", "data": {"id": f"o-{i}", "total": 1}} for i in range(3)]
        )
        await bus.settle()
        captured = bus.captured("checkout")
        assert [r.event.data["id"] for r in captured] == ["o-0", "o-1", "o-2"]
        assert charged == []
        drained = await bus.drain("checkout", advance_time=True)
        assert len(drained) == 3
        assert sorted(o for o, _ in charged) == ["o-0", "o-1", "o-2"]
        assert bus.captured("checkout") == []
        bus.capture("checkout")
        await bus.send({"name": "shop/order.created", "data": {"id": "o-9", "total": 1}})
        bus.clear_captured("checkout")
        assert bus.captured("checkout") == []


async def test_explain_says_why_each_function_did_or_did_not_run() -> None:
    """explain() gives one decision per function for an event."""
    async with running(app) as bus:
        started, filtered, dup = (
            await bus.send(
                {"name": "shop/order.created", "id": "k", "data": {"id": "1", "total": 5}}
            ),
            await bus.send({"name": "shop/order.created", "data": {"id": "2", "total": 0}}),
            await bus.send(
                {"name": "shop/order.created", "id": "k", "data": {"id": "3", "total": 5}}
            ),
        )
        await bus.settle(advance_time=True)
        decisions = {d.function_id: d for d in bus.explain(started[0])}
        assert decisions["shop-checkout"].decision == "started run"
        assert decisions["shop-checkout"].detail == bus.runs("checkout")[0].run_id
        assert decisions["shop-compute-tax"] == Decision(
            "shop-compute-tax", "no trigger matched", "none (invoke only)"
        )
        (why_not,) = [d for d in bus.explain(filtered[0]) if d.function_id == "shop-checkout"]
        assert why_not.decision == "expression false"
        assert why_not.detail == "event.data.total > 0"
        assert str(why_not) == "shop-checkout: expression false (event.data.total > 0)"
        (deduplicated,) = [d for d in bus.explain(dup[0]) if d.function_id == "shop-checkout"]
        assert deduplicated.decision == "deduplicated"
        assert deduplicated.detail == started[0]


async def test_assertion_failures_explain_themselves() -> None:
    """Failed assertions list the runs and events."""
    async with running(app) as bus:
        await bus.send({"name": "shop/nothing"})
        with pytest.raises(
            AssertionError, match=r"expected some 'shop/reminder'[\s\S]*shop/nothing"
        ):
            bus.assert_sent("shop/reminder")
        with pytest.raises(AssertionError, match="expected 2 COMPLETED run"):
            bus.assert_ran("checkout", count=2)
        with pytest.raises(eventbus.UsageError, match="known fn_ids: checkout, compute-tax"):
            bus.runs("nope")
        with pytest.raises(eventbus.UsageError, match="no run"):
            bus.cancel("nope")
        assert "eventbus.testing.Bus" in repr(bus)
        assert await bus.send([]) == []
    with pytest.raises(eventbus.UsageError, match=r"eventbus\.Inngest"):
        async with running("app"):  # type: ignore[arg-type]
            pass


# An app whose interleaving is visible: five functions on one event, each with parallel
# branches that yield to the event loop between steps.
order_app = eventbus.Inngest(app_id="order")
trace: list[str] = []

for _name in "abcde":

    @order_app.create_function(fn_id=_name, trigger=eventbus.TriggerEvent(event="order/go"))
    async def _traced(ctx: eventbus.Context, name: str = _name) -> None:
        async def branch(tag: str) -> None:
            trace.append(f"{name}{tag}:start")
            await anyio.lowlevel.checkpoint()
            await ctx.step.run(f"step-{tag}", lambda: trace.append(f"{name}{tag}:step"))

        await ctx.group.parallel((lambda: branch("1"), lambda: branch("2")))


async def interleaving(seed: int) -> list[str]:
    trace.clear()
    async with running(order_app, seed=seed) as bus:
        await bus.send({"name": "order/go"})
        await bus.settle()
    return list(trace)


async def test_a_seed_reproduces_an_interleaving() -> None:
    """The same seed gives the same interleaving; different seeds explore others."""
    first = await interleaving(seed=42)
    assert await interleaving(seed=42) == first
    assert len(first) == 20
    others = {tuple(await interleaving(seed=s)) for s in range(1, 8)}
    assert len(others) > 1


async def test_a_send_through_a_stopped_test_engine_is_refused() -> None:
    """A task that outlives its running() block and sends through its route is told the
    engine has stopped, instead of its events going into a stopped engine."""
    client = eventbus.Inngest("late", clock=eventbus.VirtualClock())
    async with running(client) as bus:
        engine = bus.engine
    with pytest.raises(eventbus.EngineNotRunningError, match="has stopped"):
        await engine.send_batch(client._validate({"name": "app/late"}))
    assert engine.events() == []
