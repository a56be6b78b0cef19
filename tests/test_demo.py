"""The storefront demo (`python -m eventbus demo`)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import eventbus
from eventbus.__main__ import main
from eventbus._demo import run_demo


@pytest.mark.anyio
async def test_demo_shows_fan_out_filter_and_dedup() -> None:
    """The demo fans out the checkout, filters the coupon, and deduplicates the repeat."""
    lines: list[str] = []
    client = await run_demo(lines.append)
    text = "\n".join(lines)
    assert "acme-storefront-app-send-receipt: Completed" in text
    assert "acme-storefront-app-update-inventory: Completed {'reserved': 3}" in text
    assert "acme-storefront-app-track-coupon: Completed" in text
    assert "deduplicated=True" in text
    assert "no run (deduplicated)" in text
    completed = client.runs(status=eventbus.RunStatus.COMPLETED)
    assert len(completed) == 4


def test_cli_demo_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m eventbus demo` prints each event id and each run."""
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert out.count("storefront/") >= 8
    assert "Completed" in out


def test_cli_demo_on_trio(capsys: pytest.CaptureFixture[str]) -> None:
    """The demo runs on trio too."""
    assert main(["demo", "--backend", "trio"]) == 0
    assert "deduplicated=True" in capsys.readouterr().out


def test_cli_needs_a_command() -> None:
    """Without a command the CLI prints usage and exits with an error."""
    result = subprocess.run(
        [sys.executable, "-m", "eventbus"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "demo" in result.stderr


def test_serve_loads_the_client_target() -> None:
    """`python -m eventbus serve module:client` finds the client, or says what is wrong."""
    from eventbus.__main__ import load_client

    client = load_client("tests.test_demo:SERVE_TARGET")
    assert client is SERVE_TARGET
    with pytest.raises(eventbus.UsageError, match=r"myapp\.module:client"):
        load_client("no-colon")
    with pytest.raises(eventbus.UsageError, match=r"not an eventbus\.Inngest"):
        load_client("eventbus._demo:CHECKOUT")


SERVE_TARGET = eventbus.Inngest("served")
