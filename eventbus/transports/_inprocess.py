from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import anyio
from anyio.lowlevel import checkpoint

from .._engine import Engine
from .._errors import EngineNotRunningError, UsageError
from ._base import Transport

if TYPE_CHECKING:
    from .._client import Inngest
    from .._event import EventBatch

#: Queued runs beyond which send() yields once to the workers.
BACKLOG_YIELD = 256

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
        self._client: Inngest | None = None

    def bind(self, client: Inngest) -> None:
        self._client = client

    def new_engine(self) -> Engine:
        assert self._client is not None
        client = self._client
        return Engine(
            registry=client._registry,
            clock=client.clock,
            logger=client.logger,
            event_retention=client.event_retention,
            seed=self.seed,
            send=client.send,
        )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        if self.engine is not None and self.engine.running:
            raise UsageError(
                "this client's engine is already running; enter `async with client:` once"
            )
        engine = self.new_engine()
        self.engine = engine
        async with anyio.create_task_group() as tg:
            engine.start(tg)
            try:
                yield
                await engine.settle()
            finally:
                engine.stop()
                tg.cancel_scope.cancel()

    def _running_engine(self) -> Engine:
        engine = self.engine
        if engine is None or not engine.running:
            raise EngineNotRunningError(_NOT_RUNNING)
        return engine

    async def send(self, batch: EventBatch) -> list[str]:
        engine = self._running_engine()
        if engine.portal is not None and threading.get_ident() != engine._thread:
            portal = engine.portal
            return await anyio.to_thread.run_sync(portal.call, engine.ingest, batch.decoded)
        ids = engine.ingest(batch.decoded)
        if engine.backlog > BACKLOG_YIELD:
            # Let the workers catch up: a producer that never awaits anything else would
            # otherwise queue its whole output before a single run executes.
            await checkpoint()
        return ids

    def send_sync(self, batch: EventBatch) -> list[str]:
        engine = self._running_engine()
        if threading.get_ident() == engine._thread:
            raise UsageError(
                "send_sync() was called from inside the engine's event loop, where it would "
                "deadlock; use `await client.send(...)` there"
            )
        if engine.portal is None:
            raise UsageError(
                "send_sync() needs the engine running in a background thread: enter the client "
                "with `with client:` (not `async with`) in synchronous code"
            )
        return engine.portal.call(engine.ingest, batch.decoded)
