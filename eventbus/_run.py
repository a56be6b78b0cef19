"""Run records: what happened when a function ran for an event."""

from __future__ import annotations

import datetime
import enum
from typing import TYPE_CHECKING, Any

from ._clock import ms_to_datetime

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

    @property
    def is_finished(self) -> bool:
        """True for the final states."""
        return self is RunStatus.COMPLETED or self is RunStatus.FAILED

    def __repr__(self) -> str:
        return f"RunStatus.{self.name}"


class Run:
    """One run of a function for an event.

    ``output`` is the handler's return value after a JSON round trip; ``error`` is
    ``{"name", "message", "stack"}`` of the last failure; ``attempts`` counts the attempts
    made so far. Times are aware UTC datetimes on the client clock.
    """

    __slots__ = (
        "_ended_ms",
        "_started_ms",
        "attempts",
        "error",
        "events",
        "function",
        "output",
        "run_id",
        "status",
    )

    def __init__(self, run_id: str, function: Function, events: tuple[StoredEvent, ...]) -> None:
        self.run_id = run_id
        self.function = function
        self.events = events
        self.status = RunStatus.QUEUED
        self.output: Any = None
        self.error: dict[str, Any] | None = None
        self.attempts = 0
        self._started_ms: int | None = None
        self._ended_ms: int | None = None

    @property
    def function_id(self) -> str:
        """The full function id, ``f"{app_id}-{fn_id}"``."""
        return self.function.id

    @property
    def event_ids(self) -> tuple[str, ...]:
        """The internal ids (as returned by ``send``) of the events that started this run."""
        return tuple(event.internal_id for event in self.events)

    @property
    def event(self) -> StoredEvent:
        """The (first) event that started this run."""
        return self.events[0]

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
        if self.status is RunStatus.FAILED and self.error is not None:
            extra = f" error={self.error.get('name')}: {self.error.get('message')!r}"
        elif self.status is RunStatus.COMPLETED:
            extra = f" output={self.output!r}"
            if len(extra) > 80:
                extra = extra[:77] + "..."
        return (
            f"<Run fn={self.function.local_id!r} status={self.status.name} "
            f"attempts={self.attempts}{extra}>"
        )
