"""Side-by-side runs against the real Inngest server (INNGEST_BIN), for "as Inngest does".

``RealInngest`` serves an eventbus client's functions through the official SDK
(``to_inngest`` on FastAPI and uvicorn, on loopback), starts ``inngest dev`` pointed at
them, sends events and polls their runs, every wait bounded in time. The same functions
run in eventbus in the same test, and the outcomes are compared.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import eventbus

INNGEST_BIN = os.environ.get("INNGEST_BIN")
needs_inngest = pytest.mark.skipif(
    not INNGEST_BIN, reason="the real Inngest server is not available (set INNGEST_BIN)"
)
FINAL = {"Completed", "Failed", "Cancelled"}


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports: all held open while they are picked, so
    the OS cannot hand the same one out twice."""
    import socket

    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def wait_until(check: Any, what: str, seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:g} s waiting for {what}")
        time.sleep(0.1)


class RealInngest:
    """The real dev server running ``client``'s functions, served through the bridge."""

    def __init__(self, client: eventbus.Inngest, workdir: Path, sdk_functions: Any = None) -> None:
        import inngest
        import inngest.fast_api
        import uvicorn
        from fastapi import FastAPI

        from eventbus.contrib.inngest import to_inngest

        self.port, app_port, gateway, gateway_grpc, executor_grpc = free_ports(5)
        self.base = f"http://127.0.0.1:{self.port}"
        self.sdk = inngest.Inngest(
            app_id=client.app_id,
            is_production=False,
            api_base_url=self.base,
            event_api_base_url=self.base,
        )
        app = FastAPI()
        # ``sdk_functions(sdk_client)``: functions written for the SDK, served as they are.
        extra = [] if sdk_functions is None else list(sdk_functions(self.sdk))
        inngest.fast_api.serve(app, self.sdk, [*to_inngest(client, self.sdk), *extra])
        config = uvicorn.Config(app, host="127.0.0.1", port=app_port, log_level="error")
        self._app_server = uvicorn.Server(config)
        self._app_thread = threading.Thread(
            target=lambda: asyncio.run(self._app_server.serve()), daemon=True
        )
        self._app_thread.start()
        wait_until(lambda: self._app_server.started, "the app server", 20)
        assert INNGEST_BIN is not None
        self.log_path = workdir / "inngest.log"
        self._log = self.log_path.open("wb")
        self._process = subprocess.Popen(
            [
                INNGEST_BIN,
                "dev",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-discovery",
                "--retry-interval",
                "1",
                "--tick",
                "50",
                "--connect-gateway-port",
                str(gateway),
                "--connect-gateway-grpc-port",
                str(gateway_grpc),
                "--connect-executor-grpc-port",
                str(executor_grpc),
                "-u",
                f"http://127.0.0.1:{app_port}/api/inngest",
            ],
            cwd=workdir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_until(self._healthy, "the Inngest dev server", 60)
        names = {f"{client.app_id}-{f.local_id}" for f in client.functions()}
        names |= {f"{client.app_id}-{f.local_id}" for f in extra}
        wait_until(lambda: names <= self._synced(), "the app to sync", 60)

    def _healthy(self) -> bool:
        if self._process.poll() is not None:
            raise AssertionError("the Inngest dev server exited")
        try:
            return httpx.get(f"{self.base}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def _synced(self) -> set[str]:
        query = '{"query": "{ functions { slug } }"}'
        try:
            answer = httpx.post(
                f"{self.base}/v0/gql",
                content=query,
                headers={"content-type": "application/json"},
                timeout=5,
            ).json()
        except (httpx.TransportError, json.JSONDecodeError):
            return set()
        return {f["slug"] for f in (answer.get("data") or {}).get("functions") or []}

    def send(self, event: dict[str, Any]) -> str:
        answer = httpx.post(f"{self.base}/e/key", json=event, timeout=10).json()
        return str(answer["ids"][0])

    def runs(self, event_id: str, count: int = 1, seconds: float = 120) -> list[dict[str, Any]]:
        """The event's runs (``status`` as in eventbus, ``output`` decoded), once ``count``
        of them have ended. Run ids come from /v1/events/{id}/runs, whose statuses the dev
        server can leave stale once polled early; statuses come from GraphQL."""
        polls = [0]
        last: list[Any] = [None]

        def ended() -> list[dict[str, Any]] | None:
            polls[0] += 1
            try:
                runs = [self._run(r["run_id"]) for r in self.listed_runs(event_id)]
            except (httpx.TransportError, json.JSONDecodeError, KeyError):
                return None
            last[0] = runs
            done = [r for r in runs if r["status"] in FINAL]
            return done if len(done) >= count else None

        try:
            return wait_until(ended, f"{count} run(s) of event {event_id} to end", seconds)  # type: ignore[no-any-return]
        except AssertionError as exc:
            answered = repr(last[0])[:1500]
            raise AssertionError(
                f"{exc}; the server last answered {answered}; its log ends:\n{self.log_tail()}"
            ) from None

    def listed_runs(self, event_id: str) -> list[dict[str, Any]]:
        """The event's runs as listed now (possibly none; the dev server may list a run
        twice, so by run id)."""
        answer = httpx.get(
            f"{self.base}/v1/events/{event_id}/runs?at={time.monotonic()}", timeout=5
        ).json()
        return list({r["run_id"]: r for r in answer.get("data") or []}.values())

    def runs_any(self, event_id: str, seconds: float = 120) -> list[dict[str, Any]]:
        """Like :meth:`runs`, also for runs that end without an output (cancelled ones)."""

        def ended() -> list[dict[str, Any]] | None:
            found = [self._status(r["run_id"]) for r in self.listed_runs(event_id)]
            done = [r for r in found if r["status"] in FINAL]
            return done or None

        return wait_until(ended, f"a run of event {event_id} to end", seconds)  # type: ignore[no-any-return]

    def _status(self, run_id: str) -> dict[str, Any]:
        query = {"query": f'{{ run(runID: "{run_id}") {{ status }} }}'}
        answer = httpx.post(f"{self.base}/v0/gql", json=query, timeout=5).json()
        found = (answer.get("data") or {}).get("run")
        status = "Pending" if not found else str(found["status"]).capitalize()
        return {"run_id": run_id, "status": status}

    def _run(self, run_id: str) -> dict[str, Any]:
        query = {"query": f'{{ run(runID: "{run_id}") {{ status }} }}'}
        answer = httpx.post(f"{self.base}/v0/gql", json=query, timeout=5).json()
        found = (answer.get("data") or {}).get("run")
        if not found:
            return {"run_id": run_id, "status": "Pending", "output": None}  # not stored yet
        status = str(found["status"]).capitalize()  # "COMPLETED" -> "Completed"
        output = None
        if status in FINAL:  # the output (or the error object of a failure) is here
            record = httpx.get(f"{self.base}/v1/runs/{run_id}?at={time.monotonic()}", timeout=5)
            output = record.json()["data"].get("output")
            if output is None:
                status = "Pending"  # not written yet: poll again
        return {"run_id": run_id, "status": status, "output": output}

    def log_tail(self, lines: int = 30) -> str:
        """The last lines the dev server printed, for a failure's message."""
        self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def close(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:  # pragma: no cover - a stuck server
            self._process.kill()
            self._process.wait()
        self._app_server.should_exit = True
        self._app_thread.join(timeout=10)
        self._log.close()


def real_inngest(
    client: eventbus.Inngest, workdir: Path, sdk_functions: Any = None
) -> Iterator[RealInngest]:
    server = RealInngest(client, workdir, sdk_functions)
    try:
        yield server
    finally:
        server.close()


def failure(output: Any) -> tuple[str, str]:
    """(name, message) of a failed run's output on Inngest (a JSON object or its text)."""
    if isinstance(output, str):
        output = json.loads(output)
    return str(output.get("name")), str(output.get("message"))
