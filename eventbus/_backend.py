"""Which async library is running: ``"asyncio"``, ``"trio"`` or ``None`` (no loop).

``sniffio`` answers when it is installed (trio depends on it); anyio does not need it,
so without it the only backend there can be is asyncio.
"""

from __future__ import annotations


def current_backend() -> str | None:
    """The running async library's name, or ``None`` outside any event loop."""
    try:
        import sniffio
    except ImportError:  # trio depends on sniffio: without it, only asyncio can run
        import asyncio

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return None
        return "asyncio"
    try:
        return sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return None
