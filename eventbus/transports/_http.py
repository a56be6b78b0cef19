"""HttpTransport: send events to a real Inngest Event API (Cloud, self-hosted, dev server).

Requires the ``http`` extra (httpx). The request is the official SDKs': ``POST
{origin}/e/{event_key}`` with a compact UTF-8 JSON array, the ``x-inngest-*`` headers,
and an ``x-inngest-event-id-seed`` made once per request and reused on every retry, so
the server derives the same ids for a retried request.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import time
import urllib.parse
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

import anyio

from .._errors import FunctionConfigError, SendEventsError, UsageError
from ._base import Transport

if TYPE_CHECKING:
    import httpx

    from .._client import Inngest
    from .._event import EventBatch

DEV_SERVER_ORIGIN = "http://127.0.0.1:8288"
CLOUD_EVENT_ORIGIN = "https://inn.gs"
DEV_EVENT_KEY = "NO_EVENT_KEY_SET"
MAX_EVENTS_PER_REQUEST = 5000
_FALSY = {"", "0", "false", "no", "off"}
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _version() -> str:
    from .. import __version__

    return __version__


def parse_origin(value: str, *, dev: bool, source: str) -> str:
    """A normalized origin (``scheme://host[:port][/path]``), or a clear error."""
    text = value.strip()
    if not text:
        raise FunctionConfigError(f"{source} is empty; give a URL like http://127.0.0.1:8288")
    if "://" not in text:
        text = ("http://" if dev else "https://") + text
    parsed = urllib.parse.urlsplit(text)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise FunctionConfigError(
            f"{source}={value!r} is not a valid URL; give one like http://127.0.0.1:8288 "
            "or https://inn.gs"
        )
    try:
        parsed.port  # noqa: B018 - validates the port
    except ValueError:
        raise FunctionConfigError(f"{source}={value!r} has an invalid port") from None
    return urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, parsed.path.rstrip("/"), "", ""))


class HttpTransport(Transport):
    """Deliver events to an Inngest Event API over HTTP.

    Args:
        event_api_base_url: the Event API origin. Default: ``$INNGEST_EVENT_API_BASE_URL``,
            then ``$INNGEST_BASE_URL``, then ``$INNGEST_DEV`` when it is a URL, then the
            dev server (dev mode) or Inngest Cloud.
        event_key: default: the client's (``$INNGEST_EVENT_KEY``). Required in cloud mode.
        env: the branch environment (``x-inngest-env``); default: the client's.
        is_production: True for cloud mode, False for the dev server; default: dev mode
            when ``$INNGEST_DEV`` is set and not false-like.
        max_attempts: tries per request for 5xx answers and connection errors (5).
        backoff: seconds before the first retry, doubled each time up to ``max_backoff``.
        timeout: seconds per request (30).
        max_request_bytes: larger sends are split into several requests (512 KiB).
        httpx_transport: an ``httpx`` transport to use (``httpx.MockTransport`` in tests).
    """

    splits_requests = True

    def __init__(
        self,
        *,
        event_api_base_url: str | None = None,
        event_key: str | None = None,
        env: str | None = None,
        is_production: bool | None = None,
        max_attempts: int = 5,
        backoff: float = 0.1,
        max_backoff: float = 2.0,
        timeout: float = 30.0,
        max_request_bytes: int = 512 * 1024,
        httpx_transport: Any = None,
    ) -> None:
        try:
            import httpx  # noqa: F401
        except ImportError:  # pragma: no cover - depends on the environment
            raise UsageError("HttpTransport needs httpx: pip install 'eventbus[http]'") from None
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise FunctionConfigError(f"max_attempts must be an int >= 1, got {max_attempts!r}")
        if max_request_bytes < 1024:
            raise FunctionConfigError(
                f"max_request_bytes must be >= 1024, got {max_request_bytes!r}"
            )
        self._event_key_arg = event_key
        self._env_arg = env
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.timeout = timeout
        self.max_request_bytes = max_request_bytes
        self._httpx_transport = httpx_transport
        if is_production is None:
            is_production = os.environ.get("INNGEST_DEV", "").strip().lower() in _FALSY
        self.is_production = is_production
        self.origin = self._resolve_origin(event_api_base_url)
        self.event_key: str | None = event_key
        self.env: str | None = env
        # Connections are kept: a sync client for send_sync (httpx clients are
        # thread-safe), and an async client while the eventbus client is entered.
        self._sync_http: httpx.Client | None = None
        self._async_http: httpx.AsyncClient | None = None

    def _resolve_origin(self, argument: str | None) -> str:
        dev = not self.is_production
        if argument is not None:
            return parse_origin(argument, dev=dev, source="event_api_base_url")
        for name in ("INNGEST_EVENT_API_BASE_URL", "INNGEST_BASE_URL"):
            value = os.environ.get(name)
            if value:
                return parse_origin(value, dev=dev, source=name)
        flag = os.environ.get("INNGEST_DEV", "")
        if dev and flag.strip().lower() not in _FALSY | {"1", "true", "yes", "on"}:
            return parse_origin(flag, dev=True, source="INNGEST_DEV")
        return DEV_SERVER_ORIGIN if dev else CLOUD_EVENT_ORIGIN

    def bind(self, client: Inngest) -> None:
        super().bind(client)
        if self._event_key_arg is None:
            self.event_key = client.event_key
        if self._env_arg is None:
            self.env = client.env
        if self.is_production and not self.event_key:
            raise UsageError(
                "HttpTransport is in cloud mode but has no event key: set INNGEST_EVENT_KEY "
                "or pass event_key=; for the dev server set INNGEST_DEV=1 or is_production=False"
            )

    # ------------------------------------------------------------------ requests

    @property
    def url(self) -> str:
        key = self.event_key or DEV_EVENT_KEY
        return f"{self.origin}/e/{urllib.parse.quote(key, safe='')}"

    def headers(self, seed: str) -> dict[str, str]:
        name = f"eventbus:v{_version()}"
        headers = {
            "content-type": "application/json",
            "x-inngest-sdk": name,
            "x-inngest-req-version": "2",
            "user-agent": name,
            "x-inngest-event-id-seed": seed,
        }
        if self.env:
            headers["x-inngest-env"] = self.env
        return headers

    def _seed(self, now_ms: int) -> str:
        return f"{now_ms},{base64.b64encode(os.urandom(10)).decode()}"

    def encode(self, batch: EventBatch) -> list[tuple[bytes, int]]:
        """The request bodies for a batch (with their event counts), split to fit
        ``max_request_bytes`` and 5000 events."""
        assert self._client is not None
        now = self._client.clock.now_ms()
        bodies: list[tuple[bytes, int]] = []
        current: list[bytes] = []
        size = 2
        for raw in batch.decoded:
            wire: dict[str, Any] = {"data": raw["data"]}
            if raw["id"]:
                wire["id"] = raw["id"]
            wire["name"] = raw["name"]
            wire["ts"] = raw["ts"] or now
            if raw["user"]:
                wire["user"] = raw["user"]
            if raw["v"] is not None:
                wire["v"] = raw["v"]
            item = _ENCODER.encode(wire).encode()
            if len(item) + 2 > self.max_request_bytes:
                raise SendEventsError(
                    f"event {raw['name']!r} alone is {len(item)} bytes of JSON, more than "
                    f"max_request_bytes={self.max_request_bytes}",
                    status=None,
                    body="",
                    ids=[],
                )
            if current and (
                size + len(item) + 1 > self.max_request_bytes
                or len(current) >= MAX_EVENTS_PER_REQUEST
            ):
                bodies.append((b"[" + b",".join(current) + b"]", len(current)))
                current, size = [], 2
            current.append(item)
            size += len(item) + 1
        if current:
            bodies.append((b"[" + b",".join(current) + b"]", len(current)))
        return bodies

    def _read(self, response: httpx.Response, sent: Sequence[str], expected: int) -> list[str]:
        body = response.text
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.status_code >= 300 or not isinstance(payload, dict):
            message = payload.get("error") if isinstance(payload, dict) else None
            raise SendEventsError(
                f"the Event API answered {response.status_code}"
                + (f": {message}" if message else f" with {body[:200]!r}"),
                status=response.status_code,
                body=body,
                ids=list(sent),
            )
        ids = payload.get("ids")
        error = payload.get("error")
        if error or not isinstance(ids, list) or len(ids) != expected:
            got = list(ids) if isinstance(ids, list) else []
            raise SendEventsError(
                f"the Event API accepted {len(got)} of {expected} event(s)"
                + (f": {error}" if error else ""),
                status=response.status_code,
                body=body,
                ids=[*sent, *got],
            )
        return [str(i) for i in ids]

    def _delay(self, attempt: int) -> float:
        return float(min(self.backoff * (2**attempt), self.max_backoff))

    def _retryable(self, response: httpx.Response | None) -> bool:
        return response is None or response.status_code >= 500

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """While the client is entered, one async connection pool serves every send."""
        import httpx

        async with httpx.AsyncClient(transport=self._httpx_transport, timeout=self.timeout) as http:
            self._async_http = http
            try:
                yield
            finally:
                self._async_http = None

    def close(self) -> None:
        """Close the kept sync connections (also done when the transport is collected)."""
        if self._sync_http is not None:
            self._sync_http.close()
            self._sync_http = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    async def send(self, batch: EventBatch) -> list[str]:
        import httpx

        if self._async_http is not None:
            return await self._send_with(self._async_http, batch)
        async with httpx.AsyncClient(transport=self._httpx_transport, timeout=self.timeout) as http:
            return await self._send_with(http, batch)

    async def _send_with(self, http: httpx.AsyncClient, batch: EventBatch) -> list[str]:
        import httpx

        assert self._client is not None
        ids: list[str] = []
        for body, expected in self.encode(batch):
            headers = self.headers(self._seed(self._client.clock.now_ms()))
            for attempt in range(self.max_attempts):
                response: httpx.Response | None = None
                failure: Exception | None = None
                try:
                    response = await http.post(self.url, content=body, headers=headers)
                except httpx.TransportError as exc:
                    failure = exc
                if not self._retryable(response) or attempt == self.max_attempts - 1:
                    break
                await anyio.sleep(self._delay(attempt))
            ids.extend(self._finish(response, failure, ids, expected))
        return ids

    def send_sync(self, batch: EventBatch) -> list[str]:
        import httpx

        assert self._client is not None
        ids: list[str] = []
        if self._sync_http is None:
            self._sync_http = httpx.Client(transport=self._httpx_transport, timeout=self.timeout)
        http = self._sync_http
        for body, expected in self.encode(batch):
            headers = self.headers(self._seed(self._client.clock.now_ms()))
            for attempt in range(self.max_attempts):
                response: httpx.Response | None = None
                failure: Exception | None = None
                try:
                    response = http.post(self.url, content=body, headers=headers)
                except httpx.TransportError as exc:
                    failure = exc
                if not self._retryable(response) or attempt == self.max_attempts - 1:
                    break
                time.sleep(self._delay(attempt))
            ids.extend(self._finish(response, failure, ids, expected))
        return ids

    def _finish(
        self,
        response: httpx.Response | None,
        failure: Exception | None,
        sent: list[str],
        expected: int,
    ) -> list[str]:
        if response is None:
            raise SendEventsError(
                f"could not reach the Event API at {self.origin} after {self.max_attempts} "
                f"attempt(s): {failure}",
                status=None,
                body="",
                ids=list(sent),
            )
        return self._read(response, sent, expected)

    def __repr__(self) -> str:
        mode = "cloud" if self.is_production else "dev"
        return f"<HttpTransport {mode} {self.origin}>"
