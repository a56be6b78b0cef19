"""Where the time of a fan-out goes, per handler call: ``python benchmarks/breakdown.py``.

Measured at 10 handlers per event (2,000 events a round, medians of 7 rounds, CPU time):
the whole fan-out; the same with the cyclic collector off (its share); the sends alone,
to no function (the event's share, per call); the rest is the runs. The runs' share is
split by the engine function that spends it (cProfile's own time, scaled to the measured
total: a profiler inflates small functions, so read these as proportions).
"""

from __future__ import annotations

import cProfile
import gc
import pstats
import statistics
import sys
import time
from typing import Any

import anyio

from eventbus._bench import run_eventbus

HANDLERS = 10
EVENTS = 2_000
ROUNDS = 7

#: engine functions -> the phase of a run they belong to
PHASES = {
    "run record (ids, Run, store)": ("_schedule", "add_run", "new", "__init__", "_record_run"),
    "queue and worker loop": ("_enqueue", "_push", "_work", "_worker", "_spawn_worker"),
    "start (clock, execution, context)": ("_execute", "now_ms", "_execute_once"),
    "end (complete, release, announce)": (
        "_complete",
        "_release_run",
        "run_ended",
        "_announce_end",
        "add_finished",
        "matching",
        "cancel_all",
    ),
}


def cpu_us_per_call(handlers: int, *, collector: bool = True) -> float:
    """CPU µs of a round of EVENTS events to ``handlers`` functions, per call of a
    round at HANDLERS (so that 0 handlers gives the events' share of such a call)."""
    samples = []
    for _ in range(ROUNDS):
        if not collector:
            gc.disable()
        try:
            start = time.process_time()
            anyio.run(run_eventbus, handlers, EVENTS)
            samples.append(time.process_time() - start)
        finally:
            gc.enable()
        gc.collect()
    return statistics.median(samples) / (EVENTS * HANDLERS) * 1e6


def run_phases() -> dict[str, float]:
    profile = cProfile.Profile()
    gc.disable()
    try:
        profile.runcall(anyio.run, run_eventbus, HANDLERS, EVENTS)
    finally:
        gc.enable()
    stats: Any = pstats.Stats(profile).stats
    spent: dict[str, float] = dict.fromkeys(PHASES, 0.0)
    engine_total = 0.0
    for (path, _, name), (_, _, own, _, _) in stats.items():
        if "eventbus" not in path or "/_event.py" in path or "/_json.py" in path:
            continue
        if "_client.py" in path or "transports" in path or name in ("ingest", "_fan_out"):
            continue  # the event's share, measured apart
        engine_total += own
        for phase, names in PHASES.items():
            if name in names:
                spent[phase] += own
                break
    spent["other engine code"] = engine_total - sum(spent.values())
    return {phase: own / engine_total for phase, own in spent.items()}


def main() -> int:
    total = cpu_us_per_call(HANDLERS)
    without_gc = cpu_us_per_call(HANDLERS, collector=False)
    sends = cpu_us_per_call(0)
    runs = without_gc - sends
    print(f"| part | µs per handler call ({HANDLERS} handlers) |")
    print("|---|---|")
    print(f"| everything | {total:.2f} |")
    print(f"| cyclic garbage collector | {total - without_gc:.2f} |")
    print(f"| the event: validate, id, store, match (÷ {HANDLERS}) | {sends:.2f} |")
    for phase, share in run_phases().items():
        print(f"| run: {phase} | {runs * share:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
