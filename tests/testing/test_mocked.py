"""eventbus.testing.mocked: the official mocked runner's API, with the real semantics."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

import eventbus
from eventbus.testing import mocked

client = eventbus.Inngest(app_id="shop")
calls: dict[str, int] = {}


def count(name: str) -> int:
    calls[name] = calls.get(name, 0) + 1
    return calls[name]


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()


def event(**data: Any) -> eventbus.Event:
    return eventbus.Event("shop/test", data)


@client.create_function(fn_id="non-retriable", trigger=[])
async def non_retriable(ctx: eventbus.Context) -> None:
    count("body")
    raise eventbus.NonRetriableError("stop")


@client.create_function(fn_id="step-non-retriable", trigger=[])
async def step_non_retriable(ctx: eventbus.Context) -> None:
    def step() -> None:
        count("step")
        raise eventbus.NonRetriableError("stop")

    await ctx.step.run("s", step)


@client.create_function(fn_id="catches", trigger=[], retries=0)
async def catches(ctx: eventbus.Context) -> str:
    try:
        await ctx.step.run("boom", lambda: 1 / 0)
    except eventbus.StepError as exc:
        return f"caught {exc.name}"
    return "not reached"


@client.create_function(fn_id="two-flaky", trigger=[], retries=3)
async def two_flaky(ctx: eventbus.Context) -> list[int]:
    attempts = []

    def flaky(name: str) -> int:
        attempts.append(ctx.attempt)
        if count(name) <= 2:
            raise ValueError(name)
        return ctx.attempt

    first = await ctx.step.run("a", flaky, "a")
    second = await ctx.step.run("b", flaky, "b")
    return [first, second]


@client.create_function(fn_id="retry-after", trigger=[], retries=1)
async def retry_after(ctx: eventbus.Context) -> str:
    if count("body") == 1:
        raise eventbus.RetryAfterError("later", datetime.timedelta(hours=3))
    return "done"


@client.create_function(fn_id="datetime", trigger=[])
async def returns_datetime(ctx: eventbus.Context) -> Any:
    return await ctx.step.run("now", lambda: datetime.datetime(2025, 1, 1))


@client.create_function(fn_id="nested", trigger=[])
async def nested(ctx: eventbus.Context) -> Any:
    async def outer() -> Any:
        return await ctx.step.run("inner", lambda: 1)

    return await ctx.step.run("outer", outer)


@client.create_function(fn_id="batch", trigger=[])
async def batch(ctx: eventbus.Context) -> list[Any]:
    return [len(ctx.events), ctx.event.data["n"]]


@client.create_function(fn_id="waits", trigger=[])
async def waits(ctx: eventbus.Context) -> Any:
    got = await ctx.step.wait_for_event("w", event="shop/x", timeout="1h")
    return got.data if got else None


@client.create_function(fn_id="stubbed-run", trigger=[])
async def stubbed_run(ctx: eventbus.Context) -> Any:
    return await ctx.step.run("expensive", lambda: count("expensive"))


def test_non_retriable_error_is_not_retried() -> None:
    """NonRetriableError fails at once, at function level and in a step."""
    result = mocked.trigger(non_retriable, event(), mocked.Inngest(app_id="t"))
    assert result.status is mocked.Status.FAILED
    assert isinstance(result.error, eventbus.NonRetriableError)
    result = mocked.trigger(step_non_retriable, event(), mocked.Inngest(app_id="t"))
    assert result.status is mocked.Status.FAILED
    assert calls == {"body": 1, "step": 1}


def test_step_error_is_catchable() -> None:
    """With retries=0 a failing step raises StepError into the handler."""
    result = mocked.trigger(catches, event(), mocked.Inngest(app_id="t"))
    assert (result.status, result.output) == (mocked.Status.COMPLETED, "caught ZeroDivisionError")


def test_attempts_are_counted_per_step() -> None:
    """Two steps each failing twice complete with retries=3; attempt resets between them."""
    result = mocked.trigger(two_flaky, event(), mocked.Inngest(app_id="t"))
    assert result.status is mocked.Status.COMPLETED
    assert result.output == [2, 2]


def test_retry_after_waits_on_the_virtual_clock() -> None:
    """RetryAfterError retries after its delay (skipped), and completes."""
    result = mocked.trigger(retry_after, event(), mocked.Inngest(app_id="t"))
    assert result.output == "done"


def test_non_json_step_results_fail() -> None:
    """A step returning a datetime fails, as on a real backend."""
    result = mocked.trigger(returns_datetime, event(), mocked.Inngest(app_id="t"))
    assert result.status is mocked.Status.FAILED
    assert isinstance(result.error, eventbus.StepError)
    assert "not JSON" in result.error.message


def test_nested_steps_fail_clearly() -> None:
    """Nested steps fail the run with a clear, non-retriable error."""
    result = mocked.trigger(nested, event(), mocked.Inngest(app_id="t"))
    assert result.status is mocked.Status.FAILED
    assert isinstance(result.error, eventbus.NonRetriableError)
    assert "cannot be nested" in str(result.error)


def test_a_list_of_events_is_one_batch_run() -> None:
    """A list of events gives ctx.events; ctx.event is the first."""
    result = mocked.trigger(
        batch, [event(n=1), {"name": "shop/test", "data": {"n": 2}}], mocked.Inngest(app_id="t")
    )
    assert result.output == [2, 1]


def test_waits_need_stubs() -> None:
    """wait_for_event must be stubbed: an Event, or Timeout for None."""
    with pytest.raises(mocked.UnstubbedStepError, match="step w is not stubbed"):
        mocked.trigger(waits, event(), mocked.Inngest(app_id="t"))
    timed_out = mocked.trigger(
        waits, event(), mocked.Inngest(app_id="t"), step_stubs={"w": mocked.Timeout}
    )
    assert timed_out.output is None
    matched = mocked.trigger(
        waits,
        event(),
        mocked.Inngest(app_id="t"),
        step_stubs={"w": eventbus.Event("shop/x", {"ok": True})},
    )
    assert matched.output == {"ok": True}


def test_stubs_replace_step_run_results() -> None:
    """A stubbed step.run returns the stub; its function is not called."""
    result = mocked.trigger(
        stubbed_run, event(), mocked.Inngest(app_id="t"), step_stubs={"expensive": 99}
    )
    assert result.output == 99
    assert calls == {}


def test_mock_client_send_returns_one_id_per_event() -> None:
    """mocked.Inngest records sends and returns one id per event."""
    mock_client = mocked.Inngest(app_id="t")
    assert len(mock_client.send_sync(eventbus.Event("a/b"))) == 1
    assert len(mock_client.send_sync([eventbus.Event("a/b"), eventbus.Event("a/c")])) == 2


@pytest.mark.anyio
async def test_trigger_async_inside_a_running_loop() -> None:
    """trigger() refuses a running loop and says to await trigger_async()."""
    with pytest.raises(eventbus.UsageError, match="trigger_async"):
        mocked.trigger(batch, event(n=5), mocked.Inngest(app_id="t"))
    result = await mocked.trigger_async(batch, event(n=5), mocked.Inngest(app_id="t"))
    assert result.output == [1, 5]


def test_trigger_needs_a_function() -> None:
    """trigger() takes the Function create_function returned."""
    with pytest.raises(eventbus.UsageError, match="create_function returned"):
        mocked.trigger(lambda ctx: None, event(), mocked.Inngest(app_id="t"))  # type: ignore[arg-type]
