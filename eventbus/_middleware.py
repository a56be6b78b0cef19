"""Middleware, with the official SDK's classes, hooks and order.

A middleware is a class (or any factory) called as ``factory(client, raw_request)`` at the
start of every execution of a handler; the instance's hooks then fire around that
execution, as the SDK fires them around each request Inngest makes to an app:

- ``transform_input(ctx, function, steps)``: first, in order; ``steps`` is the
  :class:`StepMemos` of the steps that already ran (a hook may replace ``memo.data``), and
  ``ctx.logger`` may be replaced.
- ``before_execution()``: in order, once new code starts (after the last memoized step).
- ``before_send_events(events)`` / ``after_send_events(result)``: around
  ``step.send_event`` and ``client.send`` (the events may be changed in place).
- ``after_execution()``: in reverse order, once a new step has ended (or the handler
  returned).
- ``transform_output(result)``: in reverse order, with the new step's (or the handler's)
  output or error; changing ``result.output`` changes what is recorded.
- ``before_response()``: in order, last.

A function with middleware executes as the SDK's functions do on Inngest: one new step
per execution, then the handler runs again from the top, with the steps that already ran
memoized. Functions without middleware keep running straight through.

Hooks may be plain or ``async def`` methods on either base class. A hook that raises
fails that execution as if the handler had raised (it is retried as the function's
``retries`` say); it cannot be caught by the handler.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs

from ._errors import FunctionConfigError, UsageError


class Opcode(enum.Enum):
    """What a step did, as the SDK's ``server_lib.Opcode`` names it."""

    INVOKE = "InvokeFunction"
    PLANNED = "StepPlanned"
    SLEEP = "Sleep"
    STEP_RUN = "StepRun"
    STEP_ERROR = "StepError"
    STEP_FAILED = "StepFailed"
    WAIT_FOR_EVENT = "WaitForEvent"


class _Empty:
    """No output (a step that suspended the run, or a handler that raised)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<no output>"


EMPTY: Any = _Empty()


@attrs.define
class TransformOutputStepInfo:
    """The step a :class:`TransformOutputResult` is about."""

    id: str
    op: Opcode
    opts: dict[str, object] | None = None


@attrs.define
class TransformOutputResult:
    """A step's or the handler's outcome, for ``transform_output``: changes to ``error``
    and ``output`` are kept, changes to ``step`` are not."""

    error: Exception | None
    output: object
    step: TransformOutputStepInfo | None

    def has_output(self) -> bool:
        return self.output is not EMPTY


@attrs.define
class StepOutput:
    """One memoized step: its JSON ``data``, or its ``error`` (name, message, stack)."""

    data: object = None
    error: dict[str, Any] | None = None


class StepMemos:
    """The steps an execution replays, by step id (``transform_input``'s ``steps``)."""

    __slots__ = ("_memos",)

    def __init__(self, memos: dict[str, StepOutput]) -> None:
        self._memos = memos

    @property
    def size(self) -> int:
        return len(self._memos)

    def values(self) -> Iterator[StepOutput]:
        return iter(self._memos.values())

    def get(self, step_id: str) -> StepOutput | None:
        return self._memos.get(step_id)

    def __repr__(self) -> str:
        return f"<StepMemos {list(self._memos)}>"


@attrs.define
class SendEventsResult:
    """What ``after_send_events`` gets: the ids sent, or the error that stopped them."""

    ids: list[str] = attrs.field(factory=list)
    error: str | None = None


class Middleware:
    """Base class for middleware with ``async def`` hooks (all optional)."""

    def __init__(self, client: Any, raw_request: object) -> None:
        self.client = client
        #: The request Inngest made, on a framework; ``None`` in-process.
        self.raw_request = raw_request

    async def after_execution(self) -> None:
        return None

    async def after_send_events(self, result: SendEventsResult) -> None:
        return None

    async def before_execution(self) -> None:
        return None

    async def before_response(self) -> None:
        return None

    async def before_send_events(self, events: list[Any]) -> None:
        return None

    async def transform_input(self, ctx: Any, function: Any, steps: StepMemos) -> None:
        return None

    async def transform_output(self, result: TransformOutputResult) -> None:
        return None


class MiddlewareSync:
    """Base class for middleware with plain hooks (all optional)."""

    def __init__(self, client: Any, raw_request: object) -> None:
        self.client = client
        self.raw_request = raw_request

    def after_execution(self) -> None:
        return None

    def after_send_events(self, result: SendEventsResult) -> None:
        return None

    def before_execution(self) -> None:
        return None

    def before_response(self) -> None:
        return None

    def before_send_events(self, events: list[Any]) -> None:
        return None

    def transform_input(self, ctx: Any, function: Any, steps: StepMemos) -> None:
        return None

    def transform_output(self, result: TransformOutputResult) -> None:
        return None


class HookError(BaseException):
    """A middleware hook raised ``error``: unwinds the handler (which must not catch it)
    so the engine can treat the execution as failed with ``error``."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


class Kit:
    """The objects hooks receive. eventbus's own here; the SDK bridge gives the SDK's."""

    empty: Any = EMPTY

    def memos(self, outputs: dict[str, StepOutput]) -> Any:
        return StepMemos(outputs)

    def memo_data(self, memos: Any, key: str) -> tuple[bool, Any]:
        memo = memos.get(key)
        return (False, None) if memo is None else (True, memo.data)

    def result(self, error: Exception | None, output: Any, step: tuple[str, str] | None) -> Any:
        info = None if step is None else TransformOutputStepInfo(step[0], Opcode(step[1]))
        return TransformOutputResult(error, output, info)

    def send_result(self, ids: list[str], error: str | None) -> Any:
        return SendEventsResult(ids, error)

    def events_out(self, events: list[Any]) -> list[Any]:
        return events

    def events_in(self, events: list[Any]) -> list[Any]:
        return events

    def error_out(self, error: Exception | None) -> Exception | None:
        """An error as the middleware should see it."""
        return error

    def error_in(self, error: Exception) -> Exception:
        """An error a middleware left in a result, as the engine should see it."""
        return error


DEFAULT_KIT = Kit()

#: A middleware factory: ``factory(client, raw_request)`` returns the instance.
Factory = Callable[[Any, object], Any]


@attrs.frozen
class MiddlewareSpec:
    """What a function's executions need to make their hooks: the function's own
    factories, after those of ``client.middleware`` (read at each execution, so
    ``add_middleware`` applies to functions made before it, as in the SDK)."""

    factories: tuple[Factory, ...]
    client: Any
    #: What ``transform_input`` gets as ``function`` (the function as the app knows it).
    function: Any = None
    kit: Kit = DEFAULT_KIT


def check_middleware(middleware: object, where: str) -> tuple[Factory, ...]:
    """``middleware=`` of a client or function, checked: a list of factories."""

    if middleware is None:
        return ()
    if not isinstance(middleware, (list, tuple)):
        raise FunctionConfigError(
            f"{where} middleware= must be a list of middleware classes (subclasses of "
            f"eventbus.Middleware or eventbus.MiddlewareSync), got {middleware!r}"
        )
    for item in middleware:
        if not callable(item):
            raise FunctionConfigError(
                f"{where} middleware= holds {item!r}, which is not a middleware class; pass "
                "the class itself (it is made anew for every execution), not an instance"
            )
    return tuple(middleware)


class Hooks:
    """The middleware instances of one execution, and the state of its hooks."""

    __slots__ = ("_began", "_list", "kit", "memos", "spec")

    def __init__(self, spec: MiddlewareSpec) -> None:
        self.spec = spec
        self.kit = spec.kit
        self._list: list[Any] = []
        self._began = False
        self.memos: Any = None
        factories = (*(getattr(spec.client, "middleware", None) or ()), *spec.factories)
        try:
            self._list = [factory(spec.client, None) for factory in factories]
        except Exception as exc:
            raise HookError(exc) from exc

    async def _each(self, name: str, args: Sequence[Any], reverse: bool = False) -> None:
        ordered = reversed(self._list) if reverse else self._list
        try:
            for mw in ordered:
                hook = getattr(mw, name, None)
                if hook is None:
                    continue
                value = hook(*args)
                if inspect.isawaitable(value):
                    await value
        except Exception as exc:
            raise HookError(exc) from exc

    async def transform_input(
        self, ctx: Any, function: Any, outputs: dict[str, StepOutput]
    ) -> None:
        self.memos = self.kit.memos(outputs)
        await self._each("transform_input", (ctx, function, self.memos))
        if not outputs:
            await self.before_execution()

    async def before_execution(self) -> None:
        if not self._began:
            self._began = True
            await self._each("before_execution", ())

    def memo_data(self, key: str, recorded: Any) -> Any:
        """A replayed step's data, as ``transform_input`` left it."""
        if self.memos is None:
            return recorded
        found, data = self.kit.memo_data(self.memos, key)
        return data if found else recorded

    async def end(
        self,
        output: Any,
        error: Exception | None,
        step: tuple[str, str] | None,
        *,
        executed: bool = True,
    ) -> tuple[Any, Exception | None]:
        """The end of an execution: ``after_execution`` (unless the handler raised),
        ``transform_output``, ``before_response``; returns the output and error as
        ``transform_output`` left them."""
        kit = self.kit
        if executed:
            await self._each("after_execution", (), reverse=True)
        shown = kit.error_out(error)
        result = kit.result(shown, output, step)
        await self._each("transform_output", (result,), reverse=True)
        await self._each("before_response", ())
        changed = result.error
        if changed is None:
            return result.output, None
        return result.output, error if changed is shown else kit.error_in(changed)

    async def transform_step(self, output: Any, step: tuple[str, str]) -> Any:
        """A step that ended inside a parallel group: only ``transform_output``."""
        result = self.kit.result(None, output, step)
        await self._each("transform_output", (result,), reverse=True)
        return result.output

    async def around_send(self, events: list[Any], send: Callable[[list[Any]], Any]) -> Any:
        kit = self.kit
        shown = kit.events_out(events)
        await self._each("before_send_events", (shown,))
        try:
            ids = await send(kit.events_in(shown))
        except Exception as exc:
            await self._each("after_send_events", (kit.send_result([], str(exc)),), reverse=True)
            raise
        await self._each("after_send_events", (kit.send_result(list(ids), None),), reverse=True)
        return ids

    def around_send_sync(self, events: list[Any], send: Callable[[list[Any]], Any]) -> Any:
        """:meth:`around_send` for ``send_sync``: the hooks must be plain methods."""
        kit = self.kit
        shown = kit.events_out(events)
        self._each_sync("before_send_events", (shown,))
        try:
            ids = send(kit.events_in(shown))
        except Exception as exc:
            self._each_sync("after_send_events", (kit.send_result([], str(exc)),), reverse=True)
            raise
        self._each_sync("after_send_events", (kit.send_result(list(ids), None),), reverse=True)
        return ids

    def _each_sync(self, name: str, args: Sequence[Any], reverse: bool = False) -> None:
        for mw in reversed(self._list) if reverse else self._list:
            hook = getattr(mw, name, None)
            if hook is None:
                continue
            value = hook(*args)
            if inspect.isawaitable(value):
                close = getattr(value, "close", None)
                if callable(close):
                    close()
                raise UsageError(
                    f"{type(mw).__name__}.{name} is async, and send_sync cannot await it; "
                    "use `await client.send(...)`, or make the hook a plain method "
                    "(eventbus.MiddlewareSync)"
                )
