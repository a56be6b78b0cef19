"""The bridge to the official SDK, both ways (extra ``eventbus[inngest]``).

``from_inngest(fn)`` runs an official SDK function on eventbus (see ``_sdk``);
``to_inngest`` serves eventbus functions on Inngest with the SDK:

::

    import inngest, inngest.fast_api
    from eventbus.contrib.inngest import to_inngest

    inngest_client = inngest.Inngest(app_id="shop")
    inngest.fast_api.serve(app, inngest_client, to_inngest(client, inngest_client))

``to_inngest`` turns every function registered on an eventbus client into an official
SDK function with the same id, name, triggers (and expressions), retries, cancel rules,
timeouts and ``on_failure`` handler. Handlers run unchanged: they get a context whose
``step`` and ``group`` speak eventbus's API (keyword arguments to ``step.run``,
``eventbus.Event`` in ``send_event``, eventbus Functions in ``invoke``, duration strings,
``match=``) and call the SDK's underneath.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .._duration import parse_duration_ms
from .._errors import FunctionConfigError
from .._event import Event
from .._function import Function
from .._middleware import (
    EMPTY,
    Opcode,
    SendEventsResult,
    StepMemos,
    StepOutput,
    TransformOutputResult,
    TransformOutputStepInfo,
)
from .._step import ParallelMode, _dumped, _serialized, _typed
from ._sdk import SUPPORTED_SDK as SUPPORTED_SDK
from ._sdk import from_inngest as from_inngest
from ._sdk import from_sdk_error, to_sdk_error, translating

__all__ = ("SUPPORTED_SDK", "from_inngest", "to_inngest")


def _ms(value: datetime.timedelta | int | str | None) -> int | None:
    return None if value is None else parse_duration_ms(value)


def _sdk_event(event: Any) -> Any:
    import inngest

    if isinstance(event, Event):
        raw: Mapping[str, Any] = event.to_dict()
    elif isinstance(event, Mapping):
        raw = Event.from_dict(event).to_dict()
    else:
        return event  # already an inngest.Event
    return inngest.Event(
        name=raw["name"], data=raw.get("data") or {}, id=raw.get("id") or "", ts=raw.get("ts") or 0
    )


def _if_exp(if_exp: str | None, match: str | None) -> str | None:
    return f"event.{match} == async.{match}" if match is not None else if_exp


def _for_sdk(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` (eventbus code run by the SDK) with its errors as the SDK's, so Inngest does
    not retry what eventbus would not."""
    return translating(fn, to_sdk_error)


@contextlib.contextmanager
def _from_sdk() -> Iterator[None]:
    """Around an SDK step call from eventbus code: the SDK's StepError as eventbus's."""
    import inngest

    try:
        yield
    except inngest.StepError as exc:
        translated = from_sdk_error(exc)
        assert translated is not None  # every inngest.StepError has an eventbus twin
        raise translated from None


class _Bridge:
    """What the adapters share: the converted functions, by eventbus id, and the
    eventbus client's serializer."""

    def __init__(self, serializer: Any = None) -> None:
        self.functions: dict[str, Any] = {}
        self.serializer = serializer

    def target(self, function: Function) -> Any:
        try:
            return self.functions[function.id]
        except KeyError:
            raise FunctionConfigError(
                f"invoke target {function.id!r} was not converted by to_inngest (register it "
                "on the same eventbus client)"
            ) from None


def _typed_run(
    call: Callable[[], Any], output_type: Any, bridge: _Bridge
) -> tuple[Callable[[], Any], Callable[[Any], Any]]:
    """``step.run(..., output_type=T)`` as eventbus applies it (see _serializer): the
    step's function, and what turns the recorded result back into a T."""
    if output_type is None:
        return call, lambda value: value
    serializer = bridge.serializer
    if serializer is not None:
        return _serialized(call, serializer, output_type), lambda value: serializer.deserialize(
            value, output_type
        )
    return _dumped(call), lambda value: _typed(value, output_type)


class _Step:
    """eventbus's ``ctx.step`` on top of the SDK's async ``Step``."""

    def __init__(self, step: Any, bridge: _Bridge) -> None:
        self._step = step
        self._bridge = bridge

    async def run(
        self,
        step_id: str,
        fn: Callable[..., Any],
        *args: Any,
        output_type: Any = None,
        **kwargs: Any,
    ) -> Any:
        call, load = _typed_run(functools.partial(fn, *args, **kwargs), output_type, self._bridge)
        with _from_sdk():
            return load(await self._step.run(step_id, _for_sdk(call)))

    async def sleep(self, step_id: str, duration: datetime.timedelta | int | str) -> None:
        await self._step.sleep(step_id, _ms(duration))

    async def sleep_until(self, step_id: str, until: datetime.datetime) -> None:
        await self._step.sleep_until(step_id, until)

    async def wait_for_event(
        self,
        step_id: str,
        *,
        event: str,
        timeout: datetime.timedelta | int | str,
        if_exp: str | None = None,
        match: str | None = None,
    ) -> Any:
        return await self._step.wait_for_event(
            step_id, event=event, if_exp=_if_exp(if_exp, match), timeout=_ms(timeout)
        )

    async def send_event(self, step_id: str, events: Any) -> list[str]:
        items = events if isinstance(events, list) else [events]
        return list(await self._step.send_event(step_id, [_sdk_event(e) for e in items]))

    async def invoke(
        self, step_id: str, *, function: Function, data: Any = None, timeout: Any = None
    ) -> Any:
        with _from_sdk():
            return await self._step.invoke(
                step_id, function=self._bridge.target(function), data=data, timeout=_ms(timeout)
            )

    async def invoke_by_id(
        self,
        step_id: str,
        *,
        function_id: str,
        app_id: str | None = None,
        data: Any = None,
        timeout: Any = None,
    ) -> Any:
        with _from_sdk():
            return await self._step.invoke_by_id(
                step_id, app_id=app_id, function_id=function_id, data=data, timeout=_ms(timeout)
            )


class _StepSync:
    """eventbus's ``ctx.step`` for sync handlers, on top of the SDK's ``StepSync``."""

    def __init__(self, step: Any, bridge: _Bridge) -> None:
        self._step = step
        self._bridge = bridge

    def run(
        self,
        step_id: str,
        fn: Callable[..., Any],
        *args: Any,
        output_type: Any = None,
        **kwargs: Any,
    ) -> Any:
        call, load = _typed_run(functools.partial(fn, *args, **kwargs), output_type, self._bridge)
        with _from_sdk():
            return load(self._step.run(step_id, _for_sdk(call)))

    def sleep(self, step_id: str, duration: datetime.timedelta | int | str) -> None:
        self._step.sleep(step_id, _ms(duration))

    def sleep_until(self, step_id: str, until: datetime.datetime) -> None:
        self._step.sleep_until(step_id, until)

    def wait_for_event(
        self,
        step_id: str,
        *,
        event: str,
        timeout: datetime.timedelta | int | str,
        if_exp: str | None = None,
        match: str | None = None,
    ) -> Any:
        return self._step.wait_for_event(
            step_id, event=event, if_exp=_if_exp(if_exp, match), timeout=_ms(timeout)
        )

    def send_event(self, step_id: str, events: Any) -> list[str]:
        items = events if isinstance(events, list) else [events]
        return list(self._step.send_event(step_id, [_sdk_event(e) for e in items]))

    def invoke(
        self, step_id: str, *, function: Function, data: Any = None, timeout: Any = None
    ) -> Any:
        with _from_sdk():
            return self._step.invoke(
                step_id, function=self._bridge.target(function), data=data, timeout=_ms(timeout)
            )

    def invoke_by_id(
        self,
        step_id: str,
        *,
        function_id: str,
        app_id: str | None = None,
        data: Any = None,
        timeout: Any = None,
    ) -> Any:
        with _from_sdk():
            return self._step.invoke_by_id(
                step_id, app_id=app_id, function_id=function_id, data=data, timeout=_ms(timeout)
            )


class _Group:
    def __init__(self, group: Any) -> None:
        self._group = group

    def parallel(self, thunks: Any, parallel_mode: ParallelMode = ParallelMode.WAIT) -> Any:
        import inngest

        mode = inngest.ParallelMode(parallel_mode.value)
        return self._group.parallel(tuple(thunks), parallel_mode=mode)


class _Context:
    """The ctx an eventbus handler gets when it runs on Inngest."""

    def __init__(self, ctx: Any, function_id: str, step: Any) -> None:
        self.event = ctx.event
        self.events = ctx.events
        self.run_id = ctx.run_id
        self.attempt = ctx.attempt
        self.logger = ctx.logger
        self.function_id = function_id
        self.step = step
        self.group = _Group(ctx.group)


def _wrap(function: Function, bridge: _Bridge) -> Callable[..., Any]:
    handler: Any = _for_sdk(function.handler)
    if function.serializer is not None and function.output_type is not None:
        handler = _serialized(handler, function.serializer, function.output_type)
    if function.is_async:

        async def run_async(ctx: Any) -> Any:
            return await handler(_Context(ctx, function.id, _Step(ctx.step, bridge)))

        run_async.__name__ = getattr(handler, "__name__", "handler")
        return run_async

    def run_sync(ctx: Any) -> Any:
        return handler(_Context(ctx, function.id, _StepSync(ctx.step, bridge)))

    run_sync.__name__ = getattr(handler, "__name__", "handler")
    return run_sync


def to_inngest(client: Any, inngest_client: Any) -> list[Any]:
    """Official SDK functions for every function registered on ``client``."""
    import inngest

    from .._client import Inngest

    if not isinstance(client, Inngest):
        raise FunctionConfigError(f"to_inngest() takes an eventbus.Inngest, got {client!r}")
    bridge = _Bridge(client.serializer)
    registered = {f.id: f for f in client.functions()}
    failure_ids = {f.on_failure_fn_id for f in registered.values() if f.on_failure_fn_id}
    for function in registered.values():
        if function.id in failure_ids:
            continue  # registered by the SDK as the on_failure of its function
        on_failure = None
        if function.on_failure_fn_id is not None:
            failure = registered[function.on_failure_fn_id]
            if failure.is_async != function.is_async:
                raise FunctionConfigError(
                    f"{function.id!r} and its on_failure handler must both be async or both "
                    "sync to run on the official SDK"
                )
            on_failure = _wrap(failure, bridge)
        timeouts = function.timeouts
        decorator = inngest_client.create_function(
            fn_id=function.local_id,
            name=function.name,
            retries=function.retries,
            trigger=[
                *(
                    inngest.TriggerEvent(event=t.event, expression=t.expression)
                    for t in function.triggers
                ),
                *(inngest.TriggerCron(cron=c.cron, jitter=c.jitter) for c in function.crons),
            ],
            cancel=[
                inngest.Cancel(event=c.event, if_exp=c.if_exp, timeout=c.timeout_ms)
                for c in function.cancel
            ]
            or None,
            timeouts=None
            if timeouts is None
            else inngest.Timeouts(start=timeouts.start_ms, finish=timeouts.finish_ms),
            on_failure=on_failure,
            middleware=_middleware_for_sdk(client, function),
            **_flow_control_for_sdk(function),
        )
        bridge.functions[function.id] = decorator(_wrap(function, bridge))
    return list(bridge.functions.values())


def _flow_control_for_sdk(function: Function) -> dict[str, Any]:
    """The function's flow control, as the SDK's create_function takes it."""
    import inngest

    options: dict[str, Any] = {}
    rule = function.rate_limit
    if rule is not None and rule.idempotency:
        options["idempotency"] = rule.key
    elif rule is not None:
        options["rate_limit"] = inngest.RateLimit(
            limit=rule.limit, period=rule.period_ms, key=rule.key
        )
    wait = function.debounce
    if wait is not None:
        options["debounce"] = inngest.Debounce(
            period=wait.period_ms, key=wait.key, timeout=wait.timeout_ms
        )
    one = function.singleton
    if one is not None:
        options["singleton"] = inngest.Singleton(mode=one.mode, key=one.key)  # type: ignore[arg-type]
    if function.concurrency:
        options["concurrency"] = [
            inngest.Concurrency(limit=rule.limit, key=rule.key, scope=rule.scope)  # type: ignore[arg-type]
            for rule in function.concurrency
        ]
    first = function.priority
    if first is not None:
        options["priority"] = inngest.Priority(run=first.run)
    group = function.batch
    if group is not None:
        options["batch_events"] = inngest.Batch(
            max_size=group.max_size, timeout=group.timeout_ms, key=group.key, if_exp=group.if_exp
        )
    gate = function.throttle
    if gate is not None:
        options["throttle"] = inngest.Throttle(
            limit=gate.limit, period=gate.period_ms, burst=gate.burst, key=gate.key
        )
    return options


# ---------------------------------------------------------------- middleware


def _middleware_for_sdk(client: Any, function: Function) -> list[Any] | None:
    """The eventbus middleware of ``function`` (its client's, then its own), as SDK
    middleware factories: the SDK runs their hooks on Inngest, with eventbus's objects."""
    factories = [*client.middleware]
    if function.middleware is not None:
        factories += function.middleware.factories
    if not factories:
        return None
    return [functools.partial(_adapted_middleware, factory, client) for factory in factories]


_HOOKS = (
    "after_execution",
    "after_send_events",
    "before_execution",
    "before_response",
    "before_send_events",
    "transform_input",
    "transform_output",
)


def _adapted_middleware(factory: Any, client: Any, sdk_client: Any, raw_request: object) -> Any:
    """One eventbus middleware for one request of the SDK's: made with the eventbus
    client, and wrapped in a middleware of the SDK's that converts what its hooks get."""
    import inngest

    inner = factory(client, raw_request)
    is_async = any(inspect.iscoroutinefunction(getattr(inner, h, None)) for h in _HOOKS)
    base = inngest.Middleware if is_async else inngest.MiddlewareSync
    adapter = _AsyncAdapter if is_async else _SyncAdapter
    cls = type(f"eventbus_{type(inner).__name__}", (adapter, base), {})
    made = cls(sdk_client, raw_request)
    made._inner = inner
    return made


class _Adapter:
    """Converts between the SDK's hook arguments and eventbus's."""

    _inner: Any

    def _call(self, name: str, *args: Any) -> Any:
        hook = getattr(self._inner, name, None)
        return None if hook is None else hook(*args)

    @staticmethod
    def _memos(steps: Any) -> StepMemos:
        return StepMemos(
            {
                key: StepOutput(memo.data, None if memo.error is None else memo.error.model_dump())
                for key, memo in steps._memos.items()
            }
        )

    @staticmethod
    def _memos_back(steps: Any, memos: StepMemos) -> None:
        for key, memo in steps._memos.items():
            ours = memos.get(key)
            if ours is not None:
                memo.data = ours.data

    @staticmethod
    def _result(result: Any) -> TransformOutputResult:
        step = None
        if result.step is not None:
            step = TransformOutputStepInfo(result.step.id, Opcode(result.step.op.value))
        error = result.error
        if error is not None:
            translated = from_sdk_error(error)
            error = translated if isinstance(translated, Exception) else error
        return TransformOutputResult(error, result.output if result.has_output() else EMPTY, step)

    @staticmethod
    def _result_back(result: Any, ours: TransformOutputResult) -> None:
        from inngest._internal import types

        result.output = types.empty_sentinel if ours.output is EMPTY else ours.output
        error = ours.error
        if error is not None:
            translated = to_sdk_error(error)
            error = translated if isinstance(translated, Exception) else error
        result.error = error

    @staticmethod
    def _sent(result: Any) -> SendEventsResult:
        return SendEventsResult(list(result.ids), result.error)


class _SyncAdapter(_Adapter):
    def after_execution(self) -> None:
        self._call("after_execution")

    def after_send_events(self, result: Any) -> None:
        self._call("after_send_events", self._sent(result))

    def before_execution(self) -> None:
        self._call("before_execution")

    def before_response(self) -> None:
        self._call("before_response")

    def before_send_events(self, events: list[Any]) -> None:
        self._call("before_send_events", events)

    def transform_input(self, ctx: Any, function: Any, steps: Any) -> None:
        memos = self._memos(steps)
        self._call("transform_input", ctx, function, memos)
        self._memos_back(steps, memos)

    def transform_output(self, result: Any) -> None:
        ours = self._result(result)
        self._call("transform_output", ours)
        self._result_back(result, ours)


async def _awaited(value: Any) -> None:
    if inspect.isawaitable(value):
        await value


class _AsyncAdapter(_Adapter):
    async def after_execution(self) -> None:
        await _awaited(self._call("after_execution"))

    async def after_send_events(self, result: Any) -> None:
        await _awaited(self._call("after_send_events", self._sent(result)))

    async def before_execution(self) -> None:
        await _awaited(self._call("before_execution"))

    async def before_response(self) -> None:
        await _awaited(self._call("before_response"))

    async def before_send_events(self, events: list[Any]) -> None:
        await _awaited(self._call("before_send_events", events))

    async def transform_input(self, ctx: Any, function: Any, steps: Any) -> None:
        memos = self._memos(steps)
        await _awaited(self._call("transform_input", ctx, function, memos))
        self._memos_back(steps, memos)

    async def transform_output(self, result: Any) -> None:
        ours = self._result(result)
        await _awaited(self._call("transform_output", ours))
        self._result_back(result, ours)
