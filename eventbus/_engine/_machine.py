"""The run state machine: what a run does next, decided as a value.

Each function takes the few facts of a run's state a decision reads, and what just
happened (an execution of the handler ended, a step failed an attempt, a cancel came, a
pause timed out, a run was found unfinished at start); it returns what must happen. The
runtime (``_runtime``) applies it: records, timers, the queue, pauses, system events.

No anyio, no clock reads, no I/O here: the time and the random generator (retry jitter)
are arguments, so every decision is a plain function, tested as one
(tests/engine/test_machine.py), and property-tested against a model of Inngest's rules.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Iterable
from typing import Final, NamedTuple

import attrs

from .._function import CANCELLED_EVENT, FAILED_EVENT, FINISHED_EVENT
from .._run import RUN_CANCELLED, RUN_FAILED, STEP_SLEEPING, STEP_WAITING, RunStatus, StepStatus
from ._policy import backoff_ms


class Outcome(enum.Enum):
    """How one execution of a run's handler ended."""

    #: It returned: the run completes with the output.
    RETURNED = "returned"
    #: A step tool suspended it (a sleep, a wait, an invoke, a step's retry, the next
    #: step of a function with middleware): that tool scheduled what comes next.
    SUSPENDED = "suspended"
    #: The run was cancelled while it executed.
    CANCELLED = "cancelled"
    #: It raised an error retrying cannot help (NonRetriableError, a StepError it did
    #: not catch, misuse of the API).
    FAILED = "failed"
    #: The engine ended it for good (too many steps, an unexpected step, ...).
    ABORTED = "aborted"
    #: It raised any other error (or a middleware hook did): the run is retried.
    ERRORED = "errored"
    #: It raised RetryAfterError: retried after the delay it gave.
    RETRY_AFTER = "retry_after"


class RunFacts(NamedTuple):
    """What the decisions read of a run (a tuple: made once per execution, cheaply)."""

    #: Executions of the handler's body so far, the one that just ended included.
    attempts: int
    #: The function's ``retries``.
    retries: int
    #: Already ended (cancelled while it executed, say).
    finished: bool = False
    #: The handler swallowed a step tool's suspension: the run is suspended anyway.
    interrupted: bool = False
    #: A cancel rule matched while it executed: it ends CANCELLED at this boundary.
    cancel_requested: bool = False


class Keep(enum.Enum):
    """Nothing to do: the run is already where it must be."""

    KEEP = "keep"


class Complete(enum.Enum):
    """End the run COMPLETED with the handler's output."""

    COMPLETE = "complete"


class Fail(enum.Enum):
    """End the run (or step) FAILED with its error."""

    FAIL = "fail"


@attrs.frozen
class Retry:
    """Execute again (the run, or the step's run targeting it) after ``delay_ms``."""

    delay_ms: int


KEEP: Final = Keep.KEEP
COMPLETE: Final = Complete.COMPLETE
FAIL: Final = Fail.FAIL
Decision = Keep | Complete | Fail | Retry


def retry_or_fail(
    attempts: int, retries: int, delay_ms: int | None, rng: random.Random
) -> Fail | Retry:
    """After failed attempt number ``attempts`` (1-based): retry, after ``delay_ms`` or
    the backoff policy's delay, while attempts remain; else fail. Runs and steps alike:
    ``retries`` retries make ``retries + 1`` attempts."""
    if attempts > retries:
        return FAIL
    return Retry(backoff_ms(attempts - 1, rng) if delay_ms is None else delay_ms)


def after_return(finished: bool, interrupted: bool, cancel_requested: bool) -> Decision:
    """What a run does after its handler returned: COMPLETE, unless it has ended already,
    was suspended all the same (a parallel step it started), or is to end CANCELLED at
    this boundary (the runtime finishes the cancellation)."""
    if finished or interrupted or cancel_requested:
        return KEEP
    return COMPLETE


def end_of_execution(
    facts: RunFacts, outcome: Outcome, rng: random.Random, delay_ms: int | None = None
) -> Decision:
    """What a run does after an execution of its handler ended with ``outcome``
    (``delay_ms``: a RetryAfterError's delay, already clamped)."""
    if outcome is Outcome.RETURNED:
        return after_return(facts.finished, facts.interrupted, facts.cancel_requested)
    if outcome is Outcome.SUSPENDED or outcome is Outcome.CANCELLED or facts.finished:
        return KEEP
    if outcome is Outcome.ABORTED:
        return FAIL
    if facts.interrupted or facts.cancel_requested:
        # Suspended all the same; or it ends CANCELLED at this boundary (the runtime
        # finishes the cancellation).
        return KEEP
    if outcome is Outcome.FAILED:
        return FAIL
    return retry_or_fail(facts.attempts, facts.retries, delay_ms, rng)


class CancelAction(enum.Enum):
    """What a cancel does to a run."""

    #: It had ended already: nothing (the cancel reports False).
    NONE = "none"
    #: End it CANCELLED now (it was queued, sleeping or waiting).
    END = "end"
    #: Cancel its handler where it awaits, and end it CANCELLED now.
    INTERRUPT = "interrupt"
    #: Let the executing step finish; it ends CANCELLED at its next step boundary.
    AT_NEXT_STEP = "at_next_step"


def cancel(*, finished: bool, executing: bool, interrupt: bool) -> CancelAction:
    """``client.cancel`` and finish timeouts interrupt; cancel rules (as on Inngest)
    end the run at its next step boundary."""
    if finished:
        return CancelAction.NONE
    if not executing:
        return CancelAction.END
    return CancelAction.INTERRUPT if interrupt else CancelAction.AT_NEXT_STEP


def announcements(status: RunStatus, *, system_run: bool) -> tuple[str, ...]:
    """The system events an ended run sends: ``inngest/function.finished``, and
    ``.failed`` or ``.cancelled`` after it; none for runs that system events started."""
    if system_run:
        return ()
    if status is RUN_FAILED:
        return (FINISHED_EVENT, FAILED_EVENT)
    if status is RUN_CANCELLED:
        return (FINISHED_EVENT, CANCELLED_EVENT)
    return (FINISHED_EVENT,)


class TimeoutAction(enum.Enum):
    """What a pause's deadline does when it comes."""

    #: The pause ended before (its event came): nothing.
    NONE = "none"
    #: A cancel rule's window closed: the rule is dropped, the run goes on.
    EXPIRE = "expire"
    #: An invoke timed out: the step fails (InngestInvokeTimeoutError).
    FAIL_STEP = "fail_step"
    #: A wait timed out: the step completes with None.
    RESUME_EMPTY = "resume_empty"


def pause_deadline(*, done: bool, cancels: bool, invoke: bool) -> TimeoutAction:
    if done:
        return TimeoutAction.NONE
    if cancels:
        return TimeoutAction.EXPIRE
    return TimeoutAction.FAIL_STEP if invoke else TimeoutAction.RESUME_EMPTY


@attrs.frozen
class Resume:
    """How an unfinished run found in the store at start is taken up."""

    #: (step id, status, kind) of the journal records to re-arm: sleeps (a timer at their
    #: wake time), waits and invokes (their pause, with what remains of the timeout).
    rearm: tuple[tuple[str, StepStatus, str], ...]
    #: When not suspended: execute at once (None) or at this time (a retry's backoff, a
    #: future-dated event), from its journal.
    due_ms: int | None
    #: Whether it is suspended (sleeping or waiting): it executes when that ends.
    suspended: bool


def resume(
    records: Iterable[tuple[str, StepStatus, str]], due_ms: int | None, now_ms: int
) -> Resume:
    """Take up a run that was unfinished when the engine stopped (or the process died):
    what it was suspended on is re-armed; otherwise it executes again, replaying its
    journal, at its due time (at once if that has passed)."""
    rearm = tuple(
        (step_id, status, kind)
        for step_id, status, kind in records
        if status is STEP_SLEEPING or status is STEP_WAITING
    )
    if rearm:
        return Resume(rearm, None, suspended=True)
    return Resume((), due_ms if due_ms is not None and due_ms > now_ms else None, False)
