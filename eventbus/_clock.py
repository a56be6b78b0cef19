"""Clocks: where every time-based decision in eventbus reads the time.

Nothing else in the package reads the wall clock: event timestamps, dedup expiry and
retry backoff all ask the client's clock. :class:`VirtualClock` lets tests jump time.
"""

from __future__ import annotations

import abc
import datetime
import time
from collections.abc import Callable

UTC = datetime.timezone.utc
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)


def ms_to_datetime(ms: int) -> datetime.datetime:
    """An aware UTC datetime for ``ms`` milliseconds since the epoch."""
    return _EPOCH + datetime.timedelta(milliseconds=ms)


def datetime_to_ms(value: datetime.datetime) -> int:
    """Milliseconds since the epoch for an aware datetime."""
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


class Clock(abc.ABC):
    """Where the engine reads the time. Subclass it to inject your own."""

    @abc.abstractmethod
    def now_ms(self) -> int:
        """The current time in milliseconds since the epoch."""

    def now(self) -> datetime.datetime:
        """The current time as an aware UTC datetime."""
        return ms_to_datetime(self.now_ms())

    @property
    def is_virtual(self) -> bool:
        """True when time only moves by :meth:`VirtualClock.advance`."""
        return False


class SystemClock(Clock):
    """The wall clock."""

    def __init__(self) -> None:
        self._last = 0

    def now_ms(self) -> int:
        now = time.time_ns() // 1_000_000
        if now == self._last:
            # The same millisecond as the last reading: the same int object, so the
            # events and runs of one millisecond share one timestamp in memory.
            return self._last
        self._last = now
        return now

    def __repr__(self) -> str:
        return "SystemClock()"


class VirtualClock(Clock):
    """A clock that moves only when told to, so tests can skip hours in microseconds.

    ``start`` is an aware datetime; by default the current real time (to the
    millisecond), so deadlines that code builds from ``datetime.now()`` fall where they
    would; pin it (``start=datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)``)
    for timestamps that repeat from run to run. Engines using this clock fire every timer
    that falls due when :meth:`advance` moves time past it.
    """

    def __init__(self, start: datetime.datetime | None = None) -> None:
        if start is None:
            start = ms_to_datetime(SystemClock().now_ms())
        if not isinstance(start, datetime.datetime) or start.tzinfo is None:
            raise TypeError(
                f"VirtualClock(start=...) needs an aware datetime, got {start!r}; "
                "for example datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)"
            )
        self._us = int((start - _EPOCH) / datetime.timedelta(microseconds=1))
        self._listeners: list[Callable[[], None]] = []

    def now_ms(self) -> int:
        return self._us // 1000

    def now(self) -> datetime.datetime:
        return _EPOCH + datetime.timedelta(microseconds=self._us)

    @property
    def is_virtual(self) -> bool:
        return True

    def advance(self, delta: datetime.timedelta) -> None:
        """Move time forward by ``delta`` and fire every timer that falls due."""
        if not isinstance(delta, datetime.timedelta):
            raise TypeError(
                f"advance() takes a datetime.timedelta, got {delta!r}; "
                "for example clock.advance(datetime.timedelta(hours=1))"
            )
        if delta < datetime.timedelta(0):
            raise ValueError(f"a clock never goes back: advance({delta!r}) is negative")
        self._us += delta // datetime.timedelta(microseconds=1)
        for listener in list(self._listeners):
            listener()

    def advance_to_ms(self, ms: int) -> None:
        """Move time forward to ``ms`` (epoch milliseconds); no-op if already past."""
        if ms * 1000 > self._us:
            self.advance(datetime.timedelta(microseconds=ms * 1000 - self._us))

    def subscribe(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener()`` after every advance; returns a function that unsubscribes."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def __repr__(self) -> str:
        return f"VirtualClock(now={self.now().isoformat()})"
