"""Flow-control policies: pure functions of (state, now), as Inngest applies them.

``Gcra`` is the generic cell rate algorithm both rate limiting and throttling use
(Inngest's ``ratelimit.lua`` and ``gcra.lua``): each key keeps one number, its
theoretical arrival time (TAT); an arrival at ``now`` is admitted while the TAT is at
most ``tolerance`` ahead of ``now``, and each admission moves the TAT on by one
``interval`` (``period / limit``). No clock is read and nothing is stored here: the
engine passes the time and keeps the TATs (in its store).
"""

from __future__ import annotations

import json

import attrs

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
