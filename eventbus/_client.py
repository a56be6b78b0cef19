"""The client: ``eventbus.Inngest``, the one object users create."""

from __future__ import annotations

import contextvars
import datetime
import functools
import logging
import os
import threading
import weakref
from collections.abc import Callable, Collection
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from types import TracebackType
from typing import Any, TypeVar

import anyio
import anyio.from_thread

from ._clock import Clock, SystemClock, datetime_to_ms
from ._engine import Engine
from ._errors import EngineNotRunningError, FunctionConfigError, UsageError
from ._event import Event, EventBatch, StoredEvent, prepare_batch, usual_batch
from ._function import Cancel, Function, Handler, Registry, Timeouts, TriggerEvent, make_function
from ._ids import decode_ulid_ms
from ._middleware import Hooks, MiddlewareSpec, check_middleware
from ._options import (
    Batch,
    Concurrency,
    Debounce,
    Priority,
    RateLimit,
    Singleton,
    Throttle,
)
from ._run import Run, RunStatus
from ._serializer import check_serializer
from .stores import Store
from .transports import InProcessTransport, Transport

H = TypeVar("H", bound=Handler)
T = TypeVar("T")

#: Clients whose sends go to a test engine in this context (see eventbus.testing.running).
ROUTES: contextvars.ContextVar[dict[Inngest, Engine] | None] = contextvars.ContextVar(
    "eventbus_routes", default=None
)

DEFAULT_MAX_REQUEST_BYTES = 512 * 1024
DEFAULT_MAX_EVENTS_PER_REQUEST = 5000
DEFAULT_EVENT_RETENTION = 100_000
DEFAULT_MAX_QUEUED_RUNS = 10_000
DEFAULT_MAX_CONCURRENCY = 1000
DEFAULT_SHUTDOWN_TIMEOUT = 5.0


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise FunctionConfigError(f"{name} must be a positive int, got {value!r}")
    return value


def _as_list(events: object) -> list[Any]:
    return list(events) if isinstance(events, (list, tuple)) else [events]


def _optional_bound(value: object, name: str) -> int | None:
    return None if value is None else _positive_int(value, f"{name} (or None for no bound)")


def _seconds(value: object, name: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not value >= 0  # also rejects NaN
    ):
        raise FunctionConfigError(f"{name} must be a number of seconds >= 0, got {value!r}")
    return float(value)


def _validate_for(client_ref: weakref.ref[Inngest], events: object) -> EventBatch:
    """Validate a send for the client behind ``client_ref`` (its engine's validator)."""
    client = client_ref()
    if client is None:  # pragma: no cover - a running engine's client is alive
        raise EngineNotRunningError("the client of this eventbus engine no longer exists")
    return client._validate(events)


class Inngest:
    """An eventbus client: declare functions, send events, read what happened.

    ``eventbus.Inngest(app_id="shop")`` runs everything in this process (the
    in-process transport). Start the engine with ``async with client:`` in async code, or
    ``with client:`` from synchronous code (it then runs in a background thread).

    Args:
        app_id: the application id; function ids are ``f"{app_id}-{fn_id}"``.
        event_key: the Inngest event key (default ``$INNGEST_EVENT_KEY``); only remote
            transports need it.
        env: the Inngest branch environment (default ``$INNGEST_ENV``).
        transport: where events go; default :class:`~eventbus.transports.InProcessTransport`.
        clock: where time comes from; default :class:`~eventbus.SystemClock`. Pass a
            :class:`~eventbus.VirtualClock` to skip time in tests.
        logger: the logger for the engine and ``ctx.logger`` (default ``eventbus``).
        max_request_bytes: the largest JSON encoding one ``send`` may have (512 KiB).
        max_events_per_request: the most events one ``send`` may carry (5000).
        event_retention: how many events, and how many finished runs, the engine keeps
            for inspection (oldest are dropped first; events of active runs are kept).
        max_queued_runs: how many runs may wait for a worker before ``send`` waits
            (10,000; ``None``: no bound). A send waits for room first and then accepts
            its whole batch, so the queue stays within this bound plus one batch per
            concurrent sender. Sends made by runs only yield, never wait.
        max_concurrency: how many runs may execute at once (1,000; ``None``: no bound).
            Sleeping and waiting runs hold no slot.
        shutdown_timeout: seconds (real time) that leaving ``async with client:`` lets
            queued and executing runs finish before it cancels them (5.0).

    The official SDK's other keywords are accepted, so ``import eventbus as inngest``
    works for app code: ``is_production``, ``signing_key`` (default
    ``$INNGEST_SIGNING_KEY``), ``api_base_url``, ``event_api_base_url``, ``app_version`` and
    ``request_timeout`` are kept as attributes and have no meaning in-process (give
    :class:`~eventbus.transports.HttpTransport` its own to send to Inngest);
    ``middleware`` is a list of middleware classes (:class:`eventbus.Middleware`,
    :class:`eventbus.MiddlewareSync`, or the SDK's) run around every execution of every
    function and around ``send``; ``serializer`` (:class:`eventbus.PydanticSerializer`,
    say) turns outputs with an ``output_type`` into JSON and back, as in the SDK.
    """

    def __init__(
        self,
        app_id: str,
        *,
        event_key: str | None = None,
        env: str | None = None,
        transport: Transport | None = None,
        clock: Clock | None = None,
        logger: logging.Logger | None = None,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        max_events_per_request: int = DEFAULT_MAX_EVENTS_PER_REQUEST,
        event_retention: int = DEFAULT_EVENT_RETENTION,
        max_queued_runs: int | None = DEFAULT_MAX_QUEUED_RUNS,
        max_concurrency: int | None = DEFAULT_MAX_CONCURRENCY,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
        is_production: bool | None = None,
        signing_key: str | None = None,
        api_base_url: str | None = None,
        event_api_base_url: str | None = None,
        app_version: str | None = None,
        request_timeout: int | float | None = None,
        serializer: object = None,
        middleware: list[Any] | None = None,
        store: Store | None = None,
    ) -> None:
        #: Middleware of every function of this client (before each function's own).
        if store is not None and not isinstance(store, Store):
            raise FunctionConfigError(
                f"store must be an eventbus.stores.Store (MemoryStore() or "
                f"SqliteStore(path), or a class with every method of the Store protocol), "
                f"got {store!r}"
            )
        #: Where engines of this client keep their records (None: a fresh MemoryStore
        #: per engine). An engine started over a store takes up its unfinished runs.
        self.store = store
        self.middleware: list[Any] = list(check_middleware(middleware, "Inngest(...)"))
        self.serializer = check_serializer(serializer)
        if not isinstance(app_id, str) or not app_id.strip():
            raise FunctionConfigError(f"app_id must be a non-empty string, got {app_id!r}")
        if transport is not None and not isinstance(transport, Transport):
            raise FunctionConfigError(
                f"transport must be an eventbus.transports.Transport, got {transport!r}"
            )
        if clock is not None and not isinstance(clock, Clock):
            raise FunctionConfigError(f"clock must be an eventbus.Clock, got {clock!r}")
        self.app_id = app_id
        self.event_key = event_key if event_key is not None else os.environ.get("INNGEST_EVENT_KEY")
        self.env = env if env is not None else os.environ.get("INNGEST_ENV")
        self.is_production = is_production
        self.signing_key = (
            signing_key if signing_key is not None else os.environ.get("INNGEST_SIGNING_KEY")
        )
        self.api_base_url = api_base_url
        self.event_api_base_url = event_api_base_url
        self.app_version = app_version
        self.request_timeout = request_timeout
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.logger = logger if logger is not None else logging.getLogger("eventbus")
        #: eventbus.contrib.otel.instrument(client) sets it: engines started then trace.
        self.tracing: Any = None
        #: The dev UI (eventbus.server.create_app) sets it: engines started then keep
        #: the decisions of this many of the newest events, for its event pages.
        self.explain_events: int | None = None
        self.max_request_bytes = _positive_int(max_request_bytes, "max_request_bytes")
        self.max_events_per_request = _positive_int(
            max_events_per_request, "max_events_per_request"
        )
        self.event_retention = _positive_int(event_retention, "event_retention")
        self.max_queued_runs = _optional_bound(max_queued_runs, "max_queued_runs")
        self.max_concurrency = _optional_bound(max_concurrency, "max_concurrency")
        self.shutdown_timeout = _seconds(shutdown_timeout, "shutdown_timeout")
        self._registry = Registry()
        self.transport: Transport = transport if transport is not None else InProcessTransport()
        self.transport.bind(self)
        self._portal_cm: AbstractContextManager[anyio.from_thread.BlockingPortal] | None = None
        self._running_cm: AbstractContextManager[None] | None = None
        self._running: AbstractAsyncContextManager[None] | None = None

    def __repr__(self) -> str:
        return (
            f"<eventbus.Inngest app_id={self.app_id!r} transport={type(self.transport).__name__}>"
        )

    # ------------------------------------------------------------------ functions

    def create_function(
        self,
        *,
        fn_id: str,
        trigger: TriggerEvent | list[TriggerEvent],
        name: str | None = None,
        retries: int | None = None,
        on_failure: Handler | None = None,
        cancel: list[Cancel] | None = None,
        timeouts: Timeouts | None = None,
        batch_events: Batch | None = None,
        concurrency: list[Concurrency] | Concurrency | int | None = None,
        debounce: Debounce | None = None,
        idempotency: str | None = None,
        middleware: list[Any] | None = None,
        output_type: object = None,
        priority: Priority | None = None,
        rate_limit: RateLimit | None = None,
        singleton: Singleton | None = None,
        throttle: Throttle | None = None,
    ) -> Callable[[H], Function]:
        """Declare a function: a decorator for an ``async def handler(ctx)``.

        ``trigger`` is one :class:`TriggerEvent` or a list of up to 10; ``retries`` (0-20,
        default 4) is how many times a failed attempt is retried; ``on_failure`` is an
        async handler registered as ``f"{fn_id}-failure"`` and run with the
        ``inngest/function.failed`` event when a run of this function fails;
        ``cancel`` is a list of up to 5 :class:`Cancel` rules and ``timeouts`` a
        :class:`Timeouts`, both cancelling runs between steps.

        ``middleware`` is a list of middleware classes run around each execution, after
        the client's (see :class:`eventbus.Middleware`); ``output_type`` is the type the
        client's ``serializer`` turns the return value into JSON from (without a
        serializer it changes nothing, as in the SDK). ``rate_limit`` (a
        :class:`RateLimit`) lets at most ``limit`` runs start per ``period`` per key, the
        excess events starting none (they are still stored); ``idempotency`` (a key
        expression) runs the function once per key per 24 hours; ``throttle`` (a
        :class:`Throttle`) spaces run starts, queueing the excess; ``singleton`` (a
        :class:`Singleton`) keeps one active run per key; ``debounce`` (a
        :class:`Debounce`) runs once with the last of a burst of events; ``concurrency``
        (up to two :class:`Concurrency`) bounds the steps executing at once, per key;
        ``batch_events`` (a :class:`Batch`) runs the function once with up to
        ``max_size`` events; ``priority`` (a :class:`Priority`) moves runs waiting to
        start ahead of the others; all as Inngest does (see docs/flow-control.md).
        Options Inngest does not take together (batching with ``cancel``, ``debounce``,
        ``singleton``, ``priority``, ``idempotency`` or ``rate_limit``) are refused as it
        refuses them.

        Raises :class:`FunctionConfigError` at once for an invalid configuration.
        """
        own = check_middleware(middleware, f"{fn_id!r}")
        build = functools.partial(
            make_function,
            app_id=self.app_id,
            fn_id=fn_id,
            trigger=trigger,
            name=name,
            retries=retries,
            on_failure=on_failure,
            cancel=cancel,
            timeouts=timeouts,
            middleware=MiddlewareSpec(own, self) if own or self.middleware else None,
            serializer=self.serializer,
            output_type=output_type,
            rate_limit=rate_limit,
            idempotency=idempotency,
            throttle=throttle,
            singleton=singleton,
            debounce=debounce,
            concurrency=concurrency,
            batch_events=batch_events,
            priority=priority,
        )
        # Validate everything but the handler now, so errors point at this call.
        build(handler=_probe_handler)

        def decorator(handler: H) -> Function:
            functions = build(handler=handler)
            for function in functions:
                # A repeated fn_id replaces the earlier function and is reported when an
                # engine starts, as the SDK reports it at serve(): per-test redefinitions
                # of one fn_id (run with mocked.trigger) stay possible.
                self._registry.add(function)
            return functions[0]

        return decorator

    def add_middleware(self, middleware: Any) -> None:
        """Add a middleware class to every function of this client, including those made
        already (as the SDK's ``add_middleware``)."""
        (checked,) = check_middleware([middleware], "add_middleware")
        self.middleware = [*self.middleware, checked]
        for function in self._registry.functions.values():
            if function.middleware is None:
                function.middleware = MiddlewareSpec((), self)

    def set_logger(self, logger: Any) -> None:
        """Use ``logger`` for ``ctx.logger`` from now on (as the SDK's ``set_logger``):
        engines started after this call use it."""
        self.logger = logger

    def functions(self) -> list[Function]:
        """Every function registered on this client, in registration order."""
        return list(self._registry.functions.values())

    # ------------------------------------------------------------------ sending

    def _prepare(self, events: object) -> EventBatch:
        if self.transport.splits_requests:  # it sends large batches as several requests
            return prepare_batch(events, max_events=2**62, max_bytes=2**62)
        return prepare_batch(  # self._validate(events), one call less on every send
            events, max_events=self.max_events_per_request, max_bytes=self.max_request_bytes
        )

    def _new_engine(
        self,
        *,
        clock: Clock | None = None,
        seed: int | None = None,
        store: Store | None = None,
    ) -> Engine:
        """A fresh engine over this client's functions and settings (and its store, unless
        another is given)."""
        self._registry.check_start()
        return Engine(
            registry=self._registry,
            clock=clock if clock is not None else self.clock,
            logger=self.logger,
            event_retention=self.event_retention,
            seed=seed,
            # Through a weak reference: an engine and its client make no reference cycle.
            validate=functools.partial(_validate_for, weakref.ref(self)),
            max_queued_runs=self.max_queued_runs,
            max_concurrency=self.max_concurrency,
            shutdown_timeout=self.shutdown_timeout,
            store=self.store if store is None else store,
            tracing=self.tracing,
            explain_events=self.explain_events,
        )

    def _validate(self, events: object) -> EventBatch:
        """Validate a send against this client's request limits."""
        return prepare_batch(
            events, max_events=self.max_events_per_request, max_bytes=self.max_request_bytes
        )

    async def send(self, events: Event | dict[str, Any] | list[Any] | tuple[Any, ...]) -> list[str]:
        """Send one event or a list of them; returns their ids, in order.

        Each event is an :class:`Event` or a mapping with the same fields. The whole send
        is validated first: if any event is invalid, :class:`EventValidationError` names
        it and nothing is accepted. An empty list returns ``[]``.
        """
        if self.middleware:
            ids: list[str] = await Hooks(MiddlewareSpec((), self)).around_send(
                _as_list(events), self._send
            )
            return ids
        # One dict of the usual shape is validated in one call (prepare_batch would
        # make the same call, two calls down).
        batch = (
            usual_batch(events, self.max_events_per_request, self.max_request_bytes)
            if type(events) is dict and not self.transport.splits_requests
            else None
        ) or self._prepare(events)
        if not batch.decoded:
            return []
        # An engine in this process that can take the events without waiting takes them
        # here: no coroutine per layer for a send that never suspends.
        routes = ROUTES.get()
        engine = (
            routes[self] if routes is not None and self in routes else self.transport.local_engine()
        )
        if engine is not None:
            accepted = engine.accept_now(batch)
            if accepted is not None:
                return accepted
        return await self._deliver(batch)

    async def _send(self, events: object) -> list[str]:
        batch = self._prepare(events)
        if not batch.decoded:
            return []
        return await self._deliver(batch)

    async def _deliver(self, batch: EventBatch) -> list[str]:
        routes = ROUTES.get()
        if routes is not None and self in routes:
            return await routes[self].send_batch(batch)
        return await self.transport.send(batch)

    def send_sync(self, events: Event | dict[str, Any] | list[Any] | tuple[Any, ...]) -> list[str]:
        """The blocking twin of :meth:`send`, for synchronous code (``with client:``)."""
        if self.middleware:
            sent: list[str] = Hooks(MiddlewareSpec((), self)).around_send_sync(
                _as_list(events), self._send_sync
            )
            return sent
        return self._send_sync(events)

    def _send_sync(self, events: object) -> list[str]:
        batch = self._prepare(events)
        if not batch.decoded:
            return []
        routes = ROUTES.get()
        if routes is not None and self in routes:
            return routes[self].send_batch_sync(batch)
        return self.transport.send_sync(batch)

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Inngest:
        if self._running is not None:
            raise UsageError(
                "this client's engine is already running; enter `async with client:` once"
            )
        running = self.transport.running()
        await running.__aenter__()
        self._running = running
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        running, self._running = self._running, None
        assert running is not None
        return await running.__aexit__(exc_type, exc, tb)

    def __enter__(self) -> Inngest:
        if self._portal_cm is not None:
            raise UsageError("this client is already running in a background thread")
        portal_cm = anyio.from_thread.start_blocking_portal()
        portal = portal_cm.__enter__()
        try:
            running = portal.wrap_async_context_manager(self.transport.running())
            running.__enter__()
        except BaseException:
            portal_cm.__exit__(None, None, None)
            raise
        self._portal_cm = portal_cm
        self._running_cm = running
        engine = getattr(self.transport, "engine", None)
        if engine is not None:
            engine.portal = portal
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        portal_cm, running = self._portal_cm, self._running_cm
        assert portal_cm is not None
        assert running is not None
        self._portal_cm = self._running_cm = None
        try:
            running.__exit__(exc_type, exc, tb)
        finally:
            engine = getattr(self.transport, "engine", None)
            if engine is not None:
                engine.portal = None
            portal_cm.__exit__(None, None, None)

    # ------------------------------------------------------------------ records

    @property
    def engine(self) -> Engine:
        """The in-process engine (running, or the last one that ran)."""
        engine = getattr(self.transport, "engine", None)
        if engine is None:
            if not isinstance(self.transport, InProcessTransport):
                raise UsageError(
                    f"{type(self.transport).__name__} keeps no runs or events: records exist "
                    "only with the in-process transport"
                )
            raise UsageError(
                "the engine has not run yet: enter `async with client:` or `with client:` first"
            )
        return engine  # type: ignore[no-any-return]

    def _running_engine(self) -> Engine:
        engine = self.engine
        if not engine.running:
            raise EngineNotRunningError(
                "the engine is not running, so nothing can settle: call settle() inside "
                "`async with client:` or `with client:`"
            )
        return engine

    async def settle(self, *, advance_time: bool | datetime.timedelta = False) -> None:
        """Wait until no run is executing and no event is queued.

        With ``advance_time=True`` and a :class:`VirtualClock`, keep jumping the clock to
        the next due timer (retry backoff, future events) until nothing is left to do.
        Cron schedules never run out: ``advance_time=timedelta(days=7)`` jumps through
        every timer, cron ticks included, for that long, then stops.
        """
        engine = self._running_engine()
        if engine.portal is not None and threading.get_ident() != engine._thread:
            await anyio.to_thread.run_sync(self.settle_sync, advance_time)
            return
        await engine.settle(advance_time=advance_time)

    def settle_sync(self, advance_time: bool | datetime.timedelta = False) -> None:
        """The blocking twin of :meth:`settle`, for ``with client:`` programs."""
        engine = self._running_engine()
        if engine.portal is None:
            raise UsageError(
                "settle_sync() needs the engine running in a background thread (`with client:`); "
                "in async code use `await client.settle()`"
            )
        if threading.get_ident() == engine._thread:
            raise UsageError("settle_sync() was called from the engine's own event loop")
        engine.portal.call(lambda: engine.settle(advance_time=advance_time))

    def cancel(self, run_id: str) -> bool:
        """Cancel a run: at once if it is queued or suspended, else at its next step.

        Returns False if the run had already ended; raises :class:`UsageError` for an
        unknown run id.
        """
        return self._on_run(run_id, lambda engine, run: engine.cancel_run(run))

    def _on_run(self, run_id: str, action: Callable[[Engine, Run], T]) -> T:
        """``action(engine, run)`` for a known run, on the engine's thread."""

        def on_engine(engine: Engine) -> T:
            run = engine.get_run(run_id)
            if run is None:
                raise UsageError(f"no run {run_id!r} is known to this client's engine")
            return action(engine, run)

        return self._on_engine(on_engine)

    def _on_engine(self, action: Callable[[Engine], T]) -> T:
        """``action(engine)`` on the running engine's thread (carried there from another)."""
        engine = self._running_engine()
        if engine.portal is not None and threading.get_ident() != engine._thread:
            return engine.portal.call(action, engine)
        return action(engine)

    def _function_id(self, function: str | Function) -> str:
        r"""The full id of a ``Function``, a full id, or a ``fn_id`` of this client; an
        unknown one raises :class:`UsageError` naming the known ``fn_id``\ s."""
        if isinstance(function, Function):
            return function.id
        functions = self._registry.functions
        if function in functions:
            return function
        full = f"{self.app_id}-{function}"
        if full in functions:
            return full
        known = ", ".join(sorted(f.local_id for f in functions.values()))
        raise UsageError(f"no function {function!r} on this client; known fn_ids: {known}")

    def rerun(self, run_id: str) -> Run:
        """Start the ended run ``run_id`` over: a new run of its function with the same
        events, from the first step (Inngest's rerun). Returns the new run, whose
        ``rerun_of`` is ``run_id``. Event-id dedup, idempotency, rate limits, debounces,
        batches and singletons do not apply to it (they decide when an event arrives);
        concurrency, throttle, cancel rules and timeouts do.

        Raises :class:`UsageError` for an unknown or unfinished run, or one whose events
        are past the store's retention.
        """
        return self._on_run(run_id, lambda engine, run: engine.rerun_run(run))

    def replay(
        self,
        function_id: str,
        *,
        since: datetime.datetime | None = None,
        until: datetime.datetime | None = None,
        statuses: Collection[RunStatus] = (RunStatus.FAILED, RunStatus.CANCELLED),
    ) -> list[Run]:
        """Rerun, as :meth:`rerun` does, every run of ``function_id`` (its full id or
        its id within the app) that ended in one of ``statuses`` (failed or cancelled by
        default) and was queued in ``[since, until)`` (aware datetimes on the client's
        clock; None: no bound), oldest first, as Inngest's Replay does. Runs whose events
        are past the retention are skipped. Returns the new runs."""
        if not statuses or not all(s.is_finished for s in statuses):
            raise UsageError(
                f"replay(statuses=...) takes ended statuses (Completed, Failed, Cancelled), "
                f"got {list(statuses)!r}"
            )
        for name, bound in (("since", since), ("until", until)):
            if bound is not None and (
                not isinstance(bound, datetime.datetime) or bound.tzinfo is None
            ):
                raise UsageError(f"replay({name}=...) takes an aware datetime, got {bound!r}")
        full_id = self._function_id(function_id)
        low = None if since is None else datetime_to_ms(since)
        high = None if until is None else datetime_to_ms(until)

        def rerun_all(engine: Engine) -> list[Run]:
            chosen = [
                run
                for run in engine.runs(full_id)
                if run.status in statuses
                and (low is None or decode_ulid_ms(run.run_id) >= low)
                and (high is None or decode_ulid_ms(run.run_id) < high)
                and not engine.pruned_events(run)
            ]
            return [engine.rerun_run(run) for run in chosen]

        return self._on_engine(rerun_all)

    def get_event(self, event_id: str) -> StoredEvent | None:
        """The stored event with this id (as returned by ``send``), or None."""
        return self.engine.get_event(event_id)

    def events(self, name: str | None = None) -> list[StoredEvent]:
        """Stored events, oldest first, optionally only those named ``name``."""
        return self.engine.events(name)

    def get_run(self, run_id: str) -> Run | None:
        """The run with this id, or None."""
        return self.engine.get_run(run_id)

    def runs(
        self,
        function_id: str | None = None,
        event_id: str | None = None,
        status: RunStatus | None = None,
    ) -> list[Run]:
        """Runs, oldest first, filtered by full function id, event id and status."""
        return self.engine.runs(function_id=function_id, event_id=event_id, status=status)


async def _probe_handler(ctx: Any) -> None:  # pragma: no cover - never called
    """Stands in for the real handler while create_function validates its arguments."""
