"""Random step plans against a model: what ran how often, and what the journal says."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import eventbus
from tests.helpers import make_client, on

RETRIES = 2

step_kinds = st.one_of(
    st.tuples(st.just("run"), st.integers(0, RETRIES + 1)),  # fail this many times first
    st.tuples(st.just("sleep"), st.integers(0, 90_000)),  # milliseconds
    st.tuples(st.just("send"), st.just(0)),
)
plans = st.lists(step_kinds, max_size=8)


def expected(plan: list[tuple[str, int]]) -> list[tuple[str, str, int]]:
    """The model: each step's kind, final status and attempts."""
    out = []
    for kind, n in plan:
        if kind == "run":
            attempts = min(n, RETRIES) + 1
            status = "COMPLETED" if n <= RETRIES else "FAILED"
            out.append(("run", status, attempts))
        elif kind == "sleep":
            out.append(("sleep", "COMPLETED", 1))
        else:
            out.append(("send_event", "COMPLETED", 1))
    return out


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@settings(max_examples=60, deadline=None)
@given(plan=plans)
def test_random_plans_match_the_model(backend: str, plan: list[tuple[str, int]]) -> None:
    """Every step executes exactly as often as the model says, once it succeeded never again,
    and the journal records each step's kind, status and attempts."""
    client = make_client()
    executions: dict[int, int] = {}
    clock = client.clock

    @client.create_function(fn_id="f", trigger=on("app/plan"), retries=RETRIES)
    async def f(ctx: eventbus.Context) -> list[Any]:
        results: list[Any] = []
        for index, (kind, n) in enumerate(plan):
            if kind == "run":

                def body(index: int = index, n: int = n) -> int:
                    executions[index] = executions.get(index, 0) + 1
                    if executions[index] <= n:
                        raise ValueError(f"planned failure {executions[index]}")
                    return index

                try:
                    results.append(await ctx.step.run(f"s{index}", body))
                except eventbus.StepError:
                    results.append("failed")
            elif kind == "sleep":
                await ctx.step.sleep(f"s{index}", n)
                results.append("slept")
            else:
                ids = await ctx.step.send_event(
                    f"s{index}", {"name": "app/sent", "data": {"index": index}}
                )
                results.append(len(ids))
        return results

    async def main() -> eventbus.Run:
        async with client:
            (event_id,) = await client.send({"name": "app/plan"})
            await client.settle(advance_time=True)
        (run,) = client.runs(event_id=event_id)
        return run

    start = clock.now_ms()
    run = anyio.run(main, backend=backend)
    model = expected(plan)
    assert run.status is eventbus.RunStatus.COMPLETED
    assert [(s.kind, s.status.name, s.attempts) for s in run.steps] == model
    for index, (kind, n) in enumerate(plan):
        if kind == "run":
            assert executions[index] == min(n, RETRIES) + 1
    assert run.output == [
        ("failed" if n > RETRIES else i) if k == "run" else ("slept" if k == "sleep" else 1)
        for i, (k, n) in enumerate(plan)
    ]
    sent = client.events(name="app/sent")
    assert [e.data["index"] for e in sent] == [i for i, (k, _) in enumerate(plan) if k == "send"]
    assert clock.now_ms() - start >= sum(n for k, n in plan if k == "sleep")
