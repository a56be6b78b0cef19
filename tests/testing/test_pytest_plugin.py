"""The pytest plugin: fixtures and failure reports (checked with pytester)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

CONFTEST = """
import pytest
import eventbus

client = eventbus.Inngest(app_id="plug")

@client.create_function(fn_id="greet", trigger=eventbus.TriggerEvent(event="plug/hello"))
async def greet(ctx: eventbus.Context) -> str:
    await ctx.step.sleep("pause", "1h")
    return "hi " + ctx.event.data["who"]

@pytest.fixture
def eventbus_client():
    return client

@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request):
    return request.param
"""


def test_fixtures_run_the_engine(pytester: pytest.Pytester) -> None:
    """eventbus_bus and eventbus_clock work in a user's test suite."""
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        """
        import datetime
        import pytest

        @pytest.mark.anyio
        async def test_greets(eventbus_bus, eventbus_clock):
            start = eventbus_clock.now()
            await eventbus_bus.send({"name": "plug/hello", "data": {"who": "ann"}})
            await eventbus_bus.settle(advance_time=True)
            assert eventbus_bus.outputs("greet") == ["hi ann"]
            assert eventbus_bus.clock is eventbus_clock
            assert eventbus_clock.now() - start == datetime.timedelta(hours=1)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--no-cov")
    result.assert_outcomes(passed=2)


def test_failures_print_runs_steps_and_events(pytester: pytest.Pytester) -> None:
    """A failing test's report has an eventbus section with runs, steps, events and seed."""
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def eventbus_seed():
            return 1234

        @pytest.mark.anyio
        async def test_wrong(eventbus_bus):
            await eventbus_bus.send({"name": "plug/hello", "data": {"who": "bob"}})
            await eventbus_bus.settle()
            assert eventbus_bus.outputs("greet") == ["hi bob"]
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--no-cov", "-k", "asyncio")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*eventbus*",
            "*eventbus test engine (seed=1234*",
            "*<Run fn='greet' status=SLEEPING steps=1*",
            "*<Step 'pause' kind=sleep status=SLEEPING*",
            "*<StoredEvent 'plug/hello'*",
            "*replay with: pytest --eventbus-seed=1234 *test_wrong*",
        ]
    )


def test_seed_option_pins_the_seed(pytester: pytest.Pytester) -> None:
    """--eventbus-seed pins the seed; without it every test gets a random one."""
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.anyio
        async def test_seed(eventbus_bus, eventbus_seed):
            assert eventbus_bus.seed == eventbus_seed
            assert isinstance(eventbus_seed, int)
            if pytest.pinned is not None:
                assert eventbus_seed == pytest.pinned
        """
    )
    pytester.makeconftest(
        CONFTEST
        + "\nimport pytest as _p\n"
        + "def pytest_configure(config):\n"
        + "    _p.pinned = config.getoption('eventbus_seed')\n"
    )
    pytester.runpytest("-p", "no:cacheprovider", "--no-cov").assert_outcomes(passed=2)
    pinned = pytester.runpytest("-p", "no:cacheprovider", "--no-cov", "--eventbus-seed=77")
    pinned.assert_outcomes(passed=2)


def test_missing_client_fixture_is_explained(pytester: pytest.Pytester) -> None:
    """Using eventbus_bus without an eventbus_client fixture says what to define."""
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.anyio
        async def test_x(eventbus_bus):
            pass
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--no-cov")
    result.stdout.fnmatch_lines(["*define a fixture named eventbus_client*"])
