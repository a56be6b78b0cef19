"""Middleware on eventbus's own functions: hooks, their order, what they can change, and
what happens when they fail. (The SDK's own middleware cases: tests/sdk.)"""

from __future__ import annotations

import datetime
from typing import Any

import pytest

import eventbus
from tests.helpers import make_client, on

pytestmark = pytest.mark.anyio


class Recorder(eventbus.MiddlewareSync):
    """Records every hook, with what it was given, in ``log`` (set by the test)."""

    log: list[Any]

    def transform_input(self, ctx: Any, function: Any, steps: eventbus.StepMemos) -> None:
        self.log.append(("transform_input", steps.size))

    def before_execution(self) -> None:
        self.log.append("before_execution")

    def after_execution(self) -> None:
        self.log.append("after_execution")

    def transform_output(self, result: eventbus.TransformOutputResult) -> None:
        step = None if result.step is None else (result.step.id, result.step.op.value)
        error = None if result.error is None else type(result.error).__name__
        output = result.output if result.has_output() else "<empty>"
        self.log.append(("transform_output", step, output, error))

    def before_response(self) -> None:
        self.log.append("before_response")


def recorder(log: list[Any]) -> type[Recorder]:
    return type("Rec", (Recorder,), {"log": log})


async def run_one(client: eventbus.Inngest, data: dict[str, Any] | None = None) -> eventbus.Run:
    async with client:
        (event_id,) = await client.send({"name": "app/e", "data": data or {}})
        await client.settle(advance_time=True)
    (run,) = client.runs(event_id=event_id)
    return run


async def test_a_retried_step_shows_its_error_then_its_output() -> None:
    """Each attempt of a flaky step ends an execution: transform_output sees the error
    (op StepError, output None, as the SDK reports it), then the output; the function's
    output last."""
    log: list[Any] = []
    client = make_client()
    calls = [0]

    def flaky() -> str:
        calls[0] += 1
        if calls[0] == 1:
            raise ConnectionError("down")
        return "up"

    @client.create_function(fn_id="f", trigger=on("app/e"), middleware=[recorder(log)])
    async def f(ctx: eventbus.Context) -> str:
        return await ctx.step.run("fetch", flaky) + "!"

    run = await run_one(client)
    assert run.status is eventbus.RunStatus.COMPLETED
    assert run.output == "up!"
    outputs = [entry for entry in log if entry[0] == "transform_output"]
    assert outputs == [
        ("transform_output", ("fetch", "StepError"), None, "ConnectionError"),
        ("transform_output", ("fetch", "StepRun"), "up", None),
        ("transform_output", None, "up!", None),
    ]
    assert [entry for entry in log if entry[0] == "transform_input"] == [
        ("transform_input", 0),
        ("transform_input", 0),
        ("transform_input", 1),
    ]


async def test_sleep_wait_and_invoke_end_executions_with_their_opcodes() -> None:
    """A sleep, a wait and an invoke each end an execution with output None (as the SDK
    reports them); the handler resumes after each with the memoized steps."""
    log: list[Any] = []
    client = make_client()

    @client.create_function(fn_id="child", trigger=on("app/child"))
    async def child(ctx: eventbus.Context) -> int:
        return 7

    @client.create_function(fn_id="f", trigger=on("app/e"), middleware=[recorder(log)])
    async def f(ctx: eventbus.Context) -> list[Any]:
        await ctx.step.sleep("nap", datetime.timedelta(seconds=5))
        found = await ctx.step.wait_for_event("wait", event="app/never", timeout="1s")
        value = await ctx.step.invoke("call", function=child)
        return [found, value]

    run = await run_one(client)
    assert run.status is eventbus.RunStatus.COMPLETED
    assert run.output == [None, 7]
    ends = [entry[1:3] for entry in log if entry[0] == "transform_output"]
    assert ends == [
        (("nap", "Sleep"), None),
        (("wait", "WaitForEvent"), None),
        (("call", "InvokeFunction"), None),
        (None, [None, 7]),
    ]


async def test_a_step_failed_for_good_is_replayed_into_the_handler() -> None:
    """With middleware, a step that fails for good ends the execution; the next one
    replays the failure as StepError, which the handler may catch."""
    log: list[Any] = []
    client = make_client()

    def broken() -> None:
        raise ValueError("no")

    @client.create_function(fn_id="f", trigger=on("app/e"), retries=0, middleware=[recorder(log)])
    async def f(ctx: eventbus.Context) -> str:
        try:
            await ctx.step.run("broken", broken)
        except eventbus.StepError as exc:
            return f"caught {exc.name}"
        return "not reached"

    run = await run_one(client)
    assert run.status is eventbus.RunStatus.COMPLETED
    assert run.output == "caught ValueError"
    assert log.count("before_response") == 2
    assert ("transform_output", ("broken", "StepFailed"), None, "ValueError") in log


async def test_transform_output_can_replace_clear_or_set_the_functions_error() -> None:
    """Changes to result.output and result.error are what the run records."""

    class Policy(eventbus.Middleware):
        async def transform_output(self, result: eventbus.TransformOutputResult) -> None:
            if result.step is not None:
                return
            if isinstance(result.error, KeyError):
                result.error, result.output = None, "recovered"
            elif result.output == "veto":
                result.error = eventbus.NonRetriableError("vetoed")
            elif result.has_output():
                result.output = {"wrapped": result.output}

    client = make_client(middleware=[Policy])

    @client.create_function(fn_id="f", trigger=on("app/e"), retries=0)
    async def f(ctx: eventbus.Context) -> Any:
        kind = ctx.event.data["kind"]
        if kind == "missing":
            raise KeyError("k")
        return kind

    assert (await run_one(client, {"kind": "plain"})).output == {"wrapped": "plain"}
    recovered = await run_one(client, {"kind": "missing"})
    assert (recovered.status, recovered.output) == (eventbus.RunStatus.COMPLETED, "recovered")
    vetoed = await run_one(client, {"kind": "veto"})
    assert vetoed.status is eventbus.RunStatus.FAILED
    assert vetoed.error is not None
    assert vetoed.error["message"] == "vetoed"


@pytest.mark.parametrize(
    "hook",
    [
        "factory",
        "transform_input",
        "before_execution",
        "after_execution",
        "transform_output",
        "before_response",
    ],
)
async def test_a_failing_hook_fails_the_execution_and_is_retried(hook: str) -> None:
    """A hook that raises fails that execution (the handler cannot catch it); it is
    retried as the function's retries say, and the run fails with the hook's error."""
    calls = [0]

    class Failing(eventbus.MiddlewareSync):
        def __init__(self, client: Any, raw_request: object) -> None:
            super().__init__(client, raw_request)
            if hook == "factory":
                raise RuntimeError("hook factory")

        def __getattribute__(self, name: str) -> Any:
            if name == hook:

                def fail(*args: Any) -> None:
                    raise RuntimeError(f"hook {name}")

                return fail
            return super().__getattribute__(name)

    client = make_client()

    @client.create_function(fn_id="f", trigger=on("app/e"), retries=2, middleware=[Failing])
    async def f(ctx: eventbus.Context) -> str:
        calls[0] += 1
        try:
            return await ctx.step.run("s", lambda: "v")
        except Exception:  # must not see the hook's error
            return "swallowed"

    run = await run_one(client)
    assert run.status is eventbus.RunStatus.FAILED
    assert run.error is not None
    assert run.error["message"].startswith("hook ")
    assert run.attempts == 3


async def test_a_transformed_step_output_that_is_not_json_fails_the_execution() -> None:
    """transform_output must leave JSON: anything else fails with the reason."""

    class Bad(eventbus.MiddlewareSync):
        def transform_output(self, result: eventbus.TransformOutputResult) -> None:
            if result.step is not None:
                result.output = {1, 2}

    client = make_client()

    @client.create_function(fn_id="f", trigger=on("app/e"), retries=0, middleware=[Bad])
    async def f(ctx: eventbus.Context) -> str:
        return await ctx.step.run("s", lambda: "v")

    run = await run_one(client)
    assert run.status is eventbus.RunStatus.FAILED
    assert run.error is not None
    assert "transform_output gave step 's'" in run.error["message"]


async def test_transform_input_can_replace_the_logger_and_see_the_function() -> None:
    """transform_input gets the handler's ctx (its logger may be replaced) and the
    eventbus.Function."""
    seen: list[Any] = []

    class Lines:
        def info(self, message: str) -> None:
            seen.append(message)

    class Inject(eventbus.MiddlewareSync):
        def transform_input(self, ctx: Any, function: Any, steps: eventbus.StepMemos) -> None:
            seen.append(function.local_id)
            ctx.logger = Lines()

    client = make_client(middleware=[Inject])

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> None:
        ctx.logger.info("hello")

    await run_one(client)
    assert seen == ["f", "hello"]


async def test_before_send_events_can_change_the_events_sent() -> None:
    """Client middleware sees client.send's events (and may change them) and the ids."""
    results: list[list[str]] = []

    class Stamp(eventbus.MiddlewareSync):
        def before_send_events(self, events: list[Any]) -> None:
            for event in events:
                event["data"]["stamped"] = True

        def after_send_events(self, result: eventbus.SendEventsResult) -> None:
            assert result.error is None
            results.append(result.ids)

    client = make_client(middleware=[Stamp])
    async with client:
        ids = await client.send([{"name": "app/x", "data": {}}])
        stored = client.engine.get_event(ids[0]) or client.engine.events("app/x")[0]
    assert stored.data == {"stamped": True}
    assert results == [ids]


async def test_a_failed_send_reaches_after_send_events_with_its_error() -> None:
    """A send that fails still calls after_send_events, with the error, then raises."""
    results: list[eventbus.SendEventsResult] = []

    class Watch(eventbus.MiddlewareSync):
        def after_send_events(self, result: eventbus.SendEventsResult) -> None:
            results.append(result)

    client = make_client(middleware=[Watch])
    async with client:
        with pytest.raises(eventbus.EventValidationError):
            await client.send({"name": ""})
    ((result),) = results
    assert result.ids == []
    assert result.error is not None
    assert "name" in result.error


def test_send_sync_refuses_async_hooks_clearly() -> None:
    """send_sync cannot await an async hook: a UsageError says what to do."""

    class AsyncOnly(eventbus.Middleware):
        async def before_send_events(self, events: list[Any]) -> None:
            return None

    client = make_client(middleware=[AsyncOnly])
    with client, pytest.raises(eventbus.UsageError, match=r"await client\.send"):
        client.send_sync({"name": "app/x"})


async def test_add_middleware_applies_to_functions_made_before() -> None:
    """add_middleware, as in the SDK, reaches functions already created."""
    log: list[Any] = []
    client = make_client()

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> int:
        return 1

    client.add_middleware(recorder(log))
    run = await run_one(client)
    assert run.output == 1
    assert log == [
        ("transform_input", 0),
        "before_execution",
        "after_execution",
        ("transform_output", None, 1, None),
        "before_response",
    ]


async def test_parallel_steps_each_reach_transform_output() -> None:
    """In a parallel group each step's output goes through transform_output (and is
    recorded as changed); the group runs in one execution."""

    class Upper(eventbus.MiddlewareSync):
        def transform_output(self, result: eventbus.TransformOutputResult) -> None:
            if isinstance(result.output, str):
                result.output = result.output.upper()

    client = make_client(middleware=[Upper])

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> list[str]:
        parts = await ctx.group.parallel(
            (lambda: ctx.step.run("a", lambda: "a"), lambda: ctx.step.run("b", lambda: "b"))
        )
        return [*parts, "c"]

    run = await run_one(client)
    assert run.output == ["A", "B", "c"]  # the list itself is not a str


def test_middleware_must_be_classes_in_a_list() -> None:
    """middleware= takes a list of classes; anything else is named in the error."""
    client = make_client()
    with pytest.raises(eventbus.FunctionConfigError, match="must be a list"):
        client.create_function(fn_id="f", trigger=on("app/e"), middleware=Recorder)  # type: ignore[arg-type]
    with pytest.raises(eventbus.FunctionConfigError, match="not a middleware class"):
        client.add_middleware(object())


async def test_serializer_and_output_type_as_the_sdk_applies_them() -> None:
    """With a client serializer, output_type serializes a step's result and the
    function's output to JSON, and deserializes them for the handler and the invoker."""
    pydantic = pytest.importorskip("pydantic")

    class Item(pydantic.BaseModel):  # type: ignore[name-defined,misc]
        sku: str
        count: int

    client = make_client(serializer=eventbus.PydanticSerializer())

    @client.create_function(fn_id="child", trigger=on("app/child"), output_type=Item)
    async def child(ctx: eventbus.Context) -> Any:
        return Item(sku="b", count=2)

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> list[Any]:
        item = await ctx.step.run("make", lambda: Item(sku="a", count=1), output_type=Item)
        other = await ctx.step.invoke("call", function=child)
        assert isinstance(item, Item)
        assert isinstance(other, Item)
        return [item.sku, other.count]

    run = await run_one(client)
    assert run.status is eventbus.RunStatus.COMPLETED, run.error
    assert run.output == ["a", 2]
    (make,) = [s for s in run.steps if s.id == "make"]
    assert make.output == {"sku": "a", "count": 1}


async def test_a_failing_serializer_fails_like_the_handler() -> None:
    """A serializer that raises on the function's output is that execution's error."""

    class Refuses:
        def serialize(self, obj: object, typ: object) -> object:
            raise TypeError("cannot serialize")

        def deserialize(self, obj: object, typ: object) -> object:
            return obj

    client = make_client(serializer=Refuses())

    @client.create_function(fn_id="f", trigger=on("app/e"), retries=0, output_type=int)
    async def f(ctx: eventbus.Context) -> int:
        return 1

    run = await run_one(client)
    assert run.status is eventbus.RunStatus.FAILED
    assert run.error is not None
    assert run.error["message"] == "cannot serialize"


async def test_hooks_are_optional_and_the_objects_read_clearly() -> None:
    """A factory may return any object: missing hooks are skipped. The hook objects
    print what they hold."""
    client = make_client(middleware=[lambda client, raw_request: object()])

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> str:
        return await ctx.step.run("s", lambda: "v")

    assert (await run_one(client)).output == "v"
    memos = eventbus.StepMemos({"s": eventbus.StepOutput("v")})
    assert repr(memos) == "<StepMemos ['s']>"
    assert [m.data for m in memos.values()] == ["v"]
    empty = eventbus.TransformOutputResult(None, eventbus._middleware.EMPTY, None)
    assert not empty.has_output()
    assert "no output" in repr(empty)
    assert repr(eventbus.PydanticSerializer()) == "PydanticSerializer()"


def test_a_failed_send_sync_reaches_after_send_events() -> None:
    """send_sync, too, reports a failed send to after_send_events before raising."""
    results: list[eventbus.SendEventsResult] = []

    class Watch(eventbus.MiddlewareSync):
        def after_send_events(self, result: eventbus.SendEventsResult) -> None:
            results.append(result)

    client = make_client(middleware=[Watch])
    with client, pytest.raises(eventbus.EventValidationError):
        client.send_sync({"name": ""})
    ((result),) = results
    assert result.error is not None


async def test_a_run_cancelled_while_executing_skips_the_closing_hooks() -> None:
    """A run cancelled while its handler runs ends CANCELLED; its output never reaches
    transform_output."""
    import anyio

    log: list[Any] = []
    release = anyio.Event()
    client = make_client(middleware=[recorder(log)])

    @client.create_function(
        fn_id="f", trigger=on("app/e"), cancel=[eventbus.Cancel(event="app/stop")]
    )
    async def f(ctx: eventbus.Context) -> str:
        await release.wait()
        return "done"

    async with client:
        await client.send({"name": "app/e"})
        await anyio.wait_all_tasks_blocked()
        await client.send({"name": "app/stop"})
        release.set()
        await client.settle()
        (run,) = client.runs(f.id)
    assert run.status is eventbus.RunStatus.CANCELLED
    assert [e for e in log if e[0] == "transform_output"] == []


def test_pydantic_serializer_without_pydantic_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without pydantic, PydanticSerializer fails with the install command."""
    import sys

    monkeypatch.setitem(sys.modules, "pydantic", None)
    with pytest.raises(eventbus.UsageError, match="pip install pydantic"):
        eventbus.PydanticSerializer().serialize(1, int)
