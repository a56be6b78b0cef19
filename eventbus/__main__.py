"""Command line: ``python -m eventbus demo | serve | bench | runs | events``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import anyio


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eventbus", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the storefront example in-process")
    demo.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    serve = commands.add_parser(
        "serve", help="serve an app's engine over the Inngest Event API (needs eventbus[server])"
    )
    serve.add_argument("target", help="where the client is, as module.path:attribute")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8288)
    serve.add_argument(
        "--event-key",
        action="append",
        default=None,
        help="accept only this event key (repeatable); default: any key, like the dev server",
    )
    serve.add_argument(
        "--signing-key",
        default=None,
        help="require `Authorization: Bearer <signing key>` on /v1 (as Inngest's REST API)",
    )
    serve.add_argument("--max-body-bytes", type=int, default=512 * 1024)
    serve.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        help="seconds a request's head may take to arrive before the connection is closed",
    )
    serve.add_argument(
        "--body-timeout",
        type=float,
        default=30.0,
        help="seconds a request's body may take to arrive (408 after)",
    )
    serve.add_argument(
        "--timeout-keep-alive", type=float, default=5.0, help="idle keep-alive seconds"
    )
    serve.add_argument(
        "--limit-concurrency",
        type=int,
        default=1000,
        help="most connections at once; beyond it new requests get 503 (0: no limit)",
    )
    serve.add_argument(
        "--shutdown-timeout",
        type=float,
        default=None,
        help="seconds the first SIGINT/SIGTERM lets requests and runs finish "
        "(default: the client's shutdown_timeout)",
    )
    serve.add_argument(
        "--db",
        default=None,
        help="keep events and runs in this SQLite file (eventbus.stores.SqliteStore): a "
        "restarted server takes up every unfinished run",
    )
    bench = commands.add_parser(
        "bench",
        help="compare fan-out throughput and latency with pyee, blinker and an anyio task "
        "group on this machine (needs eventbus[bench])",
    )
    bench.add_argument("--backend", choices=("asyncio", "trio", "both"), default="both")
    bench.add_argument(
        "--handlers",
        type=_widths,
        default=(1, 10, 100),
        help="handlers per event, comma-separated (default 1,10,100)",
    )
    bench.add_argument("--rounds", type=_positive, default=5, help="interleaved rounds (median)")
    bench.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="events per round, as a fraction of 10,000 / 2,000 / 200 (1, 10, 100 handlers)",
    )
    bench.add_argument(
        "--latency-samples",
        type=int,
        default=2000,
        help="sends one at a time for the latency percentiles (0: skip them)",
    )
    bench.add_argument("--json", action="store_true", help="print the results as JSON")
    bench.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar on stderr (default: when it is a terminal)",
    )
    runs = commands.add_parser("runs", help="print the recent runs of a durable store (--db)")
    runs.add_argument("--db", required=True, help="the SQLite file (eventbus.stores.SqliteStore)")
    runs.add_argument("--limit", type=_positive, default=20, help="how many, newest first")
    runs.add_argument("--function", default=None, help="only this function's (its id)")
    runs.add_argument("--status", default=None, help="only runs in this status, like Failed")
    runs.add_argument("--json", action="store_true", help="print them as JSON, one per line")
    events = commands.add_parser("events", help="print the recent events of a durable store")
    events.add_argument("--db", required=True, help="the SQLite file (eventbus.stores.SqliteStore)")
    events.add_argument("--limit", type=_positive, default=20, help="how many, newest first")
    events.add_argument("--name", default=None, help="only events of this name")
    events.add_argument("--json", action="store_true", help="print them as JSON, one per line")
    args = parser.parse_args(argv)
    if args.command in ("runs", "events"):
        return _inspect(args)
    if args.command == "serve":
        return _serve(args)
    if args.command == "bench":
        from ._bench import main as bench_main

        return bench_main(args)
    from ._demo import run_demo

    anyio.run(run_demo, backend=args.backend)
    return 0


def _inspect(args: argparse.Namespace) -> int:
    """``runs`` / ``events``: a table (or JSON lines) on stdout; a clear message and exit
    status 1 when the file cannot be read."""
    import json

    from . import EventbusError
    from ._inspect import EVENT_COLUMNS, RUN_COLUMNS, read_events, read_runs, table

    try:
        if args.command == "runs":
            rows = read_runs(
                args.db, limit=args.limit, function_id=args.function, status=args.status
            )
            columns = RUN_COLUMNS
        else:
            rows = read_events(args.db, limit=args.limit, name=args.name)
            columns = EVENT_COLUMNS
    except EventbusError as exc:
        print(f"python -m eventbus {args.command}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
    elif rows:
        print(table(rows, columns))
    else:
        print(f"no {args.command} in {args.db}")
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _widths(text: str) -> tuple[int, ...]:
    try:
        return tuple(_positive(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of handler counts, like 1,10,100"
        ) from None


def load_client(target: str) -> Any:
    """The object at ``module.path:attribute``, which must be an eventbus.Inngest."""
    import importlib

    from . import Inngest, UsageError

    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise UsageError(f"{target!r} should look like myapp.module:client")
    module = importlib.import_module(module_name)
    client = getattr(module, attribute, None)
    if not isinstance(client, Inngest):
        raise UsageError(f"{target!r} is {client!r}, not an eventbus.Inngest client")
    return client


def _serve(args: argparse.Namespace) -> int:  # pragma: no cover - tested in a child process
    from .server._serve import make_server

    client = load_client(args.target)
    if args.db is not None:
        from .stores import SqliteStore

        client.store = SqliteStore(args.db)
    server = make_server(
        client,
        host=args.host,
        port=args.port,
        event_keys=args.event_key,
        signing_key=args.signing_key,
        max_body_bytes=args.max_body_bytes,
        body_timeout=args.body_timeout,
        header_timeout=args.header_timeout,
        timeout_keep_alive=args.timeout_keep_alive,
        limit_concurrency=args.limit_concurrency or None,
        shutdown_timeout=args.shutdown_timeout,
    )
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"eventbus: the dev UI is at http://{host}:{args.port}/ui", file=sys.stderr)
    try:
        server.run()  # after a graceful stop uvicorn re-raises the signal it caught
    except KeyboardInterrupt:
        return 130  # the shell's status for SIGINT, without a traceback
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
