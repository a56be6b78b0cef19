"""One life of an app on SqliteStore, for the crash suite (tests/stores/test_crash_suite.py).

``python crash_child.py DB LOG LIFE BACKEND ORDERS`` sends ORDERS orders (each twice,
with the same ``id``) and their acks, lets every run finish, then prints the final state
as JSON. Each life does the same: a restarted app re-sends what it may not have sent,
as real producers retry. Progress goes to stdout (``sent <user id> <event id>``) and to
LOG (``<life> exec <step> <run>`` when a step's code runs, ``<life> committed <step>
<run>`` when the handler goes on after it), one line per write so a SIGKILL loses none.

With ``CRASH_AT_WRITE=N`` in the environment the process SIGKILLs itself as its N-th
write to SQLite begins: between a step's return and its commit, or inside a send.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import sys
from typing import Any

import anyio

import eventbus
from eventbus.stores import SqliteStore


def main(db: str, log_path: str, life: str, orders: int) -> None:
    log = open(log_path, "a", buffering=1)  # noqa: SIM115 - open for the whole life

    def note(*parts: object) -> None:
        log.write(" ".join([life, *map(str, parts)]) + "\n")

    store = SqliteStore(db)
    crash_at = int(os.environ.get("CRASH_AT_WRITE", "0"))
    if crash_at:
        write = store._write
        writes = [0]

        def write_or_die(batch: Any) -> None:
            writes[0] += 1
            if writes[0] == crash_at:
                os.kill(os.getpid(), signal.SIGKILL)
            write(batch)

        store._write = write_or_die  # type: ignore[method-assign]

    app = eventbus.Inngest("crash", store=store, shutdown_timeout=0.0)

    @app.create_function(fn_id="flow", trigger=eventbus.TriggerEvent(event="order"), retries=5)
    async def flow(ctx: eventbus.Context) -> int:
        run, n = ctx.run_id, int(ctx.event.data["n"])

        def a() -> int:
            note("exec", "a", run)
            return n * 2

        x = await ctx.step.run("a", a)
        note("committed", "a", run)
        ack = await ctx.step.wait_for_event("ack", event="ack", match="data.n", timeout="500ms")
        await ctx.step.sleep("nap", datetime.timedelta(milliseconds=20))

        def b() -> int:
            note("exec", "b", run)
            if ctx.attempt == 0 and n % 2 == 0:
                raise eventbus.RetryAfterError("flaky on the first try", 10)
            return x + 1

        y = await ctx.step.run("b", b)
        note("committed", "b", run)
        return y + (0 if ack is None else 1000)

    async def life_of_the_app() -> None:
        async with app:
            for n in range(orders):
                order = {"name": "order", "id": f"order-{n}", "data": {"n": n}}
                for _ in range(2):  # the second is a duplicate
                    [event_id] = await app.send(order)
                    print("sent", f"order-{n}", event_id, flush=True)
            for n in range(orders):
                [event_id] = await app.send({"name": "ack", "id": f"ack-{n}", "data": {"n": n}})
                print("sent", f"ack-{n}", event_id, flush=True)
            with anyio.fail_after(20):
                # Sleeps and waits run on the real clock here: poll until all are done.
                while any(not r.status.is_finished for r in app.runs()):  # noqa: ASYNC110
                    await anyio.sleep(0.01)
            state = {
                "events": [e.internal_id for e in app.events()],
                "runs": [
                    {
                        "run_id": r.run_id,
                        "order": r.event.id,
                        "status": r.status.name,
                        "output": r.output,
                    }
                    for r in app.runs()
                    if r.function.local_id == "flow"
                ],
            }
            print("state", json.dumps(state), flush=True)

    anyio.run(life_of_the_app, backend=sys.argv[4])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[5]))
