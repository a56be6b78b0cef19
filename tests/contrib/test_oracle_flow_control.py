"""Flow control side by side with the real Inngest server (``inngest dev``): the same
functions, served to it through the SDK bridge, and run on eventbus.

Rate limits, idempotency keys, singletons, debounces and batches: which events start
runs, and with what. Every wait on the real server is bounded.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

import eventbus
from eventbus.testing import running
from tests.oracle import RealInngest, needs_inngest, real_inngest

pytestmark = needs_inngest

app = eventbus.Inngest(app_id="oracle-flow")


@app.create_function(
    fn_id="limited",
    trigger=eventbus.TriggerEvent(event="flow/limited"),
    rate_limit=eventbus.RateLimit(limit=1, period="1h", key="event.data.user"),
)
async def limited(ctx: eventbus.Context) -> Any:
    return ctx.event.data["n"]


@app.create_function(
    fn_id="once", trigger=eventbus.TriggerEvent(event="flow/once"), idempotency="event.data.order"
)
async def once(ctx: eventbus.Context) -> Any:
    return ctx.event.data["n"]


@app.create_function(
    fn_id="single",
    trigger=eventbus.TriggerEvent(event="flow/single"),
    singleton=eventbus.Singleton(mode="skip"),
)
async def single(ctx: eventbus.Context) -> Any:
    await ctx.step.sleep("hold", "3s")
    return ctx.event.data["n"]


@app.create_function(
    fn_id="debounced",
    trigger=eventbus.TriggerEvent(event="flow/debounced"),
    debounce=eventbus.Debounce(period="2s"),
)
async def debounced(ctx: eventbus.Context) -> Any:
    return ctx.event.data["n"]


@app.create_function(
    fn_id="bulk",
    trigger=eventbus.TriggerEvent(event="flow/bulk"),
    batch_events=eventbus.Batch(max_size=3, timeout="2s"),
)
async def bulk(ctx: eventbus.Context) -> Any:
    return [e.data["n"] for e in ctx.events]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealInngest]:
    yield from real_inngest(app, tmp_path_factory.mktemp("inngest-flow-control"))


def on_eventbus(name: str, events: list[dict[str, Any]]) -> list[list[Any]]:
    """The outputs of each event's runs on eventbus (in event order)."""

    async def scenario() -> list[list[Any]]:
        async with running(app, eventbus.VirtualClock()) as bus:
            ids = []
            for event in events:
                ids += await bus.send({"name": name, **event})
            await bus.settle(advance_time=datetime.timedelta(minutes=1))
            return [[r.output for r in bus.runs(event_id=i)] for i in ids]

    return anyio.run(scenario)


def on_inngest(
    server: RealInngest, name: str, events: list[dict[str, Any]], expect: int
) -> list[list[Any]]:
    """The outputs of each event's runs on the real server, once ``expect`` runs ended."""
    ids = [server.send({"name": name, **event}) for event in events]
    ended: list[list[Any]] = [[] for _ in ids]
    deadline = 60
    # The runs end in some order: poll each event until the total is reached.
    start = time.monotonic()
    while sum(map(len, ended)) < expect:
        if time.monotonic() - start > deadline:
            raise AssertionError(f"timed out waiting for {expect} runs; got {ended}")
        for index, event_id in enumerate(ids):
            runs = [server._run(r["run_id"]) for r in server.listed_runs(event_id)]
            ended[index] = [r["output"] for r in runs if r["status"] == "Completed"]
        time.sleep(0.2)
    return ended


def runs_per(field: str, events: list[dict[str, Any]], runs: list[list[Any]]) -> dict[Any, int]:
    """How many runs the events of each value of ``data[field]`` started."""
    counts: dict[Any, int] = {}
    for event, outputs in zip(events, runs, strict=True):
        value = event["data"][field]
        counts[value] = counts.get(value, 0) + len(outputs)
    return counts


# Which of several events sent back to back wins a limit is not fixed on the real server
# (it schedules them concurrently; eventbus takes them in arrival order), so the
# comparisons are of how many runs each key started.


def test_rate_limits_match_the_real_server(server: RealInngest) -> None:
    events = [{"data": {"n": n, "user": user}} for n, user in enumerate("aaba")]
    ours = on_eventbus("flow/limited", events)
    assert ours == [[0], [], [2], []]
    theirs = on_inngest(server, "flow/limited", events, expect=2)
    assert runs_per("user", events, theirs) == runs_per("user", events, ours) == {"a": 1, "b": 1}


def test_idempotency_matches_the_real_server(server: RealInngest) -> None:
    events = [{"data": {"n": n, "order": order}} for n, order in enumerate([7, 7, 8])]
    ours = on_eventbus("flow/once", events)
    assert ours == [[0], [], [2]]
    theirs = on_inngest(server, "flow/once", events, expect=2)
    assert runs_per("order", events, theirs) == runs_per("order", events, ours) == {7: 1, 8: 1}


def test_singleton_skip_matches_the_real_server(server: RealInngest) -> None:
    events = [{"data": {"n": n, "all": True}} for n in range(2)]
    ours = on_eventbus("flow/single", events)
    assert ours == [[0], []]
    theirs = on_inngest(server, "flow/single", events, expect=1)
    assert runs_per("all", events, theirs) == runs_per("all", events, ours) == {True: 1}


def test_debounce_matches_the_real_server(server: RealInngest) -> None:
    """One run, with the last event by ``ts`` (given, so that "last" is fixed)."""
    now = int(time.time() * 1000)
    events = [{"data": {"n": n}, "ts": now - 3000 + n * 1000} for n in range(3)]
    ours = on_eventbus("flow/debounced", events)
    assert ours == [[], [], [2]]
    assert on_inngest(server, "flow/debounced", events, expect=1) == ours


def test_batches_match_the_real_server(server: RealInngest) -> None:
    """A full batch runs at once, the rest at the timeout."""
    events = [{"data": {"n": n}} for n in range(4)]
    ours = on_eventbus("flow/bulk", events)
    assert ours == [[[0, 1, 2]], [[0, 1, 2]], [[0, 1, 2]], [[3]]]
    ids = [server.send({"name": "flow/bulk", **event}) for event in events]
    outputs: dict[str, Any] = {}
    start = time.monotonic()
    while sum(len(o) for o in outputs.values()) < len(events):
        if time.monotonic() - start > 60:
            raise AssertionError(f"timed out waiting for the batches; got {outputs}")
        for event_id in ids:
            for listed in server.listed_runs(event_id):
                run = server._run(listed["run_id"])
                if run["status"] == "Completed":
                    outputs[listed["run_id"]] = run["output"]
        time.sleep(0.2)
    # Which events share a batch follows the order the server takes them in, which is
    # not the order they were sent (see above): compared are the batch sizes and events.
    theirs = sorted(outputs.values(), key=len, reverse=True)
    assert [len(b) for b in theirs] == [len(ours[0][0]), len(ours[3][0])] == [3, 1]
    assert sorted(n for b in theirs for n in b) == list(range(4))
