"""KeyboardInterrupt, SystemExit and other BaseExceptions from a handler: the run fails,
what is unfinished is reported, and the exception propagates as itself.

These run in child processes: such an exception ends the event loop it is raised in, and
in this process that would be the test runner's.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

APP = textwrap.dedent(
    """
    import logging, sys
    import anyio, eventbus

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(message)s")
    client = eventbus.Inngest("exits", clock=eventbus.VirtualClock())

    class Custom(BaseException):
        pass

    @client.create_function(fn_id="boom", trigger=eventbus.TriggerEvent(event="app/boom"))
    async def boom(ctx):
        raise {raise_}

    @client.create_function(fn_id="nap", trigger=eventbus.TriggerEvent(event="app/nap"))
    async def nap(ctx):
        await ctx.step.sleep("nap", "1h")

    async def main():
        async with client:
            await client.send({{"name": "app/nap"}})
            await client.settle()
            await client.send({{"name": "app/boom"}})
            await client.settle()
            print("the body went on", file=sys.stderr)

    try:
        anyio.run(main, backend=sys.argv[1])
    except BaseException as exc:
        print("RAISED", type(exc).__name__, file=sys.stderr)
        raise
    finally:
        for run in client.runs():
            print("RUN", run.function.local_id, run.status.name, file=sys.stderr)
    """
)


def run_app(raise_: str, backend: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", APP.format(raise_=raise_), backend],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_system_exit_from_a_handler_exits_with_its_status(backend: str) -> None:
    """SystemExit(3) from a handler fails its run, names the sleeping run left unfinished,
    and the program exits with status 3."""
    done = run_app("SystemExit(3)", backend)
    assert done.returncode == 3, done.stderr
    assert "RAISED SystemExit" in done.stderr
    assert "RUN boom FAILED" in done.stderr
    assert "RUN nap SLEEPING" in done.stderr
    assert "raised SystemExit with 1 unfinished run(s)" in done.stderr
    assert "(exits-nap, SLEEPING)" in done.stderr
    assert "the body went on" not in done.stderr


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("raise_", ["KeyboardInterrupt()", "Custom('mine')"])
def test_other_base_exceptions_propagate_as_themselves(raise_: str, backend: str) -> None:
    """KeyboardInterrupt and a user's BaseException subclass come out of the program
    unwrapped, after failing their run."""
    done = run_app(raise_, backend)
    name = raise_.split("(")[0]
    assert done.returncode != 0
    assert f"RAISED {name}" in done.stderr, done.stderr
    assert "ExceptionGroup" not in done.stderr
    assert "RUN boom FAILED" in done.stderr
    assert "RUN nap SLEEPING" in done.stderr
