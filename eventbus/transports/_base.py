from __future__ import annotations

import abc
import contextlib
import weakref
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._client import Inngest
    from .._engine import Engine
    from .._event import EventBatch


class Transport(abc.ABC):
    """Base class of transports: implement :meth:`send` and :meth:`send_sync`.

    Both receive an :class:`EventBatch` the client has already validated: ``encoded`` is
    the request's JSON, ``decoded`` its decoded copy (dicts with ``name``, ``data``,
    ``id``, ``ts``, ``v``, ``user``; unset fields None) and ``events`` the same as Events.
    """

    #: True if the transport splits large sends itself (the client then skips its
    #: request-size check).
    splits_requests = False

    _client_ref: weakref.ref[Inngest] | None = None

    def bind(self, client: Inngest) -> None:
        """Called once when the transport is given to a client (an override calls
        ``super().bind(client)``). The transport keeps a weak reference to it: a client
        and its transport make no reference cycle, so a client dropped with its history
        is freed at once rather than by the cyclic collector."""
        self._client_ref = weakref.ref(client)

    @property
    def _client(self) -> Inngest | None:
        """The client this transport was given to, while it exists."""
        ref = self._client_ref
        return None if ref is None else ref()

    def local_engine(self) -> Engine | None:
        """The engine of this process and thread that takes sends directly, if any (the
        client then asks it first to accept a send without waiting)."""
        return None

    @abc.abstractmethod
    async def send(self, batch: EventBatch) -> list[str]:
        """Deliver the events; return one id per event, in order."""

    @abc.abstractmethod
    def send_sync(self, batch: EventBatch) -> list[str]:
        """The blocking twin of :meth:`send`."""

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Held while the client is entered with ``async with``; override to run things."""
        yield
