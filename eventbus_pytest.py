"""The eventbus pytest plugin, registered through the ``pytest11`` entry point.

It imports eventbus only when a fixture is used, so installing eventbus costs test
suites nothing (and coverage of eventbus itself stays exact).

Fixtures:

* ``eventbus_clock``: a fresh ``eventbus.VirtualClock``.
* ``eventbus_bus``: a running test engine (``eventbus.testing.running``) for the client
  your ``eventbus_client`` fixture returns, on ``eventbus_clock``, seeded with
  ``eventbus_seed``. Use it from ``@pytest.mark.anyio`` tests.
* ``eventbus_seed``: a fresh random seed per test, so scheduling orders get explored;
  ``pytest --eventbus-seed=N`` (or overriding the fixture) pins it.

When a test that used ``eventbus_bus`` fails, its report gains an "eventbus" section
listing the runs, their steps and the events, with the seed and how to replay it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import eventbus
    from eventbus.testing import Bus

_BUS_KEY = pytest.StashKey["Bus"]()


@pytest.fixture
def eventbus_clock() -> eventbus.VirtualClock:
    """A fresh virtual clock (starting at the real now); move it with ``.advance(timedelta)``."""
    import eventbus

    return eventbus.VirtualClock()


@pytest.fixture
def eventbus_client() -> eventbus.Inngest:
    """Override this fixture to return your app's ``eventbus.Inngest`` client."""
    raise pytest.UsageError(
        "the eventbus_bus fixture needs your client: define a fixture named eventbus_client "
        "that returns your eventbus.Inngest (in conftest.py, for example)"
    )


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--eventbus-seed",
        type=int,
        default=None,
        help="seed for eventbus test engines (replays a failure's scheduling order)",
    )


@pytest.fixture
def eventbus_seed(request: pytest.FixtureRequest) -> int | None:
    """The seed of the test engine: ``--eventbus-seed`` if given, else random per test."""
    import random

    pinned = request.config.getoption("eventbus_seed", None)
    return pinned if pinned is not None else random.randrange(2**32)


@pytest.fixture
async def eventbus_bus(
    eventbus_client: eventbus.Inngest,
    eventbus_clock: eventbus.VirtualClock,
    eventbus_seed: int | None,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Bus]:
    """A fresh running engine for ``eventbus_client``'s functions."""
    from eventbus.testing import running

    async with running(eventbus_client, clock=eventbus_clock, seed=eventbus_seed) as bus:
        request.node.stash[_BUS_KEY] = bus
        yield bus


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, pytest.TestReport]:
    report: pytest.TestReport = yield
    bus = item.stash.get(_BUS_KEY, None)
    if bus is not None and report.failed:
        replay = f"replay with: pytest --eventbus-seed={bus.seed} {item.nodeid}"
        report.sections.append(("eventbus", f"{bus.report()}\n{replay}"))
    return report
