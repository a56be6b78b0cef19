"""The Event API over real loopback HTTP: the official SDK, curl, and a load test."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

import eventbus
from eventbus.server import create_app
from tests.helpers import close_official_client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def uvicorn_serving(app: Any, *, lifespan: str = "off") -> Iterator[str]:
    """``app`` served by uvicorn on a free loopback port in a thread; yields its origin.
    (With ``lifespan="on"`` the app runs the engine in the server's loop.)"""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan=lifespan, log_level="error")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:  # startup is a real process event: wait for it, bounded
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@pytest.fixture
def served() -> Iterator[tuple[eventbus.Inngest, str]]:
    """An app's engine in a background thread (`with client:`), served by uvicorn."""
    client = eventbus.Inngest("loop", event_retention=50_000)

    @client.create_function(fn_id="count", trigger=eventbus.TriggerEvent(event="load/*"))
    async def count(ctx: eventbus.Context) -> int:
        return int(ctx.event.data["n"])

    with client, uvicorn_serving(create_app(client)) as origin:
        yield client, origin


def test_the_official_sdk_sends_to_eventbus(served: tuple[eventbus.Inngest, str]) -> None:
    """inngest.Inngest(is_production=False, event_api_base_url=...) sends; functions run."""
    import inngest

    client, origin = served
    official = inngest.Inngest(app_id="sender", is_production=False, event_api_base_url=origin)
    ids = official.send_sync(
        [
            inngest.Event(name="load/official", data={"n": 7}),
            inngest.Event(name="load/official", data={"n": 8}, id="dedup-1"),
        ]
    )
    close_official_client(official)
    assert len(ids) == 2
    client.settle_sync()
    assert [client.runs(event_id=i)[0].output for i in ids] == [7, 8]


def test_curl_sends_to_eventbus(served: tuple[eventbus.Inngest, str]) -> None:
    """Plain curl, as in Inngest's docs."""
    curl = shutil.which("curl")
    if curl is None:  # pragma: no cover - curl is on the machines this runs on
        pytest.skip("curl is not installed")
    client, origin = served
    result = subprocess.run(
        [
            curl,
            "-s",
            "-X",
            "POST",
            f"{origin}/e/any-key",
            "-H",
            "Content-Type: application/json",
            "--data",
            '{"name": "load/curl", "data": {"n": 3}}',
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    answer = json.loads(result.stdout)
    assert answer["status"] == 200
    client.settle_sync()
    assert client.runs(event_id=answer["ids"][0])[0].output == 3


def test_ten_thousand_events_from_concurrent_clients(served: tuple[eventbus.Inngest, str]) -> None:
    """10,000 events from 8 concurrent clients: each stored exactly once, every run completed."""
    client, origin = served

    def sender(worker: int) -> list[str]:
        ids: list[str] = []
        with httpx.Client(base_url=origin, timeout=30) as http:
            for batch in range(25):
                events = [
                    {"name": "load/n", "data": {"n": worker * 10_000 + batch * 50 + i}}
                    for i in range(50)
                ]
                response = http.post("/e/k", json=events)
                assert response.status_code == 200
                ids.extend(response.json()["ids"])
        return ids

    with ThreadPoolExecutor(max_workers=8) as pool:
        all_ids = [i for ids in pool.map(sender, range(8)) for i in ids]
    client.settle_sync()
    assert len(all_ids) == len(set(all_ids)) == 10_000
    stored = [e.data["n"] for e in client.events(name="load/n")]
    assert len(stored) == len(set(stored)) == 10_000
    runs = client.runs(function_id="loop-count")
    completed = [r for r in runs if r.status is eventbus.RunStatus.COMPLETED]
    assert len(completed) == 10_000
    assert sorted(r.output for r in completed) == sorted(stored)
