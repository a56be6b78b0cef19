"""The dedup index at 1,000,000 live ids: insert, expire, and memory per id.

The baseline is the simplest correct structure for a clock that never goes back: a dict
plus a deque in arrival order.
"""

from __future__ import annotations

import collections
import sys
import tracemalloc
from typing import Any

import pytest

from eventbus._dedup import DEDUP_WINDOW_MS, DedupIndex

COUNT = 1_000_000
START = 1_700_000_000_000
KEYS = [f"order-{i:012d}" for i in range(COUNT)]


def fill_index() -> DedupIndex:
    index = DedupIndex()
    seen = index.seen
    for i, key in enumerate(KEYS):
        seen(key, START + i)  # one id per millisecond: the worst case for buckets
    return index


def fill_baseline() -> tuple[dict[str, int], collections.deque[tuple[int, str]]]:
    first: dict[str, int] = {}
    order: collections.deque[tuple[int, str]] = collections.deque()
    for i, key in enumerate(KEYS):
        now = START + i
        seen = first.get(key)
        if seen is not None and now - seen < DEDUP_WINDOW_MS:
            continue
        first[key] = now
        order.append((now, key))
    return first, order


@pytest.mark.parametrize("structure", ["eventbus", "dict+deque"])
def test_insert_1m(benchmark: Any, structure: str) -> None:
    benchmark.group = "dedup-insert-1m"
    benchmark.extra_info.update(library=structure, operations=COUNT)
    fill = fill_index if structure == "eventbus" else fill_baseline
    benchmark.pedantic(fill, rounds=3, iterations=1)


@pytest.mark.parametrize("structure", ["eventbus", "dict+deque"])
def test_expire_1m(benchmark: Any, structure: str) -> None:
    benchmark.group = "dedup-expire-1m"
    benchmark.extra_info.update(library=structure, operations=COUNT)
    end = START + COUNT + DEDUP_WINDOW_MS + 1000

    if structure == "eventbus":

        def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
            return (fill_index(),), {}

        def expire(index: DedupIndex) -> None:
            assert index.expire(end) == COUNT

    else:

        def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
            return (fill_baseline(),), {}

        def expire(state: tuple[dict[str, int], collections.deque[tuple[int, str]]]) -> None:
            first, order = state
            while order and order[0][0] + DEDUP_WINDOW_MS <= end:
                _, key = order.popleft()
                del first[key]
            assert not first

    benchmark.pedantic(expire, setup=setup, rounds=3, iterations=1)


@pytest.mark.parametrize("structure", ["eventbus", "dict+deque"])
def test_memory_per_live_id(benchmark: Any, structure: str) -> None:
    """Not a timing: records bytes per live id (tracemalloc) in extra_info."""
    benchmark.group = "dedup-memory-1m"
    tracemalloc.start()
    try:
        kept = fill_index() if structure == "eventbus" else fill_baseline()
        used, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    benchmark.extra_info.update(
        library=structure,
        bytes_per_id=round(used / COUNT, 1),
        key_bytes=sys.getsizeof(KEYS[0]),
    )
    assert kept is not None
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
