"""Command line: ``python -m eventbus demo``."""

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
    serve.add_argument("--max-body-bytes", type=int, default=512 * 1024)
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    from ._demo import run_demo

    anyio.run(run_demo, backend=args.backend)
    return 0


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


def _serve(args: argparse.Namespace) -> int:  # pragma: no cover - runs a server until stopped
    import uvicorn

    from .server import create_app

    client = load_client(args.target)
    app = create_app(client, event_keys=args.event_key, max_body_bytes=args.max_body_bytes)
    uvicorn.run(app, host=args.host, port=args.port, lifespan="on", log_level="info")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
