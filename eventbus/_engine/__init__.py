"""The engine, one concern a module, imports pointing inwards:

- ``_machine``: the run state machine, pure decisions (how an execution's end, a
  step's failure, a cancel, a pause's deadline, a restart move a run on);
- ``_policy``: the retry policy (backoff table, jitter, RetryAfterError bounds), pure;
- ``_timers``: the timer heap (no clock read: callers say what time it is);
- ``_pauses``: waits, invokes and cancel rules, matched against events (pure decisions);
- ``_runtime``: the shell, the only place that owns the task group, workers, timers and
  thread pools, applies decisions to runs, and writes through the store
  (:mod:`eventbus.stores`); ``Engine`` is its facade for the client and eventbus.testing.

The step tools and contexts hold the engine only as a ``StepHost`` (:mod:`eventbus._host`),
the narrow interface they may use.
"""

from .._harness import Harness as Harness
from ._policy import BACKOFF_MS as BACKOFF_MS
from ._policy import MAX_JITTER_MS as MAX_JITTER_MS
from ._policy import backoff_ms as backoff_ms
from ._runtime import BACKLOG_YIELD as BACKLOG_YIELD
from ._runtime import Engine as Engine
from ._runtime import _unwrap as _unwrap

__all__ = ("BACKLOG_YIELD", "BACKOFF_MS", "MAX_JITTER_MS", "Engine", "Harness", "backoff_ms")
