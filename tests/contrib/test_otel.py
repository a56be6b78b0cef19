"""eventbus.contrib.otel: the span tree of runs and steps, checked with the OpenTelemetry
SDK's in-memory exporter (each test has its own tracer provider, so nothing global)."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import eventbus
from eventbus.contrib.otel import instrument, uninstrument
from tests.helpers import make_client, on

pytestmark = pytest.mark.anyio

T0 = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def provider_for(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


def parent_of(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def trace_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.trace_id


async def test_a_flow_is_one_trace(exporter: InMemorySpanExporter) -> None:
    """A send under a span fans out to two functions; one retries a step, sleeps and
    invokes a third function, whose run sends an event from a step that starts a fourth:
    every span is in the sender's trace, each run under the span that started it."""
    provider = provider_for(exporter)
    client = make_client(clock=eventbus.VirtualClock(T0))
    instrument(client, tracer_provider=provider)
    attempts: list[int] = []

    @client.create_function(fn_id="quote", trigger=on("shop/checkout"))
    async def quote(ctx: eventbus.Context) -> dict[str, int]:
        return {"cents": 100}

    @client.create_function(fn_id="checkout", retries=2, trigger=on("shop/checkout"))
    async def checkout(ctx: eventbus.Context) -> Any:
        def charge() -> str:
            attempts.append(ctx.attempt)
            if len(attempts) == 1:
                raise ConnectionError("the bank timed out")
            return "ch_1"

        charged = await ctx.step.run("charge", charge)
        await ctx.step.sleep("cool-off", "1m")
        priced = await ctx.step.invoke("price", function=quote_again, data={"n": 1})
        return [charged, priced]

    @client.create_function(fn_id="quote-again", trigger=on("shop/never"))
    async def quote_again(ctx: eventbus.Context) -> dict[str, int]:
        await ctx.step.send_event("notify", {"name": "shop/priced", "data": {}})
        return {"cents": 200}

    @client.create_function(fn_id="audit", trigger=on("shop/priced"))
    async def audit(ctx: eventbus.Context) -> None:
        inner = trace.get_current_span()
        assert inner.get_span_context().is_valid  # the handler's own code sees its run span
        return None

    tracer = provider.get_tracer("the-app")
    async with client:
        with tracer.start_as_current_span("POST /checkout") as request:
            await client.send({"name": "shop/checkout", "data": {"cart": 1}})
        await client.settle(advance_time=True)
    runs = {run.function.local_id: run for run in client.runs()}
    assert runs["checkout"].output == ["ch_1", {"cents": 200}]
    spans = exporter.get_finished_spans()
    request_span = by_name(spans, "POST /checkout")[0]
    assert {trace_id(span) for span in spans} == {request.get_span_context().trace_id}

    (checkout_span,) = by_name(spans, "test-app-checkout")
    (quote_span,) = by_name(spans, "test-app-quote")
    assert parent_of(checkout_span) == parent_of(quote_span) == span_id(request_span)
    assert checkout_span.kind is trace.SpanKind.CONSUMER
    attributes = dict(checkout_span.attributes or {})
    assert attributes["sdk.run.id"] == runs["checkout"].run_id
    assert attributes["sys.function.slug"] == "test-app-checkout"
    assert attributes["sys.event.ids"] == runs["checkout"].event.internal_id
    assert attributes["sys.function.status.code"] == 300
    assert checkout_span.status.status_code is StatusCode.OK

    (charge,) = by_name(spans, "charge")
    assert parent_of(charge) == span_id(checkout_span)
    assert dict(charge.attributes or {})["sys.step.opcode"] == "StepRun"
    assert [e.name for e in charge.events] == ["attempt", "exception", "attempt"]
    assert [dict(e.attributes or {}).get("sys.step.attempt") for e in charge.events] == [
        0,
        None,
        1,
    ]
    assert dict(charge.events[1].attributes or {})["exception.type"] == "ConnectionError"
    assert dict(charge.attributes or {})["sys.step.attempt"] == 1

    (sleep,) = by_name(spans, "sleep")
    assert parent_of(sleep) == span_id(checkout_span)
    assert dict(sleep.attributes or {})["sys.step.opcode"] == "Sleep"
    assert sleep.end_time is not None
    assert sleep.start_time is not None
    assert sleep.end_time - sleep.start_time == 60 * 10**9  # the virtual minute

    (invoke,) = by_name(spans, "invoke")
    assert dict(invoke.attributes or {})["sys.step.invoke.fn.id"] == "test-app-quote-again"
    (invoked,) = by_name(spans, "test-app-quote-again")
    assert parent_of(invoked) == span_id(invoke)
    (notify,) = by_name(spans, "notify")
    assert parent_of(notify) == span_id(invoked)
    (audit_span,) = by_name(spans, "test-app-audit")
    assert parent_of(audit_span) == span_id(notify)
    assert len(spans) == 9  # the request, 4 runs, charge, sleep, invoke and notify


async def test_failures_and_cancellations_end_their_spans(
    exporter: InMemorySpanExporter,
) -> None:
    client = make_client()
    instrument(client, tracer_provider=provider_for(exporter))

    @client.create_function(fn_id="fails", retries=0, trigger=on("app/fail"))
    async def fails(ctx: eventbus.Context) -> None:
        await ctx.step.run("boom", lambda: 1 / 0)

    @client.create_function(
        fn_id="batched",
        trigger=on("app/batch"),
        batch_events=eventbus.Batch(max_size=2, timeout="1s"),
    )
    async def batched(ctx: eventbus.Context) -> int:
        await ctx.step.sleep_until(
            "already", datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
        )
        return len(ctx.events)

    @client.create_function(fn_id="waits", trigger=on("app/wait"))
    async def waits(ctx: eventbus.Context) -> None:
        await ctx.step.wait_for_event("paid", event="app/paid", timeout="1h", match="data.id")

    async with client:
        await client.send([{"name": "app/fail"}, {"name": "app/wait", "data": {"id": 1}}])
        await client.send([{"name": "app/batch"}, {"name": "app/batch"}])
        await client.settle()
        (waiting,) = client.runs(function_id="test-app-waits")
        assert client.cancel(waiting.run_id)
        await client.settle()
    spans = exporter.get_finished_spans()
    (failed,) = by_name(spans, "test-app-fails")
    assert failed.status.status_code is StatusCode.ERROR
    assert dict(failed.attributes or {})["sys.function.status.code"] == 400
    assert "exception" in [event.name for event in failed.events]
    (boom,) = by_name(spans, "boom")
    assert boom.status.status_code is StatusCode.ERROR
    assert dict(boom.attributes or {})["sys.step.status"] == "Failed"
    (cancelled,) = by_name(spans, "test-app-waits")
    assert dict(cancelled.attributes or {})["sys.function.status.code"] == 500
    (batch,) = by_name(spans, "test-app-batched")
    (batch_run,) = client.runs(function_id="test-app-batched")
    assert dict(batch.attributes or {})["sys.batch.id"] == batch_run.batch_id
    assert by_name(spans, "already") == []  # a sleep already over: no span
    (wait,) = by_name(spans, "wait")
    attributes = dict(wait.attributes or {})
    assert attributes["sys.step.opcode"] == "WaitForEvent"
    assert attributes["sys.step.wait.event"] == "app/paid"
    assert attributes["sys.step.wait.expr"] == "event.data.id == async.data.id"
    assert parent_of(wait) == span_id(cancelled)


async def test_a_send_outside_any_span_starts_a_new_trace_per_run(
    exporter: InMemorySpanExporter,
) -> None:
    client = make_client()
    instrument(client, tracer_provider=provider_for(exporter))

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> int:
        return 1

    async with client:
        await client.send([{"name": "app/e"}, {"name": "app/e"}])
        await client.settle()
    spans = exporter.get_finished_spans()
    assert [span.name for span in spans] == ["test-app-f", "test-app-f"]
    assert all(span.parent is None for span in spans)
    assert len({trace_id(span) for span in spans}) == 2


async def test_uninstrumented_clients_make_no_spans(exporter: InMemorySpanExporter) -> None:
    client = make_client()
    instrument(client, tracer_provider=provider_for(exporter))
    uninstrument(client)

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> int:
        return await ctx.step.run("s", lambda: 1)

    async with client:
        await client.send({"name": "app/e"})
        await client.settle()
        assert client.engine.tracing is None  # type: ignore[union-attr]
    assert exporter.get_finished_spans() == ()


async def test_a_queued_run_cancelled_before_it_starts_has_no_span(
    exporter: InMemorySpanExporter,
) -> None:
    client = make_client(clock=eventbus.VirtualClock(T0))
    instrument(client, tracer_provider=provider_for(exporter))

    @client.create_function(fn_id="later", trigger=on("app/e"))
    async def later(ctx: eventbus.Context) -> int:
        return 1

    future = int((T0 + datetime.timedelta(hours=1)).timestamp() * 1000)
    async with client:
        await client.send({"name": "app/e", "ts": future})  # queued until its ts
        await client.settle()
        (run,) = client.runs()
        assert client.cancel(run.run_id)
        await client.settle()
    assert exporter.get_finished_spans() == ()


async def test_sync_handlers_and_parallel_steps_are_traced(
    exporter: InMemorySpanExporter,
) -> None:
    client = make_client()
    instrument(client, tracer_provider=provider_for(exporter))

    @client.create_function(fn_id="sync", trigger=on("app/sync"))
    def sync(ctx: eventbus.ContextSync) -> int:
        assert trace.get_current_span().get_span_context().is_valid  # in the thread too
        return ctx.step.run("add", lambda: 1 + 1)

    @client.create_function(fn_id="branches", trigger=on("app/par"))
    async def branches(ctx: eventbus.Context) -> Any:
        async def one(name: str) -> str:
            return await ctx.step.run(name, lambda: name)

        return await ctx.group.parallel((lambda: one("a"), lambda: one("b")))

    async with client:
        await client.send([{"name": "app/sync"}, {"name": "app/par"}])
        await client.settle()
    assert {run.output for run in client.runs() if run.function.local_id == "sync"} == {2}
    spans = exporter.get_finished_spans()
    (sync_span,) = by_name(spans, "test-app-sync")
    (add,) = by_name(spans, "add")
    assert parent_of(add) == span_id(sync_span)
    (par,) = by_name(spans, "test-app-branches")
    assert {parent_of(s) for s in by_name(spans, "a") + by_name(spans, "b")} == {span_id(par)}


def test_the_no_op_provider_installs_nothing_and_the_proxy_is_traced_through() -> None:
    client = make_client()
    instrument(client, tracer_provider=trace.NoOpTracerProvider())
    assert client.tracing is None  # nothing would ever be recorded
    instrument(client, tracer_provider=trace.ProxyTracerProvider())
    assert client.tracing is not None  # an SDK may be configured later
