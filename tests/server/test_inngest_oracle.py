"""The same requests to the real Inngest server and to eventbus's app, statuses compared.

Needs the real server: set INNGEST_BIN to its path (``.ci/run`` does when
``../shared/tools/inngest/inngest`` exists); skipped otherwise.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

import eventbus
from eventbus.server import create_app
from tests.server.test_loopback import free_port

INNGEST_BIN = os.environ.get("INNGEST_BIN")
pytestmark = pytest.mark.skipif(
    not INNGEST_BIN, reason="the real Inngest server is not available (set INNGEST_BIN)"
)

EVENT_KEY = "oracle-event-key"
KEY_BODY = "0123456789abcdef0123456789abcdef"
SIGNING_KEY = f"signkey-prod-{KEY_BODY}"
HASHED = hashlib.sha256(bytes.fromhex(KEY_BODY)).hexdigest()

AUTHORIZATIONS = [
    None,
    "Bearer wrong",
    f"Bearer {SIGNING_KEY}",
    f"Bearer {HASHED}",
    f"Bearer signkey-prod-{HASHED}",
    f"Bearer signkey-test-{HASHED}",
    f"Bearer {KEY_BODY}",
    f"Bearer signkey-test-{KEY_BODY}",
    "Bearer signkey-prod-wrong",
    HASHED,
]

EVENT_BODIES = [
    ('{"name":"a/b","data":{"x":1}}', "plain"),
    ('{"name":"a/b","data":{"n":1' + "0" * 300 + "}}", "1e300"),
    ('{"name":"a/b","data":{"n":1' + "0" * 400 + "}}", "1e400"),
    ('{"name":"a/b","data":{"k":' + "[" * 10000 + "]" * 10000 + "}}", "10,000 levels"),
    ("{not json", "not json"),
    ('{"name":"a/b","data":{"x":1},"meta":{"sdk":"js:v4"}}', "JS SDK v4's meta field"),
]


@pytest.fixture(scope="module")
def real_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`inngest start` with an event key and a signing key, on a free loopback port."""
    assert INNGEST_BIN is not None
    workdir: Path = tmp_path_factory.mktemp("inngest")
    port = free_port()
    process = subprocess.Popen(
        [
            INNGEST_BIN,
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--event-key",
            EVENT_KEY,
            "--signing-key",
            KEY_BODY,
        ],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, "the Inngest server exited at start"
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the Inngest server did not start"
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:  # pragma: no cover - a stuck server
            process.kill()
            process.wait()


def ours(requests: list[tuple[str, str, dict[str, str], str | None]]) -> list[int]:
    """Statuses from eventbus's app for (method, path, headers, body) requests."""
    client = eventbus.Inngest("oracle", clock=eventbus.VirtualClock())
    app = create_app(client, event_keys=[EVENT_KEY], signing_key=SIGNING_KEY)
    statuses: list[int] = []

    async def main() -> None:
        transport = httpx.ASGITransport(app=app)
        async with client, httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            for method, path, headers, body in requests:
                response = await http.request(method, path, headers=headers, content=body)
                statuses.append(response.status_code)

    anyio.run(main)
    return statuses


def theirs(base: str, requests: list[tuple[str, str, dict[str, str], str | None]]) -> list[int]:
    return [
        httpx.request(method, base + path, headers=headers, content=body, timeout=10).status_code
        for method, path, headers, body in requests
    ]


def test_v1_authorization_matches_the_real_server(real_server: str) -> None:
    """Every bearer form is accepted or refused on /v1 exactly as Inngest's server does."""
    requests = [
        ("GET", "/v1/events", {} if auth is None else {"Authorization": auth}, None)
        for auth in AUTHORIZATIONS
    ]
    assert ours(requests) == theirs(real_server, requests)


def test_event_keys_and_payload_limits_match_the_real_server(real_server: str) -> None:
    """Right and wrong event keys, numbers at the edge of a float's range and malformed
    JSON get the same status from both (nesting is compared at 10,000 levels, refused by
    both; eventbus refuses from 257 levels, see docs/concepts.md)."""
    requests = [
        ("POST", f"/e/{key}", {"content-type": "application/json"}, body)
        for key in (EVENT_KEY, "wrong-key")
        for body, _ in EVENT_BODIES
    ]
    assert ours(requests) == theirs(real_server, requests)


def test_seeded_ids_match_the_real_server(real_server: str) -> None:
    """A request with x-inngest-event-id-seed gets exactly the ids Inngest's server gives
    it, and the same ids again when retried with the same seed."""
    headers = {
        "content-type": "application/json",
        "x-inngest-event-id-seed": "1795784490141,/FAl4347Z7fVMQ==",
    }
    body = '[{"name":"a/b","data":{"n":1}},{"name":"a/b","data":{"n":2}},{"name":"a/c"}]'
    requests = [("POST", f"/e/{EVENT_KEY}", headers, body)] * 2
    theirs_ids = [
        httpx.request(m, real_server + p, headers=h, content=b, timeout=10).json()["ids"]
        for m, p, h, b in requests
    ]
    client = eventbus.Inngest("oracle", clock=eventbus.VirtualClock())
    app = create_app(client, event_keys=[EVENT_KEY])
    ours_ids: list[list[str]] = []

    async def main() -> None:
        transport = httpx.ASGITransport(app=app)
        async with client, httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            for method, path, h, b in requests:
                ours_ids.append(
                    (await http.request(method, path, headers=h, content=b)).json()["ids"]
                )

    anyio.run(main)
    assert ours_ids == theirs_ids
    assert theirs_ids[0] == theirs_ids[1]
    assert len(set(theirs_ids[0])) == 3


def test_the_documented_differences_hold_against_the_real_server(real_server: str) -> None:
    """The differences docs/concepts.md lists, on purpose, are what the two really do:
    Inngest accepts a lone surrogate and 300 levels of nesting; eventbus refuses both."""
    bodies = [
        '{"name":"a/b","data":{"s":"\\ud800"}}',
        '{"name":"a/b","data":{"k":' + "[" * 300 + "]" * 300 + "}}",
    ]
    requests = [
        ("POST", f"/e/{EVENT_KEY}", {"content-type": "application/json"}, body) for body in bodies
    ]
    assert theirs(real_server, requests) == [200, 200]
    assert ours(requests) == [400, 400]
