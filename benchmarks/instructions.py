"""Instruction counts (callgrind), which repeat to the instruction whatever else the
machine does: ``python benchmarks/instructions.py`` (needs valgrind).

Each case runs twice in a child process under ``valgrind --tool=callgrind``, with a small
and a large count, and the difference is divided by the difference in work, so start-up
and imports cancel out. Cases: a handler call at 10 handlers per event; an event to one
handler; a send to no function, whole, without validation, and without ingestion (the
send's shares); and a run of a two-step function not instrumented and instrumented with
each tracer provider of ``benchmarks/test_otel.py``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


async def _send_only(mode: str, count: int) -> None:
    import eventbus
    from eventbus._bench import event
    from eventbus._event import EventBatch

    client = eventbus.Inngest("instructions")
    if mode != "whole":  # skip validation: the event as the wire dict it becomes

        def unvalidated(e: Any) -> EventBatch:
            wire = {"name": e["name"], "data": e["data"], "id": None, "ts": None, "v": None}
            return EventBatch([{**wire, "user": {}}])

        client._prepare = unvalidated  # type: ignore[method-assign]
        # send validates one usual dict itself: it then falls back on _prepare
        eventbus._client.usual_batch = lambda *_: None  # type: ignore[attr-defined]
    async with client:
        if mode == "no-ingest":
            client.engine.ingest = lambda decoded, ids=None: ["x"]  # type: ignore[union-attr, method-assign]
        for i in range(count):
            await client.send(event(i))


class _SlowedTime:
    """The ``time`` module as eventbus's wall clock sees it under callgrind: time runs
    ``SLOWDOWN`` times slower, as the program does there, so that as many ids share a
    millisecond as at full speed (each new millisecond reseeds the id generator, which
    would otherwise count almost once per id)."""

    SLOWDOWN = 50

    def __init__(self) -> None:
        self._start = time.time_ns()

    def time_ns(self) -> int:
        return self._start + (time.time_ns() - self._start) // self.SLOWDOWN

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def child(case: str, count: int) -> None:
    """Run ``case`` with ``count`` units of work in this process."""
    import eventbus._clock

    eventbus._clock.time = _SlowedTime()  # type: ignore[assignment]
    from eventbus._bench import run_eventbus, run_pyee

    if case == "call-at-10":
        anyio.run(run_eventbus, 10, count // 10)
    elif case == "event-at-1":
        anyio.run(run_eventbus, 1, count)
    elif case == "pyee-call-at-10":
        anyio.run(run_pyee, 10, count // 10)
    elif case == "pyee-event-at-1":
        anyio.run(run_pyee, 1, count)
    elif case.startswith("send-"):
        anyio.run(_send_only, case[len("send-") :], count)
    else:
        import benchmarks.test_otel as otel

        otel.RUNS = count
        anyio.run(otel.run, case[len("otel-") :])


CASES = {
    "call-at-10": "a handler call, 10 handlers per event",
    "event-at-1": "an event to one handler",
    "pyee-call-at-10": "pyee: a handler call, 10 handlers per event",
    "pyee-event-at-1": "pyee: an event to one handler",
    "send-whole": "a send to no function",
    "send-unvalidated": "  the same without validation",
    "send-no-ingest": "  the same without ingestion (the calls down to the engine)",
    "otel-off": "a two-step run, not instrumented",
    "otel-noop": "  instrumented, NoOpTracerProvider",
    "otel-proxy": "  instrumented, the API's default provider (no SDK)",
    "otel-sdk": "  instrumented, the SDK recording 3 spans",
}
SMALL, LARGE = 100, 3_100


def count(case: str, units: int) -> int:
    out = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--child",
            case,
            str(units),
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
        timeout=900,
    )
    found = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
    assert found is not None, out.stderr[-2000:]
    return int(found.group(1).replace(",", ""))


def main() -> int:
    if shutil.which("valgrind") is None:
        print("needs valgrind (apt-get install valgrind)", file=sys.stderr)
        return 1
    chosen = sys.argv[1:] or list(CASES)
    for case in chosen:
        what = CASES[case]
        per = (count(case, LARGE) - count(case, SMALL)) / (LARGE - SMALL)
        print(f"{what:<62} {per:>10,.0f} instructions")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(main())
