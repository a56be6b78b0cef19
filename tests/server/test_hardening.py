"""Hostile requests against the Event API app: bombs, slow bodies, keys, the signing key."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx
import pytest

import eventbus
from eventbus.server import create_app
from tests.helpers import make_client, on

pytestmark = pytest.mark.anyio

SIGNING_KEY = "signkey-prod-0123456789abcdef0123456789abcdef"
HASHED = hashlib.sha256(bytes.fromhex("0123456789abcdef0123456789abcdef")).hexdigest()


def app_client(**options: Any) -> tuple[eventbus.Inngest, httpx.AsyncClient]:
    client = make_client()

    @client.create_function(fn_id="greet", trigger=on("app/hello"))
    async def greet(ctx: eventbus.Context) -> str:
        return "hi"

    app = create_app(client, **options)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
    return client, http


async def test_a_json_bomb_inside_the_size_limit_is_a_400() -> None:
    """Nesting too deep for the JSON decoder is a 400 with an error body, not a 500."""
    client, http = app_client()
    bomb = '{"name":"a/b","data":{"k":' + "[" * 5000 + "]" * 5000 + "}}"
    async with client, http:
        response = await http.post("/e/key", content=bomb)
        assert response.status_code == 400
        assert "nests too deeply" in response.json()["error"]
        deep_but_decodable = '{"name":"a/b","data":{"k":' + "[" * 300 + "]" * 300 + "}}"
        response = await http.post("/e/key", content=deep_but_decodable)
        assert response.status_code == 400
        assert "nests more than 256 levels" in response.json()["error"]
        assert client.events() == []


async def test_a_posted_lone_surrogate_is_rejected_and_listing_still_works() -> None:
    """A "\\ud800" escape decodes to text that cannot be encoded: 400, and /v1/events goes
    on answering everyone."""
    client, http = app_client()
    async with client, http:
        response = await http.post("/e/key", content=b'{"name":"a/b","data":{"s":"\\ud800"}}')
        assert response.status_code == 400
        assert "not valid Unicode" in response.json()["error"]
        ok = await http.post("/e/key", json={"name": "app/hello"})
        assert ok.status_code == 200
        listed = await http.get("/v1/events")
        assert listed.status_code == 200
        assert [e["name"] for e in listed.json()["data"]] == ["app/hello"]


async def test_a_lone_surrogate_in_a_run_error_is_escaped_in_replies() -> None:
    """A run error message with invalid text is served as escaped JSON, not a 500."""
    client = make_client()

    @client.create_function(fn_id="bad", trigger=on("app/bad"), retries=0)
    async def bad(ctx: eventbus.Context) -> None:
        raise ValueError("broken \ud800 text")

    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(client)), base_url="http://test"
    )
    async with client, http:
        (event_id,) = (await http.post("/e/key", json={"name": "app/bad"})).json()["ids"]
        await client.settle()
        runs = await http.get(f"/v1/events/{event_id}/runs")
        assert runs.status_code == 200
        assert runs.json()["data"][0]["error"]["message"] == "broken \ud800 text"


async def test_a_body_that_does_not_arrive_in_time_is_a_408() -> None:
    """A request body slower than body_timeout gets 408; nothing is accepted."""
    import anyio

    client = make_client()
    app = create_app(client, body_timeout=0)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")  # pragma: no cover

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/e/key", "headers": []}
    async with client:
        await app(scope, receive, send)
        assert sent[0]["status"] == 408
        assert "did not arrive within 0 s" in json.loads(sent[1]["body"])["error"]
        assert client.events() == []


async def test_event_keys_are_decoded_once_and_empty_keys_refused() -> None:
    """With keys configured: the path is decoded once (a key containing % can match),
    an encoded form of another key does not match twice-decoded, and /e/ is a 401."""
    client, http = app_client(event_keys=["good-key", "per%cent"])
    async with client, http:
        assert (await http.post("/e/good-key", json={"name": "app/hello"})).status_code == 200
        assert (await http.post("/e/per%25cent", json={"name": "app/hello"})).status_code == 200
        # "good%252Dkey" decodes once to "good%2Dkey", which is not a key.
        assert (await http.post("/e/good%252Dkey", json={"name": "app/hello"})).status_code == 401
        empty = await http.post("/e/", json={"name": "app/hello"})
        assert empty.status_code == 401
        assert empty.json()["error"] == "Event key not found"
        assert len(client.events()) == 2


async def test_keys_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every configured key is compared with hmac.compare_digest, whichever matches."""
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    client, http = app_client(event_keys=["k1", "k2", "k3"])
    async with client, http:
        assert (await http.post("/e/k1", json={"name": "app/hello"})).status_code == 200
    assert len(calls) == 3
    assert {b for _, b in calls} == {b"k1", b"k2", b"k3"}


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        ("Bearer wrong", 401),
        (f"Bearer {SIGNING_KEY}", 200),
        (f"bearer {SIGNING_KEY}", 200),
        (f"Bearer {HASHED}", 200),  # what the official SDK sends
        (f"Bearer signkey-prod-{HASHED}", 200),
        ("Bearer 0123456789abcdef0123456789abcdef", 200),  # the bare body, as Inngest
        ("Bearer signkey-test-0123456789abcdef0123456789abcdef", 200),  # any env prefix
        (SIGNING_KEY, 401),  # no scheme
    ],
)
async def test_v1_requires_the_signing_key(authorization: str | None, status: int) -> None:
    """With a signing key, /v1 answers only a bearer token Inngest's server accepts;
    /health and /e stay open."""
    client, http = app_client(signing_key=SIGNING_KEY)
    headers = {} if authorization is None else {"Authorization": authorization}
    async with client, http:
        response = await http.get("/v1/events", headers=headers)
        assert response.status_code == status
        if status == 401:
            assert response.json() == {"error": "Authentication failed"}
        runs = await http.get("/v1/runs/nope", headers=headers)
        assert runs.status_code == (404 if status == 200 else 401)
        assert (await http.get("/health")).status_code == 200
        assert (await http.post("/e/any", json={"name": "app/hello"})).status_code == 200


async def test_a_signing_key_that_is_not_hex_admits_only_itself() -> None:
    """A non-hex signing key has no hashed form: only the key itself opens /v1."""
    client, http = app_client(signing_key="plain-secret")
    async with client, http:
        ok = await http.get("/v1/events", headers={"Authorization": "Bearer plain-secret"})
        assert ok.status_code == 200
        no = await http.get("/v1/events", headers={"Authorization": "Bearer plain"})
        assert no.status_code == 401
        hashed = hashlib.sha256(b"plain-secret").hexdigest()
        no = await http.get("/v1/events", headers={"Authorization": f"Bearer {hashed}"})
        assert no.status_code == 401


async def test_the_event_api_drops_unknown_fields_as_inngest_does() -> None:
    """A JS SDK v4 event with its ``meta`` field is accepted (the field dropped), with no
    warning, as Inngest's Event API accepts it."""
    import warnings

    client, http = app_client()
    async with client, http:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            response = await http.post(
                "/e/key", json={"name": "app/hello", "data": {"x": 1}, "meta": {"sdk": "js"}}
            )
        assert response.status_code == 200
        (event_id,) = response.json()["ids"]
        stored = client.get_event(event_id)
        assert stored is not None
        assert stored.data == {"x": 1}


async def test_a_retried_request_with_the_same_seed_starts_no_second_run() -> None:
    """As on Inngest: ids derive from x-inngest-event-id-seed, so an SDK's retry of one
    request gets the same ids, is not stored again and starts no second run; another
    seed (or none, or a malformed one) is a new request."""
    from eventbus._ids import decode_ulid_ms

    client, http = app_client()
    seed = {"x-inngest-event-id-seed": "1795784490141,/FAl4347Z7fVMQ=="}
    body = [{"name": "app/hello", "data": {"who": "a"}}, {"name": "app/hello"}]
    async with client, http:
        first = (await http.post("/e/key", json=body, headers=seed)).json()["ids"]
        again = (await http.post("/e/key", json=body, headers=seed)).json()["ids"]
        assert again == first
        assert [decode_ulid_ms(i) for i in first] == [1795784490141] * 2  # the seed's ms
        await client.settle()
        assert len(client.events("app/hello")) == 2
        assert len(client.runs(function_id="test-app-greet")) == 2
        other = {"x-inngest-event-id-seed": "1795784490141,AAAAAAAAAAAAAA=="}
        fresh = (await http.post("/e/key", json=body[:1], headers=other)).json()["ids"]
        bad = {"x-inngest-event-id-seed": "not a seed"}
        random = (await http.post("/e/key", json=body[:1], headers=bad)).json()["ids"]
        await client.settle()
        assert len({*first, *fresh, *random}) == 4
        assert len(client.runs(function_id="test-app-greet")) == 4


def test_seeded_ids_follow_inngests_rule() -> None:
    """For the event at 1-based index i the last four entropy bytes grow by i (uint32,
    wrapping), under the seed's millisecond; malformed seeds give None."""
    from eventbus._ids import decode_ulid_ms, seeded_ulids

    ids = seeded_ulids("1795784490141,AAAAAAAA/////w==", 2)
    assert ids is not None
    assert [decode_ulid_ms(i) for i in ids] == [1795784490141] * 2
    assert ids[0].endswith("0000000000")  # 0xFFFFFFFF + 1 wraps to 0
    assert ids[1].endswith("0000000001")
    for bad in ["", "123", "x,AAAAAAAAAAAAAA==", "1,!!", "1,AAAA", f"{2**48},AAAAAAAAAAAAAA=="]:
        assert seeded_ulids(bad, 1) is None
