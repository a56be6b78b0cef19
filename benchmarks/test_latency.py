"""Latency from ``send`` to the handler's first line, one event at a time, eventbus
against its peers (interleaved: one sample run of every peer before each eventbus round)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from eventbus._bench import LATENCY, LIBRARIES, available

SAMPLES = 2000
ROUNDS = 5


def percentile(samples: list[int], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] / 1000


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_latency(benchmark: Any, backend: str) -> None:
    names = [name for name in LIBRARIES if available(name, backend) is None]
    samples: dict[str, list[int]] = {name: [] for name in names}

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        for name in names:
            if name != "eventbus":
                samples[name] += anyio.run(LATENCY[name], SAMPLES, backend=backend)
        return (), {}

    def measured() -> None:
        samples["eventbus"].extend(anyio.run(LATENCY["eventbus"], SAMPLES, backend=backend))

    benchmark.group = f"latency-{backend}"
    benchmark.pedantic(measured, setup=setup, rounds=ROUNDS, iterations=1, warmup_rounds=0)
    benchmark.extra_info.update(
        backend=backend,
        latency_us={
            name: {"p50": percentile(s, 0.5), "p99": percentile(s, 0.99)}
            for name, s in samples.items()
        },
    )
