"""Where an engine keeps its events, dedup claims and runs.

:class:`Store` is the protocol the engine writes through; :class:`MemoryStore` (the
default) keeps them in memory; :class:`SqliteStore` keeps them
in a SQLite file, so that a restarted process takes up every unfinished run.
"""

from ._base import Store as Store
from ._memory import MemoryStore as MemoryStore
from ._sqlite import SCHEMA_VERSION as SCHEMA_VERSION
from ._sqlite import SqliteStore as SqliteStore
from ._sqlite import StoreError as StoreError

__all__ = ("SCHEMA_VERSION", "MemoryStore", "SqliteStore", "Store", "StoreError")
