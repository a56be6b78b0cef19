"""Run records: what happened when a function ran for an event."""

from __future__ import annotations

import datetime
import enum
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from ._clock import ms_to_datetime
from ._event import make_stored
from ._function import FINISHED_EVENT, INVOKED_EVENT

if TYPE_CHECKING:
    from ._event import StoredEvent
    from ._function import Function


class RunStatus(enum.Enum):
    """The state of a run, named as Inngest names them."""

    #: Created, waiting for a worker (or for its event's future ``ts``).
    QUEUED = "Queued"
    #: Executing, or waiting to retry after a failed attempt.
    RUNNING = "Running"
    #: The handler returned; ``output`` holds its JSON value.
    COMPLETED = "Completed"
    #: Every attempt failed (or a NonRetriableError was raised); ``error`` says why.
    FAILED = "Failed"
    #: Suspended in ``ctx.step.sleep`` / ``sleep_until``; holds no worker.
    SLEEPING = "Sleeping"
    #: Suspended in ``ctx.step.wait_for_event`` or ``invoke``; holds no worker.
    WAITING = "Waiting"
    #: Cancelled (a cancel rule, ``client.cancel`` or a timeout) between two steps.
    CANCELLED = "Cancelled"

    #: True for the final states (COMPLETED, FAILED, CANCELLED).
    is_finished: bool
    #: The member's index in definition order.
    position: int

    def __repr__(self) -> str:
        return f"RunStatus.{self.name}"


# A plain attribute, not a property or a set lookup: hashing an Enum runs Python code,
# and the engine asks this several times per run.
for _position, _status in enumerate(RunStatus):
    _status.is_finished = _status in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)
    _status.position = _position  # its index in definition order, for lookup tables


class StepStatus(enum.Enum):
    """The state of one step in a run's journal."""

    #: Executing, or failed and waiting for its next attempt.
    RUNNING = "Running"
    #: Done; ``output`` is memoized and never computed again.
    COMPLETED = "Completed"
    #: Failed for good; replays raise the same StepError.
    FAILED = "Failed"
    #: A sleep that has not ended yet.
    SLEEPING = "Sleeping"
    #: A wait for an event that has not matched or timed out yet.
    WAITING = "Waiting"

    def __repr__(self) -> str:
        return f"StepStatus.{self.name}"


# The members as module constants, for the engine's hot paths: on Python 3.11 reading a
# member off its Enum class goes through the metaclass's attribute hook (about 0.1 us,
# several times per run); a global costs nothing.
RUN_QUEUED = RunStatus.QUEUED
RUN_RUNNING = RunStatus.RUNNING
RUN_COMPLETED = RunStatus.COMPLETED
RUN_FAILED = RunStatus.FAILED
RUN_CANCELLED = RunStatus.CANCELLED
RUN_SLEEPING = RunStatus.SLEEPING
RUN_WAITING = RunStatus.WAITING
STEP_RUNNING = StepStatus.RUNNING
STEP_COMPLETED = StepStatus.COMPLETED
STEP_FAILED = StepStatus.FAILED
STEP_SLEEPING = StepStatus.SLEEPING
STEP_WAITING = StepStatus.WAITING


class StepRecord:
    """One step of a run's journal.

    ``id`` is the step id as used in the journal (the n-th reuse of an id in one run is
    ``f"{id}:{n}"``), ``kind`` one of ``"run"``, ``"sleep"``, ``"send_event"``,
    ``"wait_for_event"``.
    """

    __slots__ = (
        "_ended_ms",
        "_pos",
        "_started_ms",
        "attempts",
        "error",
        "id",
        "input",
        "kind",
        "output",
        "status",
        "wait_for",
        "wake_ms",
    )

    def __init__(self, step_id: str, kind: str, started_ms: int) -> None:
        self.id = step_id
        self.kind = kind
        self.status = STEP_RUNNING
        self.attempts = 0
        self.output: Any = None
        self.error: dict[str, Any] | None = None
        #: ``step.run``'s arguments as JSON (``[args, kwargs]``) when it was given any
        #: (and they are JSON), for the dev UI and the store; None otherwise.
        self.input: Any = None
        self.wake_ms: int | None = None
        #: What a wait_for_event step waits for: (event name, if expression or None).
        self.wait_for: tuple[str, str | None] | None = None
        self._pos = 0  # its place in the journal, for stores
        self._started_ms = started_ms
        self._ended_ms: int | None = None

    @property
    def started_at(self) -> datetime.datetime:
        """When the step first started."""
        return ms_to_datetime(self._started_ms)

    @property
    def ended_at(self) -> datetime.datetime | None:
        """When the step completed or failed for good."""
        return None if self._ended_ms is None else ms_to_datetime(self._ended_ms)

    def __repr__(self) -> str:
        extra = ""
        if self.status is STEP_COMPLETED and self.kind != "sleep":
            extra = f" output={self.output!r}"
            if len(extra) > 60:
                extra = extra[:57] + "..."
        elif self.error is not None:
            extra = f" error={self.error.get('name')}: {self.error.get('message')!r}"
        return (
            f"<Step {self.id!r} kind={self.kind} status={self.status.name} "
            f"attempts={self.attempts}{extra}>"
        )


T = TypeVar("T")


class _Rare:
    """The fields of a run that only some runs use (flow control, batches, failures),
    made on the first write of one: most runs never need it, and a run record that
    outlives the run is smaller without them."""

    __slots__ = (
        "_claims",
        "_lenders",
        "_lent",
        "_priority",
        "_retrying",
        "_singleton",
        "_slotted",
        "batch_id",
        "exception",
        "rerun_of",
    )

    def __init__(self) -> None:
        self.batch_id: str | None = None
        self.rerun_of: str | None = None
        self.exception: BaseException | None = None
        self._retrying: set[str] | None = None
        self._singleton: tuple[str, str] | None = None
        self._claims: tuple[tuple[str, int], ...] | None = None
        self._slotted = False
        self._lent = False
        self._lenders: Any = None
        self._priority: int | None = None


class _RareField(Generic[T]):
    """A field of :class:`Run` kept in its ``_Rare`` part: reads give ``default`` while
    the run has none, and writing the default makes none."""

    def __init__(self, default: T) -> None:
        self.default = default

    def __set_name__(self, owner: type, name: str) -> None:
        self._get = _Rare.__dict__[name].__get__
        self._set = _Rare.__dict__[name].__set__

    @overload
    def __get__(self, run: None, owner: type) -> _RareField[T]: ...
    @overload
    def __get__(self, run: Run, owner: type) -> T: ...
    def __get__(self, run: Run | None, owner: type) -> T | _RareField[T]:
        if run is None:
            return self
        rare = run._rare
        return self.default if rare is None else self._get(rare)

    def __set__(self, run: Run, value: T) -> None:
        rare = run._rare
        if rare is None:
            if value is self.default:
                return
            rare = run._rare = _Rare()
        self._set(rare, value)


class Run:
    """One run of a function for an event.

    ``output`` is the handler's return value after a JSON round trip; ``error`` is
    ``{"name", "message", "stack"}`` of the last failure; ``attempts`` counts the attempts
    made so far. Times are aware UTC datetimes on the client clock.
    """

    __slots__ = (
        "_body_retry",
        "_cancel_requested",
        "_done_steps",
        "_due_ms",
        "_ended_ms",
        "_events",
        "_executing",
        "_journal",
        "_rare",
        "_rerun",
        "_scheduled",
        "_scope",
        "_started_ms",
        "_timers",
        "attempts",
        "error",
        "function",
        "next_attempt",
        "output",
        "run_id",
        "status",
    )

    #: The id of the batch it runs (``batch_events=``), or None.
    batch_id = _RareField[str | None](None)
    #: The exception that failed the run, when it failed in this process.
    exception = _RareField[BaseException | None](None)
    #: The id of the run this one reruns (``client.rerun``, ``client.replay``), or None.
    rerun_of = _RareField[str | None](None)
    #: Steps awaiting a retry (the next execution targets them); None when none ever did.
    _retrying = _RareField[set[str] | None](None)
    #: (function id, key) of the singleton slot it holds, or None.
    _singleton = _RareField[tuple[str, str] | None](None)
    #: Concurrency: the slots its executions claim (queue key, limit), once known;
    #: whether it holds them; whether a parallel step uses the execution's own slot,
    #: and the parallel steps waiting for it.
    _claims = _RareField[tuple[tuple[str, int], ...] | None](None)
    _slotted = _RareField[bool](False)
    _lent = _RareField[bool](False)
    _lenders = _RareField[Any](None)
    #: ``priority=``: its factor (seconds), once evaluated.
    _priority = _RareField[int | None](None)

    def __init__(
        self, run_id: str, function: Function, events: StoredEvent | tuple[StoredEvent, ...]
    ) -> None:
        self.run_id = run_id
        self.function = function
        # One event is held as itself: a tuple per run would be one more object that
        # outlives it, for the cyclic collector to walk (most runs have one event).
        self._events: StoredEvent | tuple[StoredEvent, ...] = (
            events[0] if type(events) is tuple and len(events) == 1 else events
        )
        self._rare: _Rare | None = None  # batch_id, exception, flow control: see _Rare
        self.status = RUN_QUEUED
        self.output: Any = None
        self.error: dict[str, Any] | None = None
        self.attempts = 0
        self._started_ms: int | None = None
        self._ended_ms: int | None = None
        self._journal: dict[str, StepRecord] | None = None  # made on the first step
        #: The attempt number the next execution sees as ``ctx.attempt``.
        self.next_attempt = 0
        self._body_retry = False
        self._cancel_requested = False
        self._done_steps = 0  # journal records COMPLETED or FAILED
        #: Pending engine timers, cancelled when the run ends (None while there are none).
        self._timers: set[int] | None = None
        self._scheduled = False  # queued or executing
        self._executing = False
        self._scope: Any = None  # the cancel scope of the execution under way
        self._rerun = False
        #: When a timer is to queue it again (a retry's backoff, a future-dated event).
        self._due_ms: int | None = None

    @property
    def journal(self) -> dict[str, StepRecord]:
        """Step records by journal id, in the order the steps first ran."""
        journal = self._journal
        if journal is None:
            journal = self._journal = {}
        return journal

    @property
    def steps(self) -> list[StepRecord]:
        """The journal: one record per step, in the order they first ran."""
        return [] if self._journal is None else list(self._journal.values())

    @property
    def function_id(self) -> str:
        """The full function id, ``f"{app_id}-{fn_id}"``."""
        return self.function.id

    @property
    def event_ids(self) -> tuple[str, ...]:
        """The internal ids (as returned by ``send``) of the events that started this run."""
        return tuple(event.internal_id for event in self.events)

    @property
    def events(self) -> tuple[StoredEvent, ...]:
        """The events that started this run (one, or a batch's), in arrival order."""
        events = self._events
        return events if type(events) is tuple else (events,)  # type: ignore[return-value]

    @property
    def event(self) -> StoredEvent:
        """The (first) event that started this run."""
        events = self._events
        return events[0] if type(events) is tuple else events  # type: ignore[return-value]

    @property
    def started_at(self) -> datetime.datetime | None:
        """When the first attempt started, or None if it has not."""
        return None if self._started_ms is None else ms_to_datetime(self._started_ms)

    @property
    def ended_at(self) -> datetime.datetime | None:
        """When the run completed or failed, or None while it is active."""
        return None if self._ended_ms is None else ms_to_datetime(self._ended_ms)

    def __repr__(self) -> str:
        extra = ""
        if self.status is RUN_FAILED and self.error is not None:
            extra = f" error={self.error.get('name')}: {self.error.get('message')!r}"
        elif self.status is RUN_COMPLETED:
            extra = f" output={self.output!r}"
            if len(extra) > 80:
                extra = extra[:77] + "..."
        steps = f" steps={len(self._journal)}" if self._journal else ""
        return (
            f"<Run fn={self.function.local_id!r} status={self.status.name}{steps} "
            f"attempts={self.attempts}{extra}>"
        )


def finish_payload(run: Run) -> dict[str, Any]:
    """The data every system event about the end of ``run`` shares (Inngest's fields)."""
    events = [event.wire() for event in run.events]
    payload = {
        "function_id": run.function.id,
        "run_id": run.run_id,
        "event": events[0],
        "events": events,
        "_inngest": {"status": run.status.value},  # "Completed", "Failed", "Cancelled"
    }
    first = run.event
    if first.name == INVOKED_EVENT:
        correlation_id = first.data.get("_inngest", {}).get("correlation_id")
        if correlation_id is not None:
            payload["correlation_id"] = correlation_id
    return payload


def finished_event(run: Run, internal_id: str) -> StoredEvent:
    """The ``inngest/function.finished`` event of the ended ``run``, with the id it was
    given as it ended: built whenever it is needed, it is the same event (received, and
    dated, when the run ended)."""
    payload = finish_payload(run)
    if run.status is RUN_COMPLETED:
        payload["result"] = run.output
    else:
        payload["error"] = run.error
    ended = run._ended_ms
    assert ended is not None, "only an ended run has a finished event"
    return make_stored(
        FINISHED_EVENT, payload, internal_id, ended, None, {}, internal_id, ended, False
    )
