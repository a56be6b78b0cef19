"""Shared helpers for the tests."""

from __future__ import annotations

import eventbus


def make_client(**kwargs: object) -> eventbus.Inngest:
    """A client on a virtual clock, so nothing in a test waits on real time."""
    kwargs.setdefault("clock", eventbus.VirtualClock())
    return eventbus.Inngest("test-app", **kwargs)  # type: ignore[arg-type]


def on(event: str, expression: str | None = None) -> eventbus.TriggerEvent:
    return eventbus.TriggerEvent(event=event, expression=expression)
