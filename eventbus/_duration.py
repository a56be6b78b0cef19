"""Durations as Inngest writes them: ``timedelta``, int milliseconds, or ``"1h30m"``."""

from __future__ import annotations

import datetime
import re

_UNITS_MS = {
    "ms": 1.0,
    "s": 1000.0,
    "m": 60_000.0,
    "h": 3_600_000.0,
    "d": 86_400_000.0,
    "w": 604_800_000.0,
}
_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h|d|w)")


def parse_duration_ms(value: object, *, what: str = "duration") -> int:
    """Milliseconds for a ``timedelta``, an int of milliseconds or a string like ``"1h30m"``.

    Raises ``ValueError`` (with the offending value) for anything else or a negative value.
    """
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a timedelta, int milliseconds or a string, not {value!r}")
    if isinstance(value, datetime.timedelta):
        ms = value // datetime.timedelta(milliseconds=1)
    elif isinstance(value, int):
        ms = value
    elif isinstance(value, str):
        text = value.strip()
        pos = 0
        total = 0.0
        for match in _PART.finditer(text):
            if match.start() != pos:
                break
            total += float(match.group(1)) * _UNITS_MS[match.group(2)]
            pos = match.end()
        if pos != len(text) or not text:
            raise ValueError(
                f"{what} {value!r} is not a duration; write it like '30s', '1h30m' or '2d' "
                "(units ms, s, m, h, d, w)"
            )
        ms = round(total)
    else:
        raise ValueError(
            f"{what} must be a timedelta, int milliseconds or a string like '1h30m', not {value!r}"
        )
    if ms < 0:
        raise ValueError(f"{what} {value!r} is negative")
    return ms


def check_period_ms(fn_id: str, what: str, value: object, low_ms: int, high_ms: int) -> int:
    """A configured duration in ``[low_ms, high_ms]`` as milliseconds; otherwise
    FunctionConfigError naming the function, the option and Inngest's bounds."""
    from ._errors import FunctionConfigError

    try:
        ms = parse_duration_ms(value, what=what)
    except ValueError as exc:
        raise FunctionConfigError(f"{fn_id!r}: {exc}") from None
    if not low_ms <= ms <= high_ms:
        raise FunctionConfigError(
            f"{fn_id!r}: {what} {value!r} is out of range: Inngest takes "
            f"{_short(low_ms)} to {_short(high_ms)}"
        )
    return ms


def _short(ms: int) -> str:
    """``86_400_000`` as ``"24h"``, ``604_800_000`` as ``"7d"``: the way bounds are said."""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0 and not (unit == "d" and ms == 86_400_000):
            return f"{ms // size}{unit}"
    return f"{ms}ms"  # pragma: no cover - every bound is whole seconds
