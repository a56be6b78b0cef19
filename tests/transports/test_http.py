"""HttpTransport: the Event API wire format, retries, splitting and errors."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

import eventbus
from eventbus.transports import HttpTransport
from tests.helpers import close_official_client

Handler = Callable[[httpx.Request], httpx.Response]


def ok(request: httpx.Request) -> httpx.Response:
    events = json.loads(request.content)
    return httpx.Response(200, json={"ids": [f"id{i}" for i in range(len(events))], "status": 200})


def client_with(handler: Handler, **options: Any) -> tuple[eventbus.Inngest, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    options.setdefault("is_production", False)
    options.setdefault("backoff", 0.0)
    transport = HttpTransport(httpx_transport=httpx.MockTransport(record), **options)
    client = eventbus.Inngest("app", transport=transport, clock=eventbus.VirtualClock())
    return client, seen


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "INNGEST_DEV",
        "INNGEST_BASE_URL",
        "INNGEST_EVENT_API_BASE_URL",
        "INNGEST_EVENT_KEY",
        "INNGEST_ENV",
    ):
        monkeypatch.delenv(name, raising=False)


def test_request_format() -> None:
    """POST {origin}/e/{key}, compact UTF-8 JSON in the SDK's key order, the headers."""
    client, seen = client_with(ok, event_key="key-1", env="branch-a")
    ids = client.send_sync(
        [
            {
                "name": "a/one",
                "data": {"x": 1, "s": "héllo ☃"},
                "id": "idem-1",
                "ts": 1_700_000_000_000,
            },
            {"name": "a/two", "v": "2", "user": {"u": 1}},
        ]
    )
    assert ids == ["id0", "id1"]
    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == "http://127.0.0.1:8288/e/key-1"
    now = client.clock.now_ms()
    assert (
        request.content
        == (
            '[{"data":{"x":1,"s":"héllo ☃"},"id":"idem-1","name":"a/one","ts":1700000000000},'
            f'{{"data":{{}},"name":"a/two","ts":{now},"user":{{"u":1}},"v":"2"}}]'
        ).encode()
    )
    headers = request.headers
    assert headers["content-type"] == "application/json"
    assert headers["x-inngest-sdk"] == f"eventbus:v{eventbus.__version__}"
    assert headers["user-agent"] == f"eventbus:v{eventbus.__version__}"
    assert headers["x-inngest-env"] == "branch-a"
    millis, entropy = headers["x-inngest-event-id-seed"].split(",")
    assert int(millis) == now
    assert len(entropy) == 16


@pytest.mark.anyio
async def test_async_send_and_dev_key() -> None:
    """await send() works on both backends; dev mode without a key uses NO_EVENT_KEY_SET."""
    client, seen = client_with(ok)
    assert await client.send({"name": "a/b"}) == ["id0"]
    assert seen[0].url.path == "/e/NO_EVENT_KEY_SET"
    assert "x-inngest-env" not in seen[0].headers


def test_retries_reuse_the_seed_and_stop_after_the_last_attempt() -> None:
    """5xx answers and connection errors are retried with the same seed; then an error."""
    answers = iter(
        [httpx.Response(500, json={"error": "boom"}), httpx.ConnectError("refused"), None]
    )

    def flaky(request: httpx.Request) -> httpx.Response:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer or ok(request)

    client, seen = client_with(flaky)
    assert client.send_sync({"name": "a/b"}) == ["id0"]
    assert len(seen) == 3
    assert len({r.headers["x-inngest-event-id-seed"] for r in seen}) == 1

    client, seen = client_with(
        lambda r: httpx.Response(503, text="<html>down</html>"), max_attempts=3
    )
    with pytest.raises(eventbus.SendEventsError) as info:
        client.send_sync({"name": "a/b"})
    assert len(seen) == 3
    assert info.value.status == 503
    assert info.value.body == "<html>down</html>"
    assert info.value.ids == []


def test_connection_refused_on_a_real_port() -> None:
    """An unreachable server ends in SendEventsError with status None, never an httpx error."""
    transport = HttpTransport(
        event_api_base_url="http://127.0.0.1:9", is_production=False, max_attempts=2, backoff=0.0
    )
    client = eventbus.Inngest("app", transport=transport)
    with pytest.raises(eventbus.SendEventsError, match="could not reach") as info:
        client.send_sync({"name": "a/b"})
    assert info.value.status is None


@pytest.mark.parametrize(
    ("response", "match"),
    [
        (
            httpx.Response(400, json={"error": "event name is empty", "status": 400}),
            "400: event name is empty",
        ),
        (httpx.Response(401, json={"error": "Event key not found"}), "401: Event key not found"),
        (httpx.Response(404, json={"ids": []}), "404"),
        (httpx.Response(400, text="bad request"), "400 with 'bad request'"),
        (httpx.Response(200, text="ok"), "200 with 'ok'"),
        (httpx.Response(200, json=["x"]), "200"),
        (httpx.Response(200, json={"ids": ["id1"], "error": "1 event failed"}), "1 event failed"),
        (httpx.Response(200, json={"status": 200}), "accepted 0 of 1"),
    ],
)
def test_every_failure_is_a_send_events_error(response: httpx.Response, match: str) -> None:
    """Status codes are always checked; bodies that are not the expected JSON are errors."""
    client, seen = client_with(lambda r: response)
    with pytest.raises(eventbus.SendEventsError, match=match) as info:
        client.send_sync({"name": "a/b"})
    assert len(seen) == 1  # 4xx and 2xx are not retried
    assert info.value.status == response.status_code


def test_large_sends_are_split_and_ids_come_back_in_order() -> None:
    """Sends over the request limit (or 5000 events) go as several requests."""
    client, seen = client_with(lambda r: ok(r), max_request_bytes=4096)
    events = [{"name": "a/b", "data": {"pad": "x" * 200, "n": n}} for n in range(40)]
    counter = iter(range(1000))

    def numbered(request: httpx.Request) -> httpx.Response:
        count = len(json.loads(request.content))
        return httpx.Response(200, json={"ids": [f"e{next(counter)}" for _ in range(count)]})

    client, seen = client_with(numbered, max_request_bytes=4096)
    ids = client.send_sync(events)
    assert ids == [f"e{n}" for n in range(40)]
    assert len(seen) > 1
    assert all(len(r.content) <= 4096 for r in seen)
    assert len({r.headers["x-inngest-event-id-seed"] for r in seen}) == len(seen)
    sent = [e["data"]["n"] for r in seen for e in json.loads(r.content)]
    assert sent == list(range(40))


def test_partial_failure_reports_the_ids_that_got_through() -> None:
    """When a later request of a split send fails, the error carries the earlier ids."""
    calls = iter([ok, lambda r: httpx.Response(400, json={"error": "too big"})])

    def answer(request: httpx.Request) -> httpx.Response:
        return next(calls)(request)

    client, _ = client_with(answer, max_request_bytes=2048)
    events = [{"name": "a/b", "data": {"pad": "y" * 300}} for _ in range(10)]
    with pytest.raises(eventbus.SendEventsError) as info:
        client.send_sync(events)
    assert info.value.ids
    assert all(i.startswith("id") for i in info.value.ids)


def test_an_event_larger_than_the_limit_is_refused() -> None:
    """One event bigger than max_request_bytes cannot be split: a clear error, no request."""
    client, seen = client_with(ok, max_request_bytes=1024)
    with pytest.raises(eventbus.SendEventsError, match="alone is"):
        client.send_sync({"name": "a/b", "data": {"pad": "z" * 5000}})
    assert seen == []


def test_origin_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    """Arguments, then INNGEST_EVENT_API_BASE_URL, INNGEST_BASE_URL, INNGEST_DEV, defaults."""
    assert HttpTransport(is_production=False).origin == "http://127.0.0.1:8288"
    assert HttpTransport(is_production=True).origin == "https://inn.gs"
    assert HttpTransport(event_api_base_url="localhost:9000", is_production=False).origin == (
        "http://localhost:9000"
    )
    assert (
        HttpTransport(event_api_base_url="localhost", is_production=True).origin
        == "https://localhost"
    )
    monkeypatch.setenv("INNGEST_DEV", "http://127.0.0.1:7777")
    dev = HttpTransport()
    assert (dev.is_production, dev.origin) == (False, "http://127.0.0.1:7777")
    monkeypatch.setenv("INNGEST_BASE_URL", "http://base:1")
    assert HttpTransport().origin == "http://base:1"
    monkeypatch.setenv("INNGEST_EVENT_API_BASE_URL", "events.example:2/prefix/")
    assert HttpTransport().origin == "http://events.example:2/prefix"
    monkeypatch.setenv("INNGEST_DEV", "0")
    assert HttpTransport().is_production is True
    monkeypatch.setenv("INNGEST_DEV", "1")
    monkeypatch.delenv("INNGEST_BASE_URL")
    monkeypatch.delenv("INNGEST_EVENT_API_BASE_URL")
    assert HttpTransport().origin == "http://127.0.0.1:8288"


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("", "is empty"),
        ("ftp://x", "not a valid URL"),
        ("http://", "not a valid URL"),
        ("http://h:port", "invalid port"),
    ],
)
def test_malformed_urls_fail_loudly(value: str, match: str) -> None:
    """A malformed origin is a clear error before any request."""
    with pytest.raises(eventbus.FunctionConfigError, match=match):
        HttpTransport(event_api_base_url=value)


def test_cloud_mode_needs_an_event_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cloud mode without a key fails when the client is created, naming the fixes."""
    with pytest.raises(eventbus.UsageError, match="INNGEST_EVENT_KEY"):
        eventbus.Inngest("app", transport=HttpTransport(is_production=True))
    monkeypatch.setenv("INNGEST_EVENT_KEY", "from-env")
    client = eventbus.Inngest("app", transport=HttpTransport(is_production=True))
    assert "cloud https://inn.gs" in repr(client.transport)
    assert client.transport.url == "https://inn.gs/e/from-env"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("options", "match"),
    [({"max_attempts": 0}, "max_attempts"), ({"max_request_bytes": 10}, "max_request_bytes")],
)
def test_bad_settings(options: dict[str, Any], match: str) -> None:
    """Retry and size settings are checked."""
    with pytest.raises(eventbus.FunctionConfigError, match=match):
        HttpTransport(**options)


# ---------------------------------------------------------------- the official SDK, byte for byte


@pytest.fixture
def capture_server() -> Iterator[tuple[str, list[tuple[str, dict[str, str], bytes]]]]:
    """A server on 127.0.0.1 that records requests and answers like the Event API."""
    captured: list[tuple[str, dict[str, str], bytes]] = []

    class Capture(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            captured.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            reply = json.dumps({"ids": ["x"] * len(json.loads(body)), "status": 200}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Capture)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", captured
    finally:
        server.shutdown()
        server.server_close()


def test_same_request_as_the_official_sdk(
    capture_server: tuple[str, list[tuple[str, dict[str, str], bytes]]],
) -> None:
    """For the same events, eventbus sends the official SDK's request, byte for byte,
    apart from the SDK-name headers and the seed."""
    import inngest

    origin, captured = capture_server
    official = inngest.Inngest(
        app_id="app", is_production=True, event_key="k-1", env="br", event_api_base_url=origin
    )
    ours = eventbus.Inngest(
        "app",
        event_key="k-1",
        env="br",
        transport=HttpTransport(event_api_base_url=origin, is_production=True),
    )
    events = [
        (
            {
                "name": "a/one",
                "data": {"x": 1, "nested": {"a": [1, 2.5, None, True]}, "s": "héllo ☃"},
                "id": "idem",
                "ts": 1_700_000_000_000,
            }
        ),
        ({"name": "a/two", "data": {}, "ts": 1_700_000_000_001}),
    ]
    official.send_sync([inngest.Event(**e) for e in events])
    close_official_client(official)
    ours.send_sync(events)
    (their_path, their_headers, their_body), (our_path, our_headers, our_body) = captured
    assert our_path == their_path == "/e/k-1"
    assert our_body == their_body
    ignored = {"x-inngest-sdk", "user-agent", "x-inngest-event-id-seed"}
    assert {k: v for k, v in our_headers.items() if k not in ignored} == {
        k: v for k, v in their_headers.items() if k not in ignored
    }


@pytest.mark.anyio
async def test_connections_are_kept() -> None:
    """Sends reuse one connection pool: sync always, async while the client is entered."""
    client, seen = client_with(ok)
    transport = client.transport
    assert isinstance(transport, HttpTransport)
    client.send_sync({"name": "a/1"})
    first = transport._sync_http
    client.send_sync({"name": "a/2"})
    assert transport._sync_http is first is not None
    async with client:
        assert transport._async_http is not None
        await client.send({"name": "a/3"})
    assert transport._async_http is None
    transport.close()
    transport.close()
    assert transport._sync_http is None
    assert len(seen) == 3
