"""The Event API app, driven in-process through httpx's ASGI transport."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

import eventbus
from eventbus.server import create_app
from tests.helpers import make_client, on

pytestmark = pytest.mark.anyio


def app_client(**options: Any) -> tuple[eventbus.Inngest, httpx.AsyncClient]:
    client = make_client()

    @client.create_function(fn_id="greet", trigger=on("app/hello"))
    async def greet(ctx: eventbus.Context) -> str:
        return f"hi {ctx.event.data.get('who', 'you')}"

    app = create_app(client, **options)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
    return client, http


async def test_post_one_event_or_an_array() -> None:
    """POST /e/{key} takes an object or an array and answers like Inngest."""
    client, http = app_client()
    async with client, http:
        one = await http.post("/e/any-key", json={"name": "app/hello", "data": {"who": "ann"}})
        assert one.status_code == 200
        assert one.json()["status"] == 200
        (event_id,) = one.json()["ids"]
        many = await http.post("/e/any-key", json=[{"name": "app/hello"}, {"name": "app/other"}])
        assert len(many.json()["ids"]) == 2
        await client.settle()
        runs = (await http.get(f"/v1/events/{event_id}/runs")).json()
        assert runs["data"][0]["output"] == "hi ann"
        assert runs["data"][0]["status"] == "Completed"
        run = (await http.get(f"/v1/runs/{runs['data'][0]['run_id']}")).json()
        assert run["data"]["function_id"] == "test-app-greet"
        event = (await http.get(f"/v1/events/{event_id}")).json()
        assert event["data"]["name"] == "app/hello"
        assert event["data"]["data"] == {"who": "ann"}
        assert "fetched_at" in event["metadata"]
        listed = (await http.get("/v1/events", params={"name": "app/hello", "limit": "1"})).json()
        assert [e["internal_id"] for e in listed["data"]] == [many.json()["ids"][0]]
        assert (await http.get("/health")).json() == {"status": 200, "message": "OK"}


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"{not json", "not valid JSON"),
        (b'"a string"', "event object or an array"),
        (b'{"name": 5}', "name"),
        (b'[{"name": "ok"}, {"name": "inngest/forged"}]', "reserved"),
        (b'{"name": "ok", "data": [1]}', "data"),
        (json.dumps({"name": "big", "data": {"x": "y" * 2000}}).encode(), "larger than 1024 bytes"),
    ],
)
async def test_bad_input_is_a_400_and_nothing_is_accepted(body: bytes, match: str) -> None:
    """Malformed JSON, wrong types, reserved names, oversized bodies: 400, nothing stored."""
    client, http = app_client(max_body_bytes=1024)
    async with client, http:
        response = await http.post("/e/k", content=body)
        assert response.status_code == 400
        assert response.json()["status"] == 400
        assert response.json()["ids"] == []
        assert match in response.json()["error"]
        assert client.events() == []


async def test_event_keys_are_checked_when_configured() -> None:
    """With event_keys, a missing or unknown key gets 401."""
    client, http = app_client(event_keys=["secret"])
    async with client, http:
        assert (await http.post("/e/wrong", json={"name": "a/b"})).status_code == 401
        assert (await http.post("/e/", json={"name": "a/b"})).status_code == 401
        assert (await http.post("/e/secret", json={"name": "a/b"})).status_code == 200


async def test_unknown_routes_and_missing_records() -> None:
    """404 for unknown routes and records, 405 for wrong methods, 400 for a bad limit."""
    client, http = app_client()
    async with client, http:
        assert (await http.get("/v1/events/nope")).status_code == 404
        assert (await http.get("/v1/runs/nope")).status_code == 404
        assert (await http.get("/nowhere")).status_code == 404
        assert (await http.delete("/v1/events")).status_code == 405
        assert (await http.put("/elsewhere")).status_code == 404
        assert (await http.get("/v1/events", params={"limit": "x"})).status_code == 400
        assert (await http.post("/e/k", json=[])).json() == {"ids": [], "status": 200}


async def test_engine_not_running() -> None:
    """Without a running engine the API answers 503 instead of failing obscurely."""
    _client, http = app_client()
    async with http:
        assert (await http.post("/e/k", json={"name": "a/b"})).status_code == 503
        assert (await http.get("/v1/events")).status_code == 503


async def test_lifespan_runs_the_engine() -> None:
    """Served with lifespan events, the app starts and stops the client's engine itself."""
    client, _ = app_client()
    app = create_app(client)
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[str] = []

    async def receive() -> dict[str, Any]:
        if sent == ["lifespan.startup.complete"]:
            assert client.engine.running
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["type"])

    await app({"type": "lifespan"}, receive, send)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert not client.engine.running
