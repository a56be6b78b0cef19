"""The same functions on the real Inngest server (through the bridge) and on eventbus,
outcomes compared: the evidence behind "as Inngest does" for step errors.

Needs INNGEST_BIN (``.ci/run`` sets it); skipped otherwise. Runs happen in real time on
the server, so every function here has retries=0 and no sleeps.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
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


def test_the_harness_is_collected(tmp_path: Path) -> None:
    """(A guard: the scenarios above exist and have distinct event names.)"""
    assert len({name for name, _ in SCENARIOS}) == len(SCENARIOS)
