"""The same calls on the official SDK and on eventbus, side by side: app code written for
``inngest`` imports and constructs what it uses from ``eventbus as inngest``."""

from __future__ import annotations

import datetime
import inspect
from typing import Any

import inngest
import pytest

import eventbus

#: The SDK's top-level names: every one of them.
APP_NAMES = sorted(inngest.__all__)


@pytest.mark.parametrize("name", APP_NAMES)
def test_every_name_app_code_uses_exists(name: str) -> None:
    """`import eventbus as inngest` finds every name the SDK exports for app code."""
    assert hasattr(eventbus, name), f"eventbus has no {name}"


def test_the_sdks_client_keywords_are_accepted() -> None:
    """Every keyword of inngest.Inngest(...) but the refused two is accepted and kept."""
    sdk_keywords = set(inspect.signature(inngest.Inngest.__init__).parameters) - {"self"}
    ours = set(inspect.signature(eventbus.Inngest.__init__).parameters)
    assert sdk_keywords <= ours
    client = eventbus.Inngest(
        app_id="shop",
        is_production=False,
        signing_key="signkey-prod-00",
        api_base_url="http://127.0.0.1:8288",
        event_api_base_url="http://127.0.0.1:8288",
        app_version="1.2",
        request_timeout=5000,
        logger=None,
        env="branch",
        event_key="k",
        middleware=[],
        serializer=None,
    )
    assert (client.app_version, client.signing_key, client.request_timeout) == (
        "1.2",
        "signkey-prod-00",
        5000,
    )


@pytest.mark.parametrize(
    ("keyword", "value", "problem"),
    [
        ("serializer", object(), "no serialize"),
        ("middleware", inngest.Middleware, "must be a list"),
        ("middleware", [inngest.Middleware(None, None)], "not a middleware class"),
    ],
)
def test_bad_serializer_or_middleware_is_refused_by_name(
    keyword: str, value: object, problem: str
) -> None:
    """A serializer without its methods, or middleware given as an instance, is a
    FunctionConfigError naming the keyword and the problem."""
    with pytest.raises(eventbus.FunctionConfigError, match=rf"{keyword}.*{problem}"):
        eventbus.Inngest(app_id="shop", **{keyword: value})


def test_the_sdks_serializer_and_middleware_are_accepted() -> None:
    """The SDK's PydanticSerializer and Middleware classes go into an eventbus client."""
    client = eventbus.Inngest(
        app_id="shop", serializer=inngest.PydanticSerializer(), middleware=[inngest.Middleware]
    )
    assert client.middleware == [inngest.Middleware]
    assert isinstance(client.serializer, inngest.PydanticSerializer)


def test_the_sdks_create_function_keywords_are_accepted() -> None:
    """create_function takes every keyword the SDK's does."""
    sdk_keywords = set(inspect.signature(inngest.Inngest.create_function).parameters)
    ours = set(inspect.signature(eventbus.Inngest.create_function).parameters)
    assert sdk_keywords - {"self"} <= ours


FLOW_CONTROL: list[tuple[str, Any]] = [
    ("concurrency", lambda m: [m.Concurrency(limit=2, key="event.data.user", scope="fn")]),
    ("throttle", lambda m: m.Throttle(limit=1, period=datetime.timedelta(seconds=5), burst=2)),
    ("rate_limit", lambda m: m.RateLimit(limit=10, period=60_000, key="event.data.user")),
    ("debounce", lambda m: m.Debounce(period=5000, timeout=datetime.timedelta(minutes=1))),
    ("batch_events", lambda m: m.Batch(max_size=10, timeout=5000, if_exp="true")),
    ("priority", lambda m: m.Priority(run="event.data.vip ? 60 : 0")),
    ("singleton", lambda m: m.Singleton(mode="skip", key="event.data.user")),
    ("idempotency", lambda m: "event.data.order"),
]


@pytest.mark.parametrize(("keyword", "make"), FLOW_CONTROL)
def test_flow_control_takes_either_sdks_objects(keyword: str, make: Any) -> None:
    """The same constructor calls build the SDK's and eventbus's options, and eventbus
    applies either (docs/flow-control.md)."""
    client = eventbus.Inngest(app_id="shop")
    for module in (eventbus, inngest):
        function = client.create_function(
            fn_id=f"f-{module.__name__}",
            trigger=eventbus.TriggerEvent(event="app/e"),
            **{keyword: make(module)},
        )(lambda ctx: None)
        rule = {
            "throttle": function.throttle,
            "singleton": function.singleton,
            "debounce": function.debounce,
            "concurrency": function.concurrency or None,
            "batch_events": function.batch,
            "priority": function.priority,
        }.get(keyword, function.rate_limit)
        assert rule is not None


def test_cron_triggers_construct_alike_and_are_accepted() -> None:
    """TriggerCron(cron, jitter) builds on both, and eventbus registers either, alone or
    with event triggers."""
    theirs = inngest.TriggerCron(cron="TZ=Europe/Paris 0 12 * * *", jitter="10s")
    ours = eventbus.TriggerCron(cron="TZ=Europe/Paris 0 12 * * *", jitter="10s")
    client = eventbus.Inngest(app_id="shop")
    for n, trigger in enumerate([ours, [eventbus.TriggerEvent(event="app/e"), ours], [theirs]]):
        function = client.create_function(fn_id=f"nightly-{n}", trigger=trigger)(lambda ctx: None)
        assert [c.cron for c in function.crons] == ["TZ=Europe/Paris 0 12 * * *"]


def test_errors_take_the_sdks_arguments() -> None:
    """NonRetriableError and RetryAfterError take the SDK's positional and keyword args."""
    for module in (inngest, eventbus):
        assert str(module.NonRetriableError("declined", True)) == "declined"
        assert module.NonRetriableError("declined", quiet=True).quiet
        retry = module.RetryAfterError("later", datetime.timedelta(seconds=30), True)
        assert retry.quiet
    assert str(eventbus.StepError("oh no", "ValueError", None)) == str(
        inngest.StepError("oh no", "ValueError", None)
    )
