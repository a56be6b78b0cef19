from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import TYPE_CHECKING, Any

from .._errors import EngineNotRunningError, UsageError
from ._base import Transport

if TYPE_CHECKING:
    from .._engine import Engine
    from .._event import EventBatch

_NOT_RUNNING = (
    "the eventbus engine is not running: start it with `async with client:` "
    "(inside your async code) or `with client:` (from synchronous code) before sending"
)


class InProcessTransport(Transport):
    """Runs the engine in this process: the default transport.

    The engine exists while the client is entered (``async with client`` or
    ``with client``); its records stay readable after exit until the next start.
    """

    def __init__(self, *, seed: int | None = None) -> None:
        self.seed = seed
        self.engine: Engine | None = None

    def new_engine(self) -> Engine:
        assert self._client is not None
        return self._client._new_engine(seed=self.seed)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        if self.engine is not None and self.engine.running:
            raise UsageError(
                "this client's engine is already running; enter `async with client:` once"
            )
        engine = self.new_engine()
        self.engine = engine
        async with engine.serving():
            yield

    def _running_engine(self) -> Engine:
        engine = self.engine
        if engine is None or not engine.running:
            raise EngineNotRunningError(_NOT_RUNNING)
        return engine

    def local_engine(self) -> Engine | None:
        return self.engine

    def send(self, batch: EventBatch) -> Coroutine[Any, Any, list[str]]:
        # The engine's coroutine itself (send is awaited): one coroutine less per send.
        return self._running_engine().send_batch(batch)

    def send_sync(self, batch: EventBatch) -> list[str]:
        return self._running_engine().send_batch_sync(batch)
