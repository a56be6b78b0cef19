"""``python -m eventbus runs --db FILE`` and ``events --db FILE``: the recent runs and
events of a durable store, as a table or as JSON, read without starting an engine.

The file is opened read-only; while another process has it open (a running server holds
it exclusively), reading it is refused with a message that says so.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._clock import ms_to_datetime
from ._errors import UsageError
from ._run import RunStatus
from .stores._sqlite import _MARKER, SCHEMA_VERSION, StoreError

#: Run statuses as the store writes them, for --status.
RUN_STATUSES = tuple(status.value for status in RunStatus)


def _iso(ms: int | None) -> str | None:
    return None if ms is None else ms_to_datetime(ms).isoformat(timespec="milliseconds")


def _open(path: str | Path) -> sqlite3.Connection:
    """The eventbus database at ``path``, read-only, checked to be one."""
    file = Path(path)
    if not file.is_file():
        raise StoreError(f"no eventbus database at {str(file)!r} (the file does not exist)")
    try:
        conn = sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True, timeout=0)
    except sqlite3.Error as exc:  # pragma: no cover - is_file() passed; a race or a device
        raise StoreError(f"cannot open {str(file)!r}: {exc}") from None
    try:
        tables = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        meta = (
            dict(conn.execute("SELECT key, value FROM meta").fetchall()) if "meta" in tables else {}
        )
    except sqlite3.OperationalError as exc:
        conn.close()
        if "locked" in str(exc):
            raise StoreError(
                f"{str(file)!r} is in use by another process (a running engine holds it "
                "exclusively); stop it first, or ask the running server over HTTP "
                "(GET /v1/events)"
            ) from None
        raise StoreError(f"cannot read {str(file)!r}: {exc}") from None
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreError(f"{str(file)!r} is not a SQLite database ({exc})") from None
    if meta.get("marker") != _MARKER:
        conn.close()
        raise StoreError(f"{str(file)!r} is not an eventbus database (it has no eventbus marker)")
    version = int(meta.get("schema_version", "0"))
    if version > SCHEMA_VERSION:
        conn.close()
        raise StoreError(
            f"{str(file)!r} was written by a newer eventbus (schema version {version}; this "
            f"one reads up to {SCHEMA_VERSION}); upgrade eventbus to read it"
        )
    return conn


def read_runs(
    path: str | Path,
    *,
    limit: int = 20,
    function_id: str | None = None,
    status: str | None = None,
) -> list[dict[str, Any]]:
    """The newest ``limit`` runs in the file (newest first), optionally of one function
    (its full id, or its id within the app) and in one status."""
    if limit < 1:
        raise UsageError(f"limit must be at least 1, got {limit}")
    if status is not None and status.capitalize() not in RUN_STATUSES:
        raise UsageError(f"status must be one of {', '.join(RUN_STATUSES)}; got {status!r}")
    conn = _open(path)
    try:
        found: list[dict[str, Any]] = []
        steps: dict[str, int] = {}
        for run_id, body in conn.execute("SELECT run_id, body FROM runs ORDER BY seq DESC"):
            raw = json.loads(body)
            function = raw["function"]
            if function_id is not None and not (
                function == function_id or function.endswith(f"-{function_id}")
            ):
                continue
            if status is not None and raw["status"] != status.capitalize():
                continue
            started, ended = raw["started"], raw["ended"]
            found.append(
                {
                    "run_id": run_id,
                    "function_id": function,
                    "status": raw["status"],
                    "attempts": raw["attempts"],
                    "event_ids": raw["events"],
                    "started_at": _iso(started),
                    "ended_at": _iso(ended),
                    "duration_ms": None if started is None or ended is None else ended - started,
                    "output": raw["output"],
                    "error": raw["error"],
                }
            )
            if len(found) == limit:
                break
        if found:
            marks = ", ".join("?" * len(found))
            steps = dict(
                conn.execute(
                    f"SELECT run_id, count(*) FROM steps WHERE run_id IN ({marks}) GROUP BY run_id",
                    [run["run_id"] for run in found],
                ).fetchall()
            )
        for run in found:
            run["steps"] = steps.get(run["run_id"], 0)
        return found
    finally:
        conn.close()


def read_events(
    path: str | Path, *, limit: int = 20, name: str | None = None
) -> list[dict[str, Any]]:
    """The newest ``limit`` events in the file (newest first), optionally of one name."""
    if limit < 1:
        raise UsageError(f"limit must be at least 1, got {limit}")
    conn = _open(path)
    try:
        found: list[dict[str, Any]] = []
        for internal_id, body in conn.execute(
            "SELECT internal_id, body FROM events ORDER BY seq DESC"
        ):
            event_name, data, user_id, ts, v, user, received, deduplicated = json.loads(body)
            if name is not None and event_name != name:
                continue
            found.append(
                {
                    "internal_id": internal_id,
                    "name": event_name,
                    "id": user_id,
                    "ts": ts,
                    "v": v,
                    "data": data,
                    "user": user,
                    "received_at": _iso(received),
                    "deduplicated": deduplicated,
                }
            )
            if len(found) == limit:
                break
        return found
    finally:
        conn.close()


def _cell(value: Any, width: int = 48) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 3] + "..."


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """``rows`` as a plain-text table of ``columns`` (long values cut)."""
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [max([len(c), *(len(line[i]) for line in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells
    ]
    return "\n".join(lines)


RUN_COLUMNS: tuple[str, ...] = (
    "run_id",
    "function_id",
    "status",
    "attempts",
    "steps",
    "started_at",
    "duration_ms",
)
EVENT_COLUMNS: tuple[str, ...] = ("internal_id", "name", "id", "received_at", "data")
