"""The run state machine (eventbus._engine._machine): plain synchronous tests of each
decision, as h11 tests its state machine, and properties against a model of Inngest's
rules (retries make ``retries + 1`` attempts, backoff from its table, terminal states
absorb everything)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventbus._engine._machine import (
    COMPLETE,
    FAIL,
    KEEP,
    CancelAction,
    Outcome,
    Retry,
    RunFacts,
    TimeoutAction,
    after_return,
    announcements,
    cancel,
    end_of_execution,
    pause_deadline,
    resume,
    retry_or_fail,
)
from eventbus._engine._policy import BACKOFF_MS, MAX_JITTER_MS
from eventbus._function import CANCELLED_EVENT, FAILED_EVENT, FINISHED_EVENT
from eventbus._run import RunStatus, StepStatus

RNG = random.Random(0)


# ---------------------------------------------------------------- end of an execution


@given(finished=st.booleans(), interrupted=st.booleans(), cancel_requested=st.booleans())
def test_after_return_is_the_returned_outcome(
    finished: bool, interrupted: bool, cancel_requested: bool
) -> None:
    """The runtime's cheap call for a returned handler decides as end_of_execution."""
    facts = RunFacts(1, 3, finished, interrupted, cancel_requested)
    expected = end_of_execution(facts, Outcome.RETURNED, RNG)
    assert after_return(finished, interrupted, cancel_requested) is expected
    assert expected is (KEEP if finished or interrupted or cancel_requested else COMPLETE)


def test_a_returning_handler_completes_the_run() -> None:
    assert end_of_execution(RunFacts(1, 3), Outcome.RETURNED, RNG) is COMPLETE


def test_an_error_retries_with_backoff_then_fails() -> None:
    first = end_of_execution(RunFacts(1, 2), Outcome.ERRORED, random.Random(1))
    assert isinstance(first, Retry)
    assert BACKOFF_MS[0] <= first.delay_ms <= BACKOFF_MS[0] + MAX_JITTER_MS
    second = end_of_execution(RunFacts(2, 2), Outcome.ERRORED, random.Random(1))
    assert isinstance(second, Retry)
    assert BACKOFF_MS[1] <= second.delay_ms <= BACKOFF_MS[1] + MAX_JITTER_MS
    assert end_of_execution(RunFacts(3, 2), Outcome.ERRORED, RNG) is FAIL


def test_retry_after_uses_its_delay() -> None:
    assert end_of_execution(RunFacts(1, 1), Outcome.RETRY_AFTER, RNG, 5_000) == Retry(5_000)
    assert end_of_execution(RunFacts(2, 1), Outcome.RETRY_AFTER, RNG, 5_000) is FAIL


def test_errors_retrying_cannot_help_fail_at_once() -> None:
    assert end_of_execution(RunFacts(1, 5), Outcome.FAILED, RNG) is FAIL
    assert end_of_execution(RunFacts(1, 5), Outcome.ABORTED, RNG) is FAIL


def test_a_suspension_or_a_cancel_leaves_the_run_as_it_is() -> None:
    for outcome in (Outcome.SUSPENDED, Outcome.CANCELLED):
        assert end_of_execution(RunFacts(1, 0), outcome, RNG) is KEEP


def test_a_swallowed_suspension_or_a_pending_cancel_wins_over_the_return() -> None:
    interrupted = RunFacts(1, 3, interrupted=True)
    cancelling = RunFacts(1, 3, cancel_requested=True)
    for facts in (interrupted, cancelling):
        for outcome in (Outcome.RETURNED, Outcome.ERRORED, Outcome.FAILED, Outcome.RETRY_AFTER):
            assert end_of_execution(facts, outcome, RNG) is KEEP
        # The engine's own verdict (too many steps, ...) stands.
        assert end_of_execution(facts, Outcome.ABORTED, RNG) is FAIL


def test_an_ended_run_stays_ended() -> None:
    for outcome in Outcome:
        assert end_of_execution(RunFacts(1, 3, finished=True), outcome, RNG) is KEEP


# ---------------------------------------------------------------- cancel, deadlines


@pytest.mark.parametrize(
    ("finished", "executing", "interrupt", "action"),
    [
        (True, False, True, CancelAction.NONE),
        (True, True, False, CancelAction.NONE),
        (False, False, True, CancelAction.END),
        (False, False, False, CancelAction.END),
        (False, True, True, CancelAction.INTERRUPT),
        (False, True, False, CancelAction.AT_NEXT_STEP),
    ],
)
def test_cancel(finished: bool, executing: bool, interrupt: bool, action: CancelAction) -> None:
    assert cancel(finished=finished, executing=executing, interrupt=interrupt) is action


def test_pause_deadlines() -> None:
    assert pause_deadline(done=True, cancels=True, invoke=False) is TimeoutAction.NONE
    assert pause_deadline(done=True, cancels=False, invoke=True) is TimeoutAction.NONE
    assert pause_deadline(done=False, cancels=True, invoke=False) is TimeoutAction.EXPIRE
    assert pause_deadline(done=False, cancels=False, invoke=True) is TimeoutAction.FAIL_STEP
    assert pause_deadline(done=False, cancels=False, invoke=False) is TimeoutAction.RESUME_EMPTY


def test_announcements() -> None:
    assert announcements(RunStatus.COMPLETED, system_run=False) == (FINISHED_EVENT,)
    assert announcements(RunStatus.FAILED, system_run=False) == (FINISHED_EVENT, FAILED_EVENT)
    assert announcements(RunStatus.CANCELLED, system_run=False) == (
        FINISHED_EVENT,
        CANCELLED_EVENT,
    )
    for status in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED):
        assert announcements(status, system_run=True) == ()


# ---------------------------------------------------------------- taking up a run


def test_a_sleeping_or_waiting_run_is_rearmed() -> None:
    records = [
        ("charge", StepStatus.COMPLETED, "run"),
        ("nap", StepStatus.SLEEPING, "sleep"),
    ]
    plan = resume(records, None, 1_000)
    assert plan.suspended
    assert plan.rearm == (("nap", StepStatus.SLEEPING, "sleep"),)
    waiting = resume([("ok", StepStatus.WAITING, "wait_for_event")], 5_000, 1_000)
    assert waiting.suspended
    assert waiting.due_ms is None  # the wait, not the old due time, says when


def test_a_run_that_was_executing_replays_at_its_due_time() -> None:
    records = [("charge", StepStatus.COMPLETED, "run"), ("ship", StepStatus.RUNNING, "run")]
    assert resume(records, None, 1_000).due_ms is None  # at once
    assert resume(records, 900, 1_000).due_ms is None  # its time has passed: at once
    later = resume(records, 2_000, 1_000)
    assert later.due_ms == 2_000  # a retry's backoff, a future-dated event
    assert not later.suspended


# ---------------------------------------------------------------- properties


@given(
    retries=st.integers(0, 20),
    failures=st.integers(0, 25),
    seed=st.integers(0, 2**32),
    retry_after=st.one_of(st.none(), st.integers(1_000, 86_400_000)),
)
def test_a_run_failing_n_times_against_the_model(
    retries: int, failures: int, seed: int, retry_after: int | None
) -> None:
    """Drive the machine as the runtime does: a handler that raises ``failures`` times
    then returns. Inngest's rule: it completes after ``failures + 1`` attempts if that is
    at most ``retries + 1``; else it fails after ``retries + 1``; each retry waits the
    RetryAfterError's delay or the backoff table's, with at most 30 s of jitter."""
    rng = random.Random(seed)
    outcome = Outcome.ERRORED if retry_after is None else Outcome.RETRY_AFTER
    attempts, delays, final = 0, [], None
    while final is None:
        attempts += 1
        happened = outcome if attempts <= failures else Outcome.RETURNED
        decision = end_of_execution(RunFacts(attempts, retries), happened, rng, retry_after)
        if isinstance(decision, Retry):
            delays.append(decision.delay_ms)
        else:
            final = decision
    if failures <= retries:
        assert final is COMPLETE
        assert attempts == failures + 1
    else:
        assert final is FAIL
        assert attempts == retries + 1
    for n, delay in enumerate(delays):
        if retry_after is not None:
            assert delay == retry_after
        else:
            base = BACKOFF_MS[min(n, len(BACKOFF_MS) - 1)]
            assert base <= delay <= base + MAX_JITTER_MS


facts = st.builds(
    RunFacts,
    attempts=st.integers(1, 30),
    retries=st.integers(0, 20),
    finished=st.booleans(),
    interrupted=st.booleans(),
    cancel_requested=st.booleans(),
)


@given(facts=facts, outcome=st.sampled_from(Outcome), seed=st.integers(0, 2**32))
def test_decisions_never_break_the_rules(facts: RunFacts, outcome: Outcome, seed: int) -> None:
    decision = end_of_execution(facts, outcome, random.Random(seed), None)
    if facts.finished:
        assert decision is KEEP  # terminal states absorb
    if isinstance(decision, Retry):
        assert facts.attempts <= facts.retries  # never beyond retries + 1 attempts
        assert outcome in (Outcome.ERRORED, Outcome.RETRY_AFTER)
        assert decision.delay_ms >= BACKOFF_MS[0]
    if decision is COMPLETE:
        assert outcome is Outcome.RETURNED
        assert not facts.interrupted
        assert not facts.cancel_requested
        assert not facts.finished
    # Deterministic: the same facts and seed, the same decision.
    assert end_of_execution(facts, outcome, random.Random(seed), None) == decision


@given(attempts=st.integers(1, 40), retries=st.integers(0, 20), seed=st.integers(0, 2**32))
def test_steps_and_runs_share_one_retry_rule(attempts: int, retries: int, seed: int) -> None:
    decision = retry_or_fail(attempts, retries, None, random.Random(seed))
    assert (decision is FAIL) == (attempts > retries)


@pytest.mark.anyio
async def test_the_engine_is_what_the_step_tools_hold() -> None:
    """Contexts and step tools hold a StepHost (eventbus._host), not the engine: a
    running engine implements all of it."""
    import eventbus
    from eventbus._host import StepHost
    from eventbus.testing import running

    async with running(eventbus.Inngest("app")) as bus:
        assert isinstance(bus.engine, StepHost)
    assert not isinstance(object(), StepHost)
