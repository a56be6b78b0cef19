"""``python -m eventbus runs --db`` / ``events --db``: a durable store's recent history
from the terminal, as a table or as JSON lines, and the errors a bad file gets."""

from __future__ import annotations

import datetime
import json
import sqlite3
from pathlib import Path

import pytest

import eventbus
from eventbus.__main__ import main
from eventbus._inspect import read_events, read_runs, table
from eventbus.stores import SqliteStore, StoreError

pytestmark = pytest.mark.anyio

T0 = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)


def shop(path: Path) -> eventbus.Inngest:
    client = eventbus.Inngest(
        "shop", clock=eventbus.VirtualClock(T0), store=SqliteStore(path), shutdown_timeout=0.0
    )

    @client.create_function(fn_id="receipt", trigger=eventbus.TriggerEvent(event="shop/paid"))
    async def receipt(ctx: eventbus.Context) -> dict[str, int]:
        return await ctx.step.run("render", lambda: {"cents": ctx.event.data["cents"]})

    @client.create_function(
        fn_id="refund", retries=0, trigger=eventbus.TriggerEvent(event="shop/refund")
    )
    async def refund(ctx: eventbus.Context) -> None:
        raise ValueError("card expired")

    return client


async def filled(tmp_path: Path) -> tuple[Path, list[str]]:
    path = tmp_path / "shop.db"
    client = shop(path)
    async with client:
        ids = await client.send(
            [{"name": "shop/paid", "data": {"cents": 500 + n}, "id": f"o-{n}"} for n in range(3)]
        )
        ids += await client.send({"name": "shop/refund", "data": {"order": "o-1"}})
        await client.settle()
    return path, ids


async def test_runs_newest_first_with_status_steps_and_duration(tmp_path: Path) -> None:
    path, ids = await filled(tmp_path)
    runs = read_runs(path)
    assert [run["function_id"] for run in runs] == [
        "shop-refund",
        "shop-receipt",
        "shop-receipt",
        "shop-receipt",
    ]
    refund, *receipts = runs
    assert refund["status"] == "Failed"
    assert refund["error"]["message"] == "card expired"
    assert refund["event_ids"] == [ids[3]]
    assert [run["output"] for run in receipts] == [{"cents": 502}, {"cents": 501}, {"cents": 500}]
    assert {run["steps"] for run in receipts} == {1}
    assert refund["steps"] == 0
    assert receipts[0]["started_at"] == "2030-01-01T00:00:00.000+00:00"
    assert receipts[0]["duration_ms"] == 0  # a virtual clock that never moved
    assert [run["run_id"] for run in read_runs(path, limit=2)] == [r["run_id"] for r in runs[:2]]
    assert read_runs(path, status="failed") == [refund]
    assert read_runs(path, function_id="receipt") == receipts
    assert read_runs(path, function_id="shop-receipt", limit=1) == receipts[:1]


async def test_events_newest_first_including_system_events(tmp_path: Path) -> None:
    path, ids = await filled(tmp_path)
    events = read_events(path)
    names = [event["name"] for event in events]
    assert names.count("inngest/function.finished") == 4
    assert names.count("inngest/function.failed") == 1
    paid = read_events(path, name="shop/paid")
    assert [event["internal_id"] for event in paid] == ids[2::-1]
    assert [event["id"] for event in paid] == ["o-2", "o-1", "o-0"]
    assert paid[0]["data"] == {"cents": 502}
    assert paid[0]["received_at"] == "2030-01-01T00:00:00.000+00:00"
    assert paid[0]["deduplicated"] is False
    assert len(read_events(path, limit=3)) == 3


async def test_the_command_prints_a_table_or_json_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, ids = await filled(tmp_path)
    assert main(["runs", "--db", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "run_id",
        "function_id",
        "status",
        "attempts",
        "steps",
        "started_at",
        "duration_ms",
    ]
    assert lines[1].split()[1:3] == ["shop-refund", "Failed"]
    assert len(lines) == 5
    assert main(["events", "--db", str(path), "--name", "shop/paid", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["internal_id"] for row in rows] == ids[2::-1]
    assert main(["runs", "--db", str(path), "--status", "Cancelled"]) == 0
    assert capsys.readouterr().out.strip() == f"no runs in {path}"


async def test_a_file_in_use_is_refused_with_a_way_out(tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    client = shop(path)
    async with client:
        await client.send({"name": "shop/paid", "data": {"cents": 1}})
        await client.settle()
        with pytest.raises(StoreError, match="in use by another process"):
            read_runs(path)


def test_bad_files_and_arguments_get_clear_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        read_runs(tmp_path / "missing.db")
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
    conn.close()
    with pytest.raises(StoreError, match="not an eventbus database"):
        read_events(other)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError, match="not a SQLite database"):
        read_runs(garbage)
    assert main(["events", "--db", str(other)]) == 1
    assert "not an eventbus database" in capsys.readouterr().err
    with pytest.raises(eventbus.UsageError, match="status must be one of"):
        read_runs(other, status="Done")
    with pytest.raises(eventbus.UsageError, match="limit must be at least 1"):
        read_runs(other, limit=0)
    with pytest.raises(eventbus.UsageError, match="limit must be at least 1"):
        read_events(other, limit=0)


async def test_a_file_of_a_newer_eventbus_is_refused(tmp_path: Path) -> None:
    path, _ = await filled(tmp_path)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    conn.close()
    with pytest.raises(StoreError, match="newer eventbus"):
        read_events(path)


def test_long_cells_are_cut() -> None:
    text = table([{"a": "x" * 100, "b": {"k": 1}}], ("a", "b"))
    header, row = text.splitlines()
    assert row.split()[0] == "x" * 45 + "..."
    assert row.split()[1:] == ['{"k":', "1}"]
    assert header.split() == ["a", "b"]
