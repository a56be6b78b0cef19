"""Function options with the official SDK's names and fields.

Flow control (``Concurrency``, ``Throttle``, ``RateLimit``, ``Debounce``, ``Batch``,
``Priority``, ``Singleton``), ``idempotency`` and ``TriggerCron`` are constructed as in
the SDK, so app code written for it imports them unchanged (``import eventbus as
inngest``); the engine applies every one of them as Inngest does (see
docs/flow-control.md).
"""

from __future__ import annotations

import datetime
import enum
from typing import Any, Literal, Union

import attrs

#: A JSON value, as the SDK's ``inngest.JSON`` names it.
JSON = Union[None, bool, int, float, str, list[Any], dict[str, Any]]  # noqa: UP007

Duration = Union[int, datetime.timedelta]  # noqa: UP007


@attrs.frozen(kw_only=True)
class Concurrency:
    """At most ``limit`` steps of the function executing at once (per ``key``)."""

    limit: int
    key: str | None = None
    scope: Literal["account", "env", "fn"] | None = None


@attrs.frozen(kw_only=True)
class Throttle:
    """At most ``limit`` run starts per ``period`` (plus ``burst``), per ``key``."""

    limit: int
    period: Duration
    burst: int | None = 1
    key: str | None = None


@attrs.frozen(kw_only=True)
class RateLimit:
    """At most ``limit`` runs per ``period`` per ``key``; excess events start no run."""

    limit: int
    period: Duration
    key: str | None = None


@attrs.frozen(kw_only=True)
class Debounce:
    """Run once ``period`` after the last event (per ``key``), at most ``timeout`` later."""

    period: Duration
    key: str | None = None
    timeout: Duration | None = None


@attrs.frozen(kw_only=True)
class Batch:
    """Run with up to ``max_size`` events at once, or after ``timeout``."""

    max_size: int
    timeout: Duration | None = None
    key: str | None = None
    if_exp: str | None = None


@attrs.frozen(kw_only=True)
class Priority:
    """``run``: an expression giving a number of seconds to move runs ahead in the queue."""

    run: str


@attrs.frozen(kw_only=True)
class Singleton:
    """At most one active run per ``key``: ``mode="skip"`` new ones or ``"cancel"`` the old."""

    mode: Literal["skip", "cancel"]
    key: str | None = None


@attrs.frozen(kw_only=True)
class TriggerCron:
    """Run on a schedule: ``cron`` is five fields, optionally after ``TZ=Zone/Name``."""

    cron: str
    jitter: str | None = None


#: The create_function keywords that configure flow control (as the SDK names them).
FLOW_CONTROL_OPTIONS = (
    "batch_events",
    "concurrency",
    "debounce",
    "idempotency",
    "priority",
    "rate_limit",
    "singleton",
    "throttle",
)


class Streaming(enum.Enum):
    """The SDK's ``serve(streaming=...)`` setting (keepalive bytes on slow responses);
    it has no meaning in-process and exists so that app code imports unchanged."""

    DISABLE = "disable"
    FORCE = "force"
