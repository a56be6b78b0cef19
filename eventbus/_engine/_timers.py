"""The engine's timers: a heap of (due time, sequence, callback, run).

Every timer belongs to a run (``run._timers`` holds its live sequence numbers, None
while it has none: most runs never set a timer) and dies with it. Cancelling marks a
timer dead; dead timers are dropped lazily when they reach the top of the heap. No clock
is read here: callers say what time it is.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from typing import Protocol


class TimerOwner(Protocol):
    """What owns timers: a run, or a function's cron schedule (``_timers`` holds the
    sequence numbers of its live timers)."""

    _timers: set[int] | None


class Timers:
    """Due callbacks, ordered by time, then by when they were added."""

    __slots__ = ("_dead", "_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Callable[[], None], TimerOwner]] = []
        self._seq = 0
        self._dead: set[int] = set()

    def add(self, run: TimerOwner, due_ms: int, callback: Callable[[], None]) -> tuple[int, bool]:
        """Add a timer; returns its sequence number, and whether it is now the earliest."""
        self._seq += 1
        seq = self._seq
        heapq.heappush(self._heap, (due_ms, seq, callback, run))
        owned = run._timers
        if owned is None:
            run._timers = {seq}
        else:
            owned.add(seq)
        return seq, self._heap[0][1] == seq

    def cancel(self, run: TimerOwner, seq: int) -> None:
        owned = run._timers
        if owned is not None and seq in owned:
            owned.discard(seq)
            self._dead.add(seq)

    def cancel_all(self, run: TimerOwner) -> None:
        """Every timer of ``run`` (it has ended)."""
        owned = run._timers
        if owned is not None:
            self._dead.update(owned)
            run._timers = None

    def next_due(self) -> int | None:
        """The due time of the earliest live timer (dead ones are dropped on the way)."""
        heap = self._heap
        dead = self._dead
        while heap and heap[0][1] in dead:
            dead.discard(heapq.heappop(heap)[1])
        return heap[0][0] if heap else None

    def pop_due(self, now_ms: int) -> Iterator[Callable[[], None]]:
        """The callbacks of the live timers due at ``now_ms``, earliest first (each is
        taken off as it is yielded, so a callback may add timers)."""
        heap = self._heap
        dead = self._dead
        while heap and heap[0][0] <= now_ms:
            _, seq, callback, run = heapq.heappop(heap)
            if seq in dead:
                dead.discard(seq)
            else:
                owned = run._timers
                assert owned is not None  # a live timer is its owner's
                owned.discard(seq)
                yield callback

    def __len__(self) -> int:
        return len(self._heap) - len(self._dead)
