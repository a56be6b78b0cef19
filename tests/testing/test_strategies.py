"""Hypothesis strategies and the EventbusStateMachine base."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant

import eventbus
from eventbus._event import prepare_batch
from eventbus.testing.strategies import EventbusStateMachine, event_names, events, json_data


@given(event=events())
def test_generated_events_are_always_accepted(event: eventbus.Event) -> None:
    """Every generated event passes send-time validation and survives JSON."""
    batch = prepare_batch(event, max_events=1, max_bytes=10**7)
    assert json.loads(batch.encoded)[0]["name"] == event.name
    assert not event.name.lower().startswith("inngest/")


@given(event=st.from_type(eventbus.Event))
def test_from_type_is_registered(event: eventbus.Event) -> None:
    """st.from_type(eventbus.Event) uses the registered strategy."""
    assert isinstance(event, eventbus.Event)
    prepare_batch(event, max_events=1, max_bytes=10**7)


@given(event=events(names=["a/b", "c/d"], data=st.just({"k": 1}), ids=False, timestamps=False))
def test_events_take_names_and_data(event: eventbus.Event) -> None:
    """names= and data= narrow what is generated."""
    assert event.name in {"a/b", "c/d"}
    assert event.data == {"k": 1}
    assert event.id is None
    assert event.ts is None


@given(name=event_names(), data=json_data())
def test_names_and_data_shapes(name: str, data: dict[str, Any]) -> None:
    """Names look like app/thing.happened; data is a JSON object."""
    assert "/" in name
    assert json.loads(json.dumps(data)) == data


@given(event=events(names=st.just("x/y")))
def test_names_may_be_a_strategy(event: eventbus.Event) -> None:
    """names= also takes a strategy."""
    assert event.name == "x/y"


# A small app to fuzz: doubling numbers, with a retry and a sleep.
doubling = eventbus.Inngest(app_id="double")


@doubling.create_function(fn_id="double", trigger=eventbus.TriggerEvent(event="math/double"))
async def double(ctx: eventbus.Context) -> int:
    value = await ctx.step.run("read", lambda: int(ctx.event.data.get("n", 0)))
    await ctx.step.sleep("think", "1h")
    return value * 2


class DoublingMachine(EventbusStateMachine):
    """Every completed run doubled its input; no run failed."""

    client = doubling
    event_strategy = events(
        names=["math/double", "math/other"], data=st.fixed_dictionaries({"n": st.integers(0, 99)})
    )

    @invariant()
    def outputs_are_doubles(self) -> None:
        for run in self.bus.runs("double", status=eventbus.RunStatus.COMPLETED):
            assert run.output == 2 * run.event.data["n"]

    @invariant()
    def nothing_failed(self) -> None:
        assert self.bus.runs(status=eventbus.RunStatus.FAILED) == []


DoublingMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=10, deadline=None)
TestDoubling = DoublingMachine.TestCase


def test_machine_needs_a_client() -> None:
    """A machine without a client says what to set."""

    class Broken(EventbusStateMachine):
        pass

    with pytest.raises(TypeError, match="class attribute client"):
        Broken()
