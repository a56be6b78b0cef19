"""Hypothesis strategies for eventbus, and a state machine to fuzz your functions.

* :func:`events` always generates valid events (names never use the reserved
  ``inngest/`` prefix; data is JSON; ``ts`` is in range). It is registered with
  hypothesis, so ``st.from_type(eventbus.Event)`` works once eventbus is installed.
* :class:`EventbusStateMachine` sends random events to your client's functions and jumps
  the virtual clock between them; add your own ``@invariant()`` methods.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule

from .._client import Inngest
from .._event import TS_MAX_MS, TS_MIN_MS, Event

__all__ = ("EventbusStateMachine", "event_names", "events", "json_data")

_SEGMENT = r"[a-z][a-z0-9_-]{0,11}"


def event_names() -> st.SearchStrategy[str]:
    """Names like ``app/user.created``: a prefix, a slash, dotted words; never ``inngest/``."""
    return st.from_regex(rf"{_SEGMENT}/{_SEGMENT}(\.{_SEGMENT}){{0,2}}", fullmatch=True).filter(
        lambda name: not name.lower().startswith("inngest/")
    )


def json_data(*, max_leaves: int = 12) -> st.SearchStrategy[dict[str, Any]]:
    """JSON objects: string keys; values strings, ints, finite floats, bools, None,
    lists and objects."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-(2**53), 2**53)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=20)
    )
    values = st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=max_leaves,
    )
    return st.dictionaries(st.text(max_size=12), values, max_size=6)


def events(
    names: Sequence[str] | st.SearchStrategy[str] | None = None,
    data: st.SearchStrategy[Mapping[str, Any]] | None = None,
    *,
    ids: bool = True,
    timestamps: bool = True,
) -> st.SearchStrategy[Event]:
    """Valid :class:`eventbus.Event` values.

    ``names`` is a list to pick from or a strategy (default :func:`event_names`);
    ``data`` a strategy of mappings (default :func:`json_data`). With ``ids`` some events
    carry a dedup ``id`` (drawn from a small pool, so duplicates happen); with
    ``timestamps`` some carry an explicit ``ts``.
    """
    if names is None:
        name_strategy: st.SearchStrategy[str] = event_names()
    elif isinstance(names, st.SearchStrategy):
        name_strategy = names
    else:
        name_strategy = st.sampled_from(list(names))
    data_strategy = data if data is not None else json_data()
    id_strategy = st.none() | st.sampled_from([f"id-{n}" for n in range(5)]) if ids else st.none()
    ts_strategy = st.none() | st.integers(TS_MIN_MS, TS_MAX_MS) if timestamps else st.none()
    return st.builds(
        Event,
        name=name_strategy,
        data=data_strategy,
        id=id_strategy,
        ts=ts_strategy,
    )


def _hypothesis_setup_hook() -> None:
    """Registered under hypothesis's entry points: ``st.from_type(eventbus.Event)``."""
    st.register_type_strategy(Event, events())


class EventbusStateMachine(RuleBasedStateMachine):
    """Fuzz your functions with random event streams and time jumps.

    Subclass it, set ``client`` (and optionally ``event_strategy``, ``max_time_jump``,
    ``backend``), and add ``@invariant()`` methods that look at ``self.bus``::

        class CheckoutMachine(EventbusStateMachine):
            client = app
            event_strategy = events(names=["shop/order.created"], data=orders())

            @invariant()
            def charged_at_most_once(self):
                ...

        TestCheckout = CheckoutMachine.TestCase

    Each example runs a fresh engine (``eventbus.testing.running``) in a background
    event loop; every rule settles the engine before invariants are checked.
    """

    client: ClassVar[Inngest]
    event_strategy: ClassVar[st.SearchStrategy[Any]] = events()
    max_time_jump: ClassVar[datetime.timedelta] = datetime.timedelta(days=2)
    backend: ClassVar[str] = "asyncio"

    def __init__(self) -> None:
        super().__init__()
        import anyio.from_thread

        from . import running

        if not isinstance(getattr(type(self), "client", None), Inngest):
            raise TypeError(
                f"{type(self).__name__} must set the class attribute client to your "
                "eventbus.Inngest client"
            )
        self._portal_cm = anyio.from_thread.start_blocking_portal(self.backend)
        self.portal = self._portal_cm.__enter__()
        try:
            self._running = self.portal.wrap_async_context_manager(running(self.client, seed=0))
            self.bus = self._running.__enter__()
        except BaseException:  # pragma: no cover - engine failed to start
            self._portal_cm.__exit__(None, None, None)
            raise

    @rule(event=st.runner().flatmap(lambda machine: machine.event_strategy))
    def send_event(self, event: Any) -> None:
        """Send a random event and let the engine settle."""
        self.portal.call(self.bus.send, event)
        self.portal.call(self.bus.settle)

    @rule(fraction=st.floats(0, 1))
    def advance_time(self, fraction: float) -> None:
        """Jump the virtual clock by up to ``max_time_jump`` and settle."""
        delta = self.max_time_jump * fraction
        clock = self.bus.clock
        advance = getattr(clock, "advance", None)
        if advance is not None:
            self.portal.call(advance, delta)
        self.portal.call(self.bus.settle)

    def teardown(self) -> None:
        try:
            self._running.__exit__(None, None, None)
        finally:
            self._portal_cm.__exit__(None, None, None)
