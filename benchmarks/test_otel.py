"""The price of eventbus.contrib.otel per run: the same runs (one event, one function, two
``step.run`` calls) not instrumented (the code path of an install without the ``otel``
extra: nothing imports OpenTelemetry then), instrumented with OpenTelemetry's no-op
tracer provider (which ``instrument`` recognises: it installs nothing), with the API's
default provider before any SDK is configured (a proxy whose spans record nothing), and
with the SDK's tracer provider recording every span (a run span and two step spans per
run, to an exporter that keeps nothing). 2,000 runs a
round; the other modes' rounds run, timed, in the setup of each round, interleaved.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import anyio
import pytest

import eventbus

RUNS = 2_000
MODES = ("off", "noop", "proxy", "sdk")


def provider(mode: str) -> Any:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    if mode == "noop":
        return trace.NoOpTracerProvider()
    if mode == "proxy":
        return trace.ProxyTracerProvider()  # the API's default before an SDK is configured

    class Discard(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    sdk = TracerProvider()
    sdk.add_span_processor(SimpleSpanProcessor(Discard()))
    return sdk


async def run(mode: str) -> None:
    client = eventbus.Inngest("bench", event_retention=10_000)
    if mode != "off":
        from eventbus.contrib.otel import instrument

        instrument(client, tracer_provider=provider(mode))

    @client.create_function(fn_id="f", trigger=eventbus.TriggerEvent(event="bench/e"))
    async def handler(ctx: eventbus.Context) -> int:
        first = await ctx.step.run("a", lambda: 1)
        return first + await ctx.step.run("b", lambda: 2)

    async with client:
        for n in range(RUNS):
            await client.send({"name": "bench/e", "data": {"n": n}})
        await client.settle()


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("mode", MODES[1:])
def test_tracing_overhead(benchmark: Any, mode: str, backend: str) -> None:
    off: list[float] = []

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        start = time.perf_counter()
        anyio.run(run, "off", backend=backend)
        off.append(time.perf_counter() - start)
        return (run, mode), {"backend": backend}

    benchmark.group = f"otel-{backend}"
    benchmark.pedantic(anyio.run, setup=setup, rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(
        kind="otel", mode=mode, backend=backend, runs=RUNS, off_seconds=statistics.median(off)
    )
