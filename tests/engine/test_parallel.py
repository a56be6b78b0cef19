"""ctx.group.parallel: WAIT and RACE, independent retries, replays."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

import eventbus
from tests.helpers import make_client, on

pytestmark = pytest.mark.anyio


async def run_one(client: eventbus.Inngest) -> eventbus.Run:
    async with client:
        (event_id,) = await client.send({"name": "app/e"})
        await client.settle(advance_time=True)
    (run,) = [r for r in client.runs(event_id=event_id) if r.function.local_id == "f"]
    return run


async def test_wait_returns_every_result_and_retries_branches_independently() -> None:
    """WAIT gives all results in order; a flaky branch is retried, the other runs once."""
    client = make_client()
    calls = {"a": 0, "b": 0}

    def fetch_a() -> str:
        calls["a"] += 1
        return "A"

    def fetch_b() -> str:
        calls["b"] += 1
        if calls["b"] < 3:
            raise ConnectionError("flaky")
        return "B"

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> list[str]:
        a, b = await ctx.group.parallel(
            (lambda: ctx.step.run("a", fetch_a), lambda: ctx.step.run("b", fetch_b))
        )
        return [a, b]

    run = await run_one(client)
    assert run.output == ["A", "B"]
    assert calls == {"a": 1, "b": 3}
    assert {s.id: s.attempts for s in run.steps} == {"a": 1, "b": 3}


async def test_branches_run_concurrently() -> None:
    """Branches are not serialized: each starts before the other finishes."""
    import anyio

    client = make_client()
    started: list[str] = []
    both = anyio.Event()

    async def branch(name: str) -> str:
        started.append(name)
        if len(started) == 2:
            both.set()
        await both.wait()
        return name

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> Any:
        return await ctx.group.parallel(
            [lambda: ctx.step.run("x", branch, "x"), lambda: ctx.step.run("y", branch, "y")]
        )

    run = await run_one(client)
    assert run.output == ["x", "y"]


async def test_race_lets_branches_run_ahead_and_returns_every_result() -> None:
    """RACE, as in the SDK: the fast branch does not wait for the slow one's wave, and the
    result is every branch's, in order; a later replay returns the same."""
    client = make_client()
    seen: list[Any] = []

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> Any:
        async def slow() -> None:
            await ctx.step.sleep("slow", "1h")

        winner = await ctx.group.parallel(
            (slow, lambda: ctx.step.run("fast", lambda: "fast")),
            parallel_mode=eventbus.ParallelMode.RACE,
        )
        seen.append(winner)
        await ctx.step.sleep("after", "1m")  # forces a replay of the race
        return winner

    run = await run_one(client)
    assert run.output == [None, "fast"]
    assert seen == [(None, "fast"), (None, "fast")]  # after the race, and on the replay


async def test_race_waits_for_every_branch() -> None:
    """If every branch suspends, RACE suspends too and returns all results later."""
    client = make_client()

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> Any:
        async def nap(name: str, duration: str) -> str:
            await ctx.step.sleep(name, duration)
            return name

        return await ctx.group.parallel(
            (lambda: nap("long", "2h"), lambda: nap("short", "1h")),
            parallel_mode=eventbus.ParallelMode.RACE,
        )

    run = await run_one(client)
    assert run.output == ["long", "short"]
    assert run.status is eventbus.RunStatus.COMPLETED


async def test_wait_suspends_until_every_branch_is_done() -> None:
    """WAIT with a sleeping branch resumes when the sleep ends, with both results."""
    client = make_client()

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> Any:
        async def later() -> str:
            await ctx.step.sleep("nap", "30m")
            return "rested"

        return await ctx.group.parallel((later, lambda: ctx.step.run("now", lambda: "now")))

    run = await run_one(client)
    assert run.output == ["rested", "now"]


async def test_branch_errors_propagate() -> None:
    """A branch whose step fails for good raises its StepError from parallel()."""
    client = make_client()

    @client.create_function(fn_id="f", trigger=on("app/e"), retries=0)
    async def f(ctx: eventbus.Context) -> str:
        try:
            await ctx.group.parallel(
                (lambda: ctx.step.run("ok", lambda: 1), lambda: ctx.step.run("bad", lambda: 1 / 0))
            )
        except eventbus.StepError as exc:
            return exc.step_id
        return "no error"

    run = await run_one(client)
    assert run.output == "bad"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda ctx: ctx.group.parallel((1, 2)), "takes callables"),
        (lambda ctx: ctx.group.parallel((), parallel_mode="race"), "ParallelMode"),
    ],
)
async def test_bad_parallel_arguments(call: Any, message: str) -> None:
    """parallel() explains how it must be called."""
    client = make_client()

    @client.create_function(fn_id="f", trigger=on("app/e"), retries=2)
    async def f(ctx: eventbus.Context) -> None:
        await call(ctx)
        assert "Group" in repr(ctx.group)

    run = await run_one(client)
    assert run.status is eventbus.RunStatus.FAILED
    assert run.attempts == 1
    assert run.error is not None
    assert message in run.error["message"]


async def test_cancelling_during_parallel_steps() -> None:
    """client.cancel while a parallel branch's step runs ends the run CANCELLED at once."""
    import anyio

    client = make_client()
    started = anyio.Event()
    release = anyio.Event()
    cancelled = anyio.Event()
    ran: list[str] = []

    async def slow() -> str:
        started.set()
        await release.wait()
        return "slow"

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> Any:
        async def second_branch() -> str:
            await ctx.step.run("first", lambda: ran.append("first"))
            await cancelled.wait()
            await ctx.step.run("second", lambda: ran.append("second"))  # after the cancel
            return "done"

        return await ctx.group.parallel((lambda: ctx.step.run("slow", slow), second_branch))

    async with client:
        (event_id,) = await client.send({"name": "app/e"})
        await started.wait()
        (run,) = client.runs(event_id=event_id)
        assert client.cancel(run.run_id)
        cancelled.set()
        release.set()
        await client.settle()
    assert run.status is eventbus.RunStatus.CANCELLED
    assert ran == ["first"]
    # client.cancel interrupts the handler: the step running then never finished, and no
    # step started after it.
    assert sorted((s.id, s.status.name) for s in run.steps) == [
        ("first", "COMPLETED"),
        ("slow", "RUNNING"),
    ]


async def test_step_limit_inside_parallel_fails_the_run() -> None:
    """Exceeding the step limit inside a branch fails the run cleanly."""
    from eventbus._step import MAX_STEPS

    client = make_client()

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> Any:
        async def many() -> None:
            for _ in range(MAX_STEPS + 1):
                await ctx.step.run("s", lambda: None)

        return await ctx.group.parallel((many, lambda: ctx.step.run("one", lambda: 1)))

    run = await run_one(client)
    assert run.status is eventbus.RunStatus.FAILED
    assert run.error is not None
    assert "limit of 1000 steps" in run.error["message"]


async def test_parallel_branches_run_in_inngests_waves() -> None:
    """The k-th new step of every branch runs in wave k, as on Inngest: a.1 and b.1, then
    a.2 and b.2, whatever each branch does between its steps."""
    client = make_client()
    order: list[str] = []

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> Any:
        async def branch(name: str) -> list[str]:
            first = await ctx.step.run(f"{name}.1", lambda: order.append(f"{name}.1") or "1")
            second = await ctx.step.run(f"{name}.2", lambda: order.append(f"{name}.2") or "2")
            return [first, second]

        return await ctx.group.parallel((lambda: branch("a"), lambda: branch("b")))

    async with client:
        await client.send({"name": "app/e"})
        await client.settle()
        (run,) = client.runs()
    # Within a wave the steps run concurrently (in trio's scheduling order there).
    assert sorted(order[:2]) == ["a.1", "b.1"]
    assert sorted(order[2:]) == ["a.2", "b.2"]
    assert run.output == [["1", "2"], ["1", "2"]]


@pytest.mark.parametrize("waiter_first", [True, False])
async def test_a_wait_in_a_parallel_group_catches_what_a_sibling_sends(
    waiter_first: bool,
) -> None:
    """A wait_for_event in a branch is registered before its siblings' steps of the same
    wave run, so it catches the event a sibling sends, whichever branch comes first."""
    client = make_client()

    @client.create_function(fn_id="f", trigger=on("app/start"))
    async def f(ctx: eventbus.Context) -> Any:
        def waiter() -> Any:
            return ctx.step.wait_for_event("wait", event="app/ping", timeout="1h")

        def sender() -> Any:
            return ctx.step.send_event("send", {"name": "app/ping", "data": {"n": 1}})

        branches = (waiter, sender) if waiter_first else (sender, waiter)
        results = await ctx.group.parallel(branches)
        caught = results[0 if waiter_first else 1]
        return None if caught is None else caught.data

    async with client:
        await client.send({"name": "app/start"})
        await client.settle(advance_time=True)
        (run,) = client.runs(function_id="test-app-f")
    assert run.output == {"n": 1}


async def test_sdk_parallel_group_of_sequential_steps() -> None:
    """From the SDK's parallel_group_of_sequential_steps.py (inngest/inngest-py, Apache
    2.0): groups of sequential steps in parallel return their outputs in order and run
    each step once."""
    import inngest

    import eventbus.testing

    sdk = inngest.Inngest(app_id="cases", is_production=False)
    counters: dict[str, int] = {}

    def counted(name: str) -> Any:
        def step() -> str:
            counters[name] = counters.get(name, 0) + 1
            return name

        return step

    @sdk.create_function(fn_id="pgss", retries=0, trigger=inngest.TriggerEvent(event="c/p"))
    async def fn(ctx: inngest.Context) -> Any:
        async def group_1() -> list[str]:
            return [
                await ctx.step.run("1a", counted("1a")),
                await ctx.step.run("1b", counted("1b")),
            ]

        async def group_2() -> list[str]:
            out = [await ctx.step.run("2a", counted("2a"))]
            out.append(await ctx.step.run("2b", counted("2b")))
            out.append(await ctx.step.run("2c", counted("2c")))
            return out

        output = await ctx.group.parallel(
            (group_1, group_2, lambda: ctx.step.run("3", counted("3")))
        )
        await ctx.step.run("after", counted("after"))
        return output

    async with eventbus.testing.running(sdk, functions=[fn]) as bus:
        await bus.send({"name": "c/p"})
        await bus.settle()
        # As upstream, but the tuple comes back as a list (outputs are JSON).
        assert bus.outputs("pgss") == [[["1a", "1b"], ["2a", "2b", "2c"], "3"]]
    assert counters == {"1a": 1, "1b": 1, "2a": 1, "2b": 1, "2c": 1, "3": 1, "after": 1}


async def test_race_runs_a_branch_ahead_of_its_siblings_wave() -> None:
    """RACE (the SDK's parallel_mode_race case): a fast branch's second step runs before
    a slow sibling's first step finishes; WAIT would hold it for the wave."""
    client = make_client()
    order: list[str] = []
    gate = anyio.Event()

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> Any:
        async def slow_step(name: str) -> None:
            await gate.wait()
            order.append(name)

        async def fast() -> None:
            await ctx.step.run("a.1", lambda: order.append("a.1"))
            await ctx.step.run("a.2", lambda: order.append("a.2"))
            gate.set()  # only now may the slow branch's steps finish

        async def slow() -> None:
            await ctx.step.run("b.1", slow_step, "b.1")
            await ctx.step.run("b.2", slow_step, "b.2")

        return await ctx.group.parallel((fast, slow), parallel_mode=eventbus.ParallelMode.RACE)

    async with client:
        await client.send({"name": "app/e"})
        await client.settle()
    assert order == ["a.1", "a.2", "b.1", "b.2"]
