"""Flow-control policies (eventbus._flow): Inngest's examples as plain tests, and
GCRA against an independent model (the leaky bucket it is equivalent to)."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from eventbus._flow import DAY_MS, Gcra, Slots, priority_factor

MINUTE = 60_000


def arrivals(gcra: Gcra, times: list[int]) -> list[bool]:
    tat = None
    admitted = []
    for now in times:
        ok, tat = gcra.admit(tat, now)
        admitted.append(ok)
    return admitted


def test_a_rate_limit_of_one_a_day_admits_the_next_a_day_later() -> None:
    gcra = Gcra.rate_limit(1, DAY_MS)
    assert arrivals(gcra, [0, 3_600_000, DAY_MS - 1, DAY_MS, DAY_MS + 1]) == [
        True,
        False,
        False,
        True,
        False,
    ]


def test_ten_a_minute_admits_two_at_once_then_one_every_six_seconds() -> None:
    gcra = Gcra.rate_limit(10, MINUTE)
    assert arrivals(gcra, [0, 0, 0]) == [True, True, False]
    tat = None
    for now in (0, 0):
        _, tat = gcra.admit(tat, now)
    assert gcra.next_admission_ms(tat, 0) == 6_000
    assert gcra.admit(tat, 5_999)[0] is False
    assert gcra.admit(tat, 6_000)[0] is True


def test_a_throttle_starts_limit_plus_burst_then_one_per_interval() -> None:
    gcra = Gcra.throttle(3, MINUTE, burst=2)  # limit + burst = 5 at once, then one per 20 s
    assert arrivals(gcra, [0] * 6) == [True] * 5 + [False]
    assert arrivals(gcra, [0] * 5 + [19_999, 20_000, 20_001]) == [True] * 5 + [False, True, False]
    assert Gcra.throttle(0, MINUTE, burst=1) == Gcra.throttle(1, MINUTE, burst=1)  # 0 is 1


def leaky_bucket(interval: int, tolerance: int, times: list[int]) -> list[bool]:
    """The continuous-state leaky bucket (ITU-T I.371's second form of GCRA): a bucket
    draining one unit of ``interval`` per ``interval`` of time, overflowing past
    ``tolerance`` (all in ns; ``times`` in ms)."""
    level = 0
    last = None
    out = []
    for now_ms in times:
        now = now_ms * 1_000_000
        drained = level if last is None else max(0, level - (now - last))
        if drained > tolerance:
            out.append(False)
            level, last = drained, now
            continue
        out.append(True)
        level, last = drained + interval, now
    return out


@given(
    limit=st.integers(1, 200),
    period=st.integers(1_000, DAY_MS),
    gaps=st.lists(st.integers(0, 120_000), max_size=60),
    kind=st.sampled_from(["rate_limit", "throttle"]),
    burst=st.integers(1, 5),
)
def test_gcra_against_the_leaky_bucket(
    limit: int, period: int, gaps: list[int], kind: str, burst: int
) -> None:
    gcra = (
        Gcra.rate_limit(limit, period)
        if kind == "rate_limit"
        else Gcra.throttle(limit, period, burst)
    )
    times = []
    now = 0
    for gap in gaps:
        now += gap
        times.append(now)
    assert arrivals(gcra, times) == leaky_bucket(gcra.interval_ns, gcra.tolerance_ns, times)


@given(
    limit=st.integers(1, 50),
    period=st.integers(1_000, 3_600_000),
    gaps=st.lists(st.integers(0, 60_000), min_size=1, max_size=80),
)
def test_no_window_admits_more_than_its_share_plus_the_burst(
    limit: int, period: int, gaps: list[int]
) -> None:
    """Whatever the arrivals: within any span of time, at most span/interval + 1 + burst
    are admitted, and an arrival is refused only while the TAT is beyond tolerance."""
    gcra = Gcra.rate_limit(limit, period)
    times, now = [], 0
    for gap in gaps:
        now += gap
        times.append(now)
    admitted = [t for t, ok in zip(times, arrivals(gcra, times), strict=True) if ok]
    assert admitted  # the first arrival is always admitted
    burst = limit // 10
    for i, start in enumerate(admitted):
        for j in range(i, len(admitted)):
            span = admitted[j] - start
            assert (j - i + 1 - 1 - burst) * gcra.interval_ns <= span * 1_000_000


def test_an_untouched_key_is_admitted_now() -> None:
    assert Gcra.rate_limit(1, DAY_MS).next_admission_ms(None, 1234) == 1234


def test_the_memory_store_forgets_limits_that_ran_out() -> None:
    from eventbus.stores import MemoryStore

    store = MemoryStore()
    for n in range(1025):  # TATs at 1 ms .. 1025 ms, all past by 5 s
        store.set_limit_tat("f", f"k{n}", (n + 1) * 1_000_000, 0)
    assert store.limit_tat("f", "k3") == 4_000_000  # kept: nothing ran out at 0 ms
    for n in range(1026):  # the bound doubled after that look: cross it again, at 5 s
        store.set_limit_tat("f", f"fresh{n}", 10_000_000_000, 5_000)
    assert store.limit_tat("f", "k3") is None  # ran out by 5 s: dropped
    assert store.limit_tat("f", "fresh0") == 10_000_000_000


# ---------------------------------------------------------------- concurrency slots

#: The model's keys, each with one limit (as one function's constraint has).
LIMITS = {"a": 1, "b": 2, "c": 3}


class SlotsMachine(RuleBasedStateMachine):
    """eventbus._flow.Slots against a model of Inngest's concurrency rule: holders of a
    key never exceed its limit; no waiter ever fits (the slots are used); nobody waits
    when nothing holds a slot; one key's items start in arrival order."""

    def __init__(self) -> None:
        super().__init__()
        self.slots: Slots[int] = Slots()
        self.claims: dict[int, tuple[tuple[str, int], ...]] = {}
        self.holders: list[int] = []
        self.waiting: list[int] = []
        self.started: list[int] = []
        self.next = 0

    def _started(self, items: list[int]) -> None:
        for item in items:
            self.waiting.remove(item)
            self.holders.append(item)
            self.started.append(item)

    @rule(keys=st.lists(st.sampled_from(sorted(LIMITS)), min_size=1, max_size=2, unique=True))
    def arrive(self, keys: list[str]) -> None:
        item, self.next = self.next, self.next + 1
        claims = self.claims[item] = tuple((key, LIMITS[key]) for key in keys)
        self.waiting.append(item)
        if self.slots.take(item, claims):
            self._started([item])

    @precondition(lambda self: self.holders)
    @rule(data=st.data())
    def finish(self, data: st.DataObject) -> None:
        item = data.draw(st.sampled_from(self.holders))
        self.holders.remove(item)
        self._started(self.slots.release(self.claims[item]))

    @precondition(lambda self: self.waiting)
    @rule(data=st.data())
    def give_up(self, data: st.DataObject) -> None:
        item = data.draw(st.sampled_from(self.waiting))
        granted = self.slots.discard(item)
        assert granted is not None
        self.waiting.remove(item)
        self._started(granted)

    @invariant()
    def holders_never_pass_a_limit(self) -> None:
        held = Counter(key for item in self.holders for key, _ in self.claims[item])
        assert all(count <= LIMITS[key] for key, count in held.items())
        assert dict(held) == self.slots.in_use

    @invariant()
    def no_waiter_fits(self) -> None:
        held = Counter(key for item in self.holders for key, _ in self.claims[item])
        for item in self.waiting:
            assert any(held[key] >= limit for key, limit in self.claims[item])

    @invariant()
    def nobody_waits_on_nothing(self) -> None:
        if not self.holders:
            assert not self.waiting
            assert not self.slots.waiting

    @invariant()
    def one_key_is_fifo(self) -> None:
        only_a = [i for i in self.started if self.claims[i] == (("a", 1),)]
        assert only_a == sorted(only_a)


TestSlots = SlotsMachine.TestCase


def test_shared_keys_are_checked_against_each_claimants_own_limit() -> None:
    slots: Slots[str] = Slots()
    assert slots.take("x1", (("env:k", 1),))
    assert not slots.take("x2", (("env:k", 1),))  # x's limit is 1
    assert not slots.take("y1", (("env:k", 5),))  # behind x2: first in, first out
    assert slots.release((("env:k", 1),)) == ["x2", "y1"]
    assert slots.in_use == {"env:k": 2}
    assert slots.discard("x2") is None  # it holds its slot: nothing to stop


@given(st.one_of(st.integers(), st.floats(allow_nan=False), st.text(), st.none(), st.booleans()))
def test_priority_factors_are_ints_clamped_to_12_hours(value: object) -> None:
    """As Inngest's RunPriorityFactor: an int clamped to +-43200 s, anything else 0."""
    factor = priority_factor(value)
    if type(value) is int:
        assert factor == max(-43_200, min(43_200, value))
    else:
        assert factor == 0


@given(scores=st.lists(st.integers(-5, 5), max_size=12), limit=st.integers(1, 3))
def test_waiters_are_served_by_score_then_arrival(scores: list[int], limit: int) -> None:
    """Slots with scores (priority): waiters get their slots lowest score first, and in
    the order they came among equal scores."""
    slots: Slots[int] = Slots()
    claims = (("k", limit),)
    holding = [n for n in range(limit) if slots.take(-1 - n, claims)]
    assert len(holding) == limit
    for n, score in enumerate(scores):
        assert not slots.take(n, claims, score)
    served: list[int] = []
    while len(served) < len(scores):
        served += slots.release(claims)
    assert served == [n for n, _ in sorted(enumerate(scores), key=lambda item: item[1])]
