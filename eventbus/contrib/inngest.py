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
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .._duration import parse_duration_ms
from .._errors import FunctionConfigError
from .._event import Event
from .._function import Function
from .._step import ParallelMode
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
    """What the adapters share: the converted functions, by eventbus id."""

    def __init__(self) -> None:
        self.functions: dict[str, Any] = {}

    def target(self, function: Function) -> Any:
        try:
            return self.functions[function.id]
        except KeyError:
            raise FunctionConfigError(
                f"invoke target {function.id!r} was not converted by to_inngest (register it "
                "on the same eventbus client)"
            ) from None


class _Step:
    """eventbus's ``ctx.step`` on top of the SDK's async ``Step``."""

    def __init__(self, step: Any, bridge: _Bridge) -> None:
        self._step = step
        self._bridge = bridge

    async def run(self, step_id: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with _from_sdk():
            return await self._step.run(step_id, _for_sdk(functools.partial(fn, *args, **kwargs)))

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

    def run(self, step_id: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with _from_sdk():
            return self._step.run(step_id, _for_sdk(functools.partial(fn, *args, **kwargs)))

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
    bridge = _Bridge()
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
                inngest.TriggerEvent(event=t.event, expression=t.expression)
                for t in function.triggers
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
        )
        bridge.functions[function.id] = decorator(_wrap(function, bridge))
    return list(bridge.functions.values())
