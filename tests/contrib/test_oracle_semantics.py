"""The same functions on the real Inngest server (through the bridge) and on eventbus,
outcomes compared: the evidence behind "as Inngest does" for step errors.

Needs INNGEST_BIN (``.ci/run`` sets it); skipped otherwise. Runs happen in real time on
the server, so every function here has retries=0 and no sleeps.
"""

from __future__ import annotations

import datetime
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

import eventbus
from tests.oracle import RealInngest, failure, needs_inngest, real_inngest

pytestmark = needs_inngest

app = eventbus.Inngest("oracle-steps")
#: Step executions per scenario, counted in whichever engine runs them (both run here).
calls: Counter[str] = Counter()


@app.create_function(fn_id="two-steps", retries=0, trigger=eventbus.TriggerEvent(event="o/two"))
async def two_steps(ctx: eventbus.Context) -> Any:
    first = await ctx.step.run("first", lambda: {"n": ctx.event.data["n"]})
    second = await ctx.step.run("second", lambda: [first["n"], "b", None])
    return {"first": first, "second": second}


@app.create_function(fn_id="non-retriable", retries=3, trigger=eventbus.TriggerEvent(event="o/nre"))
async def non_retriable(ctx: eventbus.Context) -> str:
    def declined() -> None:
        calls["o/nre"] += 1
        raise eventbus.NonRetriableError("card declined")

    try:
        await ctx.step.run("charge", declined)
    except eventbus.StepError:
        return "the fallback ran"
    return "unreachable"


@app.create_function(fn_id="step-error", retries=0, trigger=eventbus.TriggerEvent(event="o/err"))
async def step_error(ctx: eventbus.Context) -> None:
    def broken() -> None:
        calls["o/err"] += 1
        raise ValueError("oh no")

    await ctx.step.run("broken", broken)


@app.create_function(fn_id="caught", retries=0, trigger=eventbus.TriggerEvent(event="o/caught"))
async def caught(ctx: eventbus.Context) -> list[str]:
    def missing() -> None:
        raise KeyError("sku-1")

    try:
        await ctx.step.run("lookup", missing)
    except eventbus.StepError as exc:
        return [exc.name, str(exc)]
    return []


SCENARIOS = [
    ("o/two", {"n": 7}),
    ("o/nre", {}),
    ("o/err", {}),
    ("o/caught", {}),
]


@pytest.fixture(scope="module")
def inngest_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealInngest]:
    yield from real_inngest(app, tmp_path_factory.mktemp("inngest-dev"))


def outcome(status: str, output: Any, error: Any) -> tuple[str, Any]:
    """A run's outcome in one shape for both: (status, output or (error name, message))."""
    if status == "Failed":
        return status, failure(error)
    return status, output


def eventbus_outcomes() -> dict[str, tuple[str, Any]]:
    calls.clear()
    found: dict[str, tuple[str, Any]] = {}

    async def main() -> None:
        async with eventbus.testing.running(app) as bus:
            for name, data in SCENARIOS:
                (event_id,) = await bus.send({"name": name, "data": data})
                await bus.settle(advance_time=True)
                (run,) = bus.runs(event_id=event_id)
                found[name] = outcome(run.status.value, run.output, run.error)

    anyio.run(main)
    return found


def test_step_error_semantics_match_the_real_server(inngest_server: RealInngest) -> None:
    """Outputs of steps, NonRetriableError inside step.run, an uncaught step failure and a
    caught StepError end the same way on Inngest and on eventbus."""
    calls.clear()
    theirs: dict[str, tuple[str, Any]] = {}
    for name, data in SCENARIOS:
        event_id = inngest_server.send({"name": name, "data": data})
        (run,) = inngest_server.runs(event_id)
        theirs[name] = outcome(run["status"], run.get("output"), run.get("output"))
    their_calls = dict(calls)
    assert eventbus_outcomes() == theirs
    assert dict(calls) == their_calls  # as many step attempts: no retry on one side only
    assert theirs["o/nre"] == ("Failed", ("NonRetriableError", "card declined"))
    assert their_calls == {"o/nre": 1, "o/err": 1}


flow = eventbus.Inngest("oracle-flow")
order: list[str] = []
release = threading.Event()
started = threading.Event()


@flow.create_function(fn_id="waves", retries=0, trigger=eventbus.TriggerEvent(event="o/waves"))
def waves(ctx: eventbus.ContextSync) -> str:
    def branch(name: str) -> Any:
        ctx.step.run(f"{name}.1", lambda: order.append(f"{name}.1"))
        ctx.step.run(f"{name}.2", lambda: order.append(f"{name}.2"))

    ctx.group.parallel((lambda: branch("a"), lambda: branch("b")))
    return "waves done"


@flow.create_function(fn_id="race", retries=0, trigger=eventbus.TriggerEvent(event="o/race"))
async def race(ctx: eventbus.Context) -> Any:
    async def step(name: str, delay: float) -> str:
        await anyio.sleep(delay)  # real time: the slow branch holds its step
        order.append(name)
        return name

    async def fast() -> list[str]:
        return [
            await ctx.step.run("a.1", step, "a.1", 0),
            await ctx.step.run("a.2", step, "a.2", 0),
        ]

    async def slow() -> list[str]:
        return [
            await ctx.step.run("b.1", step, "b.1", 1.0),
            await ctx.step.run("b.2", step, "b.2", 0),
        ]

    results = await ctx.group.parallel((fast, slow), parallel_mode=eventbus.ParallelMode.RACE)
    return list(results)


@flow.create_function(
    fn_id="cancellable",
    retries=0,
    trigger=eventbus.TriggerEvent(event="o/long"),
    cancel=[eventbus.Cancel(event="o/long.cancel", if_exp="async.data.id == event.data.id")],
)
def cancellable(ctx: eventbus.ContextSync) -> str:
    started.set()
    release.wait(timeout=30)  # the cancel event arrives while the handler runs
    return "finished"


@flow.create_function(
    fn_id="recent",
    retries=0,
    trigger=eventbus.TriggerEvent(
        event="o/at",
        expression="date(event.data.at) > now_minus('1h') && b64decode(event.data.b) == 'ok'",
    ),
)
def recent(ctx: eventbus.ContextSync) -> str:
    return str(ctx.event.data["tag"])


@pytest.fixture(scope="module")
def flow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealInngest]:
    yield from real_inngest(flow, tmp_path_factory.mktemp("inngest-flow"))


def in_waves(seen: list[str]) -> bool:
    return sorted(seen[:2]) == ["a.1", "b.1"] and sorted(seen[2:]) == ["a.2", "b.2"]


def test_parallel_waves_match_the_real_server(flow_server: RealInngest) -> None:
    """Both run the second steps of parallel branches only after every first step."""
    order.clear()
    (run,) = flow_server.runs(flow_server.send({"name": "o/waves"}))
    theirs = list(order)
    assert run["status"] == "Completed"
    order.clear()

    async def main() -> None:
        async with eventbus.testing.running(flow) as bus:
            await bus.send({"name": "o/waves"})
            await bus.settle()
            assert bus.outputs("waves") == ["waves done"]

    anyio.run(main)
    assert in_waves(theirs), theirs
    assert in_waves(order), order


def test_race_mode_matches_the_real_server(flow_server: RealInngest) -> None:
    """RACE: the fast branch's second step does not wait for the slow branch's first
    (no wave barrier), and the group gives every branch's result, on both."""
    order.clear()
    (run,) = flow_server.runs(flow_server.send({"name": "o/race"}))
    theirs = list(order)
    assert run["status"] == "Completed"
    their_output = run["output"]
    order.clear()

    async def main() -> list[Any]:
        async with eventbus.testing.running(flow, clock=eventbus.SystemClock()) as bus:
            await bus.send({"name": "o/race"})
            await bus.settle()
            return bus.outputs("race")

    (ours,) = anyio.run(main)
    assert theirs == order == ["a.1", "a.2", "b.1", "b.2"]
    expected = [["a.1", "a.2"], ["b.1", "b.2"]]
    assert ours == expected
    assert (json.loads(their_output) if isinstance(their_output, str) else their_output) == expected


def test_a_cancel_event_during_execution_matches_the_real_server(flow_server: RealInngest) -> None:
    """A cancel event arriving while the handler runs, with no step after it, ends the run
    Cancelled on both."""
    started.clear()
    release.clear()
    event_id = flow_server.send({"name": "o/long", "data": {"id": 1}})
    assert started.wait(timeout=30)
    flow_server.send({"name": "o/long.cancel", "data": {"id": 1}})
    time.sleep(1)  # the real server takes the cancel in real time
    release.set()
    (theirs,) = flow_server.runs_any(event_id)
    started.clear()
    release.clear()

    async def main() -> str:
        async with eventbus.testing.running(flow) as bus:
            (ours_id,) = await bus.send({"name": "o/long", "data": {"id": 1}})
            await anyio.to_thread.run_sync(started.wait, 30)
            await bus.send({"name": "o/long.cancel", "data": {"id": 1}})
            release.set()
            await bus.settle()
            return bus.runs(event_id=ours_id)[0].status.value

    assert anyio.run(main) == theirs["status"] == "Cancelled"


def test_inngests_expression_functions_match_the_real_server(flow_server: RealInngest) -> None:
    """date(), now_minus() and b64decode() in a trigger expression pick the same events."""
    now = datetime.datetime.now(datetime.timezone.utc)
    events = [
        {"name": "o/at", "data": {"tag": "fresh", "at": now.isoformat(), "b": "b2s="}},
        {
            "name": "o/at",
            "data": {
                "tag": "stale",
                "at": (now - datetime.timedelta(hours=3)).isoformat(),
                "b": "b2s=",
            },
        },
        {"name": "o/at", "data": {"tag": "bad-b", "at": now.isoformat(), "b": "bm8="}},
        {"name": "o/at", "data": {"tag": "epoch", "at": int(now.timestamp()), "b": "b2s="}},
    ]
    theirs = []
    for event in events:
        event_id = flow_server.send(event)
        time.sleep(1.5)  # a run that never starts: give the server time to decide
        theirs.append(bool(flow_server.listed_runs(event_id)))

    async def main() -> list[bool]:
        async with eventbus.testing.running(flow, clock=eventbus.SystemClock()) as bus:
            started = []
            for event in events:
                (event_id,) = await bus.send(event)
                started.append(bool(bus.runs(event_id=event_id)))
            return started

    assert anyio.run(main) == theirs == [True, False, False, False]
