"""Functions, their triggers and configuration, and the registry that matches events.

Trigger names match exactly and case-sensitively; a trigger may end in ``*`` right after a
``/`` or a ``.`` (``app/*``, ``app/user.*``) to match every name with that prefix, as on
Inngest. A function runs at most once per event even when several of its triggers match.
"""

from __future__ import annotations

import datetime
import inspect
import warnings
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from ._cron import CronSchedule, check_cron
from ._duration import check_period_ms, parse_duration_ms
from ._errors import ConfigWarning, ExpressionError, FunctionConfigError
from ._expr import POLICY_ALLOWED_FUNCTIONS, CompiledExpression, compile_expression
from ._flow import (
    DAY_MS,
    MAX_CONCURRENCY_CONSTRAINTS,
    MAX_DEBOUNCE_PERIOD_MS,
    MAX_RATE_PERIOD_MS,
    MAX_THROTTLE_PERIOD_MS,
    MIN_BATCH_SIZE,
    MIN_BATCH_TIMEOUT_MS,
    MIN_DEBOUNCE_PERIOD_MS,
    MIN_RATE_PERIOD_MS,
    MIN_THROTTLE_PERIOD_MS,
    BatchRule,
    ConcurrencyRule,
    DebounceRule,
    Gcra,
    PriorityRule,
    RateRule,
    SingletonRule,
    ThrottleRule,
)

if TYPE_CHECKING:
    from ._context import Context, ContextSync
    from ._middleware import MiddlewareSpec

MAX_TRIGGERS = 10
MAX_RETRIES = 20
DEFAULT_RETRIES = 4
MAX_EVENT_NAME_LENGTH = 255
FAILED_EVENT = "inngest/function.failed"
CANCELLED_EVENT = "inngest/function.cancelled"
INVOKED_EVENT = "inngest/function.invoked"
FINISHED_EVENT = "inngest/function.finished"
SCHEDULED_EVENT = "inngest/scheduled.timer"

Handler = Callable[["Context"], Awaitable[Any]] | Callable[["ContextSync"], Any]


def _check_event_name(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise FunctionConfigError(
            f"TriggerEvent(event=...) must be a non-empty event name, got {value!r}"
        )
    if len(value) > MAX_EVENT_NAME_LENGTH:
        raise FunctionConfigError(
            f"trigger event name is {len(value)} characters; the limit is {MAX_EVENT_NAME_LENGTH}"
        )
    star = value.find("*")
    if star != -1 and (star != len(value) - 1 or star == 0 or value[star - 1] not in "/."):
        raise FunctionConfigError(
            f"trigger {value!r} has a wildcard that never matches: '*' may only end the name, "
            "right after '/' or '.' (like 'app/*' or 'app/user.*')"
        )
    return value


def _compile(value: str | None) -> CompiledExpression | None:
    if value is None:
        return None
    return compile_expression(value)


def _compile_cancel(value: str | None) -> CompiledExpression | None:
    """A cancel rule's ``if``, under Inngest's restrictive policy: comparisons, ``&&``,
    ``||``, ``!``, ``?:``, ``in``, field access and ``int()``/``uint()``/``double()``
    only; macros (``has`` included) and other functions are rejected, as Inngest rejects
    them when the function is registered."""
    compiled = _compile(value)
    if compiled is not None:
        refused = sorted(compiled.calls - POLICY_ALLOWED_FUNCTIONS)
        if refused:
            raise ExpressionError(
                f"Cancel if_exp {value!r} calls {', '.join(f'{n}()' for n in refused)}; "
                "Inngest allows no macros or functions in a cancel expression besides "
                "int(), uint() and double(): compare fields directly, such as "
                "'async.data.id == event.data.id'",
                expression=str(value),
                position=0,
            )
    return compiled


@attrs.frozen
class TriggerEvent:
    """Run a function for every event named ``event`` for which ``expression`` is true.

    ``expression`` is an Inngest (CEL) expression over ``event``, compiled here: a syntax
    error raises :class:`eventbus.ExpressionError` at once.
    """

    event: str = attrs.field(converter=_check_event_name)
    expression: str | None = attrs.field(default=None)
    _compiled: CompiledExpression | None = attrs.field(
        init=False,
        eq=False,
        repr=False,
        default=attrs.Factory(lambda self: _compile(self.expression), takes_self=True),
    )

    def matches(self, env: dict[str, Any]) -> bool:
        """True if the expression (if any) is true for ``{"event": ...}``."""
        return self._compiled is None or self._compiled.matches(env)


MAX_CANCEL_RULES = 5
DEFAULT_CANCEL_TIMEOUT_MS = 365 * 86_400_000


def _duration_or_none(value: object, what: str) -> int | None:
    if value is None:
        return None
    try:
        ms = parse_duration_ms(value, what=what)
    except ValueError as exc:
        raise FunctionConfigError(str(exc)) from None
    if ms < 1000:
        raise FunctionConfigError(f"{what} {value!r} is shorter than the 1-second minimum")
    return ms


@attrs.frozen
class Cancel:
    """Cancel a run when an event named ``event`` arrives for which ``if_exp`` holds.

    ``if_exp`` sees the run's first event as ``event`` and the candidate as ``async``
    (``"async.data.id == event.data.id"``); ``timeout`` (default 365 days) bounds how
    long after the run started the rule applies.
    """

    event: str = attrs.field(converter=_check_event_name)
    if_exp: str | None = attrs.field(default=None)
    timeout: datetime.timedelta | int | str | None = attrs.field(default=None)
    _compiled: CompiledExpression | None = attrs.field(
        init=False,
        eq=False,
        repr=False,
        default=attrs.Factory(lambda self: _compile_cancel(self.if_exp), takes_self=True),
    )
    timeout_ms: int = attrs.field(
        init=False,
        eq=False,
        repr=False,
        default=attrs.Factory(
            lambda self: (
                _duration_or_none(self.timeout, "Cancel timeout") or DEFAULT_CANCEL_TIMEOUT_MS
            ),
            takes_self=True,
        ),
    )

    @property
    def compiled(self) -> CompiledExpression | None:
        return self._compiled


@attrs.frozen
class Timeouts:
    """Cancel runs that wait too long to start, or take too long to finish.

    ``start``: if the run has not started within this long after it was scheduled.
    ``finish``: if the run has not finished this long after it started. Timeouts never
    interrupt a running step; the run is cancelled at its next step boundary.
    """

    start: datetime.timedelta | int | str | None = None
    finish: datetime.timedelta | int | str | None = None
    start_ms: int | None = attrs.field(
        init=False,
        eq=False,
        repr=False,
        default=attrs.Factory(
            lambda self: _duration_or_none(self.start, "Timeouts start"), takes_self=True
        ),
    )
    finish_ms: int | None = attrs.field(
        init=False,
        eq=False,
        repr=False,
        default=attrs.Factory(
            lambda self: _duration_or_none(self.finish, "Timeouts finish"), takes_self=True
        ),
    )


def _check_cancel(cancel: object) -> tuple[Cancel, ...]:
    if cancel is None:
        return ()
    if isinstance(cancel, Cancel):
        cancel = [cancel]
    if not isinstance(cancel, (list, tuple)) or not all(isinstance(c, Cancel) for c in cancel):
        raise FunctionConfigError(f"cancel must be a list of eventbus.Cancel, got {cancel!r}")
    if len(cancel) > MAX_CANCEL_RULES:
        raise FunctionConfigError(
            f"{len(cancel)} cancel rules is more than the limit of {MAX_CANCEL_RULES}"
        )
    return tuple(cancel)


def _check_timeouts(timeouts: object) -> Timeouts | None:
    if timeouts is None or isinstance(timeouts, Timeouts):
        return timeouts
    raise FunctionConfigError(f"timeouts must be an eventbus.Timeouts, got {timeouts!r}")


def check_rate_limit(fn_id: str, rate_limit: object, idempotency: object) -> RateRule | None:
    """``rate_limit=`` (an eventbus or SDK ``RateLimit``) and ``idempotency=`` (a key
    expression: one run per key per 24 h, overriding any rate limit, as Inngest does)."""
    if idempotency is not None:
        if not isinstance(idempotency, str) or not idempotency.strip():
            raise FunctionConfigError(
                f"{fn_id!r}: idempotency must be a key expression such as "
                f"'event.data.order_id', got {idempotency!r}"
            )
        _compile_key(fn_id, "idempotency", idempotency)
        return RateRule(Gcra.rate_limit(1, DAY_MS), idempotency, idempotency=True)
    if rate_limit is None:
        return None
    limit = getattr(rate_limit, "limit", None)
    period = getattr(rate_limit, "period", None)
    key = getattr(rate_limit, "key", None)
    if isinstance(limit, bool) or not isinstance(limit, int) or period is None:
        raise FunctionConfigError(
            f"{fn_id!r}: rate_limit must be eventbus.RateLimit(limit=..., period=..., "
            f"key=None), got {rate_limit!r}"
        )
    if limit < 1:
        raise FunctionConfigError(f"{fn_id!r}: rate_limit limit must be at least 1, got {limit}")
    period_ms = check_period_ms(
        fn_id, "rate_limit period", period, MIN_RATE_PERIOD_MS, MAX_RATE_PERIOD_MS
    )
    _check_key(fn_id, "rate_limit key", key)
    return RateRule(Gcra.rate_limit(limit, period_ms), key, limit=limit, period_ms=period_ms)


def check_throttle(fn_id: str, throttle: object) -> ThrottleRule | None:
    """``throttle=`` (an eventbus or SDK ``Throttle``)."""
    if throttle is None:
        return None
    limit = getattr(throttle, "limit", None)
    period = getattr(throttle, "period", None)
    burst = getattr(throttle, "burst", 1)
    key = getattr(throttle, "key", None)
    if isinstance(limit, bool) or not isinstance(limit, int) or period is None:
        raise FunctionConfigError(
            f"{fn_id!r}: throttle must be eventbus.Throttle(limit=..., period=..., burst=1, "
            f"key=None), got {throttle!r}"
        )
    if limit < 0:
        raise FunctionConfigError(f"{fn_id!r}: throttle limit must not be negative, got {limit}")
    if burst is None:
        burst = 1
    if isinstance(burst, bool) or not isinstance(burst, int) or burst < 0:
        raise FunctionConfigError(
            f"{fn_id!r}: throttle burst must be an int of at least 0, got {burst!r}"
        )
    period_ms = check_period_ms(
        fn_id, "throttle period", period, MIN_THROTTLE_PERIOD_MS, MAX_THROTTLE_PERIOD_MS
    )
    _check_key(fn_id, "throttle key", key)
    limit = max(limit, 1)  # Inngest normalises 0 to 1
    return ThrottleRule(
        Gcra.throttle(limit, period_ms, burst), key, limit=limit, period_ms=period_ms, burst=burst
    )


def check_debounce(fn_id: str, debounce: object) -> DebounceRule | None:
    """``debounce=`` (an eventbus or SDK ``Debounce``)."""
    if debounce is None:
        return None
    period = getattr(debounce, "period", None)
    if period is None:
        raise FunctionConfigError(
            f"{fn_id!r}: debounce must be eventbus.Debounce(period=..., key=None, "
            f"timeout=None), got {debounce!r}"
        )
    period_ms = check_period_ms(
        fn_id, "debounce period", period, MIN_DEBOUNCE_PERIOD_MS, MAX_DEBOUNCE_PERIOD_MS
    )
    timeout = getattr(debounce, "timeout", None)
    timeout_ms = None
    if timeout is not None:
        timeout_ms = check_period_ms(
            fn_id, "debounce timeout", timeout, MIN_DEBOUNCE_PERIOD_MS, MAX_DEBOUNCE_PERIOD_MS
        )
    key = getattr(debounce, "key", None)
    if key == "":
        key = None  # as Inngest: an empty key is no key
    _check_key(fn_id, "debounce key", key)
    return DebounceRule(period_ms, key, timeout_ms)


def check_singleton(fn_id: str, singleton: object) -> SingletonRule | None:
    """``singleton=`` (an eventbus or SDK ``Singleton``)."""
    if singleton is None:
        return None
    mode = getattr(singleton, "mode", None)
    key = getattr(singleton, "key", None)
    if mode not in ("skip", "cancel"):
        raise FunctionConfigError(
            f"{fn_id!r}: singleton must be eventbus.Singleton(mode='skip' or 'cancel', "
            f"key=None), got {singleton!r}"
        )
    _check_key(fn_id, "singleton key", key)
    return SingletonRule(str(mode), key)


def check_batch(fn_id: str, batch: object) -> BatchRule | None:
    """``batch_events=`` (an eventbus or SDK ``Batch``), as Inngest validates it."""
    if batch is None:
        return None
    max_size = getattr(batch, "max_size", None)
    if isinstance(max_size, bool) or not isinstance(max_size, int):
        raise FunctionConfigError(
            f"{fn_id!r}: batch_events must be eventbus.Batch(max_size=..., timeout=..., "
            f"key=None, if_exp=None), got {batch!r}"
        )
    if max_size < MIN_BATCH_SIZE:
        raise FunctionConfigError(
            f"{fn_id!r}: batch size cannot be smaller than {MIN_BATCH_SIZE}: {max_size} "
            "(as on Inngest; a batch of one is no batch: drop batch_events)"
        )
    timeout = getattr(batch, "timeout", None)
    if timeout is None:
        raise FunctionConfigError(
            f"{fn_id!r}: batch_events needs a timeout (Inngest refuses a batch without "
            "one): give timeout=, such as '5s', timedelta(seconds=5) or 5000 (ms)"
        )
    try:
        timeout_ms = parse_duration_ms(timeout, what="batch timeout")
    except ValueError as exc:
        raise FunctionConfigError(f"{fn_id!r}: {exc}") from None
    if timeout_ms < MIN_BATCH_TIMEOUT_MS:
        raise FunctionConfigError(
            f"{fn_id!r}: batch timeout should be more than 1s (as on Inngest), got {timeout!r}"
        )
    key = getattr(batch, "key", None)
    if key == "":
        key = None
    _check_key(fn_id, "batch key", key)
    if_exp = getattr(batch, "if_exp", None)
    if if_exp == "":
        if_exp = None
    _check_key(fn_id, "batch if_exp", if_exp)
    return BatchRule(max_size, timeout_ms, key, if_exp)


def check_priority(fn_id: str, priority: object) -> PriorityRule | None:
    """``priority=`` (an eventbus or SDK ``Priority``): ``run`` an expression."""
    if priority is None:
        return None
    run = getattr(priority, "run", None)
    if run is None or run == "":
        return None  # as the SDK and Inngest: a priority without an expression is none
    if not isinstance(run, str):
        raise FunctionConfigError(
            f"{fn_id!r}: priority must be eventbus.Priority(run='expression'), got {priority!r}"
        )
    _check_key(fn_id, "priority run", run)
    return PriorityRule(run)


#: Options Inngest refuses alongside batching, and how it says so.
_NOT_WITH_BATCHING = (
    ("cancel", "Batching and cancellation are mutually exclusive"),
    ("debounce", "Batching and debouncing are mutually exclusive"),
    ("singleton", "Batching and singletons are mutually exclusive"),
    ("priority", "A function cannot specify Priority.Run and Batch together"),
    ("idempotency", "Batching and idempotency are mutually exclusive"),
    ("rate_limit", "Batching and rate limiting are mutually exclusive"),
)


def check_combinations(fn_id: str, options: dict[str, object]) -> None:
    """Refuse the options Inngest does not take together (at registration)."""
    if options.get("batch_events") is None:
        return
    for name, reason in _NOT_WITH_BATCHING:
        if options.get(name) not in (None, (), []):
            raise FunctionConfigError(
                f"{fn_id!r}: {reason} (as on Inngest): drop batch_events= or {name}="
            )


def check_concurrency(fn_id: str, concurrency: object) -> tuple[ConcurrencyRule, ...]:
    """``concurrency=``: a list of up to two ``Concurrency`` (eventbus's or the SDK's),
    one alone, or an int (``concurrency=5`` is ``[Concurrency(limit=5)]``). A limit of
    0 is no limit, as on Inngest."""
    if concurrency is None:
        return ()
    items = concurrency if isinstance(concurrency, (list, tuple)) else [concurrency]
    if len(items) > MAX_CONCURRENCY_CONSTRAINTS:
        raise FunctionConfigError(
            f"{fn_id!r}: {len(items)} concurrency constraints is more than Inngest allows "
            f"({MAX_CONCURRENCY_CONSTRAINTS}); combine them or drop one"
        )
    rules = []
    for item in items:
        key: object = None
        scope: object = None
        limit: object = item
        if isinstance(item, bool) or not isinstance(item, int):
            limit = getattr(item, "limit", None)
            key = getattr(item, "key", None)
            scope = getattr(item, "scope", None)
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise FunctionConfigError(
                f"{fn_id!r}: concurrency must be a list of eventbus.Concurrency(limit=..., "
                f"key=None, scope=None), got {item!r}"
            )
        if limit < 0:
            raise FunctionConfigError(
                f"{fn_id!r}: concurrency limit must not be negative, got {limit}"
            )
        if scope is None:
            scope = "fn"
        if scope not in ("fn", "env", "account"):
            raise FunctionConfigError(
                f"{fn_id!r}: concurrency scope must be 'fn', 'env' or 'account', got {scope!r}"
            )
        if key == "":
            key = None  # as Inngest: an empty key is no key
        if key is None and scope != "fn":
            raise FunctionConfigError(
                f"{fn_id!r}: a concurrency key must be specified for {scope} scoped limits "
                "(as on Inngest): give key=, such as 'event.data.customer_id'"
            )
        _check_key(fn_id, "concurrency key", key)
        if limit:
            rules.append(ConcurrencyRule(limit, None if key is None else str(key), str(scope)))
    return tuple(rules)


def _check_key(fn_id: str, what: str, key: object) -> None:
    """A flow-control key: None, or an expression that compiles."""
    if key is None:
        return
    if not isinstance(key, str) or not key.strip():
        raise FunctionConfigError(f"{fn_id!r}: {what} must be an expression string, got {key!r}")
    _compile_key(fn_id, what, key)


def _compile_key(fn_id: str, what: str, source: str) -> CompiledExpression:
    try:
        return compile_expression(source)
    except ExpressionError as exc:
        raise FunctionConfigError(f"{fn_id!r}: {what} {source!r} is not valid: {exc}") from None


def _check_retries(retries: object) -> int:
    if retries is None:
        return DEFAULT_RETRIES
    if isinstance(retries, bool) or not isinstance(retries, int):
        raise FunctionConfigError(
            f"retries must be an int from 0 to {MAX_RETRIES}, got {retries!r}"
        )
    if retries < 0:
        raise FunctionConfigError(
            f"retries={retries} is out of range: Inngest allows 0 to {MAX_RETRIES} retries"
        )
    if retries > MAX_RETRIES:
        warnings.warn(
            f"retries={retries} is more than Inngest allows; capped at {MAX_RETRIES}, as "
            "Inngest caps it",
            ConfigWarning,
            stacklevel=4,
        )
        return MAX_RETRIES
    return retries


def _check_handler(handler: object, what: str) -> Handler:
    """Accept ``async def fn(ctx)`` or ``def fn(ctx)`` (run in a worker thread)."""
    if not callable(handler):
        raise FunctionConfigError(f"{what} must be a function taking ctx, got {handler!r}")
    try:
        inspect.signature(handler).bind(object())
    except TypeError:
        name = getattr(handler, "__name__", "handler")
        raise FunctionConfigError(
            f"{what} {name!r} must accept exactly one positional argument, ctx: "
            f"`async def {name}(ctx: eventbus.Context)` or `def {name}(ctx: eventbus.ContextSync)`"
        ) from None
    except ValueError:  # pragma: no cover - builtins without a signature
        pass
    return handler


def split_triggers(
    fn_id: str, trigger: object
) -> tuple[tuple[TriggerEvent, ...], tuple[CronSchedule, ...]]:
    """Validate ``trigger=`` (a TriggerEvent or TriggerCron, or a list of up to 10):
    the event triggers, and the cron schedules."""
    from ._options import TriggerCron

    items: Sequence[object]
    if isinstance(trigger, (TriggerEvent, TriggerCron)):
        items = (trigger,)
    elif isinstance(trigger, (list, tuple)):
        items = trigger
    else:
        hint = ""
        if isinstance(trigger, str):
            hint = f"; write trigger=eventbus.TriggerEvent(event={trigger!r})"
        raise FunctionConfigError(
            f"trigger must be an eventbus.TriggerEvent or a list of them, got {trigger!r}{hint}"
        )
    # No trigger at all (trigger=[]) is allowed: such a function runs only when invoked.
    if len(items) > MAX_TRIGGERS:
        raise FunctionConfigError(
            f"{len(items)} triggers is more than the limit of {MAX_TRIGGERS} per function"
        )
    seen: set[tuple[str, str | None]] = set()
    events: list[TriggerEvent] = []
    crons: list[CronSchedule] = []
    for item in items:
        if isinstance(item, TriggerCron) or type(item).__name__ == "TriggerCron":
            schedule = check_cron(fn_id, item)
            if any(c.cron == schedule.cron for c in crons):
                raise FunctionConfigError(f"duplicate trigger {item!r}")
            crons.append(schedule)
            continue
        if not isinstance(item, TriggerEvent):
            raise FunctionConfigError(
                f"every trigger must be an eventbus.TriggerEvent or TriggerCron, got {item!r}"
            )
        key = (item.event, item.expression)
        if key in seen:
            raise FunctionConfigError(f"duplicate trigger {item!r}")
        seen.add(key)
        events.append(item)
    return tuple(events), tuple(crons)


@attrs.define(eq=False, repr=False)
class Function:
    """A function registered with ``client.create_function``.

    ``id`` is the full id ``f"{app_id}-{fn_id}"`` used everywhere (runs, filters, system
    events); ``local_id`` the ``fn_id`` given.
    """

    app_id: str
    local_id: str
    name: str
    triggers: tuple[TriggerEvent, ...]
    retries: int
    handler: Handler
    on_failure_fn_id: str | None = None
    cancel: tuple[Cancel, ...] = ()
    timeouts: Timeouts | None = None
    #: The middleware its executions run (see eventbus._middleware), or None.
    middleware: MiddlewareSpec | None = None
    #: Makes the ctx the handler gets from eventbus's (the SDK bridge's adapter), or None.
    context: Callable[[Any], Any] | None = None
    #: The client's serializer and this function's ``output_type`` (see _serializer).
    serializer: Any = None
    output_type: Any = None
    #: ``rate_limit=`` or ``idempotency=`` (see eventbus._flow), or None.
    rate_limit: RateRule | None = None
    #: The cron schedules among its triggers (see eventbus._cron).
    crons: tuple[CronSchedule, ...] = ()
    #: ``throttle=`` and ``singleton=`` (see eventbus._flow), or None.
    throttle: ThrottleRule | None = None
    singleton: SingletonRule | None = None
    debounce: DebounceRule | None = None
    #: ``concurrency=`` (see eventbus._flow): up to two constraints; () when none.
    concurrency: tuple[ConcurrencyRule, ...] = ()
    #: ``batch_events=`` and ``priority=`` (see eventbus._flow), or None.
    batch: BatchRule | None = None
    priority: PriorityRule | None = None
    id: str = attrs.field(init=False)
    #: The rate limit's and the throttle's key expressions, compiled.
    rate_key: CompiledExpression | None = attrs.field(init=False)
    throttle_key: CompiledExpression | None = attrs.field(init=False)
    singleton_key: CompiledExpression | None = attrs.field(init=False)
    debounce_key: CompiledExpression | None = attrs.field(init=False)
    concurrency_keys: tuple[CompiledExpression | None, ...] = attrs.field(init=False)
    batch_key: CompiledExpression | None = attrs.field(init=False)
    batch_if: CompiledExpression | None = attrs.field(init=False)
    priority_run: CompiledExpression | None = attrs.field(init=False)
    #: True when any flow-control key is set (the event view must then be built).
    flow_keys: bool = attrs.field(init=False)
    #: True when any trigger has an expression (the event view must then be built).
    has_expressions: bool = attrs.field(init=False)
    #: True for ``async def`` handlers; sync handlers run in worker threads.
    is_async: bool = attrs.field(init=False)
    #: True when an event's run starts as soon as the event is taken, with nothing to
    #: decide first: no trigger expression and no batching, rate limit, idempotency,
    #: debounce, singleton, throttle, cancellation or timeout (concurrency and priority
    #: apply as the run is queued).
    plain: bool = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.id = f"{self.app_id}-{self.local_id}"
        self.has_expressions = any(t.expression is not None for t in self.triggers)
        self.is_async = inspect.iscoroutinefunction(self.handler)
        rule = self.rate_limit
        self.rate_key = None if rule is None or rule.key is None else compile_expression(rule.key)
        gate = self.throttle
        self.throttle_key = (
            None if gate is None or gate.key is None else compile_expression(gate.key)
        )
        one = self.singleton
        self.singleton_key = None if one is None or one.key is None else compile_expression(one.key)
        wait = self.debounce
        self.debounce_key = (
            None if wait is None or wait.key is None else compile_expression(wait.key)
        )
        self.concurrency_keys = tuple(
            None if rule.key is None else compile_expression(rule.key) for rule in self.concurrency
        )
        group = self.batch
        self.batch_key = (
            None if group is None or group.key is None else compile_expression(group.key)
        )
        self.batch_if = (
            None if group is None or group.if_exp is None else compile_expression(group.if_exp)
        )
        first = self.priority
        self.priority_run = None if first is None else compile_expression(first.run)
        self.flow_keys = any(
            key is not None
            for key in (
                self.rate_key,
                self.throttle_key,
                self.singleton_key,
                self.debounce_key,
                self.batch_key,
                self.batch_if,
                self.priority_run,
            )
        )
        self.plain = not (
            self.has_expressions
            or self.batch
            or self.rate_limit
            or self.debounce
            or self.singleton
            or self.throttle
            or self.cancel
            or self.timeouts
        )

    def __repr__(self) -> str:
        events = ", ".join(t.event for t in self.triggers)
        return f"<Function {self.id!r} triggers=[{events}] retries={self.retries}>"


def make_function(
    *,
    app_id: str,
    fn_id: object,
    trigger: object,
    name: object,
    retries: object,
    handler: object,
    on_failure: object,
    cancel: object = None,
    timeouts: object = None,
    middleware: MiddlewareSpec | None = None,
    context: Callable[[Any], Any] | None = None,
    serializer: Any = None,
    output_type: Any = None,
    rate_limit: object = None,
    idempotency: object = None,
    throttle: object = None,
    singleton: object = None,
    debounce: object = None,
    concurrency: object = None,
    batch_events: object = None,
    priority: object = None,
) -> list[Function]:
    """Validate a create_function call; returns the function (and its failure handler)."""
    if not isinstance(fn_id, str) or not fn_id.strip():
        raise FunctionConfigError(f"fn_id must be a non-empty string, got {fn_id!r}")
    if name is not None and not isinstance(name, str):
        raise FunctionConfigError(f"name must be a string or None, got {name!r}")
    triggers, crons = split_triggers(fn_id, trigger)
    checked_retries = _check_retries(retries)
    checked_cancel = _check_cancel(cancel)
    checked_timeouts = _check_timeouts(timeouts)
    rate_rule = check_rate_limit(fn_id, rate_limit, idempotency)
    throttle_rule = check_throttle(fn_id, throttle)
    singleton_rule = check_singleton(fn_id, singleton)
    debounce_rule = check_debounce(fn_id, debounce)
    concurrency_rules = check_concurrency(fn_id, concurrency)
    batch_rule = check_batch(fn_id, batch_events)
    priority_rule = check_priority(fn_id, priority)
    check_combinations(
        fn_id,
        {
            "batch_events": batch_rule,
            "cancel": checked_cancel,
            "debounce": debounce_rule,
            "singleton": singleton_rule,
            "priority": priority_rule,
            "idempotency": rate_rule if rate_rule is not None and rate_rule.idempotency else None,
            "rate_limit": rate_rule
            if rate_rule is not None and not rate_rule.idempotency
            else None,
        },
    )
    checked = _check_handler(handler, "handler")
    functions = [
        Function(
            app_id=app_id,
            local_id=fn_id,
            name=name or fn_id,
            triggers=triggers,
            retries=checked_retries,
            handler=checked,
            cancel=checked_cancel,
            timeouts=checked_timeouts,
            middleware=middleware,
            context=context,
            serializer=serializer,
            output_type=output_type,
            rate_limit=rate_rule,
            throttle=throttle_rule,
            singleton=singleton_rule,
            debounce=debounce_rule,
            concurrency=concurrency_rules,
            batch=batch_rule,
            priority=priority_rule,
            crons=crons,
        )
    ]
    if on_failure is not None:
        failure_handler = _check_handler(on_failure, "on_failure")
        main = functions[0]
        main.on_failure_fn_id = f"{main.id}-failure"
        functions.append(
            Function(
                app_id=app_id,
                local_id=f"{fn_id}-failure",
                name=f"{main.name} (failure)",
                triggers=(
                    TriggerEvent(
                        event=FAILED_EVENT,
                        expression=f"event.data.function_id == '{main.id}'",
                    ),
                ),
                retries=0,
                handler=failure_handler,
                middleware=middleware,
                context=context,
                serializer=serializer,
            )
        )
    return functions


def candidate_patterns(name: str) -> list[str]:
    """Every trigger pattern that matches event ``name``: itself and its wildcard prefixes."""
    patterns = [name]
    for sep in "/.":
        start = 0
        while True:
            index = name.find(sep, start)
            if index == -1:
                break
            patterns.append(name[: index + 1] + "*")
            start = index + 1
    return patterns


class Registry:
    """The functions of one client, and a cache of which triggers match each event name."""

    __slots__ = ("_by_pattern", "cache", "duplicates", "functions", "holding")

    def __init__(self) -> None:
        self.functions: dict[str, Function] = {}
        #: ids registered more than once (the last definition is kept), reported by
        #: check_start() when an engine starts, as the SDK reports them at serve().
        self.duplicates: list[str] = []
        self._by_pattern: dict[str, list[tuple[Function, TriggerEvent]]] = {}
        #: name -> matches, filled by :meth:`matching`; the engine reads it on its hot path.
        self.cache: dict[str, tuple[tuple[Function, tuple[TriggerEvent, ...]], ...]] = {}
        #: Whether a function batches or debounces (then duplicate events go to it).
        self.holding = False

    def check_unique(self, function_id: str) -> None:
        """Raise FunctionConfigError if ``function_id`` is already registered."""
        if function_id in self.functions:
            raise FunctionConfigError(
                f"a function with id {function_id!r} is already registered on this client; "
                "every fn_id must be unique"
            )

    def check_start(self) -> None:
        """Raise FunctionConfigError if an id was registered more than once."""
        if self.duplicates:
            names = ", ".join(repr(fid) for fid in dict.fromkeys(self.duplicates))
            raise FunctionConfigError(
                f"function id(s) {names} were registered more than once on this client (the "
                "last definition replaced the others); give each function its own fn_id"
            )

    def add(self, function: Function) -> None:
        """Register ``function``; a repeated id replaces the earlier one (and is
        recorded in ``duplicates``)."""
        old = self.functions.pop(function.id, None)
        if old is not None:
            self.duplicates.append(function.id)
            for trig in old.triggers:
                self._by_pattern[trig.event].remove((old, trig))
        self.functions[function.id] = function
        self.holding = any(
            f.batch is not None or f.debounce is not None for f in self.functions.values()
        )
        for trig in function.triggers:
            self._by_pattern.setdefault(trig.event, []).append((function, trig))
        self.cache.clear()

    def matching(self, name: str) -> tuple[tuple[Function, tuple[TriggerEvent, ...]], ...]:
        """The functions whose triggers could match ``name``, each with those triggers,
        in registration order."""
        found = self.cache.get(name)
        if found is None:
            grouped: dict[str, list[TriggerEvent]] = {}
            for pattern in candidate_patterns(name):
                for function, trig in self._by_pattern.get(pattern, ()):
                    grouped.setdefault(function.id, []).append(trig)
            order = list(self.functions)
            found = tuple(
                (self.functions[fid], tuple(grouped[fid]))
                for fid in sorted(grouped, key=order.index)
            )
            if len(self.cache) > 10_000:
                self.cache.clear()
            self.cache[name] = found
        return found
