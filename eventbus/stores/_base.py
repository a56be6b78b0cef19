"""``Store``: the protocol an engine keeps its records through.

The engine reads at memory speed, so a store holds its working set in memory and keeps
it current as the engine tells it what changed; a durable store also writes those
changes somewhere that survives the process, and says when they are there (``commit``).
:class:`~eventbus.stores.MemoryStore` and :class:`~eventbus.stores.SqliteStore` are the
two this package has; a store of your own implements every method below (subclassing
``MemoryStore`` for the in-memory half is the short way).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import anyio.abc

    from .._dedup import DedupIndex
    from .._event import StoredEvent
    from .._function import Registry
    from .._run import Run, RunStatus, StepRecord


@runtime_checkable
class Store(Protocol):
    """Events with their dedup claims, runs with their journals, and retention."""

    #: Whether what is committed survives the process: the engine then marks each change
    #: (``touch``) and waits for ``commit`` wherever it promises durability.
    durable: bool
    #: The ids claimed within the 24 h window (a time-ordered index).
    dedup: DedupIndex

    # Lifecycle: an engine binds, opens and starts a store as it starts, closes it as it
    # stops, and abandons it when it crashes (eventbus.testing).
    def bind(self, retention: int) -> None:
        """Keep at most ``retention`` events and finished runs (older ones are pruned)."""

    async def open(self, registry: Registry) -> tuple[list[Run], list[str]]:
        """Load what is stored; return the unfinished runs to take up, and the ids of
        unfinished runs whose function ``registry`` no longer has."""

    def start(self, tg: anyio.abc.TaskGroup) -> None:
        """Start background work (a writer, say) in the engine's task group."""

    async def close(self) -> None:
        """Write what is pending, release the storage, and forget the working set."""

    def abandon(self) -> None:
        """The engine crashed: write nothing more (what is pending is lost)."""

    # Writing: the engine calls these as records change.
    def add_event(self, stored: StoredEvent) -> None:
        """A new event (its dedup claim is already in ``dedup``)."""

    def add_finished(self, internal_id: str, run: Run) -> None:
        """The ``inngest/function.finished`` event of the ended ``run``, with the id
        ``internal_id``, when nothing saw it as it was sent: build it now
        (``eventbus._run.finished_event(run, internal_id)``) or when it is read; it must
        then be the same event, in the same place among the others."""

    def add_run(self, run: Run) -> None:
        """A new run."""

    def touch(self, run: Run, record: StepRecord | None = None) -> None:
        """``run`` changed (and ``record`` of its journal): write it with the next commit."""

    def run_ended(self, run: Run) -> None:
        """``run`` finished: it and its events may be pruned from now on."""

    async def commit(self) -> None:
        """Return once every change made before the call is durable (raise ``StoreError``
        if it cannot be)."""

    # Flow control: the rate-limit state (a GCRA time) of each key of a function.
    def limit_tat(self, function_id: str, key: str) -> int | None: ...

    def set_limit_tat(self, function_id: str, key: str, tat: int, now_ms: int) -> None: ...

    # Flow control: pending debounces (function id, key, event id, first ms, due ms).
    def debounces(self) -> list[tuple[str, str, str, int, int]]: ...

    def set_debounce(
        self, function_id: str, key: str, internal_id: str, first_ms: int, due_ms: int
    ) -> None: ...

    def drop_debounce(self, function_id: str, key: str) -> None: ...

    # Flow control: open batches (function id, key, batch id, event ids, first ms).
    def batches(self) -> list[tuple[str, str, str, list[str], int]]: ...

    def add_to_batch(
        self, function_id: str, key: str, batch_id: str, internal_id: str, first_ms: int
    ) -> None: ...

    def drop_batch(self, function_id: str, key: str) -> None: ...

    # Reading, oldest first.
    def get_event(self, internal_id: str) -> StoredEvent | None: ...

    def events(self, name: str | None = None) -> list[StoredEvent]: ...

    def get_run(self, run_id: str) -> Run | None: ...

    def runs(
        self,
        function_id: str | None = None,
        event_id: str | None = None,
        status: RunStatus | None = None,
    ) -> list[Run]: ...

    def unfinished_runs(self) -> list[Run]: ...
