"""``SqliteStore``: the engine's records in a SQLite file, so a restart loses nothing.

The working set stays in memory (a :class:`MemoryStore` underneath: the engine reads at
memory speed); every change is also written to the file, by one writer, in the
background, off the event loop (``sqlite3`` in a thread of its own). Writes are grouped:
whatever the engine changed while the previous transaction was being written goes into
the next one (group commit). The engine waits for the commit where a promise depends
on it: ``send`` returns ids only once its events and the runs they start are
committed, and a step's result is committed before the handler goes on.

On start, the engine takes up every unfinished run from the file (see the engine's
``_resume_recovered``). The file is in WAL mode with ``synchronous=NORMAL``: a commit
survives the process being killed; a power cut may lose the last transactions (set
``synchronous="FULL"`` to survive that too, at the price of an fsync per commit). One
process at a time: a second one opening the file gets :class:`StoreError`.

Layout (schema version 5; older files are migrated as they are opened): ``meta`` (the
marker and the schema version), ``events`` (one JSON row per stored event, in arrival
order), ``dedup`` (the ids claimed within the 24 h window), ``runs`` (one JSON row per
run: its state), ``steps`` (one JSON row per journal record), ``limits`` (the
rate-limit and throttle state of each function's keys), ``debounces`` (pending ones)
and ``batches`` (open ones: their events' ids, in order).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.abc

from .._dedup import DEDUP_WINDOW_MS, DedupIndex
from .._errors import EventbusError
from .._event import make_stored
from .._run import Run, RunStatus, StepRecord, StepStatus, finished_event
from ._memory import MemoryStore
from ._thread import WorkerThread

if TYPE_CHECKING:
    from .._event import StoredEvent
    from .._function import Registry

_MARKER = "eventbus"
#: The tables as schema version 1 made them; every file starts from this, then migrates.
_SCHEMA_V1 = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS events ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, internal_id TEXT NOT NULL UNIQUE, body TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS dedup (key TEXT PRIMARY KEY, first_ms INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS runs ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL UNIQUE,"
    " finished INTEGER NOT NULL, body TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS steps ("
    " run_id TEXT NOT NULL, step_id TEXT NOT NULL, pos INTEGER NOT NULL, body TEXT NOT NULL,"
    " PRIMARY KEY (run_id, step_id))",
    "CREATE INDEX IF NOT EXISTS runs_finished ON runs (finished, seq)",
)
#: _MIGRATIONS[n - 1] takes a file from schema version n to n + 1, in the transaction
#: that opens it. Never edit one that has shipped: add the next.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 2: pruning the dedup window deletes by first_ms; without an index that was a scan
    # of every claim of the last day, once every PRUNE_EVERY commits.
    ("CREATE INDEX IF NOT EXISTS dedup_first_ms ON dedup (first_ms)",),
    # 3: rate limits and idempotency keys (a GCRA time per function and key).
    (
        "CREATE TABLE IF NOT EXISTS limits (function_id TEXT NOT NULL, key TEXT NOT NULL,"
        " tat INTEGER NOT NULL, PRIMARY KEY (function_id, key))",
    ),
    # 4: pending debounces (the event a debounce holds, and when it fires).
    (
        "CREATE TABLE IF NOT EXISTS debounces (function_id TEXT NOT NULL, key TEXT NOT NULL,"
        " event_id TEXT NOT NULL, first_ms INTEGER NOT NULL, due_ms INTEGER NOT NULL,"
        " PRIMARY KEY (function_id, key))",
    ),
    # 5: open batches (their id, the ids of their events as a JSON list, and since when).
    (
        "CREATE TABLE IF NOT EXISTS batches (function_id TEXT NOT NULL, key TEXT NOT NULL,"
        " batch_id TEXT NOT NULL, event_ids TEXT NOT NULL, first_ms INTEGER NOT NULL,"
        " PRIMARY KEY (function_id, key))",
    ),
)
#: The schema this eventbus writes (files of older versions are migrated on open).
SCHEMA_VERSION = 1 + len(_MIGRATIONS)
_Batch = tuple[
    list[tuple[str, str]],
    list[tuple[str, int, str]],
    list[tuple[str, str, int, str]],
    list[tuple[str, int]],
    list[tuple[str, str, int]],
    list[tuple[str, str, tuple[str, int, int] | None]],
    list[tuple[str, str, tuple[str, str, int] | None]],
]
#: Prune the file's history every this many commits.
PRUNE_EVERY = 64
#: How long (seconds) changes nobody waits for may gather before they are written.
LINGER = 0.01


class StoreError(EventbusError):
    """The store's file cannot be used (in use, corrupt, foreign, or from a newer
    eventbus); the message names the file and what to do."""


class _ClaimingIndex(DedupIndex):
    """A dedup index that remembers the claims to write."""

    __slots__ = ("claims",)

    def __init__(self) -> None:
        super().__init__()
        self.claims: list[tuple[str, int]] = []

    def seen(self, key: str, now_ms: int) -> bool:
        if super().seen(key, now_ms):
            return True
        self.claims.append((key, now_ms))
        return False


def _event_body(stored: StoredEvent) -> str:
    return json.dumps(
        [
            stored.name,
            stored.data,
            stored.id,
            stored.ts,
            stored.v,
            stored.user,
            stored.received_at_ms,
            stored.deduplicated,
        ],
        separators=(",", ":"),
        ensure_ascii=False,
    )


def _event_from(internal_id: str, body: str) -> StoredEvent:
    name, data, user_id, ts, v, user, received, deduplicated = json.loads(body)
    return make_stored(name, data, user_id, ts, v, user, internal_id, received, deduplicated)


def _run_body(run: Run) -> str:
    body: dict[str, object] = {
        "function": run.function.id,
        "events": [e.internal_id for e in run.events],
        "status": run.status.value,
        "attempts": run.attempts,
        "next_attempt": run.next_attempt,
        "output": run.output,
        "error": run.error,
        "started": run._started_ms,
        "ended": run._ended_ms,
        "body_retry": run._body_retry,
        "retrying": None if run._retrying is None else sorted(run._retrying),
        "done_steps": run._done_steps,
        "due": run._due_ms,
    }
    if run.batch_id is not None:
        body["batch"] = run.batch_id
    if run.rerun_of is not None:
        body["rerun_of"] = run.rerun_of
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def _write_keyed(
    conn: sqlite3.Connection,
    table: str,
    columns: tuple[str, ...],
    rows: Sequence[tuple[str, str, tuple[object, ...] | None]],
) -> None:
    """Write the flow-control state of (function id, key) pairs of ``table``: each
    row's state, or None to delete it (the state ended)."""
    names = ", ".join(columns)
    marks = ", ".join("?" * len(columns))
    for function_id, key, state in rows:
        if state is None:
            conn.execute(
                f"DELETE FROM {table} WHERE function_id = ? AND key = ?", (function_id, key)
            )
        else:
            conn.execute(
                f"INSERT OR REPLACE INTO {table} (function_id, key, {names}) "
                f"VALUES (?, ?, {marks})",
                (function_id, key, *state),
            )


def _step_body(record: StepRecord) -> str:
    return json.dumps(
        {
            "kind": record.kind,
            "status": record.status.value,
            "attempts": record.attempts,
            "output": record.output,
            "error": record.error,
            "started": record._started_ms,
            "ended": record._ended_ms,
            "wake": record.wake_ms,
            "wait_for": record.wait_for,
            "input": record.input,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )


def _step_from(step_id: str, body: str) -> StepRecord:
    raw = json.loads(body)
    record = StepRecord(step_id, raw["kind"], raw["started"])
    record.status = StepStatus(raw["status"])
    record.attempts = raw["attempts"]
    record.output = raw["output"]
    record.error = raw["error"]
    record._ended_ms = raw["ended"]
    record.wake_ms = raw["wake"]
    wait_for = raw.get("wait_for")
    record.wait_for = None if wait_for is None else (wait_for[0], wait_for[1])
    record._pos = raw.get("pos", 0)
    record.input = raw.get("input")
    return record


class SqliteStore(MemoryStore):
    """The records in the SQLite file at ``path`` (created if missing), durably.

    ``synchronous`` is SQLite's setting: ``"NORMAL"`` (the default) survives the process
    dying; ``"FULL"`` survives the machine losing power too.
    """

    durable = True

    def __init__(self, path: str | os.PathLike[str], *, synchronous: str = "NORMAL") -> None:
        super().__init__()
        if synchronous not in ("NORMAL", "FULL"):
            raise StoreError(f"synchronous must be 'NORMAL' or 'FULL', got {synchronous!r}")
        self.path = Path(path)
        self.synchronous = synchronous
        self.dedup: _ClaimingIndex = _ClaimingIndex()
        self._conn: sqlite3.Connection | None = None
        self._thread: WorkerThread | None = None
        self._new_events: list[StoredEvent] = []
        self._dirty_runs: dict[str, Run] = {}
        self._dirty_steps: dict[tuple[str, str], tuple[Run, StepRecord]] = {}
        self._dirty_limits: dict[tuple[str, str], int] = {}
        self._dirty_debounces: dict[tuple[str, str], tuple[str, int, int] | None] = {}
        self._dirty_batches: set[tuple[str, str]] = set()
        self._now_ms = 0  # the latest time the engine gave (to prune run-out limits)
        self._requested = 0  # changes made so far (a generation number)
        self._committed = 0  # changes written so far
        self._changed: anyio.Event | None = None
        self._urgent: anyio.Event | None = None
        self._done: anyio.Event | None = None
        #: The last write that failed: (first, last) generation it held, and the error.
        self._failure: tuple[int, int, BaseException] | None = None
        self._commits = 0
        self._writer_scope: anyio.CancelScope | None = None
        self._abandoned = False
        #: The schema version the file had when it was opened, if it was migrated.
        self.migrated_from: int | None = None

    def __repr__(self) -> str:
        return f"<SqliteStore {str(self.path)!r}>"

    # ------------------------------------------------------------------ opening

    def _connect(self) -> sqlite3.Connection:
        path = self.path
        try:
            conn = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the eventbus database {str(path)!r}: {exc}") from None
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            # Held until close: a second process gets "database is locked" at once.
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")
            conn.execute("BEGIN EXCLUSIVE")
            try:
                tables = {
                    row[0]
                    for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
                }
                if tables and "meta" not in tables:
                    raise StoreError(
                        f"{str(path)!r} is a SQLite database of something else (it has "
                        f"tables {sorted(tables)} and no eventbus marker); give SqliteStore "
                        "a path of its own"
                    )
                if not tables:
                    for statement in _SCHEMA_V1:
                        conn.execute(statement)
                    conn.executemany(
                        "INSERT INTO meta (key, value) VALUES (?, ?)",
                        [("marker", _MARKER), ("schema_version", "1")],
                    )
                meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
                if meta.get("marker") != _MARKER:
                    raise StoreError(
                        f"{str(path)!r} is not an eventbus database (its meta table says "
                        f"{meta.get('marker')!r}); give SqliteStore a path of its own"
                    )
                else:
                    version = int(meta.get("schema_version", "0"))
                    if version > SCHEMA_VERSION:
                        raise StoreError(
                            f"{str(path)!r} was written by a newer eventbus (schema version "
                            f"{version}; this one reads up to {SCHEMA_VERSION}); upgrade "
                            "eventbus to open it"
                        )
                    if version < SCHEMA_VERSION:
                        if tables:
                            self.migrated_from = version
                        for statements in _MIGRATIONS[version - 1 :]:
                            for statement in statements:
                                conn.execute(statement)
                        conn.execute(
                            "UPDATE meta SET value = ? WHERE key = 'schema_version'",
                            (str(SCHEMA_VERSION),),
                        )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            conn.close()
            if "locked" in str(exc):
                raise StoreError(
                    f"the eventbus database {str(path)!r} is in use by another process; one "
                    "process at a time may open it (stop the other, or give this one its own "
                    "file)"
                ) from None
            raise StoreError(f"cannot use {str(path)!r} as an eventbus database: {exc}") from None
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(
                f"{str(path)!r} is not a usable eventbus database ({exc}); it is corrupt or "
                "not a SQLite file: restore it from a backup, or give SqliteStore a new path"
            ) from None
        except BaseException:
            conn.close()
            raise
        return conn

    def _load(self, registry: Registry) -> tuple[list[Run], list[str]]:
        """Read the file into memory: the history within the retention, the live dedup
        claims, and every unfinished run; returns those runs and the ids of runs whose
        function is no longer registered."""
        if self._conn is None:
            self._conn = self._connect()
        conn = self._conn
        events: dict[str, StoredEvent] = {}
        for internal_id, body in conn.execute("SELECT internal_id, body FROM events ORDER BY seq"):
            events[internal_id] = _event_from(internal_id, body)
        for stored in events.values():
            MemoryStore.add_event(self, stored)
        # The file holds a day of claims at most; the index expires them as time goes on.
        for key, first_ms in conn.execute("SELECT key, first_ms FROM dedup ORDER BY first_ms"):
            DedupIndex.seen(self.dedup, key, first_ms)
        for function_id, key, tat in conn.execute("SELECT function_id, key, tat FROM limits"):
            self._limits[function_id, key] = tat
        for function_id, key, event_id, first_ms, due_ms in conn.execute(
            "SELECT function_id, key, event_id, first_ms, due_ms FROM debounces"
        ):
            if event_id in events:
                MemoryStore.set_debounce(self, function_id, key, event_id, first_ms, due_ms)
        for function_id, key, batch_id, event_ids, first_ms in conn.execute(
            "SELECT function_id, key, batch_id, event_ids, first_ms FROM batches"
        ):
            for event_id in json.loads(event_ids):
                if event_id in events:
                    MemoryStore.add_to_batch(self, function_id, key, batch_id, event_id, first_ms)
        steps: dict[str, list[StepRecord]] = {}
        for run_id, step_id, body in conn.execute(
            "SELECT run_id, step_id, body FROM steps ORDER BY run_id, pos"
        ):
            steps.setdefault(run_id, []).append(_step_from(step_id, body))
        unfinished: list[Run] = []
        orphans: list[str] = []
        for run_id, body in conn.execute("SELECT run_id, body FROM runs ORDER BY seq"):
            raw = json.loads(body)
            function = registry.functions.get(raw["function"])
            if function is None:
                if RunStatus(raw["status"]).is_finished is False:
                    orphans.append(f"{run_id} ({raw['function']})")
                continue
            run_events = tuple(events[i] for i in raw["events"] if i in events)
            if len(run_events) != len(raw["events"]):
                continue  # its events were pruned: a finished run past the retention
            run = Run(run_id, function, run_events)
            run.status = RunStatus(raw["status"])
            run.attempts = raw["attempts"]
            run.next_attempt = raw["next_attempt"]
            run.output = raw["output"]
            run.error = raw["error"]
            run._started_ms = raw["started"]
            run._ended_ms = raw["ended"]
            run._body_retry = raw["body_retry"]
            run._retrying = None if raw["retrying"] is None else set(raw["retrying"])
            run._done_steps = raw["done_steps"]
            run._due_ms = raw["due"]
            run.batch_id = raw.get("batch")
            run.rerun_of = raw.get("rerun_of")
            for record in steps.get(run_id, ()):
                run.journal[record.id] = record
            MemoryStore.add_run(self, run)
            if run.status.is_finished:
                MemoryStore.run_ended(self, run)
            else:
                unfinished.append(run)
        return unfinished, orphans

    async def open(self, registry: Registry) -> tuple[list[Run], list[str]]:
        """Open the file and return the runs to take up (see MemoryStore.open)."""
        self._thread = WorkerThread(f"eventbus-sqlite {self.path.name}")
        self._thread.start()
        try:
            with anyio.CancelScope(shield=True):
                loaded = await self._thread.call(lambda: self._load(registry))
        except BaseException:
            self._stop_thread()
            raise
        return loaded

    # ------------------------------------------------------------------ writing

    def add_event(self, stored: StoredEvent) -> None:
        super().add_event(stored)
        self._new_events.append(stored)
        self._mark()

    def add_finished(self, internal_id: str, run: Run) -> None:
        """Built now: it is written with the next commit, like any event."""
        self.add_event(finished_event(run, internal_id))

    def add_run(self, run: Run) -> None:
        super().add_run(run)
        self._dirty_runs[run.run_id] = run
        self._mark()

    def touch(self, run: Run, record: StepRecord | None = None) -> None:
        """``run`` (and ``record`` of its journal) changed: write it with the next commit."""
        self._dirty_runs[run.run_id] = run
        if record is not None:
            self._dirty_steps[run.run_id, record.id] = (run, record)
        self._mark()

    def run_ended(self, run: Run) -> None:
        super().run_ended(run)
        self.touch(run)

    def set_debounce(
        self, function_id: str, key: str, internal_id: str, first_ms: int, due_ms: int
    ) -> None:
        super().set_debounce(function_id, key, internal_id, first_ms, due_ms)
        self._dirty_debounces[function_id, key] = (internal_id, first_ms, due_ms)
        self._mark()

    def drop_debounce(self, function_id: str, key: str) -> None:
        super().drop_debounce(function_id, key)
        self._dirty_debounces[function_id, key] = None
        self._mark()

    def add_to_batch(
        self, function_id: str, key: str, batch_id: str, internal_id: str, first_ms: int
    ) -> None:
        super().add_to_batch(function_id, key, batch_id, internal_id, first_ms)
        self._dirty_batches.add((function_id, key))
        self._mark()

    def drop_batch(self, function_id: str, key: str) -> None:
        super().drop_batch(function_id, key)
        self._dirty_batches.add((function_id, key))
        self._mark()

    def set_limit_tat(self, function_id: str, key: str, tat: int, now_ms: int) -> None:
        super().set_limit_tat(function_id, key, tat, now_ms)
        self._dirty_limits[function_id, key] = tat
        self._now_ms = now_ms
        self._mark()

    def _mark(self) -> None:
        if self._abandoned:
            return
        self._requested += 1
        changed = self._changed
        if changed is not None:
            changed.set()

    async def commit(self) -> None:
        """Return once every change made before the call is in the file."""
        target = self._requested
        while self._committed < target:
            if self._abandoned:
                self._refuse_abandoned()
            if self._done is None:
                self._done = anyio.Event()
            if self._urgent is not None:
                self._urgent.set()  # the writer stops lingering: someone waits
            await self._done.wait()
        failure = self._failure
        if failure is not None and failure[0] < target <= failure[1]:
            exc = failure[2]
            raise StoreError(
                f"writing to {str(self.path)!r} failed ({exc}): what was sent or done just "
                "now is not in the file"
            ) from exc

    def _refuse_abandoned(self) -> None:
        raise StoreError(
            f"the engine stopped abruptly (a simulated crash) before this was written to "
            f"{str(self.path)!r}: it is not in the file"
        )

    def abandon(self) -> None:
        """The engine crashed (eventbus.testing): write nothing more. What is not in the
        file yet is lost, as if the process had died; a write under way still lands."""
        self._abandoned = True
        if self._writer_scope is not None:
            self._writer_scope.cancel()
            self._writer_scope = None
        self._drop_pending()
        done, self._done = self._done, None
        if done is not None:
            done.set()  # whoever waits for a commit is told it did not happen

    def start(self, tg: anyio.abc.TaskGroup) -> None:
        """Start the writer in the engine's task group."""
        self._writer_scope = anyio.CancelScope()
        tg.start_soon(self._writer, self._writer_scope)

    async def _writer(self, scope: anyio.CancelScope) -> None:
        with scope:
            while True:
                if self._committed >= self._requested:
                    self._changed = anyio.Event()
                    await self._changed.wait()
                if self._done is None:
                    # Nobody waits for these changes (a step started, a run ended):
                    # let more gather, until someone commits or LINGER passes.
                    self._urgent = anyio.Event()
                    with anyio.move_on_after(LINGER):
                        await self._urgent.wait()
                    self._urgent = None
                await self._flush()

    async def _flush(self) -> None:
        start, target = self._committed, self._requested
        batch = self._take()
        try:
            # Shielded: a batch taken is a batch written, even if the engine is stopping.
            with anyio.CancelScope(shield=True):
                assert self._thread is not None
                await self._thread.call(lambda: self._write(batch))
        except Exception as exc:  # the disk is full, say: every waiter on it is told
            self._failure = (start, target, exc)
        self._committed = target
        done, self._done = self._done, None
        if done is not None:
            done.set()

    def _take(self) -> _Batch:
        """What changed, serialized here, on the event loop, where it changes."""
        events = [(e.internal_id, _event_body(e)) for e in self._new_events]
        self._new_events = []
        runs = [
            (run_id, int(run.status.is_finished), _run_body(run))
            for run_id, run in self._dirty_runs.items()
        ]
        self._dirty_runs = {}
        steps = [
            (run_id, step_id, record._pos, _step_body(record))
            for (run_id, step_id), (_, record) in self._dirty_steps.items()
        ]
        self._dirty_steps = {}
        claims = self.dedup.claims
        self.dedup.claims = []
        limits = [(f, k, tat) for (f, k), tat in self._dirty_limits.items()]
        self._dirty_limits = {}
        debounces = [(f, k, state) for (f, k), state in self._dirty_debounces.items()]
        self._dirty_debounces = {}
        batches: list[tuple[str, str, tuple[str, str, int] | None]] = []
        for function_id, key in self._dirty_batches:
            entry = self._batches.get((function_id, key))
            state = None
            if entry is not None:
                state = (entry[0], json.dumps(entry[1], separators=(",", ":")), entry[2])
            batches.append((function_id, key, state))
        self._dirty_batches = set()
        return events, runs, steps, claims, limits, debounces, batches

    def _write(self, batch: _Batch) -> None:
        events, runs, steps, claims, limits, debounces, batches = batch
        conn = self._conn
        assert conn is not None, "writes run before the close, in the store's thread"
        conn.execute("BEGIN")
        try:
            if events:
                conn.executemany(
                    "INSERT OR IGNORE INTO events (internal_id, body) VALUES (?, ?)", events
                )
            if runs:
                conn.executemany(
                    "INSERT INTO runs (run_id, finished, body) VALUES (?, ?, ?) "
                    "ON CONFLICT (run_id) DO UPDATE SET finished = excluded.finished, "
                    "body = excluded.body",
                    runs,
                )
            if steps:
                conn.executemany(
                    "INSERT INTO steps (run_id, step_id, pos, body) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (run_id, step_id) DO UPDATE SET body = excluded.body",
                    steps,
                )
            if claims:
                conn.executemany(
                    "INSERT OR REPLACE INTO dedup (key, first_ms) VALUES (?, ?)", claims
                )
            if limits:
                conn.executemany(
                    "INSERT OR REPLACE INTO limits (function_id, key, tat) VALUES (?, ?, ?)",
                    limits,
                )
            _write_keyed(conn, "debounces", ("event_id", "first_ms", "due_ms"), debounces)
            _write_keyed(conn, "batches", ("batch_id", "event_ids", "first_ms"), batches)
            self._commits += 1
            if self._commits % PRUNE_EVERY == 0:
                self._prune(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _prune(self, conn: sqlite3.Connection) -> None:
        """Bound the file as the memory is bounded: the newest ``retention`` finished
        runs (with their steps) and events, but never an event an unfinished run needs;
        dedup claims past the 24 h window."""
        keep = self.retention
        conn.execute(
            "DELETE FROM steps WHERE run_id IN (SELECT run_id FROM runs WHERE finished = 1 "
            "AND seq < (SELECT seq FROM runs WHERE finished = 1 ORDER BY seq DESC "
            "LIMIT 1 OFFSET ?))",
            (keep,),
        )
        conn.execute(
            "DELETE FROM runs WHERE finished = 1 AND seq < (SELECT seq FROM runs "
            "WHERE finished = 1 ORDER BY seq DESC LIMIT 1 OFFSET ?)",
            (keep,),
        )
        conn.execute(
            "DELETE FROM events WHERE seq < (SELECT seq FROM events ORDER BY seq DESC "
            "LIMIT 1 OFFSET ?) AND internal_id NOT IN (SELECT value FROM runs, "
            "json_each(runs.body, '$.events') WHERE runs.finished = 0) "
            "AND internal_id NOT IN (SELECT event_id FROM debounces) "
            "AND internal_id NOT IN (SELECT value FROM batches, json_each(batches.event_ids))",
            (keep,),
        )
        conn.execute("DELETE FROM limits WHERE tat <= ?", (self._now_ms * 1_000_000,))
        newest = conn.execute("SELECT max(first_ms) FROM dedup").fetchone()[0]
        if newest is not None:
            conn.execute("DELETE FROM dedup WHERE first_ms <= ?", (newest - DEDUP_WINDOW_MS,))

    async def close(self) -> None:
        """Write what is left and close the file (the engine calls it as it stops)."""
        if self._conn is None:
            return
        if self._writer_scope is not None:
            self._writer_scope.cancel()  # a write under way finishes first (shielded)
            self._writer_scope = None
        with anyio.CancelScope(shield=True):
            if self._committed < self._requested and not self._abandoned:
                await self._flush()
            conn = self._conn
            assert self._thread is not None
            # After every write already given to the thread (one under way at a crash).
            await self._thread.call(conn.close)
            self._conn = None
            self._stop_thread()
        self.__init_memory()

    def _stop_thread(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.stop()

    def _drop_pending(self) -> None:
        """Forget the changes not yet written (a crash, or a fresh start)."""
        self._new_events = []
        self._dirty_runs = {}
        self._dirty_steps = {}
        self._dirty_limits = {}
        self._dirty_debounces = {}
        self._dirty_batches = set()
        self.dedup.claims = []

    def __init_memory(self) -> None:
        """Forget the working set: the next engine reads the file again."""
        MemoryStore.__init__(self)
        self.dedup = _ClaimingIndex()
        self._drop_pending()
        self._requested = self._committed = 0
        self._changed = None
        self._urgent = None
        self._done = None
        self._failure = None
        self._abandoned = False
