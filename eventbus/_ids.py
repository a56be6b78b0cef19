"""ULIDs: 26-character, time-sortable, unique identifiers for events and runs.

A ULID is 48 bits of milliseconds and 80 bits of randomness, written in Crockford's
base32. The generator is monotonic: within one millisecond (or if the clock steps back)
it increments the random part, so ids minted by one generator sort in minting order.
"""

from __future__ import annotations

import base64
import os

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_B32_TO_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", CROCKFORD.encode())
_MAX_RANDOM = (1 << 80) - 1


def _encode_time(ms: int) -> str:
    chars = []
    for _ in range(10):
        chars.append(CROCKFORD[ms & 31])
        ms >>= 5
    return "".join(reversed(chars))


def encode_ulid(ms: int, randomness: int) -> str:
    """The ULID string for a millisecond timestamp and an 80-bit random part."""
    tail = base64.b32encode(randomness.to_bytes(10, "big")).translate(_B32_TO_CROCKFORD)
    return _encode_time(ms) + tail.decode("ascii")


def decode_ulid_ms(ulid: str) -> int:
    """The millisecond timestamp encoded in a ULID string."""
    ms = 0
    for char in ulid[:10]:
        ms = ms * 32 + CROCKFORD.index(char)
    return ms


class UlidGenerator:
    """Mints monotonic ULIDs; one per engine (it is not shared across threads)."""

    __slots__ = ("_last_ms", "_prefix", "_random")

    def __init__(self) -> None:
        self._last_ms = -1
        self._prefix = ""
        self._random = 0

    def new(self, now_ms: int) -> str:
        """A new ULID for time ``now_ms``, greater than every id this generator made."""
        if now_ms > self._last_ms:
            self._last_ms = now_ms
            self._prefix = _encode_time(now_ms)
            # Leave headroom so that increments within one millisecond do not overflow.
            self._random = int.from_bytes(os.urandom(10), "big") >> 1
        else:
            self._random += 1
            if self._random > _MAX_RANDOM:  # pragma: no cover - needs 2**79 ids in one ms
                self._last_ms += 1
                self._prefix = _encode_time(self._last_ms)
                self._random = 0
        tail = base64.b32encode(self._random.to_bytes(10, "big")).translate(_B32_TO_CROCKFORD)
        return self._prefix + tail.decode("ascii")
