"""eventbus: an embedded, in-process event bus and durable-function engine with Inngest's API.

::

    import eventbus

    client = eventbus.Inngest(app_id="acme-storefront-app")

    @client.create_function(fn_id="send-receipt",
                            trigger=eventbus.TriggerEvent(event="storefront/cart.checkout.completed"))
    async def send_receipt(ctx: eventbus.Context) -> dict:
        return {"cart": ctx.event.data["cartId"]}
"""

from ._client import Inngest as Inngest
from ._clock import Clock as Clock
from ._clock import SystemClock as SystemClock
from ._clock import VirtualClock as VirtualClock
from ._context import Context as Context
from ._context import ContextSync as ContextSync
from ._errors import ConfigWarning as ConfigWarning
from ._errors import EngineNotRunningError as EngineNotRunningError
from ._errors import EventbusError as EventbusError
from ._errors import EventValidationError as EventValidationError
from ._errors import ExpressionError as ExpressionError
from ._errors import FunctionConfigError as FunctionConfigError
from ._errors import NonRetriableError as NonRetriableError
from ._errors import RetryAfterError as RetryAfterError
from ._errors import SendEventsError as SendEventsError
from ._errors import StepError as StepError
from ._errors import UsageError as UsageError
from ._event import Event as Event
from ._event import StoredEvent as StoredEvent
from ._function import Cancel as Cancel
from ._function import Function as Function
from ._function import Timeouts as Timeouts
from ._function import TriggerEvent as TriggerEvent
from ._middleware import Middleware as Middleware
from ._middleware import MiddlewareSync as MiddlewareSync
from ._middleware import Opcode as Opcode
from ._middleware import SendEventsResult as SendEventsResult
from ._middleware import StepMemos as StepMemos
from ._middleware import StepOutput as StepOutput
from ._middleware import TransformOutputResult as TransformOutputResult
from ._middleware import TransformOutputStepInfo as TransformOutputStepInfo
from ._options import JSON as JSON
from ._options import Batch as Batch
from ._options import Concurrency as Concurrency
from ._options import Debounce as Debounce
from ._options import Priority as Priority
from ._options import RateLimit as RateLimit
from ._options import Singleton as Singleton
from ._options import Streaming as Streaming
from ._options import Throttle as Throttle
from ._options import TriggerCron as TriggerCron
from ._run import Run as Run
from ._run import RunStatus as RunStatus
from ._run import StepRecord as StepRecord
from ._run import StepStatus as StepStatus
from ._serializer import PydanticSerializer as PydanticSerializer
from ._serializer import Serializer as Serializer
from ._step import Group as Group
from ._step import GroupSync as GroupSync
from ._step import ParallelMode as ParallelMode
from ._step import Step as Step
from ._step import StepSync as StepSync

__version__ = "0.1.0"

__all__ = (  # noqa: RUF022 - plain sorted order, checked by a test
    "Batch",
    "Cancel",
    "Clock",
    "Concurrency",
    "ConfigWarning",
    "Context",
    "ContextSync",
    "Debounce",
    "EngineNotRunningError",
    "Event",
    "EventValidationError",
    "EventbusError",
    "ExpressionError",
    "Function",
    "FunctionConfigError",
    "Group",
    "GroupSync",
    "Inngest",
    "JSON",
    "Middleware",
    "MiddlewareSync",
    "NonRetriableError",
    "Opcode",
    "ParallelMode",
    "Priority",
    "PydanticSerializer",
    "RateLimit",
    "RetryAfterError",
    "Run",
    "RunStatus",
    "SendEventsError",
    "SendEventsResult",
    "Serializer",
    "Singleton",
    "Step",
    "StepError",
    "StepMemos",
    "StepOutput",
    "StepRecord",
    "StepStatus",
    "StepSync",
    "StoredEvent",
    "Streaming",
    "SystemClock",
    "Throttle",
    "Timeouts",
    "TransformOutputResult",
    "TransformOutputStepInfo",
    "TriggerCron",
    "TriggerEvent",
    "UsageError",
    "VirtualClock",
)
