"""The Store protocol, and MemoryStore's retention against a model (hypothesis)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import eventbus
from eventbus._event import make_stored
from eventbus._run import Run, RunStatus
from eventbus.stores import MemoryStore, SqliteStore, Store

pytestmark = pytest.mark.anyio


def test_the_stores_are_stores(tmp_path: Path) -> None:
    assert isinstance(MemoryStore(), Store)
    assert isinstance(SqliteStore(tmp_path / "app.db"), Store)


def test_something_else_is_refused_by_name() -> None:
    refused = r"store must be an eventbus\.stores\.Store"
    with pytest.raises(eventbus.FunctionConfigError, match=refused):
        eventbus.Inngest("app", store="app.db")  # type: ignore[arg-type]


class CountingStore(MemoryStore):
    """A store of one's own: the in-memory half inherited, every write counted."""

    durable = True  # the engine then marks each change and waits for commits

    def __init__(self) -> None:
        super().__init__()
        self.touched = 0
        self.commits = 0

    def touch(self, run: Run, record: Any = None) -> None:
        self.touched += 1

    async def commit(self) -> None:
        self.commits += 1


async def test_a_store_of_ones_own_is_told_every_change() -> None:
    store = CountingStore()
    app = eventbus.Inngest("app", store=store)

    @app.create_function(fn_id="f", trigger=eventbus.TriggerEvent(event="e"))
    async def f(ctx: eventbus.Context) -> int:
        one = await ctx.step.run("one", lambda: 1)
        return one + await ctx.step.run("two", lambda: 1)

    async with app:
        await app.send({"name": "e"})
        await app.settle()
        assert app.runs()[0].output == 2
    # The send, the run's start, two step results and the settle each waited for one.
    assert store.commits == 5
    assert store.touched >= 3  # two steps and the run's end, at least


_app = eventbus.Inngest("model")


@_app.create_function(fn_id="f", trigger=eventbus.TriggerEvent(event="e"))
async def _f(ctx: eventbus.Context) -> None:  # pragma: no cover - never executed
    return None


FUNCTION = next(iter(_app._registry.functions.values()))
RETENTION = 8


class MemoryStoreRetention(RuleBasedStateMachine):
    """Events and runs added and finished at random, against what must stay: the newest
    ``RETENTION`` events, as many finished runs, every unfinished run and the events it
    needs; and the store stays bounded."""

    def __init__(self) -> None:
        super().__init__()
        self.store = MemoryStore()
        self.store.bind(RETENTION)
        self.events: list[str] = []  # every event added, in order
        self.runs: dict[str, Run] = {}
        self.finished: list[str] = []  # run ids, in the order they finished
        self.count = 0

    def _next(self) -> str:
        self.count += 1
        return f"{self.count:08d}"

    @rule()
    def add_event(self) -> None:
        internal_id = self._next()
        self.store.add_event(make_stored("e", {}, "", 0, None, {}, internal_id, 0, False))
        self.events.append(internal_id)

    @precondition(lambda self: self.events)
    @rule(data=st.data(), width=st.integers(1, 3))
    def add_run(self, data: st.DataObject, width: int) -> None:
        # A run of events that are still stored (the newest ones are, by retention).
        recent = self.events[-RETENTION:]
        chosen = data.draw(st.lists(st.sampled_from(recent), min_size=1, max_size=width))
        events = tuple(self.store.get_event(i) for i in dict.fromkeys(chosen))
        assert all(e is not None for e in events)
        run = Run(self._next(), FUNCTION, events)  # type: ignore[arg-type]
        self.store.add_run(run)
        self.runs[run.run_id] = run

    @precondition(lambda self: any(not r.status.is_finished for r in self.runs.values()))
    @rule(data=st.data())
    def finish_run(self, data: st.DataObject) -> None:
        open_runs = [r for r in self.runs.values() if not r.status.is_finished]
        run = data.draw(st.sampled_from(open_runs))
        run.status = RunStatus.COMPLETED
        self.store.run_ended(run)
        self.finished.append(run.run_id)

    @invariant()
    def newest_events_are_kept(self) -> None:
        for internal_id in self.events[-RETENTION:]:
            assert self.store.get_event(internal_id) is not None

    @invariant()
    def unfinished_runs_and_their_events_are_kept(self) -> None:
        unfinished = [r for r in self.runs.values() if not r.status.is_finished]
        assert self.store.unfinished_runs() == sorted(unfinished, key=lambda r: r.run_id)
        for run in unfinished:
            assert self.store.get_run(run.run_id) is run
            for event in run.events:
                assert self.store.get_event(event.internal_id) is event
                assert run in self.store.runs(event_id=event.internal_id)

    @invariant()
    def enough_finished_runs_are_kept(self) -> None:
        # Runs are pruned oldest (first created) first, never while unfinished (one that
        # outlived its turn counts from when it finished): at least RETENTION finished
        # runs stay.
        kept = [run_id for run_id in self.finished if self.store.get_run(run_id) is not None]
        assert len(kept) >= min(RETENTION, len(self.finished))

    @invariant()
    def listings_are_in_order_and_bounded(self) -> None:
        events = [e.internal_id for e in self.store.events()]
        assert events == sorted(set(events))
        runs = [r.run_id for r in self.store.runs()]
        assert runs == sorted(set(runs))
        slack = RETENTION + (RETENTION >> 3) + 16
        unfinished = [r for r in self.runs.values() if not r.status.is_finished]
        pinned = {e.internal_id for r in unfinished for e in r.events}
        assert len(events) <= slack + len(pinned)
        assert len(runs) <= slack + len(unfinished)
        for run_id in runs:
            for event in self.runs[run_id].events:
                found = self.store.runs(event_id=event.internal_id)
                assert all(event in r.events for r in found)


TestMemoryStoreRetention = MemoryStoreRetention.TestCase
TestMemoryStoreRetention.settings = settings(max_examples=60, stateful_step_count=80, deadline=None)
