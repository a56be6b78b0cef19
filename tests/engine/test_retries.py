"""Retries, backoff, NonRetriableError, RetryAfterError and run outputs."""

from __future__ import annotations

import datetime
import itertools
from typing import Any

import pytest

import eventbus
from eventbus._engine import BACKOFF_MS, MAX_JITTER_MS
from tests.helpers import make_client, on

pytestmark = pytest.mark.anyio


async def test_default_retries_follow_backoff_table() -> None:
    """A failing run is attempted 5 times, 15 s, 30 s, 1 m, 2 m apart plus 0-30 s jitter."""
    client = make_client()
    clock = client.clock
    times: list[int] = []
    attempts: list[int] = []

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> None:
        times.append(clock.now_ms())
        attempts.append(ctx.attempt)
        raise ValueError(f"attempt {ctx.attempt}")

    async with client:
        (event_id,) = await client.send({"name": "app/e"})
        await client.settle()
        (run,) = client.runs(event_id=event_id)
        assert run.status is eventbus.RunStatus.RUNNING
        assert run.attempts == 1
        await client.settle(advance_time=True)
    assert attempts == [0, 1, 2, 3, 4]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    for gap, base in zip(gaps, BACKOFF_MS, strict=False):
        assert base <= gap <= base + MAX_JITTER_MS
    assert run.status is eventbus.RunStatus.FAILED
    assert run.attempts == 5
    assert run.error is not None
    assert run.error["name"] == "ValueError"
    assert run.error["message"] == "attempt 4"
    assert "ValueError" in run.error["stack"]


async def test_backoff_table_caps_at_two_hours() -> None:
    """After the table runs out, every retry waits 2 h plus jitter."""
    client = make_client()
    clock = client.clock
    times: list[int] = []

    @client.create_function(fn_id="f", trigger=on("app/e"), retries=12)
    async def f(ctx: eventbus.Context) -> None:
        times.append(clock.now_ms())
        raise ValueError("no")

    async with client:
        await client.send({"name": "app/e"})
        await client.settle(advance_time=True)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) == 13
    assert all(7_200_000 <= g <= 7_200_000 + MAX_JITTER_MS for g in gaps[9:])


async def test_success_after_retries_records_output() -> None:
    """A run that succeeds on a retry completes with its output and attempt count."""
    client = make_client()

    @client.create_function(fn_id="f", trigger=on("app/e"), retries=3)
    async def f(ctx: eventbus.Context) -> dict[str, int]:
        if ctx.attempt < 2:
            raise ConnectionError("flaky")
        return {"attempt": ctx.attempt}

    async with client:
        await client.send({"name": "app/e"})
        await client.settle(advance_time=True)
    (run,) = client.runs(function_id="test-app-f")
    assert run.status is eventbus.RunStatus.COMPLETED
    assert run.output == {"attempt": 2}
    assert run.attempts == 3
    assert run.error is None


async def test_retries_zero_fails_at_once() -> None:
    """retries=0 means one attempt."""
    client = make_client()

    @client.create_function(fn_id="f", trigger=on("app/e"), retries=0)
    async def f(ctx: eventbus.Context) -> None:
        raise ValueError("x")

    async with client:
        await client.send({"name": "app/e"})
        await client.settle()
    (run,) = client.runs()
    assert run.status is eventbus.RunStatus.FAILED
    assert run.attempts == 1


async def test_non_retriable_error_fails_without_retry() -> None:
    """NonRetriableError fails the run on the first attempt."""
    client = make_client()

    @client.create_function(fn_id="f", trigger=on("app/e"), retries=5)
    async def f(ctx: eventbus.Context) -> None:
        raise eventbus.NonRetriableError("card declined")

    async with client:
        await client.send({"name": "app/e"})
        await client.settle(advance_time=True)
    (run,) = client.runs()
    assert run.status is eventbus.RunStatus.FAILED
    assert run.attempts == 1
    assert run.error is not None
    assert run.error["message"] == "card declined"
    assert run.error["name"] == "NonRetriableError"


@pytest.mark.parametrize(
    ("retry_after", "expected_ms"),
    [
        (5_000, 5_000),
        (datetime.timedelta(minutes=3), 180_000),
        (10, 1_000),  # clamped up to 1 s
        (datetime.timedelta(days=3), 86_400_000),  # clamped down to 24 h
    ],
)
async def test_retry_after_error_sets_the_delay(retry_after: Any, expected_ms: int) -> None:
    """RetryAfterError retries after its delay, clamped to 1 s .. 24 h; it counts as an attempt."""
    client = make_client()
    clock = client.clock
    times: list[int] = []

    @client.create_function(fn_id="f", trigger=on("app/e"), retries=1)
    async def f(ctx: eventbus.Context) -> str:
        times.append(clock.now_ms())
        if ctx.attempt == 0:
            raise eventbus.RetryAfterError("rate limited", retry_after)
        return "ok"

    async with client:
        await client.send({"name": "app/e"})
        await client.settle(advance_time=True)
    assert times[1] - times[0] == expected_ms
    (run,) = client.runs()
    assert run.attempts == 2
    assert run.output == "ok"


async def test_retry_after_datetime() -> None:
    """RetryAfterError accepts an aware datetime."""
    client = make_client()
    clock = client.clock
    times: list[int] = []

    @client.create_function(fn_id="f", trigger=on("app/e"), retries=1)
    async def f(ctx: eventbus.Context) -> None:
        times.append(clock.now_ms())
        if ctx.attempt == 0:
            raise eventbus.RetryAfterError(None, clock.now() + datetime.timedelta(seconds=42))

    async with client:
        await client.send({"name": "app/e"})
        await client.settle(advance_time=True)
    assert times[1] - times[0] == 42_000


def test_retry_after_error_takes_the_sdks_arguments() -> None:
    """RetryAfterError takes int ms, a timedelta or a datetime (naive means local time, as
    the SDK reads it), and quiet positionally; anything else is a UsageError, which fails
    the run instead of being retried as an ordinary error."""
    with pytest.raises(eventbus.UsageError, match="retry_after"):
        eventbus.RetryAfterError("x", "5s")  # type: ignore[arg-type]
    naive = datetime.datetime(2030, 1, 1)
    assert eventbus.RetryAfterError("x", naive).retry_after == naive.astimezone()
    assert eventbus.RetryAfterError("x", 5, True).quiet
    assert eventbus.NonRetriableError("no", True).quiet
    assert eventbus.RetryAfterError(None, 5).message == "retry requested"
    assert eventbus.NonRetriableError().message == "non-retriable error"


@pytest.mark.anyio
async def test_a_bad_retry_after_fails_the_run_clearly() -> None:
    """A RetryAfterError built with a bad value fails the run at once, saying why."""
    client = make_client()

    @client.create_function(fn_id="f", trigger=on("app/e"), retries=3)
    async def f(ctx: eventbus.Context) -> None:
        raise eventbus.RetryAfterError("later", "5 minutes")  # type: ignore[arg-type]

    async with client:
        await client.send({"name": "app/e"})
        await client.settle(advance_time=True)
    (run,) = client.runs()
    assert run.status is eventbus.RunStatus.FAILED
    assert run.attempts == 1
    assert run.error is not None
    assert "retry_after must be" in run.error["message"]


async def test_output_must_be_json() -> None:
    """A non-JSON return value fails the run at once with a clear error."""
    client = make_client()

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> object:
        return {"when": datetime.datetime(2025, 1, 1)}

    async with client:
        await client.send({"name": "app/e"})
        await client.settle(advance_time=True)
    (run,) = client.runs()
    assert run.status is eventbus.RunStatus.FAILED
    assert run.attempts == 1
    assert run.error is not None
    assert "is not JSON" in run.error["message"]
    assert "test-app-f" in run.error["message"]


async def test_output_is_json_round_tripped() -> None:
    """The output is what JSON gives back: tuples become lists."""
    client = make_client()

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> object:
        return {"pair": (1, 2)}

    async with client:
        await client.send({"name": "app/e"})
        await client.settle()
    assert client.runs()[0].output == {"pair": [1, 2]}


async def test_settle_without_virtual_clock_cannot_advance() -> None:
    """advance_time=True on a system clock is a clear UsageError."""
    client = eventbus.Inngest("app")
    async with client:
        with pytest.raises(eventbus.UsageError, match="VirtualClock"):
            await client.settle(advance_time=True)


async def test_future_ts_runs_at_ts() -> None:
    """An event dated in the future starts its run when the clock reaches its ts."""
    client = make_client()
    clock = client.clock
    started: list[int] = []

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> None:
        started.append(clock.now_ms())

    due = clock.now_ms() + 3_600_000
    async with client:
        await client.send({"name": "app/e", "ts": due})
        await client.settle()
        assert started == []
        assert client.runs()[0].status is eventbus.RunStatus.QUEUED
        await client.settle(advance_time=True)
    assert started == [due]


class SteppingClock(eventbus.Clock):
    """A non-virtual clock that moves 10 s forward each time it is read."""

    def __init__(self) -> None:
        self.ms = 1_750_000_000_000

    def now_ms(self) -> int:
        self.ms += 10_000
        return self.ms


async def test_timer_task_fires_timers_of_a_real_clock() -> None:
    """With a clock that is not virtual, the timer task fires retries when they fall due."""
    client = eventbus.Inngest("app", clock=SteppingClock())

    @client.create_function(fn_id="f", trigger=on("app/e"), retries=2)
    async def f(ctx: eventbus.Context) -> int:
        if ctx.attempt < 2:
            raise eventbus.RetryAfterError("soon", 1_000)
        return ctx.attempt

    import anyio

    async with client:
        await client.send({"name": "app/e"})
        with anyio.fail_after(5):
            while not client.runs()[0].status.is_finished:
                await client.settle()
                await anyio.lowlevel.checkpoint()
    assert client.runs()[0].output == 2
