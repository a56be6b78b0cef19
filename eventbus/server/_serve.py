"""Serving the Event API with uvicorn (``python -m eventbus serve``), hardened.

uvicorn closes idle keep-alive connections, but any byte a client sends cancels that
timer, so a client that dribbles its request head keeps a connection (and a file
descriptor) forever. The protocol here gives every request head ``header_timeout``
seconds to arrive; the app bounds the body with ``body_timeout``; ``limit_concurrency``
caps connections (503 beyond it). On the first SIGINT or SIGTERM, open connections and
then the engine's drain share one ``shutdown_timeout`` deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from .. import Inngest
from . import DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_BODY_BYTES, create_app

if TYPE_CHECKING:
    import uvicorn

DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_KEEP_ALIVE = 5.0
DEFAULT_LIMIT_CONCURRENCY = 1000


def guarded_protocol(header_timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol, closing a connection whose request head is late."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            super().connection_lost(exc)

        def handle_events(self) -> None:
            super().handle_events()
            cycle = self.cycle
            if cycle is not None and not cycle.response_complete:
                self._cancel_head_timer()  # a whole head arrived; the app bounds the body

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm_head_timer()  # the next request's head must come in time too

        def _arm_head_timer(self) -> None:
            self._cancel_head_timer()
            self._head_timer = self.loop.call_later(header_timeout, self._head_timed_out)

        def _cancel_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            cycle = self.cycle
            if cycle is None or cycle.response_complete:
                self.timeout_keep_alive_handler()  # closes the connection

    return GuardedH11Protocol


def make_server(
    client: Inngest,
    *,
    host: str = "127.0.0.1",
    port: int = 8288,
    event_keys: Collection[str] | None = None,
    signing_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    header_timeout: float = DEFAULT_HEADER_TIMEOUT,
    timeout_keep_alive: float = DEFAULT_KEEP_ALIVE,
    limit_concurrency: int | None = DEFAULT_LIMIT_CONCURRENCY,
    shutdown_timeout: float | None = None,
    log_level: str = "info",
) -> uvicorn.Server:
    """A uvicorn server for ``client``'s Event API (call ``.run()`` to serve)."""
    import uvicorn

    budget = client.shutdown_timeout if shutdown_timeout is None else shutdown_timeout
    app = create_app(
        client,
        event_keys=event_keys,
        signing_key=signing_key,
        max_body_bytes=max_body_bytes,
        body_timeout=body_timeout,
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        http=guarded_protocol(header_timeout),
        limit_concurrency=limit_concurrency,
        timeout_keep_alive=int(timeout_keep_alive) if timeout_keep_alive >= 1 else 1,
        timeout_graceful_shutdown=int(budget) if budget >= 1 else 0,
        log_level=log_level,
    )

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: Any = None) -> None:
            # Connections, then the engine's drain, within one deadline.
            deadline = time.monotonic() + budget
            lifespan = self.lifespan
            original = lifespan.shutdown

            async def shutdown_engine() -> None:
                engine = getattr(client.transport, "engine", None)
                if engine is not None:  # the running engine's drain gets what is left
                    engine.shutdown_timeout = max(0.0, deadline - time.monotonic())
                await original()

            lifespan.shutdown = shutdown_engine
            await super().shutdown(sockets)

    return Server(config)
