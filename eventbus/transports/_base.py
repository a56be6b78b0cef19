from __future__ import annotations

import abc
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._client import Inngest
    from .._event import Event


class Transport(abc.ABC):
    """Base class of transports: implement :meth:`send` (and :meth:`send_sync`).

    ``events`` are already validated by the client; ``decoded`` is their JSON-decoded
    wire form (``name``, ``data``, ``id``, ``ts``, ``v``, ``user``; unset fields None).
    """

    def bind(self, client: Inngest) -> None:  # noqa: B027 - optional hook
        """Called once when the transport is given to a client."""

    @abc.abstractmethod
    async def send(self, events: Sequence[Event], decoded: list[dict[str, Any]]) -> list[str]:
        """Deliver the events; return one id per event, in order."""

    @abc.abstractmethod
    def send_sync(self, events: Sequence[Event], decoded: list[dict[str, Any]]) -> list[str]:
        """The blocking twin of :meth:`send`."""

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Held while the client is entered with ``async with``; override to run things."""
        yield
