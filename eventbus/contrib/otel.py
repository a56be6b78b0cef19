"""OpenTelemetry traces of runs and steps (``pip install 'eventbus[otel]'``).

``instrument(client)`` makes every engine the client starts from then on emit spans:

- a span per run, named after the function (``f"{app_id}-{fn_id}"``, as Inngest names a
  run's span after the function's slug), from its first execution to its end, with
  Inngest's attributes (``sys.function.id``, ``sys.function.slug``, ``sdk.run.id``,
  ``sys.event.ids``, ``sys.function.status.code``: 200 running, 300 completed, 400
  failed, 500 cancelled); a failed run's span has status ERROR and its exception;
- a child span per step, named after the step: ``step.run`` and ``step.send_event``
  steps from their first attempt to their result, each attempt a span event and each
  failed attempt's exception recorded; ``sleep``, ``wait`` and ``invoke`` spans from the
  moment the run suspends to the moment it resumes (``sys.step.opcode``, ``sys.step.id``,
  ``sys.step.attempt`` and the sleep, wait or invoke attributes, as on Inngest).

The trace context flows with the events: a run starts under the span that was current
where its event was sent (``client.send`` in a request handler, ``step.send_event`` in
another run's step), and an invoked function's run under the invoking step's span, so
one trace shows a whole flow. While a handler executes, its run's span is the current
span (and a step's span while the step's function runs): spans the handler's own code
starts nest under them.

Without ``instrument`` nothing of this runs: the engine checks one attribute. With
OpenTelemetry's ``NoOpTracerProvider`` nothing is installed either (nothing would be
recorded); with the API's default provider, before an SDK is configured, the hooks run
(an SDK may be set later) and cost what the API's no-op spans cost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from .._run import StepStatus
from .._step import _OPCODES  # each kind of step as Inngest's opcode (sys.step.opcode)

if TYPE_CHECKING:
    from opentelemetry.util.types import AttributeValue

    from .._client import Inngest
    from .._run import Run, StepRecord

__all__ = ["Tracing", "instrument", "uninstrument"]

#: Inngest's run status codes (sys.function.status.code).
_STATUS_CODES = {"Running": 200, "Completed": 300, "Failed": 400, "Cancelled": 500}
#: Span names of the steps a run suspends in, as Inngest's.
_SUSPENDED_NAMES = {"sleep": "sleep", "wait_for_event": "wait", "invoke": "invoke"}


def _ns(ms: int) -> int:
    return ms * 1_000_000


class Tracing:
    """The spans of one client's runs; made by :func:`instrument`."""

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        from .. import __version__

        self.tracer = trace.get_tracer("eventbus", __version__, tracer_provider=tracer_provider)
        #: run id -> the context its span starts under (captured where its event was sent)
        self._parents: dict[str, otel_context.Context] = {}
        self._runs: dict[str, trace.Span] = {}
        #: run id -> step id -> the open span of a step of that run
        self._steps: dict[str, dict[str, trace.Span]] = {}

    # ------------------------------------------------------------------ sends

    def capture(self) -> otel_context.Context | None:
        """The current context, if a span is recording in it (where an event is sent)."""
        if trace.get_current_span().get_span_context().is_valid:
            return otel_context.get_current()
        return None

    def run_created(self, run: Run, parent: otel_context.Context | None) -> None:
        if parent is not None:
            self._parents[run.run_id] = parent

    def invoked(self, invoker: Run, step_id: str, run: Run) -> None:
        """``run`` was started by ``invoker``'s invoke step: it starts under that span."""
        span = self._steps[invoker.run_id][step_id]  # opened as the invoker suspended
        self._parents[run.run_id] = trace.set_span_in_context(span)

    # ------------------------------------------------------------------ runs

    def _run_span(self, run: Run, now_ms: int) -> trace.Span:
        span = self._runs.get(run.run_id)
        if span is None:
            function = run.function
            attributes: dict[str, AttributeValue] = {
                "sys.function.id": function.id,
                "sys.function.slug": function.id,
                "sys.app.id": function.app_id,
                "sdk.run.id": run.run_id,
                "sys.event.ids": ",".join(event.internal_id for event in run.events),
                "sys.function.status.code": _STATUS_CODES["Running"],
            }
            if run.batch_id is not None:
                attributes["sys.batch.id"] = run.batch_id
            span = self.tracer.start_span(
                function.id,
                context=self._parents.pop(run.run_id, None) or otel_context.Context(),
                kind=trace.SpanKind.CONSUMER,
                attributes=attributes,
                start_time=_ns(now_ms),
            )
            self._runs[run.run_id] = span
        return span

    def enter(self, run: Run, now_ms: int) -> object:
        """An execution of ``run`` starts: its span (started on the first) is current."""
        return otel_context.attach(trace.set_span_in_context(self._run_span(run, now_ms)))

    def leave(self, token: object) -> None:
        otel_context.detach(token)  # type: ignore[arg-type]

    def run_ended(self, run: Run, now_ms: int) -> None:
        """End the run's span (and any step span it left open) with its outcome."""
        self._parents.pop(run.run_id, None)
        for left_open in self._steps.pop(run.run_id, {}).values():
            left_open.end(_ns(now_ms))
        span = self._runs.pop(run.run_id, None)
        if span is None:
            return  # this engine never executed it (cancelled while queued, say): no span
        status = run.status.value
        span.set_attribute("sys.function.status.code", _STATUS_CODES.get(status, 0))
        if status == "Failed":
            error = run.error or {}
            if run.exception is not None:  # pragma: no branch - None if it failed elsewhere
                span.record_exception(run.exception, timestamp=_ns(now_ms))
            span.set_status(trace.Status(trace.StatusCode.ERROR, str(error.get("message"))))
        elif status == "Completed":
            span.set_status(trace.Status(trace.StatusCode.OK))
        span.end(_ns(now_ms))

    # ------------------------------------------------------------------ steps

    def _step_span(self, run: Run, record: StepRecord, name: str) -> trace.Span:
        steps = self._steps.setdefault(run.run_id, {})
        span = steps.get(record.id)
        if span is None:
            parent = self._runs.get(run.run_id)
            span = self.tracer.start_span(
                name,
                context=trace.set_span_in_context(parent) if parent is not None else None,
                attributes={
                    "sys.step.id": record.id,
                    "sys.step.display.name": record.id,
                    "sys.step.opcode": _OPCODES.get(record.kind, "StepRun"),
                    "sys.function.slug": run.function.id,
                    "sdk.run.id": run.run_id,
                    "sys.step.attempt.max": run.function.retries + 1,
                },
                start_time=_ns(record._started_ms),
            )
            steps[record.id] = span
        return span

    def step_attempt(self, run: Run, record: StepRecord, attempt: int, now_ms: int) -> object:
        """An attempt of a step's function starts: its span is current while it runs."""
        span = self._step_span(run, record, record.id)
        span.set_attribute("sys.step.attempt", attempt)
        span.add_event("attempt", {"sys.step.attempt": attempt}, timestamp=_ns(now_ms))
        return otel_context.attach(trace.set_span_in_context(span))

    def step_attempt_failed(
        self, run: Run, record: StepRecord, exc: BaseException, token: object, now_ms: int
    ) -> None:
        """The attempt raised (it is retried, or the step fails: see step_ended)."""
        otel_context.detach(token)  # type: ignore[arg-type]
        self._steps[run.run_id][record.id].record_exception(exc, timestamp=_ns(now_ms))

    def step_ended(self, run: Run, record: StepRecord, now_ms: int) -> None:
        """The step completed or failed for good."""
        span = self._steps.get(run.run_id, {}).pop(record.id, None)
        if span is None:
            return  # it had no span (a sleep that was already over, say)
        span.set_attribute("sys.step.status", record.status.value)
        if record.status is StepStatus.FAILED:
            message = (record.error or {}).get("message")
            span.set_status(trace.Status(trace.StatusCode.ERROR, str(message)))
        else:
            span.set_status(trace.Status(trace.StatusCode.OK))
        span.end(_ns(now_ms))

    def step_suspended(self, run: Run, record: StepRecord, attributes: dict[str, Any]) -> None:
        """The run suspends in a sleep, a wait or an invoke: its span opens."""
        span = self._step_span(run, record, _SUSPENDED_NAMES[record.kind])
        span.set_attributes(attributes)


def instrument(client: Inngest, *, tracer_provider: trace.TracerProvider | None = None) -> Tracing:
    """Trace the runs of every engine ``client`` starts from now on (the global tracer
    provider unless one is given); returns the :class:`Tracing`."""
    tracing = Tracing(tracer_provider)
    provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
    # OpenTelemetry's no-op provider records nothing, ever: then nothing is installed. (The
    # global default before an SDK is configured is a proxy, which may start recording
    # later: that one is traced through.)
    client.tracing = None if isinstance(provider, trace.NoOpTracerProvider) else tracing
    return tracing


def uninstrument(client: Inngest) -> None:
    """Engines ``client`` starts from now on trace nothing."""
    client.tracing = None
