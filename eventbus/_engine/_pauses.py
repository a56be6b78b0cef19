"""Pauses: runs waiting for an event (``wait_for_event``), for an invoked function to
finish (``invoke``, matched by correlation id), and cancel rules.

``Pauses.decide`` is pure: given an incoming event it says which pauses it ends and how
(resume with the event, fail the step with an error, cancel the run); the engine applies
that. No clock is read here and no run is changed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._expr import CLOCK_KEY

if TYPE_CHECKING:
    from .._event import StoredEvent
    from .._expr import CompiledExpression
    from .._run import Run, StepRecord

RESUME = "resume"
FAIL = "fail"
CANCEL = "cancel"


class Pause:
    """A run waiting in ``wait_for_event`` (an expression) or ``invoke`` (a correlation id),
    or a cancel rule of a run (``cancels``)."""

    __slots__ = ("cancels", "correlation_id", "done", "expression", "record", "run", "timer")

    def __init__(
        self,
        run: Run,
        record: StepRecord | None,
        expression: CompiledExpression | None,
        correlation_id: str | None = None,
        *,
        cancels: bool = False,
    ) -> None:
        self.run = run
        self.record = record
        self.expression = expression
        self.correlation_id = correlation_id
        self.cancels = cancels  # a cancel rule, not a step waiting
        self.done = False
        self.timer: int | None = None


class Pauses:
    """The pauses of an engine, by event name and by run."""

    __slots__ = ("by_name", "by_run")

    def __init__(self) -> None:
        self.by_name: dict[str, list[Pause]] = {}
        self.by_run: dict[str, list[tuple[str, Pause]]] = {}

    def __bool__(self) -> bool:
        return bool(self.by_name)

    def add(self, name: str, pause: Pause) -> None:
        self.by_name.setdefault(name, []).append(pause)
        self.by_run.setdefault(pause.run.run_id, []).append((name, pause))

    def remove(self, name: str, pause: Pause) -> None:
        pause.done = True
        waiting = self.by_name[name]
        waiting.remove(pause)
        if not waiting:
            del self.by_name[name]
        mine = self.by_run[pause.run.run_id]
        mine.remove((name, pause))
        if not mine:
            del self.by_run[pause.run.run_id]

    def of_run(self, run: Run) -> list[tuple[str, Pause]]:
        return list(self.by_run.get(run.run_id, ()))

    def decide(self, stored: StoredEvent, clock: Any) -> list[tuple[Pause, str, Any]]:
        """The pauses ``stored`` ends, each with what to do: (pause, RESUME, output),
        (pause, FAIL, error) or (pause, CANCEL, None); in the order they were added."""
        waiting = self.by_name.get(stored.name)
        if not waiting:
            return []
        decisions: list[tuple[Pause, str, Any]] = []
        candidate = stored.expr_view()
        for pause in waiting:
            if pause.correlation_id is not None:
                data = stored.data
                if data.get("correlation_id") != pause.correlation_id:
                    continue
                if "error" in data:
                    decisions.append((pause, FAIL, data["error"]))
                else:
                    decisions.append((pause, RESUME, data.get("result")))
                continue
            run = pause.run
            if any(e.internal_id == stored.internal_id for e in run.events):
                continue  # a run's own triggering event never resumes it
            if pause.expression is not None and not pause.expression.matches(
                {"event": run.event.expr_view(), "async": candidate, CLOCK_KEY: clock}
            ):
                continue
            decisions.append((pause, CANCEL if pause.cancels else RESUME, stored.wire()))
        return decisions
