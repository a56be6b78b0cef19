"""concurrency=, as Inngest applies it (reference §5.2): a bound on the steps executing at
once per key, not on runs in progress; checked by recording overlapping step executions."""

from __future__ import annotations

import datetime
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.lowlevel import checkpoint
from hypothesis import given, settings
from hypothesis import strategies as st

import eventbus
from eventbus.stores import SqliteStore
from eventbus.testing import running

pytestmark = pytest.mark.anyio

T0 = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)


class Overlap:
    """Records step executions: how many ran at once, overall and per key, and the
    order they started in."""

    def __init__(self) -> None:
        self.now: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.starts: list[str] = []

    async def step(self, label: str, *keys: str, turns: int = 3) -> str:
        for key in ("*", *keys):
            self.now[key] += 1
            self.peak[key] = max(self.peak[key], self.now[key])
        self.starts.append(label)
        for _ in range(turns):  # let every other ready task run meanwhile
            await checkpoint()
        for key in ("*", *keys):
            self.now[key] -= 1
        return label


def app_with(overlap: Overlap, steps: int = 2, **options: Any) -> eventbus.Inngest:
    app = eventbus.Inngest("shop", clock=eventbus.VirtualClock(start=T0))

    @app.create_function(
        fn_id="sync-orders", trigger=eventbus.TriggerEvent(event="shop/order"), **options
    )
    async def sync_orders(ctx: eventbus.Context) -> list[str]:
        n, customer = ctx.event.data["n"], ctx.event.data.get("customer", "")
        return [
            await ctx.step.run(f"s{i}", overlap.step, f"{n}.{i}", customer) for i in range(steps)
        ]

    return app


async def test_limit_bounds_the_steps_executing_at_once() -> None:
    overlap = Overlap()
    app = app_with(overlap, concurrency=[eventbus.Concurrency(limit=2)])
    async with running(app) as bus:
        for n in range(6):
            await bus.send({"name": "shop/order", "data": {"n": n}})
        await bus.settle()
        assert overlap.peak["*"] == 2  # reached, never passed
        assert [r.status for r in bus.runs()] == [eventbus.RunStatus.COMPLETED] * 6
        assert sorted(bus.outputs("sync-orders")) == [[f"{n}.0", f"{n}.1"] for n in range(6)]


async def test_without_a_limit_every_run_overlaps() -> None:
    """The control: the same runs without concurrency= all execute at once."""
    overlap = Overlap()
    app = app_with(overlap)
    async with running(app) as bus:
        for n in range(6):
            await bus.send({"name": "shop/order", "data": {"n": n}})
        await bus.settle()
    assert overlap.peak["*"] == 6


async def test_a_limit_of_0_is_no_limit_and_an_int_is_a_limit() -> None:
    for option, peak in ((0, 4), (1, 1), ([eventbus.Concurrency(limit=0)], 4)):
        overlap = Overlap()
        app = app_with(overlap, concurrency=option)
        async with running(app) as bus:
            for n in range(4):
                await bus.send({"name": "shop/order", "data": {"n": n}})
            await bus.settle()
        assert overlap.peak["*"] == peak, option


async def test_runs_take_turns_step_by_step_in_fifo_order() -> None:
    """Each step is a queue item on Inngest: with a limit of 1, a run's next step goes
    behind the runs that were already waiting."""
    overlap = Overlap()
    app = app_with(overlap, steps=3, concurrency=[eventbus.Concurrency(limit=1)])
    async with running(app) as bus:
        for n in range(3):
            await bus.send({"name": "shop/order", "data": {"n": n}})
        await bus.settle()
    assert overlap.peak["*"] == 1
    assert overlap.starts == ["0.0", "1.0", "2.0", "0.1", "1.1", "2.1", "0.2", "1.2", "2.2"]


async def test_keys_limit_each_customer_apart() -> None:
    overlap = Overlap()
    app = app_with(overlap, concurrency=[eventbus.Concurrency(limit=1, key="event.data.customer")])
    async with running(app) as bus:
        for n in range(8):
            await bus.send({"name": "shop/order", "data": {"n": n, "customer": "ab"[n % 2]}})
        await bus.settle()
    assert overlap.peak["a"] == 1
    assert overlap.peak["b"] == 1
    assert overlap.peak["*"] == 2


async def test_a_missing_key_field_is_one_false_bucket() -> None:
    overlap = Overlap()
    app = app_with(overlap, concurrency=[eventbus.Concurrency(limit=1, key="event.data.customer")])
    async with running(app) as bus:
        for n in range(4):
            await bus.send({"name": "shop/order", "data": {"n": n}})
        await bus.settle()
    assert overlap.peak["*"] == 1


async def test_two_constraints_a_step_starts_only_if_it_fits_both() -> None:
    overlap = Overlap()
    app = app_with(
        overlap,
        concurrency=[
            eventbus.Concurrency(limit=3),
            eventbus.Concurrency(limit=1, key="event.data.customer"),
        ],
    )
    async with running(app) as bus:
        for n in range(12):
            await bus.send({"name": "shop/order", "data": {"n": n, "customer": "abcd"[n % 4]}})
        await bus.settle()
        assert len(bus.runs(status=eventbus.RunStatus.COMPLETED)) == 12
    assert overlap.peak["*"] == 3
    assert all(overlap.peak[c] == 1 for c in "abcd")


@pytest.mark.parametrize(("scope", "peak_x"), [("env", 1), ("account", 1), ("fn", 2)])
async def test_env_and_account_scopes_share_a_key_across_functions_fn_does_not(
    scope: str, peak_x: int
) -> None:
    overlap = Overlap()
    app = eventbus.Inngest("shop", clock=eventbus.VirtualClock(start=T0))
    limits = [eventbus.Concurrency(limit=1, key="event.data.account", scope=scope)]  # type: ignore[arg-type]
    for fn_id in ("import-orders", "import-refunds"):

        @app.create_function(
            fn_id=fn_id, trigger=eventbus.TriggerEvent(event="shop/import"), concurrency=limits
        )
        async def handler(ctx: eventbus.Context, fn_id: str = fn_id) -> str:
            return await ctx.step.run("call", overlap.step, fn_id, ctx.event.data["account"])

    async with running(app) as bus:
        for account in ("x", "x", "y"):
            await bus.send({"name": "shop/import", "data": {"account": account}})
        await bus.settle()
        assert len(bus.runs(status=eventbus.RunStatus.COMPLETED)) == 6
    # env/account: four runs of two functions on x, one at a time; fn: one per function.
    assert overlap.peak["x"] == peak_x
    assert overlap.peak["y"] == peak_x
    assert overlap.peak["*"] == 2 * peak_x  # y alongside x


async def test_sleeping_and_waiting_runs_hold_no_slot() -> None:
    app = eventbus.Inngest("shop", clock=eventbus.VirtualClock(start=T0))
    order: list[str] = []

    @app.create_function(
        fn_id="remind",
        trigger=eventbus.TriggerEvent(event="shop/order"),
        concurrency=[eventbus.Concurrency(limit=1)],
    )
    async def remind(ctx: eventbus.Context) -> None:
        n = ctx.event.data["n"]
        await ctx.step.run("before", order.append, f"{n} before")
        if n == 0:
            await ctx.step.sleep("nap", datetime.timedelta(hours=1))
        else:
            await ctx.step.wait_for_event("paid", event="shop/paid", timeout="1h")
        await ctx.step.run("after", order.append, f"{n} after")

    async with running(app) as bus:
        await bus.send({"name": "shop/order", "data": {"n": 0}})
        await bus.send({"name": "shop/order", "data": {"n": 1}})
        await bus.settle()
        assert order == ["0 before", "1 before"]  # 0 sleeps: 1 went ahead
        await bus.send({"name": "shop/paid"})
        await bus.settle()
        assert order == ["0 before", "1 before", "1 after"]
        await bus.settle(advance_time=True)
        assert order[-1] == "0 after"


async def test_a_run_waiting_for_its_retry_holds_no_slot() -> None:
    app = eventbus.Inngest("shop", clock=eventbus.VirtualClock(start=T0))
    calls: list[int] = []

    def flaky(n: int) -> int:
        calls.append(n)
        if n == 0 and calls.count(0) == 1:
            raise ConnectionError("first attempt fails")
        return n

    @app.create_function(
        fn_id="flaky",
        trigger=eventbus.TriggerEvent(event="shop/order"),
        concurrency=[eventbus.Concurrency(limit=1)],
    )
    async def handler(ctx: eventbus.Context) -> int:
        return await ctx.step.run("call", flaky, ctx.event.data["n"])

    async with running(app) as bus:
        for n in range(3):
            await bus.send({"name": "shop/order", "data": {"n": n}})
        await bus.settle()
        assert calls == [0, 1, 2]  # 0 backs off; the others do not wait for it
        await bus.settle(advance_time=True)
        assert calls == [0, 1, 2, 0]
        assert sorted(bus.outputs("flaky")) == [0, 1, 2]


@pytest.mark.parametrize(("limit", "peak"), [(1, 1), (2, 2), (5, 4)])
async def test_parallel_steps_take_a_slot_each(limit: int, peak: int) -> None:
    overlap = Overlap()
    app = eventbus.Inngest("shop", clock=eventbus.VirtualClock(start=T0))

    @app.create_function(
        fn_id="fan",
        trigger=eventbus.TriggerEvent(event="shop/fan"),
        concurrency=[eventbus.Concurrency(limit=limit)],
    )
    async def fan(ctx: eventbus.Context) -> tuple[Any, ...]:
        return await ctx.group.parallel(
            tuple(
                (lambda i=i: ctx.step.run(f"p{i}", overlap.step, f"p{i}", turns=5))
                for i in range(4)
            )
        )

    async with running(app) as bus:
        await bus.send({"name": "shop/fan"})
        await bus.settle()
        (run,) = bus.runs()
        assert run.output == ["p0", "p1", "p2", "p3"]
    assert overlap.peak["*"] == peak


async def test_parallel_steps_of_two_runs_share_the_limit() -> None:
    overlap = Overlap()
    app = eventbus.Inngest("shop", clock=eventbus.VirtualClock(start=T0))

    @app.create_function(
        fn_id="fan",
        trigger=eventbus.TriggerEvent(event="shop/fan"),
        concurrency=[eventbus.Concurrency(limit=3)],
    )
    async def fan(ctx: eventbus.Context) -> tuple[Any, ...]:
        n = ctx.event.data["n"]
        return await ctx.group.parallel(
            tuple(
                (lambda i=i: ctx.step.run(f"p{i}", overlap.step, f"{n}.{i}", turns=5))
                for i in range(3)
            )
        )

    async with running(app) as bus:
        for n in range(3):
            await bus.send({"name": "shop/fan", "data": {"n": n}})
        await bus.settle()
        assert len(bus.runs(status=eventbus.RunStatus.COMPLETED)) == 3
    assert overlap.peak["*"] == 3


async def test_explain_says_a_run_waits_for_a_slot() -> None:
    overlap = Overlap()
    app = app_with(overlap, concurrency=[eventbus.Concurrency(limit=1, key="event.data.customer")])
    async with running(app) as bus:
        first = await bus.send({"name": "shop/order", "data": {"n": 0, "customer": "c1"}})
        second = await bus.send({"name": "shop/order", "data": {"n": 1, "customer": "c1"}})
        await bus.settle()
        assert [d.decision for d in bus.explain(first[0])] == ["started run"]
        started, waited = bus.explain(second[0])
        assert started.decision == "started run"
        assert waited.decision == "waiting for a concurrency slot"
        assert "key 'c1' has its limit of 1 executing" in waited.detail
        assert waited.detail.startswith(f"run {started.detail}")


async def test_a_run_cancelled_while_it_waits_gives_its_turn_on() -> None:
    app = eventbus.Inngest("shop", clock=eventbus.VirtualClock(start=T0))
    gate = anyio.Event()
    done: list[int] = []

    async def work(n: int) -> int:
        if n == 0:
            await gate.wait()
        done.append(n)
        return n

    @app.create_function(
        fn_id="one-at-a-time",
        trigger=eventbus.TriggerEvent(event="shop/order"),
        concurrency=[eventbus.Concurrency(limit=1)],
    )
    async def handler(ctx: eventbus.Context) -> int:
        return await ctx.step.run("work", work, ctx.event.data["n"])

    async with running(app) as bus, anyio.create_task_group() as tg:
        for n in range(3):
            await bus.send({"name": "shop/order", "data": {"n": n}})
        tg.start_soon(bus.settle)
        for _ in range(10):
            await checkpoint()
        waiting = [r for r in bus.runs() if r.event.data["n"] == 1]
        assert bus.cancel(waiting[0].run_id)
        gate.set()
        await bus.settle()
        assert done == [0, 2]
        assert waiting[0].status is eventbus.RunStatus.CANCELLED


async def test_sync_handlers_take_turns_too() -> None:
    app = eventbus.Inngest("shop", clock=eventbus.VirtualClock(start=T0))
    order: list[str] = []

    @app.create_function(
        fn_id="sync",
        trigger=eventbus.TriggerEvent(event="shop/order"),
        concurrency=[eventbus.Concurrency(limit=1)],
    )
    def handler(ctx: eventbus.ContextSync) -> list[str]:
        n = ctx.event.data["n"]
        return [
            ctx.step.run(f"s{i}", lambda i=i: order.append(f"{n}.{i}") or f"{n}.{i}")
            for i in range(2)
        ]

    async with running(app) as bus:
        for n in range(2):
            await bus.send({"name": "shop/order", "data": {"n": n}})
        await bus.settle()
        assert sorted(bus.outputs("sync")) == [["0.0", "0.1"], ["1.0", "1.1"]]
    assert order == ["0.0", "1.0", "0.1", "1.1"]  # each step once, taking turns


async def test_runs_waiting_for_slots_survive_a_restart(tmp_path: Path) -> None:
    overlap = Overlap()
    app = app_with(overlap, concurrency=[eventbus.Concurrency(limit=1)])
    store = SqliteStore(tmp_path / "app.db")
    async with running(app, store=store) as bus:
        bus.crash_after("sync-orders", "s0")
        # One send: its commit is done before any of its runs can start (and crash the
        # engine), so the send itself never meets the crash.
        await bus.send([{"name": "shop/order", "data": {"n": n}} for n in range(3)])
        await bus.settle()
        assert bus.crashed
        await bus.restart()
        await bus.settle()
        assert sorted(bus.outputs("sync-orders")) == [[f"{n}.0", f"{n}.1"] for n in range(3)]
    assert overlap.peak["*"] == 1


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ([eventbus.Concurrency(limit=1)] * 3, "3 concurrency constraints is more than"),
        ([eventbus.Concurrency(limit=-1)], "must not be negative"),
        (
            [eventbus.Concurrency(limit=1, scope="env")],
            "a concurrency key must be specified for env scoped limits",
        ),
        (
            [eventbus.Concurrency(limit=1, scope="account", key="")],
            "a concurrency key must be specified for account scoped limits",
        ),
        ([eventbus.Concurrency(limit=1, scope="app")], "scope must be 'fn', 'env' or 'account'"),  # type: ignore[arg-type]
        ([eventbus.Concurrency(limit=1, key="event.data.")], "concurrency key"),
        (["five"], "concurrency must be a list of eventbus.Concurrency"),
        (True, "concurrency must be a list of eventbus.Concurrency"),
    ],
)
def test_invalid_concurrency_is_refused_at_create_function(option: Any, message: str) -> None:
    app = eventbus.Inngest("shop")
    with pytest.raises(eventbus.FunctionConfigError, match=message):
        app.create_function(fn_id="f", trigger=eventbus.TriggerEvent(event="e"), concurrency=option)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@settings(max_examples=40, deadline=None)
@given(
    limit=st.integers(1, 4),
    keyed=st.booleans(),
    runs=st.lists(st.tuples(st.sampled_from("abc"), st.integers(1, 3)), min_size=1, max_size=10),
    turns=st.integers(0, 4),
)
def test_model_no_key_ever_passes_its_limit_and_every_run_completes(
    backend: str, limit: int, keyed: bool, runs: list[tuple[str, int]], turns: int
) -> None:
    """The rule against a model: at no moment more than ``limit`` steps of one key
    execute; every run completes; and with one key the first steps start in send order
    (that the limit is used, no waiter ever fitting, is the model test of
    eventbus._flow.Slots in tests/test_flow.py)."""

    async def main() -> None:
        overlap = Overlap()
        app = eventbus.Inngest("shop", clock=eventbus.VirtualClock(start=T0))
        key = "event.data.customer" if keyed else None

        @app.create_function(
            fn_id="f",
            trigger=eventbus.TriggerEvent(event="shop/order"),
            concurrency=[eventbus.Concurrency(limit=limit, key=key)],
        )
        async def handler(ctx: eventbus.Context) -> int:
            data = ctx.event.data
            for i in range(data["steps"]):
                label = f"{data['n']}.{i}"
                await ctx.step.run(label, overlap.step, label, data["customer"], turns=turns)
            return int(data["n"])

        async with running(app) as bus:
            for n, (customer, steps) in enumerate(runs):
                await bus.send(
                    {"name": "shop/order", "data": {"n": n, "customer": customer, "steps": steps}}
                )
            await bus.settle()
            assert sorted(bus.outputs("f")) == list(range(len(runs)))
        per_key: Counter[str] = Counter(customer for customer, _ in runs)
        if keyed:
            for customer, count in per_key.items():
                assert overlap.peak[customer] <= min(limit, count)
        else:
            assert overlap.peak["*"] <= min(limit, len(runs))
            first = [label for label in overlap.starts if label.endswith(".0")]
            assert first == [f"{n}.0" for n in range(len(runs))]  # FIFO

    anyio.run(main, backend=backend)


async def test_cancelling_a_run_whose_parallel_steps_wait_for_its_slot() -> None:
    app = eventbus.Inngest("shop", clock=eventbus.VirtualClock(start=T0))
    gate = anyio.Event()
    ran: list[int] = []

    async def work(i: int) -> int:
        ran.append(i)
        await gate.wait()
        return i

    @app.create_function(
        fn_id="fan",
        trigger=eventbus.TriggerEvent(event="shop/fan"),
        concurrency=[eventbus.Concurrency(limit=1)],
    )
    async def fan(ctx: eventbus.Context) -> tuple[Any, ...]:
        return await ctx.group.parallel(
            tuple((lambda i=i: ctx.step.run(f"p{i}", work, i)) for i in range(3))
        )

    async with running(app) as bus, anyio.create_task_group() as tg:
        await bus.send({"name": "shop/fan"})
        tg.start_soon(bus.settle)
        for _ in range(10):
            await checkpoint()
        (run,) = bus.runs()
        assert len(ran) == 1  # the others wait for the run's slot
        assert bus.cancel(run.run_id)
        await bus.settle()
        assert run.status is eventbus.RunStatus.CANCELLED
        assert len(ran) == 1
        # The slot is free again: a new run goes through.
        gate.set()
        await bus.send({"name": "shop/fan"})
        await bus.settle()
        assert [r.status for r in bus.runs()].count(eventbus.RunStatus.COMPLETED) == 1
