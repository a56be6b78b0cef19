"""The payload walk: whatever it accepts encodes as UTF-8 JSON; the rest is a typed error."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import eventbus
from eventbus._json import MAX_NESTING_DEPTH, OutputError, _walk, encode_output, json_copy
from tests.helpers import make_client


def json_trees(text: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**70), max_value=2**70)
        | st.floats(allow_nan=False, allow_infinity=False)
        | text,
        lambda children: (
            st.lists(children, max_size=4)
            | st.tuples(children, children)
            | st.dictionaries(text, children, max_size=4)
        ),
        max_leaves=30,
    )


json_values = json_trees(st.text(max_size=8))
#: Text that may hold lone surrogates (category Cs), which hypothesis leaves out by default.
any_text = st.text(st.characters(exclude_categories=()), max_size=8)


def nested(levels: int) -> Any:
    value: Any = "leaf"
    for n in range(levels):
        value = [value] if n % 2 else {"k": value}
    return value


@given(json_values)
def test_copy_is_the_json_round_trip_and_the_bound_holds(value: Any) -> None:
    """The copy equals a JSON round trip of the value, and its size bound is never below
    the real compact UTF-8 size."""
    copy, bound = json_copy(value, "data")
    encoded = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    assert copy == json.loads(encoded)
    assert bound >= len(encoded)
    assert _walk(value, "data") == (copy, bound)  # the full walk agrees with the fast path


@given(json_trees(any_text))
def test_accepted_values_encode_as_utf8(value: Any) -> None:
    """The walk accepts a tree exactly when its compact JSON encodes as UTF-8."""
    encoded = json.dumps({"v": value}, ensure_ascii=False)
    try:
        encoded.encode()
    except UnicodeEncodeError:
        with pytest.raises(eventbus.EventValidationError, match="not valid Unicode"):
            json_copy({"v": value}, "data")
    else:
        copy, _ = json_copy({"v": value}, "data")
        assert json.dumps(copy, ensure_ascii=False) == encoded


def test_a_cycle_is_reported_as_a_cycle() -> None:
    """A mapping that contains itself is an EventValidationError naming the path."""
    data: dict[str, Any] = {"items": []}
    data["items"].append(data)
    with pytest.raises(eventbus.EventValidationError, match=r"data\.items\[0\].*reference cycle"):
        eventbus.Event("app/e", data)


def test_nesting_is_bounded_whatever_the_callers_stack() -> None:
    """MAX_NESTING_DEPTH levels are accepted and one more is rejected, even when the
    caller is already deep in recursion (the walk does not recurse)."""
    ok = {"k": nested(MAX_NESTING_DEPTH - 2)}
    too_deep = {"k": nested(MAX_NESTING_DEPTH)}
    results: list[str] = []

    def deep_caller(depth: int) -> None:
        if depth:
            deep_caller(depth - 1)
            return
        eventbus.Event("app/e", ok)
        try:
            eventbus.Event("app/e", too_deep)
        except eventbus.EventValidationError as exc:
            results.append(str(exc))

    deep_caller(sys.getrecursionlimit() - 100)
    assert len(results) == 1
    assert f"nests more than {MAX_NESTING_DEPTH} levels" in results[0]
    assert "..." in results[0]  # the path is shortened


def test_an_accepted_deep_payload_encodes_from_a_deep_stack() -> None:
    """The deepest accepted payload still encodes with json from a deep caller."""
    copy, _ = json_copy({"k": nested(MAX_NESTING_DEPTH - 2)}, "data")

    def deep_caller(depth: int) -> str:
        return deep_caller(depth - 1) if depth else json.dumps(copy)

    assert json.loads(deep_caller(400)) == copy


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"n": 10**400}, r"integer at data\.n .* outside the range"),
        ({"n": -(10**309)}, "outside the range"),
        ({"s": "\ud800"}, r"string at data\.s is not valid Unicode"),
        ({"\udc00": 1}, r"key at data\.\\udc00 is not valid Unicode"),
        ({"l": ["ok", "\udfff"]}, r"string at data\.l\[1\]"),
        ({"f": float("inf")}, "NaN and Infinity"),
        ({1: "x"}, "is not a string"),
        ({"x": {1, 2}}, "is a set"),
    ],
)
def test_values_json_cannot_carry_are_rejected(data: dict[Any, Any], message: str) -> None:
    """Each value that could not be encoded later is rejected now, naming where it is."""
    with pytest.raises(eventbus.EventValidationError, match=message):
        eventbus.Event("app/e", data)


def test_the_largest_float_range_integer_is_accepted() -> None:
    """An integer that fits a 64-bit float (as Inngest's server requires) is accepted."""
    assert json_copy({"n": 10**300}, "data")[0] == {"n": 10**300}
    assert json_copy(10**300, "data")[0] == 10**300


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"name": "app/\ud800"}, "name"),
        ({"name": "app/e", "id": "\ud800"}, "id"),
        ({"name": "app/e", "v": "\ud800"}, "v"),
        ({"name": "app/e", "user": {"u": "\ud800"}}, "user"),
    ],
)
@pytest.mark.anyio
async def test_send_rejects_invalid_text_in_every_field(event: dict[str, Any], field: str) -> None:
    """Lone surrogates in any field make send() raise EventValidationError, accepting
    nothing."""
    client = make_client()
    async with client:
        with pytest.raises(eventbus.EventValidationError, match=f"{field}.*not valid Unicode"):
            await client.send([{"name": "app/ok"}, event])
        assert client.events() == []


@pytest.mark.anyio
async def test_send_reports_a_cycle_with_its_index() -> None:
    """send() of a cyclic payload names the event's index; nothing is accepted."""
    client = make_client()
    data: dict[str, Any] = {}
    data["me"] = data
    async with client:
        with pytest.raises(eventbus.EventValidationError, match=r"\[1\].*cycle") as caught:
            await client.send([{"name": "app/ok"}, {"name": "app/e", "data": data}])
        assert caught.value.index == 1
        assert client.events() == []


def test_encode_output_says_why() -> None:
    """Outputs that cannot be stored raise OutputError with the reason."""
    with pytest.raises(OutputError, match="nests too deeply"):
        encode_output(nested(5000))
    with pytest.raises(OutputError, match="not valid Unicode"):
        encode_output({"s": "\ud800"})
    with pytest.raises(OutputError, match="is not JSON"):
        encode_output({"s": object()})
    assert encode_output({"é": [1, None]}) == '{"é":[1,null]}'
