"""Middleware hooks on the real Inngest server and on eventbus, compared. A function
written for the official SDK, with the SDK's middleware recording every hook and every
line of the handler, runs on ``inngest dev`` (served by the SDK) and on eventbus (through
``running()``); and an eventbus function with eventbus middleware runs on eventbus and on
``inngest dev`` (through ``to_inngest``). Each pair of records must be the same.

Needs INNGEST_BIN (``.ci/run`` sets it); skipped otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import inngest
import pytest

import eventbus
import eventbus.testing
from tests.oracle import RealInngest, needs_inngest, real_inngest

pytestmark = needs_inngest

#: The record of the run under way (one run at a time).
record: list[str] = []


class Recorder(inngest.MiddlewareSync):
    def transform_input(self, ctx: Any, function: Any, steps: inngest.StepMemos) -> None:
        record.append(f"transform_input memos={steps.size}")

    def before_execution(self) -> None:
        record.append("before_execution")

    def before_send_events(self, events: list[inngest.Event]) -> None:
        record.append(f"before_send_events {[e.name for e in events]}")

    def after_send_events(self, result: inngest.SendEventsResult) -> None:
        record.append(f"after_send_events {len(result.ids)}")

    def after_execution(self) -> None:
        record.append("after_execution")

    def transform_output(self, result: inngest.TransformOutputResult) -> None:
        if result.error is not None:
            record.append(f"transform_output error {type(result.error).__name__}")
            return
        step = None if result.step is None else (result.step.id, result.step.op.value)
        output = result.output if result.has_output() else "-"
        if step is not None and step[0] == "notify":
            output = f"{len(output)} id(s)"  # the ids themselves differ
        record.append(f"transform_output {step} {output}")
        if result.output == "raw":
            result.output = "cooked"

    def before_response(self) -> None:
        record.append("before_response")


def make_functions(client: inngest.Inngest) -> list[inngest.Function[Any]]:
    @client.create_function(
        fn_id="mw-oracle",
        middleware=[Recorder],
        retries=1,
        trigger=inngest.TriggerEvent(event="o/mw"),
    )
    async def mw_oracle(ctx: inngest.Context) -> str:
        record.append("fn: start")
        first = await ctx.step.run("first", lambda: _value("raw"))
        record.append(f"fn: first={first}")
        await ctx.step.run("flaky", _flaky)
        await ctx.step.sleep("nap", 1000)
        await ctx.step.send_event("notify", [inngest.Event(name="o/mw.sent")])
        record.append("fn: sent")
        return "done"

    return [mw_oracle]


async def _value(value: str) -> str:
    return value


async def _flaky() -> str:
    flaky_calls.append(1)
    if len(flaky_calls) == 1:
        raise ConnectionError("first attempt fails")
    return "ok"


flaky_calls: list[int] = []


class NativeRecorder(eventbus.Middleware):
    """eventbus's own middleware (async hooks), recording what it sees."""

    async def transform_input(self, ctx: Any, function: Any, steps: eventbus.StepMemos) -> None:
        record.append(f"native transform_input memos={steps.size}")
        for memo in steps.values():  # unwrap what transform_output wrapped
            if isinstance(memo.data, dict) and "boxed" in memo.data:
                memo.data = memo.data["boxed"]

    async def before_execution(self) -> None:
        record.append("native before_execution")

    async def after_execution(self) -> None:
        record.append("native after_execution")

    async def transform_output(self, result: eventbus.TransformOutputResult) -> None:
        step = None if result.step is None else (result.step.id, result.step.op.value)
        error = None if result.error is None else type(result.error).__name__
        record.append(f"native transform_output {step} {error}")
        if step is not None and step[1] == "StepRun" and error is None:
            result.output = {"boxed": result.output}

    async def before_response(self) -> None:
        record.append("native before_response")


native = eventbus.Inngest("oracle-mw", middleware=[NativeRecorder])


@native.create_function(fn_id="native", retries=0, trigger=eventbus.TriggerEvent(event="o/native"))
async def native_fn(ctx: eventbus.Context) -> int:
    record.append("native fn: start")
    price = await ctx.step.run("price", lambda: 40)
    tax = await ctx.step.run("tax", lambda: 2)
    record.append(f"native fn: {price}+{tax}")
    return price + tax


@pytest.fixture(scope="module")
def mw_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealInngest]:
    yield from real_inngest(native, tmp_path_factory.mktemp("inngest-mw"), make_functions)


def test_eventbus_middleware_matches_the_real_server(mw_server: RealInngest) -> None:
    """eventbus middleware runs on Inngest through to_inngest as it runs in-process."""
    record.clear()
    (run,) = mw_server.runs(mw_server.send({"name": "o/native"}))
    assert run["status"] == "Completed"
    assert run["output"] in (42, "42")
    theirs = list(record)
    record.clear()

    async def main() -> None:
        async with eventbus.testing.running(native) as bus:
            await bus.send({"name": "o/native"})
            await bus.settle()
            assert bus.outputs("native") == [42]

    anyio.run(main)
    assert record == theirs
    assert "native fn: 40+2" in record


def test_middleware_hooks_match_the_real_server(mw_server: RealInngest) -> None:
    """The same hooks, in the same order, with the same memos, outputs and replays."""
    record.clear()
    flaky_calls.clear()
    (run,) = mw_server.runs(mw_server.send({"name": "o/mw"}))
    assert run["status"] == "Completed"
    theirs = list(record)
    record.clear()
    flaky_calls.clear()
    sdk_client = inngest.Inngest(app_id="oracle-mw", is_production=False)
    functions = make_functions(sdk_client)

    async def main() -> None:
        async with eventbus.testing.running(sdk_client, functions=functions) as bus:
            await bus.send({"name": "o/mw"})
            await bus.settle(advance_time=True)
            assert bus.outputs("mw-oracle") == ["done"]

    anyio.run(main)
    assert record == theirs
    assert "fn: first=cooked" in record
    assert record.count("fn: start") == 6  # one new step per request, on both
    assert "transform_output error ConnectionError" in record
