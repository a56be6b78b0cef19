"""The ``ctx`` argument every handler receives."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._engine import Engine
    from ._event import StoredEvent
    from ._run import Run
    from ._step import Execution, Group, GroupSync, Step, StepSync


class _ContextBase:
    __slots__ = (
        "_base_logger",
        "_engine",
        "_execution",
        "_group",
        "_logger",
        "_run",
        "_step",
        "attempt",
        "event",
        "events",
        "function_id",
        "run_id",
    )

    def __init__(
        self,
        event: StoredEvent,
        events: list[StoredEvent],
        run_id: str,
        attempt: int,
        function_id: str,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
        engine: Engine,
        run: Run,
        execution: Execution,
    ) -> None:
        self.event = event
        self.events = events
        self.run_id = run_id
        self.attempt = attempt
        self.function_id = function_id
        self._base_logger = logger
        self._logger: logging.LoggerAdapter[logging.Logger] | None = None
        # The step tools are made on first use: handlers without steps pay nothing.
        self._engine = engine
        self._run = run
        self._execution = execution
        self._step: Any = None
        self._group: Any = None

    def _async_step(self) -> Step:
        from ._step import Step

        step = Step(self._engine, self._run, self._execution)
        step._ctx = self
        return step

    def _async_group(self) -> Group:
        from ._step import Group

        return Group(self._engine, self._run, self._execution)

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

    __slots__ = ()

    @property
    def step(self) -> Step:
        """The durable step tools (:class:`eventbus.Step`)."""
        if self._step is None:
            self._step = self._async_step()
        return self._step  # type: ignore[no-any-return]

    @property
    def group(self) -> Group:
        """``parallel`` (:class:`eventbus.Group`)."""
        if self._group is None:
            self._group = self._async_group()
        return self._group  # type: ignore[no-any-return]


class ContextSync(_ContextBase):
    """What a synchronous handler (``def fn(ctx)``, run in a worker thread) knows.

    The same fields as :class:`Context`; ``ctx.step`` and ``ctx.group`` return values
    directly instead of awaitables.
    """

    __slots__ = ()

    @property
    def step(self) -> StepSync:
        """The durable step tools (:class:`eventbus.StepSync`)."""
        if self._step is None:
            from ._step import StepSync

            self._step = StepSync(self._async_step())
        return self._step  # type: ignore[no-any-return]

    @property
    def group(self) -> GroupSync:
        """``parallel`` for plain callables (:class:`eventbus.GroupSync`)."""
        if self._group is None:
            from ._step import GroupSync

            self._group = GroupSync(self._async_group(), self._engine.step_threads)
        return self._group  # type: ignore[no-any-return]
