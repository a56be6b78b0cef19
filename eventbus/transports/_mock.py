from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from .._ids import UlidGenerator
from ._base import Transport

if TYPE_CHECKING:
    from .._event import Event, EventBatch


class MockTransport(Transport):
    """Records every sent event in :attr:`sent` and returns ids; runs no function.

    Use it to test code that sends events without executing anything::

        transport = eventbus.transports.MockTransport()
        client = eventbus.Inngest(app_id="shop", transport=transport)
        client.send_sync({"name": "shop/order.created", "data": {"id": 1}})
        assert transport.sent[0].name == "shop/order.created"
    """

    def __init__(self) -> None:
        #: Every event sent so far, in order, with ``ts`` filled in.
        self.sent: list[Event] = []
        self._ids = UlidGenerator()

    def _record(self, batch: EventBatch) -> list[str]:
        assert self._client is not None
        now = self._client.clock.now_ms()
        ids = []
        for event in batch.events:
            ids.append(self._ids.new(now))
            self.sent.append(attrs.evolve(event, ts=event.ts or now))
        return ids

    async def send(self, batch: EventBatch) -> list[str]:
        return self._record(batch)

    def send_sync(self, batch: EventBatch) -> list[str]:
        return self._record(batch)

    def clear(self) -> None:
        """Forget what was sent."""
        self.sent.clear()

    def __repr__(self) -> str:
        return f"<MockTransport sent={len(self.sent)}>"
