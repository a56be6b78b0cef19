"""Test event-driven code with the real engine, in-process, on a virtual clock.

::

    async with eventbus.testing.running(client) as bus:   # a fresh engine for this test
        await client.send({"name": "shop/order.created", "data": {"id": 1}})
        await bus.settle(advance_time=True)                # a week of sleeps, instantly
        bus.assert_ran("checkout")

``running`` starts a new engine over the functions already registered on ``client`` (a
module-level client is fine), with a :class:`~eventbus.VirtualClock` unless a clock is
given, and fresh state. While the block runs, ``client.send`` from this task and every
task it starts goes to that engine, so tests running one after another or concurrently
never share anything.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import random
import sys
from collections.abc import AsyncIterator
from typing import Any

import attrs

from .._backend import current_backend
from .._client import ROUTES, Inngest
from .._clock import Clock, VirtualClock
from .._engine import Engine, Harness
from .._errors import UsageError
from .._event import StoredEvent
from .._function import Function
from .._run import Run, RunStatus
from ..stores import Store

__all__ = ("Bus", "Decision", "StepCall", "running")


@attrs.frozen
class Decision:
    """What the engine decided for one function when an event arrived (see ``explain``)."""

    function_id: str
    #: "started run", "no trigger matched", "expression false", "deduplicated",
    #: "rate limited", "idempotent duplicate", "throttled", "debounced", "skipped by
    #: singleton" or "cancelled by singleton".
    decision: str
    #: The run id, the function's triggers, the expression, the first event's id, or
    #: the rate limit's key and when the next run may start.
    detail: str

    def __str__(self) -> str:
        return f"{self.function_id}: {self.decision} ({self.detail})"


@attrs.frozen
class StepCall:
    """One execution of a ``step.run`` (replays of a memoized step are not calls)."""

    function_id: str
    run_id: str
    step_id: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    mocked: bool
    #: The JSON result, when the call succeeded.
    result: Any = None
    #: The exception it raised, when it failed.
    error: BaseException | None = None


class Bus:
    """A running test engine: send, move time, mock steps, and assert on what happened."""

    def __init__(self, client: Inngest, engine: Engine, seed: int | None) -> None:
        self.client = client
        self.engine = engine
        self.seed = seed
        self._harness = engine.harness or Harness()
        self._serving: contextlib.AsyncExitStack | None = None
        self._routes: dict[Inngest, Engine] = {}

    async def _start(self, engine: Engine) -> None:
        engine.attach(self._harness)
        if self.seed is not None:
            engine.shuffler = random.Random(self.seed)
        self.engine = self._routes[self.client] = engine
        stack = contextlib.AsyncExitStack()
        await stack.enter_async_context(engine.serving())
        self._serving = stack

    async def _stop(self) -> None:
        stack, self._serving = self._serving, None
        if stack is not None:
            await stack.aclose()

    # ------------------------------------------------------------------ driving

    @property
    def clock(self) -> Clock:
        """The engine's clock (a VirtualClock unless another was given)."""
        return self.engine.clock

    async def send(self, events: Any) -> list[str]:
        """Send events to this engine (the same as ``client.send`` inside ``running``)."""
        batch = self.client._validate(events)
        return await self.engine.send_batch(batch) if batch.decoded else []

    async def settle(self, *, advance_time: bool | datetime.timedelta = False) -> None:
        """Wait until nothing is running or queued; with ``advance_time=True`` also jump
        the virtual clock through every timer (sleeps, waits, retries) until none is left;
        with ``advance_time=timedelta(...)``, through every timer and cron tick for that
        long."""
        await self.engine.settle(advance_time=advance_time)

    # ------------------------------------------------------------------ crashes

    def crash_after(
        self, function: str | Function, step_id: str, *, committed: bool = True
    ) -> None:
        """Crash the engine once ``step_id`` of ``function`` has run, as if the process
        had been killed there; then ``await bus.restart()`` goes on from the store.

        With ``committed=True`` (the default) the crash comes right after the step's
        result is recorded in the store: after the restart the step is not run again.
        With ``committed=False`` it comes after the step's code returned and before its
        result is recorded: the step runs again (at least once, as on Inngest). The
        crash stops every run where it is; nothing drains and nothing more is written.
        ``step_id`` matches every reuse of the id (``"item"`` covers ``"item:1"``); the
        crash happens once.
        """
        self._harness.crash_points[self.function_id(function), step_id] = committed

    def crash(self) -> None:
        """Crash the engine now, as if the process had been killed (sleeping and waiting
        runs stay as the store has them); then ``await bus.restart()``."""
        self.engine.crash()

    @property
    def crashed(self) -> bool:
        """Whether the engine has crashed (and ``restart`` has not yet replaced it)."""
        return self.engine.crashed

    async def restart(self) -> None:
        """Stop this engine (at once if it crashed, else as the block's end would) and
        start a fresh one over the same store, clock, seed, mocks and records: it takes
        up every unfinished run, as a process restarted over its database does.

        Call it from the task that entered ``running``. ``client.send`` goes to the new
        engine from then on.
        """
        old = self.engine
        await self._stop()
        await self._start(self.client._new_engine(clock=old.clock, seed=self.seed, store=old.store))

    def cancel(self, run_id: str) -> bool:
        """Cancel a run (see ``Inngest.cancel``)."""
        run = self.engine.get_run(run_id)
        if run is None:
            raise UsageError(f"no run {run_id!r} in this test engine")
        return self.engine.cancel_run(run)

    # ------------------------------------------------------------------ ids

    def function_id(self, function: str | Function) -> str:
        """The full id for a ``Function``, a full id, or a ``fn_id`` of this client."""
        return self.client._function_id(function)

    # ------------------------------------------------------------------ mocks

    def mock_step(self, function: str | Function, step_id: str, value: Any) -> None:
        """Replace a step of ``function`` in this engine.

        For ``step.run`` a callable receives the step's real arguments (so a test can
        assert on them) and its return value is the step's; raising makes the step fail,
        with the engine's real retries. A plain value is returned as is. For
        ``wait_for_event`` give an Event (or mapping) or ``None`` for a timeout; for
        ``invoke`` the target's output, or a callable receiving ``data``. ``step_id``
        matches every reuse of the id in a run (``"item"`` covers ``"item:1"``).
        """
        self._harness.step_mocks[self.function_id(function), step_id] = value

    def clear_mocks(self) -> None:
        """Remove every step mock."""
        self._harness.step_mocks.clear()

    # ------------------------------------------------------------------ capture

    def capture(self, function: str | Function) -> None:
        """Record the runs of ``function`` without executing them, until ``drain``."""
        self._harness.captured.setdefault(self.function_id(function), [])

    def captured(self, function: str | Function) -> list[Run]:
        """The runs captured for ``function`` and not yet drained (their ``.events``)."""
        return list(self._harness.captured.get(self.function_id(function), ()))

    def clear_captured(self, function: str | Function) -> None:
        """Forget the captured runs of ``function`` (they are cancelled)."""
        for run in self._harness.captured.get(self.function_id(function), []):
            self.engine.cancel_run(run)
        self._harness.captured.get(self.function_id(function), []).clear()

    async def drain(self, function: str | Function, *, advance_time: bool = False) -> list[Run]:
        """Execute the captured runs of ``function`` and stop capturing it; returns them."""
        function_id = self.function_id(function)
        runs = self._harness.captured.pop(function_id, [])
        for run in runs:
            self.engine._enqueue(run)
        await self.settle(advance_time=advance_time)
        return runs

    # ------------------------------------------------------------------ records

    def events(self, name: str | None = None) -> list[StoredEvent]:
        """Stored events, oldest first (system events included)."""
        return self.engine.events(name)

    def get_event(self, event_id: str) -> StoredEvent | None:
        return self.engine.get_event(event_id)

    def runs(
        self,
        function: str | Function | None = None,
        *,
        event_id: str | None = None,
        status: RunStatus | None = None,
    ) -> list[Run]:
        """Runs, oldest first; ``function`` may be a Function, a full id or a fn_id."""
        function_id = None if function is None else self.function_id(function)
        return self.engine.runs(function_id=function_id, event_id=event_id, status=status)

    def get_run(self, run_id: str) -> Run | None:
        return self.engine.get_run(run_id)

    def outputs(self, function: str | Function) -> list[Any]:
        """The outputs of the completed runs of ``function``, oldest first."""
        return [run.output for run in self.runs(function, status=RunStatus.COMPLETED)]

    def sent(
        self, name: str | None = None, *, by: str | Function | None = None
    ) -> list[StoredEvent]:
        """Events sent (not system events), optionally by name and by the function that
        sent them with ``step.send_event``."""
        events = [e for e in self.engine.events(name) if not e.name.startswith("inngest/")]
        if by is not None:
            function_id = self.function_id(by)
            sent_by = self._harness.sent_by
            events = [e for e in events if sent_by.get(e.internal_id) == function_id]
        return events

    def step_calls(
        self, function: str | Function | None = None, step_id: str | None = None
    ) -> list[StepCall]:
        """Executions of ``step.run`` with their arguments and results (replays excluded)."""
        function_id = None if function is None else self.function_id(function)
        calls = []
        for call in self._harness.step_calls:
            if function_id is not None and call["function_id"] != function_id:
                continue
            if step_id is not None and call["step_id"].split(":", 1)[0] != step_id:
                continue
            calls.append(
                StepCall(
                    function_id=call["function_id"],
                    run_id=call["run_id"],
                    step_id=call["step_id"],
                    args=tuple(call["args"]),
                    kwargs=dict(call["kwargs"]),
                    mocked=call["mocked"],
                    result=call.get("result"),
                    error=call.get("error"),
                )
            )
        return calls

    def explain(self, event_id: str) -> list[Decision]:
        """For every function, what the engine decided when this event arrived."""
        return [Decision(*entry) for entry in self._harness.decisions.get(event_id, ())]

    # ------------------------------------------------------------------ assertions

    def assert_sent(
        self,
        name: str,
        *,
        by: str | Function | None = None,
        count: int | None = None,
        data: dict[str, Any] | None = None,
    ) -> list[StoredEvent]:
        """Assert events named ``name`` were sent (``count`` of them, with ``data`` a subset
        of their data); returns them. The failure message lists what was sent."""
        found = self.sent(name, by=by)
        if data is not None:
            found = [e for e in found if all(e.data.get(k) == v for k, v in data.items())]
        if (count is None and not found) or (count is not None and len(found) != count):
            wanted = "some" if count is None else str(count)
            raise AssertionError(
                f"expected {wanted} {name!r} event(s)"
                + (f" with data {data!r}" if data else "")
                + (f" sent by {by!r}" if by else "")
                + f", found {len(found)}\n{self.report()}"
            )
        return found

    def assert_ran(
        self,
        function: str | Function,
        *,
        count: int | None = None,
        status: RunStatus | None = RunStatus.COMPLETED,
    ) -> list[Run]:
        """Assert ``function`` has runs (``count`` of them) with ``status``; returns them."""
        found = self.runs(function, status=status)
        if (count is None and not found) or (count is not None and len(found) != count):
            wanted = "some" if count is None else str(count)
            state = "" if status is None else f" {status.name}"
            raise AssertionError(
                f"expected {wanted}{state} run(s) of {self.function_id(function)!r}, "
                f"found {len(found)}\n{self.report()}"
            )
        return found

    def report(self) -> str:
        """Runs (with their steps) and events so far, for failure messages."""
        lines = [f"eventbus test engine (seed={self.seed}, clock={self.clock!r})"]
        runs = self.engine.runs()
        lines.append(f"runs ({len(runs)}):")
        for run in runs[-50:]:
            lines.append(f"  {run!r} event={run.event.name!r}")
            lines.extend(f"    {step!r}" for step in run.steps)
        events = self.engine.events()
        lines.append(f"events ({len(events)}):")
        lines.extend(f"  {event!r}" for event in events[-50:])
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<eventbus.testing.Bus app_id={self.client.app_id!r} clock={self.clock!r}>"


def _seed_scheduler(seed: int) -> None:
    """Make the event loop's own scheduling choices reproducible where it has any.

    asyncio runs ready tasks in FIFO order already; trio picks among them at random,
    from a generator it exposes for exactly this (its Hypothesis integration seeds it).
    """
    if current_backend() == "trio":
        try:
            from trio._core import _run as trio_run
        except ImportError:  # pragma: no cover - a trio without that hook
            return
        generator = getattr(trio_run, "_r", None)
        if isinstance(generator, random.Random):
            generator.seed(seed)


def _shadow_client(inngest_client: Any, functions: Any) -> Inngest:
    """An eventbus client holding an official SDK app's functions."""
    from ..contrib._sdk import from_inngest, is_sdk_function

    if (
        functions is None
        or isinstance(functions, (str, bytes))
        or not all(is_sdk_function(fn) for fn in functions)
    ):
        raise UsageError(
            "running(inngest_client, functions=[...]) takes the list of inngest.Function "
            f"the app passes to serve(), got functions={functions!r}"
        )
    logger = getattr(inngest_client, "logger", None)
    shadow = Inngest(
        str(inngest_client.app_id), logger=logger if isinstance(logger, logging.Logger) else None
    )
    for fn in functions:
        converted = from_inngest(fn, client=inngest_client)
        for function in converted:  # a repeated fn_id is reported here, at engine start
            shadow._registry.check_unique(function.id)
        for function in converted:
            shadow._registry.add(function)
    return shadow


@contextlib.asynccontextmanager
async def running(
    client: Any,
    clock: Clock | None = None,
    seed: int | None = None,
    *,
    functions: Any = None,
    store: Store | None = None,
) -> AsyncIterator[Bus]:
    """Run a fresh engine for ``client``'s functions for the length of the block.

    ``client`` is an eventbus client, or an official ``inngest.Inngest`` with
    ``functions=[...]``, the ``inngest.Function`` list its app passes to ``serve()``: they
    run unchanged, with their configuration and the SDK's context and step API.

    ``store`` is where the engine keeps its records: by default the client's store (a
    fresh :class:`~eventbus.stores.MemoryStore` when it has none). ``bus.crash_after``
    and ``bus.restart`` test what survives a crash over it.

    ``clock`` defaults to a new :class:`VirtualClock`. ``seed`` makes the run
    reproducible: retry jitter, the order in which runs started by one event and parallel
    branches are scheduled, and (on trio) the event loop's own scheduling choices.

    Inside the block ``client.send`` (from this task and every task it starts, handlers
    included) goes to this engine, and what its runs send stays in it; leaving the block
    lets queued runs finish (for up to the client's ``shutdown_timeout``), then stops the
    engine.
    """
    if type(client).__module__.startswith("inngest."):
        client = _shadow_client(client, functions)
    elif functions is not None:
        raise UsageError(
            "functions= is for an official inngest.Inngest client; an eventbus client's "
            "functions are the ones registered on it"
        )
    if not isinstance(client, Inngest):
        raise UsageError(
            f"running() takes an eventbus.Inngest or an inngest.Inngest client, got {client!r}"
        )
    engine = client._new_engine(
        clock=clock if clock is not None else VirtualClock(), seed=seed, store=store
    )
    engine.attach(Harness())
    if seed is not None:
        _seed_scheduler(seed)
    bus = Bus(client, engine, seed)
    # One dict for the block: restart() points it at the new engine, for every task.
    routes = bus._routes = dict(ROUTES.get() or {})
    routes[client] = engine
    token = ROUTES.set(routes)
    try:
        await bus._start(engine)
        try:
            yield bus
        except BaseException:
            # As `async with engine.serving()` would: the error is the block's.
            stack, bus._serving = bus._serving, None
            if stack is not None:
                exc = sys.exc_info()
                if not await stack.__aexit__(*exc):
                    raise
            else:  # pragma: no cover - restart() failed to start the new engine
                raise
        else:
            await bus._stop()
    finally:
        ROUTES.reset(token)
