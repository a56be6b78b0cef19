"""JSON values: the one walk that validates and copies payloads, and output encoding.

Rules (what every accepted value must survive: a compact UTF-8 JSON encoding, from any
stack depth, and a decode by Inngest's server):

* objects have string keys; values are str, int, float, bool, None, lists (tuples become
  lists) and objects, nested at most :data:`MAX_NESTING_DEPTH` levels;
* strings, keys included, are valid Unicode (no lone surrogates such as ``"\\ud800"``);
* floats are finite; integers fit a 64-bit float's range, as Inngest's server requires
  (it rejects ``1e400`` with "cannot unmarshal number").

The walk is iterative, so how deep the caller's stack already is does not matter, and a
reference cycle is reported as such instead of as a ``RecursionError``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from typing import Any

from ._errors import EventValidationError

#: The deepest nesting of lists and objects accepted in ``data`` and ``user`` (the
#: mapping itself is level 1). Inngest's server stops at Go's 10,000; Python's JSON
#: encoder recurses in C once per level within the interpreter's recursion limit (1,000
#: by default, shared with the caller's stack), so eventbus stops well below that.
MAX_NESTING_DEPTH = 256

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_FLOAT_BITS = 1023  # ints of up to this many bits always convert to a float


class _Frame:
    __slots__ = ("items", "key", "source", "target")

    def __init__(self, source: Any, target: Any, items: Iterator[tuple[Any, Any]]) -> None:
        self.source = source
        self.target = target
        self.items = items
        self.key: Any = None


def _where(path: str, frames: list[_Frame]) -> str:
    parts = [path]
    for frame in frames:
        if frame.key is None:
            break
        key = frame.key
        if type(key) is str and not key.isascii():
            key = key.encode("utf-8", "backslashreplace").decode()  # printable, always
        parts.append(f"[{key}]" if type(key) is int and type(frame.target) is list else f".{key}")
    if len(parts) > 12:
        parts = [*parts[:6], "...", *parts[-5:]]
    return "".join(parts)


def _check_text(text: str, path: str, frames: list[_Frame], what: str) -> None:
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        raise EventValidationError(
            f"{what} at {_where(path, frames)} is not valid Unicode ({exc.reason} at "
            f"position {exc.start}); lone surrogates like '\\ud800' cannot be encoded as UTF-8"
        ) from None


def _check_int(value: int, path: str, frames: list[_Frame]) -> None:
    try:
        float(value)
    except OverflowError:
        raise EventValidationError(
            f"the integer at {_where(path, frames)} ({value.bit_length()} bits) is outside "
            "the range of a JSON number Inngest accepts (a 64-bit float, about 1.8e308); "
            "send it as a string"
        ) from None


def _too_deep(item: Any, path: str, frames: list[_Frame]) -> EventValidationError:
    where = _where(path, frames)
    if any(frame.source is item for frame in frames):
        return EventValidationError(
            f"the value at {where} contains itself (a reference cycle), which JSON cannot "
            "represent; send a copy without the cycle"
        )
    return EventValidationError(
        f"the value at {where} nests more than {MAX_NESTING_DEPTH} levels of lists and "
        "objects, the most eventbus accepts; flatten it"
    )


def _container(value: Any) -> tuple[Any, Iterator[tuple[Any, Any]]] | None:
    kind = type(value)
    if kind is dict or isinstance(value, Mapping):
        return {}, iter(value.items())
    if kind is list or kind is tuple or isinstance(value, (list, tuple)):
        return [], enumerate(value)
    return None


def _scalar(value: Any, path: str, frames: list[_Frame]) -> tuple[Any, int]:
    """A non-container JSON value's copy and size bound (str and int fast paths aside)."""
    kind = type(value)
    if kind is str or isinstance(value, str):
        text = value if kind is str else str.__str__(value)
        if not text.isascii():
            _check_text(text, path, frames, "the string")
        return text, 6 * len(text) + 2
    if kind is bool or value is None:
        return value, 5
    if kind is int or isinstance(value, int):
        number = value if kind is int else int(value)
        if number.bit_length() > _FLOAT_BITS:
            _check_int(number, path, frames)
        return number, number.bit_length() // 3 + 2
    if isinstance(value, float):
        if not math.isfinite(value):
            raise EventValidationError(
                f"{value!r} at {_where(path, frames)} is not JSON (NaN and Infinity are not)"
            )
        return float(value), 26
    raise EventValidationError(
        f"{value!r} at {_where(path, frames)} is a {type(value).__name__}, which is not "
        "JSON; convert it to a string, number, bool, None, list or dict"
    )


class _Unusual(Exception):
    """The fast path met something it leaves to the full walk."""


def _fast_text(text: str) -> None:
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            raise _Unusual from None


def _fast(value: Any, depth: int) -> tuple[Any, int]:
    """The common case, recursively and without paths: plain dicts, lists and scalars
    within every rule. Anything else raises _Unusual (or RecursionError on a deep stack)."""
    kind = type(value)
    if kind is dict:
        copy: dict[str, Any] = {}
        size = 2
        for key, item in value.items():
            if type(key) is not str:
                raise _Unusual
            if not key.isascii():
                _fast_text(key)
            item_kind = type(item)
            if item_kind is str:
                if not item.isascii():
                    _fast_text(item)
                copy[key] = item
                size += 6 * (len(key) + len(item)) + 6
            elif item_kind is int:
                bits = item.bit_length()
                if bits > _FLOAT_BITS:
                    raise _Unusual
                copy[key] = item
                size += 6 * len(key) + bits // 3 + 6
            else:
                if depth >= MAX_NESTING_DEPTH:
                    raise _Unusual
                copy[key], item_size = _fast(item, depth + 1)
                size += 6 * len(key) + item_size + 4
        return copy, size
    if kind is list or kind is tuple:
        items: list[Any] = []
        size = 2
        for item in value:
            if depth >= MAX_NESTING_DEPTH:
                raise _Unusual
            item_copy, item_size = _fast(item, depth + 1)
            items.append(item_copy)
            size += item_size + 1
        return items, size
    if kind is str:
        _fast_text(value)
        return value, 6 * len(value) + 2
    if kind is int and value.bit_length() <= _FLOAT_BITS:
        return value, value.bit_length() // 3 + 2
    if kind is bool or value is None:
        return value, 5
    if kind is float and math.isfinite(value):
        return value, 26
    raise _Unusual


def json_copy(value: Any, path: str) -> tuple[Any, int]:
    """Validate a JSON tree and copy it; returns the copy and an upper bound of its size.

    The bound (bytes of compact UTF-8 JSON) is what lets ``send`` skip encoding the
    request when it cannot exceed the limit. Tuples become lists, subclasses of str,
    int and float become the base type, as a JSON round trip would make them. Raises
    :class:`EventValidationError` naming the path of the first value that breaks a rule.
    """
    try:
        return _fast(value, 1)
    except (_Unusual, RecursionError):
        # The full walk decides (it does not recurse, so the caller's stack depth does not
        # matter) and names the path of what is wrong.
        return _walk(value, path)


def _walk(value: Any, path: str) -> tuple[Any, int]:
    frames: list[_Frame] = []
    opened = _container(value)
    if opened is None:
        return _scalar(value, path, frames)
    root, items = opened
    frames.append(_Frame(value, root, items))
    size = 2
    while frames:
        frame = frames[-1]
        target = frame.target
        is_object = type(target) is dict
        for key, item in frame.items:
            frame.key = key
            if is_object:
                if type(key) is not str:
                    frame.key = None
                    raise EventValidationError(
                        f"key {key!r} at {_where(path, frames)} is not a string; JSON object "
                        "keys must be strings"
                    )
                if not key.isascii():
                    _check_text(key, path, frames, "the key")
                size += 6 * len(key) + 4
            else:
                size += 1
            item_kind = type(item)
            if item_kind is str and item.isascii():
                copy: Any = item
                size += 6 * len(item) + 2
            elif item_kind is int and item.bit_length() <= _FLOAT_BITS:
                copy = item
                size += item.bit_length() // 3 + 2
            else:
                opened = _container(item)
                if opened is None:
                    copy, item_size = _scalar(item, path, frames)
                    size += item_size
                else:
                    if len(frames) >= MAX_NESTING_DEPTH:
                        raise _too_deep(item, path, frames)
                    copy, child_items = opened
                    size += 2
                    if is_object:
                        target[key] = copy
                    else:
                        target.append(copy)
                    frames.append(_Frame(item, copy, child_items))
                    break  # walk the child first; this frame resumes after it
            if is_object:
                target[key] = copy
            else:
                target.append(copy)
        else:
            frames.pop()
            if frames:
                frames[-1].key = None
    return root, size


class OutputError(ValueError):
    """A handler's or step's result that cannot be stored as JSON (internal)."""


def encode_output(value: Any) -> str:
    """Encode a handler's or step's result as compact JSON, or raise :class:`OutputError`
    saying why it cannot be (not JSON, too deep to encode, invalid Unicode); its message
    continues a sentence such as "step 'x' returned a value that ..."."""
    try:
        encoded = _ENCODER.encode(value)
    except RecursionError:
        raise OutputError(
            "nests too deeply to encode as JSON; flatten it or store it elsewhere and "
            "return a reference"
        ) from None
    except (TypeError, ValueError) as exc:
        raise OutputError(
            f"is not JSON ({exc}); return dicts, lists, strings, numbers, bools or None"
        ) from None
    if not encoded.isascii():
        try:
            encoded.encode()
        except UnicodeEncodeError as exc:
            raise OutputError(
                f"contains text that is not valid Unicode ({exc.reason}); lone surrogates "
                "like '\\ud800' cannot be encoded as UTF-8"
            ) from None
    return encoded


def decode_output(encoded: str) -> Any:
    """Decode what :func:`encode_output` made (bounded by the same depth as encoding)."""
    try:
        return json.loads(encoded)
    except RecursionError:
        raise OutputError(
            "nests too deeply to decode as JSON; flatten it or store it elsewhere and "
            "return a reference"
        ) from None
