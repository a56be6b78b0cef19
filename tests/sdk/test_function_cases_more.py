"""More of the official SDK's function cases, run on eventbus.

Ported from inngest/inngest-py, ``tests/test_inngest/test_function/cases/`` (commit
305bc6a, Apache License 2.0, (c) Inngest Inc.): ``two_steps``, ``crazy_ids``,
``event_payload``, ``function_args``, ``pydantic_event``, ``step_context``,
``step_decorator``, ``step_callback_kwargs``, ``async_fn_with_sync_step_callback``,
``wait_for_event_fulfill``, ``nested_step_run``, ``inconsistent_step_order``,
``client_send``, ``invoke_by_object``, ``parallel_steps``, ``no_cancel_if_exp_not_match``,
``concurrent_sync_functions``, ``retry_after_error`` and ``sleep_until``. The functions
are as written for the SDK, the assertions are upstream's, with these changes:

- the runs happen in ``eventbus.testing.running`` and are read from its run records,
  not polled from a server; real-time waits become the engine's own synchronisation;
- ``retry_after_error`` and ``sleep_until`` measure time on the bus's virtual clock
  (upstream reads ``datetime.now()`` while a real server waits in real time);
- ``request_counter`` assertions are dropped: they count the HTTP requests Inngest makes
  to an app, and a function without middleware runs straight through on eventbus;
- ``nested_step_run``: Inngest's error is ``CodedError`` with the message "Nested steps
  are not supported."; eventbus's is a NonRetriableError whose message starts so.
"""

from __future__ import annotations

import datetime
import functools
import threading
import typing
import unittest.mock
from typing import Any

import anyio
import inngest
import inngest.experimental
import pydantic
import pytest

import eventbus
import eventbus.testing

pytestmark = pytest.mark.anyio

VARIANTS = pytest.mark.parametrize("is_sync", [True, False], ids=["sync", "async"])


def new_client() -> inngest.Inngest:
    return inngest.Inngest(app_id="cases", is_production=False)


def asyncify(fn: Any) -> Any:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return wrapper


async def run_case(
    client: inngest.Inngest,
    fns: list[Any],
    *events: inngest.Event,
    main: str | None = None,
) -> eventbus.Run:
    async with eventbus.testing.running(client, functions=fns) as bus:
        for event in events:
            await bus.send(event)
        await bus.settle(advance_time=True)
        (run,) = bus.runs(main or fns[0].local_id)
        return run


def step_output(run: eventbus.Run, step_id: str) -> Any:
    (record,) = [r for r in run.steps if r.id == step_id]
    return record.output


class State:
    run_id: str | None = None


# ---------------------------------------------------------------- two_steps


@VARIANTS
async def test_two_steps(is_sync: bool) -> None:
    client = new_client()

    class _State(State):
        step_1_counter = 0
        step_1_output: object = None
        step_2_counter = 0

    state = _State()

    if is_sync:

        @client.create_function(fn_id="two_steps", trigger=inngest.TriggerEvent(event="c/two"))
        def fn_sync(ctx: inngest.ContextSync) -> None:
            state.run_id = ctx.run_id

            def step_1() -> list[dict[str, inngest.JSON]]:
                state.step_1_counter += 1
                return [{"foo": {"bar": 1}, "empty": None}]

            state.step_1_output = ctx.step.run("step_1", step_1)

            def step_2() -> None:
                state.step_2_counter += 1

            ctx.step.run("step_2", step_2)

        fn: Any = fn_sync
    else:

        @client.create_function(fn_id="two_steps", trigger=inngest.TriggerEvent(event="c/two"))
        async def fn_async(ctx: inngest.Context) -> None:
            state.run_id = ctx.run_id

            async def step_1() -> list[dict[str, inngest.JSON]]:
                state.step_1_counter += 1
                return [{"foo": {"bar": 1}, "empty": None}]

            state.step_1_output = await ctx.step.run("step_1", step_1)

            async def step_2() -> None:
                state.step_2_counter += 1

            await ctx.step.run("step_2", step_2)

        fn = fn_async

    run = await run_case(client, [fn], inngest.Event(name="c/two"))
    assert run.status is eventbus.RunStatus.COMPLETED
    assert run.run_id == state.run_id
    assert state.step_1_counter == 1
    assert state.step_2_counter == 1
    assert state.step_1_output == [{"empty": None, "foo": {"bar": 1}}]
    assert step_output(run, "step_1") == [{"empty": None, "foo": {"bar": 1}}]


# ---------------------------------------------------------------- crazy_ids

_crazy = "%$^&*(_+{|:<?☃️"


@VARIANTS
async def test_crazy_ids(is_sync: bool) -> None:
    client = new_client()
    fn_id = "crazy_ids" + _crazy

    if is_sync:

        @client.create_function(fn_id=fn_id, retries=0, trigger=inngest.TriggerEvent(event="c/z"))
        def fn_sync(ctx: inngest.ContextSync) -> None:
            ctx.step.run(_crazy, lambda: None)

        fn: Any = fn_sync
    else:

        @client.create_function(fn_id=fn_id, retries=0, trigger=inngest.TriggerEvent(event="c/z"))
        async def fn_async(ctx: inngest.Context) -> None:
            await ctx.step.run(_crazy, asyncify(lambda: None))

        fn = fn_async

    run = await run_case(client, [fn], inngest.Event(name="c/z"))
    assert run.status is eventbus.RunStatus.COMPLETED
    assert [s.id for s in run.steps] == [_crazy]


# ---------------------------------------------------------------- event_payload


@VARIANTS
async def test_event_payload(is_sync: bool) -> None:
    client = new_client()
    state: dict[str, Any] = {}

    if is_sync:

        @client.create_function(
            fn_id="event_payload", retries=0, trigger=inngest.TriggerEvent(event="c/p")
        )
        def fn_sync(ctx: inngest.ContextSync) -> None:
            state["event"] = ctx.event

        fn: Any = fn_sync
    else:

        @client.create_function(
            fn_id="event_payload", retries=0, trigger=inngest.TriggerEvent(event="c/p")
        )
        async def fn_async(ctx: inngest.Context) -> None:
            state["event"] = ctx.event

        fn = fn_async

    await run_case(client, [fn], inngest.Event(data={"foo": {"bar": "baz"}}, name="c/p"))
    event = state["event"]
    assert event is not None
    assert isinstance(event, inngest.Event)
    assert event.id != ""
    assert event.name == "c/p"
    assert event.data == {"foo": {"bar": "baz"}}
    assert event.ts > 0


# ---------------------------------------------------------------- function_args


@VARIANTS
async def test_function_args(is_sync: bool) -> None:
    client = new_client()
    state: dict[str, Any] = {}

    if is_sync:

        @client.create_function(
            fn_id="function_args", retries=0, trigger=inngest.TriggerEvent(event="c/a")
        )
        def fn_sync(ctx: inngest.ContextSync) -> None:
            state.update(attempt=ctx.attempt, event=ctx.event, events=ctx.events, step=ctx.step)

        fn: Any = fn_sync
    else:

        @client.create_function(
            fn_id="function_args", retries=0, trigger=inngest.TriggerEvent(event="c/a")
        )
        async def fn_async(ctx: inngest.Context) -> None:
            state.update(attempt=ctx.attempt, event=ctx.event, events=ctx.events, step=ctx.step)

        fn = fn_async

    await run_case(client, [fn], inngest.Event(name="c/a"))
    assert state["attempt"] == 0
    assert isinstance(state["event"], inngest.Event)
    assert isinstance(state["events"], list)
    assert len(state["events"]) == 1
    # Upstream: isinstance(step, (inngest.Step, inngest.StepSync)). eventbus gives the
    # handler its own step tools with the SDK's methods (see docs/testing.md).
    step = state["step"]
    for method in ("run", "sleep", "sleep_until", "wait_for_event", "send_event", "invoke"):
        assert callable(getattr(step, method))


# ---------------------------------------------------------------- pydantic_event

TData = typing.TypeVar("TData", bound=pydantic.BaseModel)


class BaseEvent(pydantic.BaseModel, typing.Generic[TData]):
    data: TData
    id: str = ""
    name: typing.ClassVar[str]
    ts: int = 0

    @classmethod
    def from_event(cls, event: inngest.Event) -> Any:
        return cls.model_validate(event.model_dump(mode="json"))

    def to_event(self) -> inngest.Event:
        return inngest.Event(
            name=self.name, data=self.data.model_dump(mode="json"), id=self.id, ts=self.ts
        )


class MyEventData(pydantic.BaseModel):
    count: int


class MyEvent(BaseEvent[MyEventData]):
    name = "c/pydantic_event"


@VARIANTS
async def test_pydantic_event(is_sync: bool) -> None:
    client = new_client()

    if is_sync:

        @client.create_function(
            fn_id="pydantic_event", retries=0, trigger=inngest.TriggerEvent(event=MyEvent.name)
        )
        def fn_sync(ctx: inngest.ContextSync) -> typing.Any:
            event = MyEvent.from_event(ctx.event)
            return event.model_dump(mode="json")

        fn: Any = fn_sync
    else:

        @client.create_function(
            fn_id="pydantic_event", retries=0, trigger=inngest.TriggerEvent(event=MyEvent.name)
        )
        async def fn_async(ctx: inngest.Context) -> typing.Any:
            event = MyEvent.from_event(ctx.event)
            return event.model_dump(mode="json")

        fn = fn_async

    run = await run_case(client, [fn], MyEvent(data=MyEventData(count=1)).to_event())
    assert run.status is eventbus.RunStatus.COMPLETED, run.error
    assert run.output is not None
    event = MyEvent.model_validate(run.output)
    assert event.data.count == 1
    assert event.id != ""
    assert event.ts > 0


# ---------------------------------------------------------------- step_context, step_decorator


@VARIANTS
async def test_step_context(is_sync: bool) -> None:
    """inngest.experimental.get_step_context() gives the run's step tools."""
    client = new_client()

    class _State(State):
        step_1_counter = 0
        step_1_output: object = None
        step_2_counter = 0

    state = _State()

    if is_sync:

        @client.create_function(
            fn_id="step_context", retries=0, trigger=inngest.TriggerEvent(event="c/sc")
        )
        def fn_sync(ctx: inngest.ContextSync) -> None:
            def step_1() -> list[dict[str, inngest.JSON]]:
                state.step_1_counter += 1
                return [{"foo": {"bar": 1}, "empty": None}]

            step = inngest.experimental.get_step_context()
            state.step_1_output = step.run("step_1", step_1)  # type: ignore[arg-type]

            def step_2() -> None:
                state.step_2_counter += 1

            ctx.step.run("step_2", step_2)

        fn: Any = fn_sync
    else:

        @client.create_function(
            fn_id="step_context", retries=0, trigger=inngest.TriggerEvent(event="c/sc")
        )
        async def fn_async(ctx: inngest.Context) -> None:
            async def step_1() -> list[dict[str, inngest.JSON]]:
                state.step_1_counter += 1
                return [{"foo": {"bar": 1}, "empty": None}]

            step = inngest.experimental.get_step_context()
            state.step_1_output = await step.run("step_1", step_1)  # type: ignore[misc]

            async def step_2() -> None:
                state.step_2_counter += 1

            await ctx.step.run("step_2", step_2)

        fn = fn_async

    run = await run_case(client, [fn], inngest.Event(name="c/sc"))
    assert run.status is eventbus.RunStatus.COMPLETED, run.error
    assert state.step_1_counter == 1
    assert state.step_2_counter == 1
    assert state.step_1_output == [{"empty": None, "foo": {"bar": 1}}]
    assert step_output(run, "step_1") == [{"empty": None, "foo": {"bar": 1}}]


@VARIANTS
async def test_step_decorator(is_sync: bool) -> None:
    """@inngest.experimental.step("step_1") makes a function a step inside a run."""
    client = new_client()

    class _State(State):
        step_1_counter = 0
        step_1_output: object = None
        step_2_counter = 0

    state = _State()

    @inngest.experimental.step("step_1")
    def step_1_sync(msg: str) -> list[dict[str, inngest.JSON]]:
        state.step_1_counter += 1
        return [{"foo": {"bar": 1}, "empty": None, "msg": msg}]

    @inngest.experimental.step("step_1")
    async def step_1_async(msg: str) -> list[dict[str, inngest.JSON]]:
        state.step_1_counter += 1
        return [{"foo": {"bar": 1}, "empty": None, "msg": msg}]

    if is_sync:

        @client.create_function(
            fn_id="step_decorator", retries=0, trigger=inngest.TriggerEvent(event="c/sd")
        )
        def fn_sync(ctx: inngest.ContextSync) -> None:
            state.step_1_output = step_1_sync("Hello")

            def step_2() -> None:
                state.step_2_counter += 1

            ctx.step.run("step_2", step_2)

        fn: Any = fn_sync
    else:

        @client.create_function(
            fn_id="step_decorator", retries=0, trigger=inngest.TriggerEvent(event="c/sd")
        )
        async def fn_async(ctx: inngest.Context) -> None:
            state.step_1_output = await step_1_async("Hello")

            async def step_2() -> None:
                state.step_2_counter += 1

            await ctx.step.run("step_2", step_2)

        fn = fn_async

    run = await run_case(client, [fn], inngest.Event(name="c/sd"))
    assert run.status is eventbus.RunStatus.COMPLETED, run.error
    assert state.step_1_counter == 1
    assert state.step_2_counter == 1
    expected = [{"empty": None, "foo": {"bar": 1}, "msg": "Hello"}]
    assert state.step_1_output == expected
    assert step_output(run, "step_1") == expected


# ---------------------------------------------------------------- step callbacks


@VARIANTS
async def test_step_callback_kwargs(is_sync: bool) -> None:
    client = new_client()
    state: dict[str, Any] = {"step_args": []}

    def step_callback(a: int, *, b: str) -> None:
        state["step_args"] = [a, b]

    if is_sync:

        @client.create_function(
            fn_id="step_callback_kwargs", retries=0, trigger=inngest.TriggerEvent(event="c/k")
        )
        def fn_sync(ctx: inngest.ContextSync) -> None:
            ctx.step.run("step", functools.partial(step_callback, 1, b="a"))

        fn: Any = fn_sync
    else:

        @client.create_function(
            fn_id="step_callback_kwargs", retries=0, trigger=inngest.TriggerEvent(event="c/k")
        )
        async def fn_async(ctx: inngest.Context) -> None:
            await ctx.step.run("step", asyncify(functools.partial(step_callback, 1, b="a")))

        fn = fn_async

    run = await run_case(client, [fn], inngest.Event(name="c/k"))
    assert run.status is eventbus.RunStatus.COMPLETED
    assert state["step_args"] == [1, "a"]


async def test_async_fn_with_sync_step_callback() -> None:
    """A plain (sync) step callback in an async function works at runtime."""
    client = new_client()
    state: dict[str, Any] = {}

    @client.create_function(
        fn_id="async_fn_sync_cb", retries=0, trigger=inngest.TriggerEvent(event="c/cb")
    )
    async def fn_async(ctx: inngest.Context) -> None:
        state["step_output"] = await ctx.step.run("step_1", lambda: "hi")  # type: ignore[arg-type]

    run = await run_case(client, [fn_async], inngest.Event(name="c/cb"))
    assert run.status is eventbus.RunStatus.COMPLETED
    assert state["step_output"] == "hi"


# ---------------------------------------------------------------- wait_for_event_fulfill


@VARIANTS
async def test_wait_for_event_fulfill(is_sync: bool) -> None:
    client = new_client()
    state: dict[str, Any] = {}
    event_name = "c/wait_for_event_fulfill"

    if is_sync:

        @client.create_function(
            fn_id="wfe", retries=0, trigger=inngest.TriggerEvent(event=event_name)
        )
        def fn_sync(ctx: inngest.ContextSync) -> None:
            state["result"] = ctx.step.wait_for_event(
                "wait",
                event=f"{event_name}.fulfill",
                if_exp="event.data.id == async.data.id",
                timeout=datetime.timedelta(minutes=1),
            )

        fn: Any = fn_sync
    else:

        @client.create_function(
            fn_id="wfe", retries=0, trigger=inngest.TriggerEvent(event=event_name)
        )
        async def fn_async(ctx: inngest.Context) -> None:
            state["result"] = await ctx.step.wait_for_event(
                "wait",
                event=f"{event_name}.fulfill",
                if_exp="event.data.id == async.data.id",
                timeout=datetime.timedelta(minutes=1),
            )

        fn = fn_async

    async with eventbus.testing.running(client, functions=[fn]) as bus:
        await bus.send(inngest.Event(data={"id": 123}, name=event_name))
        await bus.settle()  # was asyncio.sleep(0.5): the wait is registered
        await bus.send(inngest.Event(data={"id": 123}, name=f"{event_name}.fulfill"))
        await bus.settle()
        (run,) = bus.runs("wfe")
    assert run.status is eventbus.RunStatus.COMPLETED
    result = state["result"]
    assert isinstance(result, inngest.Event)
    assert result.id != ""
    assert result.name == f"{event_name}.fulfill"
    assert result.ts > 0


# ---------------------------------------------------------------- nested_step_run


@VARIANTS
async def test_nested_step_run(is_sync: bool) -> None:
    client = new_client()
    state = {"after_step": 0, "step_2_catch": 0, "step_1": 0, "step_2": 0}
    retries = 5  # high, to check the error is not retried

    if is_sync:

        @client.create_function(
            fn_id="nested", retries=retries, trigger=inngest.TriggerEvent(event="c/n")
        )
        def fn_sync(ctx: inngest.ContextSync) -> None:
            def step_1() -> None:
                state["step_1"] += 1

                def step_2() -> None:
                    state["step_2"] += 1

                try:
                    ctx.step.run("step_2", step_2)
                except Exception:
                    state["step_2_catch"] += 1  # can't catch this error

            ctx.step.run("step_1", step_1)
            state["after_step"] += 1

        fn: Any = fn_sync
    else:

        @client.create_function(
            fn_id="nested", retries=retries, trigger=inngest.TriggerEvent(event="c/n")
        )
        async def fn_async(ctx: inngest.Context) -> None:
            async def step_1() -> None:
                state["step_1"] += 1

                async def step_2() -> None:
                    state["step_2"] += 1

                try:
                    await ctx.step.run("step_2", step_2)
                except Exception:
                    state["step_2_catch"] += 1

            await ctx.step.run("step_1", step_1)
            state["after_step"] += 1

        fn = fn_async

    run = await run_case(client, [fn], inngest.Event(name="c/n"))
    assert run.status is eventbus.RunStatus.FAILED
    assert run.error is not None
    assert run.error["message"].startswith("Nested steps are not supported.")
    assert run.attempts == 1
    assert state == {"after_step": 0, "step_2_catch": 0, "step_1": 1, "step_2": 0}


# ---------------------------------------------------------------- inconsistent_step_order


@VARIANTS
async def test_inconsistent_step_order(is_sync: bool) -> None:
    """Changing the order of steps between executions does not break the run."""
    client = new_client()
    state = {"request_counter": 0, "step_1": 0, "step_2": 0}

    if is_sync:

        @client.create_function(fn_id="order", retries=0, trigger=inngest.TriggerEvent(event="c/o"))
        def fn_sync(ctx: inngest.ContextSync) -> None:
            state["request_counter"] += 1

            def step_1() -> int:
                state["step_1"] += 1
                return 1

            def step_2() -> int:
                state["step_2"] += 1
                return 2

            steps: list[typing.Callable[[], int]] = [
                lambda: ctx.step.run("step_1", step_1),
                lambda: ctx.step.run("step_2", step_2),
            ]
            if state["request_counter"] % 2 == 0:
                steps.reverse()
            steps.pop()()
            steps.pop()()

        fn: Any = fn_sync
    else:

        @client.create_function(fn_id="order", retries=0, trigger=inngest.TriggerEvent(event="c/o"))
        async def fn_async(ctx: inngest.Context) -> None:
            state["request_counter"] += 1

            async def step_1() -> int:
                state["step_1"] += 1
                return 1

            async def step_2() -> int:
                state["step_2"] += 1
                return 2

            steps: list[typing.Callable[[], typing.Awaitable[int]]] = [
                lambda: ctx.step.run("step_1", step_1),
                lambda: ctx.step.run("step_2", step_2),
            ]
            if state["request_counter"] % 2 == 0:
                steps.reverse()
            await steps.pop()()
            await steps.pop()()

        fn = fn_async

    run = await run_case(client, [fn], inngest.Event(name="c/o"))
    assert run.status is eventbus.RunStatus.COMPLETED
    assert state["step_1"] == 1
    assert state["step_2"] == 1
    assert step_output(run, "step_1") == 1
    assert step_output(run, "step_2") == 2


# ---------------------------------------------------------------- client_send


@VARIANTS
async def test_client_send(is_sync: bool) -> None:
    """Upstream sends with the official client's async send; here the bus sends."""
    client = new_client()
    state = State()

    if is_sync:

        @client.create_function(
            fn_id="client_send", retries=0, trigger=inngest.TriggerEvent(event="c/s")
        )
        def fn_sync(ctx: inngest.ContextSync) -> None:
            state.run_id = ctx.run_id

        fn: Any = fn_sync
    else:

        @client.create_function(
            fn_id="client_send", retries=0, trigger=inngest.TriggerEvent(event="c/s")
        )
        async def fn_async(ctx: inngest.Context) -> None:
            state.run_id = ctx.run_id

        fn = fn_async

    run = await run_case(client, [fn], inngest.Event(name="c/s"))
    assert run.status is eventbus.RunStatus.COMPLETED
    assert run.run_id == state.run_id


# ---------------------------------------------------------------- invoke_by_object


@VARIANTS
async def test_invoke_by_object(is_sync: bool) -> None:
    client = new_client()
    state: dict[str, Any] = {}
    fn_id = "invoke_by_object"

    if is_sync:

        @client.create_function(
            fn_id=f"{fn_id}/invokee", retries=0, trigger=inngest.TriggerEvent(event="never")
        )
        def fn_receiver_sync(ctx: inngest.ContextSync) -> dict[str, dict[str, int]]:
            return {"foo": {"bar": 1}}

        @client.create_function(fn_id=fn_id, retries=0, trigger=inngest.TriggerEvent(event="c/i"))
        def fn_sender_sync(ctx: inngest.ContextSync) -> None:
            state["step_output"] = ctx.step.invoke("invoke", function=fn_receiver_sync)

        fns: list[Any] = [fn_receiver_sync, fn_sender_sync]
    else:

        @client.create_function(
            fn_id=f"{fn_id}/invokee", retries=0, trigger=inngest.TriggerEvent(event="never")
        )
        async def fn_receiver_async(ctx: inngest.Context) -> dict[str, dict[str, int]]:
            return {"foo": {"bar": 1}}

        @client.create_function(fn_id=fn_id, retries=0, trigger=inngest.TriggerEvent(event="c/i"))
        async def fn_sender_async(ctx: inngest.Context) -> None:
            state["step_output"] = await ctx.step.invoke("invoke", function=fn_receiver_async)

        fns = [fn_receiver_async, fn_sender_async]

    run = await run_case(client, fns, inngest.Event(name="c/i"), main=fn_id)
    assert run.status is eventbus.RunStatus.COMPLETED, run.error
    assert state["step_output"] == {"foo": {"bar": 1}}


# ---------------------------------------------------------------- parallel_steps


@VARIANTS
async def test_parallel_steps(is_sync: bool) -> None:
    """An invoke, two runs and a send in one parallel group; the group's output is a
    tuple in branch order."""
    client = new_client()
    state: dict[str, Any] = {"1a": 0, "1b": 0, "after": 0}
    fn_id = "parallel_steps"

    if is_sync:

        @client.create_function(
            fn_id=f"{fn_id}/child", retries=0, trigger=inngest.TriggerEvent(event="never")
        )
        def fn_child_sync(ctx: inngest.ContextSync) -> str:
            ctx.step.sleep("sleep", datetime.timedelta(seconds=1))
            return "done"

        @client.create_function(fn_id=fn_id, retries=0, trigger=inngest.TriggerEvent(event="c/ps"))
        def fn_sync(ctx: inngest.ContextSync) -> None:
            def _step_1a() -> int:
                state["1a"] += 1
                return 1

            def _step_1b() -> int:
                state["1b"] += 1
                return 2

            state["parallel_output"] = ctx.group.parallel(
                (
                    lambda: ctx.step.invoke("invoke", function=fn_child_sync),
                    lambda: ctx.step.run("1a", _step_1a),
                    lambda: ctx.step.run("1b", _step_1b),
                    lambda: ctx.step.send_event("send", events=inngest.Event(name="noop")),
                )
            )

            def _step_after() -> None:
                state["after"] += 1

            ctx.step.run("after", _step_after)

        fns: list[Any] = [fn_sync, fn_child_sync]
    else:

        @client.create_function(
            fn_id=f"{fn_id}/child", retries=0, trigger=inngest.TriggerEvent(event="never")
        )
        async def fn_child_async(ctx: inngest.Context) -> str:
            await ctx.step.sleep("sleep", datetime.timedelta(seconds=1))
            return "done"

        @client.create_function(fn_id=fn_id, retries=0, trigger=inngest.TriggerEvent(event="c/ps"))
        async def fn_async(ctx: inngest.Context) -> None:
            async def _step_1a() -> int:
                state["1a"] += 1
                return 1

            async def _step_1b() -> int:
                state["1b"] += 1
                return 2

            state["parallel_output"] = await ctx.group.parallel(
                (
                    lambda: ctx.step.invoke("invoke", function=fn_child_async),
                    lambda: ctx.step.run("1a", _step_1a),
                    lambda: ctx.step.run("1b", _step_1b),
                    lambda: ctx.step.send_event("send", events=inngest.Event(name="noop")),
                )
            )

            async def _step_after() -> None:
                state["after"] += 1

            await ctx.step.run("after", _step_after)

        fns = [fn_async, fn_child_async]

    run = await run_case(client, fns, inngest.Event(name="c/ps"))
    assert run.status is eventbus.RunStatus.COMPLETED, run.error
    assert state["parallel_output"] == ("done", 1, 2, [unittest.mock.ANY])
    assert state["1a"] == 1
    assert state["1b"] == 1
    assert state["after"] == 1


# ---------------------------------------------------------------- no_cancel_if_exp_not_match


@VARIANTS
async def test_no_cancel_if_exp_not_match(is_sync: bool) -> None:
    """A cancel event whose expression does not match leaves the run to complete."""
    client = new_client()
    state: dict[str, Any] = {"is_done": False}
    event_name = "c/no_cancel"
    cancel = [inngest.Cancel(event=f"{event_name}.cancel", if_exp="event.data.id == async.data.id")]
    gate = threading.Event()
    started = threading.Event()
    release = anyio.Event()

    if is_sync:

        @client.create_function(
            cancel=cancel,
            fn_id="no_cancel",
            retries=0,
            trigger=inngest.TriggerEvent(event=event_name),
        )
        def fn_sync(ctx: inngest.ContextSync) -> None:
            started.set()
            gate.wait(timeout=30)  # was time.sleep(3): let the cancel event arrive
            state["is_done"] = True

        fn: Any = fn_sync
    else:

        @client.create_function(
            cancel=cancel,
            fn_id="no_cancel",
            retries=0,
            trigger=inngest.TriggerEvent(event=event_name),
        )
        async def fn_async(ctx: inngest.Context) -> None:
            await release.wait()  # was asyncio.sleep(3)
            state["is_done"] = True

        fn = fn_async

    async with eventbus.testing.running(client, functions=[fn]) as bus:
        await bus.send(inngest.Event(name=event_name, data={"id": 123}))
        if is_sync:
            await anyio.to_thread.run_sync(started.wait)
        else:
            await anyio.wait_all_tasks_blocked()
        await bus.send(inngest.Event(name=f"{event_name}.cancel", data={"id": 456}))
        gate.set()
        release.set()
        await bus.settle()
        (run,) = bus.runs("no_cancel")
    assert run.status is eventbus.RunStatus.COMPLETED
    assert state["is_done"]


# ---------------------------------------------------------------- concurrent_sync_functions


async def test_concurrent_sync_functions() -> None:
    """Two runs of a sync function execute at once (neither blocks the other)."""
    client = new_client()
    run_ids: set[str] = set()
    both = threading.Event()

    @client.create_function(
        fn_id="concurrent", retries=0, trigger=inngest.TriggerEvent(event="c/cc")
    )
    def fn_sync(ctx: inngest.ContextSync) -> None:
        run_ids.add(ctx.run_id)
        if len(run_ids) == 2:
            both.set()
        # Upstream loops on time.sleep(0.1) until both runs started; bounded here.
        assert both.wait(timeout=30), "the other run never started"

    async with eventbus.testing.running(client, functions=[fn_sync]) as bus:
        await bus.send([inngest.Event(name="c/cc"), inngest.Event(name="c/cc")])
        await bus.settle()
        runs = bus.runs("concurrent")
    assert len(run_ids) == 2
    assert [r.status for r in runs] == [eventbus.RunStatus.COMPLETED] * 2


# ---------------------------------------------------------------- retry_after_error, sleep_until


@VARIANTS
async def test_retry_after_error(is_sync: bool) -> None:
    """RetryAfterError at function and step level: each retry comes after the delay it
    asked for, and within 2 s of it (times on the bus's virtual clock)."""
    client = new_client()
    clock = eventbus.VirtualClock()
    now = clock.now
    state: dict[str, datetime.datetime | None] = dict.fromkeys(
        ["fn_raise_1", "fn_retry_1", "step_raise", "step_retry", "fn_raise_2", "fn_retry_2"]
    )

    def body() -> None:
        if state["fn_raise_1"] is None:
            state["fn_raise_1"] = now()
            raise inngest.RetryAfterError("fn-1", 1000)
        if state["fn_retry_1"] is None:
            state["fn_retry_1"] = now()

    def step_fn() -> None:
        if state["step_raise"] is None:
            state["step_raise"] = now()
            raise inngest.RetryAfterError("step", datetime.timedelta(seconds=1))
        if state["step_retry"] is None:
            state["step_retry"] = now()

    def tail() -> None:
        if state["fn_raise_2"] is None:
            state["fn_raise_2"] = now()
            raise inngest.RetryAfterError("fn-2", now() + datetime.timedelta(seconds=1))
        if state["fn_retry_2"] is None:
            state["fn_retry_2"] = now()

    if is_sync:

        @client.create_function(
            fn_id="retry_after", retries=2, trigger=inngest.TriggerEvent(event="c/ra")
        )
        def fn_sync(ctx: inngest.ContextSync) -> None:
            body()
            ctx.step.run("step_1", step_fn)
            tail()

        fn: Any = fn_sync
    else:

        @client.create_function(
            fn_id="retry_after", retries=2, trigger=inngest.TriggerEvent(event="c/ra")
        )
        async def fn_async(ctx: inngest.Context) -> None:
            body()
            await ctx.step.run("step_1", asyncify(step_fn))
            tail()

        fn = fn_async

    async with eventbus.testing.running(client, functions=[fn], clock=clock) as bus:
        await bus.send(inngest.Event(name="c/ra"))
        await bus.settle(advance_time=True)
        (run,) = bus.runs("retry_after")
    assert run.status is eventbus.RunStatus.COMPLETED, run.error
    for raised, retried in (
        ("fn_raise_1", "fn_retry_1"),
        ("step_raise", "step_retry"),
        ("fn_raise_2", "fn_retry_2"),
    ):
        start, end = state[raised], state[retried]
        assert start is not None
        assert end is not None
        assert datetime.timedelta(seconds=1) <= end - start < datetime.timedelta(seconds=2)


@VARIANTS
async def test_sleep_until(is_sync: bool) -> None:
    """sleep_until(now + 2 s) wakes at least 2 s later (on the bus's virtual clock)."""
    client = new_client()
    clock = eventbus.VirtualClock()
    state: dict[str, datetime.datetime | None] = {"before": None, "after": None}

    if is_sync:

        @client.create_function(
            fn_id="sleep_until", retries=0, trigger=inngest.TriggerEvent(event="c/su")
        )
        def fn_sync(ctx: inngest.ContextSync) -> None:
            if state["before"] is None:
                state["before"] = clock.now()
            ctx.step.sleep_until("zzz", clock.now() + datetime.timedelta(seconds=2))
            if state["after"] is None:
                state["after"] = clock.now()

        fn: Any = fn_sync
    else:

        @client.create_function(
            fn_id="sleep_until", retries=0, trigger=inngest.TriggerEvent(event="c/su")
        )
        async def fn_async(ctx: inngest.Context) -> None:
            if state["before"] is None:
                state["before"] = clock.now()
            await ctx.step.sleep_until("zzz", clock.now() + datetime.timedelta(seconds=2))
            if state["after"] is None:
                state["after"] = clock.now()

        fn = fn_async

    async with eventbus.testing.running(client, functions=[fn], clock=clock) as bus:
        await bus.send(inngest.Event(name="c/su"))
        await bus.settle(advance_time=True)
        (run,) = bus.runs("sleep_until")
    assert run.status is eventbus.RunStatus.COMPLETED
    before, after = state["before"], state["after"]
    assert before is not None
    assert after is not None
    assert after - before >= datetime.timedelta(seconds=2)
