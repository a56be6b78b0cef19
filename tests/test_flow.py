"""Flow-control policies (eventbus._flow): Inngest's examples as plain tests, and
GCRA against an independent model (the leaky bucket it is equivalent to)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from eventbus._flow import DAY_MS, Gcra

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
