"""ULIDs: 26-character, time-sortable, unique identifiers for events and runs.

A ULID is 48 bits of milliseconds and 80 bits of randomness, written in Crockford's
base32. The generator is monotonic: within one millisecond (or if the clock steps back)
it increments the random part, so ids minted by one generator sort in minting order.
"""

from __future__ import annotations

import base64
import binascii
import os
import random

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Two base32 characters for every 10-bit value: a ULID is 13 lookups.
_PAIRS = tuple(a + b for a in CROCKFORD for b in CROCKFORD)
_LOW_BITS = 40
_LOW_MASK = (1 << _LOW_BITS) - 1


#: Bumped in a forked child: its generators then reseed, so parent and child never mint
#: from the same random state.
_forks = 0


def _forked() -> None:  # pragma: no cover - runs in the child only
    global _forks
    _forks += 1


if hasattr(os, "register_at_fork"):  # pragma: no branch - every POSIX Python has it
    os.register_at_fork(after_in_child=_forked)


def _prefix_of(ms: int, high: int) -> str:
    """The time (10 characters) and the high 40 random bits (8) of a ULID, two
    characters per lookup."""
    pairs = _PAIRS
    return (
        pairs[ms >> 40]
        + pairs[(ms >> 30) & 1023]
        + pairs[(ms >> 20) & 1023]
        + pairs[(ms >> 10) & 1023]
        + pairs[ms & 1023]
        + pairs[high >> 30]
        + pairs[(high >> 20) & 1023]
        + pairs[(high >> 10) & 1023]
        + pairs[high & 1023]
    )


def encode_ulid(ms: int, randomness: int) -> str:
    """The ULID string for a millisecond timestamp and an 80-bit random part."""
    low = randomness & _LOW_MASK
    pairs = _PAIRS
    return (
        _prefix_of(ms, randomness >> _LOW_BITS)
        + pairs[low >> 30]
        + pairs[(low >> 20) & 1023]
        + pairs[(low >> 10) & 1023]
        + pairs[low & 1023]
    )


#: The request header the official SDKs send so that a retried request gets the same ids.
EVENT_ID_SEED_HEADER = "x-inngest-event-id-seed"
_MAX_MS = (1 << 48) - 1


def seeded_ulids(seed: str, count: int) -> list[str] | None:
    """The ids Inngest derives from an ``x-inngest-event-id-seed`` for ``count`` events,
    or None for a seed it would ignore.

    The seed is ``"<unix ms>,<base64 of 10 random bytes>"``; for the event at 1-based
    position ``i`` the last 4 bytes are incremented by ``i`` as a big-endian uint32
    (wrapping) and the ULID is (ms, bytes), as Inngest's server computes them.
    """
    ms_text, sep, entropy_text = seed.strip().partition(",")
    if not sep or not ms_text.isdigit():
        return None
    ms = int(ms_text)
    try:
        entropy = base64.b64decode(entropy_text, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(entropy) != 10 or ms > _MAX_MS:
        return None
    head = int.from_bytes(entropy[:6], "big") << 32
    tail = int.from_bytes(entropy[6:], "big")
    return [encode_ulid(ms, head | ((tail + i) & 0xFFFFFFFF)) for i in range(1, count + 1)]


def decode_ulid_ms(ulid: str) -> int:
    """The millisecond timestamp encoded in a ULID string."""
    ms = 0
    for char in ulid[:10]:
        ms = ms * 32 + CROCKFORD.index(char)
    return ms


class UlidGenerator:
    """Mints monotonic ULIDs; one per engine (it is not shared across threads).

    The first id of each millisecond gets fresh randomness, from a generator seeded from
    the OS once (a system call per millisecond would cost more than the id: the ids
    need to be unique and unpredictable enough not to collide, not secret); later ones
    in the same millisecond increment it. All but the last two characters of an id
    change only once in 1,024 increments, so they are kept encoded (``_head``) and each
    id is one lookup and one concatenation.
    """

    __slots__ = (
        "_forks",
        "_head",
        "_head_of",
        "_high",
        "_last_ms",
        "_low",
        "_prefix",
        "_random",
    )

    def __init__(self) -> None:
        self._last_ms = -1
        self._prefix = ""  # time (10 chars) + high 40 random bits (8 chars)
        self._high = 0
        self._low = 0
        self._head = ""  # the prefix and the low bits but the last 10, encoded
        self._head_of = -1  # ... for these low bits (``low >> 10``); -1: none yet
        self._random = random.Random(os.urandom(32))
        self._forks = _forks

    def _reseed(self, ms: int) -> None:
        self._last_ms = ms
        if self._forks != _forks:  # a forked child: its own random state
            self._forks = _forks
            self._random = random.Random(os.urandom(32))
        bits = self._random.getrandbits(80)
        self._high = bits >> _LOW_BITS
        # Leave headroom so that increments within one millisecond rarely carry.
        self._low = (bits & _LOW_MASK) >> 1
        self._prefix = _prefix_of(ms, self._high)
        self._head_of = -1

    def new(self, now_ms: int) -> str:
        """A new ULID for time ``now_ms``, greater than every id this generator made."""
        if now_ms > self._last_ms:
            self._reseed(now_ms)
        else:
            low = self._low + 1
            if low > _LOW_MASK:
                self._high += 1
                if self._high >> _LOW_BITS:  # pragma: no cover - 2**80 ids in one ms
                    self._reseed(self._last_ms + 1)
                    low = self._low
                else:
                    self._prefix = _prefix_of(self._last_ms, self._high)
                    self._head_of = -1
                    low = 0
            self._low = low
        low = self._low
        if low >> 10 != self._head_of:
            self._head_of = low >> 10
            pairs = _PAIRS
            self._head = (
                self._prefix
                + pairs[low >> 30]
                + pairs[(low >> 20) & 1023]
                + pairs[(low >> 10) & 1023]
            )
        return self._head + _PAIRS[low & 1023]
