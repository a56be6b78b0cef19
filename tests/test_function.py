"""create_function: configuration checks at declaration time."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import eventbus
import eventbus.testing
from eventbus._function import candidate_patterns
from tests.helpers import on


async def handler(ctx: eventbus.Context) -> None:
    return None


def declare(**kwargs: Any) -> eventbus.Function:
    client = eventbus.Inngest("app")
    kwargs.setdefault("fn_id", "f")
    kwargs.setdefault("trigger", on("app/e"))
    return client.create_function(**kwargs)(handler)


def test_function_ids_and_repr() -> None:
    """Function.id is f'{app_id}-{fn_id}'; the name defaults to fn_id."""
    fn = declare(fn_id="send-receipt", retries=3)
    assert fn.id == "app-send-receipt"
    assert fn.local_id == "send-receipt"
    assert fn.name == "send-receipt"
    assert fn.retries == 3
    assert fn.on_failure_fn_id is None
    assert repr(fn) == "<Function 'app-send-receipt' triggers=[app/e] retries=3>"
    assert declare(name="Send receipt").name == "Send receipt"
    assert declare().retries == 4


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fn_id": ""}, "fn_id"),
        ({"fn_id": "   "}, "fn_id"),
        ({"fn_id": 5}, "fn_id"),
        ({"name": 5}, "name"),
        ({"retries": -1}, "0 to 20"),
        ({"retries": "3"}, "retries"),
        ({"retries": True}, "retries"),
        ({"trigger": "app/e"}, "TriggerEvent\\(event='app/e'\\)"),
        ({"trigger": [on(f"e{i}") for i in range(11)]}, "limit of 10"),
        ({"trigger": [on("a"), on("a")]}, "duplicate trigger"),
        ({"trigger": [on("a"), "b"]}, "every trigger"),
    ],
)
def test_invalid_config_is_rejected_at_create_function(kwargs: dict[str, Any], match: str) -> None:
    """Every bad argument raises FunctionConfigError before the decorator is even applied."""
    client = eventbus.Inngest("app")
    kwargs.setdefault("fn_id", "f")
    kwargs.setdefault("trigger", on("app/e"))
    with pytest.raises(eventbus.FunctionConfigError, match=match):
        client.create_function(**kwargs)


@pytest.mark.parametrize(
    ("event", "match"),
    [
        ("", "non-empty"),
        (None, "non-empty"),
        ("x" * 256, "limit is 255"),
        ("*", "never matches"),
        ("app/user.update*", "never matches"),
        ("app/blog.*.published", "never matches"),
    ],
)
def test_bad_trigger_names(event: Any, match: str) -> None:
    """Trigger names are checked, including wildcards that could never match."""
    with pytest.raises(eventbus.FunctionConfigError, match=match):
        eventbus.TriggerEvent(event=event)


def test_trigger_expression_compiles_at_declaration() -> None:
    """A syntax error in expression= is an ExpressionError at once; non-strings are refused."""
    with pytest.raises(eventbus.ExpressionError, match="expected a value"):
        eventbus.TriggerEvent(event="a", expression="event.data.x ==")
    with pytest.raises(eventbus.ExpressionError, match="must be a non-empty string, got 5"):
        eventbus.TriggerEvent(event="a", expression=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        eventbus.TriggerEvent(event="a", if_exp="true")  # type: ignore[call-arg]
    trig = eventbus.TriggerEvent(event="a", expression="event.data.x == 1")
    assert trig.matches({"event": {"data": {"x": 1}}})
    assert not trig.matches({"event": {"data": {"x": 2}}})
    assert trig == eventbus.TriggerEvent(event="a", expression="event.data.x == 1")


def test_handlers_take_exactly_one_argument() -> None:
    """Handlers (async or sync) take ctx; other shapes are refused with the fix."""
    client = eventbus.Inngest("app")

    def sync(ctx: Any) -> None:
        return None

    async def two(ctx: Any, step: Any) -> None:
        return None

    assert client.create_function(fn_id="s", trigger=on("a"))(sync).is_async is False
    assert client.create_function(fn_id="a", trigger=on("a"))(handler).is_async is True
    decorate = client.create_function(fn_id="f", trigger=on("a"))
    with pytest.raises(eventbus.FunctionConfigError, match="one positional argument"):
        decorate(two)
    with pytest.raises(eventbus.FunctionConfigError, match="function taking ctx"):
        decorate(42)  # type: ignore[arg-type]
    with pytest.raises(eventbus.FunctionConfigError, match="on_failure"):
        client.create_function(fn_id="g", trigger=on("a"), on_failure=two)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_duplicate_function_ids_are_reported_when_an_engine_starts() -> None:
    """As in the SDK (which reports them at serve()): a repeated fn_id, the generated
    failure handler's included, replaces the earlier definition at decoration, and
    starting an engine names it."""
    client = eventbus.Inngest("app")
    client.create_function(fn_id="f", trigger=on("a"), on_failure=handler)(handler)
    client.create_function(fn_id="f", trigger=on("b"))(handler)  # replaces f
    client.create_function(fn_id="f-failure", trigger=on("b"))(handler)
    assert [f.local_id for f in client.functions()] == ["f", "f-failure"]
    assert [t.event for t in client.functions()[0].triggers] == ["b"]
    with pytest.raises(eventbus.FunctionConfigError, match=r"'app-f', 'app-f-failure'"):
        async with client:
            pass  # pragma: no cover
    with pytest.raises(eventbus.FunctionConfigError, match="more than once"):
        async with eventbus.testing.running(client):
            pass  # pragma: no cover


def test_the_ids_the_sdk_accepts_are_accepted() -> None:
    """fn_id and step ids may hold punctuation and emoji, and "/" as in "{id}/child"."""
    client = eventbus.Inngest("app")
    crazy = "crazy%$^&*(_+{|:<?☃️"
    fn = client.create_function(fn_id=crazy, trigger=on("a"))(handler)
    child = client.create_function(fn_id="parent/child", trigger=on("a"))(handler)
    assert (fn.id, child.id) == (f"app-{crazy}", "app-parent/child")


def test_candidate_patterns_examples() -> None:
    """Names generate themselves plus every '/'- and '.'-prefix wildcard."""
    assert sorted(candidate_patterns("app/user.created")) == sorted(
        ["app/user.created", "app/*", "app/user.*"]
    )
    assert sorted(candidate_patterns("api/v1/users")) == sorted(
        ["api/v1/users", "api/*", "api/v1/*"]
    )
    assert candidate_patterns("simple") == ["simple"]


@given(name=st.text(alphabet="ab/.", min_size=1, max_size=12))
def test_wildcard_patterns_match_prefixes(name: str) -> None:
    """A pattern 'p*' is a candidate exactly when p ends in / or . and prefixes the name."""
    patterns = set(candidate_patterns(name))
    assert name in patterns
    for end in range(1, len(name) + 1):
        prefix = name[:end]
        if prefix[-1] in "/.":
            assert prefix + "*" in patterns
    for pattern in patterns - {name}:
        assert pattern.endswith("*")
        assert name.startswith(pattern[:-1])


def test_retries_above_twenty_are_capped_with_a_warning() -> None:
    """retries=25 becomes 20, as Inngest caps it, with a ConfigWarning saying so."""
    client = eventbus.Inngest("app")
    with pytest.warns(eventbus.ConfigWarning, match="capped at 20"):

        @client.create_function(
            fn_id="many", trigger=eventbus.TriggerEvent(event="app/e"), retries=25
        )
        async def many(ctx: eventbus.Context) -> None:
            pass

    assert many.retries == 20
