"""debounce=, as Inngest applies it (reference §5.5): one run with the last event once
``period`` passes without a new one, at most ``timeout`` after the first."""

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
T0_MS = int(T0.timestamp() * 1000)
S = datetime.timedelta(seconds=1)


def debounced_app(**debounce: Any) -> eventbus.Inngest:
    app = eventbus.Inngest("shop", **debounce.pop("client", {}))

    @app.create_function(
        fn_id="reindex",
        trigger=eventbus.TriggerEvent(event="doc/edited"),
        debounce=eventbus.Debounce(**debounce),
    )
    async def reindex(ctx: eventbus.Context) -> Any:
        return ctx.event.data["n"]

    return app


async def step(bus: Any, seconds: int) -> None:
    bus.clock.advance(seconds * S)
    await bus.settle()


async def test_the_last_event_runs_once_the_period_passes_quietly() -> None:
    app = debounced_app(period="10s")
    async with running(app, eventbus.VirtualClock(start=T0)) as bus:
        ids = []
        for n in range(3):
            ids += await bus.send({"name": "doc/edited", "data": {"n": n}})
            await step(bus, 6)  # each edit resets the 10 s
        assert bus.outputs("reindex") == []
        await step(bus, 4)
        assert bus.outputs("reindex") == [2]
        assert [d.decision for d in bus.explain(ids[0])] == ["debounced", "debounced"]
        assert "replaced by event" in bus.explain(ids[0])[1].detail
        assert bus.explain(ids[2])[-1].decision == "started run"


async def test_the_timeout_caps_the_delay_from_the_first_event() -> None:
    app = debounced_app(period="10s", timeout="15s")
    async with running(app, eventbus.VirtualClock(start=T0)) as bus:
        for n in range(5):
            await bus.send({"name": "doc/edited", "data": {"n": n}})
            await step(bus, 5)
            if bus.outputs("reindex"):
                break
        # Edits at 0, 5 and 10 s: the run comes at 15 s, with the edit of 10 s.
        assert bus.outputs("reindex") == [2]
        [run] = bus.runs("reindex")
        assert run.started_at == T0 + 15 * S


async def test_keys_debounce_apart_and_an_older_event_is_dropped() -> None:
    app = debounced_app(period="10s", key="event.data.doc")
    async with running(app, eventbus.VirtualClock(start=T0)) as bus:
        await bus.send({"name": "doc/edited", "data": {"n": 0, "doc": "a"}})
        await bus.send({"name": "doc/edited", "data": {"n": 1, "doc": "b"}})
        old = await bus.send(
            {"name": "doc/edited", "data": {"n": 2, "doc": "a"}, "ts": T0_MS - 60_000}
        )
        await bus.send({"name": "doc/edited", "data": {"n": 3}})  # no doc: "<invalid>"
        await bus.send({"name": "doc/edited", "data": {"n": 4}})
        await bus.settle(advance_time=True)
        assert sorted(bus.outputs("reindex")) == [0, 1, 4]
        assert "dropped" in bus.explain(old[0])[0].detail


async def test_an_event_while_the_run_executes_opens_a_new_debounce() -> None:
    app = eventbus.Inngest("shop")
    gate = anyio.Event()

    @app.create_function(
        fn_id="slow",
        trigger=eventbus.TriggerEvent(event="doc/edited"),
        debounce=eventbus.Debounce(period="5s"),
    )
    async def slow(ctx: eventbus.Context) -> Any:
        if ctx.event.data["n"] == 0:
            await gate.wait()
        return ctx.event.data["n"]

    async with running(app, eventbus.VirtualClock(start=T0)) as bus:
        await bus.send({"name": "doc/edited", "data": {"n": 0}})
        bus.clock.advance(5 * S)  # the run starts, and blocks
        await anyio.lowlevel.checkpoint()
        await bus.send({"name": "doc/edited", "data": {"n": 1}})
        gate.set()
        await bus.settle(advance_time=True)
        assert sorted(bus.outputs("slow")) == [0, 1]


async def test_a_pending_debounce_fires_after_a_restart(tmp_path: Path) -> None:
    clock = eventbus.VirtualClock(start=T0)
    options = {"client": {"clock": clock, "store": SqliteStore(tmp_path / "app.db")}}
    first = debounced_app(period="10s", **options)
    async with first:
        await first.send({"name": "doc/edited", "data": {"n": 7}})
        await first.settle()
    clock.advance(30 * S)  # it was due while no engine ran: it fires at start
    options = {"client": {"clock": clock, "store": SqliteStore(tmp_path / "app.db")}}
    second = debounced_app(period="10s", **options)
    async with second:
        await second.settle()
        assert [r.output for r in second.runs()] == [7]
    options = {"client": {"clock": clock, "store": SqliteStore(tmp_path / "app.db")}}
    third = debounced_app(period="10s", **options)
    async with third:
        await third.settle(advance_time=True)
        assert [r.output for r in third.runs()] == [7]  # fired once, not again


@pytest.mark.parametrize(
    ("debounce", "problem"),
    [
        ({"period": 500}, "1s to 7d"),
        ({"period": "8d"}, "1s to 7d"),
        ({"period": "10s", "timeout": "0s"}, "1s to 7d"),
        ({"period": "10s", "key": "event.("}, "not valid"),
        ({"period": "later"}, "not a duration"),
    ],
)
def test_bad_values_are_refused(debounce: dict[str, Any], problem: str) -> None:
    with pytest.raises(eventbus.FunctionConfigError, match=problem):
        debounced_app(**debounce)


def test_debounce_must_be_a_debounce() -> None:
    app = eventbus.Inngest("shop")
    with pytest.raises(eventbus.FunctionConfigError, match=r"eventbus\.Debounce"):
        app.create_function(fn_id="f", trigger=eventbus.TriggerEvent(event="e"), debounce="5s")


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@settings(max_examples=30, deadline=None)
@given(
    period=st.integers(1, 20),
    timeout=st.one_of(st.none(), st.integers(1, 40)),
    gaps=st.lists(st.integers(0, 30), min_size=1, max_size=15),
)
def test_runs_match_the_model(
    backend: str, period: int, timeout: int | None, gaps: list[int]
) -> None:
    """Edits at random gaps (whole seconds): the runs, and when they start, are the
    model's: a debounce fires ``period`` after its last event, capped by ``timeout``
    from its first (at least 1 s after the last), with that last event."""

    async def scenario() -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        options: dict[str, Any] = {"period": period * 1000}
        if timeout is not None:
            options["timeout"] = timeout * 1000
        app = debounced_app(**options)
        expected: list[tuple[int, int]] = []
        pending: tuple[int, int, int] | None = None  # (n, first, due)
        now = 0
        async with running(app, eventbus.VirtualClock(start=T0)) as bus:
            for n, gap in enumerate(gaps):
                target = now + gap
                if pending is not None and pending[2] <= target:
                    expected.append((pending[0], pending[2]))
                    pending = None
                while (
                    due := bus.engine._next_timer()
                ) is not None and due <= T0_MS + target * 1000:
                    bus.clock.advance_to_ms(due)
                    await bus.settle()
                bus.clock.advance_to_ms(T0_MS + target * 1000)
                await bus.settle()
                now = target
                first = now if pending is None else pending[1]
                ttl = period if timeout is None else max(min(period, first + timeout - now), 1)
                pending = (n, first, now + ttl)
                await bus.send({"name": "doc/edited", "data": {"n": n}})
                await bus.settle()
            if pending is not None:
                expected.append((pending[0], pending[2]))
            await bus.settle(advance_time=True)
            got = [
                (r.output, (r._started_ms - T0_MS) // 1000)  # type: ignore[operator]
                for r in bus.runs("reindex")
            ]
        return got, expected

    got, expected = anyio.run(scenario, backend=backend)
    assert got == expected


async def test_duplicate_event_ids_join_the_debounce_as_on_inngest() -> None:
    """Event-id dedup does not apply to debounces (the debounce key decides)."""
    app = debounced_app(period="5s")
    async with running(app, eventbus.VirtualClock(start=T0)) as bus:
        await bus.send({"name": "doc/edited", "data": {"n": 0}, "id": "same"})
        ids = await bus.send({"name": "doc/edited", "data": {"n": 1}, "id": "same"})
        await bus.settle(advance_time=True)
        assert bus.outputs("reindex") == [1]
        assert bus.explain(ids[0])[-1].decision == "started run"
