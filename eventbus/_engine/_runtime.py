"""The in-process engine: stores events, deduplicates, fans out, runs and retries.

Execution model. ``ingest`` is synchronous: it stores each event, checks the dedup
index and creates one run per matching function, queueing it. Runs are executed by a
small pool of worker tasks in the engine's task group. A worker awaits handlers one
after another; before it starts a run while more are queued it makes sure a spare
worker exists, so a handler that suspends (awaits I/O, sleeps) never holds up the
runs behind it, while handlers that never suspend cost no task spawn at all.

Timers (retry backoff, events with a future ``ts``) live in a heap keyed by due time
on the client clock. With a :class:`~eventbus.VirtualClock` they fire when the clock
is advanced; otherwise a timer task sleeps until the earliest one is due.

Bounds and isolation. Workers and the timer task start from the context the engine was
started in (never from the task that happened to queue a run, which may be inside a
step), so nothing of one run leaks into another. At most ``max_concurrency`` runs
execute at once; a send from outside the engine waits while ``max_queued_runs`` runs
are queued, then accepts its whole batch as the last thing it does, so a cancelled send
has accepted nothing. Each worker runs its handlers inside a cancel scope of its own:
cancelling a run, or its finish timeout, cancels that scope and ends the executing
handler at once, and the worker goes on in a fresh scope. Nothing a handler
raises or returns can stop the engine, except ``KeyboardInterrupt``, ``SystemExit`` and
other ``BaseException``s, which fail their run, are reported, and propagate.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import functools
import inspect
import json
import logging
import math
import random
import sys
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, cast

import anyio
import anyio.abc
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
from anyio.lowlevel import checkpoint
from sortedcontainers import SortedList

from .._backend import current_backend
from .._clock import Clock, VirtualClock, ms_to_datetime
from .._context import Context, ContextSync
from .._cron import CronSchedule, scheduled_id
from .._errors import (
    EngineNotRunningError,
    NonRetriableError,
    RetryAfterError,
    StepError,
    UsageError,
    error_info,
)
from .._event import StoredEvent, make_stored
from .._expr import CLOCK_KEY, UNKNOWN, CompiledExpression, compile_expression
from .._flow import Claim, Slots, priority_factor, rate_key
from .._function import (
    FAILED_EVENT,
    FINISHED_EVENT,
    INVOKED_EVENT,
    SCHEDULED_EVENT,
    Function,
    Registry,
    TriggerEvent,
)
from .._harness import Explain, Harness
from .._ids import UlidGenerator, decode_ulid_ms
from .._json import OutputError, decode_output, encode_output
from .._middleware import HookError, Hooks, StepOutput
from .._run import (
    RUN_CANCELLED,
    RUN_COMPLETED,
    RUN_FAILED,
    RUN_QUEUED,
    RUN_RUNNING,
    RUN_SLEEPING,
    RUN_WAITING,
    STEP_COMPLETED,
    STEP_FAILED,
    STEP_SLEEPING,
    Run,
    RunStatus,
    StepRecord,
    StepStatus,
    finish_payload,
    finished_event,
)
from .._step import CancelRun, Execution, FailRun, Interrupt, clear_step_context
from ..stores import MemoryStore, Store
from ._machine import (
    COMPLETE,
    FAIL,
    CancelAction,
    Decision,
    Outcome,
    Retry,
    RunFacts,
    TimeoutAction,
    after_return,
    announcements,
    cancel,
    end_of_execution,
    pause_deadline,
    resume,
    retry_or_fail,
)
from ._pauses import CANCEL, Pause, Pauses
from ._pauses import FAIL as FAIL_STEP
from ._policy import clamp_retry_after
from ._timers import TimerOwner, Timers

if sys.version_info < (3, 11):  # pragma: no cover - the backport anyio depends on
    from exceptiongroup import BaseExceptionGroup  # type: ignore[import-not-found, unused-ignore]

if TYPE_CHECKING:
    from .._event import EventBatch
    from ..contrib.otel import Tracing

MAX_IDLE_WORKERS = 8
SYNC_THREADS = 40
YIELD_EVERY = 64
#: Queued runs beyond which a send yields once to the workers before accepting.
BACKLOG_YIELD = 256
#: Unfinished runs named one by one in the shutdown warning.
REPORT_RUNS = 50
_LOG = logging.getLogger("eventbus")
_SHUTTING_DOWN = "the eventbus engine is shutting down and accepts no more events"
#: Dedup-index key prefix for seeded internal ids (user ids cannot collide: they are
#: looked up bare).
_SEEDED = "\x00seeded:"
#: The engine whose worker (or timer) task this is, if any.
_ENGINE: contextvars.ContextVar[Engine | None] = contextvars.ContextVar(
    "eventbus_engine", default=None
)
_SYSTEM_NAMES = frozenset({FAILED_EVENT, FINISHED_EVENT})
#: announcements(status, system_run=...) for every status (by RunStatus.position), built
#: from the decision itself: a lookup on the way out of every run instead of a call.
_ANNOUNCE = {
    system_run: tuple(announcements(status, system_run=system_run) for status in RunStatus)
    for system_run in (False, True)
}
AsyncHandler = Callable[[Context], Awaitable[Any]]
SyncHandler = Callable[[ContextSync], Any]


def log_fields(
    run: Run, *, step_id: str | None = None, attempt: int | None = None
) -> dict[str, Any]:
    """The ``extra`` of the engine's log records about ``run`` (structlog, JSON
    formatters and log shippers read them as fields): ``run_id``, ``function_id`` and
    ``event_id`` always, ``step_id`` and ``attempt`` (0-based, as ``ctx.attempt``) when
    the record is about one."""
    fields: dict[str, Any] = {
        "run_id": run.run_id,
        "function_id": run.function.id,
        "event_id": run.event.internal_id,
    }
    if step_id is not None:
        fields["step_id"] = step_id
    if attempt is not None:
        fields["attempt"] = attempt
    return fields


class _Pending:
    """What a debounce or a batch holds back for a function and key: since when, and its
    timer."""

    __slots__ = ("_timers", "first_ms", "function", "key", "seq")

    def __init__(self, function: Function, key: str, first_ms: int) -> None:
        self._timers: set[int] | None = None
        self.function = function
        self.key = key
        self.first_ms = first_ms
        self.seq = 0


class _Debounce(_Pending):
    """A pending debounce: the event it holds."""

    __slots__ = ("event",)

    def __init__(self, function: Function, key: str, event: StoredEvent, first_ms: int) -> None:
        super().__init__(function, key, first_ms)
        self.event = event


class _OpenBatch(_Pending):
    """An open batch: its id, its events in arrival order and their size (bytes, as
    JSON)."""

    __slots__ = ("batch_id", "events", "size")

    def __init__(self, function: Function, key: str, batch_id: str, first_ms: int) -> None:
        super().__init__(function, key, first_ms)
        self.batch_id = batch_id
        self.events: list[StoredEvent] = []
        self.size = 0


def _held_key(compiled: CompiledExpression | None, env: dict[str, Any] | None, default: str) -> str:
    """The key of a debounce or a batch: the expression's value as text (a failed
    evaluation is ``<invalid>``), or ``default`` without one."""
    if compiled is None:
        return default
    assert env is not None  # built by _schedule: the function has keys
    value = compiled.evaluate(env)
    return "<invalid>" if value is UNKNOWN else rate_key(value)


def _event_size(stored: StoredEvent) -> int:
    """About what ``stored`` takes in a batch: its JSON, as Inngest measures its batches."""
    return len(stored.name) + len(
        json.dumps(
            [stored.data, stored.user, stored.id], separators=(",", ":"), default=str
        ).encode()
    )


class _CronOwner:
    """What a function's cron ticks belong to, in the timer heap."""

    __slots__ = ("_timers",)

    def __init__(self) -> None:
        self._timers: set[int] | None = None


def _iso(ms: int) -> str:
    return f"{ms_to_datetime(ms):%Y-%m-%dT%H:%M:%S.%fZ}"


def _throttle_value(value: object) -> object:
    """A throttle key's value: Inngest prints it (a missing field, false, is "false")."""
    return False if value is UNKNOWN else value


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found.extend(_leaves(exc))
        else:
            found.append(exc)
    return found


def _unwrap(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """What a task group raised, as the user should see it: a KeyboardInterrupt or
    SystemExit as itself (so ``SystemExit(3)`` exits with status 3), a lone exception as
    itself, several as the group."""
    leaves = _leaves(group)
    for exc in leaves:
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            return exc
    return leaves[0] if len(leaves) == 1 else group


async def _cancelled_for_real() -> bool:
    """After a handler raised the backend's cancellation exception: is this task (or a
    scope around it) really being cancelled, or did the handler raise one it caught
    elsewhere (say, from awaiting a task somebody else cancelled)?"""
    if current_backend() == "asyncio" and sys.version_info >= (3, 11):
        import asyncio

        task = asyncio.current_task()
        if task is not None and task.cancelling():
            return True
    try:
        await checkpoint()  # anyio and trio cancellation is level-triggered: it raises again
    except anyio.get_cancelled_exc_class():
        return True
    return False


class Engine:
    """One running engine: the records, the dedup index, the queue and the workers."""

    def __init__(
        self,
        *,
        registry: Registry,
        clock: Clock,
        logger: logging.Logger,
        event_retention: int,
        seed: int | None = None,
        validate: Callable[[Any], EventBatch] | None = None,
        max_queued_runs: int | None = None,
        max_concurrency: int | None = None,
        shutdown_timeout: float = math.inf,
        store: Store | None = None,
        tracing: Tracing | None = None,
        explain_events: int | None = None,
    ) -> None:
        self.registry = registry
        #: eventbus.contrib.otel's spans, when the client is instrumented.
        self.tracing = tracing
        #: The trace context of the send being ingested (tracing only).
        self._trace_parent: Any = None
        #: Validates what a run sends (``step.send_event``) against the client's limits.
        self.validate = validate
        self.max_queued_runs = math.inf if max_queued_runs is None else max_queued_runs
        self.max_concurrency = math.inf if max_concurrency is None else max_concurrency
        self.shutdown_timeout = shutdown_timeout
        #: Set by eventbus.testing: step mocks, captured functions, and a recorder.
        self.harness: Harness | None = None
        #: Decisions per event for explain() (eventbus.testing) and the dev UI, or None.
        self.explain: Explain | None = (
            None if explain_events is None else Explain(limit=explain_events)
        )
        #: Let the store build a finished event when it is read, when nothing can see it
        #: as it is sent (see _announce_end); False builds every one as it is sent.
        self.defer_finished = True
        #: With a seed under eventbus.testing: shuffles runs started together and the
        #: start order of parallel branches, reproducibly.
        self.shuffler: random.Random | None = None
        self.clock = clock
        #: The user's logger, behind ``ctx.logger``; the engine's own messages go to
        #: ``self.log`` (the ``eventbus`` logger), never to it.
        self.logger = logger
        self.log = _LOG
        self.event_retention = event_retention
        self._seed = seed
        self._random: random.Random | None = None  # made on first use: seeding costs ~9 us
        #: Events, dedup claims and runs (see eventbus.stores).
        self.store: Store = store if store is not None else MemoryStore()
        self.store.bind(event_retention)
        self.dedup = self.store.dedup
        #: True when the store keeps what it is given across processes (SqliteStore):
        #: the engine then marks what changes and waits for commits where it promises.
        self.durable = self.store.durable
        self._store = self.store.add_event
        self._record_run = self.store.add_run
        self._ids = UlidGenerator()
        self._ready: deque[Run] = deque()
        self._active = 0  # runs queued or executing
        self._idle = 0
        self._starting = 0
        self._workers = 0  # alive: executing, idle or starting
        self._room: anyio.Event | None = None  # set when the queue drops below its bound
        self._context: contextvars.Context | None = None
        self._token: anyio.lowlevel.EventLoopToken | None = None
        #: True while the engine drains at shutdown: sends from outside are refused.
        self.draining = False
        #: True once crash() stopped it: as if the process had died there.
        self.crashed = False
        self._worker_scopes: set[anyio.CancelScope] = set()
        self._wake = anyio.Event()
        self._wake_pending = False
        self._settled: anyio.Event | None = None
        self._spare_settled: anyio.Event | None = None
        self._timers = Timers()
        #: Cron ticks: apart from the runs' timers, since they never run out.
        self._cron_timers = Timers()
        self._pauses = Pauses()
        #: (function id, singleton key) -> the active run holding it.
        self._singletons: dict[tuple[str, str], Run] = {}
        #: (function id, debounce key) -> the pending debounce.
        self._debounces: dict[tuple[str, str], _Debounce] = {}
        #: (function id, batch key) -> the open batch.
        self._batches: dict[tuple[str, str], _OpenBatch] = {}
        #: Throttled runs of functions with a priority, waiting for a turn to start:
        #: (function id, throttle key) -> (score, run id, run), best first; and each
        #: such run's turn (its key, and the timer that gives it).
        self._backlogs: dict[tuple[str, str], SortedList] = {}
        self._turns: dict[Run, tuple[tuple[str, str], int]] = {}
        #: Concurrency slots (see eventbus._flow.Slots): held by queued and executing
        #: runs and by their parallel steps; waited for by runs.
        self._slots: Slots[Run] = Slots()
        self._timer_changed: anyio.Event | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._thread: int | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self.portal: anyio.from_thread.BlockingPortal | None = None

    @property
    def random(self) -> random.Random:
        """Retry jitter: seeded with the engine's seed (from the OS when None)."""
        if self._random is None:
            self._random = random.Random(self._seed)
        return self._random

    # ------------------------------------------------------------------ lifecycle

    @property
    def running(self) -> bool:
        return self._tg is not None

    @property
    def backlog(self) -> int:
        """Runs queued and not yet started."""
        return len(self._ready)

    def attach(self, harness: Harness) -> None:
        """eventbus.testing's harness, and an explain() record keeping every decision."""
        self.harness = harness
        self.explain = Explain(harness)

    def start(self, tg: anyio.abc.TaskGroup) -> None:
        """Start serving inside ``tg`` (the caller's task group)."""
        self._tg = tg
        self._thread = threading.get_ident()
        self._token = anyio.lowlevel.current_token()
        self._wake = anyio.Event()
        self.draining = False
        # Workers and timers start from this context, whoever queues the work: the
        # caller's context variables (eventbus.testing's routes) without any step's.
        context = self._context = contextvars.copy_context()
        context.run(clear_step_context)
        context.run(_ENGINE.set, self)
        # Separate pools, so handler threads waiting on their steps cannot starve the
        # threads that run those steps.
        self.handler_threads = anyio.CapacityLimiter(SYNC_THREADS)
        self.step_threads = anyio.CapacityLimiter(SYNC_THREADS)
        if isinstance(self.clock, VirtualClock):
            self._unsubscribe = self.clock.subscribe(self._on_clock_advance)
        else:
            context.run(tg.start_soon, self._timer_loop)

    def stop(self) -> None:
        """Stop accepting work and report what is unfinished; the caller cancels the
        task group (which cancels executing handlers)."""
        self._tg = None
        self._release_senders()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        # Idle workers and the timer loop end of themselves rather than by cancellation
        # (a cancelled task's traceback holds its frames, and so the engine, in a
        # reference cycle): see _work and _timer_loop.
        self._wake.set()
        if self._timer_changed is not None:
            self._timer_changed.set()
        if not self.crashed:
            self.report_unfinished("eventbus engine stopped")

    def crash(self) -> None:
        """Stop at once, as if the process had died right here (eventbus.testing's
        ``crash_after``): every executing run is cancelled where it is, nothing drains,
        and the store writes nothing more, so what it holds is exactly what a new engine
        over it takes up."""
        if self.crashed or self._tg is None:
            return
        self.crashed = True
        self._tg = None
        self.store.abandon()
        self._ready.clear()  # still QUEUED in the store: the next engine queues them
        for scope in self._worker_scopes:
            scope.cancel()
        if self._timer_changed is not None:
            self._timer_changed.set()  # the real-clock timer loop ends
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._release_senders()
        if self._settled is not None:
            self._settled.set()
            self._settled = None
        self.report_unfinished("eventbus engine crashed (simulated by eventbus.testing)")

    def unfinished_runs(self) -> list[Run]:
        """Runs not yet COMPLETED, FAILED or CANCELLED, oldest first."""
        return self.store.unfinished_runs()

    def report_unfinished(self, why: str) -> None:
        """Warn, naming each unfinished run (up to REPORT_RUNS) and its status."""
        unfinished = self.unfinished_runs()
        if not unfinished:
            return
        named = "; ".join(
            f"{run.run_id} ({run.function.id}, {run.status.name}"
            + (", interrupted while executing" if run._executing else "")
            + ")"
            for run in unfinished[:REPORT_RUNS]
        )
        more = len(unfinished) - REPORT_RUNS
        self.log.warning(
            "%s with %d unfinished run(s), %s: %s%s",
            why,
            len(unfinished),
            f"kept in {self.store!r}; they resume when an engine starts over it again"
            if self.durable
            else f"kept only in this process's memory ({self.store!r})",
            named,
            f"; and {more} more (client.runs() lists them)" if more > 0 else "",
        )

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[Engine]:
        """Run the engine for the length of the block, then drain it.

        Leaving the block stops accepting sends from outside, lets queued and executing
        runs finish for up to ``shutdown_timeout`` seconds, then cancels what still
        executes and warns about every unfinished run. An exception from the block, or a
        ``KeyboardInterrupt``/``SystemExit`` from a handler, comes out as itself, not
        wrapped in an exception group.
        """
        body_error: BaseException | None = None
        try:
            async with anyio.create_task_group() as tg:
                self.start(tg)
                try:
                    await self._open_store(tg)
                    yield self
                except BaseException as exc:
                    body_error = exc
                else:
                    await self.drain()
                finally:
                    self.stop()
                    # What still executes, timers and the store's writer end first (a
                    # write under way lands), so nothing changes the records after the
                    # store closed. Idle workers and the timer loop, woken by stop(), end
                    # of themselves first.
                    tg.cancel_scope.cancel()
                    with anyio.CancelScope(shield=True):
                        await self.store.close()
        except BaseExceptionGroup as group:
            raise _unwrap(group) from None
        finally:
            # Its context holds this engine (_ENGINE): dropped once every task has ended,
            # so a stopped engine and its records make no reference cycle.
            self._context = None
        if body_error is not None:
            raise body_error

    async def _open_store(self, tg: anyio.abc.TaskGroup) -> None:
        """Open the store and take up the unfinished runs it holds (after a restart)."""
        runs, orphans = await self.store.open(self.registry)
        assert self._context is not None
        self._context.run(self.store.start, tg)
        if orphans:
            self.log.warning(
                "%d unfinished run(s) in %r belong to functions this client no longer has; "
                "they stay as they are until a client with those functions opens it: %s",
                len(orphans),
                self.store,
                "; ".join(orphans[:REPORT_RUNS]),
            )
        self._arm_crons()
        self._arm_debounces()
        self._arm_batches()
        if runs:
            self._resume_recovered(runs)
        self._fire_due()  # what fell due while no engine ran happens now

    def _resume_recovered(self, runs: list[Run]) -> None:
        """Re-arm what unfinished runs were waiting on, and queue the rest: sleeps wake at
        their time (at once if it passed), waits and invokes wait for what remains of
        their timeout, retries keep their backoff, runs that were executing replay from
        their journal, cancel rules and timeouts keep their deadlines."""
        now = self.clock.now_ms()
        for run in runs:
            run._executing = run._scheduled = run._cancel_requested = False
            run._rerun = False
            run._scope = None
            run._timers = None
            function = run.function
            if function.singleton is not None:
                slot = self._singleton_slot(function, self._event_env(run.event))
                if slot is not None:
                    self._singletons[slot] = run
                    run._singleton = slot
            created = run.event.received_at_ms
            if function.cancel or function.timeouts:
                self._arm(run, created)
            timeouts = function.timeouts
            if (
                timeouts is not None
                and timeouts.finish_ms is not None
                and run._started_ms is not None
            ):
                self._add_timer(
                    run,
                    run._started_ms + timeouts.finish_ms,
                    functools.partial(self._finish_timeout, run),
                )
            plan = resume(
                ((r.id, r.status, r.kind) for r in run.journal.values()), run._due_ms, now
            )
            for step_id, status, kind in plan.rearm:
                record = run.journal[step_id]
                if status is STEP_SLEEPING:
                    run.status = RUN_SLEEPING
                    assert record.wake_ms is not None
                    self._add_timer(
                        run, record.wake_ms, functools.partial(self._end_sleep, run, record)
                    )
                elif kind == "invoke":
                    self._await_invoked(run, record)
                else:
                    assert record.wait_for is not None
                    event, if_exp = record.wait_for
                    compiled = None if if_exp is None else compile_expression(if_exp)
                    self.wait_step(run, record, event, compiled)
            if plan.suspended:
                continue
            if plan.due_ms is not None and self._prioritized_backlog(run):
                slot = (function.id, self._throttle_key(function, self._event_env(run.event)))
                self._wait_turn(run, slot, plan.due_ms)
            elif plan.due_ms is not None:
                self._add_timer(run, plan.due_ms, functools.partial(self._enqueue, run))
            else:
                self._enqueue(run)
        self.log.info("took up %d unfinished run(s) from %r", len(runs), self.store)

    async def drain(self) -> None:
        """Refuse outside sends; wait up to ``shutdown_timeout`` for runs to finish."""
        self.draining = True
        self._release_senders()
        if not self._active or self.crashed:
            return  # nothing queued or executing (the usual case after a settle)
        if self.shutdown_timeout == math.inf:
            await self.settle()
            return
        with anyio.move_on_after(self.shutdown_timeout):
            await self.settle()

    def _release_senders(self) -> None:
        """Wake sends waiting for room: they are refused, never left waiting forever."""
        if self._room is not None:
            self._room.set()
            self._room = None

    # ------------------------------------------------------------------ ingest

    def ingest(
        self, decoded: Sequence[dict[str, Any]], internal_ids: Sequence[str] | None = None
    ) -> list[str]:
        """Accept validated, JSON-decoded events; returns their internal ids in order.

        ``internal_ids`` (from a request's id seed) are the ids to give them; an event
        whose seeded id was already accepted is a retried request's and is skipped: it
        keeps its id and starts nothing, as on Inngest.
        """
        now = self.clock.now_ms()
        given = None
        if internal_ids is not None:
            every_id = list(internal_ids)
            decoded, fresh_ids = self._unseen(decoded, every_id, now)
            given = iter(fresh_ids)
        if self.tracing is not None:
            self._trace_parent = self.tracing.capture()  # the runs it starts go under it
        try:
            new_id = self._ids.new
            seen = self.dedup.seen
            store = self._store
            cache = self.registry.cache
            explain = self.explain
            ids: list[str] = []
            for raw in decoded:
                internal_id = new_id(now) if given is None else next(given)
                user_id = raw["id"]
                data = raw["data"]
                if "_inngest" in data:
                    del data["_inngest"]
                duplicate = bool(user_id) and seen(user_id, now)
                if explain is not None and user_id:
                    self._explain_dedup(explain, user_id, internal_id, duplicate)
                stored = make_stored(
                    raw["name"],
                    data,
                    user_id or internal_id,
                    raw["ts"] or now,
                    raw["v"],
                    raw["user"],
                    internal_id,
                    now,
                    duplicate,
                )
                store(stored)
                ids.append(internal_id)
                if self._pauses.by_name:
                    self._match_pauses(stored)  # duplicates resume waits too, as on Inngest
                if not duplicate:
                    matches = cache.get(stored.name)
                    if matches != () or (explain is not None and explain.unmatched):
                        self._fan_out(stored, now, matches=matches)
                elif self.registry.holding:
                    # Batches and debounces take duplicates too: event ids do not dedup them.
                    self._fan_out(stored, now, duplicate=True)
            return ids if internal_ids is None else every_id
        finally:
            self._trace_parent = None

    def _unseen(
        self, decoded: Sequence[dict[str, Any]], internal_ids: list[str], now: int
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """The events (and their seeded ids) not accepted before, within the 24 h window."""
        fresh: list[dict[str, Any]] = []
        fresh_ids: list[str] = []
        seen = self.dedup.seen
        for raw, internal_id in zip(decoded, internal_ids, strict=True):
            if not seen(_SEEDED + internal_id, now):
                fresh.append(raw)
                fresh_ids.append(internal_id)
        return fresh, fresh_ids

    def _explain_dedup(
        self, explain: Explain, user_id: str, internal_id: str, duplicate: bool
    ) -> None:
        """Record, for explain(), the first event with an id and what its duplicates did."""
        if not duplicate:
            explain.first_seen(user_id, internal_id)
            return
        first = explain.first_with_id.get(user_id, "?")
        explain.add(
            internal_id,
            *(
                (f.id, "deduplicated", first)
                for f in self.registry.functions.values()
                if f.batch is None and f.debounce is None  # those take it (see _fan_out)
            ),
        )

    def _emit(self, name: str, data: dict[str, Any], now: int, event_id: str | None = None) -> None:
        """Send a system event through the normal path (stored, triggers functions)."""
        internal_id = self._ids.new(now)
        self._emit_stored(
            make_stored(name, data, event_id or internal_id, now, None, {}, internal_id, now, False)
        )

    def _emit_stored(self, stored: StoredEvent) -> None:
        now = stored.received_at_ms
        name = stored.name
        self._store(stored)
        if self._pauses.by_name:
            self._match_pauses(stored)
        if self.registry.cache.get(name) != ():  # usually no function listens
            self._fan_out(stored, now)

    def _fan_out(
        self,
        stored: StoredEvent,
        now: int,
        duplicate: bool = False,
        matches: tuple[tuple[Function, tuple[TriggerEvent, ...]], ...] | None = None,
    ) -> None:
        """Start (or hold) the runs ``stored`` triggers. A ``duplicate`` (an event id
        seen within 24 h) goes only to batches and debounces, as on Inngest: it is
        deduplicated by every function that would run for it alone. ``matches``: the
        registry's match for its name, when the caller has it."""
        if matches is None:
            matches = self.registry.matching(stored.name)
        explain = self.explain
        if explain is not None and explain.unmatched and not duplicate:
            self._explain_unmatched(stored, matches, explain)
        if not matches:
            return
        env: dict[str, Any] | None = None
        started: list[Run] = []
        for function, triggers in matches:
            if function.plain and not duplicate:
                # No expression and no flow control decides anything (see Function.plain):
                # what _schedule would do for it, without its checks.
                new = self._new_run(function, stored, now)
                if stored.ts is not None and stored.ts > now:
                    self._queue_at(new, stored.ts)  # a future-dated event starts at its ts
                else:
                    started.append(new)
                continue
            if duplicate and not self._holds_duplicate(function, stored, explain):
                continue
            if function.has_expressions:
                if env is None:
                    env = self._event_env(stored)
                if not any(t.matches(env) for t in triggers):
                    if explain is not None:
                        expressions = " | ".join(
                            t.expression for t in triggers if t.expression is not None
                        )
                        explain.add(
                            stored.internal_id, (function.id, "expression false", expressions)
                        )
                    continue
            run, env = self._schedule(function, stored, now, env, explain)
            if run is not None:
                started.append(run)
        if self.shuffler is not None:
            self.shuffler.shuffle(started)
        self._queue_new(started)

    def _holds_duplicate(
        self, function: Function, stored: StoredEvent, explain: Explain | None
    ) -> bool:
        """Whether the duplicate ``stored`` joins a batch or a debounce of ``function``."""
        if function.debounce is not None:
            return True
        condition = function.batch_if
        if function.batch is None:
            return False
        if condition is None or condition.evaluate(self._event_env(stored)) is True:
            return True
        if explain is not None:  # it would run alone: deduplicated by its id
            explain.add(
                stored.internal_id,
                (function.id, "deduplicated", explain.first_with_id.get(stored.id or "", "?")),
            )
        return False

    def _schedule(
        self,
        function: Function,
        stored: StoredEvent,
        now: int,
        env: dict[str, Any] | None,
        explain: Explain | None,
        held: tuple[StoredEvent, ...] | None = None,
        batch_id: str | None = None,
    ) -> tuple[Run | None, dict[str, Any] | None]:
        """The flow control of a run ``stored`` would start of ``function`` (Inngest's
        order: batching, rate limit, debounce, singleton, then the start time: ts and
        throttle); returns the run to start now (None if none, or later), and the event
        view built on the way. ``held``: the events of a batch or a debounce that is due
        (``stored`` the first), the run's events; the first three are behind them;
        ``batch_id``: the batch's."""
        if env is None and function.flow_keys:
            env = self._event_env(stored)
        if held is None:
            batch = function.batch
            if batch is not None:
                condition = function.batch_if
                # As Inngest: an event whose if is not true (false, or an error) runs alone.
                if condition is None or condition.evaluate(env or {}) is True:
                    return self._batch(function, stored, now, env, explain), env
            if function.rate_limit is not None:
                refused = self._rate_limited(function, stored, now, env)
                if refused is not None:
                    if explain is not None:
                        explain.add(stored.internal_id, (function.id, *refused))
                    return None, env
            if function.debounce is not None:
                self._debounce(function, stored, now, env, explain)
                return None, env
        slot = None
        if function.singleton is not None:
            slot = self._singleton_slot(function, env)
            holder = None if slot is None else self._singletons.get(slot)
            if holder is not None and function.singleton.mode == "skip":
                if explain is not None:
                    explain.add(
                        stored.internal_id,
                        (function.id, "skipped by singleton", f"active run {holder.run_id}"),
                    )
                return None, env
            if holder is not None:
                # As Inngest: an executing step finishes first; it ends CANCELLED.
                self.cancel_run(holder, interrupt=False)
                if explain is not None:
                    explain.add(
                        holder.event.internal_id,
                        (function.id, "cancelled by singleton", f"run {holder.run_id}"),
                    )
        run = self._new_run(function, stored if held is None else held, now, batch_id)
        if slot is not None:
            self._singletons[slot] = run
            run._singleton = slot
        if function.cancel or function.timeouts:
            self._arm(run, now)
        # Inngest schedules runs of future-dated events at their ts; a throttle
        # spaces the starts after that.
        due = stored.ts if stored.ts is not None and stored.ts > now else now
        if function.throttle is not None:
            key = self._throttle_key(function, env)
            due = self._throttled(function, key, due)
            if due > now and explain is not None:
                explain.add(
                    stored.internal_id,
                    (function.id, "throttled", f"run {run.run_id} queued until {_iso(due)}"),
                )
            if due > now and function.priority_run is not None:
                self._wait_turn(run, (function.id, key), due)
                return None, env
        if due > now:
            self._queue_at(run, due)
            return None, env
        return run, env

    def _new_run(
        self,
        function: Function,
        events: StoredEvent | tuple[StoredEvent, ...],
        now: int,
        batch_id: str | None = None,
    ) -> Run:
        """A new run of ``function`` for ``events``, recorded (and traced, explained)."""
        run = Run(self._ids.new(now), function, events)
        if batch_id is not None:
            run.batch_id = batch_id
        self._record_run(run)
        if self.tracing is not None:
            self.tracing.run_created(run, self._trace_parent)
        explain = self.explain
        if explain is not None:
            for event in run.events:
                explain.add(event.internal_id, (function.id, "started run", run.run_id))
        return run

    def _wait_turn(self, run: Run, slot: tuple[str, str], due: int) -> None:
        """Throttle and priority: ``run`` waits in its key's backlog, in priority order;
        each turn (a time the throttle reserved) starts the best run waiting then."""
        backlog = self._backlogs.get(slot)
        if backlog is None:
            backlog = self._backlogs[slot] = SortedList()
        # As Inngest scores queue items: when it queued (its id's time) less its factor.
        score = decode_ulid_ms(run.run_id) - self._priority_factor(run) * 1000
        backlog.add((score, run.run_id, run))
        self._give_turn(run, slot, due)

    def _give_turn(self, run: Run, slot: tuple[str, str], due: int) -> None:
        run._due_ms = due
        seq = self._add_timer(run, due, functools.partial(self._take_turn, run))
        self._turns[run] = (slot, seq)

    def _take_turn(self, run: Run) -> None:
        """``run``'s turn came: the best run waiting in its backlog starts (``run``
        itself, or one of a higher priority, whose later turn ``run`` takes)."""
        slot, _ = self._turns.pop(run)
        backlog = self._backlogs[slot]
        while True:
            best: Run = backlog[0][2]
            if best is run or not best.status.is_finished:
                break
            backlog.pop(0)  # cancelled while it waited: its turn went with it
            self._turns.pop(best, None)
        backlog.pop(0)
        if best is not run:
            later, seq = best._due_ms, self._turns.pop(best)[1]
            assert later is not None
            self._cancel_timer(best, seq)
            self._give_turn(run, slot, later)
            self.store.touch(run)  # its new turn, should the process stop before it
        if not backlog:
            del self._backlogs[slot]
        self._enqueue(best)

    @staticmethod
    def _prioritized_backlog(run: Run) -> bool:
        """Whether ``run`` waits for a throttle's turn by priority (it has not started)."""
        function = run.function
        return (
            function.throttle is not None
            and function.priority_run is not None
            and run._started_ms is None
        )

    def _event_env(self, stored: StoredEvent) -> dict[str, Any]:
        """What expressions about ``stored`` evaluate against (triggers, keys)."""
        return {"event": stored.expr_view(), CLOCK_KEY: self.clock}

    def _queue_at(self, run: Run, due: int) -> None:
        """Queue ``run`` at ``due`` (a future-dated event, a throttle's turn)."""
        run._due_ms = due
        self._add_timer(run, due, functools.partial(self._enqueue, run))

    def _debounce(
        self,
        function: Function,
        stored: StoredEvent,
        now: int,
        env: dict[str, Any] | None,
        explain: Explain | None,
    ) -> None:
        """Hold ``stored`` in its key's debounce (opening one, or replacing its event
        unless ``stored`` is older by ``ts``), and move the debounce's timer."""
        rule = function.debounce
        assert rule is not None
        key = _held_key(function.debounce_key, env, "")
        slot = (function.id, key)
        pending = self._debounces.get(slot)
        if pending is not None:
            held = pending.event
            if (stored.ts or 0) < (held.ts or 0):
                if explain is not None:  # Inngest keeps the latest by ts
                    explain.add(
                        stored.internal_id,
                        (function.id, "debounced", f"older than event {held.internal_id}: dropped"),
                    )
                return
            if explain is not None:
                explain.add(
                    held.internal_id,
                    (function.id, "debounced", f"replaced by event {stored.internal_id}"),
                )
            self._cancel_timer(pending, pending.seq)
            first = pending.first_ms
        else:
            first = now
        due = rule.due_ms(first, now)
        self._arm_debounce(function, key, stored, first, due)
        self.store.set_debounce(function.id, key, stored.internal_id, first, due)
        if explain is not None:
            explain.add(
                stored.internal_id,
                (function.id, "debounced", f"a run with the latest event at {_iso(due)}"),
            )

    def _arm_debounce(
        self, function: Function, key: str, stored: StoredEvent, first: int, due: int
    ) -> None:
        pending = _Debounce(function, key, stored, first)
        self._debounces[function.id, key] = pending
        pending.seq = self._add_timer(
            pending, due, functools.partial(self._debounce_fired, pending)
        )

    def _debounce_fired(self, pending: _Debounce) -> None:
        """The debounce's period passed: one run, with the event it holds."""
        function, key = pending.function, pending.key
        if self._debounces.get((function.id, key)) is not pending or self._tg is None:
            return  # pragma: no cover - replaced or stopping meanwhile
        del self._debounces[function.id, key]
        now = self.clock.now_ms()
        run, _ = self._schedule(function, pending.event, now, None, self.explain, (pending.event,))
        self.store.drop_debounce(function.id, key)
        if run is not None:
            self._enqueue(run)

    def _arm_debounces(self) -> None:
        """After a restart: the pending debounces fire at their time (at once if past)."""
        for function_id, key, event_id, first, due in self.store.debounces():
            function = self.registry.functions.get(function_id)
            stored = self.store.get_event(event_id)
            if function is None or function.debounce is None or stored is None:
                continue  # pragma: no cover - a function removed or changed since
            self._arm_debounce(function, key, stored, first, due)

    def _batch(
        self,
        function: Function,
        stored: StoredEvent,
        now: int,
        env: dict[str, Any] | None,
        explain: Explain | None,
    ) -> Run | None:
        """Append ``stored`` to its key's open batch (opening one, with its timer); a
        batch that is now full runs (returned when it starts now)."""
        rule = function.batch
        assert rule is not None
        key = _held_key(function.batch_key, env, "default")  # Inngest's name of no key
        batch = self._batches.get((function.id, key))
        if batch is None:
            batch = self._open_batch(function, key, self._ids.new(now), now)
        batch.events.append(stored)
        batch.size += _event_size(stored)
        count = len(batch.events)
        if explain is not None:
            due = batch.first_ms + rule.timeout_ms
            explain.add(
                stored.internal_id,
                (
                    function.id,
                    "batched",
                    f"batch {batch.batch_id}: {count} of {rule.max_size} events, "
                    f"runs by {_iso(due)}",
                ),
            )
        if rule.full(count, batch.size):
            self._cancel_timer(batch, batch.seq)
            return self._close_batch(batch, now)
        self.store.add_to_batch(
            function.id, key, batch.batch_id, stored.internal_id, batch.first_ms
        )
        return None

    def _open_batch(self, function: Function, key: str, batch_id: str, first: int) -> _OpenBatch:
        rule = function.batch
        assert rule is not None
        batch = _OpenBatch(function, key, batch_id, first)
        self._batches[function.id, key] = batch
        batch.seq = self._add_timer(
            batch, first + rule.timeout_ms, functools.partial(self._batch_due, batch)
        )
        return batch

    def _close_batch(self, batch: _OpenBatch, now: int) -> Run | None:
        """The batch runs: one run with its events (returned when it starts now)."""
        function = batch.function
        del self._batches[function.id, batch.key]
        events = tuple(batch.events)
        run, _ = self._schedule(
            function, events[0], now, None, self.explain, events, batch.batch_id
        )
        self.store.drop_batch(function.id, batch.key)
        return run

    def _batch_due(self, batch: _OpenBatch) -> None:
        """The batch's timeout passed: it runs with the events it has."""
        function = batch.function
        if self._batches.get((function.id, batch.key)) is not batch or self._tg is None:
            return  # pragma: no cover - closed or stopping meanwhile
        run = self._close_batch(batch, self.clock.now_ms())
        if run is not None:
            self._enqueue(run)

    def _arm_batches(self) -> None:
        """After a restart: the open batches take events again and run at their time
        (at once if it passed)."""
        for function_id, key, batch_id, event_ids, first in self.store.batches():
            function = self.registry.functions.get(function_id)
            events = [self.store.get_event(i) for i in event_ids]
            if function is None or function.batch is None:
                continue  # pragma: no cover - a function removed or changed since
            batch = self._open_batch(function, key, batch_id, first)
            for stored in events:
                if stored is not None:
                    batch.events.append(stored)
                    batch.size += _event_size(stored)

    def _singleton_slot(
        self, function: Function, env: dict[str, Any] | None
    ) -> tuple[str, str] | None:
        """The singleton slot a run of ``function`` takes (None: a key of false, or a
        missing field, is not a singleton; no key: one slot for the function)."""
        compiled = function.singleton_key
        if compiled is None:
            return function.id, ""
        assert env is not None  # built by _schedule: the function has keys
        value = compiled.evaluate(env)
        if value is False or value is UNKNOWN:
            return None
        return function.id, rate_key(value)

    def _throttle_key(self, function: Function, env: dict[str, Any] | None) -> str:
        """The throttle key of a run of ``function``: the value as text (a missing field
        counts as false, as on Inngest), or "" without a key."""
        compiled = function.throttle_key
        if compiled is None:
            return ""
        assert env is not None  # built by _schedule: the function has keys
        return rate_key(_throttle_value(compiled.evaluate(env)))

    def _throttled(self, function: Function, key: str, due: int) -> int:
        """When a run of ``function`` due at ``due`` may start under its throttle (its turn
        in the key's FIFO); the slot is taken."""
        gate = function.throttle
        assert gate is not None
        store_key = f"throttle:{key}"
        start, tat = gate.gcra.reserve(self.store.limit_tat(function.id, store_key), due)
        self.store.set_limit_tat(function.id, store_key, tat, self.clock.now_ms())
        return start

    def _rate_limited(
        self,
        function: Function,
        stored: StoredEvent,
        now: int,
        env: dict[str, Any] | None = None,
    ) -> tuple[str, str] | None:
        """Apply ``function``'s rate limit (or idempotency) to a run ``stored`` would
        start: None if it may start, else what explain() says and why."""
        rule = function.rate_limit
        assert rule is not None
        compiled = function.rate_key
        if compiled is None:
            key = ""
        else:
            value = compiled.evaluate(env if env is not None else self._event_env(stored))
            if value is False or value is UNKNOWN:
                return None  # a key of false (or a missing field) is not limited
            key = rate_key(value)
        tat = self.store.limit_tat(function.id, key)
        admitted, tat = rule.gcra.admit(tat, now)
        if admitted:
            assert tat is not None
            self.store.set_limit_tat(function.id, key, tat, now)
            return None
        shown = "" if compiled is None else f"key {key}; "
        if rule.idempotency:
            return "idempotent duplicate", f"{shown}one run per key per 24 h"
        until = rule.gcra.next_admission_ms(tat, now)
        return "rate limited", f"{shown}the next run may start at {_iso(until)}"

    def _explain_unmatched(
        self,
        stored: StoredEvent,
        matches: tuple[tuple[Function, tuple[Any, ...]], ...],
        explain: Explain,
    ) -> None:
        matched = {function.id for function, _ in matches}
        for function in self.registry.functions.values():
            if function.id not in matched:
                triggers = ", ".join(t.event for t in function.triggers) or "none (invoke only)"
                explain.add(stored.internal_id, (function.id, "no trigger matched", triggers))

    def run_function(self, function: Function, decoded: Sequence[dict[str, Any]]) -> Run:
        """Store ``decoded`` events and start one run of ``function`` with all of them,
        whatever its triggers (the mocked runner's ``trigger``)."""
        now = self.clock.now_ms()
        stored = []
        for raw in decoded:
            internal_id = self._ids.new(now)
            event = make_stored(
                raw["name"],
                raw["data"],
                raw["id"] or internal_id,
                raw["ts"] or now,
                raw["v"],
                raw["user"],
                internal_id,
                now,
                False,
            )
            self._store(event)
            stored.append(event)
        run = Run(self._ids.new(now), function, tuple(stored))
        self._record_run(run)
        self._enqueue(run)
        return run

    def _release_run(self, run: Run) -> None:
        if self.tracing is not None:
            self.tracing.run_ended(run, run._ended_ms or self.clock.now_ms())
        if run._rare is not None:
            slot = run._singleton
            if slot is not None and self._singletons.get(slot) is run:
                del self._singletons[slot]
        if run.run_id in self._pauses.by_run:
            self._drop_pauses(run)
        if run._timers is not None:
            self._timers.cancel_all(run)
        if run.function.concurrency and run._scheduled and not run._slotted:
            granted = self._slots.discard(run)
            if granted is not None:  # it was waiting for its slots: it waits no more
                run._scheduled = False
                self._active -= 1
                self._grant(granted)
        self.store.run_ended(run)

    # ------------------------------------------------------------------ scheduling

    def _enqueue(self, run: Run) -> None:
        if run.status.is_finished:
            return  # a timer of a run that has ended since (a lost race branch)
        if run._scheduled:
            if run._executing:
                run._rerun = True  # woken while executing: run again right after
            return
        self._queue_new((run,))

    def _queue_new(self, runs: Sequence[Run]) -> None:
        """Queue ``runs``, neither finished nor queued (an event's new runs, in order)."""
        harness = self.harness
        ready = self._ready
        queued = len(ready)
        for run in runs:
            function = run.function
            if harness is not None and function.id in harness.captured and run.attempts == 0:
                harness.captured[function.id].append(run)  # capture mode: recorded, not run
                continue
            run._scheduled = True
            self._active += 1
            if function.concurrency and not self._take_slots(run):
                continue  # it waits for its concurrency slots, still counted as queued
            ready.append(run)
        if len(ready) != queued:
            self._wake_worker()

    def _push(self, run: Run) -> None:
        """Put a queued run on the ready queue and make sure a worker will take it."""
        self._ready.append(run)
        self._wake_worker()

    def _wake_worker(self) -> None:
        if self._idle:
            if not self._wake_pending:
                self._wake_pending = True
                self._wake.set()
        elif not self._starting:
            self._spawn_worker()

    def _spawn_worker(self) -> None:
        if self._tg is None or self._workers >= self.max_concurrency:
            # Stopping (queued runs stay QUEUED and are reported), or at the bound: a
            # worker that finishes its run takes the next.
            return
        self._starting += 1
        self._workers += 1
        assert self._context is not None
        self._context.run(self._tg.start_soon, self._worker)

    async def _worker(self) -> None:
        self._starting -= 1
        scopes = self._worker_scopes
        try:
            while not self.crashed:
                # One cancel scope per worker, not per run (entering one costs 3-5 us):
                # cancelling the run this worker executes cancels the scope, and the worker
                # goes on in a fresh one, so the cancellation can never reach another run.
                with anyio.CancelScope() as scope:
                    scopes.add(scope)
                    try:
                        if await self._work(scope):
                            return
                    finally:
                        scopes.discard(scope)
        finally:
            self._workers -= 1

    async def _work(self, scope: anyio.CancelScope) -> bool:
        """Execute queued runs until idle too long (True) or a run was cancelled (False)."""
        ready = self._ready
        done = 0
        while True:
            while ready and self._tg is not None:  # a stopped engine starts no run
                run = ready.popleft()
                if self._room is not None and len(ready) < self.max_queued_runs:
                    self._room.set()
                    self._room = None
                if ready and not self._idle and not self._starting:
                    # Someone must take the rest if this handler suspends.
                    self._spawn_worker()
                run._executing = True
                run._scope = scope
                try:
                    if self.durable or self.tracing is not None:
                        await self._execute(run)
                    else:  # the usual case, one coroutine less per run
                        await self._execute_once(run)
                        if run._cancel_requested and not run.status.is_finished:
                            self._finish_cancelled(run)
                except Exception as exc:  # a bug of the engine's: that run fails, not all
                    if self.crashed:
                        return True  # the store refused it: the engine is dead, not the run
                    self._internal_error(run, exc)
                finally:
                    run._executing = False
                    run._scheduled = False
                    run._scope = None
                    if run._rare is not None and run._slotted:
                        run._slotted = False
                        self._grant(self._slots.release(self._claims(run)))
                    self._active -= 1
                if run._rerun:
                    run._rerun = False
                    self._enqueue(run)
                if run._cancel_requested:
                    # It may have cancelled this scope after the handler's last await, with
                    # nothing left to deliver it to: the next run gets a fresh scope.
                    return False
                done += 1
                if done % YIELD_EVERY == 0:
                    await checkpoint()
            if not self._active and self._settled is not None:
                self._settled.set()
                self._settled = None
            if self._idle >= MAX_IDLE_WORKERS or self._tg is None:
                return True  # enough are idle, or the engine stops
            if self._wake.is_set():
                # The event that woke the workers last: a fresh one to wait on, made
                # here, after the runs, rather than as a worker wakes (on the way from a
                # send to its handler).
                self._wake = anyio.Event()
            self._idle += 1
            try:
                await self._wake.wait()
            finally:
                self._idle -= 1
            self._wake_pending = False

    # ------------------------------------------------------------------ concurrency

    def _claims(self, run: Run) -> tuple[Claim, ...]:
        """The concurrency slots ``run``'s executions claim: its function's constraints,
        their keys evaluated once from the first event (as text; a missing field is
        false, as on Inngest). ``fn`` scope is the function's own queue; ``env`` and
        ``account`` are shared by every function with the same key."""
        claims = run._claims
        if claims is None:
            function = run.function
            env = None
            found: dict[str, int] = {}
            for rule, compiled in zip(function.concurrency, function.concurrency_keys, strict=True):
                key = ""
                if compiled is not None:
                    if env is None:
                        env = self._event_env(run.event)
                    key = rate_key(_throttle_value(compiled.evaluate(env)))
                scope = function.id if rule.scope == "fn" else rule.scope
                queue = f"{scope}\x00{key}"
                found[queue] = min(rule.limit, found.get(queue, rule.limit))
            claims = run._claims = tuple(found.items())
        return claims

    def _take_slots(self, run: Run) -> bool:
        """Take ``run``'s slots for its next execution (True), or queue it for them
        (False). A queued run holds its slots from then until that execution ends, as an
        item leased from Inngest's queue: a run's next step goes behind those queued."""
        claims = self._claims(run)
        explain = self.explain
        if explain is not None and run._started_ms is None and not self._slots.fits(claims):
            queue, limit = next(
                (queue, limit) for queue, limit in claims if not self._slots.fits(((queue, limit),))
            )
            key = queue.partition("\x00")[2]
            shown = f"key {key!r}" if key else "the function"
            explain.add(
                run.event.internal_id,
                (
                    run.function.id,
                    "waiting for a concurrency slot",
                    f"run {run.run_id}: {shown} has its limit of {limit} executing",
                ),
            )
        score = self.clock.now_ms()
        if run.function.priority_run is not None:
            score -= self._priority_factor(run) * 1000
        if self._slots.take(run, claims, score):
            run._slotted = True
            return True
        return False

    def _priority_factor(self, run: Run) -> int:
        """``priority=``: the seconds ``run`` queues ahead of the others of its function
        (behind, if negative), evaluated once from the first event, as on Inngest."""
        factor = run._priority
        if factor is None:
            compiled = run.function.priority_run
            assert compiled is not None
            factor = run._priority = priority_factor(compiled.evaluate(self._event_env(run.event)))
        return factor

    def _grant(self, granted: list[Run]) -> None:
        """Runs that got their slots go to the ready queue (a run that ends while it
        waits stops waiting then: see _release_run)."""
        for run in granted:
            run._slotted = True
            self._push(run)

    def yield_slot(self, run: Run) -> bool:
        """StepHost: after a step, True if runs wait for ``run``'s slots; it then ends
        this execution and is queued again behind them."""
        if self._slots.contended(self._claims(run)):
            run._rerun = True
            return True
        return False

    def branch_gate(self, run: Run, thunk: Callable[[], Any]) -> Callable[[], Any]:
        """StepHost: a parallel step of ``run`` takes one slot as it executes: the
        execution's own if free, else another one if there is room at once, else it
        waits for the execution's own (never for a slot a waiting run is owed)."""

        async def gated() -> Any:
            claims = self._claims(run)
            extra = False
            if not run._lent:
                run._lent = True
            elif self._slots.fits(claims):
                self._slots.take(run, claims)  # fits: taken at once, never queued
                extra = True
            else:
                turn = anyio.Event()
                if run._lenders is None:
                    run._lenders = deque()
                run._lenders.append(turn)
                try:
                    await turn.wait()
                except BaseException:
                    if turn in run._lenders:
                        run._lenders.remove(turn)
                    else:  # pragma: no cover - handed the slot as it was cancelled
                        self._lend_next(run)
                    raise
            try:
                value = thunk()
                if inspect.isawaitable(value):
                    value = await value
                return value
            finally:
                if extra:
                    self._grant(self._slots.release(claims))
                else:
                    self._lend_next(run)

        return gated

    @staticmethod
    def _lend_next(run: Run) -> None:
        """The execution's own slot passes to the next parallel step waiting for it."""
        if run._lenders:
            run._lenders.popleft().set()
        else:
            run._lent = False

    def _internal_error(self, run: Run, exc: Exception) -> None:
        self.log.error(
            "eventbus failed to process run %s of %s; the run fails, the engine goes on",
            run.run_id,
            run.function.id,
            exc_info=exc,
            extra=log_fields(run),
        )
        if not run.status.is_finished:
            self._fail(run, exc)

    # ------------------------------------------------------------------ admission

    async def admit(self) -> None:
        """Wait for room in the queue before a send is accepted (backpressure).

        Below BACKLOG_YIELD queued runs this costs nothing; up to ``max_queued_runs`` it
        yields once so workers keep pace; at the bound it waits until workers have taken
        runs off the queue. Sends made by this engine's own runs only yield: a run
        waiting for room would hold the worker that makes room.
        """
        ready = self._ready
        backlog = len(ready)
        if backlog < self.max_queued_runs:
            if backlog > BACKLOG_YIELD:
                await checkpoint()
            return
        if _ENGINE.get() is self:
            await checkpoint()
            return
        while len(ready) >= self.max_queued_runs:
            if self._room is None:
                self._room = anyio.Event()
            await self._room.wait()
            if self.draining or self._tg is None:
                raise EngineNotRunningError(_SHUTTING_DOWN)

    def accept_now(self, batch: EventBatch) -> list[str] | None:
        """Accept ``batch`` at once if nothing needs waiting for (it is the engine's
        thread, the engine runs and is not draining, the store is not durable, the queue
        has room without a yield); None otherwise: then await :meth:`send_batch`."""
        ready = len(self._ready)
        if (
            self._tg is None
            or self.durable
            or self.draining
            or ready > BACKLOG_YIELD
            or ready >= self.max_queued_runs
            or threading.get_ident() != self._thread
        ):
            return None
        return self.ingest(batch.decoded, batch.internal_ids)

    async def accept(
        self, decoded: Sequence[dict[str, Any]], internal_ids: Sequence[str] | None = None
    ) -> list[str]:
        """Admit, then ingest: acceptance is the last thing, so a send cancelled while it
        waits for room has accepted nothing."""
        if self.draining and _ENGINE.get() is not self:
            raise EngineNotRunningError(_SHUTTING_DOWN)
        backlog = len(self._ready)
        if backlog > BACKLOG_YIELD or backlog >= self.max_queued_runs:
            await self.admit()
        ids = self.ingest(decoded, internal_ids)
        if self.durable:
            await self.store.commit()  # ids returned only once the events and runs are in
        return ids

    def send_batch(self, batch: EventBatch) -> Coroutine[Any, Any, list[str]]:
        """Accept a validated send from any task of any thread's event loop (a foreign
        thread's send is carried to the engine's loop, never run on the wrong one).

        A plain function that returns the coroutine to await (``accept``'s, on the
        engine's own thread): one coroutine less on every send."""
        if self._tg is None:
            raise EngineNotRunningError(
                "this eventbus engine has stopped: send while it runs (inside "
                "`async with client:` or `eventbus.testing.running(...)`)"
            )
        if threading.get_ident() != self._thread:
            return self._send_from_thread(batch)
        return self.accept(batch.decoded, batch.internal_ids)

    async def _send_from_thread(self, batch: EventBatch) -> list[str]:
        token = self._token
        return cast(
            "list[str]",
            await anyio.to_thread.run_sync(
                lambda: anyio.from_thread.run(
                    self.accept, batch.decoded, batch.internal_ids, token=token
                )
            ),
        )

    def send_batch_sync(self, batch: EventBatch) -> list[str]:
        """Accept a validated send from synchronous code in another thread."""
        if threading.get_ident() == self._thread:
            raise UsageError(
                "send_sync() was called from inside the engine's event loop, where it would "
                "deadlock; use `await client.send(...)` there"
            )
        return anyio.from_thread.run(
            self.accept, batch.decoded, batch.internal_ids, token=self._token
        )

    async def settle(self, *, advance_time: bool | datetime.timedelta = False) -> None:
        """Return when no run is executing and none is queued (and, with a durable store,
        when everything they did is written).

        With ``advance_time=True`` (virtual clock only) keep jumping the clock to the next
        due timer of a run (sleeps, waits, retries, timeouts) until none is left. Cron
        ticks never run out, so they need a bound: ``advance_time=timedelta(days=7)``
        jumps through every timer, cron ticks included, for that long, and stops there.
        """
        if advance_time is not False and not isinstance(self.clock, VirtualClock):
            raise UsageError(
                "settle(advance_time=...) needs a virtual clock: create the client with "
                "clock=eventbus.VirtualClock()"
            )
        bound = None
        if isinstance(advance_time, datetime.timedelta):
            if advance_time < datetime.timedelta(0):
                raise UsageError(f"settle(advance_time={advance_time!r}) must not be negative")
            bound = self.clock.now_ms() + advance_time // datetime.timedelta(milliseconds=1)
        elif advance_time is not True and advance_time is not False:
            raise UsageError(
                f"settle(advance_time=...) takes True or a timedelta, got {advance_time!r}"
            )
        while True:
            while self._active and not self.crashed:
                if self._settled is None:
                    spare, self._spare_settled = self._spare_settled, None
                    self._settled = spare if spare is not None else anyio.Event()
                await self._settled.wait()
                if self._spare_settled is None:
                    # The next settle's, made now that the runs are done rather than
                    # between its send and the run's start (tests settle after each send).
                    self._spare_settled = anyio.Event()
            due = None
            if advance_time is not False and not self.crashed:
                due = self._next_timer(cron=bound is not None)
                if due is not None and bound is not None and due > bound:
                    due = None
            if due is None:
                if bound is not None and not self.crashed:
                    assert isinstance(self.clock, VirtualClock)
                    self.clock.advance_to_ms(bound)
                if self.durable and not self.crashed:
                    await self.store.commit()  # and what the runs did is in the store
                return
            assert isinstance(self.clock, VirtualClock)
            self.clock.advance_to_ms(due)
            self._fire_due()

    # ------------------------------------------------------------------ timers

    def _arm_crons(self) -> None:
        """Schedule the next tick of every function with cron triggers, from now (a tick
        missed while no engine ran is not made up, as on Inngest)."""
        now = self.clock.now_ms()
        for function in self.registry.functions.values():
            if function.crons:
                self._next_tick(function, _CronOwner(), now)

    def _next_tick(self, function: Function, owner: _CronOwner, after_ms: int) -> None:
        ticks = [(schedule.next_after(after_ms), schedule) for schedule in function.crons]
        scheduled, schedule = min(ticks, key=lambda tick: tick[0])  # overlapping: once
        fire = scheduled
        if schedule.jitter_ms:
            fire += self.random.randint(0, schedule.jitter_ms)
        callback = functools.partial(self._cron_tick, function, owner, schedule, scheduled, fire)
        self._add_timer(owner, fire, callback, self._cron_timers)

    def _cron_tick(
        self,
        function: Function,
        owner: _CronOwner,
        schedule: CronSchedule,
        scheduled: int,
        fire: int,
    ) -> None:
        """A tick: an ``inngest/scheduled.timer`` event for ``function`` alone (its id is
        the scheduled time), through the function's flow control; then the next tick."""
        if self._tg is None:
            return
        self._next_tick(function, owner, scheduled)
        now = self.clock.now_ms()
        event_id = scheduled_id(scheduled)
        data = {"cron": schedule.cron, "scheduledAt": event_id, "fireAt": scheduled_id(fire)}
        internal_id = self._ids.new(now)
        stored = make_stored(
            SCHEDULED_EVENT, data, event_id, fire, None, {}, internal_id, now, False
        )
        self._store(stored)
        run, _ = self._schedule(function, stored, now, None, self.explain)
        if run is not None:
            self._enqueue(run)

    def _add_timer(
        self,
        owner: TimerOwner,
        due_ms: int,
        callback: Callable[[], None],
        timers: Timers | None = None,
    ) -> int:
        """Call ``callback`` at ``due_ms``; every timer belongs to an owner (a run, a
        pending debounce, a cron schedule) and dies with it. ``timers``: the heap (the
        runs' by default; cron ticks have their own)."""
        seq, earliest = (self._timers if timers is None else timers).add(owner, due_ms, callback)
        if earliest and self._timer_changed is not None:
            self._timer_changed.set()
        return seq

    def _cancel_timer(self, owner: TimerOwner, seq: int) -> None:
        self._timers.cancel(owner, seq)

    def _next_timer(self, *, cron: bool = False) -> int | None:
        """The next run timer's time; with ``cron`` the next cron tick's too."""
        due = self._timers.next_due()
        if cron:
            tick = self._cron_timers.next_due()
            if tick is not None and (due is None or tick < due):
                return tick
        return due

    def _fire_due(self) -> None:
        now = self.clock.now_ms()
        for callback in self._cron_timers.pop_due(now):
            callback()
        for callback in self._timers.pop_due(now):
            callback()

    def _on_clock_advance(self) -> None:
        if threading.get_ident() == self._thread:
            self._fire_due()
        elif self.portal is not None:
            self.portal.call(self._fire_due)
        else:  # pragma: no cover - a virtual clock advanced from a foreign thread
            raise UsageError("advance a VirtualClock from the thread that runs its engine")

    async def _timer_loop(self) -> None:
        while not self.crashed and self._tg is not None:
            self._fire_due()
            delay = math.inf
            due = self._next_timer(cron=True)
            if due is not None:
                delay = max(0.0, (due - self.clock.now_ms()) / 1000)
            self._timer_changed = anyio.Event()
            with anyio.move_on_after(delay):
                await self._timer_changed.wait()

    # ------------------------------------------------------------------ execution

    async def _execute(self, run: Run) -> None:
        """Execute ``run`` once with a durable store or tracing around it (without
        either, the worker calls ``_execute_once`` itself)."""
        if run.status.is_finished:
            return  # cancelled while it was queued
        if self.durable and run._started_ms is None:
            # A run starts only once its events are in the store: a send that fails
            # (the process dies before its commit) has had no effect at all.
            await self.store.commit()
            if run.status.is_finished:
                return  # pragma: no cover - cancelled during the commit
        tracing = self.tracing
        if tracing is None:
            await self._execute_once(run)
        else:
            token = tracing.enter(run, self.clock.now_ms())  # its span is current
            try:
                await self._execute_once(run)
            finally:
                tracing.leave(token)
        if self.durable:
            self.store.touch(run)
        if run._cancel_requested and not run.status.is_finished:
            self._finish_cancelled(run)

    async def _execute_once(self, run: Run) -> None:
        if run.status.is_finished:
            return  # cancelled while it was queued
        run._due_ms = None
        function = run.function
        now = self.clock.now_ms()
        if run._started_ms is None:
            run._started_ms = now
            timeouts = function.timeouts
            if timeouts is not None and timeouts.finish_ms is not None:
                self._add_timer(
                    run, now + timeouts.finish_ms, functools.partial(self._finish_timeout, run)
                )
        if run.attempts == 0 or run._body_retry:
            run.attempts += 1
            run._body_retry = False
        run.status = RUN_RUNNING
        execution = Execution()
        if run._done_steps:
            execution.memos = run._done_steps
        if run._rare is not None and run._retrying:
            execution.targets = set(run._retrying)
        every = run._events  # one event held as itself, or a tuple (see Run)
        first: StoredEvent = every[0] if type(every) is tuple else every  # type: ignore[assignment]
        # Cancelling the run (client.cancel, the finish timeout) cancels the worker's
        # scope (run._scope): the handler ends at once, wherever it is awaiting.
        try:
            if function.middleware is not None:
                common = (first, every, run.run_id, run.next_attempt, function.id)
                output = await self._call_with_hooks(run, execution, common)
            elif function.is_async:
                ctx = Context(
                    first,
                    every,
                    run.run_id,
                    run.next_attempt,
                    function.id,
                    self.logger,
                    self,
                    run,
                    execution,
                )
                handler: AsyncHandler = function.handler  # type: ignore[assignment]
                output = await handler(ctx if function.context is None else function.context(ctx))
            else:
                sync_ctx = ContextSync(
                    first,
                    every,
                    run.run_id,
                    run.next_attempt,
                    function.id,
                    self.logger,
                    self,
                    run,
                    execution,
                )
                # A thread cannot be interrupted: on cancel it is abandoned, and its next
                # step call raises (the run has ended).
                output = await anyio.to_thread.run_sync(
                    cast(SyncHandler, function.handler),
                    sync_ctx if function.context is None else function.context(sync_ctx),
                    limiter=self.handler_threads,
                    abandon_on_cancel=True,
                )
        except HookError as exc:
            # A middleware hook raised: this execution failed with its error (retried).
            self._end_execution(run, execution, Outcome.ERRORED, exc.error)
            return
        except Interrupt:
            return  # the step tool has scheduled what happens next
        except CancelRun:
            return  # _execute finishes the cancellation
        except FailRun as exc:
            self._end_execution(run, execution, Outcome.ABORTED, exc.error)
            return
        except (NonRetriableError, StepError, UsageError) as exc:
            # A step that failed for good, or misuse of the API: retrying cannot help.
            self._end_execution(run, execution, Outcome.FAILED, exc)
            return
        except RetryAfterError as exc:
            delay = self.clamp_retry_after(exc.delay_ms(self.clock.now_ms()))
            self._end_execution(run, execution, Outcome.RETRY_AFTER, exc, delay)
            return
        except Exception as exc:
            self._end_execution(run, execution, Outcome.ERRORED, exc)
            return
        except anyio.get_cancelled_exc_class():
            if run.status.is_finished or await _cancelled_for_real():
                raise  # the engine (or a scope around it) is being cancelled
            self._fail(
                run,
                NonRetriableError(
                    f"the handler of {function.id!r} raised the event loop's cancellation "
                    "exception although nothing cancelled its run (did it await a task that "
                    "was cancelled?); catch it in the handler if that is expected"
                ),
            )
            return
        except BaseException as exc:
            # KeyboardInterrupt, SystemExit, ...: the run fails, then the exception stops
            # the engine (and the program), as it should.
            if not run.status.is_finished:
                self._fail(run, exc)
            self.report_unfinished(
                f"eventbus engine stopping: run {run.run_id} of {function.id} raised "
                f"{type(exc).__name__}"
            )
            raise
        if (
            after_return(run.status.is_finished, execution.interrupted, run._cancel_requested)
            is not COMPLETE
        ):
            return  # already ended, suspended all the same, or to end CANCELLED
        if function.serializer is not None and function.output_type is not None:
            try:
                output = function.serializer.serialize(output, function.output_type)
            except Exception as exc:
                self._retry_or_fail(run, exc, None)
                return
        if output is not None:
            try:
                output = decode_output(encode_output(output))
            except OutputError as exc:
                self._fail(run, NonRetriableError(f"the return value of {function.id!r} {exc}"))
                return
        self._complete(run, output)

    async def _call_with_hooks(
        self,
        run: Run,
        execution: Execution,
        common: tuple[StoredEvent, StoredEvent | tuple[StoredEvent, ...], str, int, str],
    ) -> Any:
        """Execute a function with middleware: its hooks around the handler (see
        eventbus._middleware); one new step per execution."""
        function = run.function
        spec = function.middleware
        assert spec is not None
        ctx: Context | ContextSync
        if function.is_async:
            ctx = Context(*common, self.logger, self, run, execution)
        else:
            ctx = ContextSync(*common, self.logger, self, run, execution)
        handler_ctx: Any = ctx if function.context is None else function.context(ctx)
        hooks = execution.hooks = Hooks(spec)
        memos = {
            record.id: StepOutput(
                record.output, record.error if record.status is STEP_FAILED else None
            )
            for record in run.journal.values()
            if record.status is STEP_COMPLETED or record.status is STEP_FAILED
        }
        await hooks.transform_input(
            handler_ctx, function if spec.function is None else spec.function, memos
        )
        try:
            if function.is_async:
                output = await cast(AsyncHandler, function.handler)(handler_ctx)
            else:
                output = await anyio.to_thread.run_sync(
                    cast(Callable[[Any], Any], function.handler),
                    handler_ctx,
                    limiter=self.handler_threads,
                    abandon_on_cancel=True,
                )
        except Exception as exc:
            if execution.interrupted or run._cancel_requested:
                raise
            output, error = await hooks.end(hooks.kit.empty, exc, None, executed=False)
        else:
            if execution.interrupted or run._cancel_requested:
                return output
            output, error = await hooks.end(output, None, None)
        if error is not None:
            raise error
        return None if output is hooks.kit.empty else output

    #: Inngest clamps RetryAfterError delays to 1 s .. 24 h (see _policy).
    clamp_retry_after = staticmethod(clamp_retry_after)

    def retry_step(self, run: Run, record: StepRecord, delay: int | None) -> None:
        """Schedule the next attempt of a failed step (the run re-executes then)."""
        if delay is None:
            decision = retry_or_fail(record.attempts, run.function.retries, None, self.random)
            assert isinstance(decision, Retry), "retry_step is for attempts that remain"
            delay = decision.delay_ms
        if run._retrying is None:
            run._retrying = set()
        run._retrying.add(record.id)  # the step the next execution targets
        run.next_attempt = record.attempts
        assert record.error is not None
        self.log.info(
            "step %r of run %s failed attempt %d (%s: %s); retrying in %.1fs",
            record.id,
            run.run_id,
            record.attempts - 1,
            record.error["name"],
            record.error["message"],
            delay / 1000,
            extra=log_fields(run, step_id=record.id, attempt=record.attempts - 1),
        )
        run._due_ms = due = self.clock.now_ms() + delay
        if self.durable:
            self.store.touch(run, record)
        self._add_timer(run, due, functools.partial(self._enqueue, run))

    def rerun(self, run: Run) -> None:
        """Execute ``run`` again at once (StepHost: a step with middleware ended)."""
        self._enqueue(run)

    def touch(self, run: Run, record: StepRecord | None = None) -> None:
        """StepHost: ``run`` (and ``record``) changed; a durable store writes it."""
        self.store.touch(run, record)

    async def commit(self) -> None:
        """StepHost: return once every change so far is in the store."""
        await self.store.commit()

    def sleep_step(self, run: Run, record: StepRecord) -> None:
        """Suspend ``run`` until its sleep step ends."""
        run.status = RUN_SLEEPING
        assert record.wake_ms is not None
        if self.durable:
            self.store.touch(run, record)
        if self.tracing is not None:
            self.tracing.step_suspended(run, record, {"sys.step.sleep.end": record.wake_ms})
        self._add_timer(run, record.wake_ms, functools.partial(self._end_sleep, run, record))

    def wait_step(
        self, run: Run, record: StepRecord, name: str, expression: CompiledExpression | None
    ) -> None:
        """Suspend ``run`` until an event named ``name`` matches, or the wait times out."""
        run.status = RUN_WAITING
        if self.durable:
            self.store.touch(run, record)
        if self.tracing is not None:
            wait = {"sys.step.wait.event": name, "sys.step.wait.expires": record.wake_ms or 0}
            if expression is not None:
                wait["sys.step.wait.expr"] = expression.source
            self.tracing.step_suspended(run, record, wait)
        pause = Pause(run, record, expression)
        self._add_pause(name, pause)
        assert record.wake_ms is not None
        pause.timer = self._add_timer(
            run, record.wake_ms, functools.partial(self._time_out, name, pause)
        )

    def invoke_step(
        self,
        run: Run,
        record: StepRecord,
        target: Function,
        data: dict[str, Any],
        v: str | None = None,
    ) -> None:
        """Start ``target`` with an ``inngest/function.invoked`` event; suspend ``run``
        until the target's ``inngest/function.finished`` arrives (or the timeout). A
        target that is rate limited fails the step, as on Inngest."""
        now = self.clock.now_ms()
        if self.tracing is not None:
            self.tracing.step_suspended(
                run,
                record,
                {
                    "sys.step.invoke.fn.id": target.id,
                    "sys.step.invoke.expires": record.wake_ms or 0,
                },
            )
        data["_inngest"] = {
            "fn_id": target.id,
            "correlation_id": f"{run.run_id}.{record.id}",
            "source_app_id": run.function.app_id,
            "source_fn_id": run.function.id,
            "expire": record.wake_ms,
        }
        internal_id = self._ids.new(now)
        stored = make_stored(INVOKED_EVENT, data, internal_id, now, v, {}, internal_id, now, False)
        self._store(stored)
        refused = None if target.rate_limit is None else self._rate_limited(target, stored, now)
        if refused is not None:
            record.error = {
                "name": "InngestInvokeRateLimitedError",
                "message": f"the invoked function {target.id!r} is rate limited: {refused[1]}",
                "stack": None,
            }
            self._end_step(run, record, STEP_FAILED)  # it runs again, and meets it
            return
        self._await_invoked(run, record)
        if self._pauses:
            self._match_pauses(stored)
        invoked = Run(self._ids.new(now), target, (stored,))  # triggers are bypassed
        self._record_run(invoked)
        if self.tracing is not None:
            self.tracing.invoked(run, record.id, invoked)
        self._start_direct(invoked, now)

    def _start_direct(self, run: Run, now: int) -> None:
        """Start a run made other than by its triggers (an invoke, a rerun): its cancel
        rules and timeouts are armed and its throttle applies; nothing else that decides
        at an event's arrival does."""
        function = run.function
        if function.cancel or function.timeouts:
            self._arm(run, now)
        due = now
        if function.throttle is not None:
            key = self._throttle_key(function, self._event_env(run.event))
            due = self._throttled(function, key, now)
        if due > now:
            self._queue_at(run, due)
        else:
            self._enqueue(run)

    def _await_invoked(self, run: Run, record: StepRecord) -> str:
        """Suspend ``run`` until the function its ``record`` invoked finishes, or the
        invoke times out; returns the correlation id that matches the two."""
        run.status = RUN_WAITING
        if self.durable:
            self.store.touch(run, record)
        correlation_id = f"{run.run_id}.{record.id}"
        pause = Pause(run, record, None, correlation_id)
        self._add_pause(FINISHED_EVENT, pause)
        assert record.wake_ms is not None
        pause.timer = self._add_timer(
            run, record.wake_ms, functools.partial(self._time_out, FINISHED_EVENT, pause)
        )
        return correlation_id

    def _time_out(self, name: str, pause: Pause) -> None:
        action = pause_deadline(
            done=pause.done, cancels=pause.cancels, invoke=pause.correlation_id is not None
        )
        if action is TimeoutAction.NONE:
            return
        self._remove_pause(name, pause)
        if action is TimeoutAction.EXPIRE:
            return  # the cancel rule expired
        if action is TimeoutAction.FAIL_STEP:
            self._fail_step(
                pause,
                {
                    "name": "InngestInvokeTimeoutError",
                    "message": "Timed out waiting for invoked function to complete",
                    "stack": None,
                },
            )
            return
        self._resume(pause, None)

    def _fail_step(self, pause: Pause, error: dict[str, Any]) -> None:
        assert pause.record is not None
        pause.record.error = error
        self._end_step(pause.run, pause.record, STEP_FAILED)

    # ------------------------------------------------------------------ cancellation

    def _arm(self, run: Run, now: int) -> None:
        """Register a new run's cancel rules and start timeout."""
        function = run.function
        for rule in function.cancel:
            pause = Pause(run, None, rule.compiled, cancels=True)
            self._add_pause(rule.event, pause)
            pause.timer = self._add_timer(
                run, now + rule.timeout_ms, functools.partial(self._time_out, rule.event, pause)
            )
        timeouts = function.timeouts
        if timeouts is not None and timeouts.start_ms is not None:
            self._add_timer(
                run, now + timeouts.start_ms, functools.partial(self._start_timeout, run)
            )

    def _start_timeout(self, run: Run) -> None:
        if run._started_ms is None:
            self.cancel_run(run)

    def _finish_timeout(self, run: Run) -> None:
        self.cancel_run(run)

    def pruned_events(self, run: Run) -> list[str]:
        """The internal ids of ``run``'s events that the store no longer holds."""
        return [e.internal_id for e in run.events if self.store.get_event(e.internal_id) is None]

    def rerun_run(self, run: Run) -> Run:
        """A new run of ``run``'s function with the same events, from the start (a fresh
        journal), as Inngest's rerun: what decides at an event's arrival (event-id dedup,
        idempotency, rate limits, debounces, batches, singletons) does not apply to it;
        what governs a run does (concurrency, throttle, cancel rules, timeouts)."""
        if not run.status.is_finished:
            raise UsageError(
                f"run {run.run_id} is {run.status.value}: only an ended run can be rerun "
                "(cancel it first to start it over)"
            )
        if run.function.id not in self.registry.functions:
            raise UsageError(
                f"run {run.run_id} is of {run.function.id!r}, which this client no longer has"
            )
        missing = self.pruned_events(run)
        if missing:
            raise UsageError(
                f"the events of run {run.run_id} ({', '.join(missing)}) are past the store's "
                "retention: send them again to start a new run"
            )
        now = self.clock.now_ms()
        function = self.registry.functions[run.function.id]
        new = Run(self._ids.new(now), function, run.events)
        new.batch_id = run.batch_id
        new.rerun_of = run.run_id
        self._record_run(new)
        explain = self.explain
        if explain is not None:
            explain.add(
                run.event.internal_id,
                (function.id, "started run", f"{new.run_id} (a rerun of {run.run_id})"),
            )
        self._start_direct(new, now)
        return new

    def cancel_run(self, run: Run, *, interrupt: bool = True) -> bool:
        """Cancel ``run``; returns False if it had already ended.

        A queued or suspended run ends at once. An executing one ends at once too, its
        handler cancelled wherever it awaits (``client.cancel``, ``timeouts.finish``);
        with ``interrupt=False`` (cancel rules, as on Inngest) it ends at its next step
        boundary instead, letting a step that is executing finish.
        """
        action = cancel(
            finished=run.status.is_finished, executing=run._executing, interrupt=interrupt
        )
        if action is CancelAction.NONE:
            return False
        if action is not CancelAction.END:
            run._cancel_requested = True
            if action is CancelAction.AT_NEXT_STEP:
                return True
            run._scope.cancel()  # the worker's: the handler stops at its current await
        self._finish_cancelled(run)
        return True

    def _finish_cancelled(self, run: Run) -> None:
        run.status = RUN_CANCELLED
        run.error = {
            "error": "function cancelled",
            "message": "function cancelled",
            "name": "Error",
        }
        run._ended_ms = now = self.clock.now_ms()
        self._release_run(run)
        self.log.info(
            "run %s of %s was cancelled", run.run_id, run.function.id, extra=log_fields(run)
        )
        self._announce_end(run, now)

    def _add_pause(self, name: str, pause: Pause) -> None:
        self._pauses.add(name, pause)

    def _remove_pause(self, name: str, pause: Pause) -> None:
        if pause.timer is not None:
            self._cancel_timer(pause.run, pause.timer)
        self._pauses.remove(name, pause)

    def _drop_pauses(self, run: Run) -> None:
        """Forget the waits of a run that has ended (a lost race branch, say)."""
        for name, pause in self._pauses.of_run(run):
            self._remove_pause(name, pause)

    def _resume(self, pause: Pause, output: dict[str, Any] | None) -> None:
        assert pause.record is not None
        pause.record.output = output
        self._end_step(pause.run, pause.record, STEP_COMPLETED)

    def _end_step(self, run: Run, record: StepRecord, status: StepStatus) -> None:
        """A step the run was suspended in ended (a wait matched or timed out, an invoke
        finished, a sleep is over): record it and wake the run."""
        record.status = status
        record._ended_ms = self.clock.now_ms()
        run._done_steps += 1
        if self.durable:
            self.store.touch(run, record)
        if self.tracing is not None:
            self.tracing.step_ended(run, record, record._ended_ms)
        self._wake_run(run)

    def _wake_run(self, run: Run) -> None:
        """Queue a suspended run to execute again (unless it has ended meanwhile)."""
        if run.status.is_finished:
            return  # e.g. the losing branch of a race finished after the run
        if not run._executing:
            run.status = RUN_QUEUED
        self._enqueue(run)

    def _match_pauses(self, stored: StoredEvent) -> None:
        """End every pause ``stored`` matches: resume the waits, fail or complete the
        invokes, cancel the runs whose cancel rule it is."""
        for pause, action, value in self._pauses.decide(stored, self.clock):
            if pause.done:
                continue  # ended by an earlier decision (its run was cancelled)
            self._remove_pause(stored.name, pause)
            if action == CANCEL:
                self.cancel_run(pause.run, interrupt=False)
            elif action == FAIL_STEP:
                self._fail_step(pause, value)
            else:
                self._resume(pause, value)

    def _end_sleep(self, run: Run, record: StepRecord) -> None:
        self._end_step(run, record, STEP_COMPLETED)

    async def send_events(self, events: Any) -> list[str]:
        """Send events for ``step.send_event``: into this engine, the one running the run."""
        if self.validate is None:  # pragma: no cover - engines are made by the client
            raise UsageError("this engine has no client to validate events with")
        batch = self.validate(events)
        return await self.accept(batch.decoded) if batch.decoded else []

    def _decide(
        self, run: Run, execution: Execution, outcome: Outcome, delay: int | None = None
    ) -> Decision:
        facts = RunFacts(
            run.attempts,
            run.function.retries,
            run.status.is_finished,
            execution.interrupted,
            run._cancel_requested,
        )
        return end_of_execution(facts, outcome, self.random, delay)

    def _end_execution(
        self,
        run: Run,
        execution: Execution,
        outcome: Outcome,
        exc: BaseException,
        delay: int | None = None,
    ) -> None:
        """Apply the state machine's decision on an execution that raised ``exc``."""
        decision = self._decide(run, execution, outcome, delay)
        if decision is FAIL:
            self._fail(run, exc)
        elif isinstance(decision, Retry):
            self._retry(run, exc, decision.delay_ms)

    def _retry_or_fail(self, run: Run, exc: Exception, delay: int | None) -> None:
        decision = retry_or_fail(run.attempts, run.function.retries, delay, self.random)
        if isinstance(decision, Retry):
            self._retry(run, exc, decision.delay_ms)
        else:
            self._fail(run, exc)

    def _retry(self, run: Run, exc: BaseException, delay: int) -> None:
        run.error = error_info(exc)
        run._body_retry = True
        run.next_attempt = run.attempts
        self.log.info(
            "run %s of %s failed attempt %d (%s: %s); retrying in %.1fs",
            run.run_id,
            run.function.id,
            run.attempts - 1,
            type(exc).__name__,
            exc,
            delay / 1000,
            extra=log_fields(run, attempt=run.attempts - 1),
        )
        run._due_ms = due = self.clock.now_ms() + delay
        self._add_timer(run, due, functools.partial(self._enqueue, run))

    def _complete(self, run: Run, output: Any) -> None:
        run.status = RUN_COMPLETED
        run.output = output
        run.error = None
        run._ended_ms = now = self.clock.now_ms()
        self._release_run(run)
        self._announce_end(run, now)

    def _fail(self, run: Run, exc: BaseException) -> None:
        run.status = RUN_FAILED
        run.error = error_info(exc)
        run.exception = exc
        run._ended_ms = now = self.clock.now_ms()
        self._release_run(run)
        if not getattr(exc, "quiet", False):
            self.log.warning(
                "run %s of %s failed after %d attempt(s): %s: %s",
                run.run_id,
                run.function.id,
                run.attempts,
                run.error["name"],
                run.error["message"],
                extra=log_fields(run, attempt=run.attempts - 1 if run.attempts else None),
            )
        self._announce_end(run, now)

    def _announce_end(self, run: Run, now: int) -> None:
        """Send inngest/function.finished, plus .failed or .cancelled, for an ended run.

        Runs started by these system events announce nothing (no recursion). When
        nothing can see the finished event as it is sent (no function or wait for it, no
        test harness), only its id is minted now and the store builds the event from the
        run when it is read: the same event, in the same place, for a fraction of the
        cost.
        """
        events = run._events
        first = events if type(events) is not tuple else events[0]  # run.event, inlined
        # announcements(status, system_run=...), looked up rather than called (see _ANNOUNCE)
        system_run = first.name in _SYSTEM_NAMES  # type: ignore[union-attr]
        for name in _ANNOUNCE[system_run][run.status.position]:
            if name != FINISHED_EVENT:
                payload = finish_payload(run)
                payload["error"] = run.error
                self._emit(name, payload, now, event_id=run.run_id)  # its id is the run id
                continue
            internal_id = self._ids.new(now)
            # Whether nothing can see the finished event as it is sent (no function or
            # wait for it, no test harness): the store may then build it when it is read.
            if (
                self.defer_finished
                and self.harness is None
                and FINISHED_EVENT not in self._pauses.by_name
                and (
                    self.registry.cache.get(FINISHED_EVENT) == ()
                    or not self.registry.matching(FINISHED_EVENT)
                )
            ):
                self.store.add_finished(internal_id, run)
            else:
                self._emit_stored(finished_event(run, internal_id))

    # ------------------------------------------------------------------ records

    def get_event(self, internal_id: str) -> StoredEvent | None:
        return self.store.get_event(internal_id)

    def events(self, name: str | None = None) -> list[StoredEvent]:
        return self.store.events(name)

    def get_run(self, run_id: str) -> Run | None:
        return self.store.get_run(run_id)

    def runs(
        self,
        function_id: str | None = None,
        event_id: str | None = None,
        status: RunStatus | None = None,
    ) -> list[Run]:
        return self.store.runs(function_id, event_id, status)
