"""What eventbus.testing attaches to an engine (step mocks, capture, decision records)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._run import Run


class Harness:
    """What eventbus.testing attaches to an engine: mocks, capture, and records.

    The engine consults it only when it is set, so production engines pay nothing.
    """

    def __init__(self) -> None:
        #: (function id, step id) -> a value, or a callable taking the step's arguments.
        self.step_mocks: dict[tuple[str, str], Any] = {}
        #: function id -> runs recorded but not executed (capture mode).
        self.captured: dict[str, list[Run]] = {}
        #: event internal id -> [(function id, decision, detail)] (see explain()).
        self.decisions: dict[str, list[tuple[str, str, str]]] = {}
        #: user event id -> internal id of the first event with it (for explain()).
        self.first_with_id: dict[str, str] = {}
        #: every step.run execution: (function id, run id, step id, args, kwargs, outcome).
        self.step_calls: list[dict[str, Any]] = []
        #: event internal id -> function id that sent it with step.send_event.
        self.sent_by: dict[str, str] = {}
        #: If set, wait_for_event and invoke must be mocked (the mocked-runner contract).
        self.require_stubs = False
        #: (function id, step id) -> crash the engine once that step ran: after its result
        #: was recorded (True) or before (False). See Bus.crash_after; each fires once.
        self.crash_points: dict[tuple[str, str], bool] = {}

    def crash_point(self, function_id: str, step_key: str, committed: bool) -> bool:
        """Whether the engine must crash here (the point is used up if so)."""
        points = self.crash_points
        for key in ((function_id, step_key), (function_id, step_key.split(":", 1)[0])):
            if points.get(key) is committed:
                del points[key]
                return True
        return False

    def mock_for(self, function_id: str, step_key: str) -> tuple[bool, Any]:
        mocks = self.step_mocks
        if (function_id, step_key) in mocks:
            return True, mocks[function_id, step_key]
        base = step_key.split(":", 1)[0]
        if (function_id, base) in mocks:
            return True, mocks[function_id, base]
        return False, None


Entry = tuple[str, str, str]


class Explain:
    """What the engine decided for each event, per function (``bus.explain``, the dev
    UI): ``decisions`` by event internal id, and the first event seen with each user id.

    Under eventbus.testing it shares the harness's dicts (a test keeps everything);
    with ``limit`` (the dev UI) it keeps the decisions of the newest ``limit`` events.
    """

    __slots__ = ("decisions", "first_with_id", "limit", "unmatched")

    def __init__(self, harness: Harness | None = None, *, limit: int | None = None) -> None:
        self.limit = limit
        #: Whether to record, for each event, every function whose triggers it did not
        #: match (explain() in tests lists them; the dev UI shows only the functions an
        #: event's name triggers, so it keeps none of those).
        self.unmatched = harness is not None
        self.decisions: MutableMapping[str, list[Entry]]
        self.first_with_id: MutableMapping[str, str]
        if harness is not None:
            self.decisions, self.first_with_id = harness.decisions, harness.first_with_id
        else:
            self.decisions, self.first_with_id = OrderedDict(), OrderedDict()

    def add(self, internal_id: str, *entries: Entry) -> None:
        found = self.decisions.get(internal_id)
        if found is None:
            found = self.decisions[internal_id] = []
            self._bound(self.decisions)
        found.extend(entries)

    def first_seen(self, user_id: str, internal_id: str) -> None:
        self.first_with_id[user_id] = internal_id
        self._bound(self.first_with_id)

    def _bound(self, mapping: MutableMapping[str, Any]) -> None:
        if self.limit is not None and len(mapping) > self.limit:
            assert isinstance(mapping, OrderedDict)
            mapping.popitem(last=False)
