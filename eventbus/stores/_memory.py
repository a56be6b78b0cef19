"""``MemoryStore``: the records of an engine, in memory (the default store).

It holds the events, with the dedup index of their ids, and the runs with their
journals, and bounds both: beyond ``retention`` the oldest events and finished runs are
pruned, in batches of an eighth of the retention so that the cost is amortized. An event
an unfinished run still needs, and an unfinished run, are moved aside (never scanned
again) instead, and dropped once they are done with.

The ``inngest/function.finished`` event of a run is kept as the run itself under the
event's id until something reads it (see ``add_finished``): most are never read, and
building each would cost more than the run did.

A MemoryStore outlives an engine: an engine started over it again (``bus.restart()``)
takes up its unfinished runs, as one over a :class:`~eventbus.stores.SqliteStore` does
after a restart of the process.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from .._dedup import DedupIndex
from .._run import Run, finished_event

if TYPE_CHECKING:
    import anyio.abc

    from .._event import StoredEvent
    from .._function import Registry
    from .._run import RunStatus, StepRecord


def _internal_id(event: StoredEvent) -> str:
    return event.internal_id


def _run_id(run: Run) -> str:
    return run.run_id


class MemoryStore:
    """Events, dedup claims and runs, in memory and bounded by ``retention``."""

    #: Whether what is written survives the process (see SqliteStore).
    durable = False

    def __init__(self) -> None:
        self.dedup = DedupIndex()
        #: Internal id -> the event; or the run whose finished event it is, until read.
        self._events: dict[str, StoredEvent | Run] = {}
        self._runs: dict[str, Run] = {}
        #: Internal id -> the run it started, or the runs when there are several (a
        #: list for each event would be one more object for the collector to walk).
        self._runs_by_event: dict[str, Run | list[Run]] = {}
        #: Internal id -> how many debounces and batches hold the event.
        self._pins: dict[str, int] = {}
        # Arrival order, for pruning: popping the front of a dict is not O(1).
        self._event_order: deque[str] = deque()
        self._run_order: deque[str] = deque()
        self._held_events: dict[str, StoredEvent] = {}
        self._held_runs: dict[str, Run] = {}
        self._runs_reordered = False
        self._finished_runs = 0
        self.retention = 100_000
        self._prune_at = self.retention + (self.retention >> 3) + 16
        #: (function id, key) -> the key's GCRA theoretical arrival time (rate limits).
        self._limits: dict[tuple[str, str], int] = {}
        self._limits_prune_at = 1024
        #: (function id, key) -> (event internal id, first event ms, due ms): debounces.
        self._debounces: dict[tuple[str, str], tuple[str, int, int]] = {}
        #: (function id, key) -> (batch id, event internal ids, first event ms): batches.
        self._batches: dict[tuple[str, str], tuple[str, list[str], int]] = {}

    def bind(self, retention: int) -> None:
        """Set the bound (the client's ``event_retention``) before an engine uses it."""
        self.retention = retention
        self._prune_at = retention + (retention >> 3) + 16

    def recover(self, registry: Registry) -> list[Run]:
        """The runs an engine starting over this store must take up: every unfinished
        one, oldest first (their functions looked up again in ``registry``)."""
        runs = [run for run in self.unfinished_runs() if run.function.id in registry.functions]
        for run in runs:
            run.function = registry.functions[run.function.id]
        return runs

    # ------------------------------------------------------------------ lifecycle
    # What an engine calls as it starts and stops, and (durable stores only) as records
    # change; in memory there is nothing to open, write or close.

    async def open(self, registry: Registry) -> tuple[list[Run], list[str]]:
        """The runs to take up, and the (ids of) unfinished runs that cannot be (their
        function is gone)."""
        return self.recover(registry), []

    def start(self, tg: anyio.abc.TaskGroup) -> None:
        return None

    def touch(self, run: Run, record: StepRecord | None = None) -> None:
        return None

    async def commit(self) -> None:
        return None

    async def close(self) -> None:
        return None

    # ------------------------------------------------------------------ flow control

    def limit_tat(self, function_id: str, key: str) -> int | None:
        """The rate-limit state of ``key`` of a function (None: fresh)."""
        return self._limits.get((function_id, key))

    def set_limit_tat(self, function_id: str, key: str, tat: int, now_ms: int) -> None:
        """Keep ``tat`` (ns) for ``key``; states that have run out by ``now_ms`` are dropped
        now and then (a TAT in the past is the same as none)."""
        limits = self._limits
        limits[function_id, key] = tat
        if len(limits) > self._limits_prune_at:
            now_ns = now_ms * 1_000_000
            for stale in [k for k, v in limits.items() if v <= now_ns]:
                del limits[stale]
            self._limits_prune_at = max(1024, 2 * len(limits))

    def debounces(self) -> list[tuple[str, str, str, int, int]]:
        """The pending debounces: (function id, key, event id, first ms, due ms)."""
        return [(f, k, *state) for (f, k), state in self._debounces.items()]

    def set_debounce(
        self, function_id: str, key: str, internal_id: str, first_ms: int, due_ms: int
    ) -> None:
        """A debounce holds (the latest) event ``internal_id``, firing at ``due_ms``; the
        event is kept until the debounce fires."""
        old = self._debounces.get((function_id, key))
        if old is None or old[0] != internal_id:
            if old is not None:
                self._unpin(old[0])
            self._pins[internal_id] = self._pins.get(internal_id, 0) + 1
        self._debounces[function_id, key] = (internal_id, first_ms, due_ms)

    def drop_debounce(self, function_id: str, key: str) -> None:
        """The debounce fired (its run is recorded)."""
        old = self._debounces.pop((function_id, key), None)
        if old is not None:
            self._unpin(old[0])

    def batches(self) -> list[tuple[str, str, str, list[str], int]]:
        """The open batches: (function id, key, batch id, event ids in order, first ms)."""
        return [(f, k, b, list(ids), first) for (f, k), (b, ids, first) in self._batches.items()]

    def add_to_batch(
        self, function_id: str, key: str, batch_id: str, internal_id: str, first_ms: int
    ) -> None:
        """Event ``internal_id`` joins the open batch ``batch_id`` (opened at ``first_ms``);
        its events are kept until the batch runs."""
        slot = (function_id, key)
        entry = self._batches.get(slot)
        if entry is None:
            entry = self._batches[slot] = (batch_id, [], first_ms)
        entry[1].append(internal_id)
        self._pins[internal_id] = self._pins.get(internal_id, 0) + 1

    def drop_batch(self, function_id: str, key: str) -> None:
        """The batch ran (its run is recorded)."""
        entry = self._batches.pop((function_id, key), None)
        if entry is not None:
            for internal_id in entry[1]:
                self._unpin(internal_id)

    def _unpin(self, internal_id: str) -> None:
        pins = self._pins
        count = pins.get(internal_id, 0) - 1
        if count > 0:
            pins[internal_id] = count
        else:
            pins.pop(internal_id, None)
            self._release_held(internal_id)

    def _active_run_of(self, internal_id: str) -> bool:
        """Whether a run that event ``internal_id`` started has not finished."""
        found = self._runs_by_event.get(internal_id)
        if found is None:
            return False
        if type(found) is list:
            return not all(run.status.is_finished for run in found)
        return not found.status.is_finished  # type: ignore[union-attr]

    def _release_held(self, internal_id: str) -> None:
        """Drop the pruned event ``internal_id`` once nothing holds it any more (no
        debounce or batch pins it, no run it started is active)."""
        if (
            internal_id in self._held_events
            and internal_id not in self._pins
            and not self._active_run_of(internal_id)
        ):
            del self._held_events[internal_id]

    def abandon(self) -> None:
        """The engine crashed (eventbus.testing): in memory everything is already "in",
        so a new engine over this store takes up the runs exactly as they are."""
        return None

    # ------------------------------------------------------------------ writing

    def add_event(self, stored: StoredEvent) -> None:
        events = self._events
        events[stored.internal_id] = stored
        self._event_order.append(stored.internal_id)
        if len(events) > self._prune_at:
            self._prune_events()

    def add_finished(self, internal_id: str, run: Run) -> None:
        """The ``inngest/function.finished`` event of the ended ``run``, minted as
        ``internal_id``: kept as the run until it is read, then built once (see
        :func:`eventbus._run.finished_event`). Nothing that reads the store can tell."""
        events = self._events
        events[internal_id] = run
        self._event_order.append(internal_id)
        if len(events) > self._prune_at:
            self._prune_events()

    def _event(self, internal_id: str, found: StoredEvent | Run) -> StoredEvent:
        """The event ``found`` under ``internal_id`` stands for (built on first read)."""
        if type(found) is Run:
            found = self._events[internal_id] = finished_event(found, internal_id)
        return found  # type: ignore[return-value]

    def _prune_events(self) -> None:
        events = self._events
        order = self._event_order
        held = self._held_events
        pins = self._pins
        by_events = self._runs_by_event
        while len(events) > self.retention:
            internal_id = order.popleft()
            stored = events.pop(internal_id)
            # Kept aside while a debounce or batch pins it or a run of it is active
            # (most events started one run, which has finished: checked inline).
            found = by_events.get(internal_id)
            if internal_id in pins or (
                found is not None
                and (
                    not found.status.is_finished
                    if type(found) is Run
                    else self._active_run_of(internal_id)
                )
            ):
                held[internal_id] = self._event(internal_id, stored)

    def add_run(self, run: Run) -> None:
        self._runs[run.run_id] = run
        self._run_order.append(run.run_id)
        events = run._events  # run.events, without the property's call
        for event in events if type(events) is tuple else (events,):
            key = event.internal_id  # type: ignore[union-attr]
            by_event = self._runs_by_event.get(key)
            if by_event is None:
                self._runs_by_event[key] = run
            elif isinstance(by_event, list):
                by_event.append(run)
            else:
                self._runs_by_event[key] = [by_event, run]

    def run_ended(self, run: Run) -> None:
        """``run`` has finished: its events may be pruned now, and so may it."""
        if self._held_events:  # events pruned while this run was active go now
            for event in run.events:
                self._release_held(event.internal_id)
        if self._held_runs and self._held_runs.pop(run.run_id, None) is not None:
            # It was moved aside while active; it is now the most recently finished run.
            self._runs[run.run_id] = run
            self._run_order.append(run.run_id)
            self._runs_reordered = True
        self._finished_runs += 1
        if self._finished_runs > self._prune_at:
            self._prune_runs()

    def _prune_runs(self) -> None:
        runs = self._runs
        order = self._run_order
        while self._finished_runs > self.retention:
            run_id = order.popleft()
            run = runs.pop(run_id)
            if not run.status.is_finished:
                self._held_runs[run_id] = run
                continue
            self._finished_runs -= 1
            by_events = self._runs_by_event
            for event in run.events:
                by_event = by_events.get(event.internal_id)
                if by_event is run:
                    del by_events[event.internal_id]
                elif isinstance(by_event, list):
                    by_event.remove(run)
                    if not by_event:
                        del by_events[event.internal_id]

    # ------------------------------------------------------------------ reading

    def get_event(self, internal_id: str) -> StoredEvent | None:
        found = self._events.get(internal_id)
        if found is None:
            return self._held_events.get(internal_id)
        return self._event(internal_id, found)

    def events(self, name: str | None = None) -> list[StoredEvent]:
        events: list[StoredEvent] = []
        unread = []
        for internal_id, found in self._events.items():
            if type(found) is Run:
                unread.append((len(events), internal_id, found))
            events.append(found)  # type: ignore[arg-type]
        for at, internal_id, run in unread:  # built after the walk: it assigns to _events
            events[at] = self._event(internal_id, run)
        if self._held_events:
            # Ids from one generator sort in arrival order.
            events = sorted([*self._held_events.values(), *events], key=_internal_id)
        if name is None:
            return events
        return [event for event in events if event.name == name]

    def get_run(self, run_id: str) -> Run | None:
        found = self._runs.get(run_id)
        if found is None:
            found = self._held_runs.get(run_id)
        return found

    def runs(
        self,
        function_id: str | None = None,
        event_id: str | None = None,
        status: RunStatus | None = None,
    ) -> list[Run]:
        source: list[Run]
        if event_id is not None:
            by_event = self._runs_by_event.get(event_id)
            if by_event is None:
                source = []
            elif isinstance(by_event, list):
                source = list(by_event)
            else:
                source = [by_event]
        else:
            source = list(self._runs.values())
            if self._held_runs or self._runs_reordered:
                source = sorted([*self._held_runs.values(), *source], key=_run_id)
        return [
            run
            for run in source
            if (function_id is None or run.function.id == function_id)
            and (status is None or run.status is status)
        ]

    def unfinished_runs(self) -> list[Run]:
        """Runs not yet COMPLETED, FAILED or CANCELLED, oldest first."""
        runs = [run for run in self._runs.values() if not run.status.is_finished]
        runs.extend(run for run in self._held_runs.values() if not run.status.is_finished)
        runs.sort(key=_run_id)
        return runs

    def __repr__(self) -> str:
        return f"<MemoryStore events={len(self._events)} runs={len(self._runs)}>"
