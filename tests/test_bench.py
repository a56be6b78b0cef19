"""``python -m eventbus bench``: the fan-out comparison a user can run (tiny rounds here;
no timing is asserted, only what the command reports and how)."""

from __future__ import annotations

import io
import json
import sys
from typing import Any

import pytest

from eventbus import _bench
from eventbus.__main__ import main


def needs_peers() -> None:
    for module in ("pyee", "blinker"):
        pytest.importorskip(
            module, reason=f"{module} is a peer of the bench (the test extra has it)"
        )


def run_json(capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    code = main(["bench", "--rounds", "1", "--scale", "0.01", "--json", *extra])
    assert code == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_json_has_every_library_width_and_backend(capsys: pytest.CaptureFixture[str]) -> None:
    needs_peers()
    results = run_json(capsys, "--handlers", "1,10", "--latency-samples", "5", "--no-progress")
    cases = [(row["backend"], row["handlers"]) for row in results["throughput"]]
    assert cases == [("asyncio", 1), ("asyncio", 10), ("trio", 1), ("trio", 10)]
    for row in results["throughput"]:
        rates = row["calls_per_s"]
        assert set(rates) == set(_bench.LIBRARIES)
        assert row["events_per_round"] == max(
            1, round(_bench.EVENTS_PER_ROUND[row["handlers"]] / 100)
        )
        for peer, ratio in row["eventbus_ratio"].items():
            assert ratio == pytest.approx(rates["eventbus"] / rates[peer], rel=0.01)
    latency = {(row["backend"], row["library"]): row for row in results["latency"]}
    assert set(latency) == {(b, n) for b in ("asyncio", "trio") for n in _bench.LIBRARIES}
    for row in latency.values():
        assert row["samples"] == 5
        assert 0 < row["p50_us"] <= row["p99_us"]
    assert results["skipped"] == {}


def test_table_and_progress_bar(capsys: pytest.CaptureFixture[str]) -> None:
    needs_peers()
    code = main(
        ["bench", "--backend", "asyncio", "--handlers", "1", "--rounds", "2", "--scale",
         "0.001", "--latency-samples", "3", "--progress"]
    )  # fmt: skip
    assert code == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].split() == [
        "backend", "handlers", "eventbus", "calls/s", "vs", "anyio-taskgroup", "vs", "pyee",
        "vs", "blinker",
    ]  # fmt: skip
    assert lines[1].startswith("asyncio  1 ")
    assert "medians of 2 interleaved rounds" in lines[-1]
    # 4 libraries x 2 rounds + 4 latency runs, each a step of the bar, the last at 100%
    assert captured.err.count("\r[") == 12
    assert captured.err.rstrip().endswith("asyncio latency: blinker")
    assert "100%" in captured.err
    assert captured.err.endswith("\n")


def test_missing_peers_are_skipped_with_the_fix(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "pyee", None)  # import pyee now raises ImportError
    results = run_json(capsys, "--backend", "trio", "--handlers", "1", "--latency-samples", "0")
    assert results["skipped"]["pyee on trio"] == (
        "pyee is not installed (pip install 'eventbus[bench]')"
    )
    (row,) = results["throughput"]
    assert "pyee" not in row["calls_per_s"]
    assert results["latency"] == []
    table = _bench.format_table(results)
    assert "n/a" in table.splitlines()[1]
    assert "skipped pyee on trio: pyee is not installed" in table


def test_progress_bar_is_silent_without_a_stream() -> None:
    quiet = _bench.Progress(2, None)
    quiet.step("a")
    assert quiet.done == 1
    out = io.StringIO()
    bar = _bench.Progress(0, out, width=4)  # nothing to do still draws a full bar
    bar.step("x")
    assert out.getvalue() == "\r[####] 100% x" + " " * 39 + "\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--handlers", "0"], "must be at least 1, got 0"),
        (["--handlers", "1,x"], "is not a comma-separated list of handler counts"),
        (["--rounds", "0"], "must be at least 1, got 0"),
    ],
)
def test_bad_arguments_say_what_is_wrong(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bench", *args])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
