"""Turn a pytest-benchmark JSON file into the tables of docs/benchmarks.md.

Usage: python benchmarks/report.py [.benchmarks/latest.json]
"""

from __future__ import annotations

import json
import platform
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

PEERS = ["anyio-taskgroup", "blinker", "pyee", "bubus"]


def load(path: Path) -> list[dict[str, Any]]:
    return list(json.loads(path.read_text())["benchmarks"])


def fanout_table(benches: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| backend | handlers/event | eventbus calls/s "
        "| vs task group | vs blinker | vs pyee | vs bubus |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = []
    for bench in benches:
        info = bench["extra_info"]
        if "peer_calls_per_s" not in info:
            continue
        ours = info["handlers"] * info["events"] / bench["stats"]["median"]
        cells = []
        for peer in PEERS:
            theirs = info["peer_calls_per_s"].get(peer)
            cells.append(f"{ours / theirs:.2f}x ({theirs:,.0f}/s)" if theirs else "n/a")
        rows.append((info["backend"], info["handlers"], ours, cells))
    for backend, handlers, ours, cells in sorted(rows):
        lines.append(f"| {backend} | {handlers} | {ours:,.0f} | " + " | ".join(cells) + " |")
    return lines


def dedup_table(benches: list[dict[str, Any]]) -> list[str]:
    rows: dict[str, dict[str, str]] = defaultdict(dict)
    for bench in benches:
        group = bench.get("group") or ""
        info = bench["extra_info"]
        if not group.startswith("dedup"):
            continue
        library = info["library"]
        if group == "dedup-memory-1m":
            rows[library]["memory"] = f"{info['bytes_per_id']} B (+{info['key_bytes']} B id string)"
        else:
            per_op = bench["stats"]["median"] / info["operations"] * 1e6
            rows[library][group] = f"{per_op:.2f} µs"
    lines = [
        "| structure | insert, per id | expire, per id | memory per live id |",
        "|---|---|---|---|",
    ]
    for library in ("eventbus", "dict+deque"):
        row = rows.get(library, {})
        lines.append(
            f"| {library} | {row.get('dedup-insert-1m', 'n/a')} | "
            f"{row.get('dedup-expire-1m', 'n/a')} | {row.get('memory', 'n/a')} |"
        )
    return lines


def steps_table(benches: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| backend | steps per run | µs per step | with middleware | ratio |",
        "|---|---|---|---|---|",
    ]
    found: dict[tuple[str, int], dict[bool, float]] = defaultdict(dict)
    for bench in benches:
        info = bench["extra_info"]
        if "steps" not in info or "kind" in info:
            continue
        per_step = bench["stats"]["median"] / (info["steps"] * info["runs"]) * 1e6
        found[(info["backend"], info["steps"])][bool(info.get("middleware"))] = per_step
    for (backend, steps), cost in sorted(found.items()):
        plain, with_mw = cost.get(False), cost.get(True)
        ratio = f"{with_mw / plain:.1f}x" if plain and with_mw else "n/a"
        cells = [f"{c:.1f}" if c is not None else "n/a" for c in (plain, with_mw)]
        lines.append(f"| {backend} | {steps} | {cells[0]} | {cells[1]} | {ratio} |")
    return lines


def suite_table(benches: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| backend | eventbus `running()` tests/s | eventbus `mocked.trigger` | "
        "inngest `mocked.trigger` | running() vs inngest |",
        "|---|---|---|---|---|",
    ]
    for bench in benches:
        info = bench["extra_info"]
        if "peer_tests_per_s" not in info:
            continue
        ours = info["tests"] / bench["stats"]["median"]
        peers = info["peer_tests_per_s"]
        ours_mocked = peers.get("eventbus mocked.trigger")
        theirs = peers.get("inngest mocked.trigger")
        ratio = f"{ours / theirs:.2f}x" if theirs else "n/a"
        lines.append(
            f"| {info['backend']} | {ours:,.0f} | {ours_mocked or 0:,.0f} | "
            f"{theirs or 0:,.0f} | {ratio} |"
        )
    return lines


def http_tables(benches: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| path | events/s | in-process send, no server | ratio |",
        "|---|---|---|---|",
    ]
    transport = []
    for bench in benches:
        info = bench["extra_info"]
        if info.get("kind") == "server":
            rate = info["events"] / bench["stats"]["median"]
            base = info["in_process_events_per_s"]
            lines.append(
                f"| POST /e/{{key}}, {info['batch']} event(s) per request | {rate:,.0f} | "
                f"{base:,.0f} | {rate / base:.2f}x |"
            )
        elif info.get("kind") == "transport":
            ours = bench["stats"]["median"] / info["events"] * 1e6
            theirs = info["official_us_per_event"]
            ratio = theirs / ours
            transport.append(
                f"| one event per request | {ours:,.0f} µs | {theirs:,.0f} µs | {ratio:.2f}x |"
            )
    lines += [
        "",
        "| HttpTransport.send_sync | eventbus | inngest SDK send_sync | inngest / eventbus |",
        "|---|---|---|---|",
        *transport,
    ]
    return lines


def store_tables(benches: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| backend | case | MemoryStore | SqliteStore | SqliteStore / MemoryStore |",
        "|---|---|---|---|---|",
    ]
    rows = []
    for bench in benches:
        info = bench["extra_info"]
        if info.get("kind") != "store":
            continue
        sqlite, memory = bench["stats"]["median"], info["memory_seconds"]
        if info["case"] == "step":
            steps = info["events"] * info["steps"]
            cells = f"{memory / steps * 1e6:.1f} µs/step | {sqlite / steps * 1e6:.1f} µs/step"
        else:
            unit = "sends/s" if info["steps"] is None else "runs/s"
            n = info["events"]
            cells = f"{n / memory:,.0f} {unit} | {n / sqlite:,.0f} {unit}"
        rows.append((info["backend"], info["case"], f"{cells} | {memory / sqlite:.2f}x"))
    lines += [f"| {b} | {c} | {cells} |" for b, c, cells in sorted(rows)]
    lines += [
        "",
        "| backend | SqliteStore's thread, per round trip | anyio.to_thread | ratio |",
        "|---|---|---|---|",
    ]
    for bench in benches:
        info = bench["extra_info"]
        if info.get("kind") == "handoff":
            ours = bench["stats"]["median"] / info["calls"] * 1e6
            theirs = info["to_thread_seconds"] / info["calls"] * 1e6
            lines.append(
                f"| {info['backend']} | {ours:.0f} µs | {theirs:.0f} µs | {ours / theirs:.2f}x |"
            )
    lines += [
        "",
        "| two-step workflows, SQLite | durability | eventbus | DBOS Transact | eventbus / DBOS |",
        "|---|---|---|---|---|",
    ]
    for bench in sorted(benches, key=lambda b: (b["extra_info"].get("mode", ""), b["group"] or "")):
        info = bench["extra_info"]
        if info.get("kind") != "dbos":
            continue
        mode = {
            "sequential": "one at a time",
            "started": "all started, then awaited",
        }[info["mode"]]
        level = "WAL, synchronous=NORMAL" if info["journal"] == "wal" else "synchronous=FULL"
        ours, theirs = info["eventbus_per_s"], info["dbos_per_s"]
        lines.append(
            f"| {mode} | {level} | {ours:,.0f}/s | {theirs:,.0f}/s | {ours / theirs:.1f}x |"
        )
    return lines


def flow_table(benches: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| backend | option | µs per event without | with | overhead per event | ratio |",
        "|---|---|---|---|---|---|",
    ]
    rows = []
    for bench in benches:
        info = bench["extra_info"]
        if info.get("kind") != "flow":
            continue
        plain = info["plain_seconds"] / info["events"] * 1e6
        with_it = bench["stats"]["median"] / info["events"] * 1e6
        rows.append(
            f"| {info['backend']} | {info['option']} | {plain:.1f} | {with_it:.1f} | "
            f"{with_it - plain:+.1f} µs | {plain / with_it:.2f}x |"
        )
    return lines + sorted(rows)


def otel_table(benches: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| backend | tracer provider | µs per run not instrumented | instrumented "
        "| overhead | ratio |",
        "|---|---|---|---|---|---|",
    ]
    rows = []
    for bench in benches:
        info = bench["extra_info"]
        if info.get("kind") != "otel":
            continue
        off = info["off_seconds"] / info["runs"] * 1e6
        on = bench["stats"]["median"] / info["runs"] * 1e6
        name = {
            "noop": "no-op (installs nothing)",
            "proxy": "the API's default, no SDK",
            "sdk": "SDK, recording",
        }[info["mode"]]
        rows.append(
            f"| {info['backend']} | {name} | {off:.1f} | {on:.1f} | {on - off:+.1f} µs | "
            f"{off / on:.2f}x |"
        )
    return lines + sorted(rows)


def latency_table(benches: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| backend | eventbus p50 / p99 | task group | pyee | blinker | p50 vs pyee |",
        "|---|---|---|---|---|---|",
    ]
    for bench in sorted(benches, key=lambda b: str(b.get("group"))):
        info = bench["extra_info"]
        if "latency_us" not in info:
            continue
        found = info["latency_us"]

        def cell(name: str, found: dict[str, Any] = found) -> str:
            if name not in found:
                return "n/a"
            return f"{found[name]['p50']:.1f} / {found[name]['p99']:.1f} µs"

        ratio = "n/a"
        if "pyee" in found:
            ratio = f"{found['pyee']['p50'] / found['eventbus']['p50']:.2f}x"
        lines.append(
            f"| {info['backend']} | {cell('eventbus')} | {cell('anyio-taskgroup')} | "
            f"{cell('pyee')} | {cell('blinker')} | {ratio} |"
        )
    return lines


def memory_table(benches: list[dict[str, Any]]) -> list[str]:
    lines = ["| measure | value |", "|---|---|"]
    for bench in benches:
        info = bench["extra_info"]
        if "bytes_per_event_and_run" in info:
            lines.append(
                f"| memory per retained event and run (retention {info['retention']:,}; "
                f"{info['events']:,} events and {info['runs']:,} runs held) | "
                f"{info['bytes_per_event_and_run']:,} B |"
            )
        if "rss_growth_mib" in info:
            lines.append(
                f"| RSS growth over {info['beyond']:,} events beyond the retention | "
                f"{info['rss_growth_mib']} MiB |"
            )
    return lines


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else ".benchmarks/latest.json")
    benches = load(path)
    print(f"Python {platform.python_version()} on {platform.machine()}, medians of one run.\n")
    print("\n".join(fanout_table(benches)))
    print()
    print("\n".join(latency_table(benches)))
    print()
    print("\n".join(memory_table(benches)))
    print()
    print("\n".join(dedup_table(benches)))
    print()
    print("\n".join(steps_table(benches)))
    print()
    print("\n".join(suite_table(benches)))
    print()
    print("\n".join(http_tables(benches)))
    print()
    print("\n".join(store_tables(benches)))
    print()
    print("\n".join(flow_table(benches)))
    print()
    print("\n".join(otel_table(benches)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
