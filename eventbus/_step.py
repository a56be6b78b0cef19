"""``ctx.step``: durable steps, memoized in the run's journal.

How a run executes: the handler runs inline. Each ``ctx.step.*`` call looks its id up in
the journal: a completed step returns its recorded output without running again; a new
step runs now and is recorded. When the run must suspend (a sleep) or retry a failed
step later, the step tool records what happens next, schedules it with the engine, and
unwinds the handler with :class:`Interrupt` (a ``BaseException``, so ``except Exception``
in user code cannot swallow it). The run holds no coroutine and no worker while it is
suspended; when it is due, the handler runs again from the top and every completed step
returns its memoized value.

Step ids may repeat within a run (loops): the n-th reuse of ``"x"`` is ``"x:n"``.
"""

from __future__ import annotations

import contextvars
import datetime
import enum
import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from anyio.lowlevel import checkpoint

from ._clock import datetime_to_ms
from ._duration import parse_duration_ms
from ._errors import (
    EngineNotRunningError,
    EventValidationError,
    ExpressionError,
    NonRetriableError,
    RetryAfterError,
    StepError,
    UsageError,
    error_info,
)
from ._event import Event
from ._expr import compile_expression
from ._json import OutputError, decode_output, encode_output, json_copy
from ._middleware import HookError
from ._run import STEP_COMPLETED, STEP_FAILED, STEP_SLEEPING, STEP_WAITING, StepRecord

if TYPE_CHECKING:
    from ._context import _ContextBase
    from ._function import Function
    from ._harness import Harness
    from ._host import StepHost
    from ._middleware import Hooks
    from ._run import Run

T = TypeVar("T")

MAX_STEPS = 1000
#: The largest step input (step.run's arguments, as JSON) kept in its record.
MAX_INPUT_BYTES = 64 * 1024
MAX_STEP_OUTPUT_BYTES = 4 * 1024 * 1024
MAX_SLEEP_MS = 366 * 86_400_000
MAX_INVOKE_MS = 365 * 86_400_000  # Inngest's default invoke timeout: one year


class Interrupt(BaseException):
    """Unwinds a handler whose run must suspend or retry a step later. Not an error."""


class FailRun(BaseException):
    """Unwinds a handler whose run must fail at once (a limit was exceeded)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


#: The step running in this task (per task, so parallel branches do not see each other).
_current_step: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "eventbus_current_step", default=None
)
#: The scheduling of the parallel group this task runs a branch of, if any.
_current_branch: contextvars.ContextVar[_Waves | None] = contextvars.ContextVar(
    "eventbus_current_branch", default=None
)


class _Wave:
    __slots__ = ("kinds", "pauses_go", "pauses_left", "runs_go")

    def __init__(self) -> None:
        import anyio

        self.kinds: list[str] = []
        self.pauses_go = anyio.Event()
        self.runs_go = anyio.Event()
        self.pauses_left = 0


class _Waves:
    """Inngest's scheduling of a parallel group: the k-th new step of every branch runs
    in wave k (``a.1, b.1`` then ``a.2, b.2``), and in each wave the pauses (waits,
    sleeps, invokes) are registered before any step executes, so a branch's
    ``wait_for_event`` catches what a sibling sends in the same wave."""

    __slots__ = ("barrier", "current", "live")

    def __init__(self, branches: int, *, barrier: bool = True) -> None:
        self.live = branches
        self.current = _Wave()
        #: False for RACE: every branch runs ahead without waiting for its siblings.
        self.barrier = barrier

    async def arrive(self, kind: str) -> None:
        """Wait for this branch's turn to start a new step of ``kind`` ("pause"/"run")."""
        if not self.barrier:
            return
        wave = self.current
        wave.kinds.append(kind)
        self._release_if_complete()
        if kind == "pause":
            await wave.pauses_go.wait()
            wave.pauses_left -= 1
            if wave.pauses_left == 0:
                wave.runs_go.set()  # (this branch registers before the runs get to run)
        else:
            await wave.runs_go.wait()

    def leave(self) -> None:
        """A branch finished, suspended or failed: the others no longer wait for it."""
        self.live -= 1
        self._release_if_complete()

    def _release_if_complete(self) -> None:
        wave = self.current
        if wave.kinds and len(wave.kinds) >= self.live:
            self.current = _Wave()  # later arrivals belong to the next wave
            wave.pauses_left = wave.kinds.count("pause")
            wave.pauses_go.set()
            if not wave.pauses_left:
                wave.runs_go.set()


def clear_step_context() -> None:
    """Forget the step and parallel branch of the current context (for engine tasks)."""
    _current_step.set(None)
    _current_branch.set(None)


class StepUnexpectedError(NonRetriableError):
    """On a re-execution the handler reached a new step before the step being retried,
    as Inngest reports it when a step disappears: the handler's steps must not depend on
    anything that changes between executions."""


class UnstubbedStepError(UsageError):
    """The mocked runner met a ``wait_for_event`` or ``invoke`` with no stub."""

    def __init__(self, step_id: str) -> None:
        self.step_id = step_id
        super().__init__(
            f"step {step_id} is not stubbed: pass step_stubs={{{step_id!r}: ...}} to trigger() "
            "(an Event or mocked.Timeout for wait_for_event, the output for invoke)"
        )


class CancelRun(BaseException):
    """Unwinds a handler whose run was cancelled, at the step boundary where it noticed."""


class Execution:
    """The state of one execution of a handler (from the top, against the journal).

    ``memos`` is how many finished steps the journal held when it began, ``consumed``
    how many of them it has met again: until it has met them all it is replaying code
    that already ran, and ``ctx.logger`` stays quiet, as the SDK's logger does.
    """

    # Class defaults and no __init__: one is made per execution (per run, for most), and
    # only what an execution changes is set on it.
    #: The middleware of this execution (a function with middleware), or None.
    hooks: Hooks | None = None
    #: How many times each step id was used (made on the first step).
    counts: dict[str, int] | None = None
    interrupted = False
    memos = 0
    consumed = 0
    #: Steps awaiting a retry that this execution has not reached yet: meeting a new
    #: step first means the handler changed its path (StepUnexpectedError).
    targets: set[str] | None = None

    @property
    def replaying(self) -> bool:
        return self.consumed < self.memos


def _recorded_input(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``step.run``'s arguments as ``[args, kwargs]`` in JSON, or None if they are not
    JSON or are too large to keep beside the output."""
    try:
        encoded = encode_output([list(args), kwargs])
    except OutputError:
        return None
    return None if len(encoded) > MAX_INPUT_BYTES else decode_output(encoded)


async def _wave(kind: str) -> None:
    """Inside a parallel branch, wait for this new step's wave (see _Waves)."""
    waves = _current_branch.get()
    if waves is not None:
        await waves.arrive(kind)


def _dumped(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, with a model it returns dumped to JSON (for ``output_type=``)."""

    def call(*args: Any, **kwargs: Any) -> Any:
        value = fn(*args, **kwargs)
        if inspect.isawaitable(value):

            async def awaited() -> Any:
                return _dump(await value)

            return awaited()
        return _dump(value)

    return call


def _serialized(fn: Callable[..., Any], serializer: Any, output_type: Any) -> Callable[..., Any]:
    """``fn``, with what it returns serialized by the client's serializer."""

    def call(*args: Any, **kwargs: Any) -> Any:
        value = fn(*args, **kwargs)
        if inspect.isawaitable(value):

            async def awaited() -> Any:
                return serializer.serialize(await value, output_type)

            return awaited()
        return serializer.serialize(value, output_type)

    return call


def _dump(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump(mode="json") if callable(dump) and not isinstance(value, type) else value


def _typed(value: Any, output_type: Any) -> Any:
    validate = getattr(output_type, "model_validate", None)
    if validate is None:
        raise UsageError(
            f"output_type={output_type!r} has no model_validate(); give a pydantic model "
            "(or any class with model_validate), or leave it out for plain JSON"
        )
    return value if value is None else validate(value)


def _event_from_wire(wire: dict[str, Any]) -> Event:
    return Event(
        wire["name"],
        wire["data"],
        wire.get("id"),
        wire.get("ts"),
        wire.get("v"),
        wire.get("user") or {},
    )


#: The SDK's opcode for each kind of step (what middleware sees in TransformOutputStepInfo).
_OPCODES = {
    "run": "StepRun",
    "send_event": "StepRun",
    "sleep": "Sleep",
    "wait_for_event": "WaitForEvent",
    "invoke": "InvokeFunction",
}

#: Marks a journal error that was a NonRetriableError, so replays raise it again as one.
_NON_RETRIABLE = "_non_retriable"


def _replayed_error(record: StepRecord) -> Exception:
    error = record.error or {}
    if error.get(_NON_RETRIABLE):
        return NonRetriableError(str(error.get("message", "")))
    return _step_error(record)


def _step_error(record: StepRecord) -> StepError:
    error = record.error or {}
    return StepError(
        str(error.get("message", "")),
        str(error.get("name", "Error")),
        error.get("stack"),
        step_id=record.id,
    )


class Step:
    """The step tools of one handler execution (``ctx.step``)."""

    __slots__ = ("_ctx", "_engine", "_execution", "_run")

    def __init__(self, engine: StepHost, run: Run, execution: Execution) -> None:
        self._engine = engine
        self._run = run
        self._execution = execution
        self._ctx: _ContextBase | None = None

    # ------------------------------------------------------------------ helpers

    def _key(self, step_id: object) -> str:
        if not isinstance(step_id, str) or not step_id:
            raise UsageError(f"a step id must be a non-empty string, got {step_id!r}")
        if self._run._cancel_requested:
            raise CancelRun()
        if _current_step.get() is not None:
            # FailRun, not an Exception: as in the SDK, no `except Exception:` in the
            # outer step's function can swallow it; the run fails.
            raise FailRun(
                NonRetriableError(
                    "Nested steps are not supported. "  # the SDK's words, then ours
                    f"(step {step_id!r} was called inside step {_current_step.get()!r}; steps "
                    "cannot be nested: call it from the handler, after the enclosing "
                    "step.run returns)"
                )
            )
        counts = self._execution.counts
        if counts is None:
            counts = self._execution.counts = {}
        seen = counts.get(step_id, 0)
        counts[step_id] = seen + 1
        return step_id if seen == 0 else f"{step_id}:{seen}"

    def _new_record(self, key: str, kind: str) -> StepRecord:
        if self._execution.targets:
            waves = _current_branch.get()
            if waves is None or waves.barrier:  # a RACE branch may run ahead on its own
                raise FailRun(
                    StepUnexpectedError(f'found step "{key}" when targeting a different step')
                )
        journal = self._run.journal
        if len(journal) >= MAX_STEPS:
            raise FailRun(
                NonRetriableError(
                    f"run of {self._run.function.id!r} exceeded the limit of {MAX_STEPS} steps "
                    f"at step {key!r}; split the work across runs (for example with send_event)"
                )
            )
        record = StepRecord(key, kind, self._engine.clock.now_ms())
        record._pos = len(journal)
        journal[key] = record
        return record

    def _suspend(self) -> Interrupt:
        if _current_branch.get() is None:
            # In a parallel branch only the branch suspends; parallel() decides for the run.
            self._execution.interrupted = True
        return Interrupt()

    def _replayed(self) -> Hooks | None:
        """A finished step was met again: one memo fewer before new code runs. Returns
        the middleware when it was the last memo (``before_execution`` is due)."""
        execution = self._execution
        execution.consumed += 1
        hooks = execution.hooks
        return hooks if hooks is not None and execution.consumed == execution.memos else None

    async def _memo(self, record: StepRecord) -> Any:
        """A finished step's recorded output, met again by this execution."""
        due = self._replayed()
        if due is not None:
            await due.before_execution()
        hooks = self._execution.hooks
        return record.output if hooks is None else hooks.memo_data(record.id, record.output)

    async def _replayed_failure(self, record: StepRecord) -> Exception:
        hooks = self._replayed()
        if hooks is not None:
            await hooks.before_execution()
        return _replayed_error(record)

    async def _end(
        self,
        record: StepRecord,
        output: Any,
        error: Exception | None,
        *,
        rerun: bool,
        op: str | None = None,
    ) -> Any:
        """With middleware, a new step that ended ends the execution, as a request to an
        app on Inngest ends: the hooks fire, and with ``rerun`` the handler runs again
        from the top at once (else when the run wakes). In a parallel group only
        ``transform_output`` fires (for a step that returned), and the group goes on."""
        hooks = self._execution.hooks
        assert hooks is not None
        step = (record.id, op or _OPCODES[record.kind])
        in_branch = _current_branch.get() is not None
        if in_branch:
            if error is not None or not rerun:
                return output
            changed = await hooks.transform_step(output, step)
        else:
            changed, _ = await hooks.end(output, error, step)
        if error is None and record.status is STEP_COMPLETED and changed is not output:
            try:
                record.output = decode_output(encode_output(changed))
            except OutputError as exc:
                raise HookError(
                    NonRetriableError(
                        f"transform_output gave step {record.id!r} a value that {exc}"
                    )
                ) from None
        if in_branch:
            return record.output
        if rerun:
            self._engine.rerun(self._run)  # run again at once, from the top
        raise self._suspend()

    async def _execute(
        self,
        key: str,
        kind: str,
        thunk: Callable[[], Any],
        given: tuple[tuple[Any, ...], dict[str, Any]] | None = None,
    ) -> Any:
        if self._engine.crashed:  # a sync handler's thread, abandoned by a crash, goes on
            raise EngineNotRunningError("the engine crashed (eventbus.testing): no more steps")
        record = self._run.journal.get(key)
        if record is not None:
            if record.status is STEP_COMPLETED:
                return await self._memo(record)
            if record.status is STEP_FAILED:
                raise await self._replayed_failure(record)
            if self._execution.targets:
                self._execution.targets.discard(key)  # the retried step was reached
            if self._run._retrying is not None:
                self._run._retrying.discard(key)
        waves = _current_branch.get()
        if waves is not None and waves.barrier:  # inline: this runs for every step
            await waves.arrive("run")
        if record is None:
            record = self._new_record(key, kind)
            if given is not None:
                record.input = _recorded_input(*given)
        engine = self._engine
        if waves is not None and self._run._slotted:
            thunk = engine.branch_gate(self._run, thunk)  # one concurrency slot per step
        retries = self._run.function.retries
        attempt = record.attempts
        record.attempts = attempt + 1
        if self._ctx is not None:
            self._ctx.attempt = attempt
        tracing = engine.tracing
        trace_token = (
            None
            if tracing is None
            else tracing.step_attempt(self._run, record, attempt, engine.clock.now_ms())
        )
        token = _current_step.set(key)
        try:
            value = thunk()
            if inspect.isawaitable(value):
                value = await value
        except BaseException as exc:
            _current_step.reset(token)
            if tracing is not None:
                tracing.step_attempt_failed(
                    self._run, record, exc, trace_token, engine.clock.now_ms()
                )
            if isinstance(exc, NonRetriableError):
                # As the SDK: it leaves the step as itself (a StepError fallback does
                # not catch it) and, uncaught, fails the run.
                self._fail(record, exc)
                assert record.error is not None
                record.error[_NON_RETRIABLE] = True
                raise
            if isinstance(exc, (UsageError, EventValidationError, StepError)):
                raise await self._failed(record, exc) from exc
            if not isinstance(exc, Exception):
                raise
            if record.attempts > retries:
                raise await self._failed(record, exc) from exc
            record.error = error_info(exc)
            if isinstance(exc, RetryAfterError):
                delay: int | None = engine.clamp_retry_after(exc.delay_ms(engine.clock.now_ms()))
            else:
                delay = None
            engine.retry_step(self._run, record, delay)
            if self._execution.hooks is not None:
                await self._end(record, None, exc, rerun=False, op="StepError")
            raise self._suspend() from None
        _current_step.reset(token)
        if tracing is not None:
            tracing.leave(trace_token)
        harness = engine.harness
        if harness is not None and harness.crash_points:
            await self._crash_point(harness, record, committed=False)
        try:
            encoded = encode_output(value)
        except OutputError as exc:
            raise self._fail(
                record, NonRetriableError(f"step {key!r} returned a value that {exc}")
            ) from None
        if len(encoded) > MAX_STEP_OUTPUT_BYTES:
            raise self._fail(
                record,
                NonRetriableError(
                    f"step {key!r} returned {len(encoded)} bytes of JSON, more than the "
                    f"{MAX_STEP_OUTPUT_BYTES}-byte limit per step; store large data elsewhere "
                    "and return a reference"
                ),
            )
        try:
            output = decode_output(encoded)
        except OutputError as exc:  # pragma: no cover - decoding is as deep as encoding
            raise self._fail(
                record, NonRetriableError(f"step {key!r} returned a value that {exc}")
            ) from None
        self._complete(record, output)
        engine = self._engine
        if engine.durable:
            # Committed before the handler goes on: a step whose result is in the store
            # never runs again, whatever happens to this process.
            await engine.commit()
        if harness is not None and harness.crash_points:
            await self._crash_point(harness, record, committed=True)
        if self._execution.hooks is not None:
            return await self._end(record, output, None, rerun=True)
        if (
            waves is None
            and self._run._rare is not None
            and self._run._slotted
            and engine.yield_slot(self._run)
        ):
            # Others wait for this run's concurrency slot: on Inngest each step is a
            # queue item of its own, so they go first; this run goes on after them.
            raise self._suspend()
        return output

    async def _crash_point(self, harness: Harness, record: StepRecord, *, committed: bool) -> None:
        """eventbus.testing's crash_after: stop the engine here, as a killed process."""
        key = record.id
        if harness.crash_point(self._run.function.id, key, committed):
            if not committed:
                # Nothing of this attempt was recorded (SqliteStore writes a step's
                # attempts with its result): a MemoryStore forgets it too.
                record.attempts -= 1
            self._engine.crash()
            await checkpoint()  # the crash cancelled this run's worker: it ends here
            # A sync handler's step runs outside that worker: its thread is abandoned.
            raise EngineNotRunningError(
                f"the engine crashed after step {key!r} (bus.crash_after); restart it"
            )

    async def _failed(self, record: StepRecord, exc: BaseException) -> StepError:
        """The step failed for good; with middleware that ends the execution, and the
        next one replays the failure."""
        error = self._fail(record, exc)
        if self._engine.durable:
            await self._engine.commit()
        if self._execution.hooks is not None:
            cause = exc if isinstance(exc, Exception) else error
            await self._end(record, None, cause, rerun=True, op="StepFailed")
        return error

    def _complete(self, record: StepRecord, output: Any) -> None:
        record.status = STEP_COMPLETED
        record.output = output
        record.error = None
        record._ended_ms = self._engine.clock.now_ms()
        self._run._done_steps += 1
        self._run.next_attempt = 0
        if self._ctx is not None:
            self._ctx.attempt = 0
        if self._engine.durable:
            self._engine.touch(self._run, record)
        if self._engine.tracing is not None:
            self._engine.tracing.step_ended(self._run, record, record._ended_ms)

    def _fail(self, record: StepRecord, exc: BaseException) -> StepError:
        record.status = STEP_FAILED
        record.error = error_info(exc)
        record._ended_ms = self._engine.clock.now_ms()
        self._run._done_steps += 1
        self._run.next_attempt = 0
        if self._ctx is not None:
            self._ctx.attempt = 0
        if self._engine.durable:
            self._engine.touch(self._run, record)
        if self._engine.tracing is not None:
            self._engine.tracing.step_ended(self._run, record, record._ended_ms)
        return _step_error(record)

    # ------------------------------------------------------------------ tools

    async def run(
        self,
        step_id: str,
        fn: Callable[..., Awaitable[T] | T],
        *args: Any,
        output_type: Any = None,
        **kwargs: Any,
    ) -> T:
        """Run ``fn(*args, **kwargs)`` (sync or async) as a step; return its JSON result.

        ``output_type`` (a pydantic model, or any class with ``model_validate``) turns the
        JSON result back into that type, as the SDK's pydantic serializer does; a step may
        then return such a model (it is stored as its ``model_dump(mode="json")``).

        A step that succeeded is never run again in this run: later executions get the
        recorded result. A failing step is retried with backoff (``retries`` of the
        function, counted per step); after the last attempt :class:`StepError` is raised
        here. The result goes through a JSON round trip, so the code after the step sees
        exactly what a real backend would return.
        """
        if output_type is not None:
            serializer = self._run.function.serializer
            if serializer is not None:  # the client's, as the SDK applies it
                value = await self.run(
                    step_id, _serialized(fn, serializer, output_type), *args, **kwargs
                )
                return cast(T, serializer.deserialize(value, output_type))
            value = await self.run(step_id, _dumped(fn), *args, **kwargs)
            return cast(T, _typed(value, output_type))
        key = self._key(step_id)
        harness = self._engine.harness
        if harness is None:
            return await self._execute(  # type: ignore[no-any-return]
                key, "run", lambda: fn(*args, **kwargs), (args, kwargs) if args or kwargs else None
            )
        mocked, mock = harness.mock_for(self._run.function.id, key)
        if mocked:
            target: Callable[..., Any] = mock if callable(mock) else (lambda *a, **k: mock)
        else:
            target = fn
        function_id, run_id = self._run.function.id, self._run.run_id
        last = [-1]

        def call() -> Any:
            # One record per attempt (replays of a memoized step make none).
            harness.step_calls.append(
                {
                    "function_id": function_id,
                    "run_id": run_id,
                    "step_id": key,
                    "args": args,
                    "kwargs": kwargs,
                    "mocked": mocked,
                }
            )
            index = last[0] = len(harness.step_calls) - 1
            try:
                value = target(*args, **kwargs)
            except Exception as exc:
                harness.step_calls[index]["error"] = exc
                raise
            if not inspect.isawaitable(value):
                return value
            awaitable = value

            async def awaited() -> Any:
                try:
                    return await awaitable
                except Exception as exc:
                    harness.step_calls[index]["error"] = exc
                    raise

            return awaited()

        result = await self._execute(key, "run", call, (args, kwargs) if args or kwargs else None)
        if last[0] >= 0:
            harness.step_calls[last[0]]["result"] = result
        return result  # type: ignore[no-any-return]

    async def sleep(self, step_id: str, duration: datetime.timedelta | int | str) -> None:
        """Suspend the run for ``duration`` (timedelta, int milliseconds or ``"1h30m"``).

        The run holds no worker while it sleeps (status ``SLEEPING``); at most 366 days.
        """
        try:
            ms = parse_duration_ms(duration, what=f"sleep {step_id!r} duration")
        except ValueError as exc:
            raise NonRetriableError(str(exc)) from None
        await self._sleep(step_id, self._engine.clock.now_ms() + ms, duration)

    async def sleep_until(self, step_id: str, until: datetime.datetime) -> None:
        """Suspend the run until ``until`` (a naive datetime is local time, as in the SDK);
        a past time returns at once."""
        if not isinstance(until, datetime.datetime):
            raise NonRetriableError(
                f"sleep_until {step_id!r} needs a datetime, got {until!r}; for example "
                "datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)"
            )
        if until.tzinfo is None:
            until = until.astimezone()
        await self._sleep(step_id, datetime_to_ms(until), until)

    async def _sleep(self, step_id: str, wake_ms: int, asked: object) -> None:
        key = self._key(step_id)
        record = self._run.journal.get(key)
        if record is not None:
            if record.status is STEP_COMPLETED:
                await self._memo(record)
                return
            raise self._suspend()  # still sleeping (a parallel branch woke the run)
        now = self._engine.clock.now_ms()
        if wake_ms - now > MAX_SLEEP_MS:
            raise NonRetriableError(
                f"sleep {key!r} of {asked!r} is longer than 366 days, the most Inngest allows"
            )
        await _wave("pause")
        record = self._new_record(key, "sleep")
        record.attempts = 1
        if wake_ms <= now:
            self._complete(record, None)
            if self._execution.hooks is not None:
                await self._end(record, None, None, rerun=True)
            return
        record.status = STEP_SLEEPING
        record.wake_ms = wake_ms
        self._engine.sleep_step(self._run, record)
        if self._execution.hooks is not None:
            await self._end(record, None, None, rerun=False)
        raise self._suspend()

    async def wait_for_event(
        self,
        step_id: str,
        *,
        event: str,
        timeout: datetime.timedelta | int | str,
        if_exp: str | None = None,
        match: str | None = None,
    ) -> Event | None:
        """Suspend the run until an event named ``event`` arrives, or ``timeout`` passes.

        Only events received after the wait began count, never the run's own triggering
        event. ``if_exp`` is an expression over ``event`` (the run's first event) and
        ``async`` (the candidate); ``match="data.id"`` is short for
        ``event.data.id == async.data.id``. Returns the matching event, or ``None`` on
        timeout. Deduplicated events match too, as on Inngest.
        """
        key = self._key(step_id)
        record = self._run.journal.get(key)
        if record is not None:
            if record.status is STEP_COMPLETED:
                found = await self._memo(record)
                return None if found is None else _event_from_wire(found)
            raise self._suspend()  # still waiting (a parallel branch woke the run)
        if not isinstance(event, str) or not event:
            raise NonRetriableError(
                f"wait_for_event {key!r} needs event= naming the event to wait for, got {event!r}"
            )
        if if_exp is not None and match is not None:
            raise NonRetriableError(f"wait_for_event {key!r} takes if_exp= or match=, not both")
        try:
            ms = parse_duration_ms(timeout, what=f"wait_for_event {key!r} timeout")
        except ValueError as exc:
            raise NonRetriableError(str(exc)) from None
        if ms > MAX_SLEEP_MS:
            raise NonRetriableError(
                f"wait_for_event {key!r} timeout {timeout!r} is longer than 366 days"
            )
        if match is not None:
            if not isinstance(match, str) or not match.strip():
                raise NonRetriableError(
                    f"wait_for_event {key!r} match= must be a field path like 'data.id', "
                    f"got {match!r}"
                )
            if_exp = f"event.{match} == async.{match}"
        compiled = None
        if if_exp is not None:
            try:
                compiled = compile_expression(if_exp)
            except ExpressionError as exc:
                raise NonRetriableError(
                    f"wait_for_event {key!r} has an invalid expression: {exc}"
                ) from None
        await _wave("pause")
        record = self._new_record(key, "wait_for_event")
        record.attempts = 1
        harness = self._engine.harness
        if harness is not None:
            mocked, mock = harness.mock_for(self._run.function.id, key)
            if not mocked and harness.require_stubs:
                raise FailRun(UnstubbedStepError(key))
            if mocked:
                value = mock() if callable(mock) else mock
                if value is not None and not isinstance(value, Event):
                    raw = getattr(value, "to_dict", None)  # inngest.Event, say
                    value = Event.from_dict(raw() if callable(raw) else value)
                self._complete(record, None if value is None else value.to_dict())
                if self._execution.hooks is not None:
                    await self._end(record, record.output, None, rerun=True)
                return value  # type: ignore[no-any-return]
        record.status = STEP_WAITING
        record.wake_ms = self._engine.clock.now_ms() + ms
        record.wait_for = (event, if_exp)
        self._engine.wait_step(self._run, record, event, compiled)
        if self._execution.hooks is not None:
            await self._end(record, None, None, rerun=False)
        raise self._suspend()

    async def invoke(
        self,
        step_id: str,
        *,
        function: Function,
        data: Mapping[str, Any] | None = None,
        timeout: datetime.timedelta | int | str | None = None,
        v: str | None = None,
    ) -> Any:
        """Run ``function`` with ``data`` and return its output, as a step.

        ``v`` is the version of the invocation event's payload.

        The target runs with an ``inngest/function.invoked`` event whatever its triggers.
        If it fails, or ``timeout`` (default one year) passes first, :class:`StepError`
        is raised here; the caller's retries are not compounded on top.
        """
        from ._function import Function

        if not isinstance(function, Function):
            raise NonRetriableError(
                f"invoke {step_id!r} needs function= to be an eventbus.Function "
                f"(what create_function returned), got {function!r}"
            )
        output = await self._invoke(step_id, function.id, data, timeout, v)
        serializer = self._run.function.serializer
        if serializer is not None and function.output_type is not None:
            return serializer.deserialize(output, function.output_type)  # as the SDK does
        return output

    async def invoke_by_id(
        self,
        step_id: str,
        *,
        function_id: str,
        app_id: str | None = None,
        data: Mapping[str, Any] | None = None,
        timeout: datetime.timedelta | int | str | None = None,
        v: str | None = None,
    ) -> Any:
        """Like :meth:`invoke`, naming the target by its ``fn_id`` (and ``app_id``, default
        this client's)."""
        if not isinstance(function_id, str) or not function_id:
            raise NonRetriableError(
                f"invoke_by_id {step_id!r} needs function_id=, got {function_id!r}"
            )
        app = app_id if app_id is not None else self._run.function.app_id
        return await self._invoke(step_id, f"{app}-{function_id}", data, timeout, v)

    async def _invoke(
        self,
        step_id: str,
        target_id: str,
        data: Mapping[str, Any] | None,
        timeout: datetime.timedelta | int | str | None,
        v: str | None = None,
    ) -> Any:
        key = self._key(step_id)
        record = self._run.journal.get(key)
        if record is not None:
            if record.status is STEP_COMPLETED:
                return await self._memo(record)
            if record.status is STEP_FAILED:
                raise await self._replayed_failure(record)
            raise self._suspend()  # still waiting (a parallel branch woke the run)
        try:
            ms = (
                MAX_INVOKE_MS
                if timeout is None
                else parse_duration_ms(timeout, what=f"invoke {key!r} timeout")
            )
        except ValueError as exc:
            raise NonRetriableError(str(exc)) from None
        await _wave("pause")
        record = self._new_record(key, "invoke")
        record.attempts = 1
        engine = self._engine
        harness = engine.harness
        if harness is not None:
            mocked, mock = harness.mock_for(self._run.function.id, key)
            if not mocked and harness.require_stubs:
                raise FailRun(UnstubbedStepError(key))
            if mocked:
                try:
                    value = mock(dict(data or {})) if callable(mock) else mock
                    output = decode_output(encode_output(value))
                except Exception as exc:
                    raise await self._failed(record, exc) from exc
                self._complete(record, output)
                if self._execution.hooks is not None:
                    return await self._end(record, output, None, rerun=True)
                return output
        target = engine.registry.functions.get(target_id)
        if target is None:
            raise self._fail(
                record,
                NonRetriableError(
                    f"invoke {key!r}: no function {target_id!r} is registered on this client"
                ),
            )
        try:
            payload, _ = json_copy(dict(data or {}), "data")
        except EventValidationError as exc:
            raise self._fail(record, NonRetriableError(f"invoke {key!r}: {exc}")) from None
        record.status = STEP_WAITING
        record.wake_ms = engine.clock.now_ms() + ms
        engine.invoke_step(self._run, record, target, payload, v)
        if self._execution.hooks is not None:
            await self._end(record, None, None, rerun=False)
        raise self._suspend()

    async def send_event(self, step_id: str, events: Any) -> list[str]:
        """Send events as a step: on retries and replays they are not sent again, and the
        same ids are returned."""
        key = self._key(step_id)
        engine = self._engine
        hooks = self._execution.hooks
        if hooks is None:
            ids = await self._execute(key, "send_event", lambda: engine.send_events(events))
        else:
            items = events if isinstance(events, list) else [events]
            ids = await self._execute(
                key, "send_event", lambda: hooks.around_send(items, engine.send_events)
            )
        if engine.harness is not None:
            for event_id in ids:
                engine.harness.sent_by.setdefault(event_id, self._run.function.id)
        return ids  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"<Step tools run={self._run.run_id!r} journal={len(self._run.journal)}>"


class ParallelMode(enum.Enum):
    """How ``ctx.group.parallel`` combines its branches."""

    #: Branches advance together in waves, as Inngest schedules parallel steps.
    WAIT = "wait"
    #: Each branch runs ahead on its own; the results are still all of them, in order.
    RACE = "race"


class Group:
    """``ctx.group``: run steps in parallel."""

    __slots__ = ("_engine", "_execution", "_run")

    def __init__(self, engine: StepHost, run: Run, execution: Execution) -> None:
        self._engine = engine
        self._run = run
        self._execution = execution

    async def parallel(
        self,
        thunks: tuple[Callable[[], Awaitable[Any]], ...] | list[Callable[[], Awaitable[Any]]],
        parallel_mode: ParallelMode = ParallelMode.WAIT,
    ) -> Any:
        """Run each thunk (a callable returning a step call) concurrently.

        Each branch's steps are retried independently, and the call returns a tuple of
        every branch's result, in order, once all have finished (as the SDK's does). With
        ``WAIT`` the branches advance in Inngest's waves: the k-th new step of each runs
        together, a wave's waits and sleeps registered before its steps execute. With
        ``RACE`` each branch runs ahead on its own, without waiting for its siblings.
        """
        import anyio

        if not isinstance(parallel_mode, ParallelMode):
            raise UsageError(
                f"parallel_mode must be eventbus.ParallelMode.WAIT or RACE, got {parallel_mode!r}"
            )
        branches = list(thunks)
        if not all(callable(thunk) for thunk in branches):
            raise UsageError(
                "parallel() takes callables that return step calls, like "
                "(lambda: ctx.step.run('a', fetch_a), lambda: ctx.step.run('b', fetch_b))"
            )
        count = len(branches)
        results: list[Any] = [None] * count
        outcomes: list[str] = ["pending"] * count
        errors: list[BaseException | None] = [None] * count
        aborts: list[BaseException] = []
        waves = _Waves(count, barrier=parallel_mode is ParallelMode.WAIT)

        async def branch(index: int) -> None:
            token = _current_branch.set(waves)
            try:
                results[index] = await branches[index]()
                outcomes[index] = "done"
            except Interrupt:
                outcomes[index] = "suspended"
            except (FailRun, CancelRun) as exc:
                # Not raised here: a task group would wrap it. The other branches stop at
                # their next step (cancellation) or finish (limits); then it is raised.
                outcomes[index] = "aborted"
                aborts.append(exc)
            except Exception as exc:
                outcomes[index] = "error"
                errors[index] = exc
            finally:
                _current_branch.reset(token)
                waves.leave()

        order = list(range(count))
        shuffler = self._engine.shuffler
        if shuffler is not None:
            shuffler.shuffle(order)
        async with anyio.create_task_group() as tg:
            for index in order:
                tg.start_soon(branch, index)
        if aborts:
            raise aborts[0]

        for index in range(count):
            error = errors[index]
            if error is not None:
                raise error
        if "suspended" in outcomes:
            self._execution.interrupted = True
            raise Interrupt()
        return tuple(results)

    def __repr__(self) -> str:
        return f"<Group run={self._run.run_id!r}>"


class StepSync:
    """``ctx.step`` of a synchronous handler: the same tools, returning values directly.

    The handler runs in a worker thread; each call consults the run's journal in the
    event loop, and ``run`` executes its function in another worker thread.
    """

    __slots__ = ("_step",)

    def __init__(self, step: Step) -> None:
        self._step = step

    def _call(self, method: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        import anyio.from_thread

        async def call() -> Any:
            return await method(*args, **kwargs)

        return anyio.from_thread.run(call)

    def run(
        self,
        step_id: str,
        fn: Callable[..., T],
        *args: Any,
        output_type: Any = None,
        **kwargs: Any,
    ) -> T:
        """See :meth:`Step.run`; ``fn`` runs in a worker thread."""
        import anyio.to_thread

        limiter = self._step._engine.step_threads

        def in_thread(*call_args: Any, **call_kwargs: Any) -> Any:
            work = functools.partial(fn, *call_args, **call_kwargs)
            return anyio.to_thread.run_sync(work, limiter=limiter)

        # The arguments go through Step.run, so mocks and records see them.
        return cast(
            T,
            self._call(
                self._step.run, step_id, in_thread, *args, output_type=output_type, **kwargs
            ),
        )

    def sleep(self, step_id: str, duration: datetime.timedelta | int | str) -> None:
        """See :meth:`Step.sleep`."""
        self._call(self._step.sleep, step_id, duration)

    def sleep_until(self, step_id: str, until: datetime.datetime) -> None:
        """See :meth:`Step.sleep_until`."""
        self._call(self._step.sleep_until, step_id, until)

    def wait_for_event(
        self,
        step_id: str,
        *,
        event: str,
        timeout: datetime.timedelta | int | str,
        if_exp: str | None = None,
        match: str | None = None,
    ) -> Event | None:
        """See :meth:`Step.wait_for_event`."""
        return cast(
            "Event | None",
            self._call(
                self._step.wait_for_event,
                step_id,
                event=event,
                timeout=timeout,
                if_exp=if_exp,
                match=match,
            ),
        )

    def send_event(self, step_id: str, events: Any) -> list[str]:
        """See :meth:`Step.send_event`."""
        return cast("list[str]", self._call(self._step.send_event, step_id, events))

    def invoke(
        self,
        step_id: str,
        *,
        function: Function,
        data: Mapping[str, Any] | None = None,
        timeout: datetime.timedelta | int | str | None = None,
        v: str | None = None,
    ) -> Any:
        """See :meth:`Step.invoke`."""
        return self._call(
            self._step.invoke, step_id, function=function, data=data, timeout=timeout, v=v
        )

    def invoke_by_id(
        self,
        step_id: str,
        *,
        function_id: str,
        app_id: str | None = None,
        data: Mapping[str, Any] | None = None,
        timeout: datetime.timedelta | int | str | None = None,
        v: str | None = None,
    ) -> Any:
        """See :meth:`Step.invoke_by_id`."""
        return self._call(
            self._step.invoke_by_id,
            step_id,
            function_id=function_id,
            app_id=app_id,
            data=data,
            timeout=timeout,
            v=v,
        )

    def __repr__(self) -> str:
        return f"<StepSync {self._step!r}>"


class GroupSync:
    """``ctx.group`` of a synchronous handler: each thunk runs in its own worker thread."""

    __slots__ = ("_group", "_limiter")

    def __init__(self, group: Group, limiter: Any) -> None:
        self._group = group
        self._limiter = limiter

    def parallel(
        self,
        thunks: tuple[Callable[[], Any], ...] | list[Callable[[], Any]],
        parallel_mode: ParallelMode = ParallelMode.WAIT,
    ) -> Any:
        """See :meth:`Group.parallel`; thunks are plain callables (``lambda: ctx.step.run(..)``)."""
        import anyio.from_thread
        import anyio.to_thread

        if not all(callable(thunk) for thunk in thunks):
            raise UsageError(
                "parallel() takes callables that return step results, like "
                "(lambda: ctx.step.run('a', fetch_a), lambda: ctx.step.run('b', fetch_b))"
            )
        limiter = self._limiter

        def branch(thunk: Callable[[], Any]) -> Callable[[], Awaitable[Any]]:
            return lambda: anyio.to_thread.run_sync(thunk, limiter=limiter)

        async_thunks = tuple(branch(thunk) for thunk in thunks)
        return anyio.from_thread.run(
            functools.partial(self._group.parallel, async_thunks, parallel_mode)
        )

    def __repr__(self) -> str:
        return f"<GroupSync {self._group!r}>"
