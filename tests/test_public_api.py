"""The public namespace: __all__ matches the re-exports."""

from __future__ import annotations

import eventbus
import eventbus.transports


def test_all_lists_exactly_the_public_names() -> None:
    """Every public attribute is in __all__ and every name in __all__ exists."""
    for module in (eventbus, eventbus.transports):
        public = {
            name
            for name, value in vars(module).items()
            if not name.startswith("_") and not isinstance(value, type(eventbus))
        }
        assert set(module.__all__) == public
        assert tuple(sorted(module.__all__)) == module.__all__


def test_version() -> None:
    """The package has a version string."""
    assert eventbus.__version__.count(".") == 2
