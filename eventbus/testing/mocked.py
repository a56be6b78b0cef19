"""A drop-in for ``inngest.experimental.mocked``, on the real engine.

Change ``from inngest.experimental import mocked`` to ``from eventbus.testing import
mocked`` and the same tests run, with the engine's real semantics: retries counted per
step, ``NonRetriableError`` not retried, ``StepError`` catchable, step results
round-tripped through JSON. ``trigger`` also works inside a running event loop as
``await trigger_async(...)``.

Functions made with the official SDK (``inngest.Inngest(...).create_function``), its
``inngest.Event`` and its ``mocked.Inngest`` client are accepted as they are (with the
``inngest`` extra): the handler gets the SDK's context and step API, run on eventbus.

As in the official runner: sleeps resolve at once, ``wait_for_event`` and ``invoke``
must be stubbed (``UnstubbedStepError`` otherwise), a stub replaces a step's result
(the step's function is not called), and a list of events becomes one run with
``ctx.events``. Events the function sends are recorded; functions they would trigger
are not run.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from typing import Any

import anyio
import attrs

from .._backend import current_backend
from .._client import Inngest as _Inngest
from .._clock import VirtualClock
from .._engine import Engine, Harness
from .._errors import UsageError
from .._event import prepare_batch
from .._function import Function, Registry
from .._options import FLOW_CONTROL_OPTIONS
from .._run import RunStatus
from .._step import UnstubbedStepError
from ..transports import MockTransport

__all__ = ("Inngest", "Status", "Timeout", "UnstubbedStepError", "trigger", "trigger_async")


class Status(enum.Enum):
    """How the triggered run ended."""

    COMPLETED = "Completed"
    FAILED = "Failed"


#: Stub value for a ``wait_for_event`` that times out (the step returns ``None``).
Timeout: Any = object()


class Inngest(_Inngest):
    """A client for tests of senders: records what is sent, runs nothing."""

    def __init__(self, app_id: str, **kwargs: Any) -> None:
        kwargs.setdefault("transport", MockTransport())
        super().__init__(app_id, **kwargs)


@attrs.frozen
class Result:
    """What ``trigger`` returns: the run's ``status``, ``output`` and ``error``."""

    error: BaseException | None
    output: Any
    status: Status


#: As the official runner: triggers and flow control play no part in a trigger().
_IGNORED_BY_TRIGGER = ("cron", *FLOW_CONTROL_OPTIONS)


def _function(fn: object, client: object) -> Function:
    if isinstance(fn, Function):
        return fn
    from ..contrib._sdk import from_inngest, is_sdk_function

    if is_sdk_function(fn):
        return from_inngest(fn, client=client, ignore=_IGNORED_BY_TRIGGER)[0]
    raise UsageError(
        "trigger() takes the Function that create_function returned (eventbus's or the "
        f"official SDK's), got {fn!r}"
    )


async def trigger_async(
    fn: Any,
    event: Any,
    client: Any,
    *,
    step_stubs: Mapping[str, object] | None = None,
) -> Result:
    """Run ``fn`` once for ``event`` (or a list of events) and return its result.

    ``fn`` is an eventbus or official SDK Function; ``event`` an Event, ``inngest.Event``
    or mapping, or a list of them; ``client`` either library's (mocked) client, used for
    its logger.
    """
    fn = _function(fn, client)
    events = event if isinstance(event, list) else [event]
    batch = prepare_batch(events, max_events=5000, max_bytes=10**8, allow_reserved=True)
    registry = Registry()
    registry.add(fn)
    engine = Engine(
        registry=registry,
        clock=VirtualClock(),
        logger=getattr(client, "logger", None) or logging.getLogger("eventbus"),
        event_retention=10_000,
        seed=0,
        # What the run sends is stored; no other function runs.
        validate=lambda sent: prepare_batch(sent, max_events=5000, max_bytes=10**8),
    )
    harness = Harness()
    engine.attach(harness)
    harness.require_stubs = True
    for step_id, value in (step_stubs or {}).items():
        stub = None if value is Timeout else value
        # A stub is the step's result, never called (as in the official runner).
        harness.step_mocks[fn.id, step_id] = (lambda v: lambda *a, **k: v)(stub)
    async with engine.serving():
        run = engine.run_function(fn, batch.decoded)
        await engine.settle(advance_time=True)
    if isinstance(run.exception, UnstubbedStepError):
        raise run.exception
    if run.status is RunStatus.COMPLETED:
        return Result(error=None, output=run.output, status=Status.COMPLETED)
    return Result(error=run.exception, output=None, status=Status.FAILED)


def trigger(
    fn: Any,
    event: Any,
    client: Any,
    *,
    step_stubs: Mapping[str, object] | None = None,
) -> Result:
    """The blocking twin of :func:`trigger_async` (not inside a running event loop)."""
    if current_backend() is None:
        return anyio.run(lambda: trigger_async(fn, event, client, step_stubs=step_stubs))
    raise UsageError(
        "trigger() was called inside a running event loop; use `await trigger_async(...)`"
    )
