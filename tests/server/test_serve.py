"""`python -m eventbus serve` as a real server: stuck clients, connection limits, signals.

These use real sockets and child processes, so they wait on real time, each bounded.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import eventbus
from eventbus.server._serve import make_server
from tests.server.test_loopback import free_port


def wait_for(predicate: object, what: str, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def start_serve(cwd: Path, target: str, *args: str) -> tuple[subprocess.Popen[str], int]:
    """`python -m eventbus serve target *args` in ``cwd`` on a free port, once healthy."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "eventbus", "serve", target, "--port", str(port), *args],
        cwd=cwd,
        stderr=subprocess.PIPE,
        text=True,
    )

    def up() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(up, "serve to start", seconds=30)
    except BaseException:  # pragma: no cover - only when the test fails
        process.kill()
        process.communicate()
        raise
    return process, port


@pytest.fixture
def guarded() -> Iterator[str]:
    """A hardened server (head timeout 0.5 s, at most 4 connections) in a thread."""
    client = eventbus.Inngest("guarded")

    @client.create_function(fn_id="f", trigger=eventbus.TriggerEvent(event="app/e"))
    async def f(ctx: eventbus.Context) -> str:
        return "ok"

    port = free_port()
    server = make_server(
        client, port=port, header_timeout=0.5, limit_concurrency=4, log_level="error"
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    wait_for(lambda: server.started, "uvicorn to start")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_a_client_dribbling_its_request_head_is_cut_off(guarded: str) -> None:
    """A connection whose request head never completes is closed after header_timeout,
    even though it keeps sending bytes; other clients are served meanwhile."""
    host, port = guarded.split(":")
    stuck = socket.create_connection((host, int(port)), timeout=10)
    try:
        stuck.sendall(b"POST /e/key HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        served = httpx.post(f"http://{guarded}/e/key", json={"name": "app/e"}, timeout=5)
        assert served.status_code == 200
        closed = False
        while time.monotonic() - started < 5:
            try:
                stuck.sendall(b"X-Slow: 1\r\n")  # a byte now and then
            except OSError:
                closed = True
                break
            stuck.settimeout(0.2)
            try:
                if stuck.recv(1024) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
        assert closed, "the stuck connection was kept open"
        assert time.monotonic() - started < 3
    finally:
        stuck.close()


def test_connections_beyond_the_limit_get_503_not_a_hang(guarded: str) -> None:
    """With limit_concurrency connections held, a new request is answered 503 at once."""
    host, port = guarded.split(":")
    held = [socket.create_connection((host, int(port)), timeout=10) for _ in range(4)]
    try:
        wait_for(lambda: True, "connections")  # they are accepted on the server's loop
        time.sleep(0.2)
        response = httpx.post(f"http://{guarded}/e/key", json={"name": "app/e"}, timeout=5)
        assert response.status_code == 503
    finally:
        for sock in held:
            sock.close()
    wait_for(
        lambda: (
            httpx.post(f"http://{guarded}/e/key", json={"name": "app/e"}, timeout=5).status_code
            == 200
        ),
        "the server to serve again",
    )


APP = textwrap.dedent(
    """
    import anyio
    import eventbus

    client = eventbus.Inngest("served")

    @client.create_function(fn_id="forever", trigger=eventbus.TriggerEvent(event="app/forever"))
    async def forever(ctx):
        await anyio.sleep_forever()
    """
)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_exits_on_the_first_signal_within_the_shutdown_timeout(
    sig: signal.Signals, tmp_path: Path
) -> None:
    """`serve` with a run that never ends exits on the first SIGTERM or SIGINT within
    --shutdown-timeout, naming the unfinished run."""
    (tmp_path / "served_app.py").write_text(APP)
    process, port = start_serve(tmp_path, "served_app:client", "--shutdown-timeout", "1")
    try:
        sent = httpx.post(f"http://127.0.0.1:{port}/e/key", json={"name": "app/forever"})
        assert sent.status_code == 200
        time.sleep(0.2)  # let the run start executing
        signalled = time.monotonic()
        process.send_signal(sig)
        _, stderr = process.communicate(timeout=15)
        elapsed = time.monotonic() - signalled
    finally:
        if process.poll() is None:  # pragma: no cover - only when the test fails
            process.kill()
            process.communicate()
    # uvicorn re-raises the signal once it has shut down: the usual statuses for each.
    assert process.returncode == (-signal.SIGTERM if sig == signal.SIGTERM else 130), stderr
    assert "Traceback" not in stderr
    assert "Application shutdown complete" in stderr
    assert elapsed < 4, f"took {elapsed:.1f} s to exit"
    assert "1 unfinished run(s)" in stderr
    assert "served-forever, RUNNING, interrupted while executing" in stderr


CRASHING_APP = textwrap.dedent(
    """
    import pathlib
    import anyio
    import eventbus

    client = eventbus.Inngest("durable")
    here = pathlib.Path(__file__).parent

    @client.create_function(fn_id="charge", trigger=eventbus.TriggerEvent(event="shop/paid"))
    async def charge(ctx):
        def pay():
            with open(here / "charges.log", "a") as log:
                log.write(ctx.event.id + "\\n")
            return "ch_1"

        receipt = await ctx.step.run("pay", pay)
        (here / "committed").touch()  # step.run returns once its result is committed
        while not (here / "release").exists():  # the first process dies here
            await anyio.sleep(0.05)
        return receipt
    """
)


def test_serve_with_a_db_survives_sigkill(tmp_path: Path) -> None:
    """`serve --db` killed with SIGKILL mid-run: restarted, it finishes the run without
    charging again, and the event's id is still deduplicated."""
    (tmp_path / "durable_app.py").write_text(CRASHING_APP)
    db = tmp_path / "app.db"

    def start() -> tuple[subprocess.Popen[str], int]:
        return start_serve(tmp_path, "durable_app:client", "--db", str(db))

    first, port = start()
    try:
        sent = httpx.post(f"http://127.0.0.1:{port}/e/key", json={"name": "shop/paid", "id": "o-1"})
        assert sent.status_code == 200
        (event_id,) = sent.json()["ids"]
        wait_for(lambda: (tmp_path / "committed").exists(), "the charge", seconds=15)
        first.kill()  # SIGKILL: no shutdown at all
        first.communicate(timeout=15)
    finally:
        if first.poll() is None:  # pragma: no cover - only when the test fails
            first.kill()
            first.communicate()
    (tmp_path / "release").touch()
    second, port = start()
    try:

        def completed() -> bool:
            runs = httpx.get(f"http://127.0.0.1:{port}/v1/events/{event_id}/runs", timeout=5)
            data = runs.json()["data"]
            return bool(data) and data[0]["status"] == "Completed"

        wait_for(completed, "the run to complete after the restart", seconds=30)
        again = httpx.post(
            f"http://127.0.0.1:{port}/e/key", json={"name": "shop/paid", "id": "o-1"}
        )
        (again_id,) = again.json()["ids"]
        assert httpx.get(f"http://127.0.0.1:{port}/v1/events/{again_id}/runs").json()["data"] == []
    finally:
        second.send_signal(signal.SIGTERM)
        second.communicate(timeout=15)
    assert (tmp_path / "charges.log").read_text() == "o-1\n"  # charged once
