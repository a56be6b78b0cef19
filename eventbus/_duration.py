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
