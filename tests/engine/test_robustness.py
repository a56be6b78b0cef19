"""Nothing a handler does can crash the engine, hang it, or leak into another run."""

from __future__ import annotations

import functools
import logging
import sys
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import eventbus
import eventbus.testing
from tests.helpers import make_client, on

pytestmark = pytest.mark.anyio


def deep_list(levels: int) -> list[Any]:
    return functools.reduce(lambda inner, _: [inner], range(levels), [])


# ---------------------------------------------------------------- steps and engines


def sender_and_child(client: eventbus.Inngest, child_steps: list[str]) -> None:
    """A parent that sends in one step, then retries a flaky step; a child with a step."""
    flaky_calls: list[int] = []

    def flaky() -> str:
        flaky_calls.append(1)
        if len(flaky_calls) == 1:
            raise ConnectionError("once")
        return "ok"

    @client.create_function(fn_id="parent", trigger=on("app/parent"))
    async def parent(ctx: eventbus.Context) -> str:
        await ctx.step.send_event("send", {"name": "app/child"})
        return await ctx.step.run("flaky", flaky)

    @client.create_function(fn_id="child", trigger=on("app/child"))
    async def child(ctx: eventbus.Context) -> str:
        return await ctx.step.run("work", lambda: child_steps.append("work") or "done")


async def test_a_run_started_from_a_step_runs_its_own_steps() -> None:
    """Workers start from a clean context: a run queued inside step.send_event is not
    taken for a nested step."""
    client = make_client()
    child_steps: list[str] = []
    sender_and_child(client, child_steps)
    async with client:
        await client.send({"name": "app/parent"})
        await client.settle(advance_time=True)
        runs = {run.function.local_id: run for run in client.runs()}
    assert runs["child"].status is eventbus.RunStatus.COMPLETED, runs["child"].error
    assert runs["parent"].output == "ok"
    assert child_steps == ["work"]


@pytest.mark.parametrize("seed", range(4))
async def test_a_run_started_from_a_step_runs_its_steps_under_testing(seed: int) -> None:
    """The same under eventbus.testing.running(), on every seed."""
    client = make_client()
    child_steps: list[str] = []
    sender_and_child(client, child_steps)
    async with eventbus.testing.running(client, seed=seed) as bus:
        await bus.send({"name": "app/parent"})
        await bus.settle(advance_time=True)
        bus.assert_ran("child", count=1)
        bus.assert_ran("parent", count=1)
    assert child_steps == ["work"]


async def test_two_test_engines_keep_what_their_runs_send() -> None:
    """Events a run sends go to the engine that runs it, not to another block's."""
    client = make_client()
    child_steps: list[str] = []
    sender_and_child(client, child_steps)

    @client.create_function(fn_id="plain-sender", trigger=on("app/plain"))
    async def plain_sender(ctx: eventbus.Context) -> None:
        await client.send({"name": "app/child"})  # client.send from a handler, no step

    async with (
        eventbus.testing.running(client) as a,
        eventbus.testing.running(client) as b,
    ):
        await a.send([{"name": "app/parent"}, {"name": "app/plain"}])
        await a.settle(advance_time=True)
        await b.settle(advance_time=True)
        assert len(a.runs("child")) == 2
        assert b.runs() == []
        assert b.events() == []


async def test_sync_step_arguments_reach_mocks_and_records() -> None:
    """ctx.step.run(id, fn, *args) in a sync handler passes the arguments on, as in an
    async handler."""
    client = make_client()

    def add(a: int, b: int, *, scale: int = 1) -> int:
        return (a + b) * scale

    @client.create_function(fn_id="sums", trigger=on("app/sum"))
    def sums(ctx: eventbus.ContextSync) -> list[int]:
        return [ctx.step.run("real", add, 2, 3, scale=2), ctx.step.run("mocked", add, 2, 3)]

    async with eventbus.testing.running(client) as bus:
        bus.mock_step(sums, "mocked", lambda a, b: a * b)
        await bus.send({"name": "app/sum"})
        await bus.settle()
        assert bus.outputs(sums) == [[10, 6]]
        real, mocked = bus.step_calls(sums)
    assert (real.args, real.kwargs, real.mocked) == ((2, 3), {"scale": 2}, False)
    assert (mocked.args, mocked.kwargs, mocked.mocked) == ((2, 3), {}, True)


# ---------------------------------------------------------------- a handler cannot take it down


async def test_an_output_too_deep_to_encode_fails_only_its_run() -> None:
    """A handler or step returning a value nested too deeply to encode fails that run with
    a clear error; sleeping runs and the rest of the block go on."""
    client = make_client()

    @client.create_function(fn_id="deep", trigger=on("app/deep"), retries=0)
    async def deep(ctx: eventbus.Context) -> Any:
        return deep_list(5000)

    @client.create_function(fn_id="deep-step", trigger=on("app/deep-step"), retries=0)
    async def deep_step(ctx: eventbus.Context) -> Any:
        try:
            await ctx.step.run("nested", lambda: deep_list(5000))
        except eventbus.StepError as exc:
            return exc.message
        return "unreachable"

    @client.create_function(fn_id="sleeper", trigger=on("app/sleep"))
    async def sleeper(ctx: eventbus.Context) -> str:
        await ctx.step.sleep("nap", "1h")
        return "woke"

    async with client:
        (sleeping,) = await client.send({"name": "app/sleep"})
        await client.settle()
        (deep_id, step_id) = await client.send([{"name": "app/deep"}, {"name": "app/deep-step"}])
        await client.settle(advance_time=True)
        (failed,) = client.runs(event_id=deep_id)
        (handled,) = client.runs(event_id=step_id)
        (woke,) = client.runs(event_id=sleeping)
    assert failed.status is eventbus.RunStatus.FAILED
    assert failed.error is not None
    assert "nests too deeply" in failed.error["message"]
    assert "nests too deeply" in handled.output
    assert woke.output == "woke"


async def test_a_stray_cancellation_exception_fails_the_run(anyio_backend: str) -> None:
    """A handler raising the loop's cancellation exception while nothing cancelled it
    fails its run; the rest of the `async with client:` body still runs."""
    client = make_client()

    @client.create_function(fn_id="stray", trigger=on("app/stray"), retries=3)
    async def stray(ctx: eventbus.Context) -> None:
        if anyio_backend == "asyncio":
            import asyncio

            task = asyncio.ensure_future(asyncio.sleep(10))
            task.cancel()
            await task  # raises CancelledError in this task, which nobody cancelled
        else:
            import trio

            raise trio.Cancelled._create()

    after: list[str] = []
    async with client:
        (event_id,) = await client.send({"name": "app/stray"})
        await client.settle()
        after.append("body went on")
        (run,) = client.runs(event_id=event_id)
    assert after == ["body went on"]
    assert run.status is eventbus.RunStatus.FAILED
    assert run.attempts == 1  # not retried: it would raise the same again
    assert run.error is not None
    assert "nothing cancelled its run" in run.error["message"]


async def test_a_handler_that_swallows_its_cancellation_cannot_complete_the_run() -> None:
    """A cancelled run stays CANCELLED even if its handler catches the cancellation and
    returns a value."""
    client = make_client()
    started = anyio.Event()

    @client.create_function(fn_id="stubborn", trigger=on("app/e"))
    async def stubborn(ctx: eventbus.Context) -> str:
        try:
            started.set()
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            return "swallowed"
        return "unreachable"  # pragma: no cover

    async with client:
        (event_id,) = await client.send({"name": "app/e"})
        await started.wait()
        (run,) = client.runs(event_id=event_id)
        assert client.cancel(run.run_id)
        await client.settle()
    assert run.status is eventbus.RunStatus.CANCELLED
    assert run.output is None


# ---------------------------------------------------------------- runs that never end


async def test_cancel_stops_an_executing_handler_at_once() -> None:
    """client.cancel on a handler awaiting forever ends the run CANCELLED, with its
    system events, before cancel() returns."""
    client = make_client()
    started = anyio.Event()
    cleaned_up: list[str] = []

    @client.create_function(fn_id="stuck", trigger=on("app/e"))
    async def stuck(ctx: eventbus.Context) -> None:
        try:
            started.set()
            await anyio.sleep_forever()
        finally:
            cleaned_up.append("finally ran")

    async with client:
        (event_id,) = await client.send({"name": "app/e"})
        await started.wait()
        (run,) = client.runs(event_id=event_id)
        assert run.status is eventbus.RunStatus.RUNNING
        assert client.cancel(run.run_id)
        assert run.status is eventbus.RunStatus.CANCELLED
        assert [e.name for e in client.events("inngest/function.cancelled")] == [
            "inngest/function.cancelled"
        ]
        await client.settle()
        assert cleaned_up == ["finally ran"]
        assert not client.cancel(run.run_id)


async def test_a_finish_timeout_stops_an_executing_handler() -> None:
    """timeouts.finish cancels a handler that is still executing when it passes."""
    client = make_client()
    started = anyio.Event()

    @client.create_function(
        fn_id="slow", trigger=on("app/e"), timeouts=eventbus.Timeouts(finish="1s")
    )
    async def slow(ctx: eventbus.Context) -> None:
        started.set()
        await anyio.sleep_forever()

    async with client:
        (event_id,) = await client.send({"name": "app/e"})
        await started.wait()
        (run,) = client.runs(event_id=event_id)
        assert isinstance(client.clock, eventbus.VirtualClock)
        client.clock.advance(eventbus_timedelta(seconds=2))
        assert run.status is eventbus.RunStatus.CANCELLED
        await client.settle()


def eventbus_timedelta(**kwargs: float) -> Any:
    import datetime

    return datetime.timedelta(**kwargs)


async def test_a_sync_handler_blocked_in_a_thread_is_abandoned_on_cancel() -> None:
    """A sync handler cannot be interrupted: cancelling ends the run at once and the
    thread's next step call fails instead of running."""
    import threading

    client = make_client()
    in_thread = threading.Event()
    release = threading.Event()
    finished = threading.Event()
    after: list[str] = []

    @client.create_function(fn_id="blocking", trigger=on("app/e"))
    def blocking(ctx: eventbus.ContextSync) -> None:
        in_thread.set()
        release.wait(timeout=30)
        try:
            ctx.step.run("after", lambda: after.append("ran"))
        except BaseException as exc:
            after.append(type(exc).__name__)
        finished.set()

    async with client:
        (event_id,) = await client.send({"name": "app/e"})
        await anyio.to_thread.run_sync(in_thread.wait)
        (run,) = client.runs(event_id=event_id)
        assert client.cancel(run.run_id)
        assert run.status is eventbus.RunStatus.CANCELLED
        await client.settle()  # does not wait for the abandoned thread
        release.set()
        await anyio.to_thread.run_sync(finished.wait)  # its step call needs this loop
    assert after == ["CancelRun"]
    assert run.steps == []


async def test_leaving_the_block_cancels_handlers_after_the_shutdown_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Leaving `async with client:` with a handler that never returns ends after
    shutdown_timeout and names every unfinished run with its status."""
    client = make_client(shutdown_timeout=0)
    started = anyio.Event()

    @client.create_function(fn_id="forever", trigger=on("app/forever"))
    async def forever(ctx: eventbus.Context) -> None:
        started.set()
        await anyio.sleep_forever()

    @client.create_function(fn_id="napper", trigger=on("app/nap"))
    async def napper(ctx: eventbus.Context) -> None:
        await ctx.step.sleep("nap", "1d")

    with caplog.at_level(logging.WARNING, logger="eventbus"):
        async with client:
            (stuck_id, nap_id) = await client.send([{"name": "app/forever"}, {"name": "app/nap"}])
            await started.wait()
    (stuck,) = client.runs(event_id=stuck_id)
    (napping,) = client.runs(event_id=nap_id)
    (record,) = [r for r in caplog.records if "unfinished" in r.getMessage()]
    message = record.getMessage()
    assert "2 unfinished run(s)" in message
    assert f"{stuck.run_id} (test-app-forever, RUNNING, interrupted while executing)" in message
    assert f"{napping.run_id} (test-app-napper, SLEEPING)" in message


async def test_sends_from_outside_are_refused_while_draining() -> None:
    """While the engine drains at shutdown, outside sends fail with EngineNotRunningError
    and runs still finish, sending their own events."""
    from anyio import wait_all_tasks_blocked

    client = make_client()
    started = anyio.Event()
    release = anyio.Event()

    @client.create_function(fn_id="slow", trigger=on("app/slow"))
    async def slow(ctx: eventbus.Context) -> str:
        started.set()
        await release.wait()
        await ctx.step.send_event("own", {"name": "app/from-run"})  # its own send is fine
        return "done"

    async with client:
        (event_id,) = await client.send({"name": "app/slow"})
        await started.wait()
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.engine.drain)  # what leaving the block does first
            await wait_all_tasks_blocked()
            with pytest.raises(eventbus.EngineNotRunningError, match="shutting down"):
                await client.send({"name": "app/late"})
            release.set()
    assert client.runs(event_id=event_id)[0].output == "done"
    assert [e.name for e in client.events() if not e.name.startswith("inngest/")] == [
        "app/slow",
        "app/from-run",
    ]


async def test_an_exception_in_the_body_comes_out_as_itself() -> None:
    """An error raised inside `async with client:` is not wrapped in an exception group."""
    client = make_client()
    with pytest.raises(LookupError, match="mine"):
        async with client:
            raise LookupError("mine")


# ---------------------------------------------------------------- backpressure and concurrency


async def test_batched_sends_wait_for_room_in_the_queue() -> None:
    """With max_queued_runs, batches of any size wait for room: the queue never holds
    more than the bound plus one batch."""
    client = make_client(max_queued_runs=100)
    peak = [0]

    @client.create_function(fn_id="count", trigger=on("app/e"))
    async def count(ctx: eventbus.Context) -> None:
        peak[0] = max(peak[0], client.engine.backlog)

    async with client:
        for _ in range(20):
            await client.send([{"name": "app/e"}] * 50)
            peak[0] = max(peak[0], client.engine.backlog)
        await client.settle()
        done = client.runs(status=eventbus.RunStatus.COMPLETED)
    assert len(done) == 1000
    assert peak[0] <= 100 + 50


async def test_max_concurrency_bounds_executing_runs() -> None:
    """No more than max_concurrency handlers execute at once; the rest wait, none lost."""
    client = make_client(max_concurrency=3)
    executing = [0]
    peak = [0]

    @client.create_function(fn_id="busy", trigger=on("app/e"))
    async def busy(ctx: eventbus.Context) -> None:
        executing[0] += 1
        peak[0] = max(peak[0], executing[0])
        for _ in range(5):
            await anyio.lowlevel.checkpoint()
        executing[0] -= 1

    async with client:
        await client.send([{"name": "app/e"}] * 40)
        await client.settle()
        assert len(client.runs(status=eventbus.RunStatus.COMPLETED)) == 40
    assert peak[0] == 3


async def test_unbounded_concurrency_with_none() -> None:
    """max_concurrency=None lets every queued run execute at once."""
    client = make_client(max_concurrency=None)
    executing = [0]
    peak = [0]
    gate = anyio.Event()

    @client.create_function(fn_id="busy", trigger=on("app/e"))
    async def busy(ctx: eventbus.Context) -> None:
        executing[0] += 1
        peak[0] = max(peak[0], executing[0])
        if executing[0] == 30:
            gate.set()
        await gate.wait()

    async with client:
        await client.send([{"name": "app/e"}] * 30)
        await client.settle()
    assert peak[0] == 30


async def test_a_send_cancelled_while_waiting_for_room_accepts_nothing() -> None:
    """Cancelled before it returns, a send has accepted none of its events."""
    client = make_client(max_queued_runs=300, max_concurrency=1)
    gate = anyio.Event()

    @client.create_function(fn_id="gated", trigger=on("app/e"))
    async def gated(ctx: eventbus.Context) -> None:
        await gate.wait()

    async with client:
        await client.send([{"name": "app/e"}] * 301)  # one executes, 300 wait: full
        before = len(client.events())
        with anyio.move_on_after(0) as scope:
            await client.send({"name": "app/e", "data": {"late": True}})
        assert scope.cancelled_caught
        assert len(client.events()) == before
        assert not any(e.data.get("late") for e in client.events())
        gate.set()
        await client.settle()


async def test_sends_from_runs_never_wait_for_room() -> None:
    """A run's own sends only yield when the queue is full (waiting would hold the worker
    that makes room)."""
    client = make_client(max_queued_runs=300, max_concurrency=1)

    @client.create_function(fn_id="fan", trigger=on("app/fan"))
    async def fan(ctx: eventbus.Context) -> int:
        ids = await ctx.step.send_event("many", [{"name": "app/leaf"}] * 400)
        more = await client.send([{"name": "app/leaf"}] * 10)
        return len(ids) + len(more)

    @client.create_function(fn_id="leaf", trigger=on("app/leaf"))
    async def leaf(ctx: eventbus.Context) -> None:
        pass

    async with client:
        await client.send([{"name": "app/leaf"}] * 300)  # queue at its bound
        await client.send({"name": "app/fan"})
        await client.settle()
        assert client.runs(function_id="test-app-fan")[0].output == 410
        assert len(client.runs(function_id="test-app-leaf")) == 710


def test_send_from_another_threads_event_loop_runs_on_the_engine_loop() -> None:
    """`await client.send` from a second thread's event loop is carried to the engine's
    loop: the run executes there and nothing is lost."""
    import threading

    client = make_client()
    threads: list[int] = []

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> str:
        threads.append(threading.get_ident())
        return "ok"

    async def other_loop() -> list[str]:
        return await client.send([{"name": "app/e"}, {"name": "app/e"}])

    async def main() -> None:
        async with client:
            ids = await anyio.to_thread.run_sync(lambda: anyio.run(other_loop, backend="trio"))
            await client.settle()
            assert [client.runs(event_id=i)[0].output for i in ids] == ["ok", "ok"]
            assert threads == [threading.get_ident()] * 2

    anyio.run(main)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("max_queued_runs", 0),
        ("max_concurrency", -1),
        ("max_concurrency", 1.5),
        ("shutdown_timeout", -1),
        ("shutdown_timeout", float("nan")),
        ("shutdown_timeout", "5"),
    ],
)
def test_bad_bounds_are_rejected(option: str, value: object) -> None:
    """The bounds are checked when the client is made, naming the option."""
    with pytest.raises(eventbus.FunctionConfigError, match=option):
        eventbus.Inngest("app", **{option: value})  # type: ignore[arg-type]


# ---------------------------------------------------------------- what may stop the engine


class Stop(BaseException):
    """A user's own BaseException."""


async def test_a_base_exception_fails_its_run_and_leaves_the_block_unwrapped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A BaseException from a handler fails that run, names what is unfinished, and
    comes out of `async with client:` as itself."""
    client = make_client()

    @client.create_function(fn_id="stopper", trigger=on("app/stop"))
    async def stopper(ctx: eventbus.Context) -> None:
        raise Stop("halt")

    @client.create_function(fn_id="napper", trigger=on("app/nap"))
    async def napper(ctx: eventbus.Context) -> None:
        await ctx.step.sleep("nap", "1d")

    async def main() -> None:
        async with client:
            await client.send({"name": "app/nap"})
            await client.settle()
            await client.send({"name": "app/stop"})
            await client.settle()

    with caplog.at_level(logging.WARNING, logger="eventbus"), pytest.raises(Stop, match="halt"):
        await main()
    (run,) = client.runs(function_id="test-app-stopper")
    assert run.status is eventbus.RunStatus.FAILED
    assert run.error is not None
    assert run.error["name"] == "Stop"
    messages = [r.getMessage() for r in caplog.records]
    assert any("raised Stop with 1 unfinished run(s)" in m and "SLEEPING" in m for m in messages)


async def test_a_fault_inside_the_engine_fails_only_that_run(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """If processing a run breaks inside the engine itself, that run fails with the error
    logged, and the engine goes on with the next."""
    from eventbus._engine import Engine

    client = make_client()

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> str:
        return ctx.event.data["n"]

    real = Engine._complete
    faults = [1]

    def faulty(self: Engine, run: Any, output: Any) -> None:
        if faults:
            faults.pop()
            raise RuntimeError("engine bug")
        real(self, run, output)

    monkeypatch.setattr(Engine, "_complete", faulty)
    with caplog.at_level(logging.ERROR, logger="eventbus"):
        async with client:
            first, second = await client.send(
                [{"name": "app/e", "data": {"n": "a"}}, {"name": "app/e", "data": {"n": "b"}}]
            )
            await client.settle()
            (broken,) = client.runs(event_id=first)
            (fine,) = client.runs(event_id=second)
    assert broken.status is eventbus.RunStatus.FAILED
    assert broken.error is not None
    assert broken.error["message"] == "engine bug"
    assert fine.output == "b"
    assert any("the engine goes on" in r.getMessage() for r in caplog.records)


def test_unwrap_picks_what_the_user_should_see() -> None:
    """KeyboardInterrupt/SystemExit anywhere in a group win; a lone exception is itself;
    several stay a group."""
    from eventbus._engine import _unwrap

    if sys.version_info < (3, 11):  # pragma: no cover
        from exceptiongroup import BaseExceptionGroup, ExceptionGroup
    else:
        from builtins import BaseExceptionGroup, ExceptionGroup

    exit_ = SystemExit(3)
    nested = BaseExceptionGroup("outer", [ValueError("a"), BaseExceptionGroup("in", [exit_])])
    assert _unwrap(nested) is exit_
    lone = ValueError("only")
    assert _unwrap(ExceptionGroup("g", [ExceptionGroup("h", [lone])])) is lone
    several = ExceptionGroup("g", [ValueError("a"), KeyError("b")])
    assert _unwrap(several) is several


async def test_a_cancel_after_the_last_await_cannot_reach_the_next_run() -> None:
    """Cancelling a run whose handler was just woken (its worker is scheduled, not yet
    resumed) ends that run; the next run on the same worker completes untouched."""
    client = make_client(max_concurrency=1)  # one worker executes both runs in turn
    woken = anyio.Event()
    started = anyio.Event()

    @client.create_function(fn_id="first", trigger=on("app/first"))
    async def first(ctx: eventbus.Context) -> str:
        started.set()
        await woken.wait()
        return "first"

    @client.create_function(fn_id="second", trigger=on("app/second"))
    async def second(ctx: eventbus.Context) -> str:
        await anyio.lowlevel.checkpoint()
        return "second"

    async with client:
        a, b = await client.send([{"name": "app/first"}, {"name": "app/second"}])
        await started.wait()
        (run_a,) = client.runs(event_id=a)
        woken.set()  # the worker is now scheduled to resume the first handler...
        assert client.cancel(run_a.run_id)  # ...and its run is cancelled before it does
        await client.settle()
        (run_b,) = client.runs(event_id=b)
    assert run_a.status is eventbus.RunStatus.CANCELLED
    assert run_a.output is None
    assert run_b.status is eventbus.RunStatus.COMPLETED
    assert run_b.output == "second"


async def test_a_send_waiting_for_room_is_refused_at_shutdown() -> None:
    """A send blocked on a full queue when the engine shuts down fails with
    EngineNotRunningError instead of waiting forever, having accepted nothing."""
    client = make_client(max_queued_runs=300, max_concurrency=1, shutdown_timeout=0)
    refused: list[BaseException] = []

    @client.create_function(fn_id="stuck", trigger=on("app/e"))
    async def stuck(ctx: eventbus.Context) -> None:
        await anyio.sleep_forever()

    async def late_sender() -> None:
        try:
            await client.send({"name": "app/e", "data": {"late": True}})
        except eventbus.EngineNotRunningError as exc:
            refused.append(exc)

    async with anyio.create_task_group() as tg, client:
        await client.send([{"name": "app/e"}] * 301)  # one executes, 300 queued: full
        tg.start_soon(late_sender)
        await anyio.wait_all_tasks_blocked()  # it waits for room
    assert len(refused) == 1
    assert "shutting down" in str(refused[0])
    assert not any(e.data.get("late") for e in client.events())
