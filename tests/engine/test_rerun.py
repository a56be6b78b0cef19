"""client.rerun and client.replay: ended runs started over with the same events, from the
first step, as Inngest's rerun and Replay do."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

import eventbus
from eventbus.stores import SqliteStore
from tests.helpers import make_client, on

pytestmark = pytest.mark.anyio

T0 = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)


def flaky_app(**kwargs: object) -> tuple[eventbus.Inngest, list[str]]:
    """``charge`` fails while the bank is down (``down`` holds True), else charges."""
    client = make_client(clock=eventbus.VirtualClock(T0), **kwargs)
    calls: list[str] = []
    down = [True]

    @client.create_function(
        fn_id="charge", retries=0, trigger=on("shop/paid"), idempotency="event.data.order"
    )
    async def charge(ctx: eventbus.Context) -> str:
        await ctx.step.run("quote", lambda: calls.append(f"quote {ctx.event.data['order']}"))

        def bank() -> str:
            calls.append(f"bank {ctx.event.data['order']}")
            if down[0]:
                raise ConnectionError("the bank is down")
            return "ch_1"

        return await ctx.step.run("bank", bank)

    client.down = down  # type: ignore[attr-defined]
    return client, calls


async def test_a_failed_run_reruns_from_the_first_step_with_its_events() -> None:
    client, calls = flaky_app()
    async with client:
        (event_id,) = await client.send({"name": "shop/paid", "id": "o-1", "data": {"order": 1}})
        await client.settle()
        (failed,) = client.runs()
        assert failed.status is eventbus.RunStatus.FAILED
        client.down[0] = False  # type: ignore[attr-defined]
        again = client.rerun(failed.run_id)
        assert again.run_id != failed.run_id
        assert again.rerun_of == failed.run_id
        assert again.event_ids == (event_id,)
        await client.settle()
    assert again.status is eventbus.RunStatus.COMPLETED
    assert again.output == "ch_1"
    assert [s.id for s in again.steps] == ["quote", "bank"]  # a fresh journal
    assert calls == ["quote 1", "bank 1", "quote 1", "bank 1"]
    assert failed.status is eventbus.RunStatus.FAILED  # the old run stays as it ended
    assert failed.rerun_of is None
    assert [r.run_id for r in client.runs(event_id=event_id)] == [failed.run_id, again.run_id]


async def test_replay_reruns_the_failed_runs_queued_in_a_time_range() -> None:
    client, _ = flaky_app()
    clock = client.clock
    assert isinstance(clock, eventbus.VirtualClock)
    async with client:
        for order in range(3):
            await client.send({"name": "shop/paid", "data": {"order": order}})
            await client.settle()
            clock.advance(datetime.timedelta(minutes=10))
        client.down[0] = False  # type: ignore[attr-defined]
        await client.send({"name": "shop/paid", "data": {"order": 3}})
        await client.settle()
        old = client.runs()
        assert [r.status.value for r in old] == ["Failed"] * 3 + ["Completed"]
        replayed = client.replay(
            "charge",
            since=T0 + datetime.timedelta(minutes=5),
            until=T0 + datetime.timedelta(hours=1),
        )
        await client.settle()
        assert [r.rerun_of for r in replayed] == [old[1].run_id, old[2].run_id]
        assert [r.status.value for r in replayed] == ["Completed", "Completed"]
        everything = client.replay("test-app-charge", statuses=[eventbus.RunStatus.COMPLETED])
        await client.settle()
    assert len(everything) == 3  # the completed original and the two replays
    assert {r.event.data["order"] for r in everything} == {1, 2, 3}


async def test_bad_reruns_are_refused_with_the_reason() -> None:
    client, _ = flaky_app(event_retention=2)

    @client.create_function(fn_id="slow", trigger=on("app/slow"))
    async def slow(ctx: eventbus.Context) -> None:
        await ctx.step.sleep("nap", "1h")

    async with client:
        with pytest.raises(eventbus.UsageError, match="no run 'nope'"):
            client.rerun("nope")
        await client.send({"name": "app/slow"})
        await client.settle()
        (sleeping,) = client.runs()
        with pytest.raises(eventbus.UsageError, match="only an ended run can be rerun"):
            client.rerun(sleeping.run_id)
        for order in range(10):  # past the retention of 2 events: the first are pruned
            await client.send({"name": "shop/paid", "data": {"order": order}})
        await client.settle()
        first = client.runs(function_id="test-app-charge")[0]
        with pytest.raises(eventbus.UsageError, match="past the store's retention"):
            client.rerun(first.run_id)
        assert first.run_id not in {r.rerun_of for r in client.replay("charge")}
        with pytest.raises(eventbus.UsageError, match="no function 'missing'"):
            client.replay("missing")
        with pytest.raises(eventbus.UsageError, match="ended statuses"):
            client.replay("charge", statuses=[eventbus.RunStatus.RUNNING])
        with pytest.raises(eventbus.UsageError, match="an aware datetime"):
            client.replay("charge", since=datetime.datetime(2030, 1, 1))


async def test_a_rerun_keeps_its_origin_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    client, _ = flaky_app(store=SqliteStore(path))
    async with client:
        await client.send({"name": "shop/paid", "data": {"order": 9}})
        await client.settle()
        (failed,) = client.runs()
        again = client.rerun(failed.run_id)
        await client.settle()
    reopened, _ = flaky_app(store=SqliteStore(path))
    async with reopened:
        runs = {run.run_id: run for run in reopened.runs()}
    assert runs[again.run_id].rerun_of == failed.run_id


async def test_a_rerun_waits_for_a_throttle(tmp_path: Path) -> None:
    client = make_client(clock=eventbus.VirtualClock(T0))

    @client.create_function(
        fn_id="t", trigger=on("app/e"), throttle=eventbus.Throttle(limit=1, period="1m")
    )
    async def throttled(ctx: eventbus.Context) -> int:
        return 1

    async with client:
        await client.send([{"name": "app/e"}, {"name": "app/e"}])  # the limit and the burst
        await client.settle()
        done = client.runs()[0]
        again = client.rerun(done.run_id)
        await client.settle()
        assert again.status is eventbus.RunStatus.QUEUED  # the throttle's next turn
        await client.settle(advance_time=True)
    assert again.status is eventbus.RunStatus.COMPLETED


def test_rerun_and_replay_from_a_program_without_an_event_loop() -> None:
    """With the engine in a background thread (``with client:``), the calls are carried
    to its loop."""
    client, calls = flaky_app()
    with client:
        client.send_sync({"name": "shop/paid", "data": {"order": 5}})
        client.settle_sync()
        (failed,) = client.runs()
        client.down[0] = False  # type: ignore[attr-defined]
        again = client.rerun(failed.run_id)
        client.settle_sync()
        assert again.output == "ch_1"
        (replayed,) = client.replay("charge")  # the failed original, once more
        client.settle_sync()
        assert replayed.rerun_of == failed.run_id
        assert client.cancel(replayed.run_id) is False  # it has ended
    assert calls.count("bank 5") == 3
