"""Deduplication by event id, end to end, on the client clock."""

from __future__ import annotations

import datetime

import pytest

import eventbus
from tests.helpers import make_client, on

pytestmark = pytest.mark.anyio

HOUR = datetime.timedelta(hours=1)


def counting_client() -> tuple[eventbus.Inngest, list[str]]:
    client = make_client()
    seen: list[str] = []

    @client.create_function(fn_id="count", trigger=on("app/*"))
    async def count(ctx: eventbus.Context) -> None:
        seen.append(ctx.event.name)

    return client, seen


async def test_duplicate_id_within_24h_starts_no_run() -> None:
    """A second event with the same id is stored, flagged and gets its own id, but runs nothing."""
    client, seen = counting_client()
    async with client:
        first = await client.send({"name": "app/a", "id": "k", "data": {"v": 1}})
        second = await client.send({"name": "app/a", "id": "k", "data": {"v": 2}})
        await client.settle()
    assert seen == ["app/a"]
    assert first != second
    stored = [client.get_event(first[0]), client.get_event(second[0])]
    assert [e.deduplicated for e in stored if e] == [False, True]
    assert [e.data for e in stored if e] == [{"v": 1}, {"v": 2}]
    assert client.runs(event_id=second[0]) == []


async def test_dedup_ignores_name_and_payload() -> None:
    """The id is global: a different name with the same id is deduplicated too."""
    client, seen = counting_client()
    async with client:
        await client.send([{"name": "app/a", "id": "k"}, {"name": "app/b", "id": "k"}])
        await client.settle()
    assert seen == ["app/a"]


async def test_window_runs_from_first_event_and_is_not_extended() -> None:
    """Duplicates inside the window do not extend it; after 24 h the id is fresh again."""
    client, seen = counting_client()
    clock = client.clock
    assert isinstance(clock, eventbus.VirtualClock)
    async with client:
        await client.send({"name": "app/a", "id": "k"})
        clock.advance(23 * HOUR)
        await client.send({"name": "app/a", "id": "k"})  # duplicate, at 23 h
        clock.advance(HOUR - datetime.timedelta(milliseconds=1))
        (dup,) = await client.send({"name": "app/a", "id": "k"})  # 1 ms before the end
        clock.advance(datetime.timedelta(milliseconds=1))
        (fresh,) = await client.send({"name": "app/a", "id": "k"})  # exactly 24 h: fresh
        await client.settle()
    assert len(seen) == 2
    assert client.get_event(dup).deduplicated  # type: ignore[union-attr]
    assert not client.get_event(fresh).deduplicated  # type: ignore[union-attr]


async def test_duplicates_within_one_send_run_once() -> None:
    """Two events with one id in the same send start one run."""
    client, seen = counting_client()
    async with client:
        ids = await client.send([{"name": "app/a", "id": "x"}] * 3 + [{"name": "app/a"}] * 2)
        await client.settle()
    assert len(seen) == 3
    assert [client.get_event(i).deduplicated for i in ids] == [False, True, True, False, False]  # type: ignore[union-attr]


async def test_events_without_id_are_never_deduplicated() -> None:
    """Only a user-given id deduplicates; an empty id counts as none."""
    client, seen = counting_client()
    async with client:
        await client.send([{"name": "app/a"}, {"name": "app/a"}, {"name": "app/a", "id": ""}])
        await client.settle()
    assert len(seen) == 3
