"""The ``ctx`` argument every handler receives."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._event import StoredEvent
    from ._step import Group, GroupSync, Step, StepSync


class _ContextBase:
    __slots__ = ("_base_logger", "_logger", "attempt", "event", "events", "function_id", "run_id")

    step: Any
    group: Any

    def __init__(
        self,
        event: StoredEvent,
        events: list[StoredEvent],
        run_id: str,
        attempt: int,
        function_id: str,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
        step: Any,
        group: Any,
    ) -> None:
        self.step = step
        self.group = group
        self.event = event
        self.events = events
        self.run_id = run_id
        self.attempt = attempt
        self.function_id = function_id
        self._base_logger = logger
        self._logger: logging.LoggerAdapter[logging.Logger] | None = None

    @property
    def logger(self) -> logging.LoggerAdapter[logging.Logger]:
        """A logger whose records carry ``run_id`` and ``function_id`` in ``extra``."""
        if self._logger is None:
            self._logger = logging.LoggerAdapter(
                self._base_logger,  # type: ignore[arg-type]
                {"run_id": self.run_id, "function_id": self.function_id},
            )
        return self._logger

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} run_id={self.run_id!r} event={self.event.name!r} "
            f"attempt={self.attempt}>"
        )


class Context(_ContextBase):
    """What an ``async def`` handler knows about its run.

    ``event`` is the triggering event (its ``id`` is the user's id, or the engine id when
    none was given), ``events`` every event of the run, ``run_id`` the run's id,
    ``attempt`` the 0-based attempt number (of the step being retried, or of the function
    body), ``logger`` a logger that tags records with the run and function ids,
    ``step`` the durable step tools and ``group`` the parallel helper.
    """

    __slots__ = ("group", "step")

    step: Step
    group: Group


class ContextSync(_ContextBase):
    """What a synchronous handler (``def fn(ctx)``, run in a worker thread) knows.

    The same fields as :class:`Context`; ``ctx.step`` and ``ctx.group`` return values
    directly instead of awaitables.
    """

    __slots__ = ("group", "step")

    step: StepSync
    group: GroupSync
