"""Durable steps: step.run memoization and retries, sleeps, send_event, limits."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

import eventbus
from eventbus._step import MAX_STEP_OUTPUT_BYTES, MAX_STEPS
from tests.helpers import make_client, on

pytestmark = pytest.mark.anyio

Status = eventbus.StepStatus


async def run_one(client: eventbus.Inngest, data: dict[str, Any] | None = None) -> eventbus.Run:
    """Send one app/e event, run everything to the end on the virtual clock, return the run."""
    async with client:
        (event_id,) = await client.send({"name": "app/e", "data": data or {}})
        await client.settle(advance_time=True)
    runs = [r for r in client.runs(event_id=event_id) if r.function.local_id == "f"]
    assert len(runs) == 1
    return runs[0]


async def test_succeeded_steps_never_run_again() -> None:
    """A step that succeeded runs once, even while a later step fails and is retried."""
    client = make_client()
    calls = {"charge": 0, "ship": 0, "body": 0}

    async def charge(amount: int, *, currency: str) -> dict[str, Any]:
        calls["charge"] += 1
        return {"charged": amount, "currency": currency}

    def ship() -> str:
        calls["ship"] += 1
        if calls["ship"] < 3:
            raise ConnectionError("courier API down")
        return "shipped"

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> dict[str, Any]:
        calls["body"] += 1
        receipt = await ctx.step.run("charge", charge, 42, currency="EUR")
        status = await ctx.step.run("ship", ship)
        return {"receipt": receipt, "status": status}

    run = await run_one(client)
    assert run.status is eventbus.RunStatus.COMPLETED
    assert run.output == {"receipt": {"charged": 42, "currency": "EUR"}, "status": "shipped"}
    assert calls == {"charge": 1, "ship": 3, "body": 3}  # code outside steps re-runs
    assert [(s.id, s.kind, s.status, s.attempts) for s in run.steps] == [
        ("charge", "run", Status.COMPLETED, 1),
        ("ship", "run", Status.COMPLETED, 3),
    ]
    assert run.attempts == 1  # step retries are not function attempts
    assert run.steps[1].output == "shipped"
    assert run.steps[0].ended_at is not None
    assert run.steps[0].started_at <= run.steps[0].ended_at


async def test_ctx_attempt_is_the_step_attempt_and_resets() -> None:
    """ctx.attempt counts the retried step's attempts, and is 0 again after it succeeds."""
    client = make_client()
    seen: list[tuple[str, int]] = []

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> None:
        seen.append(("before", ctx.attempt))

        def flaky() -> str:
            seen.append(("inside", ctx.attempt))
            if ctx.attempt < 2:
                raise ValueError("not yet")
            return "ok"

        await ctx.step.run("flaky", flaky)
        seen.append(("after", ctx.attempt))

    await run_one(client)
    assert seen == [
        ("before", 0),
        ("inside", 0),
        ("before", 1),
        ("inside", 1),
        ("before", 2),
        ("inside", 2),
        ("after", 0),
    ]


async def test_step_retries_follow_the_backoff_table() -> None:
    """Each step has its own attempts and waits 15 s, 30 s, ... (plus jitter) between them."""
    client = make_client()
    clock = client.clock
    times: list[int] = []

    @client.create_function(fn_id="f", trigger=on("app/e"), retries=2)
    async def f(ctx: eventbus.Context) -> None:
        def fail() -> None:
            times.append(clock.now_ms())
            raise ValueError("no")

        await ctx.step.run("s", fail)

    run = await run_one(client)
    assert len(times) == 3
    assert 15_000 <= times[1] - times[0] <= 45_000
    assert 30_000 <= times[2] - times[1] <= 60_000
    assert run.status is eventbus.RunStatus.FAILED
    assert run.steps[0].status is Status.FAILED
    assert run.steps[0].attempts == 3


async def test_step_error_can_be_caught() -> None:
    """After its last attempt a step raises StepError at the call, with the original error."""
    client = make_client()
    caught: list[eventbus.StepError] = []

    @client.create_function(fn_id="f", trigger=on("app/e"), retries=1)
    async def f(ctx: eventbus.Context) -> str:
        def boom() -> None:
            raise KeyError("sku-1")

        try:
            await ctx.step.run("reserve", boom)
        except eventbus.StepError as exc:
            caught.append(exc)
            return await ctx.step.run("fallback", lambda: "backordered")
        return "reserved"

    run = await run_one(client)
    assert run.status is eventbus.RunStatus.COMPLETED
    assert run.output == "backordered"
    last = caught[-1]
    assert (last.name, last.message, last.step_id) == ("KeyError", "'sku-1'", "reserve")
    assert last.stack is not None
    assert "KeyError" in last.stack
    assert str(last) == "'sku-1'"  # the original message, as in the official SDK
    assert "step_id='reserve'" in repr(last)
    # Caught twice: by the execution whose last attempt failed, and by no replay (the run
    # then completed inline), so exactly one execution after the first saw it.
    assert len(caught) == 1


async def test_uncaught_step_error_fails_the_run_without_more_retries() -> None:
    """An uncaught StepError fails the run; the function body is not retried on top."""
    client = make_client()
    executions = 0

    @client.create_function(fn_id="f", trigger=on("app/e"), retries=2)
    async def f(ctx: eventbus.Context) -> None:
        nonlocal executions
        executions += 1

        def boom() -> None:
            raise RuntimeError("card declined")

        await ctx.step.run("charge", boom)

    run = await run_one(client)
    assert run.status is eventbus.RunStatus.FAILED
    assert executions == 3  # one per step attempt, none more
    assert run.error is not None
    assert run.error["name"] == "RuntimeError"  # the original error's, as the SDK records it
    assert run.error["message"] == "card declined"


async def test_non_retriable_error_in_a_step_fails_the_run_with_it() -> None:
    """NonRetriableError inside a step: one attempt, and it leaves the step as itself, so
    a StepError fallback does not run and the run fails with it (as the SDK does)."""
    client = make_client()
    fallbacks: list[str] = []

    @client.create_function(fn_id="f", trigger=on("app/e"), retries=5)
    async def f(ctx: eventbus.Context) -> None:
        def declined() -> None:
            raise eventbus.NonRetriableError("card declined")

        try:
            await ctx.step.run("charge", declined)
        except eventbus.StepError:
            fallbacks.append("ran")

    run = await run_one(client)
    assert fallbacks == []
    assert run.steps[0].attempts == 1
    assert run.steps[0].error is not None
    assert run.steps[0].error["message"] == "card declined"
    assert run.status is eventbus.RunStatus.FAILED
    assert run.error is not None
    assert run.error["name"] == "NonRetriableError"
    assert run.attempts == 1


async def test_a_caught_non_retriable_step_error_replays_as_itself() -> None:
    """A handler that catches the NonRetriableError and goes on to sleep sees the same
    exception type again when the run resumes (the failed step replays from the journal)."""
    client = make_client()
    seen: list[str] = []

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> list[str]:
        def declined() -> None:
            raise eventbus.NonRetriableError("card declined")

        try:
            await ctx.step.run("charge", declined)
        except eventbus.NonRetriableError as exc:
            seen.append(f"{type(exc).__name__}: {exc}")
        await ctx.step.sleep("later", "1h")
        return seen

    run = await run_one(client)
    assert run.status is eventbus.RunStatus.COMPLETED
    assert run.output == ["NonRetriableError: card declined"] * 2


async def test_retry_after_error_in_a_step() -> None:
    """RetryAfterError delays the step's retry by its (clamped) delay."""
    client = make_client()
    clock = client.clock
    times: list[int] = []

    @client.create_function(fn_id="f", trigger=on("app/e"), retries=1)
    async def f(ctx: eventbus.Context) -> str:
        def limited() -> str:
            times.append(clock.now_ms())
            if len(times) == 1:
                raise eventbus.RetryAfterError("slow down", datetime.timedelta(seconds=7))
            return "ok"

        return await ctx.step.run("call", limited)

    run = await run_one(client)
    assert run.output == "ok"
    assert times[1] - times[0] == 7_000


async def test_retry_after_error_on_the_last_attempt_fails_the_step() -> None:
    """A RetryAfterError with no attempts left fails the step."""
    client = make_client()

    @client.create_function(fn_id="f", trigger=on("app/e"), retries=0)
    async def f(ctx: eventbus.Context) -> None:
        def limited() -> None:
            raise eventbus.RetryAfterError("slow down", 5_000)

        await ctx.step.run("call", limited)

    run = await run_one(client)
    assert run.status is eventbus.RunStatus.FAILED
    assert run.steps[0].attempts == 1


async def test_step_results_are_json_round_tripped() -> None:
    """The code after a step receives what JSON gives back; non-JSON fails the step for good."""
    client = make_client()
    received: list[Any] = []

    @client.create_function(fn_id="f", trigger=on("app/e"), retries=3)
    async def f(ctx: eventbus.Context) -> None:
        received.append(await ctx.step.run("pair", lambda: (1, 2)))
        try:
            await ctx.step.run("when", lambda: datetime.datetime(2025, 1, 1))
        except eventbus.StepError as exc:
            received.append(exc.message)

    run = await run_one(client)
    assert received[0] == [1, 2]
    assert "step 'when' returned a value that is not JSON" in received[1]
    assert run.steps[1].attempts == 1  # not retried


async def test_step_output_size_limit() -> None:
    """A step result above 4 MiB of JSON fails the step with a clear error."""
    client = make_client()

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> None:
        await ctx.step.run("big", lambda: "x" * MAX_STEP_OUTPUT_BYTES)

    run = await run_one(client)
    assert run.status is eventbus.RunStatus.FAILED
    assert run.steps[0].error is not None
    assert "4194304-byte limit" in run.steps[0].error["message"]


async def test_repeated_step_ids_are_numbered() -> None:
    """Reusing a step id in one run (a loop) gives id, id:1, id:2, ... each memoized."""
    client = make_client()
    calls: list[int] = []

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> list[int]:
        results = [
            await ctx.step.run("item", lambda n=n: calls.append(n) or n * 10) for n in range(3)
        ]
        await ctx.step.sleep("pause", 1000)
        return results

    run = await run_one(client)
    assert run.output == [0, 10, 20]
    assert calls == [0, 1, 2]  # not repeated by the replay after the sleep
    assert [s.id for s in run.steps] == ["item", "item:1", "item:2", "pause"]


async def test_sleep_suspends_without_a_worker() -> None:
    """A sleeping run has status SLEEPING and frees its worker; time skips to its end."""
    client = make_client()
    clock = client.clock
    assert isinstance(clock, eventbus.VirtualClock)
    woke: list[datetime.datetime] = []

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> str:
        await ctx.step.sleep("cool-off", datetime.timedelta(hours=1))
        await ctx.step.sleep("short", "1m30s")
        await ctx.step.sleep("ms", 500)
        woke.append(clock.now())
        return "done"

    @client.create_function(fn_id="other", trigger=on("app/other"))
    async def other(ctx: eventbus.Context) -> str:
        return "ran"

    start = clock.now()
    async with client:
        (event_id,) = await client.send({"name": "app/e"})
        await client.settle()
        (run,) = client.runs(event_id=event_id, function_id="test-app-f")
        assert run.status is eventbus.RunStatus.SLEEPING
        assert repr(run) == "<Run fn='f' status=SLEEPING steps=1 attempts=1>"
        assert run.steps[0].status is Status.SLEEPING
        await client.send({"name": "app/other"})
        await client.settle()
        assert client.runs(function_id="test-app-other")[0].output == "ran"
        await client.settle(advance_time=True)
    assert run.output == "done"
    assert woke == [start + datetime.timedelta(hours=1, minutes=1, seconds=30, milliseconds=500)]
    assert [s.status for s in run.steps] == [Status.COMPLETED] * 3


async def test_sleep_until() -> None:
    """sleep_until waits for an aware datetime; a past one returns at once."""
    client = make_client()
    clock = client.clock
    target = clock.now() + datetime.timedelta(days=3)

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> str:
        await ctx.step.sleep_until("past", clock.now() - datetime.timedelta(days=1))
        await ctx.step.sleep_until("launch", target)
        return clock.now().isoformat()

    run = await run_one(client)
    assert run.output == target.isoformat()
    assert [s.status for s in run.steps] == [Status.COMPLETED, Status.COMPLETED]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda step: step.sleep("s", "soon"), "is not a duration"),
        (lambda step: step.sleep("s", datetime.timedelta(days=367)), "366 days"),
        (lambda step: step.sleep_until("s", "2030-01-01"), "needs a datetime"),
        (lambda step: step.run("", lambda: 1), "non-empty string"),
    ],
)
async def test_bad_step_arguments_fail_the_run_clearly(call: Any, message: str) -> None:
    """Bad step arguments fail the run at once with a message naming the problem."""
    client = make_client()

    @client.create_function(fn_id="f", trigger=on("app/e"), retries=3)
    async def f(ctx: eventbus.Context) -> None:
        await call(ctx.step)

    run = await run_one(client)
    assert run.status is eventbus.RunStatus.FAILED
    assert run.attempts == 1
    assert run.error is not None
    assert message in run.error["message"]


async def test_send_event_is_sent_once() -> None:
    """step.send_event sends once; replays and retries return the same ids."""
    client = make_client()
    got: list[list[str]] = []
    attempts = 0

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> None:
        nonlocal attempts
        ids = await ctx.step.send_event("notify", {"name": "app/email", "data": {"to": "a@b.c"}})
        got.append(ids)

        def flaky() -> None:
            nonlocal attempts
            attempts += 1
            if attempts < 3:
                raise ValueError("again")

        await ctx.step.run("after", flaky)

    run = await run_one(client)
    assert run.status is eventbus.RunStatus.COMPLETED
    emails = client.events(name="app/email")
    assert len(emails) == 1
    assert got == [[emails[0].internal_id]] * 3
    assert run.steps[0].kind == "send_event"


async def test_invalid_send_event_fails_the_step_for_good() -> None:
    """An invalid event in send_event is a non-retriable step failure."""
    client = make_client()

    @client.create_function(fn_id="f", trigger=on("app/e"), retries=3)
    async def f(ctx: eventbus.Context) -> str:
        try:
            await ctx.step.send_event("bad", {"name": "inngest/forged"})
        except eventbus.StepError as exc:
            return exc.message
        return "sent"

    run = await run_one(client)
    assert "reserved" in run.output
    assert run.steps[0].attempts == 1


async def test_nested_steps_fail_the_run_whatever_catches() -> None:
    """Calling a step inside step.run fails the run with a clear error that no
    `except Exception:` can swallow, as in the SDK."""
    client = make_client()
    swallowed: list[str] = []

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> str:
        async def outer() -> int:
            try:
                return await ctx.step.run("inner", lambda: 1)
            except Exception:
                swallowed.append("inner")
                return 0

        try:
            await ctx.step.run("outer", outer)
        except Exception:
            swallowed.append("outer")
        return "went on"

    run = await run_one(client)
    assert swallowed == []
    assert run.status is eventbus.RunStatus.FAILED
    assert run.error is not None
    assert "step 'inner' was called inside step 'outer'" in run.error["message"]
    assert run.attempts == 1


async def test_step_limit_fails_the_run() -> None:
    """More than 1000 steps in a run fails it with a clear error."""
    client = make_client()

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> None:
        for _ in range(MAX_STEPS + 1):
            await ctx.step.run("s", lambda: None)

    run = await run_one(client)
    assert run.status is eventbus.RunStatus.FAILED
    assert len(run.steps) == MAX_STEPS
    assert run.error is not None
    assert "limit of 1000 steps" in run.error["message"]


async def test_swallowed_interrupts_still_suspend() -> None:
    """A handler that catches BaseException cannot keep a sleeping run going."""
    client = make_client()
    after: list[str] = []

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> str:
        try:
            await ctx.step.sleep("nap", 60_000)
        except BaseException:  # what a careless handler might do
            after.append("swallowed")
            return "too early"
        return "rested"

    run = await run_one(client)
    assert run.output == "rested"
    assert after == ["swallowed"]


async def test_step_records_and_reprs() -> None:
    """Step records have readable reprs."""
    client = make_client()

    @client.create_function(fn_id="f", trigger=on("app/e"), retries=0)
    async def f(ctx: eventbus.Context) -> None:
        await ctx.step.run("ok", lambda: {"a": 1})
        assert "journal=1" in repr(ctx.step)
        await ctx.step.run("bad", lambda: 1 / 0)

    run = await run_one(client)
    ok, bad = run.steps
    assert repr(ok) == "<Step 'ok' kind=run status=COMPLETED attempts=1 output={'a': 1}>"
    assert repr(bad) == (
        "<Step 'bad' kind=run status=FAILED attempts=1 error=ZeroDivisionError: 'division by zero'>"
    )
    assert repr(eventbus.StepStatus.FAILED) == "StepStatus.FAILED"


async def test_a_step_that_disappears_on_replay_is_reported() -> None:
    """If the handler, re-executed to retry a step, reaches a new step instead of that
    one, the run fails with StepUnexpectedError, as Inngest reports a step that
    disappears (a handler's steps must not depend on what changes between executions)."""
    client = make_client()
    executions: list[int] = []

    @client.create_function(fn_id="f", trigger=on("app/e"), retries=2)
    async def f(ctx: eventbus.Context) -> None:
        executions.append(1)
        if len(executions) == 1:

            def flaky() -> None:
                raise ConnectionError("down")

            await ctx.step.run("flaky", flaky)  # fails: a retry of "flaky" is scheduled
        await ctx.step.run("other", lambda: None)  # the retry finds this step instead

    run = await run_one(client)
    assert run.status is eventbus.RunStatus.FAILED
    assert run.error is not None
    assert run.error["name"] == "StepUnexpectedError"
    assert run.error["message"] == 'found step "other" when targeting a different step'
    assert [s.id for s in run.steps] == ["flaky"]


async def test_step_run_records_its_arguments_as_input() -> None:
    """A step given arguments keeps them (as JSON) in its record, for the dev UI; one
    given none, or arguments that are not JSON or too large, keeps none."""
    client = make_client()

    class Opaque:
        pass

    @client.create_function(fn_id="inputs", trigger=on("app/in"))
    async def inputs(ctx: eventbus.Context) -> None:
        await ctx.step.run("plain", lambda: 1)
        await ctx.step.run("given", lambda n, unit: n, 3, unit=("kg",))
        await ctx.step.run("opaque", lambda o: None, Opaque())
        await ctx.step.run("huge", lambda s: None, "x" * 70_000)

    async with client:
        await client.send({"name": "app/in"})
        await client.settle()
    (run,) = client.runs()
    recorded = {record.id: record.input for record in run.steps}
    assert recorded == {
        "plain": None,
        "given": [[3], {"unit": ["kg"]}],
        "opaque": None,
        "huge": None,
    }
