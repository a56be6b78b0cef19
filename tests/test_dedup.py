"""The dedup index against a simple model, its invariants and its memory."""

from __future__ import annotations

import sys
import tracemalloc

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from eventbus._dedup import DEDUP_WINDOW_MS, DedupIndex

WINDOW = 1000
KEYS = [f"k{i}" for i in range(12)]


class DedupMachine(RuleBasedStateMachine):
    """Random inserts and time moves (including steps back) agree with a dict model."""

    def __init__(self) -> None:
        super().__init__()
        self.index = DedupIndex(window_ms=WINDOW, bucket_ms=300)
        self.model: dict[str, int] = {}
        self.now = 10_000
        self.high = -(2**62)  # no time seen yet

    def model_live(self, key: str) -> bool:
        first = self.model.get(key)
        return first is not None and self.high - first < WINDOW

    @rule(key=st.sampled_from(KEYS))
    def insert(self, key: str) -> None:
        self.high = max(self.high, self.now)
        duplicate = self.model_live(key)
        if not duplicate:
            self.model[key] = self.now
        assert self.index.seen(key, self.now) == duplicate

    @rule(delta=st.integers(0, 600))
    def advance(self, delta: int) -> None:
        self.now += delta

    @rule(delta=st.integers(1, 300))
    def step_back(self, delta: int) -> None:
        self.now -= delta

    @rule()
    def expire(self) -> None:
        self.high = max(self.high, self.now)
        self.index.expire(self.now)
        # Memory is bounded: nothing older than the window plus one bucket is held.
        for key in KEYS:
            first = self.index.first_seen(key)
            assert first is None or self.high - first < WINDOW + self.index.bucket_ms

    @invariant()
    def internal_invariants_hold(self) -> None:
        self.index._check()

    @invariant()
    def liveness_matches_the_model(self) -> None:
        for key in KEYS:
            assert self.index.is_live(key) == self.model_live(key), key


TestDedupMachine = DedupMachine.TestCase


def test_window_is_24_hours_by_default() -> None:
    """The default window is Inngest's 24 h, measured from the first sighting, to the ms."""
    index = DedupIndex()
    assert index.window_ms == DEDUP_WINDOW_MS == 86_400_000
    assert not index.seen("a", 0)
    assert index.seen("a", DEDUP_WINDOW_MS - 1)
    assert not index.seen("a", DEDUP_WINDOW_MS)
    assert index.first_seen("a") == DEDUP_WINDOW_MS


def test_expiry_evicts_whole_buckets_in_time_order() -> None:
    """expire() evicts a bucket once every id in it has ended its window."""
    index = DedupIndex(window_ms=100, bucket_ms=50)
    for t, key in zip((0, 10, 60, 70, 120), "abcde", strict=True):
        index.seen(key, t)
    assert len(index) == 5
    assert index.expire(149) == 0  # bucket [0, 50) ends at 150
    assert index.expire(150) == 2  # a, b
    assert [k for k in "abcde" if index.first_seen(k) is not None] == ["c", "d", "e"]
    assert index.expire(10_000) == 3
    assert len(index) == 0
    index._check()


def test_clock_stepping_back_does_not_revive_ended_windows() -> None:
    """Once an id's window has ended, a clock that steps back does not make it live again."""
    index = DedupIndex(window_ms=100, bucket_ms=10)
    index.seen("a", 0)
    index.seen("b", 150)  # time passes the end of a's window
    assert not index.is_live("a")
    assert not index.seen("a", 90)  # clock stepped back: a is fresh, seen at 90
    assert index.is_live("a")
    index._check()


@pytest.mark.parametrize(("window", "bucket"), [(0, None), (10, 0)])
def test_window_and_bucket_must_be_positive(window: int, bucket: int | None) -> None:
    """Zero windows or buckets are refused."""
    with pytest.raises(ValueError, match="positive"):
        DedupIndex(window_ms=window, bucket_ms=bucket)


@pytest.mark.parametrize("ids_per_ms", [1, 100])
def test_memory_per_live_id_is_under_200_bytes(ids_per_ms: int) -> None:
    """A live id costs well under 200 bytes, its 18-character string included."""
    count = 100_000
    keys = [f"order-{i:012d}" for i in range(count)]
    tracemalloc.start()
    try:
        index = DedupIndex()
        for i, key in enumerate(keys):
            index.seen(key, 1_700_000_000_000 + i // ids_per_ms)
        used, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    per_id = used / count + sys.getsizeof(keys[0])
    assert len(index) == count
    assert per_id < 200, per_id
