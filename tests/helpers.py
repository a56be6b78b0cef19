"""Shared helpers for the tests."""

from __future__ import annotations

import eventbus


def make_client(**kwargs: object) -> eventbus.Inngest:
    """A client on a virtual clock, so nothing in a test waits on real time."""
    kwargs.setdefault("clock", eventbus.VirtualClock())
    return eventbus.Inngest("test-app", **kwargs)  # type: ignore[arg-type]


def on(event: str, expression: str | None = None) -> eventbus.TriggerEvent:
    return eventbus.TriggerEvent(event=event, expression=expression)


def close_official_client(client: object) -> None:
    """Close the httpx client the official SDK opens and never closes (its sends use it)."""
    inner = getattr(client, "_http_client", None)
    sync = getattr(inner, "_http_client_sync", None)
    if sync is not None:
        sync.close()
