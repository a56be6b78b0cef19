"""eventbus needs only anyio, attrs and sortedcontainers: sniffio is not among them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from eventbus._backend import current_backend

APP = """
import sys
sys.modules["sniffio"] = None  # as if it were not installed: importing it fails
import anyio, eventbus
from eventbus.stores import SqliteStore

async def main():
    app = eventbus.Inngest("app", store=SqliteStore(sys.argv[1]))

    @app.create_function(fn_id="f", trigger=eventbus.TriggerEvent(event="e"))
    async def f(ctx):
        return await ctx.step.run("s", lambda: ctx.event.data["n"] + 1)

    async with app:
        await app.send({"name": "e", "data": {"n": 41}})
        await app.settle()
        print(app.runs()[0].output)

anyio.run(main)
"""


def test_an_app_runs_without_sniffio(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", APP, f"{tmp_path}/app.db"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "42"


def test_the_backend_is_named() -> None:
    assert current_backend() is None
    for backend in ("asyncio", "trio"):

        async def name() -> str | None:
            return current_backend()

        assert anyio.run(name, backend=backend) == backend


def test_without_sniffio_asyncio_is_the_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sniffio", None)

    async def name() -> str | None:
        return current_backend()

    assert current_backend() is None
    assert anyio.run(name, backend="asyncio") == "asyncio"
