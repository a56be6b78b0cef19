"""The crash suite: an app on SqliteStore, SIGKILLed at points hypothesis chooses.

Each example runs lives of ``crash_child.py`` over one database. Every life but the
last is killed: either by this process, right after the child reported its k-th piece
of progress (a send that returned), or by the child itself as its n-th write to SQLite
begins (between a step's return and its commit, or inside a send). The last life runs to
the end and reports the final state. Then, whatever the kills were:

- every id a ``send`` returned, in any life, is in the store;
- a step whose result was committed never ran again (its code ran in no later life);
- every order has exactly one run, duplicates included, and it completed;
- every run's steps ran, and its output is the one the steps' results give.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

CHILD = Path(__file__).with_name("crash_child.py")
ORDERS = 3
#: Progress lines a life prints: each order twice, then each ack.
PROGRESS = 3 * ORDERS

kill = st.one_of(
    st.tuples(st.just("progress"), st.integers(0, PROGRESS), st.floats(0, 0.02)),
    st.tuples(st.just("write"), st.integers(1, 12), st.just(0.0)),
)


def live(db: Path, log: Path, life: int, backend: str, how: tuple[str, int, float] | None) -> str:
    """One life; returns its stdout (the final state's line if it was not killed)."""
    env = dict(os.environ)
    if how is not None and how[0] == "write":
        env["CRASH_AT_WRITE"] = str(how[1])
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(db), str(log), str(life), backend, str(ORDERS)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: list[str] = []
    assert child.stdout is not None
    try:
        if how is not None and how[0] == "progress":
            while len([line for line in lines if line.startswith("sent ")]) < how[1]:
                line = child.stdout.readline()
                if not line:
                    break
                lines.append(line)
            time.sleep(how[2])
            child.send_signal(signal.SIGKILL)
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:  # pragma: no cover - only if the life hung
            child.kill()
            child.wait()
    lines.append(out)
    if how is None:
        assert child.returncode == 0, err
    else:
        assert child.returncode in (0, -signal.SIGKILL), err
    return "".join(lines)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
@given(kills=st.lists(kill, min_size=1, max_size=3))
def test_invariants_hold_across_kills(
    tmp_path_factory: pytest.TempPathFactory, backend: str, kills: list[tuple[str, int, float]]
) -> None:
    directory = tmp_path_factory.mktemp("crash")
    db, log = directory / "app.db", directory / "steps.log"
    outputs = [live(db, log, life, backend, how) for life, how in enumerate(kills)]
    outputs.append(live(db, log, len(kills), backend, None))

    returned = {
        line.split()[2]
        for output in outputs
        for line in output.splitlines()
        if line.startswith("sent ")
    }
    [state_line] = [line for line in outputs[-1].splitlines() if line.startswith("state ")]
    state = json.loads(state_line.removeprefix("state "))

    # Every id that send returned exists.
    assert returned <= set(state["events"])

    # One run per order, duplicates and re-sends deduplicated; each completed.
    runs = state["runs"]
    assert sorted(run["order"] for run in runs) == [f"order-{n}" for n in range(ORDERS)]
    for run in runs:
        assert run["status"] == "COMPLETED", run
        n = int(run["order"].removeprefix("order-"))
        assert run["output"] % 1000 == n * 2 + 1  # a's result, then b's

    # No committed step ran again in a later life; every step ran.
    executed: dict[tuple[str, str], list[int]] = {}
    committed: dict[tuple[str, str], int] = {}
    for line in log.read_text().splitlines():
        life, what, step, run_id = line.split()
        key = (step, run_id)
        if what == "exec":
            executed.setdefault(key, []).append(int(life))
        else:
            committed.setdefault(key, int(life))
    for run in runs:
        for step in ("a", "b"):
            key = (step, run["run_id"])
            assert key in executed, f"step {step} of {run} never ran"
            assert key in committed
            assert max(executed[key]) <= committed[key], (
                f"step {step} of run {run['run_id']} ran in life {max(executed[key])} "
                f"after its result was committed in life {committed[key]}"
            )
