"""An Inngest-compatible Event API for an eventbus app, as an ASGI application.

``create_app(client)`` serves, on one port:

* ``POST /e/{key}``: one event object or an array; answers ``{"ids": [...], "status":
  200}``, or 400 with ``error`` (nothing from that request is accepted), or 401 when keys
  are configured and the key is missing or unknown (keys are compared in constant time;
  the path is URL-decoded once, by the server).
* ``GET /health``
* ``/ui``: the dev UI (see eventbus.server._ui): events, runs and their step timelines,
  functions; a form to send a test event, and cancel, rerun and replay. With event keys
  or a signing key configured it asks for one of them (HTTP Basic auth, as the password).
* ``GET /v1/events`` (``name``, ``limit``), ``GET /v1/events/{id}``,
  ``GET /v1/events/{id}/runs``, ``GET /v1/runs/{run_id}``, in ``{"data", "metadata"}``;
  with a signing key they need ``Authorization: Bearer <key>``, as Inngest's REST API.

Served with lifespan events (``python -m eventbus serve``, or uvicorn), the app runs the
client's engine itself; mounted elsewhere, start the engine yourself (``with client:``).
Request bodies are checked against the size limit while they are read, and must arrive
within ``body_timeout`` seconds (408 otherwise).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import html
import json
import urllib.parse
from collections.abc import Awaitable, Callable, Collection, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio

from .._client import Inngest
from .._errors import EngineNotRunningError, EventbusError, EventValidationError
from .._event import StoredEvent, prepare_batch
from .._ids import seeded_ulids
from .._run import Run
from ._ui import DevUI, parse_form

if TYPE_CHECKING:
    from .._engine import Engine

__all__ = ("create_app",)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

Header = tuple[bytes, bytes]
#: The dev UI's pages run only their own inline script and style, load nothing else and
#: post forms only to this server.
_UI_CSP = (
    b"default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    b"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)

_JSON = b"application/json"
_UI_HEADERS: tuple[Header, ...] = (
    (b"content-type", b"text/html; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", _UI_CSP),
)

DEFAULT_MAX_BODY_BYTES = 512 * 1024
DEFAULT_BODY_TIMEOUT = 30.0
DISCARD_LIMIT = 16 * 1024 * 1024
_SIGNING_PREFIX = "signkey-"


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _event_json(event: StoredEvent) -> dict[str, Any]:
    return {
        "internal_id": event.internal_id,
        "id": event.id,
        "name": event.name,
        "data": event.data,
        "user": event.user,
        "ts": event.ts,
        "v": event.v,
        "received_at": event.received_at.isoformat(),
        "deduplicated": event.deduplicated,
    }


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def _run_json(run: Run) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "function_id": run.function_id,
        "event_id": run.event_ids[0],
        "status": run.status.value,
        "output": run.output,
        "error": run.error,
        "attempts": run.attempts,
        "run_started_at": _iso(run.started_at),
        "ended_at": _iso(run.ended_at),
    }


def _strip_signing_prefix(key: str) -> str:
    """``signkey-prod-abc`` -> ``abc`` (Inngest's signing keys carry an env prefix)."""
    if key.startswith(_SIGNING_PREFIX):
        _, _, rest = key[len(_SIGNING_PREFIX) :].partition("-")
        return rest
    return key


class _SigningKey:
    """The Authorization bearer tokens a signing key admits, as Inngest's server does:
    after an optional ``signkey-<env>-`` prefix, the key's body or the SHA-256 of its hex
    body (what the official SDKs send)."""

    def __init__(self, signing_key: str) -> None:
        body = _strip_signing_prefix(signing_key)
        allowed = [body.encode()]
        with contextlib.suppress(ValueError):  # not a hex key: only the key itself
            allowed.append(hashlib.sha256(bytes.fromhex(body)).hexdigest().encode())
        self.allowed = tuple(allowed)

    def admits(self, token: str) -> bool:
        return _matches(_strip_signing_prefix(token).encode(), self.allowed)


def _matches(candidate: bytes, allowed: tuple[bytes, ...]) -> bool:
    """Constant-time membership: every allowed value is compared, whatever matches."""
    found = False
    for value in allowed:
        found |= hmac.compare_digest(candidate, value)
    return found


def header(scope: Scope, name: bytes) -> str | None:
    """A request header's value (the first, decoded as latin-1), or None."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _encode_reply(payload: Any) -> bytes:
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode()
    except UnicodeEncodeError:  # a lone surrogate in some error message: escape it
        return json.dumps(payload, separators=(",", ":")).encode()


async def respond(send: Send, status: int, body: bytes, headers: Sequence[Header]) -> None:
    """One whole response: ``headers`` and a content-length, then ``body``."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def create_app(
    client: Inngest,
    *,
    event_keys: Collection[str] | None = None,
    signing_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
) -> ASGIApp:
    """The ASGI app serving ``client``'s engine over the Inngest Event API.

    ``event_keys``: if given, ``POST /e/{key}`` accepts only these keys (401 otherwise);
    if None, any key is accepted, as the dev server does. ``signing_key``: if given,
    ``/v1`` answers only requests with ``Authorization: Bearer <signing key>`` (or the
    hashed form the official SDKs send), else 401. ``max_body_bytes`` bounds a request
    body (checked while reading) and ``body_timeout`` the seconds it may take to arrive.
    """
    keys = None if event_keys is None else tuple(sorted(key.encode() for key in event_keys))
    signing = None if signing_key is None else _SigningKey(signing_key)

    def authorized(scope: Scope) -> bool:
        if signing is None:
            return True
        value = header(scope, b"authorization")
        if value is None:
            return False
        scheme, _, token = value.partition(" ")
        return scheme.lower() == "bearer" and signing.admits(token.strip())

    async def reply(send: Send, status: int, payload: Any) -> None:
        await respond(send, status, _encode_reply(payload), [(b"content-type", _JSON)])

    async def read_body(receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _BadRequest(400, "the client disconnected")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > max_body_bytes:
                await discard_rest(receive, message, size)
                raise _BadRequest(400, f"request body is larger than {max_body_bytes} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def discard_rest(receive: Receive, message: Message, size: int) -> None:
        # Read (without keeping) what is left, so the connection can be reused; stop
        # after a bounded amount rather than reading unbounded input.
        while message.get("more_body", False) and size < DISCARD_LIMIT:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))

    def metadata() -> dict[str, Any]:
        return {"fetched_at": client.clock.now().isoformat(), "cached_until": None}

    async def post_events(scope: Scope, key: str, receive: Receive, send: Send) -> None:
        if keys is not None and not _matches(key.encode("utf-8", "surrogatepass"), keys):
            await reply(send, 401, {"status": 401, "error": "Event key not found"})
            return
        try:
            try:
                with anyio.fail_after(body_timeout):
                    body = await read_body(receive)
            except TimeoutError:
                raise _BadRequest(
                    408, f"the request body did not arrive within {body_timeout:g} s"
                ) from None
            try:
                payload = json.loads(body)
            except (ValueError, UnicodeDecodeError) as exc:
                raise _BadRequest(400, f"the body is not valid JSON: {exc}") from None
            except RecursionError:
                raise _BadRequest(
                    400, "the body nests too deeply to decode; events nest at most 256 levels"
                ) from None
            if not isinstance(payload, (dict, list)):
                raise _BadRequest(400, "the body must be an event object or an array of events")
            batch = prepare_batch(
                payload,
                max_events=client.max_events_per_request,
                max_bytes=max_body_bytes,
                warn_unknown=False,  # the Event API drops unknown fields, as Inngest's
            )
        except _BadRequest as exc:
            await reply(send, exc.status, {"ids": [], "status": exc.status, "error": exc.message})
            return
        except EventValidationError as exc:
            await reply(send, 400, {"ids": [], "status": 400, "error": str(exc)})
            return
        seed = header(scope, b"x-inngest-event-id-seed")
        if seed is not None and batch.decoded:
            # As Inngest: ids derived from the SDK's seed, so a retried request (same
            # seed) gets the same ids and starts no second run; a bad seed is ignored.
            batch.internal_ids = seeded_ulids(seed, len(batch.decoded))
        try:
            ids = await client.transport.send(batch) if batch.decoded else []
        except EngineNotRunningError as exc:
            await reply(send, 503, {"ids": [], "status": 503, "error": str(exc)})
            return
        await reply(send, 200, {"ids": ids, "status": 200})

    async def get(scope: Scope, path: str, query: dict[str, list[str]], send: Send) -> None:
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["v1"] and not authorized(scope):
            await reply(send, 401, {"error": "Authentication failed"})
            return
        try:
            engine = client.engine
        except Exception:
            await reply(send, 503, {"error": "the engine has not run yet"})
            return
        if parts == ["v1", "events"]:
            name = query.get("name", [None])[0]
            try:
                limit = int(query.get("limit", ["20"])[0])
            except ValueError:
                await reply(send, 400, {"error": "limit must be an integer"})
                return
            limit = max(1, min(limit, 100))
            events = engine.events(name)[-limit:][::-1]  # newest first, as Inngest lists
            await reply(
                send, 200, {"data": [_event_json(e) for e in events], "metadata": metadata()}
            )
        elif len(parts) == 3 and parts[:2] == ["v1", "events"]:
            event = engine.get_event(parts[2])
            if event is None:
                await reply(send, 404, {"error": f"no event {parts[2]!r}"})
            else:
                await reply(send, 200, {"data": _event_json(event), "metadata": metadata()})
        elif len(parts) == 4 and parts[:2] == ["v1", "events"] and parts[3] == "runs":
            runs = engine.runs(event_id=parts[2])
            await reply(send, 200, {"data": [_run_json(r) for r in runs], "metadata": metadata()})
        elif len(parts) == 3 and parts[:2] == ["v1", "runs"]:
            run = engine.get_run(parts[2])
            if run is None:
                await reply(send, 404, {"error": f"no run {parts[2]!r}"})
            else:
                await reply(send, 200, {"data": _run_json(run), "metadata": metadata()})
        else:
            await reply(send, 404, {"error": f"no route GET {path}"})

    ui = DevUI(client)
    ui_secrets = (*(keys or ()), *(() if signing_key is None else (signing_key.encode(),)))

    def ui_authorized(scope: Scope) -> bool:
        if not ui_secrets:
            return True
        value = header(scope, b"authorization")
        if value is None:
            return False
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return False
        _, _, password = decoded.partition(":")
        return _matches(password.encode("utf-8", "surrogatepass"), ui_secrets)

    async def page(send: Send, status: int, text: str, extra: Sequence[Header] = ()) -> None:
        await respond(send, status, text.encode("utf-8", "replace"), [*_UI_HEADERS, *extra])

    async def see_other(send: Send, location: str) -> None:
        await respond(send, 303, b"", [(b"location", location.encode())])

    async def serve_ui(scope: Scope, receive: Receive, send: Send) -> None:
        if not ui_authorized(scope):
            await page(
                send,
                401,
                "<!doctype html><p>This eventbus dev UI needs the server's signing key or "
                "one of its event keys, as the password (any user name).</p>",
                [(b"www-authenticate", b'Basic realm="eventbus", charset="UTF-8"')],
            )
            return
        method, path = scope["method"], scope["path"]
        parts = [p for p in path.split("/") if p][1:]
        query = urllib.parse.parse_qs(scope.get("query_string", b"").decode())
        try:
            engine = client.engine
        except Exception:
            engine = None
        if engine is None or not engine.running:
            await page(send, 503, "<!doctype html><p>The engine is not running.</p>")
            return
        if method == "POST":
            try:
                with anyio.fail_after(body_timeout):
                    form = parse_form(await read_body(receive))
            except (TimeoutError, _BadRequest) as exc:
                await page(send, 400, f"<!doctype html><p>{html.escape(str(exc))}</p>")
                return
            if not hmac.compare_digest(form.get("csrf", "").encode(), ui.csrf.encode()):
                await page(send, 403, "<!doctype html><p>This form is stale: reload the page.</p>")
                return
            await ui_action(send, engine, parts, form)
            return
        if method != "GET":
            await page(send, 405, f"<!doctype html><p>no route {html.escape(method)}</p>")
            return
        first = query.get

        if not parts:
            await see_other(send, "/ui/events")
        elif parts == ["events"]:
            await page(send, 200, ui.events_page(engine, first("name", [None])[0]))
        elif len(parts) == 2 and parts[0] == "events" and (event := engine.get_event(parts[1])):
            await page(send, 200, ui.event_page(engine, event))
        elif parts == ["runs"]:
            await page(
                send,
                200,
                ui.runs_page(engine, first("status", [None])[0], first("function", [None])[0]),
            )
        elif len(parts) == 2 and parts[0] == "runs" and (run := engine.get_run(parts[1])):
            await page(send, 200, ui.run_page(engine, run))
        elif parts == ["functions"]:
            await page(send, 200, ui.functions_page())
        elif parts == ["send"]:
            await page(send, 200, ui.send_page())
        else:
            await page(send, 404, f"<!doctype html><p>Nothing at {html.escape(path)}.</p>")

    async def ui_action(send: Send, engine: Engine, parts: list[str], form: dict[str, str]) -> None:
        if parts == ["send"]:
            event_id, error_page = await ui.send_event(form)
            if event_id is None:
                await page(send, 400, error_page)
            else:
                await see_other(send, f"/ui/events/{urllib.parse.quote(event_id, safe='')}")
            return
        if parts == ["replay"]:
            try:
                ui.replay(form)
            except EventbusError as exc:
                await page(send, 400, f"<!doctype html><p>{html.escape(str(exc))}</p>")
                return
            await see_other(send, "/ui/runs")
            return
        run = engine.get_run(parts[1]) if len(parts) == 3 and parts[0] == "runs" else None
        if run is None or parts[2] not in ("cancel", "rerun"):
            await page(send, 404, "<!doctype html><p>No such action.</p>")
            return
        try:
            if parts[2] == "cancel":
                client.cancel(run.run_id)
                target = run
            else:
                target = client.rerun(run.run_id)
        except EventbusError as exc:
            await page(send, 409, ui.run_page(engine, run, error=str(exc)))
            return
        await see_other(send, f"/ui/runs/{urllib.parse.quote(target.run_id, safe='')}")

    async def lifespan(receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "lifespan.startup":  # pragma: no cover - protocol guard
            return
        try:
            await client.__aenter__()
        except Exception as exc:  # pragma: no cover - reported to the server
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        await client.__aexit__(None, None, None)
        await send({"type": "lifespan.shutdown.complete"})

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":  # pragma: no cover - websockets are not served
            return
        method = scope["method"]
        path = scope["path"]  # already URL-decoded once by the server, as ASGI says
        if path == "/ui" or path.startswith("/ui/"):
            await serve_ui(scope, receive, send)
        elif method == "POST" and path.startswith("/e/"):
            await post_events(scope, path[3:], receive, send)
        elif method == "GET" and path == "/health":
            await reply(send, 200, {"status": 200, "message": "OK"})
        elif method == "GET":
            query = urllib.parse.parse_qs(scope.get("query_string", b"").decode())
            await get(scope, path, query, send)
        else:
            await reply(
                send,
                405 if path.startswith(("/e/", "/v1/")) else 404,
                {"error": f"no route {method} {path}"},
            )

    return app
