"""A representative set of the official SDK's own function cases, run on eventbus.

Ported from inngest/inngest-py, ``tests/test_inngest/test_function/cases/`` (commit
305bc6a, Apache License 2.0, (c) Inngest Inc.): ``cancel``, ``non_retriable_error``,
``change_step_error``, ``dedupe_step_ids``, ``unserializable_step_output``,
``invoke_failure``, ``invoke_timeout``, ``on_failure``,
``wait_for_event_timeout_if_exp_not_match``, ``logger``, ``tuple_output``,
``multiple_triggers`` and ``step_callback_args`` (``parallel_group_of_sequential_steps``
is in tests/engine/test_parallel.py). Each
keeps its sync and async function exactly as written for the SDK and its assertions.
What changes is the harness:

- the upstream cases run against a real Inngest server and poll its API; here they run
  in ``eventbus.testing.running(client, functions=[...])`` and read the run records;
- real-time waits (``time.sleep(3)`` to let a cancel event arrive, ``asyncio.sleep(0.5)``
  for a wait to register) are replaced by the engine's own synchronisation;
- a failed run's output on Inngest is ``{"code", "message", "name", "stack"}``; eventbus
  records ``{"name", "message", "stack"}``, so ``code`` is not compared.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

import anyio
import inngest
import pytest

import eventbus
import eventbus.testing

pytestmark = pytest.mark.anyio

VARIANTS = pytest.mark.parametrize("is_sync", [True, False], ids=["sync", "async"])


class MyError(Exception):
    pass


class MyException(Exception):
    pass


def new_client() -> inngest.Inngest:
    return inngest.Inngest(app_id="cases", is_production=False)


@VARIANTS
async def test_cancel(is_sync: bool) -> None:
    """cancel.py: a cancel event arriving while the handler runs, with no step after it,
    ends the run CANCELLED; the handler's own code still finishes."""
    client = new_client()
    state: dict[str, Any] = {"is_done": False}
    release = anyio.Event()
    cancel = [inngest.Cancel(event="cases/cancel.cancel", if_exp="event.data.id == async.data.id")]

    if is_sync:
        import threading

        gate = threading.Event()
        started = threading.Event()

        @client.create_function(
            cancel=cancel,
            fn_id="cancel",
            retries=0,
            trigger=inngest.TriggerEvent(event="cases/cancel"),
        )
        def fn_sync(ctx: inngest.ContextSync) -> None:
            state["run_id"] = ctx.run_id
            started.set()
            gate.wait(timeout=30)  # was time.sleep(3): let the cancel event arrive
            state["is_done"] = True

        fn: Any = fn_sync
    else:

        @client.create_function(
            cancel=cancel,
            fn_id="cancel",
            retries=0,
            trigger=inngest.TriggerEvent(event="cases/cancel"),
        )
        async def fn_async(ctx: inngest.Context) -> None:
            state["run_id"] = ctx.run_id
            await release.wait()  # was asyncio.sleep(3)
            state["is_done"] = True

        fn = fn_async

    async with eventbus.testing.running(client, functions=[fn]) as bus:
        await bus.send(inngest.Event(name="cases/cancel", data={"id": 123}))
        if is_sync:
            await anyio.to_thread.run_sync(started.wait)  # the handler runs in a thread
        else:
            await anyio.wait_all_tasks_blocked()  # the handler awaits its release
        await bus.send(inngest.Event(name="cases/cancel.cancel", data={"id": 123}))
        if is_sync:
            gate.set()
        else:
            release.set()
        await bus.settle()
        (run,) = bus.runs("cancel")
    assert run.run_id == state["run_id"]
    assert run.status is eventbus.RunStatus.CANCELLED
    assert state["is_done"] is True


@VARIANTS
async def test_non_retriable_error(is_sync: bool) -> None:
    """non_retriable_error.py: inngest.NonRetriableError in a step fails the run at once,
    on attempt 0, with retries=1."""
    client = new_client()
    state: dict[str, Any] = {}

    @client.create_function(fn_id="nre", retries=1, trigger=inngest.TriggerEvent(event="cases/nre"))
    def fn_sync(ctx: inngest.ContextSync) -> None:
        state["attempt"] = ctx.attempt
        state["run_id"] = ctx.run_id

        def step_1() -> None:
            raise inngest.NonRetriableError("foo", quiet=True)

        ctx.step.run("step_1", step_1)

    @client.create_function(fn_id="nre", retries=1, trigger=inngest.TriggerEvent(event="cases/nre"))
    async def fn_async(ctx: inngest.Context) -> None:
        state["attempt"] = ctx.attempt
        state["run_id"] = ctx.run_id

        async def step_1() -> None:
            raise inngest.NonRetriableError("foo", quiet=True)

        await ctx.step.run("step_1", step_1)

    run = await run_case(client, fn_sync if is_sync else fn_async, "cases/nre")
    assert run.status is eventbus.RunStatus.FAILED
    assert run.error is not None
    assert (run.error["name"], run.error["message"]) == ("NonRetriableError", "foo")
    assert state["attempt"] == 0
    assert run.attempts == 1


@VARIANTS
async def test_change_step_error(is_sync: bool) -> None:
    """change_step_error.py: a handler catches inngest.StepError and raises its own."""
    client = new_client()

    @client.create_function(fn_id="cse", retries=0, trigger=inngest.TriggerEvent(event="cases/cse"))
    def fn_sync(ctx: inngest.ContextSync) -> None:
        def foo() -> None:
            raise ValueError("foo")

        try:
            ctx.step.run("foo", foo)
        except inngest.StepError:
            raise MyError("I am new") from None

    @client.create_function(fn_id="cse", retries=0, trigger=inngest.TriggerEvent(event="cases/cse"))
    async def fn_async(ctx: inngest.Context) -> None:
        async def foo() -> None:
            raise ValueError("foo")

        try:
            await ctx.step.run("foo", foo)
        except inngest.StepError:
            raise MyError("I am new") from None

    run = await run_case(client, fn_sync if is_sync else fn_async, "cases/cse")
    assert run.status is eventbus.RunStatus.FAILED
    assert run.error is not None
    assert (run.error["name"], run.error["message"]) == ("MyError", "I am new")
    assert isinstance(run.error["stack"], str)


@VARIANTS
async def test_dedupe_step_ids(is_sync: bool) -> None:
    """dedupe_step_ids.py: a step id reused in a loop runs once per use, each memoized."""
    client = new_client()
    state = {"step_1_counter": 0, "step_2_counter": 0, "outputs": []}

    @client.create_function(fn_id="dsi", retries=0, trigger=inngest.TriggerEvent(event="cases/dsi"))
    def fn_sync(ctx: inngest.ContextSync) -> None:
        for i in range(2):

            def step_fn(i: int = i) -> int:
                state[f"step_{i + 1}_counter"] += 1  # type: ignore[operator]
                return i

            state["outputs"].append(ctx.step.run("foo", step_fn))  # type: ignore[attr-defined]

    @client.create_function(fn_id="dsi", retries=0, trigger=inngest.TriggerEvent(event="cases/dsi"))
    async def fn_async(ctx: inngest.Context) -> None:
        for i in range(2):

            async def step_fn(i: int = i) -> int:
                state[f"step_{i + 1}_counter"] += 1  # type: ignore[operator]
                return i

            state["outputs"].append(await ctx.step.run("foo", step_fn))  # type: ignore[attr-defined]

    run = await run_case(client, fn_sync if is_sync else fn_async, "cases/dsi")
    assert run.status is eventbus.RunStatus.COMPLETED
    assert (state["step_1_counter"], state["step_2_counter"]) == (1, 1)
    assert state["outputs"] == [0, 1]
    assert [(s.id, s.output) for s in run.steps] == [("foo", 0), ("foo:1", 1)]


@VARIANTS
async def test_unserializable_step_output(is_sync: bool) -> None:
    """unserializable_step_output.py: a step returning a non-JSON object fails the run,
    with an error naming the step."""
    client = new_client()
    state: dict[str, Any] = {}

    class Foo:
        pass

    @client.create_function(fn_id="uso", retries=0, trigger=inngest.TriggerEvent(event="cases/uso"))
    def fn_sync(ctx: inngest.ContextSync) -> None:
        try:
            ctx.step.run("step_1", Foo)
        except BaseException as err:
            state["error"] = err
            raise

    @client.create_function(fn_id="uso", retries=0, trigger=inngest.TriggerEvent(event="cases/uso"))
    async def fn_async(ctx: inngest.Context) -> None:
        async def step_1() -> Foo:
            return Foo()

        try:
            await ctx.step.run("step_1", step_1)
        except BaseException as err:
            state["error"] = err
            raise

    run = await run_case(client, fn_sync if is_sync else fn_async, "cases/uso")
    assert run.status is eventbus.RunStatus.FAILED
    assert run.error is not None
    assert "'step_1' returned a value that is not JSON" in run.error["message"]
    assert state["error"] is not None


@VARIANTS
async def test_invoke_failure(is_sync: bool) -> None:
    """invoke_failure.py: an invoked function's failure raises inngest.StepError in the
    caller, with the invokee's error name, message and stack."""
    client = new_client()
    state: dict[str, Any] = {}

    @client.create_function(
        fn_id="invoke-failure/invokee", retries=0, trigger=inngest.TriggerEvent(event="never")
    )
    def fn_receiver_sync(ctx: inngest.ContextSync) -> None:
        raise MyException("oh no")

    @client.create_function(
        fn_id="invoke-failure", retries=0, trigger=inngest.TriggerEvent(event="cases/if")
    )
    def fn_sender_sync(ctx: inngest.ContextSync) -> None:
        try:
            ctx.step.invoke("invoke", function=fn_receiver_sync)
        except inngest.StepError as err:
            state["raised_error"] = err
            raise err

    @client.create_function(
        fn_id="invoke-failure/invokee", retries=0, trigger=inngest.TriggerEvent(event="never")
    )
    async def fn_receiver_async(ctx: inngest.Context) -> None:
        raise MyException("oh no")

    @client.create_function(
        fn_id="invoke-failure", retries=0, trigger=inngest.TriggerEvent(event="cases/if")
    )
    async def fn_sender_async(ctx: inngest.Context) -> None:
        try:
            await ctx.step.invoke("invoke", function=fn_receiver_async)
        except inngest.StepError as err:
            state["raised_error"] = err
            raise err

    functions = (
        [fn_receiver_sync, fn_sender_sync] if is_sync else [fn_receiver_async, fn_sender_async]
    )
    async with eventbus.testing.running(client, functions=functions) as bus:
        await bus.send(inngest.Event(name="cases/if"))
        await bus.settle(advance_time=True)
        (run,) = bus.runs("invoke-failure")
    assert run.status is eventbus.RunStatus.FAILED
    assert run.error is not None
    assert (run.error["message"], run.error["name"]) == ("oh no", "MyException")
    raised = state["raised_error"]
    assert isinstance(raised, inngest.StepError)
    assert (raised.message, raised.name) == ("oh no", "MyException")
    assert isinstance(raised.stack, str)


@VARIANTS
async def test_on_failure(is_sync: bool) -> None:
    """on_failure.py: the handler's error is recorded with its stack (user code in it),
    and on_failure runs as its own run with the failure event."""
    client = new_client()
    state: dict[str, Any] = {}

    def on_failure_sync(ctx: inngest.ContextSync) -> None:
        state["on_failure_run_id"] = ctx.run_id
        state["failure_event"] = ctx.event

    async def on_failure_async(ctx: inngest.Context) -> None:
        state["on_failure_run_id"] = ctx.run_id
        state["failure_event"] = ctx.event

    @client.create_function(
        fn_id="on-failure",
        on_failure=on_failure_sync,
        retries=1,
        trigger=inngest.TriggerEvent(event="cases/of"),
    )
    def fn_sync(ctx: inngest.ContextSync) -> None:
        state["attempt"] = ctx.attempt
        state["run_id"] = ctx.run_id
        raise MyError("intentional failure")

    @client.create_function(
        fn_id="on-failure",
        on_failure=on_failure_async,
        retries=1,
        trigger=inngest.TriggerEvent(event="cases/of"),
    )
    async def fn_async(ctx: inngest.Context) -> None:
        state["attempt"] = ctx.attempt
        state["run_id"] = ctx.run_id
        raise MyError("intentional failure")

    run = await run_case(client, fn_sync if is_sync else fn_async, "cases/of", data={"foo": 1})
    assert run.status is eventbus.RunStatus.FAILED
    assert state["attempt"] == 1  # retries=1: the last attempt was the second
    assert run.error is not None
    assert (run.error["name"], run.error["message"]) == ("MyError", "intentional failure")
    assert run.error["stack"].startswith("Traceback (most recent call last):")
    assert "test_function_cases.py" in run.error["stack"]
    assert state["on_failure_run_id"] != run.run_id
    failure = state["failure_event"]
    assert isinstance(failure, inngest.Event)
    assert failure.name == "inngest/function.failed"
    assert failure.data["function_id"] == "cases-on-failure"
    assert failure.data["run_id"] == run.run_id
    assert failure.data["event"]["data"] == {"foo": 1}


@VARIANTS
async def test_wait_for_event_timeout_if_exp_not_match(is_sync: bool) -> None:
    """wait_for_event_timeout_if_exp_not_match.py: an event whose data does not match
    the if expression does not fulfil the wait, which times out with None."""
    client = new_client()
    state: dict[str, Any] = {}

    @client.create_function(fn_id="wfe", retries=0, trigger=inngest.TriggerEvent(event="cases/wfe"))
    def fn_sync(ctx: inngest.ContextSync) -> None:
        state["result"] = ctx.step.wait_for_event(
            "wait",
            event="cases/wfe.fulfill",
            if_exp="event.data.id == async.data.id",
            timeout=datetime.timedelta(seconds=1),
        )

    @client.create_function(fn_id="wfe", retries=0, trigger=inngest.TriggerEvent(event="cases/wfe"))
    async def fn_async(ctx: inngest.Context) -> None:
        state["result"] = await ctx.step.wait_for_event(
            "wait",
            event="cases/wfe.fulfill",
            if_exp="event.data.id == async.data.id",
            timeout=datetime.timedelta(seconds=1),
        )

    async with eventbus.testing.running(
        client, functions=[fn_sync if is_sync else fn_async]
    ) as bus:
        await bus.send(inngest.Event(name="cases/wfe", data={"id": 123}))
        await bus.settle()  # the wait is registered (was asyncio.sleep(0.5))
        await bus.send(inngest.Event(name="cases/wfe.fulfill", data={"id": 456}))
        await bus.settle(advance_time=True)
        (run,) = bus.runs("wfe")
    assert run.status is eventbus.RunStatus.COMPLETED
    assert state["result"] is None


async def run_case(
    client: inngest.Inngest, fn: Any, event: str, data: dict[str, Any] | None = None
) -> eventbus.Run:
    async with eventbus.testing.running(client, functions=[fn]) as bus:
        await bus.send(inngest.Event(name=event, data=data or {}))
        await bus.settle(advance_time=True)
        (run,) = bus.runs(fn.local_id)
        return run


class StatefulLogger(logging.Logger):
    """Fake logger that stores calls to its methods (from logger.py, as upstream)."""

    def __init__(self) -> None:
        super().__init__("test")
        self.info_calls: list[object] = []

    def info(self, msg: object, *args: object, **kwargs: object) -> None:
        self.info_calls.append(msg)


@VARIANTS
async def test_logger(is_sync: bool) -> None:
    """logger.py: ctx.logger logs each line once per run, not once per replay: lines
    before a function-level or step-level retry appear again, memoized ones do not."""
    client = new_client()
    state = {"fn_raise": False, "step_raise": False}
    _logger = StatefulLogger()

    @client.create_function(
        fn_id="logger", retries=1, trigger=inngest.TriggerEvent(event="cases/log")
    )
    def fn_sync(ctx: inngest.ContextSync) -> None:
        ctx.logger.info("function start")

        def step_1() -> None:
            ctx.logger.info("step_1")

        ctx.step.run("step_1", step_1)
        ctx.logger.info("log before function-level raise")
        if state["fn_raise"] is False:
            state["fn_raise"] = True
            raise inngest.RetryAfterError("", 1000, quiet=True)

        def step_2() -> None:
            ctx.logger.info("step_2")

        ctx.step.run("step_2", step_2)
        ctx.logger.info("log before step-level raise")

        def step_3() -> None:
            if state["step_raise"] is False:
                state["step_raise"] = True
                raise inngest.RetryAfterError("", 1000, quiet=True)

        ctx.step.run("step_3", step_3)
        ctx.logger.info("function end")

    @client.create_function(
        fn_id="logger", retries=1, trigger=inngest.TriggerEvent(event="cases/log")
    )
    async def fn_async(ctx: inngest.Context) -> None:
        ctx.logger.info("function start")

        async def step_1() -> None:
            ctx.logger.info("step_1")

        await ctx.step.run("step_1", step_1)
        ctx.logger.info("log before function-level raise")
        if state["fn_raise"] is False:
            state["fn_raise"] = True
            raise inngest.RetryAfterError("", 1000, quiet=True)

        async def step_2() -> None:
            ctx.logger.info("step_2")

        await ctx.step.run("step_2", step_2)
        ctx.logger.info("log before step-level raise")

        async def step_3() -> None:
            if state["step_raise"] is False:
                state["step_raise"] = True
                raise inngest.RetryAfterError("", 1000, quiet=True)

        await ctx.step.run("step_3", step_3)
        ctx.logger.info("function end")

    client.set_logger(_logger)
    run = await run_case(client, fn_sync if is_sync else fn_async, "cases/log")
    assert run.status is eventbus.RunStatus.COMPLETED
    assert _logger.info_calls == [
        "function start",
        "step_1",
        "log before function-level raise",
        "log before function-level raise",
        "step_2",
        "log before step-level raise",
        "log before step-level raise",
        "function end",
    ]


@VARIANTS
async def test_tuple_output(is_sync: bool) -> None:
    """tuple_output.py: a step returning a tuple gives a list, in the handler and the
    journal alike."""
    client = new_client()
    state: dict[str, Any] = {}

    @client.create_function(fn_id="tuple", retries=0, trigger=inngest.TriggerEvent(event="c/t"))
    def fn_sync(ctx: inngest.ContextSync) -> None:
        def step_1() -> tuple[int, int]:
            return (1, 2)

        state["step_1_output"] = ctx.step.run("step_1", step_1)

    @client.create_function(fn_id="tuple", retries=0, trigger=inngest.TriggerEvent(event="c/t"))
    async def fn_async(ctx: inngest.Context) -> None:
        async def step_1() -> tuple[int, int]:
            return (1, 2)

        state["step_1_output"] = await ctx.step.run("step_1", step_1)

    run = await run_case(client, fn_sync if is_sync else fn_async, "c/t")
    assert run.status is eventbus.RunStatus.COMPLETED
    assert state["step_1_output"] == [1, 2]
    assert run.steps[0].output == [1, 2]  # upstream reads {"data": [1, 2]} from the API


@VARIANTS
async def test_invoke_timeout(is_sync: bool) -> None:
    """invoke_timeout.py: an invoke whose target outlasts the timeout raises StepError
    named InngestInvokeTimeoutError, and the run fails with it."""
    client = new_client()
    state: dict[str, Any] = {}

    @client.create_function(
        fn_id="it/invokee", retries=0, trigger=inngest.TriggerEvent(event="never")
    )
    def fn_receiver_sync(ctx: inngest.ContextSync) -> None:
        ctx.step.sleep("sleep", 60_000)

    @client.create_function(fn_id="it", retries=0, trigger=inngest.TriggerEvent(event="c/it"))
    def fn_sender_sync(ctx: inngest.ContextSync) -> None:
        try:
            ctx.step.invoke(
                "invoke", function=fn_receiver_sync, timeout=datetime.timedelta(seconds=1)
            )
        except Exception as e:
            state["raised_err"] = e
            raise e

    @client.create_function(
        fn_id="it/invokee", retries=0, trigger=inngest.TriggerEvent(event="never")
    )
    async def fn_receiver_async(ctx: inngest.Context) -> None:
        await ctx.step.sleep("sleep", 60_000)

    @client.create_function(fn_id="it", retries=0, trigger=inngest.TriggerEvent(event="c/it"))
    async def fn_sender_async(ctx: inngest.Context) -> None:
        try:
            await ctx.step.invoke(
                "invoke", function=fn_receiver_async, timeout=datetime.timedelta(seconds=1)
            )
        except Exception as e:
            state["raised_err"] = e
            raise e

    functions = (
        [fn_receiver_sync, fn_sender_sync] if is_sync else [fn_receiver_async, fn_sender_async]
    )
    async with eventbus.testing.running(client, functions=functions) as bus:
        await bus.send(inngest.Event(name="c/it"))
        await bus.settle(advance_time=True)
        (run,) = bus.runs("it")
    assert run.status is eventbus.RunStatus.FAILED
    assert isinstance(state["raised_err"], inngest.StepError)
    assert state["raised_err"].name == "InngestInvokeTimeoutError"
    assert run.error is not None
    assert (run.error["name"], run.error["message"]) == (
        "InngestInvokeTimeoutError",
        "Timed out waiting for invoked function to complete",
    )


@VARIANTS
async def test_multiple_triggers(is_sync: bool) -> None:
    """multiple_triggers.py: a function with two triggers runs once per event, with a
    run id each."""
    client = new_client()
    names = ["c/mt.1", "c/mt.2"]
    run_ids: dict[str, str] = {}

    @client.create_function(
        fn_id="mt", retries=0, trigger=[inngest.TriggerEvent(event=n) for n in names]
    )
    def fn_sync(ctx: inngest.ContextSync) -> None:
        run_ids[ctx.event.name] = ctx.run_id

    @client.create_function(
        fn_id="mt", retries=0, trigger=[inngest.TriggerEvent(event=n) for n in names]
    )
    async def fn_async(ctx: inngest.Context) -> None:
        run_ids[ctx.event.name] = ctx.run_id

    async with eventbus.testing.running(
        client, functions=[fn_sync if is_sync else fn_async]
    ) as bus:
        for name in names:
            await bus.send(inngest.Event(name=name))
        await bus.settle()
        assert len(bus.runs("mt", status=eventbus.RunStatus.COMPLETED)) == 2
    assert sorted(run_ids) == names
    assert len(set(run_ids.values())) == 2


@VARIANTS
async def test_step_callback_args(is_sync: bool) -> None:
    """step_callback_args.py: positional arguments after the handler reach it."""
    client = new_client()
    state: dict[str, Any] = {}

    @client.create_function(fn_id="sca", retries=0, trigger=inngest.TriggerEvent(event="c/sca"))
    def fn_sync(ctx: inngest.ContextSync) -> None:
        def step_callback(a: int, b: str) -> None:
            state["step_args"] = [a, b]

        ctx.step.run("step", step_callback, 1, "a")

    @client.create_function(fn_id="sca", retries=0, trigger=inngest.TriggerEvent(event="c/sca"))
    async def fn_async(ctx: inngest.Context) -> None:
        async def step_callback(a: int, b: str) -> None:
            state["step_args"] = [a, b]

        await ctx.step.run("step", step_callback, 1, "a")

    run = await run_case(client, fn_sync if is_sync else fn_async, "c/sca")
    assert run.status is eventbus.RunStatus.COMPLETED
    assert state["step_args"] == [1, "a"]
