"""Fan-out throughput: eventbus against a plain anyio task group and peer libraries.

Run with ``nox -s bench`` (or see docs/benchmarks.md). Each case delivers ``events`` events
to ``handlers`` no-op async handlers and waits until every call finished; the report
divides by the anyio task-group baseline measured in the same run.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from benchmarks.scenarios import RUNNERS, available

#: handlers per event -> events per round (so every round makes 10,000-20,000 calls)
SIZES = {1: 10_000, 10: 2_000, 100: 200}
#: bubus slows down with every event in its history (1,000 events take ~17 s here, 3,000
#: ~180 s), so it gets short rounds; this flatters its rate.
BUBUS_SIZES = {1: 200, 10: 50, 100: 5}


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("handlers", list(SIZES))
@pytest.mark.parametrize("library", list(RUNNERS))
def test_fanout(benchmark: Any, library: str, handlers: int, backend: str) -> None:
    reason = available(library, backend)
    if reason is not None:
        pytest.skip(reason)
    events = (BUBUS_SIZES if library == "bubus" else SIZES)[handlers]
    runner = RUNNERS[library]
    benchmark.group = f"fanout-{handlers}-{backend}"
    benchmark.extra_info.update(library=library, handlers=handlers, backend=backend, events=events)
    rounds = 3 if library == "bubus" else 7
    benchmark.pedantic(
        anyio.run,
        args=(runner, handlers, events),
        kwargs={"backend": backend},
        rounds=rounds,
        iterations=1,
        warmup_rounds=1,
    )
