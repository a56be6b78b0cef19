"""Events: the value users send, its validation, and the stored form the engine keeps.

Rules (Inngest's Event API, applied before anything is accepted):

* ``name`` is a non-empty string; names starting with ``inngest/`` (any case) are
  reserved for system events and rejected in user sends.
* ``data`` is a mapping with string keys whose whole tree is JSON (``None`` means ``{}``);
  NaN/Infinity, non-string keys, sets, datetimes, reference cycles, nesting deeper than
  ``MAX_NESTING_DEPTH`` (256) levels, integers beyond a 64-bit float's range and strings
  that are not valid Unicode (lone surrogates) are rejected (see ``_json``).
  ``data["_inngest"]`` is reserved and stripped.
* ``ts`` is an int of epoch milliseconds between 1980-01-01 and 2100-01-01; it defaults
  to the client clock's now.
* ``id`` is an optional string (the deduplication key), ``v`` an optional string,
  ``user`` a mapping (default ``{}``).

A send is all-or-nothing: the first invalid event raises :class:`EventValidationError`
naming its index, the field and the rule, and nothing from that send is accepted.
"""

from __future__ import annotations

import datetime
import json
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from ._clock import ms_to_datetime
from ._errors import ConfigWarning, EventValidationError
from ._json import _fast, _Unusual, json_copy

TS_MIN_MS = 315_532_800_000  # 1980-01-01T00:00:00Z
TS_MAX_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z
RESERVED_PREFIX = "inngest/"
_FIELDS = frozenset({"name", "data", "id", "ts", "v", "user"})


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise EventValidationError(f"must be a non-empty string, got {name!r}", field="name")
    return name


def _check_optional_str(value: object, field: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise EventValidationError(f"must be a string or None, got {value!r}", field=field)


def _check_ts(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise EventValidationError(
            f"must be an int of epoch milliseconds, got {value!r}; "
            "for example int(datetime.timestamp() * 1000)",
            field="ts",
        )
    if value == 0:
        return None  # 0 means "unset", as in the official SDKs
    if not TS_MIN_MS <= value <= TS_MAX_MS:
        raise EventValidationError(
            f"{value} is outside 1980-01-01..2100-01-01 in epoch milliseconds "
            "(was it given in seconds?)",
            field="ts",
        )
    return value


def _check_mapping(value: object, field: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise EventValidationError(
            f"must be a mapping with string keys, got {type(value).__name__} {value!r}",
            field=field,
        )
    json_copy(value, field)  # validates the whole tree
    return value


@attrs.frozen(repr=False)
class Event:
    """One event: ``name`` plus a JSON ``data`` payload, as Inngest defines it.

    Invalid values raise :class:`EventValidationError` at construction. ``id`` is the
    deduplication key, ``ts`` epoch milliseconds (filled in by ``send`` when ``None``).
    """

    name: str = attrs.field(converter=_check_name)
    data: Mapping[str, Any] = attrs.field(factory=dict)
    id: str | None = None
    ts: int | None = None
    v: str | None = None
    user: Mapping[str, Any] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "data", _check_mapping(self.data, "data"))
        object.__setattr__(self, "user", _check_mapping(self.user, "user"))
        object.__setattr__(self, "id", _check_optional_str(self.id, "id"))
        object.__setattr__(self, "v", _check_optional_str(self.v, "v"))
        object.__setattr__(self, "ts", _check_ts(self.ts))

    def to_dict(self) -> dict[str, Any]:
        """The event in Inngest's wire shape; unset optional fields are omitted."""
        out: dict[str, Any] = {"name": self.name, "data": dict(self.data)}
        if self.id:
            out["id"] = self.id
        if self.ts is not None:
            out["ts"] = self.ts
        if self.v is not None:
            out["v"] = self.v
        if self.user:
            out["user"] = dict(self.user)
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Event:
        """Build an event from a mapping with Inngest's field names; unknown keys are an error."""
        if not isinstance(raw, Mapping):
            raise EventValidationError(
                f"an event must be an eventbus.Event or a mapping, got {type(raw).__name__} {raw!r}"
            )
        wire, _ = _wire_from_mapping(raw)
        return cls(wire["name"], wire["data"], wire["id"], wire["ts"], wire["v"], wire["user"])

    # The official SDK's pydantic model methods that app code and tests call.

    def model_dump(self, **_options: Any) -> dict[str, Any]:
        """The event as the SDK's ``inngest.Event.model_dump()`` gives it: ``data``,
        ``id`` (``""`` when unset), ``name``, ``ts`` (``0`` when unset), plus ``v`` and
        ``user`` when set. Options such as ``mode="json"`` change nothing: it is JSON."""
        return {**self.to_dict(), "id": self.id or "", "ts": self.ts or 0}

    @classmethod
    def model_validate(cls, obj: object) -> Event:
        """An Event from a mapping (or an Event, or an ``inngest.Event``); invalid input
        raises :class:`EventValidationError`."""
        if isinstance(obj, Event):
            return obj
        raw = _foreign_event(obj)
        return cls.from_dict(raw if isinstance(raw, Mapping) else obj)  # type: ignore[arg-type]

    @classmethod
    def from_raw(cls, raw: object) -> Event | EventValidationError:
        """Like :meth:`model_validate`, but returns the error instead of raising it, as the
        SDK's ``Event.from_raw`` does."""
        try:
            return cls.model_validate(raw)
        except EventValidationError as exc:
            return exc

    def __repr__(self) -> str:
        parts = [f"name={self.name!r}", f"data={dict(self.data)!r}"]
        if self.id is not None:
            parts.append(f"id={self.id!r}")
        if self.ts is not None:
            parts.append(f"ts={self.ts}")
        return f"Event({', '.join(parts)})"


class StoredEvent(Event):
    """An event as the engine received and stored it.

    Besides the event's own fields (``id`` is the user's id, or the engine id when none
    was given; ``ts`` is always set) it has ``internal_id`` (the id ``send`` returned),
    ``received_at`` and ``deduplicated`` (True when an earlier event with the same ``id``
    was received within 24 hours, so this one started no function run).
    """

    __slots__ = ("_views", "deduplicated", "internal_id", "received_at_ms")

    internal_id: str
    received_at_ms: int
    deduplicated: bool
    #: (expr_view, wire) once either is computed (one slot: most events need neither).
    _views: tuple[dict[str, Any] | None, dict[str, Any] | None] | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # pragma: no cover - guard
        raise TypeError("StoredEvent is made by the engine; create an eventbus.Event instead")

    if not TYPE_CHECKING:  # (for type checkers, every field is set)

        def __getattr__(self, name: str) -> Any:
            # make_stored leaves v, deduplicated and _views unset while they hold their
            # usual value: three slot writes less on every event. Reading an unset slot
            # lands here.
            try:
                return _USUAL[name]
            except KeyError:
                raise AttributeError(
                    f"{type(self).__name__!r} object has no attribute {name!r}"
                ) from None

    @property
    def received_at(self) -> datetime.datetime:
        """When the engine received the event (client clock, aware UTC)."""
        return ms_to_datetime(self.received_at_ms)

    def expr_view(self) -> dict[str, Any]:
        """The event as expressions see it: ``{name, data, user, id, ts[, v]}``."""
        views = self._views
        view = None if views is None else views[0]
        if view is None:
            view = {
                "name": self.name,
                "data": self.data,
                "user": self.user,
                "id": self.id,
                "ts": float(self.ts or 0),
            }
            if self.v:
                view["v"] = self.v
            _set_views(self, (view, None if views is None else views[1]))
        return view

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["user"] = dict(self.user)
        return out

    def wire(self) -> dict[str, Any]:
        """The event as system events embed it (computed once; do not mutate)."""
        views = self._views
        wire = None if views is None else views[1]
        if wire is None:
            wire = {"name": self.name, "data": self.data, "user": self.user, "id": self.id}
            wire["ts"] = self.ts
            if self.v is not None:
                wire["v"] = self.v
            _set_views(self, (None if views is None else views[0], wire))
        return wire

    def __repr__(self) -> str:
        flag = " deduplicated" if self.deduplicated else ""
        return (
            f"<StoredEvent {self.name!r} internal_id={self.internal_id!r} id={self.id!r}"
            f"{flag} data={dict(self.data)!r}>"
        )


def _slot_setter(name: str) -> Any:
    for cls in StoredEvent.__mro__:
        if name in cls.__dict__:
            return cls.__dict__[name].__set__
    raise AssertionError(name)  # pragma: no cover


# Setting slots through their descriptors is the cheapest way to fill a frozen instance.
(
    _set_name,
    _set_data,
    _set_id,
    _set_ts,
    _set_v,
    _set_user,
    _set_internal_id,
    _set_received_at_ms,
    _set_deduplicated,
    _set_views,
) = map(
    _slot_setter,
    (
        "name",
        "data",
        "id",
        "ts",
        "v",
        "user",
        "internal_id",
        "received_at_ms",
        "deduplicated",
        "_views",
    ),
)
_new = object.__new__
#: The fields make_stored leaves unset while they hold these values.
_USUAL: dict[str, Any] = {"v": None, "deduplicated": False, "_views": None}


def make_stored(
    name: str,
    data: Mapping[str, Any],
    id: str,
    ts: int,
    v: str | None,
    user: Mapping[str, Any],
    internal_id: str,
    received_at_ms: int,
    deduplicated: bool,
) -> StoredEvent:
    """Build a StoredEvent from already-validated parts (the engine's hot path)."""
    stored = _new(StoredEvent)
    _set_name(stored, name)
    _set_data(stored, data)
    _set_id(stored, id)
    _set_ts(stored, ts)
    if v is not None:  # else left unset, read as None (see StoredEvent.__getattr__)
        _set_v(stored, v)
    _set_user(stored, user)
    _set_internal_id(stored, internal_id)
    _set_received_at_ms(stored, received_at_ms)
    if deduplicated:
        _set_deduplicated(stored, deduplicated)
    return stored


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _check_object(value: object, field: str) -> tuple[dict[str, Any], int]:
    if value is None:
        return {}, 2
    # type() first: isinstance against an ABC costs more than the copy of a small dict.
    if type(value) is not dict and not isinstance(value, Mapping):
        raise EventValidationError(
            f"must be a mapping with string keys, got {type(value).__name__} {value!r}",
            field=field,
        )
    return json_copy(value, field)


def _wire(
    name: object, data: object, event_id: object, ts: object, version: object, user: object
) -> tuple[dict[str, Any], int]:
    """Validate event fields into the engine's wire dict; returns it and a size bound."""
    if type(name) is not str or not name:
        _check_name(name)
    if event_id == "":
        event_id = None  # unset, as the official SDKs write it
    if event_id is not None and type(event_id) is not str:
        _check_optional_str(event_id, "id")
    if version is not None and type(version) is not str:
        _check_optional_str(version, "v")
    # Non-ASCII text must be valid Unicode (json_copy rejects lone surrogates by field).
    if not name.isascii():  # type: ignore[attr-defined]
        json_copy(name, "name")
    if event_id is not None and not event_id.isascii():  # type: ignore[attr-defined]
        json_copy(event_id, "id")
    if version is not None and not version.isascii():  # type: ignore[attr-defined]
        json_copy(version, "v")
    # The usual shapes (data a dict, no user) without the general checks' calls.
    data_copy, data_size = (
        json_copy(data, "data") if type(data) is dict else _check_object(data, "data")
    )
    user_copy, user_size = ({}, 2) if user is None else _check_object(user, "user")
    size = 6 * len(name) + data_size + user_size + 80  # type: ignore[arg-type]
    if event_id is not None:
        size += 6 * len(event_id)  # type: ignore[arg-type]
    if version is not None:
        size += 6 * len(version)  # type: ignore[arg-type]
    wire = {
        "name": name,
        "data": data_copy,
        "id": event_id,
        "ts": ts if ts is None else _check_ts(ts),
        "v": version,
        "user": user_copy,
    }
    return wire, size


#: Unknown field names already warned about by an in-process send (once each).
_WARNED_FIELDS: set[str] = set()


def _wire_from_mapping(raw: Mapping[str, Any], *, warn: bool = True) -> tuple[dict[str, Any], int]:
    """Validate a mapping with Inngest's event fields into the engine's wire dict.

    Unknown top-level fields are dropped, as Inngest's Event API drops them (the JS SDK
    v4 sends ``meta``, say); with ``warn``, the first use of each name warns."""
    if not _FIELDS.issuperset(raw):
        unknown = sorted(str(key) for key in set(raw) - _FIELDS)
        fresh = [name for name in unknown if name not in _WARNED_FIELDS]
        if warn and fresh:
            _WARNED_FIELDS.update(fresh)
            warnings.warn(
                f"unknown event field(s) {fresh} dropped; an event has name, data, id, ts, "
                "v and user (put other values in data)",
                ConfigWarning,
                stacklevel=5,
            )
    if "name" not in raw:
        raise EventValidationError("is required", field="name")
    get = raw.get
    return _wire(raw["name"], get("data"), get("id"), get("ts"), get("v"), get("user"))


class EventBatch:
    """One validated send, as transports receive it.

    ``decoded`` holds the events as wire dicts (``name``, ``data``, ``id``, ``ts``, ``v``,
    ``user``; unset fields None); they are copies, so later mutation of the caller's
    dicts cannot change accepted events, and tuples are lists as JSON would make them.
    ``encoded`` is the request's compact UTF-8 JSON (computed on first use).
    ``internal_ids``, when set (the Event API server sets it from the request's
    ``x-inngest-event-id-seed``), are the ids the events must get: a request that arrives
    again with the same seed is recognised and starts no second run.
    """

    __slots__ = ("_encoded", "decoded", "internal_ids")

    def __init__(self, decoded: list[dict[str, Any]], encoded: bytes | None = None) -> None:
        self.decoded = decoded
        self._encoded = encoded
        self.internal_ids: list[str] | None = None

    @property
    def encoded(self) -> bytes:
        """The batch as compact UTF-8 JSON (a list of event objects)."""
        if self._encoded is None:
            self._encoded = _ENCODER.encode(self.decoded).encode()
        return self._encoded

    def __len__(self) -> int:
        return len(self.decoded)

    @property
    def events(self) -> list[Event]:
        """The batch as Event values (unset ``ts`` stays None)."""
        return [
            Event(d["name"], d["data"], d["id"], d["ts"], d["v"], d["user"]) for d in self.decoded
        ]

    def __repr__(self) -> str:
        return f"<EventBatch {len(self.decoded)} event(s)>"


def _foreign_event(item: object) -> object:
    """Another library's event object (such as ``inngest.Event``) as the mapping its
    ``to_dict()`` returns; None for anything else."""
    to_dict = getattr(item, "to_dict", None)
    return to_dict() if callable(to_dict) and not isinstance(item, type) else None


def usual_batch(raw: dict[str, Any], max_events: int, max_bytes: int) -> EventBatch | None:
    """The batch of the usual send, one dict event with an ASCII name that is not
    reserved, a ``data`` dict of JSON values, an ASCII ``id`` or none and nothing else;
    checked in one call rather than the general path's several. None for any other
    send: the general path then accepts it or names what is wrong."""
    name = raw.get("name")
    data = raw.get("data")
    event_id = raw.get("id")
    if (
        type(name) is not str
        or not name
        or not name.isascii()
        or name[0] in "iI"  # perhaps 'inngest/': the general path decides
        or type(data) is not dict
        or not (event_id is None or (type(event_id) is str and event_id.isascii()))
        or max_events < 1
        or not _FIELDS.issuperset(raw)
        or raw.get("ts") is not None
        or raw.get("v") is not None
        or raw.get("user") is not None
    ):
        return None
    try:
        data_copy, size = _fast(data, 1)
    except (_Unusual, RecursionError):
        return None
    # The bound _wire and prepare_batch compute for it.
    size += 6 * len(name) + 2 + 80 + 3
    if event_id is not None:
        size += 6 * len(event_id)
    if size > max_bytes:
        return None
    return EventBatch(
        [
            {
                "name": name,
                "data": data_copy,
                "id": event_id or None,
                "ts": None,
                "v": None,
                "user": {},
            }
        ]
    )


def prepare_batch(
    payload: object,
    *,
    max_events: int,
    max_bytes: int,
    allow_reserved: bool = False,
    warn_unknown: bool = True,
) -> EventBatch:
    """Validate what ``send`` accepts (an Event, a mapping, or a list/tuple of them).

    Raises EventValidationError naming the index of the first invalid event; nothing is
    accepted unless every event is valid and the request fits the limits.
    """
    if type(payload) is dict:
        usual = usual_batch(payload, max_events, max_bytes)
        if usual is not None:
            return usual
    items: Sequence[object]
    single = type(payload) is dict or isinstance(payload, (Event, Mapping))
    if not single and not isinstance(payload, (list, tuple)):
        single = isinstance(_foreign_event(payload), Mapping)  # inngest.Event, say
    if single:
        items = (payload,)
    elif isinstance(payload, (list, tuple)):
        items = payload
    else:
        raise EventValidationError(
            f"send() takes an eventbus.Event, a mapping, or a list/tuple of them; "
            f"got {type(payload).__name__} {payload!r}"
        )
    if len(items) > max_events:
        raise EventValidationError(
            f"{len(items)} events in one send is more than max_events_per_request="
            f"{max_events}; split the send into smaller batches"
        )
    wire: list[dict[str, Any]] = []
    bound = 2
    for index, item in enumerate(items):
        try:
            if type(item) is dict or isinstance(item, Mapping):
                entry, size = _wire_from_mapping(item, warn=warn_unknown)
            elif isinstance(item, Event):
                entry, size = _wire(item.name, item.data, item.id, item.ts, item.v, item.user)
            elif isinstance(raw := _foreign_event(item), Mapping):
                entry, size = _wire_from_mapping(raw, warn=warn_unknown)
            else:
                raise EventValidationError(
                    f"an event must be an eventbus.Event or a mapping, "
                    f"got {type(item).__name__} {item!r}"
                )
        except EventValidationError as exc:
            raise exc.at(index) from None
        name = entry["name"]
        if not allow_reserved and name[0] in "iI" and name[:8].lower() == RESERVED_PREFIX:
            raise EventValidationError(
                f"{entry['name']!r} is reserved: names starting with 'inngest/' are system "
                "events that only the engine sends; choose another prefix, like 'app/'",
                index=index,
                field="name",
            )
        wire.append(entry)
        bound += size + 1
    batch = EventBatch(wire)
    if bound > max_bytes:
        # The cheap bound says it might not fit: measure exactly.
        size = len(batch.encoded)
        if size > max_bytes:
            raise EventValidationError(
                f"the request is {size} bytes of JSON, more than max_request_bytes="
                f"{max_bytes}; split the send into smaller batches or raise the limit"
            )
    return batch
