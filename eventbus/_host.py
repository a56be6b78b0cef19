"""``StepHost``: all that the step tools (``ctx.step``, ``ctx.group``) see of the engine.

Contexts and step tools hold a ``StepHost``, never the engine: this protocol is the
whole of what they may ask of it, so the engine's internals can change without them, and
they can be driven by anything that implements it. ``eventbus._engine.Engine`` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import random
    from collections.abc import Callable

    import anyio

    from ._clock import Clock
    from ._expr import CompiledExpression
    from ._function import Function, Registry
    from ._harness import Harness
    from ._run import Run, StepRecord
    from .contrib.otel import Tracing


@runtime_checkable
class StepHost(Protocol):
    """What the step tools need from the engine running their run."""

    #: The engine's clock: step start and end times, sleeps and timeouts.
    clock: Clock
    #: Whether the store is durable: step results are then committed (``commit``)
    #: before the handler goes on, and every change is marked (``touch``).
    durable: bool
    #: eventbus.testing's mocks and records, or None.
    harness: Harness | None
    #: The functions ``step.invoke`` may start.
    registry: Registry
    #: With a seed under eventbus.testing: the start order of parallel branches.
    shuffler: random.Random | None
    #: The threads sync step functions run in.
    step_threads: anyio.CapacityLimiter
    #: Whether the engine has crashed (eventbus.testing): the step tools stop.
    crashed: bool
    #: eventbus.contrib.otel's spans when the client is instrumented, or None.
    tracing: Tracing | None

    def clamp_retry_after(self, delay_ms: int) -> int:
        """A RetryAfterError delay within Inngest's bounds."""

    def retry_step(self, run: Run, record: StepRecord, delay: int | None) -> None:
        """A step failed an attempt: execute ``run`` again after ``delay`` ms (None: the
        backoff policy's delay)."""

    def sleep_step(self, run: Run, record: StepRecord) -> None:
        """Suspend ``run`` until ``record.wake_ms``."""

    def wait_step(
        self, run: Run, record: StepRecord, name: str, expression: CompiledExpression | None
    ) -> None:
        """Suspend ``run`` until an event ``name`` matches ``expression`` (or times out)."""

    def invoke_step(
        self,
        run: Run,
        record: StepRecord,
        target: Function,
        data: dict[str, Any],
        v: str | None = None,
    ) -> None:
        """Start ``target`` and suspend ``run`` until it finishes (or times out)."""

    async def send_events(self, events: Any) -> list[str]:
        """Send events from a run (``step.send_event``); their ids."""

    def rerun(self, run: Run) -> None:
        """Execute ``run`` again at once, from the top (one new step per execution)."""

    def touch(self, run: Run, record: StepRecord | None = None) -> None:
        """``run`` (and ``record``) changed: a durable store writes it with its next commit."""

    async def commit(self) -> None:
        """Return once every change so far is in the (durable) store."""

    def yield_slot(self, run: Run) -> bool:
        """After a step: True if ``run`` should end this execution so that runs waiting
        for its concurrency slots go first (it is queued again, behind them)."""

    def branch_gate(self, run: Run, thunk: Callable[[], Any]) -> Callable[[], Any]:
        """``thunk`` (a parallel step of ``run``) gated by the run's concurrency limits:
        parallel steps count one slot each, as on Inngest."""

    def crash(self) -> None:
        """Stop the engine at once, as a killed process (eventbus.testing)."""
