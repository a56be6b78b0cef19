"""SqliteStore: what a restart keeps, and the errors a bad file gets.

A "restart" here is what a new process does: a new client with the same functions and a
new SqliteStore over the same file, started after the first engine has stopped (with
runs unfinished). The clocks are virtual and continue across the restart.
"""

from __future__ import annotations

import contextlib
import datetime
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest

import eventbus
from eventbus.stores import SqliteStore, StoreError

pytestmark = pytest.mark.anyio

T0 = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)


class App:
    """One "process" of an app: a client over the file, with the test's functions."""

    def __init__(self, path: Path, clock: eventbus.VirtualClock, **kwargs: Any) -> None:
        self.store = SqliteStore(path)
        self.client = eventbus.Inngest(
            "shop", clock=clock, store=self.store, shutdown_timeout=0.0, **kwargs
        )
        self.calls: dict[str, int] = {}

    def count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1


def checkout_app(path: Path, clock: eventbus.VirtualClock, *, block: bool = False) -> App:
    """charge (a step), sleep an hour, ship (a step); optionally stuck after charging."""
    app = App(path, clock)
    gate = anyio.Event()

    @app.client.create_function(
        fn_id="checkout", trigger=eventbus.TriggerEvent(event="shop/order.paid")
    )
    async def checkout(ctx: eventbus.Context) -> dict[str, Any]:
        def charge() -> str:
            app.count("charge")
            return "ch_1"

        charged = await ctx.step.run("charge", charge)
        if block:
            await gate.wait()  # the process "dies" here
        await ctx.step.sleep("cool-off", "1h")

        def ship() -> str:
            app.count("ship")
            return "sh_1"

        shipped = await ctx.step.run("ship", ship)
        return {"charged": charged, "shipped": shipped}

    return app


async def test_a_sleeping_run_wakes_after_a_restart(tmp_path: Path) -> None:
    """The run sleeps when the first process stops; the second wakes it on time, and the
    step before the sleep does not run again."""
    path = tmp_path / "app.db"
    clock = eventbus.VirtualClock(start=T0)
    first = checkout_app(path, clock)
    async with first.client:
        (event_id,) = await first.client.send({"name": "shop/order.paid", "data": {"id": 1}})
        await first.client.settle()
        (run,) = first.client.runs(event_id=event_id)
        assert run.status is eventbus.RunStatus.SLEEPING
    second = checkout_app(path, clock)
    async with second.client:
        (run,) = second.client.runs(event_id=event_id)
        assert run.status is eventbus.RunStatus.SLEEPING
        clock.advance(datetime.timedelta(minutes=59))
        await second.client.settle()
        assert second.client.get_run(run.run_id).status is eventbus.RunStatus.SLEEPING  # type: ignore[union-attr]
        clock.advance(datetime.timedelta(minutes=1))
        await second.client.settle()
        done = second.client.get_run(run.run_id)
    assert done is not None
    assert done.status is eventbus.RunStatus.COMPLETED
    assert done.output == {"charged": "ch_1", "shipped": "sh_1"}
    assert first.calls == {"charge": 1}
    assert second.calls == {"ship": 1}


async def test_a_run_interrupted_while_executing_replays_its_journal(tmp_path: Path) -> None:
    """A run stopped mid-handler (the process died) runs again from the top after the
    restart; its committed step is not executed again."""
    path = tmp_path / "app.db"
    clock = eventbus.VirtualClock(start=T0)
    first = checkout_app(path, clock, block=True)
    async with first.client:
        await first.client.send({"name": "shop/order.paid"})
        await anyio.wait_all_tasks_blocked()  # charged, then stuck
    assert first.calls == {"charge": 1}
    second = checkout_app(path, clock)
    async with second.client:
        await second.client.settle(advance_time=True)
        (run,) = second.client.runs()
    assert run.status is eventbus.RunStatus.COMPLETED
    assert second.calls == {"ship": 1}  # charge came from the journal


async def test_the_dedup_window_and_the_history_survive_a_restart(tmp_path: Path) -> None:
    """An id seen before the restart is still a duplicate after it; events and finished
    runs are still listed."""
    path = tmp_path / "app.db"
    clock = eventbus.VirtualClock(start=T0)
    first = checkout_app(path, clock)
    async with first.client:
        await first.client.send({"name": "shop/order.paid", "id": "order-1"})
        await first.client.settle(advance_time=True)
    second = checkout_app(path, clock)
    async with second.client:
        (again,) = await second.client.send({"name": "shop/order.paid", "id": "order-1"})
        await second.client.settle(advance_time=True)
        assert second.client.get_event(again).deduplicated  # type: ignore[union-attr]
        assert len(second.client.runs()) == 1
        assert second.client.runs()[0].status is eventbus.RunStatus.COMPLETED
        assert [e.id for e in second.client.events("shop/order.paid")] == ["order-1", "order-1"]
    assert second.calls == {}


async def test_a_waiting_run_keeps_waiting_across_a_restart(tmp_path: Path) -> None:
    """wait_for_event is registered again, with what remains of its timeout."""
    path = tmp_path / "app.db"
    clock = eventbus.VirtualClock(start=T0)

    def app_for() -> App:
        app = App(path, clock)

        @app.client.create_function(
            fn_id="ship", trigger=eventbus.TriggerEvent(event="shop/order.paid")
        )
        async def ship(ctx: eventbus.Context) -> Any:
            found = await ctx.step.wait_for_event(
                "packed", event="shop/order.packed", timeout="2h", match="data.id"
            )
            return None if found is None else found.data

        return app

    first = app_for()
    async with first.client:
        await first.client.send({"name": "shop/order.paid", "data": {"id": 7}})
        await first.client.settle()
    second = app_for()
    async with second.client:
        await second.client.send({"name": "shop/order.packed", "data": {"id": 8}})  # no match
        await second.client.send({"name": "shop/order.packed", "data": {"id": 7}})
        await second.client.settle()
        (run,) = second.client.runs(status=eventbus.RunStatus.COMPLETED)
    assert run.output == {"id": 7}

    # And a wait whose timeout passes while no process runs ends with None at restart.
    third = app_for()
    async with third.client:
        await third.client.send({"name": "shop/order.paid", "data": {"id": 9}})
        await third.client.settle()
    clock.advance(datetime.timedelta(hours=3))
    fourth = app_for()
    async with fourth.client:
        await fourth.client.settle()
        runs = fourth.client.runs()
    assert [r.output for r in runs] == [{"id": 7}, None]


async def test_a_retry_keeps_its_attempts_and_backoff_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    clock = eventbus.VirtualClock(start=T0)
    attempts: list[int] = []

    def app_for() -> App:
        app = App(path, clock)

        @app.client.create_function(
            fn_id="sync-crm", trigger=eventbus.TriggerEvent(event="crm/contact"), retries=3
        )
        async def sync_crm(ctx: eventbus.Context) -> str:
            def push() -> str:
                attempts.append(ctx.attempt)
                if len(attempts) < 2:
                    raise ConnectionError("CRM down")
                return "pushed"

            return await ctx.step.run("push", push)

        return app

    first = app_for()
    async with first.client:
        await first.client.send({"name": "crm/contact"})
        await first.client.settle()  # attempt 0 failed; the retry waits for its backoff
    assert attempts == [0]
    second = app_for()
    async with second.client:
        await second.client.settle()
        assert attempts == [0]  # not before its time
        await second.client.settle(advance_time=True)
        (run,) = second.client.runs()
    assert attempts == [0, 1]
    assert run.status is eventbus.RunStatus.COMPLETED
    (step,) = run.steps
    assert step.attempts == 2


async def test_send_returns_once_its_events_and_runs_are_committed(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    clock = eventbus.VirtualClock(start=T0)
    app = checkout_app(path, clock)
    async with app.client:
        ids = await app.client.send([{"name": "shop/order.paid"}, {"name": "shop/other"}])
        conn = app.store._conn
        assert conn is not None
        stored = {row[0] for row in conn.execute("SELECT internal_id FROM events")}
        assert set(ids) <= stored
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] >= 1
        await app.client.settle(advance_time=True)


async def test_a_second_opener_of_the_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    clock = eventbus.VirtualClock(start=T0)
    first = checkout_app(path, clock)
    async with first.client:
        other = checkout_app(path, clock)
        with pytest.raises(StoreError, match="in use by another process"):
            async with other.client:
                pass  # pragma: no cover
    async with other.client:  # free again once the first has stopped
        pass


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"this is not a database at all" * 100, "corrupt or not a SQLite file"),
        (None, "database of something else"),
    ],
    ids=["garbage", "foreign"],
)
async def test_a_corrupt_or_foreign_file_is_refused_by_name(
    tmp_path: Path, content: bytes | None, problem: str
) -> None:
    path = tmp_path / "app.db"
    if content is None:
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.execute("CREATE TABLE users (id INTEGER)")
            conn.commit()
    else:
        path.write_bytes(content)
    app = checkout_app(path, eventbus.VirtualClock(start=T0))
    with pytest.raises(StoreError, match=problem) as caught:
        async with app.client:
            pass  # pragma: no cover
    assert str(path) in str(caught.value)


async def test_a_file_from_a_newer_eventbus_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    app = checkout_app(path, eventbus.VirtualClock(start=T0))
    async with app.client:
        pass
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
        conn.commit()
    again = checkout_app(path, eventbus.VirtualClock(start=T0))
    with pytest.raises(StoreError, match="newer eventbus"):
        async with again.client:
            pass  # pragma: no cover


async def test_future_dated_events_and_deadlines_survive_a_restart(tmp_path: Path) -> None:
    """A run of a future-dated event starts at its ts; a cancel rule keeps its deadline
    and still cancels after the restart; a finish timeout keeps counting."""
    path = tmp_path / "app.db"
    clock = eventbus.VirtualClock(start=T0)

    def app_for() -> App:
        app = App(path, clock)

        @app.client.create_function(
            fn_id="remind", trigger=eventbus.TriggerEvent(event="crm/remind")
        )
        async def remind(ctx: eventbus.Context) -> str:
            return "reminded"

        @app.client.create_function(
            fn_id="trial",
            trigger=eventbus.TriggerEvent(event="crm/trial.started"),
            cancel=[
                eventbus.Cancel(
                    event="crm/trial.converted",
                    if_exp="async.data.id == event.data.id",
                    timeout="1d",
                )
            ],
        )
        async def trial(ctx: eventbus.Context) -> str:
            await ctx.step.sleep("wait-out", "7d")
            return "expired"

        @app.client.create_function(
            fn_id="slow",
            trigger=eventbus.TriggerEvent(event="crm/slow"),
            timeouts=eventbus.Timeouts(finish="2h"),
        )
        async def slow(ctx: eventbus.Context) -> str:
            await ctx.step.sleep("long", "1d")
            return "too late"

        return app

    later = int((T0 + datetime.timedelta(hours=1)).timestamp() * 1000)
    first = app_for()
    async with first.client:
        await first.client.send({"name": "crm/remind", "ts": later})
        await first.client.send({"name": "crm/trial.started", "data": {"id": 1}})
        await first.client.send({"name": "crm/slow"})
        await first.client.settle()
    second = app_for()
    async with second.client:
        await second.client.send({"name": "crm/trial.converted", "data": {"id": 1}})
        await second.client.settle()
        (trial,) = second.client.runs("shop-trial")
        assert trial.status is eventbus.RunStatus.CANCELLED
        (remind,) = second.client.runs("shop-remind")
        assert remind.status is eventbus.RunStatus.QUEUED  # not before its ts
        await second.client.settle(advance_time=True)
        assert second.client.runs("shop-remind")[0].output == "reminded"
        (slow,) = second.client.runs("shop-slow")
        assert slow.status is eventbus.RunStatus.CANCELLED
        assert slow.ended_at == T0 + datetime.timedelta(hours=2)


async def test_an_invoke_in_flight_completes_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    clock = eventbus.VirtualClock(start=T0)

    def app_for() -> App:
        app = App(path, clock)

        @app.client.create_function(fn_id="price", trigger=[])
        async def price(ctx: eventbus.Context) -> int:
            await ctx.step.sleep("lookup", "10m")
            return 40

        @app.client.create_function(
            fn_id="quote", trigger=eventbus.TriggerEvent(event="shop/quote")
        )
        async def quote(ctx: eventbus.Context) -> int:
            value = await ctx.step.invoke("price", function=price)
            return int(value) + 2

        return app

    first = app_for()
    async with first.client:
        await first.client.send({"name": "shop/quote"})
        await first.client.settle()
    second = app_for()
    async with second.client:
        await second.client.settle(advance_time=True)
        (run,) = second.client.runs("shop-quote")
    assert run.status is eventbus.RunStatus.COMPLETED
    assert run.output == 42


async def test_runs_of_removed_functions_are_reported_and_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An unfinished run whose function the new client lacks is left in the file, named
    in a warning, and taken up by a client that has the function again."""
    path = tmp_path / "app.db"
    clock = eventbus.VirtualClock(start=T0)
    first = checkout_app(path, clock)
    async with first.client:
        await first.client.send({"name": "shop/order.paid"})
        await first.client.settle()
    bare = App(path, clock)
    async with bare.client:
        assert bare.client.runs() == []
    assert "belong to functions this client no longer has" in caplog.text
    again = checkout_app(path, clock)
    async with again.client:
        await again.client.settle(advance_time=True)
        (run,) = again.client.runs()
    assert run.status is eventbus.RunStatus.COMPLETED


async def test_the_file_stops_growing_under_steady_load(tmp_path: Path) -> None:
    """With a retention of 100, the rows (and the file) level off however many runs."""
    path = tmp_path / "app.db"
    clock = eventbus.VirtualClock(start=T0)
    app = App(path, clock, event_retention=100)

    @app.client.create_function(fn_id="tick", trigger=eventbus.TriggerEvent(event="app/tick"))
    async def tick(ctx: eventbus.Context) -> int:
        return await ctx.step.run("one", lambda: 1)

    sizes = []
    async with app.client:
        for round_ in range(6):
            for _ in range(400):
                await app.client.send({"name": "app/tick", "id": f"t-{round_}-{_}"})
            await app.client.settle()
            clock.advance(datetime.timedelta(hours=25))  # dedup claims age out too
            conn = app.store._conn
            assert conn is not None
            rows = [
                conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("events", "runs", "steps", "dedup")
            ]
            sizes.append(rows)
    events, runs, steps, dedup = sizes[-1]
    # Bounded by the retention plus what arrived since the last prune, not by 2,400.
    assert max(events, runs, steps) < 300
    assert dedup <= 400  # the claims of the last day only
    assert max(size[0] for size in sizes[2:]) < 300  # levelled off


async def test_a_failed_write_is_an_error_for_its_send_not_silence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the file cannot be written (a full disk, say), the send waiting on that commit
    raises StoreError instead of returning ids; later writes go on."""
    app = checkout_app(tmp_path / "app.db", eventbus.VirtualClock(start=T0))
    write = SqliteStore._write
    failing = [True]

    def flaky_write(self: SqliteStore, batch: Any) -> None:
        if failing[0]:
            raise sqlite3.OperationalError("database or disk is full")
        write(self, batch)

    async with app.client:
        monkeypatch.setattr(SqliteStore, "_write", flaky_write)
        with pytest.raises(StoreError, match="disk is full"):
            await app.client.send({"name": "shop/other"})
        failing[0] = False
        (event_id,) = await app.client.send({"name": "shop/other"})
        conn = app.store._conn
        assert conn is not None
        stored = {row[0] for row in conn.execute("SELECT internal_id FROM events")}
        assert event_id in stored


DATA = Path(__file__).with_name("data")


async def test_a_file_of_the_previous_schema_is_migrated(tmp_path: Path) -> None:
    """data/schema-v1.db was written by eventbus with schema version 1 (the release
    before the dedup_first_ms index): a completed run, a run sleeping an hour from T0 + 1h,
    and the dedup claims of both orders. Opened now, it is migrated in place and every
    promise holds across the upgrade."""
    path = tmp_path / "app.db"
    path.write_bytes((DATA / "schema-v1.db").read_bytes())
    clock = eventbus.VirtualClock(start=T0 + datetime.timedelta(hours=1))
    app = checkout_app(path, clock)
    async with app.client:
        assert app.store.migrated_from == 1
        runs = {run.event.id: run for run in app.client.runs()}
        assert runs["order-1"].status is eventbus.RunStatus.COMPLETED
        assert runs["order-2"].status is eventbus.RunStatus.SLEEPING
        await app.client.send({"name": "shop/order.paid", "id": "order-2", "data": {"id": 2}})
        clock.advance(datetime.timedelta(hours=1))
        await app.client.settle()
        assert runs["order-2"].status is eventbus.RunStatus.COMPLETED
        assert runs["order-2"].output == {"charged": "ch_1", "shipped": "sh_1"}
        assert len(app.client.runs()) == 2  # the re-sent order-2 was a duplicate
    assert app.calls == {"ship": 1}  # charge was in the v1 journal: not run again
    with contextlib.closing(sqlite3.connect(path)) as conn:
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert version == (str(eventbus.stores.SCHEMA_VERSION),)
    assert "dedup_first_ms" in indexes
    again = checkout_app(path, clock)
    async with again.client:
        assert again.store.migrated_from is None  # already current
        assert len(again.client.runs()) == 2


async def test_a_new_file_has_the_schema_a_migrated_one_has(tmp_path: Path) -> None:
    def schema(path: Path) -> list[tuple[str, str]]:
        with contextlib.closing(sqlite3.connect(path)) as conn:
            return sorted(conn.execute("SELECT name, sql FROM sqlite_master").fetchall())

    migrated, new = tmp_path / "migrated.db", tmp_path / "new.db"
    migrated.write_bytes((DATA / "schema-v1.db").read_bytes())
    for path in (migrated, new):
        app = checkout_app(path, eventbus.VirtualClock(start=T0))
        async with app.client:
            pass
    assert schema(migrated) == schema(new)


async def test_a_steps_input_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "in.db"
    clock = eventbus.VirtualClock(T0)

    def app() -> eventbus.Inngest:
        client = eventbus.Inngest("shop", clock=clock, store=SqliteStore(path))

        @client.create_function(fn_id="f", trigger=eventbus.TriggerEvent(event="shop/in"))
        async def f(ctx: eventbus.Context) -> int:
            return await ctx.step.run("add", lambda a, b: a + b, 2, b=3)

        return client

    first = app()
    async with first:
        await first.send({"name": "shop/in"})
        await first.settle()
    second = app()
    async with second:
        (run,) = second.runs()
    assert [record.input for record in run.steps] == [[[2], {"b": 3}]]
