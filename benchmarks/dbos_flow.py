"""DBOS Transact running the two-step workflow of ``test_durable.py``, on SQLite.

Run as a child process (DBOS keeps process-wide state and threads): ``python
benchmarks/dbos_flow.py MODE WORKFLOWS PATH JOURNAL`` prints the seconds the workflows
took, as JSON. ``MODE`` is ``sequential`` (each workflow called and finished before the
next, DBOS's direct call) or ``started`` (every workflow started with
``DBOS.start_workflow``, then every result awaited). ``JOURNAL`` is ``default`` (DBOS's
own SQLite settings: a rollback journal, ``synchronous=FULL``) or ``wal`` (WAL with
``synchronous=NORMAL``, eventbus's default, so both survive a killed process alike).

The synchronous API is used: on this machine it is faster than DBOS's async one.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from typing import Any


def main(mode: str, workflows: int, path: str, journal: str) -> float:
    import sqlalchemy
    from dbos import DBOS

    if journal == "wal":
        # WAL is a property of the file; synchronous is set on every connection.
        sqlite3.connect(path).execute("PRAGMA journal_mode=WAL").close()

        @sqlalchemy.event.listens_for(sqlalchemy.engine.Engine, "connect")
        def _normal(dbapi_conn: Any, record: Any) -> None:
            dbapi_conn.execute("PRAGMA synchronous=NORMAL")

    DBOS(config={"name": "bench", "system_database_url": f"sqlite:///{path}", "log_level": "ERROR"})

    @DBOS.step()
    def one(n: int) -> int:
        return n + 1

    @DBOS.step()
    def two(n: int) -> int:
        return n * 2

    @DBOS.workflow()
    def flow(n: int) -> int:
        return two(one(n))

    DBOS.launch()
    try:
        flow(-1)  # warm up: the first workflow creates what DBOS caches
        start = time.perf_counter()
        if mode == "sequential":
            for n in range(workflows):
                flow(n)
        else:
            handles = [DBOS.start_workflow(flow, n) for n in range(workflows)]
            for handle in handles:
                handle.get_result()
        return time.perf_counter() - start
    finally:
        DBOS.destroy()


if __name__ == "__main__":
    mode, count, path, journal = sys.argv[1:5]
    print(json.dumps({"seconds": main(mode, int(count), path, journal)}))
