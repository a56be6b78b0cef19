"""The ``ctx`` argument every handler receives."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from ._event import StoredEvent
    from ._host import StepHost
    from ._run import Run
    from ._step import Execution, Group, GroupSync, Step, StepSync


_LOG = logging.getLogger("eventbus")


class RunLogger:
    """``ctx.logger``: the client's logger, for one execution of a handler.

    As the SDK's logger: quiet while the execution replays steps that already ran (each
    line is logged once per run, not once per replay). A standard ``logging`` logger gets
    ``run_id``, ``function_id``, ``event_id`` and ``attempt`` in ``extra``; any other
    logger-like object (structlog's, say) gets the call as made. A logger that raises
    loses that line, never the run.
    """

    __slots__ = ("_base", "_execution", "_extra")

    def __init__(self, base: Any, extra: dict[str, Any], execution: Execution) -> None:
        self._base = base
        self._extra = extra
        self._execution = execution

    def _emit(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self._execution.replaying:
            return
        target = getattr(self._base, method, None)
        if target is None:
            return
        try:
            if isinstance(self._base, (logging.Logger, logging.LoggerAdapter)):
                kwargs["extra"] = {**self._extra, **(kwargs.get("extra") or {})}
                kwargs.setdefault("stacklevel", 3)
            target(*args, **kwargs)
        except Exception:
            _LOG.warning(
                "ctx.logger: the client's logger failed; the line was dropped", exc_info=True
            )

    def debug(self, *args: Any, **kwargs: Any) -> None:
        self._emit("debug", args, kwargs)

    def info(self, *args: Any, **kwargs: Any) -> None:
        self._emit("info", args, kwargs)

    def warning(self, *args: Any, **kwargs: Any) -> None:
        self._emit("warning", args, kwargs)

    def error(self, *args: Any, **kwargs: Any) -> None:
        self._emit("error", args, kwargs)

    def exception(self, *args: Any, **kwargs: Any) -> None:
        self._emit("exception", args, kwargs)

    def critical(self, *args: Any, **kwargs: Any) -> None:
        self._emit("critical", args, kwargs)

    def log(self, *args: Any, **kwargs: Any) -> None:
        self._emit("log", args, kwargs)

    def __repr__(self) -> str:
        return f"<RunLogger of {self._base!r} run_id={self._extra['run_id']!r}>"


class _ContextBase:
    __slots__ = (
        "_base_logger",
        "_engine",
        "_every",
        "_execution",
        "_group",
        "_logger",
        "_run",
        "_step",
        "attempt",
        "event",
        "function_id",
        "run_id",
    )

    def __init__(
        self,
        event: StoredEvent,
        events: StoredEvent | tuple[StoredEvent, ...],
        run_id: str,
        attempt: int,
        function_id: str,
        logger: Any,
        engine: StepHost,
        run: Run,
        execution: Execution,
    ) -> None:
        self.event = event
        # The run's events as it holds them: the list is made if the handler asks.
        self._every: StoredEvent | tuple[StoredEvent, ...] | list[StoredEvent] = events
        self.run_id = run_id
        self.attempt = attempt
        self.function_id = function_id
        self._base_logger = logger
        self._logger: Any = None
        # The step tools are made on first use: handlers without steps pay nothing.
        self._engine = engine
        self._run = run
        self._execution = execution
        self._step: Any = None
        self._group: Any = None

    @property
    def events(self) -> list[StoredEvent]:
        """The events of the run: ``[ctx.event]``, or a batch's, in arrival order."""
        every = self._every
        if type(every) is list:
            return every
        made = list(every) if type(every) is tuple else [cast("StoredEvent", every)]
        self._every = made
        return made

    def _async_step(self) -> Step:
        from ._step import Step

        step = Step(self._engine, self._run, self._execution)
        step._ctx = self
        return step

    def _async_group(self) -> Group:
        from ._step import Group

        return Group(self._engine, self._run, self._execution)

    @property
    def logger(self) -> Any:
        """The client's logger for this run (see :class:`RunLogger`); middleware may
        replace it in ``transform_input``, as the SDK's may."""
        if self._logger is None:
            self._logger = RunLogger(
                self._base_logger,
                {
                    "run_id": self.run_id,
                    "function_id": self.function_id,
                    "event_id": self.event.internal_id,
                    "attempt": self.attempt,
                },
                self._execution,
            )
        return self._logger

    @logger.setter
    def logger(self, logger: Any) -> None:
        self._logger = logger

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
