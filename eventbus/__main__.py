"""Command line: ``python -m eventbus demo``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import anyio


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eventbus", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the storefront example in-process")
    demo.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    args = parser.parse_args(argv)
    from ._demo import run_demo

    anyio.run(run_demo, backend=args.backend)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
