"""The run record keeps what only some runs use (flow control, batches, failures) in a
part made on first use, and the wall clock hands out one int per millisecond: the
retained history is smaller, and nothing a user reads changes."""

from __future__ import annotations

import datetime

import pytest

import eventbus
from eventbus._clock import SystemClock
from eventbus._run import Run, _RareField
from tests.helpers import make_client, on

pytestmark = pytest.mark.anyio


async def test_a_plain_run_has_no_rare_part_and_reads_its_defaults() -> None:
    client = make_client()

    @client.create_function(fn_id="plain", trigger=on("app/e"))
    async def plain(ctx: eventbus.Context) -> int:
        return 1

    async with client:
        await client.send({"name": "app/e"})
        await client.settle()
        (run,) = client.runs()
    assert run._rare is None
    assert run.batch_id is None
    assert run.exception is None
    assert run._retrying is None
    assert run._singleton is None
    assert run._claims is None
    assert run._slotted is False
    assert run._lent is False
    assert run._priority is None
    run.batch_id = None  # writing a default makes no rare part
    run._slotted = False
    assert run._rare is None


async def test_failures_batches_and_flow_control_keep_their_fields() -> None:
    client = make_client()

    @client.create_function(fn_id="fails", retries=0, trigger=on("app/fail"))
    async def fails(ctx: eventbus.Context) -> None:
        raise ValueError("no")

    @client.create_function(
        fn_id="batched",
        trigger=on("app/batch"),
        batch_events=eventbus.Batch(max_size=2, timeout="5s"),
    )
    async def batched(ctx: eventbus.Context) -> int:
        return len(ctx.events)

    @client.create_function(
        fn_id="limited",
        trigger=on("app/limited"),
        concurrency=[eventbus.Concurrency(limit=1)],
        singleton=eventbus.Singleton(key="event.data.k", mode="skip"),
    )
    async def limited(ctx: eventbus.Context) -> int:
        await ctx.step.sleep("nap", datetime.timedelta(seconds=1))
        return 2

    async with client:
        await client.send([{"name": "app/batch"}, {"name": "app/batch"}])
        await client.send({"name": "app/fail"})
        await client.send({"name": "app/limited", "data": {"k": "a"}})
        await client.settle(advance_time=True)
        runs = {run.function.local_id: run for run in client.runs()}
    assert isinstance(runs["fails"].exception, ValueError)
    assert runs["fails"].error is not None
    assert runs["fails"].error["name"] == "ValueError"
    assert runs["batched"].batch_id is not None
    assert runs["batched"].output == 2
    limited_run = runs["limited"]
    assert limited_run.output == 2
    assert limited_run._claims is not None  # its concurrency slots, evaluated once
    assert limited_run._slotted is False  # released as it ended
    assert limited_run._rare is not None


def test_the_field_descriptor_is_reachable_on_the_class() -> None:
    assert isinstance(Run.__dict__["batch_id"], _RareField)
    assert Run.batch_id is Run.__dict__["batch_id"]


def test_one_int_per_millisecond(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = SystemClock()
    now = [1_796_000_000_000_123_456]
    monkeypatch.setattr("eventbus._clock.time.time_ns", lambda: now[0])
    first = clock.now_ms()
    now[0] += 500_000  # the same millisecond
    again = clock.now_ms()
    assert again == first == 1_796_000_000_000
    assert again is first
    now[0] += 1_000_000
    later = clock.now_ms()
    assert later == first + 1
