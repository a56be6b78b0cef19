"""The deduplication index: which event ``id`` values were first seen in the last 24 hours.

Inngest rule: once an event with an ``id`` is received, any event with the same ``id``
within 24 hours of the *first* one starts no function run. The window is not extended by
duplicates; after it, the id is fresh again.

The index is a dict ``id -> first_seen_ms`` plus a time-ordered ``SortedDict`` of buckets
``first_seen_ms -> [ids]``. Insertion is O(log n) (O(1) when time has not moved), eviction
pops whole buckets from the oldest end, and the bucket key object is shared with the dict
values, so a live id costs one dict slot and one list slot besides the id string itself.
Ordering by time (not arrival) keeps expiry right even if the clock steps back.
"""

from __future__ import annotations

from sortedcontainers import SortedDict

DEDUP_WINDOW_MS = 24 * 60 * 60 * 1000


class DedupIndex:
    """Remembers ids for ``window_ms`` after their first sighting."""

    __slots__ = (
        "_buckets",
        "_first_seen",
        "_last_bucket",
        "_last_key",
        "_next_expiry",
        "window_ms",
    )

    def __init__(self, window_ms: int = DEDUP_WINDOW_MS) -> None:
        if window_ms <= 0:
            raise ValueError(f"window_ms must be positive, got {window_ms!r}")
        self.window_ms = window_ms
        self._first_seen: dict[str, int] = {}
        self._buckets: SortedDict = SortedDict()
        self._last_key: int | None = None
        self._last_bucket: list[str] = []
        self._next_expiry: int | None = None

    def __len__(self) -> int:
        return len(self._first_seen)

    def __contains__(self, key: object) -> bool:
        return key in self._first_seen

    def first_seen(self, key: str) -> int | None:
        """When ``key`` was first seen (epoch ms), if it is still in the index."""
        return self._first_seen.get(key)

    def seen(self, key: str, now_ms: int) -> bool:
        """Record ``key`` at ``now_ms``; return True if it is a duplicate within the window."""
        if self._next_expiry is not None and now_ms >= self._next_expiry:
            self.expire(now_ms)
        first = self._first_seen.get(key)
        if first is not None and now_ms - first < self.window_ms:
            return True
        if now_ms == self._last_key:
            self._last_bucket.append(key)
            self._first_seen[key] = self._last_key
            return False
        bucket = self._buckets.get(now_ms)
        if bucket is None:
            bucket = self._buckets[now_ms] = []
            if self._next_expiry is None or now_ms + self.window_ms < self._next_expiry:
                self._next_expiry = now_ms + self.window_ms
        bucket.append(key)
        shared = self._buckets.keys()[self._buckets.bisect_left(now_ms)]
        self._first_seen[key] = shared
        self._last_key = shared
        self._last_bucket = bucket
        return False

    def expire(self, now_ms: int) -> int:
        """Evict every id whose window has ended by ``now_ms``; returns how many."""
        evicted = 0
        buckets = self._buckets
        cutoff = now_ms - self.window_ms
        first_seen = self._first_seen
        while buckets:
            key = buckets.keys()[0]
            if key > cutoff:
                self._next_expiry = key + self.window_ms
                return evicted
            _, ids = buckets.popitem(0)
            if key == self._last_key:
                self._last_key = None
                self._last_bucket = []
            for item in ids:
                # The id may have been re-added later (after a clock step back); keep that.
                if first_seen.get(item) == key:
                    del first_seen[item]
                    evicted += 1
        self._next_expiry = None
        return evicted

    def _check(self) -> None:
        """Assert the internal invariants (used by property and stress tests)."""
        listed: dict[str, int] = {}
        for key, ids in self._buckets.items():
            assert ids, f"empty bucket {key}"
            for item in ids:
                listed[item] = key
        for item, key in self._first_seen.items():
            assert key in self._buckets, f"{item!r} points at missing bucket {key}"
            assert item in self._buckets[key], f"{item!r} missing from bucket {key}"
        if self._buckets:
            oldest = self._buckets.keys()[0]
            assert self._next_expiry is not None
            assert self._next_expiry <= oldest + self.window_ms
        if self._last_key is not None:
            assert self._buckets.get(self._last_key) is self._last_bucket
