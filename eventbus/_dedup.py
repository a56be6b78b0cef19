"""The deduplication index: which event ``id`` values were first seen in the last 24 hours.

Inngest rule: once an event with an ``id`` is received, any event with the same ``id``
within 24 hours of the *first* one starts no function run. The window is not extended by
duplicates; after it, the id is fresh again.

Layout: a dict ``id -> first_seen_ms`` answers "is it a duplicate?" exactly, and a
time-ordered ``SortedDict`` of buckets ``bucket_start_ms -> [ids]`` (one bucket per
``bucket_ms``, a second by default) drives eviction from the oldest end. Insertion is
O(log n) (O(1) while time stays in the same bucket); eviction pops whole buckets. Coarse
buckets keep the per-id cost to one dict slot, one int and one list slot, besides the id
string, whatever the arrival rate; an id may stay in memory up to one bucket past its
window, but it is already reported fresh then.

Time is the highest time the index has seen: if the clock steps back, an id whose window
has ended stays ended. Ordering buckets by time (not arrival) keeps eviction right then.
"""

from __future__ import annotations

from sortedcontainers import SortedDict

DEDUP_WINDOW_MS = 24 * 60 * 60 * 1000
DEFAULT_BUCKET_MS = 1000


class DedupIndex:
    """Remembers ids for ``window_ms`` after their first sighting."""

    __slots__ = (
        "_buckets",
        "_first_seen",
        "_high",
        "_last_bucket",
        "_last_key",
        "_next_expiry",
        "bucket_ms",
        "window_ms",
    )

    def __init__(self, window_ms: int = DEDUP_WINDOW_MS, *, bucket_ms: int | None = None) -> None:
        if window_ms <= 0:
            raise ValueError(f"window_ms must be positive, got {window_ms!r}")
        if bucket_ms is None:
            bucket_ms = min(DEFAULT_BUCKET_MS, window_ms)
        if bucket_ms <= 0:
            raise ValueError(f"bucket_ms must be positive, got {bucket_ms!r}")
        self.window_ms = window_ms
        self.bucket_ms = bucket_ms
        self._first_seen: dict[str, int] = {}
        self._buckets: SortedDict = SortedDict()
        self._last_key: int | None = None
        self._last_bucket: list[str] = []
        self._next_expiry: int | None = None
        self._high = -(2**62)

    def __len__(self) -> int:
        """How many ids are held (live ones, plus expired ones not yet evicted)."""
        return len(self._first_seen)

    def first_seen(self, key: str) -> int | None:
        """When ``key`` was first seen (epoch ms), while it is held."""
        return self._first_seen.get(key)

    def is_live(self, key: str) -> bool:
        """True if an event with ``key`` now would be a duplicate."""
        first = self._first_seen.get(key)
        return first is not None and self._high - first < self.window_ms

    def seen(self, key: str, now_ms: int) -> bool:
        """Record ``key`` at ``now_ms``; return True if it is a duplicate within the window."""
        if now_ms > self._high:
            self._high = now_ms
            if self._next_expiry is not None and now_ms >= self._next_expiry:
                self.expire(now_ms)
        first = self._first_seen.get(key)
        if first is not None and self._high - first < self.window_ms:
            return True
        self._first_seen[key] = now_ms
        start = now_ms - now_ms % self.bucket_ms
        if start == self._last_key:
            self._last_bucket.append(key)
            return False
        bucket = self._buckets.get(start)
        if bucket is None:
            bucket = self._buckets[start] = []
            expiry = start + self.bucket_ms + self.window_ms
            if self._next_expiry is None or expiry < self._next_expiry:
                self._next_expiry = expiry
        bucket.append(key)
        self._last_key = start
        self._last_bucket = bucket
        return False

    def expire(self, now_ms: int) -> int:
        """Evict the ids whose window ended by ``now_ms`` (bucket by bucket); returns how many."""
        if now_ms > self._high:
            self._high = now_ms
        now_ms = self._high
        evicted = 0
        buckets = self._buckets
        first_seen = self._first_seen
        span = self.bucket_ms
        while buckets:
            start = buckets.keys()[0]
            if start + span + self.window_ms > now_ms:
                self._next_expiry = start + span + self.window_ms
                return evicted
            _, ids = buckets.popitem(0)
            if start == self._last_key:
                self._last_key = None
                self._last_bucket = []
            end = start + span
            for item in ids:
                # The id may have been seen afresh later; then it lives in a later bucket.
                first = first_seen.get(item)
                if first is not None and start <= first < end:
                    del first_seen[item]
                    evicted += 1
        self._next_expiry = None
        return evicted

    def _check(self) -> None:
        """Assert the internal invariants (used by property and stress tests)."""
        span = self.bucket_ms
        for item, first in self._first_seen.items():
            start = first - first % span
            assert item in self._buckets.get(start, ()), f"{item!r} missing from bucket {start}"
        for start, ids in self._buckets.items():
            assert ids, f"empty bucket {start}"
            assert start % span == 0
        if self._buckets:
            oldest = self._buckets.keys()[0]
            assert self._next_expiry is not None
            assert self._next_expiry <= oldest + span + self.window_ms
        if self._last_key is not None:
            assert self._buckets.get(self._last_key) is self._last_bucket
