"""Flow-control policies: pure functions of (state, now), as Inngest applies them.

``Gcra`` is the generic cell rate algorithm both rate limiting and throttling use
(Inngest's ``ratelimit.lua`` and ``gcra.lua``): each key keeps one number, its
theoretical arrival time (TAT); an arrival at ``now`` is admitted while the TAT is at
most ``tolerance`` ahead of ``now``, and each admission moves the TAT on by one
``interval`` (``period / limit``). No clock is read and nothing is stored here: the
engine passes the time and keeps the TATs (in its store).
"""

from __future__ import annotations

import attrs

#: A day, the window of ``idempotency`` (a rate limit of 1 per 24 h on its key).
DAY_MS = 86_400_000


@attrs.frozen
class Gcra:
    """A GCRA: ``interval_ms`` between admissions, ``tolerance_ms`` of burst."""

    interval_ms: float
    tolerance_ms: float

    @classmethod
    def rate_limit(cls, limit: int, period_ms: int) -> Gcra:
        """Inngest's rate limit: ``limit`` per ``period``, with a burst of ``limit // 10``
        (so ``limit=10, period=1m`` admits 2 at once, then one every 6 s)."""
        interval = period_ms / limit
        return cls(interval, (limit // 10) * interval)

    @classmethod
    def throttle(cls, limit: int, period_ms: int, burst: int) -> Gcra:
        """Inngest's throttle: ``limit + burst`` starts at once (at most), then one every
        ``period / limit``."""
        limit = max(limit, 1)
        interval = period_ms / limit
        return cls(interval, (limit + max(burst, 1) - 1) * interval)

    def admit(self, tat_ms: float | None, now_ms: int) -> tuple[bool, float | None]:
        """Whether an arrival at ``now_ms`` is admitted, and the key's TAT after it (the
        same TAT when it is not)."""
        tat = now_ms if tat_ms is None or tat_ms < now_ms else tat_ms
        if tat - now_ms > self.tolerance_ms:
            return False, tat_ms
        return True, tat + self.interval_ms

    def next_admission_ms(self, tat_ms: float | None, now_ms: int) -> int:
        """The earliest time an arrival would be admitted (``now_ms`` if now)."""
        if tat_ms is None:
            return now_ms
        return max(now_ms, int(-(-(tat_ms - self.tolerance_ms) // 1)))  # ceil
