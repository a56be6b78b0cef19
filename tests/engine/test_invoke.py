"""step.invoke / invoke_by_id, and functions that run only when invoked."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

import eventbus
from tests.helpers import make_client, on

pytestmark = pytest.mark.anyio


def tax_client(
    *, fail: bool = False, slow: bool = False
) -> tuple[eventbus.Inngest, eventbus.Function, list[Any]]:
    client = make_client()
    calls: list[Any] = []

    @client.create_function(fn_id="compute-tax", trigger=[], retries=1)
    async def compute_tax(ctx: eventbus.Context) -> dict[str, float]:
        calls.append(dict(ctx.event.data))
        if slow:
            await ctx.step.sleep("think", "2h")
        if fail:
            raise ValueError("no tax table for XX")
        return {"tax": ctx.event.data["amount"] * 0.2}

    return client, compute_tax, calls


async def test_invoke_returns_the_target_output() -> None:
    """invoke runs the target with an inngest/function.invoked event and returns its output."""
    client, compute_tax, calls = tax_client()
    results: list[Any] = []

    @client.create_function(fn_id="checkout", trigger=on("shop/order.created"))
    async def checkout(ctx: eventbus.Context) -> Any:
        tax = await ctx.step.invoke("tax", function=compute_tax, data={"amount": 10})
        results.append(tax)
        return tax

    async with client:
        (order,) = await client.send({"name": "shop/order.created"})
        await client.settle()
    (run,) = client.runs(event_id=order)
    assert run.output == {"tax": 2.0}
    assert results == [{"tax": 2.0}]  # the caller's code after the step ran once
    assert run.steps[0].kind == "invoke"
    (invoked_event,) = client.events(name="inngest/function.invoked")
    assert invoked_event.data["amount"] == 10
    meta = invoked_event.data["_inngest"]
    assert meta["fn_id"] == "test-app-compute-tax"
    assert meta["correlation_id"] == f"{run.run_id}.tax"
    assert meta["source_fn_id"] == "test-app-checkout"
    (target_run,) = client.runs(function_id="test-app-compute-tax")
    assert target_run.event.name == "inngest/function.invoked"
    assert len(calls) == 1
    finished = [
        e
        for e in client.events(name="inngest/function.finished")
        if e.data["function_id"] == "test-app-compute-tax"
    ]
    assert finished[0].data["correlation_id"] == f"{run.run_id}.tax"


async def test_invoke_by_id() -> None:
    """invoke_by_id names the target by fn_id (and app_id, default this client's)."""
    client, _, _ = tax_client()

    @client.create_function(fn_id="checkout", trigger=on("shop/order.created"))
    async def checkout(ctx: eventbus.Context) -> Any:
        return await ctx.step.invoke_by_id("tax", function_id="compute-tax", data={"amount": 5})

    async with client:
        await client.send({"name": "shop/order.created"})
        await client.settle()
    assert client.runs(function_id="test-app-checkout")[0].output == {"tax": 1.0}


async def test_failed_target_raises_step_error_without_compounding() -> None:
    """A target that fails (after its own retries) raises StepError in the caller, once."""
    client, compute_tax, calls = tax_client(fail=True)
    errors: list[eventbus.StepError] = []

    @client.create_function(fn_id="checkout", trigger=on("shop/order.created"), retries=3)
    async def checkout(ctx: eventbus.Context) -> str:
        try:
            await ctx.step.invoke("tax", function=compute_tax, data={"amount": 1})
        except eventbus.StepError as exc:
            errors.append(exc)
            return "no tax"
        return "taxed"

    async with client:
        await client.send({"name": "shop/order.created"})
        await client.settle(advance_time=True)
    assert len(calls) == 2  # the target's own 1 retry, nothing more
    assert client.runs(function_id="test-app-checkout")[0].output == "no tax"
    assert errors[0].name == "ValueError"
    assert errors[0].message == "no tax table for XX"


async def test_invoke_timeout_raises_step_error() -> None:
    """If the target does not finish within timeout, the step raises StepError."""
    client, compute_tax, _ = tax_client(slow=True)

    @client.create_function(fn_id="checkout", trigger=on("shop/order.created"))
    async def checkout(ctx: eventbus.Context) -> str:
        try:
            await ctx.step.invoke(
                "tax", function=compute_tax, data={"amount": 1}, timeout=datetime.timedelta(hours=1)
            )
        except eventbus.StepError as exc:
            return exc.name
        return "done"

    async with client:
        await client.send({"name": "shop/order.created"})
        await client.settle(advance_time=True)
    assert client.runs(function_id="test-app-checkout")[0].output == "InngestInvokeTimeoutError"
    # The target keeps running and completes on its own.
    (target,) = client.runs(function_id="test-app-compute-tax")
    assert target.status is eventbus.RunStatus.COMPLETED


async def test_functions_without_triggers_run_only_when_invoked() -> None:
    """trigger=[] makes a function that no event starts."""
    client, _, calls = tax_client()
    async with client:
        await client.send([{"name": "inngest-like/anything"}, {"name": "compute-tax"}])
        await client.settle()
    assert calls == []


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.invoke("i", function="compute-tax"), "eventbus.Function"),
        (lambda s: s.invoke_by_id("i", function_id="missing"), "no function 'test-app-missing'"),
        (lambda s: s.invoke_by_id("i", function_id=""), "needs function_id="),
        (lambda s: s.invoke_by_id("i", function_id="compute-tax", timeout="x"), "not a duration"),
        (lambda s: s.invoke_by_id("i", function_id="compute-tax", data={"d": {1, 2}}), "not JSON"),
    ],
)
async def test_bad_invocations_fail_clearly(call: Any, message: str) -> None:
    """Bad invoke arguments fail with a message naming the problem."""
    client, _, _ = tax_client()

    @client.create_function(fn_id="checkout", trigger=on("shop/order.created"), retries=2)
    async def checkout(ctx: eventbus.Context) -> None:
        await call(ctx.step)

    async with client:
        await client.send({"name": "shop/order.created"})
        await client.settle(advance_time=True)
    (run,) = client.runs(function_id="test-app-checkout")
    assert run.status is eventbus.RunStatus.FAILED
    assert run.error is not None
    assert message in run.error["message"]
