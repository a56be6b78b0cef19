"""ctx.logger: once per run, any logger-like object, and the engine's own messages kept
on eventbus's logger."""

from __future__ import annotations

import logging
from typing import Any

import pytest

import eventbus
from tests.helpers import make_client, on

pytestmark = pytest.mark.anyio


class LoggerLike:
    """A structlog-style logger: methods take the message and keyword fields."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def info(self, event: str, **fields: Any) -> None:
        self.lines.append(("info", event, fields))

    def warning(self, event: str, **fields: Any) -> None:
        self.lines.append(("warning", event, fields))


class Broken:
    def info(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the logging backend is down")


async def test_a_logger_like_object_gets_the_calls_once_per_run() -> None:
    """A non-stdlib logger receives each call as made, and lines of replayed code are
    not repeated when the run resumes after a sleep."""
    like = LoggerLike()
    client = make_client(logger=like)  # type: ignore[arg-type]

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> None:
        ctx.logger.info("start", order="o-1")
        await ctx.step.run("charge", lambda: "paid")
        await ctx.step.sleep("wait", "1h")
        ctx.logger.warning("after the sleep")

    async with client:
        await client.send({"name": "app/e"})
        await client.settle(advance_time=True)
    assert like.lines == [("info", "start", {"order": "o-1"}), ("warning", "after the sleep", {})]


async def test_a_failing_logger_never_fails_the_run(caplog: pytest.LogCaptureFixture) -> None:
    """A logger that raises loses the line; the run completes and eventbus says so."""
    client = make_client(logger=Broken())  # type: ignore[arg-type]

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> str:
        ctx.logger.info("hello")
        ctx.logger.debug("a method it lacks is skipped")
        return "done"

    with caplog.at_level(logging.WARNING, logger="eventbus"):
        async with client:
            await client.send({"name": "app/e"})
            await client.settle()
    assert client.runs()[0].output == "done"
    assert any("the client's logger failed" in r.getMessage() for r in caplog.records)


async def test_stdlib_records_carry_the_run_and_the_engine_keeps_to_its_own_logger(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With a stdlib logger, ctx.logger's records carry run_id and function_id; the
    engine's retry messages go to the "eventbus" logger, not the client's."""
    mine = logging.getLogger("my.app")
    client = make_client(logger=mine)
    attempts: list[int] = []

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> None:
        ctx.logger.info("attempt %d", ctx.attempt)
        attempts.append(ctx.attempt)
        if len(attempts) == 1:
            raise ConnectionError("flaky")

    with caplog.at_level(logging.INFO):
        async with client:
            await client.send({"name": "app/e"})
            await client.settle(advance_time=True)
    (run,) = client.runs()
    mine_records = [r for r in caplog.records if r.name == "my.app"]
    assert [r.getMessage() for r in mine_records] == ["attempt 0", "attempt 1"]
    assert {(r.run_id, r.function_id) for r in mine_records} == {  # type: ignore[attr-defined]
        (run.run_id, "test-app-f")
    }
    retry_lines = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert [r.name for r in retry_lines] == ["eventbus"]


def test_set_logger_is_the_sdks() -> None:
    """set_logger replaces the logger, as on the SDK's client."""
    client = eventbus.Inngest("app")
    other = logging.getLogger("other")
    client.set_logger(other)
    assert client.logger is other


async def test_the_engines_records_carry_the_run_step_and_attempt_as_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A step retry, a function retry, a failure and a cancellation each log a record
    whose ``extra`` names the run, its function and event, and the step and attempt."""
    client = make_client()
    tries: dict[str, int] = {}

    @client.create_function(fn_id="steps", retries=1, trigger=on("app/steps"))
    async def steps(ctx: eventbus.Context) -> None:
        def flaky() -> None:
            tries["flaky"] = tries.get("flaky", 0) + 1
            raise ConnectionError("down")

        await ctx.step.run("call-api", flaky)

    @client.create_function(fn_id="body", retries=1, trigger=on("app/body"))
    async def body(ctx: eventbus.Context) -> None:
        raise ValueError("bad")

    @client.create_function(fn_id="slow", trigger=on("app/slow"))
    async def slow(ctx: eventbus.Context) -> None:
        await ctx.step.sleep("nap", "1h")

    with caplog.at_level(logging.INFO, logger="eventbus"):
        async with client:
            (steps_event,) = await client.send({"name": "app/steps"})
            await client.send({"name": "app/body"})
            await client.settle(advance_time=True)
            await client.send({"name": "app/slow"})
            await client.settle()  # asleep: cancelled below, before the hour is up
            (slow_run,) = client.runs(function_id="test-app-slow")
            assert client.cancel(slow_run.run_id)
            await client.settle()
    runs = {run.function.local_id: run for run in client.runs()}
    records = [r for r in caplog.records if r.name == "eventbus" and hasattr(r, "run_id")]
    step_retry = [r for r in records if getattr(r, "step_id", None) == "call-api"]
    assert [r.attempt for r in step_retry] == [0]  # type: ignore[attr-defined]
    assert step_retry[0].run_id == runs["steps"].run_id  # type: ignore[attr-defined]
    assert step_retry[0].event_id == steps_event  # type: ignore[attr-defined]
    body_lines = [r for r in records if r.run_id == runs["body"].run_id]  # type: ignore[attr-defined]
    assert [("retrying" in r.getMessage(), r.attempt) for r in body_lines] == [  # type: ignore[attr-defined]
        (True, 0),
        (False, 1),
    ]
    assert {r.function_id for r in body_lines} == {"test-app-body"}  # type: ignore[attr-defined]
    (cancelled,) = [r for r in records if "cancelled" in r.getMessage()]
    assert (cancelled.run_id, cancelled.function_id) == (  # type: ignore[attr-defined]
        runs["slow"].run_id,
        "test-app-slow",
    )
    assert not hasattr(cancelled, "attempt")


async def test_ctx_logger_records_name_the_event_and_the_attempt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = make_client(logger=logging.getLogger("my.app"))

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> None:
        ctx.logger.info("hello")

    with caplog.at_level(logging.INFO):
        async with client:
            (event_id,) = await client.send({"name": "app/e"})
            await client.settle()
    (record,) = [r for r in caplog.records if r.name == "my.app"]
    assert (record.event_id, record.attempt) == (event_id, 0)  # type: ignore[attr-defined]
