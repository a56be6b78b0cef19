"""Serializers for ``output_type=``, with the official SDK's protocol.

``Inngest(serializer=...)`` takes any object with ``serialize(obj, typ)`` (a Python value
to JSON) and ``deserialize(obj, typ)`` (JSON to a value of type ``typ``). With one, a
step run with ``output_type=T`` stores ``serialize(result, T)`` and returns
``deserialize(stored, T)``; a function made with ``output_type=T`` returns
``serialize(output, T)``, and a function that invokes it (``step.invoke(function=...)``)
gets ``deserialize(output, T)``: what the SDK does.
"""

from __future__ import annotations

from typing import Any, Protocol

from ._errors import FunctionConfigError, UsageError


class Serializer(Protocol):
    """Turns outputs into JSON and back (``output_type`` names the Python type)."""

    def serialize(self, obj: object, typ: object) -> object: ...

    def deserialize(self, obj: object, typ: object) -> object: ...


def _pydantic() -> Any:
    try:
        import pydantic
    except ImportError:
        raise UsageError(
            "PydanticSerializer needs pydantic: pip install pydantic (or eventbus[inngest])"
        ) from None
    return pydantic


class PydanticSerializer:
    """A :class:`Serializer` for pydantic models (and any type pydantic validates)."""

    def serialize(self, obj: object, typ: object) -> object:
        return _pydantic().TypeAdapter(object).dump_python(obj, mode="json")

    def deserialize(self, obj: object, typ: object) -> object:
        return _pydantic().TypeAdapter(typ).validate_python(obj)

    def __repr__(self) -> str:
        return "PydanticSerializer()"


def check_serializer(serializer: object) -> Serializer | None:
    """``serializer=`` of a client, checked."""
    if serializer is None:
        return None
    for method in ("serialize", "deserialize"):
        if not callable(getattr(serializer, method, None)):
            raise FunctionConfigError(
                f"serializer={serializer!r} has no {method}(obj, typ) method; give an "
                "eventbus.PydanticSerializer() or an object with serialize and deserialize"
            )
    return serializer  # type: ignore[return-value]
