"""The exception tree of eventbus.

Every error the library raises derives from :class:`EventbusError`::

    EventbusError
    ├── EventValidationError      (also ValueError)   an event was rejected by send()
    ├── FunctionConfigError       (also ValueError)   create_function() got an invalid config
    │   └── ExpressionError                            an expression does not compile
    ├── UsageError                (also RuntimeError) the API was used in a way that cannot work
    │   └── EngineNotRunningError                      send() before the engine was started
    ├── NonRetriableError                              raised by handlers: fail now, no retry
    ├── RetryAfterError                                raised by handlers: retry after a delay
    ├── StepError                                      a step failed for good (catchable)
    └── SendEventsError                                a remote Event API did not take a send

    ConfigWarning                 (a UserWarning)     a setting was changed to what Inngest does

Messages say what was wrong, with the offending value, and what to do about it.
"""

from __future__ import annotations

import datetime
from typing import Any


class EventbusError(Exception):
    """Base class of every error raised by eventbus."""


class ConfigWarning(UserWarning):
    """A setting was accepted but changed to what Inngest does (``retries=25`` -> 20), or
    an input was accepted with something dropped (an unknown event field)."""


class EventValidationError(EventbusError, ValueError):
    """An event given to ``send`` was invalid; nothing from that send was accepted.

    ``index`` is the position of the offending event in the send (``None`` when the
    problem concerns the whole request), ``field`` the offending field.
    """

    def __init__(self, message: str, *, index: int | None = None, field: str | None = None) -> None:
        self.index = index
        self.field = field
        self.reason = message
        prefix = ""
        if index is not None:
            prefix = f"event [{index}]: "
        if field is not None:
            prefix += f"{field}: "
        super().__init__(prefix + message)

    def at(self, index: int) -> EventValidationError:
        """Return a copy of this error located at position ``index`` of a send."""
        return EventValidationError(self.reason, index=index, field=self.field)


class FunctionConfigError(EventbusError, ValueError):
    """``create_function`` (or a trigger or config class) was given an invalid value."""


class ExpressionError(FunctionConfigError):
    """An expression could not be compiled; the message points at the offending column."""

    def __init__(self, message: str, *, expression: str, position: int) -> None:
        self.expression = expression
        self.position = position
        caret = " " * position + "^"
        super().__init__(f"{message} at column {position + 1}\n    {expression}\n    {caret}")


class UsageError(EventbusError, RuntimeError):
    """The API was called in a way that cannot work (the message says how to fix it)."""


class EngineNotRunningError(UsageError):
    """An event was sent while the in-process engine was not running."""


class NonRetriableError(EventbusError):
    """Raise from a handler to fail the run at once, without further retries."""

    def __init__(self, message: str | None = None, quiet: bool = False) -> None:
        self.message = message or "non-retriable error"
        self.quiet = quiet
        super().__init__(self.message)


class RetryAfterError(EventbusError):
    """Raise from a handler to retry after ``retry_after``.

    ``retry_after`` is an int of milliseconds, a ``timedelta`` or a ``datetime`` (a naive
    one is local time, as the SDK reads it). The delay is clamped to 1 second .. 24
    hours, as on Inngest; the retry still counts as an attempt.
    """

    def __init__(
        self,
        message: str | None,
        retry_after: int | datetime.timedelta | datetime.datetime,
        quiet: bool = False,
    ) -> None:
        if isinstance(retry_after, bool) or not isinstance(
            retry_after, (int, datetime.timedelta, datetime.datetime)
        ):
            # A UsageError, so the run fails saying why (a TypeError would be retried).
            raise UsageError(
                f"retry_after must be int milliseconds, a timedelta or a datetime, "
                f"not {retry_after!r}"
            )
        if isinstance(retry_after, datetime.datetime) and retry_after.tzinfo is None:
            retry_after = retry_after.astimezone()  # naive means local time, as in the SDK
        self.message = message or "retry requested"
        self.retry_after = retry_after
        self.quiet = quiet
        super().__init__(self.message)

    def delay_ms(self, now_ms: int) -> int:
        """The requested delay in milliseconds from ``now_ms``, before clamping."""
        value = self.retry_after
        if isinstance(value, datetime.datetime):
            return int(value.timestamp() * 1000) - now_ms
        if isinstance(value, datetime.timedelta):
            return int(value.total_seconds() * 1000)
        return value


class StepError(EventbusError):
    """A step failed after its last attempt; raised into the handler at that step.

    ``name``, ``message`` and ``stack`` describe the original error. Catch it to handle
    the failure; uncaught, it fails the run (without further retries).
    """

    def __init__(
        self, message: str, name: str, stack: str | None = None, *, step_id: str = ""
    ) -> None:
        self.message = message
        self.name = name
        self.stack = stack
        self.step_id = step_id
        super().__init__(message)  # str() is the original message, as in the SDK

    def __repr__(self) -> str:
        return f"StepError(step_id={self.step_id!r}, name={self.name!r}, message={self.message!r})"


class SendEventsError(EventbusError):
    """A remote Event API refused a send, or could not be reached.

    ``status`` is the HTTP status (None when no answer came), ``body`` the response text,
    and ``ids`` the ids of the events that did get through before the failure.
    """

    def __init__(self, message: str, *, status: int | None, body: str, ids: list[str]) -> None:
        self.status = status
        self.body = body
        self.ids = ids
        super().__init__(message)


def error_info(exc: BaseException) -> dict[str, Any]:
    """The JSON shape Inngest uses for an error: ``{"name", "message", "stack"}``."""
    import traceback

    message = getattr(exc, "message", None)
    if not isinstance(message, str):
        message = str(exc)
    # A step's failure reports the original error's name (as the SDK), not "StepError".
    name = exc.name if isinstance(exc, StepError) else type(exc).__name__
    return {
        "name": name,
        "message": message,
        "stack": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    }
