"""singleton=, as Inngest applies it (reference §5.8): at most one active run per key;
"skip" new runs while one is active (retrying included), or "cancel" the active one."""

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


def report_app(mode: str, key: str | None = None, **options: Any) -> eventbus.Inngest:
    app = eventbus.Inngest("shop", **options)

    @app.create_function(
        fn_id="report",
        trigger=eventbus.TriggerEvent(event="report/requested"),
        singleton=eventbus.Singleton(mode=mode, key=key),  # type: ignore[arg-type]
        retries=1,
    )
    async def report(ctx: eventbus.Context) -> Any:
        await ctx.step.sleep("build", "10m")
        if ctx.event.data.get("flaky") and ctx.attempt == 0:
            raise RuntimeError("flaky")
        return ctx.event.data["n"]

    return app


async def test_skip_keeps_the_active_run_and_skips_the_new_ones() -> None:
    app = report_app("skip")
    async with running(app, eventbus.VirtualClock(start=T0)) as bus:
        first = await bus.send({"name": "report/requested", "data": {"n": 1}})
        second = await bus.send({"name": "report/requested", "data": {"n": 2}})
        await bus.settle(advance_time=True)
        assert bus.outputs("report") == [1]
        [why] = bus.explain(second[0])
        assert why.decision == "skipped by singleton"
        assert bus.runs("report")[0].run_id in why.detail
        assert bus.explain(first[0])[0].decision == "started run"
        await bus.send({"name": "report/requested", "data": {"n": 3}})  # the slot is free
        await bus.settle(advance_time=True)
        assert bus.outputs("report") == [1, 3]


async def test_skip_while_the_active_run_retries() -> None:
    app = report_app("skip")
    async with running(app, eventbus.VirtualClock(start=T0)) as bus:
        await bus.send({"name": "report/requested", "data": {"n": 1, "flaky": True}})
        await bus.settle()
        bus.clock.advance(datetime.timedelta(minutes=10))  # it fails, and waits to retry
        await bus.settle()
        assert bus.runs("report")[0].attempts == 1
        await bus.send({"name": "report/requested", "data": {"n": 2}})
        await bus.settle(advance_time=True)
        assert bus.outputs("report") == [1]


async def test_cancel_ends_the_active_run_and_starts_the_new_one() -> None:
    app = report_app("cancel")
    async with running(app, eventbus.VirtualClock(start=T0)) as bus:
        first = await bus.send({"name": "report/requested", "data": {"n": 1}})
        await bus.settle()
        await bus.send({"name": "report/requested", "data": {"n": 2}})
        await bus.settle(advance_time=True)
        old, new = bus.runs("report")
        assert old.status is eventbus.RunStatus.CANCELLED
        assert new.output == 2
        [cancelled] = bus.events("inngest/function.cancelled")
        assert cancelled.data["run_id"] == old.run_id
        assert [d.decision for d in bus.explain(first[0])] == [
            "started run",
            "cancelled by singleton",
        ]


async def test_keys_hold_apart_and_a_false_key_is_not_a_singleton() -> None:
    app = report_app("skip", key="event.data.account")
    async with running(app, eventbus.VirtualClock(start=T0)) as bus:
        for n, account in enumerate(["a", "a", "b", None, None]):
            data = {"n": n} if account is None else {"n": n, "account": account}
            await bus.send({"name": "report/requested", "data": data})
        await bus.settle(advance_time=True)
        assert sorted(bus.outputs("report")) == [0, 2, 3, 4]


async def test_the_active_run_holds_its_slot_across_a_restart(tmp_path: Path) -> None:
    clock = eventbus.VirtualClock(start=T0)
    first = report_app("skip", clock=clock, store=SqliteStore(tmp_path / "app.db"))
    async with first:
        await first.send({"name": "report/requested", "data": {"n": 1}})
        await first.settle()
    second = report_app("skip", clock=clock, store=SqliteStore(tmp_path / "app.db"))
    async with second:
        await second.send({"name": "report/requested", "data": {"n": 2}})  # skipped
        clock.advance(datetime.timedelta(minutes=10))
        await second.settle()
        assert [r.output for r in second.runs()] == [1]


@pytest.mark.parametrize(
    ("singleton", "problem"),
    [
        (eventbus.Singleton(mode="wait"), "'skip' or 'cancel'"),  # type: ignore[arg-type]
        (eventbus.Singleton(mode="skip", key="event.("), "not valid"),
        (eventbus.Singleton(mode="skip", key=""), "expression"),
        ("skip", "eventbus.Singleton"),
    ],
)
def test_bad_values_are_refused(singleton: Any, problem: str) -> None:
    app = eventbus.Inngest("shop")
    with pytest.raises(eventbus.FunctionConfigError, match=problem):
        app.create_function(
            fn_id="f", trigger=eventbus.TriggerEvent(event="e"), singleton=singleton
        )


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@settings(max_examples=30, deadline=None)
@given(
    mode=st.sampled_from(["skip", "cancel"]),
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("send"), st.sampled_from(["a", "b"])),
            st.tuples(st.just("wait"), st.integers(1, 15)),
        ),
        max_size=20,
    ),
)
def test_at_most_one_active_run_per_key_against_the_model(
    backend: str, mode: str, steps: list[tuple[str, Any]]
) -> None:
    """Sends and waits at random (each run sleeps 10 minutes): the runs that complete,
    are cancelled or never start are the model's, and no key ever has two active runs."""

    async def scenario() -> None:
        app = report_app(mode, key="event.data.account")
        active: dict[str, tuple[int, int]] = {}  # account -> (n, ends at minute)
        expected: dict[int, str] = {}
        now = 0
        n = 0
        async with running(app, eventbus.VirtualClock(start=T0)) as bus:
            for kind, value in steps:
                if kind == "wait":
                    bus.clock.advance(datetime.timedelta(minutes=value))  # type: ignore[attr-defined]
                    await bus.settle()
                    now += value
                    continue
                for account, (_, ends) in list(active.items()):
                    if ends <= now:
                        del active[account]
                holder = active.get(value)
                if holder is not None and mode == "skip":
                    expected[n] = "skipped"
                else:
                    if holder is not None:
                        expected[holder[0]] = "Cancelled"
                    expected[n] = "Completed"
                    active[value] = (n, now + 10)
                await bus.send({"name": "report/requested", "data": {"n": n, "account": value}})
                await bus.settle()
                runs = [r for r in bus.runs("report") if not r.status.is_finished]
                keys = [r.event.data["account"] for r in runs]
                assert len(keys) == len(set(keys))  # never two active runs of one key
                n += 1
            await bus.settle(advance_time=True)
            got = {r.event.data["n"]: r.status.value for r in bus.runs("report")}
            want = {k: v for k, v in expected.items() if v != "skipped"}
            assert got == want

    anyio.run(scenario, backend=backend)
