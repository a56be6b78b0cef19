"""The expression compiler: Inngest's CEL subset and its null/unknown semantics."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import eventbus
from eventbus import ExpressionError, FunctionConfigError
from eventbus._expr import UNKNOWN, compile_expression

EVENT = {
    "name": "shop/order",
    "data": {
        "total": 120,
        "price": 9.5,
        "currency": "EUR",
        "tags": ["vip", "new"],
        "customer": {"id": "c1", "email": "A@Example.com"},
        "none": None,
        "zero": 0,
        "empty": "",
        "flag": True,
    },
    "user": {},
    "id": "evt-1",
    "ts": 1.7e12,
}


def ev(source: str, env: dict[str, Any] | None = None) -> bool:
    return compile_expression(source).matches(env if env is not None else {"event": EVENT})


@pytest.mark.parametrize(
    "source",
    [
        "event.data.total == 120",
        "event.data.total == 120.0",
        "event.data.currency == 'EUR'",
        'event.data.currency == "EUR"',
        "event.data.total > 100 && event.data.currency != 'USD'",
        "event.data.total < 100 || event.data.flag",
        "!(event.data.total < 100)",
        "event.data.customer.id == 'c1'",
        "event.data['customer']['id'] == 'c1'",
        "event.data.tags[0] == 'vip'",
        "'vip' in event.data.tags",
        "'customer' in event.data",
        "has(event.data.customer.email)",
        "!has(event.data.customer.phone)",
        "size(event.data.tags) == 2",
        "event.data.tags.size() == 2",
        "size(event.data.currency) == 3",
        "event.data.currency.contains('U')",
        "event.data.tags.contains('new')",
        "event.data.customer.email.startsWith('A@')",
        "event.data.customer.email.endsWith('.com')",
        "event.data.customer.email.matches('^[A-Z]@')",
        "lowercase(event.data.customer.email) == 'a@example.com'",
        "uppercase(event.data.currency) == 'EUR'",
        "event.data.total + 1 == 121",
        "event.data.currency + '-' + event.data.total == 'EUR-120'",
        "event.data.price * 2 == 19.0",
        "event.data.total / 7 == 17",
        "event.data.total % 7 == 1",
        "-event.data.total == -120",
        "event.data.total - 20 == 100",
        "event.data.total > 100 ? event.data.flag : false",
        "int('42') == 42",
        "double(event.data.total) == 120.0",
        "string(event.data.total) == '120'",
        "string(true) == 'true'",
        "bool('true')",
        "uint(5) == 5",
        "event.data.tags.exists(t, t == 'vip')",
        "event.data.tags.all(t, size(t) == 3)",
        "event.data.tags.exists_one(t, t == 'new')",
        "event.data.tags.map(t, t + '!') == ['vip!', 'new!']",
        "event.data.tags.filter(t, t != 'vip') == ['new']",
        "event.data.customer.exists(k, k == 'email')",
        "[1, 2] + [3] == [1, 2, 3]",
        "{'a': 1}.a == 1",
        "{'a': [1, {'b': 2}]} == {'a': [1, {'b': 2}]}",
        "event.name == 'shop/order' && event.id == 'evt-1' && event.ts > 0",
        "0x10 == 16",
        "1e3 == 1000",
        ".5 == 0.5",
        "r'a\\b' == 'a' + '\\\\' + 'b'",
        "'\\x41\\u0042\\n' == 'AB\\n'",
        "null == null",
        "true != false",
        "'a' < 'b'",
        "7 / -2 == -3 && -7 % 2 == -1",
        "event.data.tags != ['vip']",
        "event.data.customer != {'id': 'c2', 'email': 'x'}",
    ],
)
def test_true_expressions(source: str) -> None:
    """Each expression is true for the sample event."""
    assert ev(source), source


@pytest.mark.parametrize(
    "source",
    [
        "event.data.total == '120'",  # no implicit string/number equality
        "event.data.flag == 1",  # bools are not numbers
        "event.data.total > 'a'",  # mixed comparison is an error -> false
        "event.data.total / 0 == 1",  # division by zero -> false
        "event.data.total",  # non-bool result -> false
        "event.data.missing",  # unknown result -> false
        "event.data.currency.contains(1)",
        "event.data.missing.contains('x')",
        "lowercase(event.data.total) == 'x'",
        "event.data.customer.email.matches('[')",
        "int('x') == 1",
        "uint(-1) == 1",
        "bool('maybe')",
        "double([1]) == 1.0",
        "int(event.data.missing) == 0",
        "size(event.data.total) == 0",
        "event.data.tags.all(t, t == 'vip')",
        "event.data.total.exists(t, true)",
        "-event.data.currency == 1",
        "{'a': 1} + {'b': 2} == {}",
        "event.data.tags[5] == 'x'",
        "event.data.tags[0.5] == 'x'",
        "event.data.total.x == null && false",
        "int(true) == 1",
        "[1] == [1, 2]",
    ],
)
def test_false_expressions(source: str) -> None:
    """Each expression is false (or fails, which counts as false)."""
    assert not ev(source), source


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        # Inngest's unknown (missing field) semantics.
        ("event.data.missing == null", True),
        ("event.data.missing == 'x'", False),
        ("event.data.missing != null", False),
        ("event.data.missing != 'x'", True),
        ("event.data.missing < 5", True),
        ("event.data.missing <= 5", True),
        ("event.data.missing > 5", False),
        ("event.data.missing >= 5", False),
        ("5 > event.data.missing", True),
        ("5 < event.data.missing", False),
        ("size(event.data.missing) == 0", True),
        ("event.data.missing + 1 == 1", True),
        ("1 + event.data.missing == 1", True),
        ("'x' in event.data.missing", False),
        ("event.data.missing in ['x']", False),
        ("has(event.data.missing)", False),
        ("event.data.missing.deeper == null", True),
        # null: equal only to null, zero value of the other side in comparisons.
        ("event.data.none == null", True),
        ("event.data.none == 0", False),
        ("event.data.none != 0", True),
        ("event.data.none < 1", True),
        ("event.data.none < 'a'", True),
        ("event.data.none >= false", True),
        ("null + 2 == 2", True),
        ("has(event.data.none)", True),
        # JS-like truthiness in && || ! and ?:.
        ("event.data.zero || event.data.flag", True),
        ("event.data.empty && true", False),
        ("!event.data.empty", True),
        ("!event.data.missing", True),
        ("event.data.tags ? true : false", True),
        ("event.data.customer && true", True),
        ("1.5 && true", True),
        # Errors are absorbed by || and && when the other side decides.
        ("1 / 0 == 1 || true", True),
        ("true || 1 / 0 == 1", True),
        ("1 / 0 == 1 && false", False),
        ("false && 1 / 0 == 1", False),
        ("1 / 0 == 1 || false", False),
        ("1 / 0 == 1 && true", False),
    ],
)
def test_unknown_and_null_semantics(source: str, expected: bool) -> None:
    """Missing fields and null behave as in Inngest's CEL environment."""
    assert ev(source) is expected, source


def test_async_and_vars_variables() -> None:
    """async and vars are variables too; missing ones are unknown."""
    env = {"event": {"data": {"id": 1}}, "async": {"data": {"id": 1}}}
    assert ev("event.data.id == async.data.id", env)
    assert ev("vars.x == null", env)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("event.data.x ==", "expected a value"),
        ("event.data.x === 1", "unexpected character"),
        ("foo == 1", "unknown name 'foo'"),
        ("has(1)", "field selection"),
        ("nofn(1)", "unknown function nofn()"),
        ("event.data.x.nomethod(1)", "unknown method nomethod()"),
        ("'unterminated", "unexpected character"),
        ("event.data.(x)", "field name after '.'"),
        ("(event.data.x == 1", "expected ')'"),
        ("event.data.x == 1)", "unexpected ')'"),
        ("'\\q'", "unknown escape"),
        ("'\\x4'", "bad escape"),
        ("event.data.tags.exists(1, true)", "variable name"),
        ("event.data.x ? 1", "expected ':'"),
        ("", "non-empty"),
        ("   ", "non-empty"),
    ],
)
def test_syntax_errors_point_at_the_problem(source: str, message: str) -> None:
    """A bad expression raises ExpressionError (a FunctionConfigError) with a caret."""
    with pytest.raises(ExpressionError, match=re.escape(message)) as info:
        compile_expression(source)
    assert isinstance(info.value, FunctionConfigError)
    assert "^" in str(info.value)


def test_constant_expressions_fold() -> None:
    """Constant sub-expressions are computed once, at compile time."""
    assert ev("1 + 2 == 3 && !false && (true ? 1 : 2) == 1 && -(2) == -2 && ([1, 2] == [1, 2])")
    assert ev("false || 'a' + 1 == 'a1'")
    assert not ev("1 / 0 == 0")
    assert compile_expression("1 + 1").evaluate({}) == 2
    assert compile_expression("event.data.missing").evaluate({"event": EVENT}) is UNKNOWN
    assert repr(compile_expression("true")) == "CompiledExpression('true')"
    assert repr(UNKNOWN) == "UNKNOWN"


def test_string_formatting_of_numbers_in_concatenation() -> None:
    """Floats with integral values concatenate without a fraction, as Go's %v does."""
    assert ev("'n' + 2.0 == 'n2' && 'n' + 2.5 == 'n2.5' && 'x' + null == 'x'")
    assert ev("'b' + true == 'btrue' && 'b' + false == 'bfalse'")
    assert ev("string(null) == 'null' && string(1e20) == '1e+20'")


small_ints = st.integers(-1000, 1000)


@given(a=small_ints, b=small_ints)
def test_integer_arithmetic_and_comparisons_match_python(a: int, b: int) -> None:
    """For ints, + - * < <= > >= == != agree with Python; / and % truncate like CEL."""
    env = {"event": {"data": {"a": a, "b": b}}}
    for op in ("<", "<=", ">", ">=", "==", "!="):
        assert ev(f"event.data.a {op} event.data.b", env) == eval(f"a {op} b")
    assert compile_expression("event.data.a + event.data.b").evaluate(env) == a + b
    assert compile_expression("event.data.a - event.data.b").evaluate(env) == a - b
    assert compile_expression("event.data.a * event.data.b").evaluate(env) == a * b
    if b:
        quotient = compile_expression("event.data.a / event.data.b").evaluate(env)
        remainder = compile_expression("event.data.a % event.data.b").evaluate(env)
        assert quotient == int(a / b)
        assert quotient * b + remainder == a


@given(value=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20))
def test_string_literals_round_trip(value: str) -> None:
    """Any string written as an escaped literal compiles back to itself."""
    escaped = (
        value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r")
    )
    assert compile_expression(f"'{escaped}'").evaluate({}) == value


@given(key=st.text(min_size=1, max_size=5), value=st.integers() | st.text(max_size=5))
def test_index_access_matches_dict_lookup(key: str, value: Any) -> None:
    """event.data[k] == v holds exactly when data has k mapped to v."""
    env = {"event": {"data": {key: value}}}
    literal = (
        repr(value)
        if isinstance(value, int)
        else "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    )
    escaped_key = key.replace("\\", "\\\\").replace("'", "\\'")
    if "\n" in key + str(value) or "\r" in key + str(value):
        return
    assert ev(f"event.data['{escaped_key}'] == {literal}", env)
    assert not ev(f"event.data['{escaped_key}'] != {literal}", env)
    assert ev(f"event.data['{escaped_key}' + '\\x00'] == null", env)


class _Clock:
    """A stand-in clock at 2026-01-01T00:00:00Z."""

    def now_ms(self) -> int:
        return 1_767_225_600_000


def _env(**event_data: Any) -> dict[str, Any]:
    from eventbus._expr import CLOCK_KEY

    return {"event": {"data": event_data}, CLOCK_KEY: _Clock()}


@pytest.mark.parametrize(
    ("source", "data", "expected"),
    [
        ("date(event.data.at) < now()", {"at": "2025-06-01T12:00:00Z"}, True),
        ("date(event.data.at) > now()", {"at": "2026-06-01"}, True),
        ("date(event.data.at) < now()", {"at": "Thu, 01 Jan 2025 10:00:00 GMT"}, True),
        # Inngest reads JSON numbers as doubles, which date() does not take (checked
        # against the real server); int literals in the expression it reads by size.
        ("date(event.data.at) < now()", {"at": 1_735_689_600}, False),
        ("date(1735689600) == date('2025-01-01T00:00:00Z')", {}, True),
        ("date(1735689600000) == date('2025-01-01T00:00:00Z')", {}, True),
        ("date(event.data.at) == date(1735689600000000000)", {"at": "2025-01-01"}, True),
        ("date(event.data.at) < now()", {"at": 5}, False),  # before 2000: not a time
        ("date(event.data.at) < now()", {"at": "next tuesday"}, False),
        ("now_plus('1h') > now() && now_minus('1d') < now()", {}, True),
        ("now_plus(event.data.d) > now()", {"d": "2h30m"}, True),
        ("now_plus('soon') > now()", {}, False),
        ("b64decode(event.data.b) == 'hello'", {"b": "aGVsbG8="}, True),
        ("b64decode(event.data.b) == ''", {"b": "not base64!"}, True),
        ("json_parse(event.data.j).n == 3", {"j": '{"n": 3}'}, True),
        ("size(json_parse(event.data.j)) == 0", {"j": "[1, 2]"}, True),
    ],
)
def test_inngests_extra_functions(source: str, data: dict[str, Any], expected: bool) -> None:
    """date(), now(), now_plus(), now_minus(), b64decode() and json_parse() behave as
    Inngest's, reading the engine's clock."""
    assert compile_expression(source).matches(_env(**data)) is expected


def test_now_without_a_clock_is_false() -> None:
    """Without the engine's clock in the environment, now() cannot be evaluated."""
    assert compile_expression("now() > date('2000-01-02')").matches({"event": {}}) is False


@pytest.mark.parametrize(
    ("if_exp", "refused"),
    [
        ("has(async.data.id)", "has()"),
        ("async.data.items.exists(i, i > 1)", "exists()"),
        ("size(async.data.items) > 0", "size()"),
        ("async.data.email.startsWith('a')", "startsWith()"),
        ("date(async.data.at) < now()", "date(), now()"),
    ],
)
def test_cancel_expressions_follow_inngests_restrictive_policy(if_exp: str, refused: str) -> None:
    """A cancel rule's if may compare fields and use int()/uint()/double() only; macros
    and other functions are rejected with the reason, as Inngest rejects them."""
    with pytest.raises(eventbus.ExpressionError, match=re.escape(f"calls {refused};")):
        eventbus.Cancel(event="app/stop", if_exp=if_exp)
    allowed = "int(async.data.n) == event.data.n && (async.data.k in ['a', 'b'] || !async.data.x)"
    assert eventbus.Cancel(event="app/stop", if_exp=allowed).compiled is not None


@pytest.mark.anyio
async def test_trigger_expressions_read_the_clients_clock() -> None:
    """now() in a trigger expression is the client's (virtual) clock."""
    import datetime

    clock = eventbus.VirtualClock(datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc))
    client = eventbus.Inngest("app", clock=clock)

    @client.create_function(
        fn_id="fresh",
        trigger=eventbus.TriggerEvent(
            event="app/e", expression="date(event.data.at) > now_minus('1h')"
        ),
    )
    async def fresh(ctx: eventbus.Context) -> None:
        pass

    async with client:
        await client.send(
            [
                {"name": "app/e", "data": {"at": "2029-12-31T23:30:00Z"}},
                {"name": "app/e", "data": {"at": "2029-12-31T20:00:00Z"}},
            ]
        )
        await client.settle()
        assert len(client.runs()) == 1
