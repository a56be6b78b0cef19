"""Pure values: ULIDs, durations, clocks, errors."""

from __future__ import annotations

import datetime
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

import eventbus
from eventbus._clock import datetime_to_ms, ms_to_datetime
from eventbus._duration import parse_duration_ms
from eventbus._errors import error_info
from eventbus._ids import CROCKFORD, UlidGenerator, decode_ulid_ms, encode_ulid

UTC = datetime.timezone.utc


@given(times=st.lists(st.integers(0, 2**48 - 1), min_size=1, max_size=50))
def test_ulids_are_monotonic_and_encode_their_time(times: list[int]) -> None:
    """Every new ULID sorts after the previous one, even when the clock steps back."""
    gen = UlidGenerator()
    ids = [gen.new(t) for t in times]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 26 and set(i) <= set(CROCKFORD) for i in ids)
    high = -1
    for t, ulid in zip(times, ids, strict=False):
        high = max(high, t)
        assert decode_ulid_ms(ulid) == high


@given(
    start=st.integers(0, 2**40 - 1),
    steps=st.lists(st.sampled_from(["same", "later", "carry"]), min_size=1, max_size=60),
)
def test_generated_ulids_are_the_encoding_of_time_and_counter(start: int, steps: list[str]) -> None:
    """Each id is encode_ulid(ms, randomness) of the generator's state, whichever of its
    parts changed (the encoded head of the low bits is reused until they carry)."""
    gen = UlidGenerator()
    ms = start
    for step in steps:
        if step == "later":
            ms += 1
        elif step == "carry":  # push the counter to just before a 1,024 boundary
            gen.new(ms)
            gen._low |= 1023
        ulid = gen.new(ms)
        assert ulid == encode_ulid(gen._last_ms, (gen._high << 40) | gen._low)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process.*fork:DeprecationWarning")
def test_a_forked_child_mints_from_its_own_random_state() -> None:
    """Parent and child reseed apart: the same millisecond gives different ids."""
    gen = UlidGenerator()
    gen.new(1)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's coverage is not collected
        os.write(write, gen.new(10).encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 26
    assert gen.new(10) != child


def test_encode_ulid_layout() -> None:
    """encode_ulid writes 10 time characters and 16 random ones."""
    assert encode_ulid(0, 0) == "0" * 26
    assert encode_ulid(1, 1) == "0000000001" + "0" * 15 + "1"
    assert encode_ulid(2**48 - 1, 2**80 - 1) == "7ZZZZZZZZZ" + "Z" * 16


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        (datetime.timedelta(minutes=2), 120_000),
        (1500, 1500),
        ("30s", 30_000),
        ("1h30m", 5_400_000),
        ("2d", 172_800_000),
        ("1w", 604_800_000),
        ("1.5h", 5_400_000),
        ("250ms", 250),
        (" 10m ", 600_000),
    ],
)
def test_durations(value: object, ms: int) -> None:
    """timedelta, int milliseconds and Inngest strings all parse to milliseconds."""
    assert parse_duration_ms(value) == ms


@pytest.mark.parametrize("value", ["", "1x", "h", "1h 30m", "-5s", True, 1.5, None, -1])
def test_bad_durations(value: object) -> None:
    """Anything else is a ValueError naming the value."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration_ms(value)


@given(ms=st.integers(0, 10**12))
def test_duration_strings_round_trip(ms: int) -> None:
    """Any millisecond count written as h/m/s/ms parts parses back to itself."""
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, rest = divmod(rest, 1000)
    assert parse_duration_ms(f"{h}h{m}m{s}s{rest}ms") == ms


def test_virtual_clock_moves_only_when_advanced() -> None:
    """VirtualClock starts at the given instant and moves only by advance()."""
    clock = eventbus.VirtualClock(datetime.datetime(2025, 1, 1, tzinfo=UTC))
    start = clock.now()
    assert start == datetime.datetime(2025, 1, 1, tzinfo=UTC)
    assert clock.is_virtual
    clock.advance(datetime.timedelta(hours=2, microseconds=500))
    assert clock.now() - start == datetime.timedelta(hours=2, microseconds=500)
    assert clock.now_ms() == datetime_to_ms(start) + 7_200_000
    clock.advance_to_ms(clock.now_ms() - 5)  # in the past: no-op
    assert clock.now() - start == datetime.timedelta(hours=2, microseconds=500)
    assert "VirtualClock(now=2025-01-01T02:00" in repr(clock)
    custom = eventbus.VirtualClock(datetime.datetime(2030, 6, 1, tzinfo=UTC))
    assert custom.now().year == 2030


def test_virtual_clock_starts_at_the_real_time_by_default() -> None:
    """Without start=, a VirtualClock begins at the wall clock's now (to the ms), so
    deadlines built from datetime.now() in app code fall where they would."""
    before = eventbus.SystemClock().now_ms()
    clock = eventbus.VirtualClock()
    after = eventbus.SystemClock().now_ms()
    assert before <= clock.now_ms() <= after
    frozen = clock.now_ms()
    assert clock.now_ms() == frozen  # it does not move by itself


def test_virtual_clock_rejects_bad_input() -> None:
    """Naive starts, negative or non-timedelta advances are clear errors."""
    with pytest.raises(TypeError, match="aware datetime"):
        eventbus.VirtualClock(datetime.datetime(2030, 1, 1))
    clock = eventbus.VirtualClock()
    with pytest.raises(ValueError, match="never goes back"):
        clock.advance(datetime.timedelta(seconds=-1))
    with pytest.raises(TypeError, match="timedelta"):
        clock.advance(5)  # type: ignore[arg-type]


def test_virtual_clock_listeners() -> None:
    """Listeners are called after each advance until they unsubscribe."""
    clock = eventbus.VirtualClock()
    calls: list[int] = []
    unsubscribe = clock.subscribe(lambda: calls.append(clock.now_ms()))
    clock.advance(datetime.timedelta(seconds=1))
    unsubscribe()
    unsubscribe()
    clock.advance(datetime.timedelta(seconds=1))
    assert len(calls) == 1


def test_system_clock_is_aware_utc() -> None:
    """SystemClock reads the wall clock as aware UTC."""
    clock = eventbus.SystemClock()
    now = clock.now()
    assert now.tzinfo is not None
    assert not clock.is_virtual
    assert abs(datetime_to_ms(now) - clock.now_ms()) < 60_000
    assert repr(clock) == "SystemClock()"


@given(ms=st.integers(0, 4_102_444_800_000))
def test_ms_datetime_round_trip(ms: int) -> None:
    """Epoch milliseconds and aware datetimes convert both ways."""
    assert datetime_to_ms(ms_to_datetime(ms)) == ms


def test_error_tree() -> None:
    """Every error derives from EventbusError; validation errors are ValueErrors."""
    assert issubclass(eventbus.EventValidationError, (eventbus.EventbusError, ValueError))
    assert issubclass(eventbus.FunctionConfigError, (eventbus.EventbusError, ValueError))
    assert issubclass(eventbus.ExpressionError, eventbus.FunctionConfigError)
    assert issubclass(eventbus.EngineNotRunningError, (eventbus.UsageError, RuntimeError))
    assert issubclass(eventbus.NonRetriableError, eventbus.EventbusError)
    assert issubclass(eventbus.RetryAfterError, eventbus.EventbusError)


def test_error_info_shape() -> None:
    """error_info gives Inngest's {name, message, stack} for any exception."""
    try:
        raise KeyError("k")
    except KeyError as exc:
        info = error_info(exc)
    assert info["name"] == "KeyError"
    assert info["message"] == "'k'"
    assert "KeyError" in info["stack"]
    assert error_info(eventbus.NonRetriableError("m"))["message"] == "m"
