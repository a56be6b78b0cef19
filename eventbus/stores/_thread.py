"""One dedicated thread for a store's blocking I/O, with a cheap way back to the loop.

``anyio.to_thread.run_sync`` costs about 160-180 µs a round trip on a busy machine (a
capacity limiter, a cancel scope, a pool of threads); a store that commits once per step
pays that on every step. A thread of its own, fed by a ``queue.SimpleQueue`` and
answering through the event loop's own thread-safe callback (asyncio's
``call_soon_threadsafe``, trio's ``TrioToken.run_sync_soon``), costs about half of it
(``benchmarks/test_durable.py::test_thread_handoff``). Jobs run one at a time, in
order: the store has one writer.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import anyio

from .._backend import current_backend

T = TypeVar("T")
_Job = tuple[Callable[[], Any], list[Any], Callable[[], None]]


def _soon() -> Callable[[Callable[[], None]], None]:
    """The running loop's thread-safe "call this on the loop soon"."""
    if current_backend() == "trio":
        import trio

        return trio.lowlevel.current_trio_token().run_sync_soon
    import asyncio

    call_soon = asyncio.get_running_loop().call_soon_threadsafe

    def soon(callback: Callable[[], None]) -> None:
        call_soon(callback)

    return soon


class WorkerThread:
    """A daemon thread running the jobs given to :meth:`call`, in order."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._soon: Callable[[Callable[[], None]], None] | None = None

    def start(self) -> None:
        """Start the thread, answering to the loop this is called from."""
        self._soon = _soon()
        self._thread.start()

    async def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn()`` in the thread; return its result or raise its exception.

        Cancelling the caller does not stop ``fn``: it runs to its end, unseen.
        """
        done = anyio.Event()
        outcome: list[Any] = []
        self._jobs.put((fn, outcome, done.set))
        await done.wait()
        if len(outcome) == 2:
            raise outcome[1]
        result: T = outcome[0]
        return result

    def stop(self) -> None:
        """Let the thread end once the jobs already given are done."""
        self._jobs.put(None)

    def _main(self) -> None:
        soon = self._soon
        assert soon is not None
        while (job := self._jobs.get()) is not None:
            fn, outcome, wake = job
            try:
                outcome.append(fn())
            except BaseException as exc:  # handed to the caller, on the loop
                outcome += [None, exc]
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                soon(wake)
