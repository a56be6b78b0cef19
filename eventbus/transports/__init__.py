"""Where ``client.send`` delivers events.

A transport has one job: take validated events and return their ids. The client does
the validation (so every transport sees the same, valid events) and owns the lifecycle.

* :class:`InProcessTransport` (the default) runs the engine in this process.
* :class:`MockTransport` records what was sent and runs nothing: for testing senders.
* :class:`HttpTransport` sends to a real Inngest Event API (the ``http`` extra).
"""

from .._event import EventBatch as EventBatch
from ._base import Transport as Transport
from ._http import HttpTransport as HttpTransport
from ._inprocess import InProcessTransport as InProcessTransport
from ._mock import MockTransport as MockTransport

__all__ = ("EventBatch", "HttpTransport", "InProcessTransport", "MockTransport", "Transport")
