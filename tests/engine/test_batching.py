"""batch_events=, as Inngest applies it (reference §5.6): per-key batches that run when
full, ``timeout`` after their first event, or at 10 MiB; ``ctx.events`` in arrival
order; events whose ``if_exp`` is not true run alone."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import eventbus
from eventbus._flow import MAX_BATCH_BYTES
from eventbus.stores import SqliteStore
from eventbus.testing import running

pytestmark = pytest.mark.anyio

T0 = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
T0_MS = int(T0.timestamp() * 1000)
S = datetime.timedelta(seconds=1)


def batched_app(**batch: Any) -> eventbus.Inngest:
    client = batch.pop("client", {})
    extra = batch.pop("extra", {})
    app = eventbus.Inngest("shop", **client)

    @app.create_function(
        fn_id="bulk",
        trigger=eventbus.TriggerEvent(event="row/added"),
        batch_events=eventbus.Batch(**batch),
        **extra,
    )
    async def bulk(ctx: eventbus.Context) -> Any:
        assert ctx.event is ctx.events[0]
        return [e.data["n"] for e in ctx.events]

    return app


def added(n: int, **data: Any) -> dict[str, Any]:
    return {"name": "row/added", "data": {"n": n, **data}}


async def test_a_full_batch_runs_at_once_with_its_events_in_order() -> None:
    app = batched_app(max_size=3, timeout="1m")
    async with running(app, eventbus.VirtualClock(start=T0)) as bus:
        ids = []
        for n in range(7):
            ids += await bus.send(added(n))
        await bus.settle()
        assert bus.outputs("bulk") == [[0, 1, 2], [3, 4, 5]]
        run = bus.runs("bulk")[0]
        assert run.batch_id is not None
        assert bus.runs("bulk")[1].batch_id != run.batch_id
        assert [r.run_id for r in bus.engine.runs(event_id=ids[1])] == [run.run_id]
        first, last = bus.explain(ids[0]), bus.explain(ids[2])
        assert [d.decision for d in first] == ["batched", "started run"]
        assert f"batch {run.batch_id}: 1 of 3 events" in first[0].detail
        assert last[-1].detail == run.run_id
        assert bus.explain(ids[6])[0].detail.startswith("batch ")
        # The seventh waits for its batch's timeout, from its first event.
        bus.clock.advance(59 * S)
        await bus.settle()
        assert len(bus.outputs("bulk")) == 2
        bus.clock.advance(1 * S)
        await bus.settle()
        assert bus.outputs("bulk")[-1] == [6]


async def test_a_batch_runs_at_its_timeout_from_the_first_event() -> None:
    app = batched_app(max_size=10, timeout="5s")
    async with running(app, eventbus.VirtualClock(start=T0)) as bus:
        await bus.send(added(0))
        bus.clock.advance(3 * S)
        await bus.send(added(1))
        await bus.settle()
        assert bus.outputs("bulk") == []
        bus.clock.advance(2 * S)
        await bus.settle()
        assert bus.outputs("bulk") == [[0, 1]]
        assert bus.runs("bulk")[0]._started_ms == T0_MS + 5000


async def test_keys_batch_apart() -> None:
    app = batched_app(max_size=2, timeout="10s", key="event.data.shop")
    async with running(app, eventbus.VirtualClock(start=T0)) as bus:
        for n, shop in enumerate(["a", "b", "a", "c"]):
            await bus.send(added(n, shop=shop))
        await bus.settle()
        assert bus.outputs("bulk") == [[0, 2]]
        await bus.settle(advance_time=True)
        assert sorted(bus.outputs("bulk")) == [[0, 2], [1], [3]]


async def test_events_whose_if_is_not_true_run_alone() -> None:
    app = batched_app(max_size=3, timeout="10s", if_exp="event.data.bulk == true")
    async with running(app, eventbus.VirtualClock(start=T0)) as bus:
        await bus.send(added(0, bulk=True))
        ids = await bus.send(added(1, bulk=False))
        await bus.send(added(2))  # a missing field is not true either
        await bus.settle()
        assert bus.outputs("bulk") == [[1], [2]]
        assert bus.runs("bulk")[0].batch_id is None
        assert [d.decision for d in bus.explain(ids[0])] == ["started run"]
        await bus.settle(advance_time=True)
        assert bus.outputs("bulk")[-1] == [0]


async def test_a_batch_runs_once_its_events_reach_10_mib() -> None:
    app = batched_app(max_size=100, timeout="1m")
    blob = "x" * (200 * 1024)
    count = -(-MAX_BATCH_BYTES // len(blob))
    async with running(app, eventbus.VirtualClock(start=T0)) as bus:
        for n in range(count - 1):
            await bus.send(added(n, blob=blob))
        await bus.settle()
        assert bus.outputs("bulk") == []
        await bus.send(added(count - 1, blob=blob))
        await bus.settle()
        assert bus.outputs("bulk") == [list(range(count))]


async def test_duplicate_event_ids_are_batched_as_on_inngest() -> None:
    """Event-id dedup does not apply to batches (their run key is the batch id)."""
    app = batched_app(max_size=2, timeout="10s")

    @app.create_function(fn_id="single", trigger=eventbus.TriggerEvent(event="row/added"))
    async def single(ctx: eventbus.Context) -> Any:
        return ctx.event.data["n"]

    async with running(app, eventbus.VirtualClock(start=T0)) as bus:
        await bus.send({**added(0), "id": "same"})
        ids = await bus.send({**added(1), "id": "same"})
        await bus.settle()
        assert bus.outputs("bulk") == [[0, 1]]
        assert bus.outputs("single") == [0]
        assert {d.function_id: d.decision for d in bus.explain(ids[0])} == {
            "shop-bulk": "started run",
            "shop-single": "deduplicated",
        }


async def test_a_duplicate_whose_if_is_false_is_deduplicated() -> None:
    app = batched_app(max_size=2, timeout="10s", if_exp="event.data.bulk == true")
    async with running(app, eventbus.VirtualClock(start=T0)) as bus:
        await bus.send({**added(0), "id": "same"})
        ids = await bus.send({**added(1), "id": "same"})
        await bus.settle()
        assert bus.outputs("bulk") == [[0]]
        assert [d.decision for d in bus.explain(ids[0])] == ["deduplicated"]


async def test_a_throttled_batch_starts_at_its_turn() -> None:
    app = batched_app(
        max_size=2, timeout="10s", extra={"throttle": eventbus.Throttle(limit=1, period="1m")}
    )
    async with running(app, eventbus.VirtualClock(start=T0)) as bus:
        for n in range(6):
            await bus.send(added(n))
        await bus.settle()  # limit + burst starts at once
        assert bus.outputs("bulk") == [[0, 1], [2, 3]]
        await bus.settle(advance_time=True)
        runs = bus.runs("bulk")
        assert [r.output for r in runs] == [[0, 1], [2, 3], [4, 5]]
        assert runs[2]._started_ms == T0_MS + 60_000
        assert runs[2].batch_id not in (None, runs[1].batch_id)


async def test_an_open_batch_survives_a_restart(tmp_path: Path) -> None:
    clock = eventbus.VirtualClock(start=T0)

    def app() -> eventbus.Inngest:
        store = SqliteStore(tmp_path / "app.db")
        return batched_app(max_size=3, timeout="10s", client={"clock": clock, "store": store})

    first = app()
    async with first:
        await first.send([added(0), added(1)])
        await first.settle()
        assert first.runs() == []
    second = app()
    async with second:  # it still takes events, and runs when full
        await second.send(added(2))
        await second.settle()
        assert [r.output for r in second.runs()] == [[0, 1, 2]]
        batch_id = second.runs()[0].batch_id
        await second.send(added(3))
        await second.settle()
    clock.advance(30 * S)  # due while no engine ran: it runs at start
    third = app()
    async with third:
        await third.settle()
        outputs = [(r.output, r.batch_id) for r in third.runs()]
        assert outputs[0] == ([0, 1, 2], batch_id)
        assert outputs[1][0] == [3]
    fourth = app()
    async with fourth:
        await fourth.settle(advance_time=True)
        assert len(fourth.runs()) == 2  # ran once, not again


async def test_a_crash_keeps_what_was_batched(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "app.db")
    app = batched_app(max_size=2, timeout="10s")
    async with running(app, eventbus.VirtualClock(start=T0), store=store) as bus:
        await bus.send(added(0))
        bus.crash()
        await bus.restart()
        await bus.send(added(1))
        await bus.settle()
        assert bus.outputs("bulk") == [[0, 1]]


async def test_a_sync_handler_gets_the_batch() -> None:
    app = eventbus.Inngest("shop")

    @app.create_function(
        fn_id="bulk",
        trigger=eventbus.TriggerEvent(event="row/added"),
        batch_events=eventbus.Batch(max_size=2, timeout=datetime.timedelta(seconds=5)),
    )
    def bulk(ctx: eventbus.ContextSync) -> Any:
        return [e.data["n"] for e in ctx.events]

    async with running(app, eventbus.VirtualClock(start=T0)) as bus:
        await bus.send([added(0), added(1)])
        await bus.settle()
        assert bus.outputs("bulk") == [[0, 1]]


@pytest.mark.parametrize(
    ("batch", "problem"),
    [
        ({"max_size": 1, "timeout": "5s"}, "batch size cannot be smaller than 2: 1"),
        ({"max_size": True, "timeout": "5s"}, r"eventbus\.Batch"),
        ({"max_size": 5}, "needs a timeout"),
        ({"max_size": 5, "timeout": 999}, "more than 1s"),
        ({"max_size": 5, "timeout": "soon"}, "not a duration"),
        ({"max_size": 5, "timeout": "5s", "key": "event.("}, "batch key"),
        ({"max_size": 5, "timeout": "5s", "if_exp": "event.("}, "batch if_exp"),
    ],
)
def test_bad_values_are_refused(batch: dict[str, Any], problem: str) -> None:
    with pytest.raises(eventbus.FunctionConfigError, match=problem):
        batched_app(**batch)


@pytest.mark.parametrize(
    ("option", "reason"),
    [
        ({"cancel": [eventbus.Cancel(event="row/cancelled")]}, "cancellation"),
        ({"debounce": eventbus.Debounce(period="5s")}, "debouncing"),
        ({"singleton": eventbus.Singleton(mode="skip")}, "singletons"),
        ({"priority": eventbus.Priority(run="1")}, "Priority.Run and Batch"),
        ({"idempotency": "event.data.n"}, "idempotency"),
        ({"rate_limit": eventbus.RateLimit(limit=1, period="1m")}, "rate limiting"),
    ],
)
def test_options_inngest_does_not_combine_with_batching_are_refused(
    option: dict[str, Any], reason: str
) -> None:
    with pytest.raises(eventbus.FunctionConfigError, match=reason):
        batched_app(max_size=2, timeout="5s", extra=option)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@settings(max_examples=30, deadline=None)
@given(
    max_size=st.integers(2, 4),
    timeout=st.integers(1, 10),
    arrivals=st.lists(st.tuples(st.integers(0, 6), st.sampled_from("ab")), max_size=15),
)
def test_batches_match_the_model(
    backend: str, max_size: int, timeout: int, arrivals: list[tuple[int, str]]
) -> None:
    """Events of two keys at random gaps (whole seconds): the runs, their events and
    when they start are the model's: a key's batch opens at its first event and runs
    when it holds ``max_size`` events or ``timeout`` after that first event."""

    async def scenario() -> tuple[list[tuple[list[int], int]], list[tuple[list[int], int]]]:
        app = batched_app(max_size=max_size, timeout=timeout * 1000, key="event.data.k")
        expected: list[tuple[list[int], int]] = []
        open_: dict[str, tuple[list[int], int]] = {}
        now = 0
        async with running(app, eventbus.VirtualClock(start=T0)) as bus:
            for n, (gap, key) in enumerate(arrivals):
                now += gap
                for k, (events, first) in sorted(open_.items(), key=lambda i: i[1][1]):
                    if first + timeout <= now:
                        expected.append((events, first + timeout))
                        del open_[k]
                while (due := bus.engine._next_timer()) is not None and due <= T0_MS + now * 1000:
                    bus.clock.advance_to_ms(due)
                    await bus.settle()
                bus.clock.advance_to_ms(T0_MS + now * 1000)
                events, first = open_.setdefault(key, ([], now))
                events.append(n)
                if len(events) == max_size:
                    expected.append((events, now))
                    del open_[key]
                await bus.send(added(n, k=key))
                await bus.settle()
            expected += sorted(
                ((events, first + timeout) for events, first in open_.values()),
                key=lambda item: item[1],
            )
            await bus.settle(advance_time=True)
            got = [
                (r.output, (r._started_ms - T0_MS) // 1000)  # type: ignore[operator]
                for r in bus.runs("bulk")
            ]
        return sorted(got, key=lambda i: (i[1], i[0])), sorted(expected, key=lambda i: (i[1], i[0]))

    got, expected = anyio.run(scenario, backend=backend)
    assert got == expected
