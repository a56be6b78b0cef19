"""Official SDK functions on eventbus: ``from_inngest`` (extra ``eventbus[inngest]``).

An ``inngest.Function`` (what ``inngest.Inngest(...).create_function`` returns) becomes an
eventbus Function with the same id, name, triggers (and expressions), retries, cancel
rules, timeouts and ``on_failure`` handler. The configuration is read through the SDK's
public ``get_config()``, the same call its ``serve()`` makes; the handler itself is only
reachable as ``_handler`` (the SDK's own mocked runner reads it there too), so the
supported SDK versions are pinned (:data:`SUPPORTED_SDK`) and any other version is a
clear error.

The handler runs unchanged: it gets a context shaped like the SDK's (``attempt``,
``event`` and ``events`` as ``inngest.Event``, ``group``, ``job_id``, ``logger``,
``request_id``, ``run_id``, ``step``) whose step tools take the SDK's arguments (int
milliseconds or timedeltas, ``inngest.Event`` in ``send_event``, ``inngest.Function`` in
``invoke``, ``inngest.ParallelMode``) and run on eventbus's engine.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.metadata
import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .._context import ContextSync
from .._errors import (
    NonRetriableError,
    RetryAfterError,
    StepError,
    UsageError,
)
from .._function import Cancel, Function, Timeouts, TriggerEvent, make_function
from .._middleware import Kit, MiddlewareSpec, StepOutput
from .._options import FLOW_CONTROL_OPTIONS, TriggerCron
from .._step import ParallelMode

#: The ``inngest`` versions whose functions eventbus can read: (major, minor) pairs.
SUPPORTED_SDK = ((0, 5),)
_APP_URL = "http://eventbus.invalid/api/inngest"


def sdk_version() -> str:
    """The installed ``inngest`` version, or a UsageError saying how to install it."""
    try:
        return importlib.metadata.version("inngest")
    except importlib.metadata.PackageNotFoundError:
        raise UsageError(
            "functions of the official SDK need it installed: pip install 'eventbus[inngest]'"
        ) from None


def _check_version() -> None:
    version = sdk_version()
    parts = version.split(".")
    try:
        major_minor = (int(parts[0]), int(parts[1]))
    except (IndexError, ValueError):
        major_minor = (-1, -1)
    if major_minor not in SUPPORTED_SDK:
        supported = ", ".join(f"{a}.{b}.x" for a, b in SUPPORTED_SDK)
        raise UsageError(
            f"eventbus cannot read functions of inngest {version}; it supports inngest "
            f"{supported} (pip install 'inngest>=0.5,<0.6')"
        )


def is_sdk_function(value: object) -> bool:
    """True for an ``inngest.Function`` (without importing the SDK when it is absent)."""
    module = type(value).__module__
    if not module.startswith("inngest."):
        return False
    import inngest

    return isinstance(value, inngest.Function)


def sdk_event(event: Any) -> Any:
    """An eventbus event (stored or not) as an ``inngest.Event``."""
    import inngest

    return inngest.Event(
        name=event.name, data=dict(event.data), id=event.id or "", ts=event.ts or 0
    )


def from_sdk_error(exc: BaseException) -> BaseException | None:
    """An error of the SDK's, raised by SDK code, as the eventbus error the engine
    understands (None for any other exception)."""
    import inngest

    translated: BaseException
    if isinstance(exc, inngest.StepError):
        original = getattr(exc, "_eventbus_error", None)
        return original if original is not None else StepError(exc.message, exc.name, exc.stack)
    if isinstance(exc, inngest.NonRetriableError):
        translated = NonRetriableError(str(exc) if exc.args else None, exc.quiet)
    elif isinstance(exc, inngest.RetryAfterError):
        translated = RetryAfterError(str(exc) if exc.args else None, exc.retry_after, exc.quiet)
    else:
        return None
    setattr(translated, "_sdk_error", exc)  # noqa: B010 - a private back-reference
    return translated


def to_sdk_error(exc: BaseException) -> BaseException | None:
    """An eventbus error as SDK code (or the SDK itself) expects it: the SDK's own
    exception class, the very object when the SDK raised it first, or None for any other
    exception. The SDK recognises NonRetriableError and RetryAfterError by class."""
    import inngest

    original = getattr(exc, "_sdk_error", None)
    if original is not None:
        return original  # type: ignore[no-any-return]
    translated: BaseException
    if isinstance(exc, StepError):
        translated = inngest.StepError(exc.message, exc.name, exc.stack)
    elif isinstance(exc, NonRetriableError):
        translated = inngest.NonRetriableError(exc.message, exc.quiet)
    elif isinstance(exc, RetryAfterError):
        translated = inngest.RetryAfterError(exc.message, exc.retry_after, exc.quiet)
    else:
        return None
    setattr(translated, "_eventbus_error", exc)  # noqa: B010 - a private back-reference
    return translated


def translating(
    fn: Callable[..., Any], translate: Callable[[Exception], BaseException | None]
) -> Callable[..., Any]:
    """``fn`` (sync, or returning an awaitable) raising ``translate(exc)`` instead of an
    exception it raises, where ``translate`` gives one (None: the exception as it is).
    Both directions of the bridge use it at their boundary with the other library."""

    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            value = fn(*args, **kwargs)
        except Exception as exc:
            translated = translate(exc)
            if translated is None:
                raise
            raise translated from exc
        if not inspect.isawaitable(value):
            return value

        async def awaited() -> Any:
            try:
                return await value
            except Exception as exc:
                translated = translate(exc)
                if translated is None:
                    raise
                raise translated from exc

        return awaited()

    return call


def _sdk_errors_out(handler: Callable[..., Any]) -> Callable[..., Any]:
    """``handler`` (SDK code) with the SDK's errors translated as it raises them."""
    return translating(handler, from_sdk_error)


@contextlib.contextmanager
def _sdk_errors_in() -> Iterator[None]:
    """Around an eventbus step call made by SDK code: its errors as the SDK's."""
    try:
        yield
    except (StepError, NonRetriableError, RetryAfterError) as exc:
        translated = to_sdk_error(exc)
        if translated is None:
            raise
        raise translated from None


class _Serde:
    """The SDK client's serializer for ``output_type=``, as the SDK applies it: without
    a serializer on the client, ``output_type`` changes nothing."""

    def __init__(self, client: Any) -> None:
        self._client = client if getattr(client, "_serializer", None) is not None else None

    def wraps(self, handler: Callable[..., Any], output_type: Any) -> Callable[..., Any]:
        client = self._client
        if client is None or output_type is None:
            return handler

        def serialized(*args: Any) -> Any:
            value = handler(*args)
            if inspect.isawaitable(value):

                async def awaited() -> Any:
                    return client._serialize(await value, output_type)

                return awaited()
            return client._serialize(value, output_type)

        return serialized

    def load(self, value: Any, output_type: Any) -> Any:
        if self._client is None or output_type is None:
            return value
        return self._client._deserialize(value, output_type)


class _Step:
    """The SDK's async ``ctx.step`` API, on eventbus's step tools."""

    def __init__(self, step: Any, serde: _Serde) -> None:
        self._step = step
        self._serde = serde

    async def run(
        self, step_id: str, handler: Callable[..., Any], *handler_args: Any, output_type: Any = None
    ) -> Any:
        serde = self._serde
        wrapped = _sdk_errors_out(serde.wraps(handler, output_type))
        with _sdk_errors_in():
            value = await self._step.run(step_id, wrapped, *handler_args)
        return serde.load(value, output_type)

    async def sleep(self, step_id: str, duration: datetime.timedelta | int) -> None:
        await self._step.sleep(step_id, duration)

    async def sleep_until(self, step_id: str, until: datetime.datetime) -> None:
        await self._step.sleep_until(step_id, until)

    async def wait_for_event(
        self,
        step_id: str,
        *,
        event: str,
        if_exp: str | None = None,
        timeout: datetime.timedelta | int,
    ) -> Any:
        found = await self._step.wait_for_event(
            step_id, event=event, timeout=timeout, if_exp=if_exp
        )
        return None if found is None else sdk_event(found)

    async def send_event(self, step_id: str, events: Any) -> list[str]:
        items = events if isinstance(events, list) else [events]
        return list(await self._step.send_event(step_id, items))

    async def invoke(
        self,
        step_id: str,
        *,
        function: Any,
        data: Mapping[str, object] | None = None,
        timeout: datetime.timedelta | int | None = None,
        v: str | None = None,
    ) -> Any:
        # As the SDK does: the target's local id, on the calling client's app.
        with _sdk_errors_in():
            return await self._step.invoke_by_id(
                step_id, function_id=function.local_id, data=data, timeout=timeout, v=v
            )

    async def invoke_by_id(
        self,
        step_id: str,
        *,
        app_id: str | None = None,
        function_id: str,
        data: Mapping[str, object] | None = None,
        timeout: datetime.timedelta | int | None = None,
        v: str | None = None,
    ) -> Any:
        with _sdk_errors_in():
            return await self._step.invoke_by_id(
                step_id, function_id=function_id, app_id=app_id, data=data, timeout=timeout, v=v
            )


class _StepSync:
    """The SDK's ``StepSync`` API, on eventbus's sync step tools."""

    def __init__(self, step: Any, serde: _Serde) -> None:
        self._step = step
        self._serde = serde

    def run(
        self, step_id: str, handler: Callable[..., Any], *handler_args: Any, output_type: Any = None
    ) -> Any:
        serde = self._serde
        wrapped = _sdk_errors_out(serde.wraps(handler, output_type))
        with _sdk_errors_in():
            value = self._step.run(step_id, wrapped, *handler_args)
        return serde.load(value, output_type)

    def sleep(self, step_id: str, duration: datetime.timedelta | int) -> None:
        self._step.sleep(step_id, duration)

    def sleep_until(self, step_id: str, until: datetime.datetime) -> None:
        self._step.sleep_until(step_id, until)

    def wait_for_event(
        self,
        step_id: str,
        *,
        event: str,
        if_exp: str | None = None,
        timeout: datetime.timedelta | int,
    ) -> Any:
        found = self._step.wait_for_event(step_id, event=event, timeout=timeout, if_exp=if_exp)
        return None if found is None else sdk_event(found)

    def send_event(self, step_id: str, events: Any) -> list[str]:
        items = events if isinstance(events, list) else [events]
        return list(self._step.send_event(step_id, items))

    def invoke(
        self,
        step_id: str,
        *,
        function: Any,
        data: Mapping[str, object] | None = None,
        timeout: datetime.timedelta | int | None = None,
        v: str | None = None,
    ) -> Any:
        with _sdk_errors_in():
            return self._step.invoke_by_id(
                step_id, function_id=function.local_id, data=data, timeout=timeout, v=v
            )

    def invoke_by_id(
        self,
        step_id: str,
        *,
        app_id: str | None = None,
        function_id: str,
        data: Mapping[str, object] | None = None,
        timeout: datetime.timedelta | int | None = None,
        v: str | None = None,
    ) -> Any:
        with _sdk_errors_in():
            return self._step.invoke_by_id(
                step_id, function_id=function_id, app_id=app_id, data=data, timeout=timeout, v=v
            )


class _Group:
    """The SDK's ``ctx.group``: ``parallel(callables, parallel_mode=inngest.ParallelMode)``."""

    def __init__(self, group: Any) -> None:
        self._group = group

    def parallel(self, callables: Any, parallel_mode: Any = None) -> Any:
        mode = ParallelMode.WAIT if parallel_mode is None else ParallelMode(parallel_mode.value)
        return self._group.parallel(tuple(callables), parallel_mode=mode)


class _Context:
    """The ctx an official SDK handler expects (``inngest.Context`` / ``ContextSync``)."""

    def __init__(self, ctx: Any, step: Any) -> None:
        self.attempt = ctx.attempt
        self.event = sdk_event(ctx.event)
        self.events = [sdk_event(e) for e in ctx.events]
        self.group = _Group(ctx.group)
        self.job_id = None
        self.logger = ctx.logger
        self.request_id = None
        self.run_id = ctx.run_id
        self.step = step

    def __repr__(self) -> str:
        return f"<inngest-style Context run_id={self.run_id!r} event={self.event.name!r}>"


def _adapt(handler: Any) -> Callable[..., Any]:
    """The SDK handler, called with the SDK-shaped ctx (see _context) and its step tools
    in the SDK's step context (``inngest.experimental.get_step_context``), raising
    eventbus's errors for the SDK's (``inngest.NonRetriableError`` & co.)."""
    from inngest.experimental import set_step_context  # for get_step_context() & @step

    guarded = _sdk_errors_out(handler)
    if inspect.iscoroutinefunction(handler):

        async def run_async(ctx: Any) -> Any:
            with set_step_context(ctx.step):
                return await guarded(ctx)

        run_async.__name__ = getattr(handler, "__name__", "handler")
        return run_async

    def run_sync(ctx: Any) -> Any:
        with set_step_context(ctx.step):
            return guarded(ctx)

    run_sync.__name__ = getattr(handler, "__name__", "handler")
    return run_sync


def _context(serde: _Serde) -> Callable[[Any], _Context]:
    """Makes the ctx an SDK handler expects from eventbus's ctx."""

    def make(ctx: Any) -> _Context:
        if isinstance(ctx, ContextSync):
            return _Context(ctx, _StepSync(ctx.step, serde))
        return _Context(ctx, _Step(ctx.step, serde))

    return make


class _SdkKit(Kit):
    """What the SDK's middleware expects in its hooks: the SDK's own classes."""

    def __init__(self) -> None:
        import inngest
        from inngest._internal import middleware_lib, server_lib, types
        from inngest._internal.step_lib import base

        self._inngest = inngest
        self._info = middleware_lib.TransformOutputStepInfo
        self._opcode = server_lib.Opcode
        self._output = base.Output
        self._memoized_error = base.MemoizedError
        self.empty = types.empty_sentinel

    def memos(self, outputs: dict[str, StepOutput]) -> Any:
        memos = {}
        for key, memo in outputs.items():
            error = None
            if memo.error is not None:
                error = self._memoized_error(
                    message=str(memo.error.get("message", "")),
                    name=str(memo.error.get("name", "Error")),
                    stack=memo.error.get("stack"),
                )
            memos[key] = self._output(data=memo.data, error=error)
        return self._inngest.StepMemos(memos)

    def memo_data(self, memos: Any, key: str) -> tuple[bool, Any]:
        memo = memos._memos.get(key)
        return (False, None) if memo is None else (True, memo.data)

    def result(self, error: Exception | None, output: Any, step: tuple[str, str] | None) -> Any:
        info = None
        if step is not None:
            info = self._info(id=step[0], op=self._opcode(step[1]), opts=None)
        return self._inngest.TransformOutputResult(error=error, output=output, step=info)

    def send_result(self, ids: list[str], error: str | None) -> Any:
        return self._inngest.SendEventsResult(ids=ids, error=error)

    def error_out(self, error: Exception | None) -> Exception | None:
        if error is None:
            return None
        translated = to_sdk_error(error)
        return error if not isinstance(translated, Exception) else translated

    def error_in(self, error: Exception) -> Exception:
        translated = from_sdk_error(error)
        return error if translated is None else translated  # type: ignore[return-value]


def from_inngest(fn: Any, *, client: Any = None, ignore: tuple[str, ...] = ()) -> list[Function]:
    """eventbus Functions for an official ``inngest.Function``: the function, and its
    ``on_failure`` handler when it has one.

    ``client`` is the official client ``fn`` was made on, if known: when it has a
    ``serializer``, ``step.run(..., output_type=M)`` serializes and deserializes with it,
    as the SDK does (without one, ``output_type`` changes nothing, as in the SDK).

    Its flow control (``concurrency``, ``batch_events``, ...) is applied as on Inngest;
    ``ignore`` names options to leave out (flow-control option names, or ``"cron"`` to
    drop cron triggers), as the mocked runner does: it triggers runs directly.
    """
    _check_version()
    if not is_sdk_function(fn):
        raise UsageError(f"from_inngest() takes an inngest.Function, got {fn!r}")
    try:
        config = fn.get_config(_APP_URL).main
        handler = fn._handler
        on_failure = fn._opts.on_failure
        local_id = fn.local_id
    except AttributeError as exc:  # pragma: no cover - an SDK that changed its shape
        raise UsageError(
            f"eventbus cannot read this inngest.Function with inngest {sdk_version()}: {exc}"
        ) from None
    import inngest

    function_id: str = config.id
    app_id = function_id[: -(len(local_id) + 1)]
    unknown = [name for name in ignore if name != "cron" and name not in FLOW_CONTROL_OPTIONS]
    if unknown:
        raise UsageError(
            f"from_inngest(ignore=...) takes 'cron' and flow-control option names "
            f"({', '.join(FLOW_CONTROL_OPTIONS)}), got {', '.join(map(repr, unknown))}"
        )
    flow = {
        name: None if name in ignore else getattr(config, name, None)
        for name in FLOW_CONTROL_OPTIONS
    }
    triggers: list[TriggerEvent | TriggerCron] = []
    for trigger in config.triggers:
        if isinstance(trigger, inngest.TriggerCron):
            if "cron" not in ignore:
                triggers.append(TriggerCron(cron=trigger.cron, jitter=trigger.jitter))
            continue
        triggers.append(TriggerEvent(event=trigger.event, expression=trigger.expression))
    serde = _Serde(client)
    factories = tuple(getattr(fn, "_middleware", None) or ())
    middleware = None
    if factories or getattr(client, "middleware", None):
        middleware = MiddlewareSpec(factories, client, fn, _SdkKit())
    step = config.steps.get("step")
    retries = None if step is None or step.retries is None else step.retries.attempts
    cancel = [
        Cancel(event=rule.event, if_exp=rule.if_exp, timeout=rule.timeout)
        for rule in config.cancel or ()
    ]
    timeouts = None
    if config.timeouts is not None:
        timeouts = Timeouts(start=config.timeouts.start, finish=config.timeouts.finish)
    return make_function(
        app_id=app_id,
        fn_id=local_id,
        trigger=triggers,
        name=config.name,
        retries=retries,
        handler=_adapt(handler),
        on_failure=None if on_failure is None else _adapt(on_failure),
        cancel=cancel or None,
        timeouts=timeouts,
        middleware=middleware,
        context=_context(serde),
        **flow,
    )
