"""Event values and send-time validation (pure, no engine)."""

from __future__ import annotations

import datetime
import math
import warnings
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import eventbus
from eventbus._event import TS_MAX_MS, TS_MIN_MS, prepare_batch, usual_batch

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text()
    | st.floats(allow_nan=False, allow_infinity=False)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=5)


def test_event_defaults_and_to_dict() -> None:
    """Event(name) has empty data and user; to_dict omits unset fields."""
    event = eventbus.Event("app/e")
    assert event.data == {}
    assert event.user == {}
    assert event.id is None
    assert event.ts is None
    assert event.v is None
    assert event.to_dict() == {"name": "app/e", "data": {}}
    full = eventbus.Event("app/e", {"a": 1}, id="k", ts=TS_MIN_MS, v="1", user={"u": 1})
    assert full.to_dict() == {
        "name": "app/e",
        "data": {"a": 1},
        "id": "k",
        "ts": TS_MIN_MS,
        "v": "1",
        "user": {"u": 1},
    }
    assert "id='k'" in repr(full)
    assert "ts=" in repr(full)


def test_event_is_frozen() -> None:
    """Events are immutable values."""
    event = eventbus.Event("app/e")
    with pytest.raises(AttributeError):
        event.name = "other"  # type: ignore[misc]
    assert event == eventbus.Event("app/e")


@given(
    name=st.text(min_size=1),
    data=json_objects,
    id=st.none() | st.text(),
    v=st.none() | st.text(),
    ts=st.none() | st.integers(TS_MIN_MS, TS_MAX_MS),
)
def test_valid_events_round_trip_through_dicts(
    name: str, data: dict[str, Any], id: str | None, v: str | None, ts: int | None
) -> None:
    """Every valid event survives to_dict()/from_dict() unchanged."""
    event = eventbus.Event(name, data, id=id or None, ts=ts, v=v)
    assert eventbus.Event.from_dict(event.to_dict()) == event


@given(data=json_objects)
def test_encoding_round_trips_json_data(data: dict[str, Any]) -> None:
    """The decoded copy the engine stores equals the data sent."""
    batch = prepare_batch(
        [eventbus.Event("a", data), {"name": "b", "data": data}], max_events=10, max_bytes=10**7
    )
    assert batch.decoded[0]["data"] == data == batch.decoded[1]["data"]


@pytest.mark.parametrize(
    ("raw", "field", "rule"),
    [
        ({"data": {}}, "name", "required"),
        ({"name": ""}, "name", "non-empty"),
        ({"name": 5}, "name", "non-empty"),
        ({"name": "a", "data": [1]}, "data", "mapping"),
        ({"name": "a", "data": "x"}, "data", "mapping"),
        ({"name": "a", "data": {1: "v"}}, None, "not a string"),
        ({"name": "a", "data": {"x": math.nan}}, None, "NaN"),
        ({"name": "a", "data": {"x": [math.inf]}}, None, "NaN and Infinity"),
        ({"name": "a", "data": {"x": {1, 2}}}, None, "set"),
        ({"name": "a", "data": {"x": datetime.datetime(2025, 1, 1)}}, None, "datetime"),
        ({"name": "a", "ts": 1.5}, "ts", "int of epoch milliseconds"),
        ({"name": "a", "ts": True}, "ts", "int of epoch milliseconds"),
        ({"name": "a", "ts": "1"}, "ts", "int of epoch milliseconds"),
        ({"name": "a", "ts": 1_700_000_000}, "ts", "seconds"),
        ({"name": "a", "ts": TS_MAX_MS + 1}, "ts", "2100"),
        ({"name": "a", "id": 5}, "id", "string"),
        ({"name": "a", "v": 2}, "v", "string"),
        ({"name": "a", "user": [1]}, "user", "mapping"),
    ],
)
def test_invalid_events_name_index_field_and_rule(
    raw: dict[str, Any], field: str | None, rule: str
) -> None:
    """Each rule rejects with an EventValidationError (a ValueError) naming index, field, rule."""
    with pytest.raises(eventbus.EventValidationError) as info:
        prepare(raw)
    error = info.value
    assert isinstance(error, ValueError)
    assert error.index == 1
    assert error.field == field
    assert rule in str(error)
    assert str(error).startswith("event [1]: ")


def test_invalid_event_values_name_the_rule_too() -> None:
    """The Event constructor applies the same rules as send()."""
    with pytest.raises(eventbus.EventValidationError, match=r"ts: .*seconds"):
        eventbus.Event("a", ts=1_700_000_000)
    with pytest.raises(eventbus.EventValidationError, match="name: must be a non-empty"):
        eventbus.Event("")
    with pytest.raises(eventbus.EventValidationError, match="id: must be a string"):
        eventbus.Event("a", id=5)  # type: ignore[arg-type]


def test_nested_errors_name_the_path() -> None:
    """A bad value deep in data is located by its path."""
    with pytest.raises(eventbus.EventValidationError, match=r"data\.a\[1\]\.b"):
        eventbus.Event("x", {"a": [0, {"b": object()}]})


def prepare(*items: object) -> list[eventbus.Event]:
    payload = [{"name": "ok"}, *items] if len(items) == 1 else list(items)
    return prepare_batch(payload, max_events=5000, max_bytes=10**6).events


def test_send_accepts_events_mappings_lists_and_tuples() -> None:
    """send() takes an Event, a mapping, or a list/tuple of them."""
    one = prepare_batch(eventbus.Event("a"), max_events=10, max_bytes=10**6)
    assert [e.name for e in one.events] == ["a"]
    assert len(one) == 1
    two = prepare_batch({"name": "b"}, max_events=10, max_bytes=10**6)
    assert [e.name for e in two.events] == ["b"]
    three = prepare_batch(({"name": "c"}, eventbus.Event("d")), max_events=10, max_bytes=10**6)
    assert [e.name for e in three.events] == ["c", "d"]
    with pytest.raises(eventbus.EventValidationError, match=r"takes an eventbus\.Event"):
        prepare_batch("app/e", max_events=10, max_bytes=10**6)
    with pytest.raises(eventbus.EventValidationError, match=r"event \[0\].*mapping"):
        prepare_batch([42], max_events=10, max_bytes=10**6)


def test_event_subclasses_are_sent_as_plain_events() -> None:
    """An Event subclass sent again arrives as a plain Event."""

    class Custom(eventbus.Event):
        pass

    (event,) = prepare_batch(Custom("a", {"x": 1}), max_events=1, max_bytes=10**6).events
    assert type(event) is eventbus.Event
    assert event.data == {"x": 1}


def test_json_subclasses_are_accepted() -> None:
    """str/int/float subclasses (such as enums) encode as their base type."""
    import enum

    class Color(str, enum.Enum):
        RED = "red"

    class Ratio(float):
        pass

    event, _ = prepare(
        eventbus.Event("a", {"c": Color.RED, "r": Ratio(0.5), "l": [Ratio(1.0)]}),
        eventbus.Event("b"),
    )
    assert event.data == {"c": "red", "r": 0.5, "l": [1.0]}
    with pytest.raises(eventbus.EventValidationError, match="NaN"):
        eventbus.Event("a", {"r": Ratio("nan")})


def test_zero_ts_and_none_data_mean_unset() -> None:
    """ts=0 means 'fill in now' and data=None means {}, as in the official SDK."""
    event = eventbus.Event.from_dict({"name": "a", "ts": 0, "data": None})
    assert event.ts is None
    assert event.data == {}


def test_from_dict_needs_a_mapping() -> None:
    """from_dict() rejects non-mappings clearly."""
    with pytest.raises(eventbus.EventValidationError, match="mapping"):
        eventbus.Event.from_dict([("name", "a")])  # type: ignore[arg-type]


def test_request_limits() -> None:
    """Too many events or too many bytes reject the whole send."""
    events = [eventbus.Event("a")] * 3
    with pytest.raises(eventbus.EventValidationError, match="max_events_per_request=2"):
        prepare_batch(events, max_events=2, max_bytes=10_000)
    with pytest.raises(eventbus.EventValidationError, match="max_request_bytes=50"):
        prepare_batch(events, max_events=10, max_bytes=50)
    batch = prepare_batch(events, max_events=3, max_bytes=10_000)
    assert len(batch.decoded) == 3
    assert batch.encoded.startswith(b"[")
    # The limit is on UTF-8 bytes, as on the wire.
    snow = {"name": "a", "data": {"s": "\u2603" * 10}}
    size = len(prepare_batch(snow, max_events=1, max_bytes=10_000).encoded)
    assert size > len('[{"name":"a","data":{"s":""}}]') + 10
    with pytest.raises(eventbus.EventValidationError):
        prepare_batch(snow, max_events=1, max_bytes=size - 1)


def test_reserved_names() -> None:
    """User sends may not use the inngest/ prefix, in any case."""
    prepare(eventbus.Event("app/inngest/x"), eventbus.Event("inngestx/y"))
    with pytest.raises(eventbus.EventValidationError, match=r"event \[1\]: name: 'InNgEsT/x'"):
        prepare(eventbus.Event("ok"), eventbus.Event("InNgEsT/x"))
    batch = prepare_batch({"name": "inngest/x"}, max_events=1, max_bytes=100, allow_reserved=True)
    assert batch.decoded[0]["name"] == "inngest/x"


def test_stored_events_are_made_by_the_engine() -> None:
    """StoredEvent cannot be constructed directly."""
    with pytest.raises(TypeError, match="made by the engine"):
        eventbus.StoredEvent("a")


@pytest.mark.anyio
async def test_max_request_bytes_is_enforced_by_the_client() -> None:
    """The client applies its configured limits on every send."""
    client = eventbus.Inngest("app", max_request_bytes=100, max_events_per_request=2)
    async with client:
        with pytest.raises(eventbus.EventValidationError, match="max_request_bytes"):
            await client.send({"name": "a", "data": {"x": "y" * 200}})
        with pytest.raises(eventbus.EventValidationError, match="max_events_per_request"):
            await client.send([{"name": "a"}] * 3)
    assert client.events() == []


@given(data=json_objects, name=st.text(min_size=1, max_size=20))
def test_request_size_limit_is_exact(data: dict[str, Any], name: str) -> None:
    """A send fits exactly when its JSON encoding is within max_request_bytes."""
    if name[:8].lower() == "inngest/":
        return
    events = [{"name": name, "data": data}, {"name": name, "id": "k", "data": data}]
    size = len(prepare_batch(events, max_events=2, max_bytes=10**9).encoded)
    batch = prepare_batch(events, max_events=2, max_bytes=size)
    assert batch.decoded[0]["data"] == data
    with pytest.raises(eventbus.EventValidationError, match="max_request_bytes"):
        prepare_batch(events, max_events=2, max_bytes=size - 1)


def _outcome(payload: object, max_bytes: int) -> object:
    try:
        return prepare_batch(payload, max_events=5, max_bytes=max_bytes).decoded
    except eventbus.EventValidationError as exc:
        return (type(exc), str(exc).replace("event 0: ", ""))


@given(
    name=st.text(min_size=1, max_size=12) | st.sampled_from(["app/e", "inngest/x", "Inngest/y"]),
    data=st.none() | json_objects | st.just([1]),
    extra=st.dictionaries(
        st.sampled_from(["id", "ts", "v", "user", "meta"]),
        st.none() | st.text(max_size=5) | st.integers(TS_MIN_MS, TS_MAX_MS),
        max_size=2,
    ),
    max_bytes=st.integers(50, 400),
)
def test_one_dict_send_agrees_with_the_general_path(
    name: str, data: Any, extra: dict[str, Any], max_bytes: int
) -> None:
    """A send of one dict (checked by a shortcut when it has the usual shape) is
    accepted or refused exactly as the same event in a list, which takes the general
    path: the same wire dicts, the same error."""
    raw: dict[str, Any] = {"name": name, **extra}
    if data is not None:
        raw["data"] = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert _outcome(raw, max_bytes) == _outcome([raw], max_bytes)


def test_the_usual_batch_takes_the_shortcut_and_copies_its_data() -> None:
    """The shortcut applies to the common shape (so the test above compares both
    paths), and, like the general path, keeps a copy of the data."""
    data = {"orderId": 1, "items": [{"sku": "a"}]}
    batch = usual_batch({"name": "app/e", "data": data, "id": "k"}, 1, 10**6)
    assert batch is not None
    data["items"][0]["sku"] = "changed"
    assert batch.decoded == [
        {"name": "app/e", "data": {"orderId": 1, "items": [{"sku": "a"}]}, "id": "k"}
        | {"ts": None, "v": None, "user": {}}
    ]
    assert usual_batch({"name": "inngest/x"}, 1, 10**6) is None
    assert usual_batch({"name": "app/e", "user": {"a": 1}}, 1, 10**6) is None


def test_unknown_fields_are_dropped_with_one_warning_per_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An unknown top-level field (the JS SDK's ``meta``, say) is dropped as Inngest drops
    it; an in-process send warns the first time each name is seen."""
    from eventbus import _event

    monkeypatch.setattr(_event, "_WARNED_FIELDS", set())
    with pytest.warns(eventbus.ConfigWarning, match=r"\['meta'\] dropped"):
        batch = prepare_batch([{"name": "a", "meta": {"x": 1}}], max_events=10, max_bytes=10**6)
    assert batch.decoded[0].keys() == {"name", "data", "id", "ts", "v", "user"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prepare_batch([{"name": "a", "meta": 2}], max_events=10, max_bytes=10**6)  # once
        quiet = prepare_batch(
            [{"name": "a", "other": 1}], max_events=10, max_bytes=10**6, warn_unknown=False
        )
    assert "other" not in quiet.decoded[0]


@given(
    v=st.none() | st.text(max_size=3),
    deduplicated=st.booleans(),
)
def test_a_stored_event_reads_every_field_whether_or_not_it_was_set(
    v: str | None, deduplicated: bool
) -> None:
    """make_stored leaves the fields that hold their usual value unset; they read as that
    value all the same, and a name that is no field is still an AttributeError."""
    from eventbus._event import make_stored

    stored = make_stored("app/e", {"k": 1}, "id-1", 5, v, {}, "in-1", 6, deduplicated)
    assert (stored.v, stored.deduplicated) == (v, deduplicated)
    assert stored.expr_view()["name"] == "app/e"
    assert stored.wire() == {
        "name": "app/e",
        "data": {"k": 1},
        "user": {},
        "id": "id-1",
        "ts": 5,
    } | ({} if v is None else {"v": v})
    assert stored == make_stored("app/e", {"k": 1}, "id-1", 5, v, {}, "in-1", 6, deduplicated)
    with pytest.raises(AttributeError, match="'StoredEvent' object has no attribute 'nope'"):
        stored.nope  # noqa: B018
