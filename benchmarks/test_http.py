"""HTTP: events/s through the Event API server over loopback, and HttpTransport's cost.

* ``POST /e/{key}`` (uvicorn on 127.0.0.1), one event per request and 100 per request,
  against the same events sent in-process with no server.
* ``HttpTransport.send_sync`` against the official SDK's ``send_sync``, both sending one
  event per request to the same local server.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest

import eventbus
from eventbus.server import create_app
from eventbus.transports import HttpTransport

EVENTS = 2_000
ROUNDS = 5


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_client() -> eventbus.Inngest:
    client = eventbus.Inngest("bench-http", event_retention=10_000)

    @client.create_function(fn_id="noop", trigger=eventbus.TriggerEvent(event="bench/*"))
    async def noop(ctx: eventbus.Context) -> None:
        return None

    return client


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[eventbus.Inngest, str]]:
    import uvicorn

    client = make_client()
    port = _port()
    # As `python -m eventbus serve` runs it: the engine lives in uvicorn's own loop.
    config = uvicorn.Config(
        create_app(client), host="127.0.0.1", port=port, lifespan="on", log_level="error"
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(uv.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    yield client, f"http://127.0.0.1:{port}"
    uv.should_exit = True
    thread.join(timeout=10)


async def in_process() -> None:
    client = make_client()
    async with client:
        for n in range(EVENTS):
            await client.send({"name": "bench/e", "data": {"n": n}})
        await client.settle()


@pytest.mark.parametrize("batch", [1, 100])
def test_event_api_server(benchmark: Any, server: tuple[eventbus.Inngest, str], batch: int) -> None:
    _, origin = server
    baseline: list[float] = []

    def post_all() -> None:
        with httpx.Client(base_url=origin) as http:
            for start in range(0, EVENTS, batch):
                events = [
                    {"name": "bench/e", "data": {"n": n}} for n in range(start, start + batch)
                ]
                response = http.post("/e/k", json=events if batch > 1 else events[0])
                assert response.status_code == 200

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        start = time.perf_counter()
        anyio.run(in_process)
        baseline.append(time.perf_counter() - start)
        return (), {}

    benchmark.group = "http-server"
    benchmark.pedantic(post_all, setup=setup, rounds=ROUNDS, iterations=1)
    benchmark.extra_info.update(
        kind="server",
        batch=batch,
        events=EVENTS,
        in_process_events_per_s=round(EVENTS / statistics.median(baseline)),
    )


def test_http_transport_overhead(benchmark: Any, server: tuple[eventbus.Inngest, str]) -> None:
    import inngest

    _, origin = server
    ours = eventbus.Inngest(
        "bench-sender", transport=HttpTransport(event_api_base_url=origin, is_production=False)
    )
    official = inngest.Inngest(
        app_id="bench-sender", is_production=False, event_api_base_url=origin
    )
    count = 300
    theirs: list[float] = []

    def ours_send() -> None:
        for n in range(count):
            ours.send_sync({"name": "bench/t", "data": {"n": n}})

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        start = time.perf_counter()
        for n in range(count):
            official.send_sync([inngest.Event(name="bench/t", data={"n": n})])
        theirs.append(time.perf_counter() - start)
        return (), {}

    benchmark.group = "http-transport"
    benchmark.pedantic(ours_send, setup=setup, rounds=ROUNDS, iterations=1)
    from tests.helpers import close_official_client

    close_official_client(official)
    ours.transport.close()  # type: ignore[attr-defined]
    benchmark.extra_info.update(
        kind="transport",
        events=count,
        official_us_per_event=round(statistics.median(theirs) / count * 1e6, 1),
    )
