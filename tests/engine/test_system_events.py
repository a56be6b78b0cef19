"""inngest/function.finished and inngest/function.failed, and on_failure handlers."""

from __future__ import annotations

from typing import Any

import pytest

import eventbus
from tests.helpers import make_client, on

pytestmark = pytest.mark.anyio


async def test_completed_run_emits_function_finished() -> None:
    """A completed run emits inngest/function.finished with Inngest's payload."""
    client = make_client()

    @client.create_function(fn_id="f", trigger=on("app/e"))
    async def f(ctx: eventbus.Context) -> dict[str, int]:
        return {"x": 1}

    async with client:
        (event_id,) = await client.send({"name": "app/e", "data": {"k": "v"}, "id": "u1"})
        await client.settle()
    (run,) = client.runs(event_id=event_id)
    (finished,) = client.events(name="inngest/function.finished")
    assert finished.data["function_id"] == "test-app-f"
    assert finished.data["run_id"] == run.run_id
    assert finished.data["result"] == {"x": 1}
    assert finished.data["_inngest"] == {"status": "Completed"}
    assert finished.data["event"]["name"] == "app/e"
    assert finished.data["event"]["data"] == {"k": "v"}
    assert finished.data["event"]["id"] == "u1"
    assert finished.data["events"] == [finished.data["event"]]
    assert "error" not in finished.data
    assert client.events(name="inngest/function.failed") == []


async def test_failed_run_emits_finished_and_failed() -> None:
    """A failed run emits function.finished and function.failed (whose id is the run id)."""
    client = make_client()

    @client.create_function(fn_id="f", trigger=on("app/e"), retries=0)
    async def f(ctx: eventbus.Context) -> None:
        raise ValueError("bad input")

    async with client:
        await client.send({"name": "app/e"})
        await client.settle()
    (run,) = client.runs(function_id="test-app-f")
    (finished,) = client.events(name="inngest/function.finished")
    (failed,) = client.events(name="inngest/function.failed")
    for event in (finished, failed):
        assert event.data["error"]["name"] == "ValueError"
        assert event.data["error"]["message"] == "bad input"
        assert event.data["_inngest"] == {"status": "Failed"}
        assert event.data["run_id"] == run.run_id
    assert failed.id == run.run_id
    assert "result" not in failed.data


async def test_functions_can_trigger_on_system_events_without_recursion() -> None:
    """A function triggered by function.finished runs, and its own finish emits nothing more."""
    client = make_client()
    observed: list[str] = []

    @client.create_function(fn_id="work", trigger=on("app/e"))
    async def work(ctx: eventbus.Context) -> str:
        return "done"

    @client.create_function(fn_id="audit", trigger=on("inngest/function.finished"))
    async def audit(ctx: eventbus.Context) -> None:
        observed.append(ctx.event.data["function_id"])

    async with client:
        await client.send({"name": "app/e"})
        await client.settle()
    assert observed == ["test-app-work"]
    assert len(client.events(name="inngest/function.finished")) == 1


async def test_on_failure_runs_with_the_failed_event() -> None:
    """on_failure registers '<fn_id>-failure', run with that function's failed events."""
    client = make_client()
    received: list[dict[str, Any]] = []

    async def handle_failure(ctx: eventbus.Context) -> str:
        received.append(dict(ctx.event.data))
        return "compensated"

    @client.create_function(
        fn_id="charge", trigger=on("shop/pay"), retries=1, on_failure=handle_failure
    )
    async def charge(ctx: eventbus.Context) -> None:
        raise RuntimeError("card declined")

    @client.create_function(fn_id="other", trigger=on("shop/other"), retries=0)
    async def other(ctx: eventbus.Context) -> None:
        raise RuntimeError("unrelated")

    assert charge.on_failure_fn_id == "test-app-charge-failure"
    failure_fn = {f.id: f for f in client.functions()}["test-app-charge-failure"]
    assert failure_fn.name == "charge (failure)"
    assert failure_fn.retries == 0

    async with client:
        await client.send([{"name": "shop/pay", "data": {"amount": 5}}, {"name": "shop/other"}])
        await client.settle(advance_time=True)
    (failed_run,) = client.runs(function_id="test-app-charge")
    assert len(received) == 1
    assert received[0]["run_id"] == failed_run.run_id
    assert received[0]["function_id"] == "test-app-charge"
    assert received[0]["error"]["message"] == "card declined"
    assert received[0]["event"]["data"] == {"amount": 5}
    (handler_run,) = client.runs(function_id="test-app-charge-failure")
    assert handler_run.output == "compensated"


async def test_users_cannot_send_system_events() -> None:
    """Names starting with inngest/ (any case) are reserved for the engine."""
    client = make_client()
    async with client:
        for name in ("inngest/function.failed", "Inngest/x", "INNGEST/"):
            with pytest.raises(eventbus.EventValidationError, match="reserved"):
                await client.send([{"name": "app/ok"}, {"name": name}])
    assert client.events() == []
