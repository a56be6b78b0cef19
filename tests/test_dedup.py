"""The dedup index against a simple model, and its invariants."""

from __future__ import annotations

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from eventbus._dedup import DEDUP_WINDOW_MS, DedupIndex

WINDOW = 1000
keys = st.sampled_from([f"k{i}" for i in range(12)])


class DedupMachine(RuleBasedStateMachine):
    """Random inserts and time moves (including steps back) agree with a dict model."""

    def __init__(self) -> None:
        super().__init__()
        self.index = DedupIndex(window_ms=WINDOW)
        self.model: dict[str, int] = {}
        self.now = 10_000

    def model_expire(self) -> None:
        for key, first in list(self.model.items()):
            if first <= self.now - WINDOW:
                del self.model[key]

    def model_duplicate(self, key: str) -> bool:
        # Once the window of an id has been seen to end, it stays ended, even if
        # the clock later steps back.
        self.model_expire()
        first = self.model.get(key)
        if first is not None and self.now - first < WINDOW:
            return True
        self.model[key] = self.now
        return False

    @rule(key=keys)
    def insert(self, key: str) -> None:
        assert self.index.seen(key, self.now) == self.model_duplicate(key)

    @rule(delta=st.integers(0, 600))
    def advance(self, delta: int) -> None:
        self.now += delta

    @rule(delta=st.integers(1, 300))
    def step_back(self, delta: int) -> None:
        self.now -= delta

    @rule()
    def expire(self) -> None:
        self.index.expire(self.now)
        self.model_expire()

    @invariant()
    def internal_invariants_hold(self) -> None:
        self.index._check()

    @invariant()
    def contents_match_the_model(self) -> None:
        assert len(self.index) == len(self.model)
        assert {k: self.index.first_seen(k) for k in self.model} == self.model


TestDedupMachine = DedupMachine.TestCase


def test_window_is_24_hours_by_default() -> None:
    """The default window is Inngest's 24 h, measured from the first sighting."""
    index = DedupIndex()
    assert index.window_ms == DEDUP_WINDOW_MS == 86_400_000
    assert not index.seen("a", 0)
    assert index.seen("a", DEDUP_WINDOW_MS - 1)
    assert not index.seen("a", DEDUP_WINDOW_MS)
    assert index.first_seen("a") == DEDUP_WINDOW_MS


def test_expiry_evicts_in_time_order() -> None:
    """expire() removes exactly the ids whose window ended and reports how many."""
    index = DedupIndex(window_ms=100)
    for t, key in enumerate("abcde"):
        index.seen(key, t * 10)
    assert len(index) == 5
    assert index.expire(125) == 3  # a@0, b@10, c@20 ended by 120..125
    assert sorted(k for k in "abcde" if k in index) == ["d", "e"]
    assert index.expire(10_000) == 2
    assert len(index) == 0
    index._check()


def test_window_must_be_positive() -> None:
    """A zero window is refused."""
    with pytest.raises(ValueError, match="positive"):
        DedupIndex(window_ms=0)


def test_many_ids_share_a_bucket() -> None:
    """Ids seen in the same millisecond share one bucket and expire together."""
    index = DedupIndex(window_ms=50)
    for i in range(100):
        index.seen(f"id{i}", 7)
    index.seen("later", 30)
    index._check()
    assert index.expire(57) == 100
    assert "later" in index
