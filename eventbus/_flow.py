"""Flow-control policies: pure functions of (state, now), as Inngest applies them.

``Gcra`` is the generic cell rate algorithm both rate limiting and throttling use
(Inngest's ``ratelimit.lua`` and ``gcra.lua``): each key keeps one number, its
theoretical arrival time (TAT); an arrival at ``now`` is admitted while the TAT is at
most ``tolerance`` ahead of ``now``, and each admission moves the TAT on by one
``interval`` (``period / limit``). No clock is read and nothing is stored here: the
engine passes the time and keeps the TATs (in its store).
"""

from __future__ import annotations

import itertools
import json
from typing import Generic, TypeVar

import attrs
from sortedcontainers import SortedList

#: A day, the window of ``idempotency`` (a rate limit of 1 per 24 h on its key).
DAY_MS = 86_400_000


@attrs.frozen
class Gcra:
    """A GCRA: ``interval_ns`` between admissions, ``tolerance_ns`` of burst.

    Times are integer nanoseconds (as Inngest's scripts keep them): a TAT near the epoch
    time plus a fraction of a millisecond would lose its fraction in a float.
    """

    interval_ns: int
    tolerance_ns: int

    @classmethod
    def rate_limit(cls, limit: int, period_ms: int) -> Gcra:
        """Inngest's rate limit: ``limit`` per ``period``, with a burst of ``limit // 10``
        (so ``limit=10, period=1m`` admits 2 at once, then one every 6 s)."""
        interval = period_ms * 1_000_000 // limit
        return cls(interval, (limit // 10) * interval)

    @classmethod
    def throttle(cls, limit: int, period_ms: int, burst: int) -> Gcra:
        """Inngest's throttle: ``limit + burst`` starts at once (at most), then one every
        ``period / limit``."""
        limit = max(limit, 1)
        interval = period_ms * 1_000_000 // limit
        return cls(interval, (limit + max(burst, 1) - 1) * interval)

    def admit(self, tat_ns: int | None, now_ms: int) -> tuple[bool, int | None]:
        """Whether an arrival at ``now_ms`` is admitted, and the key's TAT after it (the
        same TAT when it is not)."""
        now = now_ms * 1_000_000
        tat = now if tat_ns is None or tat_ns < now else tat_ns
        if tat - now > self.tolerance_ns:
            return False, tat_ns
        return True, tat + self.interval_ns

    def reserve(self, tat_ns: int | None, now_ms: int) -> tuple[int, int]:
        """For a queue that never drops (throttle): the time the arrival at ``now_ms``
        may start (now, or its turn), and the key's TAT once it has."""
        start = self.next_admission_ms(tat_ns, now_ms)
        admitted, tat = self.admit(tat_ns, start)
        assert admitted
        assert tat is not None
        return start, tat

    def next_admission_ms(self, tat_ns: int | None, now_ms: int) -> int:
        """The earliest time (ms) an arrival would be admitted (``now_ms`` if now)."""
        if tat_ns is None:
            return now_ms
        return max(now_ms, -(-(tat_ns - self.tolerance_ns) // 1_000_000))


#: Inngest's bounds of a throttle's period.
MIN_THROTTLE_PERIOD_MS = 1_000
MAX_THROTTLE_PERIOD_MS = 7 * DAY_MS


@attrs.frozen
class ThrottleRule:
    """A function's throttle: its run starts spaced by ``gcra``, per key (FIFO)."""

    gcra: Gcra
    key: str | None
    #: As configured, for the bridge to the SDK.
    limit: int
    period_ms: int
    burst: int


@attrs.frozen
class SingletonRule:
    """At most one active run per key: ``mode`` "skip" (new runs) or "cancel" (the
    active one)."""

    mode: str
    key: str | None


@attrs.frozen
class DebounceRule:
    """Run once ``period`` after the last event per key, at most ``timeout`` after the
    first (None: no cap)."""

    period_ms: int
    key: str | None
    timeout_ms: int | None

    def due_ms(self, first_ms: int, now_ms: int) -> int:
        """When a debounce that opened at ``first_ms`` fires, after an event at ``now_ms``:
        ``period`` later, capped by ``timeout`` from the first event (at least 1 s on)."""
        ttl = self.period_ms
        if self.timeout_ms is not None:
            ttl = max(min(ttl, first_ms + self.timeout_ms - now_ms), 1_000)
        return now_ms + ttl


#: Inngest's bounds of a debounce's period.
MIN_DEBOUNCE_PERIOD_MS = 1_000
MAX_DEBOUNCE_PERIOD_MS = 7 * DAY_MS

#: Inngest's bounds of a batch: at least 2 events, a timeout of at least 1 s (and no
#: upper bound on the timeout), and a batch runs once its events reach 10 MiB.
MIN_BATCH_SIZE = 2
MIN_BATCH_TIMEOUT_MS = 1_000
MAX_BATCH_BYTES = 10 * 1024 * 1024


@attrs.frozen
class BatchRule:
    """Run with up to ``max_size`` events of a key at once: a batch opens at its first
    event and runs when it is full, ``timeout`` after that first event, or once its
    events reach ``MAX_BATCH_BYTES``. Events whose ``if_exp`` is not true run alone."""

    max_size: int
    timeout_ms: int
    key: str | None
    if_exp: str | None

    def full(self, count: int, size: int) -> bool:
        """Whether a batch of ``count`` events of ``size`` bytes runs now."""
        return count >= self.max_size or size >= MAX_BATCH_BYTES


#: Inngest's bound of a priority factor (seconds either way, 12 h).
MAX_PRIORITY_FACTOR_S = 43_200


@attrs.frozen
class PriorityRule:
    """``run``: an expression giving the seconds a run is queued ahead of (or behind)
    the others of its function."""

    run: str


def priority_factor(value: object) -> int:
    """The seconds an expression's ``value`` moves a run ahead: an int, clamped to
    ``MAX_PRIORITY_FACTOR_S`` either way; anything else (a float, a missing field, an
    error) counts 0, as on Inngest."""
    if type(value) is not int:
        return 0
    return max(-MAX_PRIORITY_FACTOR_S, min(MAX_PRIORITY_FACTOR_S, value))


#: Inngest's bounds of a rate limit's period.
MIN_RATE_PERIOD_MS = 1_000
MAX_RATE_PERIOD_MS = DAY_MS


@attrs.frozen
class RateRule:
    """A function's rate limit as the engine applies it (``rate_limit=`` or
    ``idempotency=``, which Inngest turns into a rate limit of 1 per 24 h on its key)."""

    gcra: Gcra
    #: The key expression's source, evaluated on the first event; None: one bucket.
    key: str | None
    #: Whether it came from ``idempotency=`` (for what explain() says).
    idempotency: bool = False
    #: As configured (``rate_limit=``), for the bridge to the SDK.
    limit: int = 1
    period_ms: int = DAY_MS


def rate_key(value: object) -> str:
    """A key expression's value as a bucket name: equal values share a bucket (strings
    as they are, anything else as canonical JSON)."""
    if isinstance(value, str):
        return value
    if type(value) is int:
        return str(value)  # what json.dumps gives, faster
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


#: Inngest's limit of concurrency constraints per function.
MAX_CONCURRENCY_CONSTRAINTS = 2


@attrs.frozen
class ConcurrencyRule:
    """One concurrency constraint: at most ``limit`` steps executing at once per key, in
    ``scope`` ("fn": of this function; "env" and "account": of every function using the
    same key, each checked against its own limit)."""

    limit: int
    key: str | None
    scope: str


T = TypeVar("T")
#: A slot claim: the queue key (scope and key value) and the claimant's limit on it.
Claim = tuple[str, int]


class Slots(Generic[T]):
    """Concurrency slots per queue key, with a FIFO of waiters per key.

    An item claims a slot on every key of its claims at once (a function has up to two
    constraints) or waits, queued on the first key that is full or already has waiters;
    ``release`` gives the freed slots to the waiters in order. No item waits while
    every key it needs has room: a waiter at the head of a queue that now fits that
    key but not another moves to the other key's queue. Each waiter has a ``score``
    (the engine's: when it queued, less its priority factor): a queue is in score order,
    first come first served among equal scores. Nothing here reads a clock or knows
    what an item is: the engine's items are runs.
    """

    __slots__ = ("_seq", "in_use", "waiting")

    def __init__(self) -> None:
        self.in_use: dict[str, int] = {}
        #: key -> its waiters as (score, arrival number, item, claims), in that order.
        self.waiting: dict[str, SortedList] = {}
        self._seq = itertools.count()

    def fits(self, claims: tuple[Claim, ...]) -> bool:
        """True if ``claims`` could be taken now without passing anyone waiting."""
        in_use, waiting = self.in_use, self.waiting
        return all(in_use.get(key, 0) < limit and key not in waiting for key, limit in claims)

    def take(self, item: T, claims: tuple[Claim, ...], score: int = 0) -> bool:
        """Take the slots of ``claims`` for ``item`` (True), or queue it (False) at its
        ``score``."""
        in_use, waiting = self.in_use, self.waiting
        for key, limit in claims:
            if in_use.get(key, 0) >= limit or key in waiting:
                self._queue(key, item, claims, score)
                return False
        for key, _ in claims:
            in_use[key] = in_use.get(key, 0) + 1
        return True

    def _queue(self, key: str, item: T, claims: tuple[Claim, ...], score: int) -> None:
        """Queue ``item`` on ``key`` behind every waiter of a lower or equal score (the
        arrival number settles ties, so items themselves are never compared)."""
        queue = self.waiting.get(key)
        if queue is None:
            queue = self.waiting[key] = SortedList()
        queue.add((score, next(self._seq), item, claims))

    def contended(self, claims: tuple[Claim, ...]) -> bool:
        """True if anyone waits on a key of ``claims`` (its holder should make room)."""
        return any(key in self.waiting for key, _ in claims)

    def release(self, claims: tuple[Claim, ...]) -> list[T]:
        """Give back the slots of ``claims``; returns the waiters that now hold theirs,
        in the order they got them."""
        in_use = self.in_use
        for key, _ in claims:
            left = in_use[key] - 1
            if left:
                in_use[key] = left
            else:
                del in_use[key]
        granted: list[T] = []
        for key, _ in claims:
            self._serve(key, granted)
        return granted

    def discard(self, item: T) -> list[T] | None:
        """Stop ``item`` waiting: None if it was not waiting (it holds its slots), else
        the waiters behind it that now hold theirs."""
        for key, queue in self.waiting.items():
            for entry in queue:
                if entry[2] is item:
                    queue.remove(entry)
                    if not queue:
                        del self.waiting[key]
                    granted: list[T] = []
                    self._serve(key, granted)
                    return granted
        return None

    def _serve(self, key: str, granted: list[T]) -> None:
        queue = self.waiting.get(key)
        in_use = self.in_use
        while queue:
            score, _, item, claims = queue[0]
            blocked = None
            for other, limit in claims:
                if in_use.get(other, 0) >= limit:
                    blocked = other
                    break
            if blocked == key:
                return  # the head waits for this key: so does everyone behind it
            queue.pop(0)
            if not queue:
                del self.waiting[key]
            if blocked is not None:
                # Room here but not on its other key: it waits there instead.
                self._queue(blocked, item, claims, score)
                continue
            for other, _ in claims:
                in_use[other] = in_use.get(other, 0) + 1
            granted.append(item)
            queue = self.waiting.get(key)
