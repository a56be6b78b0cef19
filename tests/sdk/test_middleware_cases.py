"""The official SDK's middleware cases, run on eventbus.

Ported from inngest/inngest-py (commit 305bc6a, Apache License 2.0, (c) Inngest Inc.):
``tests/test_inngest/test_function/cases/function_middleware.py``, ``middleware_order.py``
and ``middleware_parallel_steps.py``, ``tests/test_inngest/test_client/
test_client_middleware.py`` and ``tests/test_inngest/test_experimental/
test_remote_state_middleware/cases/step_output_in_memory.py`` (the SDK's own
``RemoteStateMiddleware``, unchanged). Each keeps its middleware classes, functions and expected
hook order as written for the SDK. What changes is the harness: the runs execute in
``eventbus.testing.running`` instead of on a real server behind a web framework, so
``raw_request`` is ``None`` (there is no request) where upstream checks the framework's
request class; and the client-middleware test uses ``import eventbus as inngest``, since
its point is the client's own ``send``.
"""

from __future__ import annotations

import inspect
import typing
from typing import Any

import inngest
import pytest
from inngest._internal import middleware_lib, server_lib

import eventbus
import eventbus.testing

pytestmark = pytest.mark.anyio

VARIANTS = pytest.mark.parametrize("is_sync", [True, False], ids=["sync", "async"])


def new_client(**kwargs: Any) -> inngest.Inngest:
    return inngest.Inngest(app_id="cases", is_production=False, **kwargs)


async def run_case(client: Any, fn: Any, event: str) -> eventbus.Run:
    async with eventbus.testing.running(client, functions=[fn]) as bus:
        await bus.send(inngest.Event(name=event))
        await bus.settle(advance_time=True)
        (run,) = bus.runs(fn.local_id)
        return run


def step_output(run: eventbus.Run, step_id: str) -> Any:
    (record,) = [r for r in run.steps if r.id == step_id]
    return record.output


# ---------------------------------------------------------------- function_middleware


@VARIANTS
async def test_function_middleware(is_sync: bool) -> None:
    """function_middleware.py: every hook, in order, across the three executions of a
    function with one step.run and one send_event; transform_output changes what the
    step records."""
    client = new_client()
    state: dict[str, Any] = {"messages": [], "raw_request": "unset"}
    messages: list[str] = state["messages"]

    class _MiddlewareSync(inngest.MiddlewareSync):
        def __init__(self, client: inngest.Inngest, raw_request: object) -> None:
            super().__init__(client, raw_request)
            state["raw_request"] = raw_request

        def after_execution(self) -> None:
            messages.append("hook:after_execution")

        def after_send_events(self, result: inngest.SendEventsResult) -> None:
            messages.append("hook:after_send_events")

        def before_execution(self) -> None:
            messages.append("hook:before_execution")

        def before_response(self) -> None:
            messages.append("hook:before_response")

        def before_send_events(self, events: list[inngest.Event]) -> None:
            messages.append("hook:before_send_events")

        def transform_input(
            self,
            ctx: inngest.Context | inngest.ContextSync,
            function: inngest.Function[typing.Any],
            steps: inngest.StepMemos,
        ) -> None:
            messages.append("hook:transform_input")

        def transform_output(self, result: inngest.TransformOutputResult) -> None:
            messages.append("hook:transform_output")
            if result.output == "original output":
                result.output = "transformed output"

    class _MiddlewareAsync(inngest.Middleware):
        def __init__(self, client: inngest.Inngest, raw_request: object) -> None:
            super().__init__(client, raw_request)
            state["raw_request"] = raw_request

        async def after_execution(self) -> None:
            messages.append("hook:after_execution")

        async def after_send_events(self, result: inngest.SendEventsResult) -> None:
            messages.append("hook:after_send_events")

        async def before_execution(self) -> None:
            messages.append("hook:before_execution")

        async def before_response(self) -> None:
            messages.append("hook:before_response")

        async def before_send_events(self, events: list[inngest.Event]) -> None:
            messages.append("hook:before_send_events")

        async def transform_input(
            self,
            ctx: inngest.Context | inngest.ContextSync,
            function: inngest.Function[typing.Any],
            steps: inngest.StepMemos,
        ) -> None:
            messages.append("hook:transform_input")

        async def transform_output(self, result: inngest.TransformOutputResult) -> None:
            messages.append("hook:transform_output")
            if result.output == "original output":
                result.output = "transformed output"

    if is_sync:

        @client.create_function(
            fn_id="function_middleware",
            middleware=[_MiddlewareSync],
            retries=0,
            trigger=inngest.TriggerEvent(event="cases/function_middleware"),
        )
        def fn_sync(ctx: inngest.ContextSync) -> None:
            state["run_id"] = ctx.run_id

            def _step_1() -> str:
                return "original output"

            messages.append("fn_logic: before step_1")
            ctx.step.run("step_1", _step_1)
            messages.append("fn_logic: after step_1")
            ctx.step.send_event("send", [inngest.Event(name="dummy")])
            messages.append("fn_logic: after send")

        fn: Any = fn_sync
    else:

        @client.create_function(
            fn_id="function_middleware",
            middleware=[_MiddlewareAsync],
            retries=0,
            trigger=inngest.TriggerEvent(event="cases/function_middleware"),
        )
        async def fn_async(ctx: inngest.Context) -> None:
            state["run_id"] = ctx.run_id

            async def _step_1() -> str:
                return "original output"

            messages.append("fn_logic: before step_1")
            await ctx.step.run("step_1", _step_1)
            messages.append("fn_logic: after step_1")
            await ctx.step.send_event("send", [inngest.Event(name="dummy")])
            messages.append("fn_logic: after send")

        fn = fn_async

    run = await run_case(client, fn, "cases/function_middleware")
    assert run.status is eventbus.RunStatus.COMPLETED
    assert run.run_id == state["run_id"]
    assert state["raw_request"] is None  # upstream: the framework's request object
    assert messages == [
        # Entry 1
        "hook:transform_input",
        "hook:before_execution",
        "fn_logic: before step_1",
        "hook:after_execution",
        "hook:transform_output",
        "hook:before_response",
        # Entry 2
        "hook:transform_input",
        "fn_logic: before step_1",
        "hook:before_execution",
        "fn_logic: after step_1",
        "hook:before_send_events",
        "hook:after_send_events",
        "hook:after_execution",
        "hook:transform_output",
        "hook:before_response",
        # Entry 3
        "hook:transform_input",
        "fn_logic: before step_1",
        "fn_logic: after step_1",
        "hook:before_execution",
        "fn_logic: after send",
        "hook:after_execution",
        "hook:transform_output",
        "hook:before_response",
    ]
    assert step_output(run, "step_1") == "transformed output"


# ---------------------------------------------------------------- middleware_order


def _get_method_name() -> str:
    frame = inspect.currentframe()
    assert frame is not None
    frame = frame.f_back
    assert frame is not None
    class_name = frame.f_locals["self"].__class__.__name__
    method_name = frame.f_code.co_name
    return f"{class_name}.{method_name}"


class _MwSyncBase(inngest.MiddlewareSync):
    def append_message(self, message: str) -> None:
        raise NotImplementedError()

    def after_execution(self) -> None:
        self.append_message(_get_method_name())

    def after_send_events(self, result: inngest.SendEventsResult) -> None:
        self.append_message(_get_method_name())

    def before_execution(self) -> None:
        self.append_message(_get_method_name())

    def before_response(self) -> None:
        self.append_message(_get_method_name())

    def before_send_events(self, events: list[inngest.Event]) -> None:
        self.append_message(_get_method_name())

    def transform_input(
        self,
        ctx: inngest.Context | inngest.ContextSync,
        function: inngest.Function[typing.Any],
        steps: inngest.StepMemos,
    ) -> None:
        self.append_message(_get_method_name())

    def transform_output(self, result: inngest.TransformOutputResult) -> None:
        self.append_message(_get_method_name())


class _MwAsyncBase(inngest.Middleware):
    def append_message(self, message: str) -> None:
        raise NotImplementedError()

    async def after_execution(self) -> None:
        self.append_message(_get_method_name())

    async def after_send_events(self, result: inngest.SendEventsResult) -> None:
        self.append_message(_get_method_name())

    async def before_execution(self) -> None:
        self.append_message(_get_method_name())

    async def before_response(self) -> None:
        self.append_message(_get_method_name())

    async def before_send_events(self, events: list[inngest.Event]) -> None:
        self.append_message(_get_method_name())

    async def transform_input(
        self,
        ctx: inngest.Context | inngest.ContextSync,
        function: inngest.Function[typing.Any],
        steps: inngest.StepMemos,
    ) -> None:
        self.append_message(_get_method_name())

    async def transform_output(self, result: inngest.TransformOutputResult) -> None:
        self.append_message(_get_method_name())


@VARIANTS
async def test_middleware_order(is_sync: bool) -> None:
    """middleware_order.py: "before" hooks in list order, "after" hooks reversed."""
    client = new_client()
    messages: list[str] = []

    class Sync1(_MwSyncBase):
        def append_message(self, message: str) -> None:
            messages.append(message)

    class Sync2(_MwSyncBase):
        def append_message(self, message: str) -> None:
            messages.append(message)

    class Async1(_MwAsyncBase):
        def append_message(self, message: str) -> None:
            messages.append(message)

    class Async2(_MwAsyncBase):
        def append_message(self, message: str) -> None:
            messages.append(message)

    event_name = "cases/middleware_order"
    if is_sync:

        @client.create_function(
            fn_id="middleware_order",
            middleware=[Sync1, Sync2],
            retries=0,
            trigger=inngest.TriggerEvent(event=event_name),
        )
        def fn_sync(ctx: inngest.ContextSync) -> None:
            ctx.step.send_event("a", inngest.Event(name=f"{event_name}-never"))

        fn: Any = fn_sync
    else:

        @client.create_function(
            fn_id="middleware_order",
            middleware=[Async1, Async2],
            retries=0,
            trigger=inngest.TriggerEvent(event=event_name),
        )
        async def fn_async(ctx: inngest.Context) -> None:
            await ctx.step.send_event("a", inngest.Event(name=f"{event_name}-never"))

        fn = fn_async

    run = await run_case(client, fn, event_name)
    assert run.status is eventbus.RunStatus.COMPLETED
    prefix = "Sync" if is_sync else "Async"
    expected = [
        "1.transform_input",
        "2.transform_input",
        "1.before_execution",
        "2.before_execution",
        "1.before_send_events",
        "2.before_send_events",
        "2.after_send_events",
        "1.after_send_events",
        "2.after_execution",
        "1.after_execution",
        "2.transform_output",
        "1.transform_output",
        "1.before_response",
        "2.before_response",
        "1.transform_input",
        "2.transform_input",
        "1.before_execution",
        "2.before_execution",
        "2.after_execution",
        "1.after_execution",
        "2.transform_output",
        "1.transform_output",
        "1.before_response",
        "2.before_response",
    ]
    assert messages == [f"{prefix}{m}" for m in expected]


# ---------------------------------------------------------------- middleware_parallel_steps


@VARIANTS
async def test_middleware_parallel_steps(is_sync: bool) -> None:
    """middleware_parallel_steps.py: transform_output sees each parallel step, the
    converging step and the function's output, with the SDK's result classes."""
    client = new_client()
    results: list[inngest.TransformOutputResult] = []

    class _Middleware(inngest.MiddlewareSync):
        def transform_output(self, result: inngest.TransformOutputResult) -> None:
            results.append(result)

    async def asyncify(value: Any) -> Any:
        return value

    if is_sync:

        @client.create_function(
            fn_id="middleware_parallel_steps",
            middleware=[_Middleware],
            retries=0,
            trigger=inngest.TriggerEvent(event="cases/middleware_parallel_steps"),
        )
        def fn_sync(ctx: inngest.ContextSync) -> str:
            ctx.group.parallel(
                (
                    lambda: ctx.step.run("1.1", lambda: "1.1 (step)"),
                    lambda: ctx.step.run("1.2", lambda: "1.2 (step)"),
                )
            )
            ctx.step.run("converge", lambda: None)
            return "2 (fn)"

        fn: Any = fn_sync
    else:

        @client.create_function(
            fn_id="middleware_parallel_steps",
            middleware=[_Middleware],
            retries=0,
            trigger=inngest.TriggerEvent(event="cases/middleware_parallel_steps"),
        )
        async def fn_async(ctx: inngest.Context) -> str:
            await ctx.group.parallel(
                (
                    lambda: ctx.step.run("1.1", lambda: asyncify("1.1 (step)")),
                    lambda: ctx.step.run("1.2", lambda: asyncify("1.2 (step)")),
                )
            )
            await ctx.step.run("converge", lambda: asyncify(None))
            return "2 (fn)"

        fn = fn_async

    run = await run_case(client, fn, "cases/middleware_parallel_steps")
    assert run.status is eventbus.RunStatus.COMPLETED
    assert run.output == "2 (fn)"

    def info(step_id: str) -> Any:
        return middleware_lib.TransformOutputStepInfo(
            id=step_id, op=server_lib.Opcode.STEP_RUN, opts=None
        )

    expected = [
        inngest.TransformOutputResult(error=None, output="1.1 (step)", step=info("1.1")),
        inngest.TransformOutputResult(error=None, output="1.2 (step)", step=info("1.2")),
        inngest.TransformOutputResult(error=None, output="2 (fn)", step=None),
        inngest.TransformOutputResult(error=None, output=None, step=info("converge")),
    ]
    actual = sorted(results, key=lambda x: str(x.output))
    for i, (a, e) in enumerate(zip(actual, expected, strict=False)):
        assert a.__dict__ == e.__dict__, f"index={i}"
    assert len(actual) == len(expected)


# ---------------------------------------------------------------- remote state


@VARIANTS
async def test_remote_state_step_output_in_memory(is_sync: bool) -> None:
    """step_output_in_memory.py: the SDK's RemoteStateMiddleware stores step outputs in
    its driver and records a placeholder; replays get the real value back (asserted in
    the handler, which fails the run otherwise)."""
    import datetime

    from inngest.experimental import remote_state_middleware

    client = new_client()
    driver = remote_state_middleware.InMemoryDriver()
    middleware = [remote_state_middleware.RemoteStateMiddleware.factory(driver)]
    event_name = "cases/step_output_in_memory"

    if is_sync:

        @client.create_function(
            fn_id="step_output_in_memory",
            middleware=middleware,
            retries=0,
            trigger=inngest.TriggerEvent(event=event_name),
        )
        def fn_sync(ctx: inngest.ContextSync) -> str:
            def _step_1() -> str:
                return "test string"

            step_1_output = ctx.step.run("step_1", _step_1)
            assert step_1_output == "test string"

            def _step_2() -> list[inngest.JSON]:
                return [{"a": {"b": 1}}]

            step_2_output = ctx.step.run("step_2", _step_2)
            assert step_2_output == [{"a": {"b": 1}}]

            ctx.step.sleep("zzz", datetime.timedelta(seconds=1))
            ctx.step.wait_for_event("wait", event="never", timeout=datetime.timedelta(seconds=1))
            return "function output"

        fn: Any = fn_sync
    else:

        @client.create_function(
            fn_id="step_output_in_memory",
            middleware=middleware,
            retries=0,
            trigger=inngest.TriggerEvent(event=event_name),
        )
        async def fn_async(ctx: inngest.Context) -> str:
            async def _step_1() -> str:
                return "test string"

            step_1_output = await ctx.step.run("step_1", _step_1)
            assert step_1_output == "test string"

            async def _step_2() -> list[inngest.JSON]:
                return [{"a": {"b": 1}}]

            step_2_output = await ctx.step.run("step_2", _step_2)
            assert step_2_output == [{"a": {"b": 1}}]

            await ctx.step.sleep("zzz", datetime.timedelta(seconds=1))
            await ctx.step.wait_for_event(
                "wait", event="never", timeout=datetime.timedelta(seconds=1)
            )
            return "function output"

        fn = fn_async

    run = await run_case(client, fn, event_name)
    assert run.status is eventbus.RunStatus.COMPLETED, run.error
    for step_id in ("step_1", "step_2"):  # placeholders, not the values
        output = step_output(run, step_id)
        assert isinstance(output, dict)
        assert "__REMOTE_STATE__" in output
    assert run.output == "function output"


# ---------------------------------------------------------------- client middleware


EXPECTED_CLIENT_HOOKS = [
    "before_send_events",
    "after_send_events",
    # Entry 1
    "transform_input",
    "before_execution",
    "after_execution",
    "transform_output",
    "before_response",
    # Entry 2
    "transform_input",
    "before_execution",
    "before_send_events",
    "after_send_events",
    "after_execution",
    "transform_output",
    "before_response",
    # Entry 3
    "transform_input",
    "before_execution",
    "after_execution",
    "transform_output",
    "before_response",
]


async def test_client_middleware_async() -> None:
    """test_client_middleware.py (async), with ``import eventbus as inngest``: the
    client's middleware wraps its own send and every execution of its functions."""
    hook_list: list[str] = []
    m = eventbus  # `import eventbus as inngest`

    class Middleware(m.Middleware):
        async def after_execution(self) -> None:
            hook_list.append("after_execution")

        async def after_send_events(self, result: eventbus.SendEventsResult) -> None:
            hook_list.append("after_send_events")

        async def before_execution(self) -> None:
            hook_list.append("before_execution")

        async def before_response(self) -> None:
            hook_list.append("before_response")

        async def before_send_events(self, events: list[Any]) -> None:
            hook_list.append("before_send_events")

        async def transform_input(self, ctx: Any, function: Any, steps: eventbus.StepMemos) -> None:
            hook_list.append("transform_input")

        async def transform_output(self, result: eventbus.TransformOutputResult) -> None:
            hook_list.append("transform_output")
            if result.output == "original output":
                result.output = "transformed output"

    client = m.Inngest(app_id="client-middleware", is_production=False, middleware=[Middleware])

    @client.create_function(fn_id="fn", retries=0, trigger=m.TriggerEvent(event="trigger"))
    async def fn(ctx: eventbus.Context) -> None:
        async def _step_1() -> str:
            return "original output"

        await ctx.step.run("step_1", _step_1)
        await ctx.step.send_event("send", m.Event(name="dummy"))

    async with eventbus.testing.running(client) as bus:
        await client.send(m.Event(name="trigger"))
        await bus.settle()
        (run,) = bus.runs("fn")
    assert run.status is eventbus.RunStatus.COMPLETED
    assert hook_list == EXPECTED_CLIENT_HOOKS
    assert step_output(run, "step_1") == "transformed output"


def test_client_middleware_sync() -> None:
    """test_client_middleware.py (sync), with ``import eventbus as inngest``: plain hooks
    around ``send_sync`` and a sync function, on a client run with ``with client:``."""
    hook_list: list[str] = []
    results: list[tuple[int, list[str]]] = []
    m = eventbus

    class Middleware(m.MiddlewareSync):
        def after_execution(self) -> None:
            hook_list.append("after_execution")

        def after_send_events(self, result: eventbus.SendEventsResult) -> None:
            hook_list.append("after_send_events")
            results.append((len(hook_list) - 1, result.ids))

        def before_execution(self) -> None:
            hook_list.append("before_execution")

        def before_response(self) -> None:
            hook_list.append("before_response")

        def before_send_events(self, events: list[Any]) -> None:
            hook_list.append("before_send_events")

        def transform_input(self, ctx: Any, function: Any, steps: eventbus.StepMemos) -> None:
            hook_list.append("transform_input")

        def transform_output(self, result: eventbus.TransformOutputResult) -> None:
            hook_list.append("transform_output")
            if result.output == "original output":
                result.output = "transformed output"

    client = m.Inngest(app_id="client-middleware", is_production=False, middleware=[Middleware])

    @client.create_function(fn_id="fn", retries=0, trigger=m.TriggerEvent(event="trigger"))
    def fn(ctx: eventbus.ContextSync) -> None:
        ctx.step.run("step_1", lambda: "original output")
        ctx.step.send_event("send", m.Event(name="dummy"))

    with client:
        sent = client.send_sync(m.Event(name="trigger"))
        client.settle_sync()
        (run,) = client.runs(fn.id)
    assert run.status is eventbus.RunStatus.COMPLETED
    # The engine runs in its own thread here, so the run may start before send_sync's
    # after_send_events (as it may on Inngest): only that hook's place can vary.
    ((index,),) = [(i,) for i, ids in results if ids == sent]  # send_sync's own
    assert hook_list[0] == "before_send_events"
    del hook_list[index]
    assert hook_list == [h for i, h in enumerate(EXPECTED_CLIENT_HOOKS) if i != 1]
    assert step_output(run, "step_1") == "transformed output"


async def test_sdk_middleware_sees_and_replaces_the_sdks_errors() -> None:
    """Not an upstream case: the SDK's middleware sees the SDK's error classes in
    transform_output, and an SDK error it puts there is applied (NonRetriableError: no
    retries)."""
    client = new_client()
    seen: list[Any] = []

    class Replace(inngest.MiddlewareSync):
        def transform_output(self, result: inngest.TransformOutputResult) -> None:
            seen.append(type(result.error))
            if result.step is None and result.error is not None:
                result.error = inngest.NonRetriableError("replaced")

    @client.create_function(
        fn_id="errors", middleware=[Replace], retries=3, trigger=inngest.TriggerEvent(event="e")
    )
    async def fn(ctx: inngest.Context) -> None:
        raise inngest.RetryAfterError("later", 1000)

    run = await run_case(client, fn, "e")
    assert run.status is eventbus.RunStatus.FAILED
    assert run.attempts == 1
    assert run.error is not None
    assert run.error["message"] == "replaced"
    assert seen == [inngest.RetryAfterError]
