"""Retry policy, as Inngest applies it: the backoff table, its jitter, and the bounds of
a ``RetryAfterError``'s delay. Pure functions of their arguments."""

from __future__ import annotations

import random

#: Delay after failed attempt n (0-based), before jitter: Inngest's backoff table.
BACKOFF_MS = (
    15_000,
    30_000,
    60_000,
    120_000,
    300_000,
    600_000,
    1_200_000,
    2_400_000,
    3_600_000,
    7_200_000,
)
MAX_JITTER_MS = 30_000
MIN_RETRY_AFTER_MS = 1_000
MAX_RETRY_AFTER_MS = 86_400_000


def backoff_ms(attempt: int, rng: random.Random) -> int:
    """The delay before retrying after failed attempt ``attempt`` (0-based), with jitter."""
    return BACKOFF_MS[min(attempt, len(BACKOFF_MS) - 1)] + rng.randint(0, MAX_JITTER_MS)


def clamp_retry_after(delay_ms: int) -> int:
    """Inngest clamps RetryAfterError delays to 1 s .. 24 h."""
    return min(max(delay_ms, MIN_RETRY_AFTER_MS), MAX_RETRY_AFTER_MS)
