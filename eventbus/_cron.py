"""Cron schedules as Inngest reads them: five fields, optionally after ``TZ=Zone/Name``
or ``CRON_TZ=Zone/Name``, UTC otherwise; an optional ``jitter`` of 1 s to 5 min.

Parsing and stepping are cronsim's (the ``cron`` extra: ``pip install 'eventbus[cron]'``):
a small, dependency-free evaluator with exact day-of-month/day-of-week and daylight
saving time rules, which is what a hand-written parser gets wrong. Pure: the caller
says what time it is.
"""

from __future__ import annotations

import datetime
import zoneinfo
from typing import Any

import attrs

from ._clock import datetime_to_ms, ms_to_datetime
from ._duration import check_period_ms
from ._errors import FunctionConfigError

MAX_CRON_LENGTH = 255
MIN_JITTER_MS = 1_000
MAX_JITTER_MS = 300_000
UTC = datetime.timezone.utc


@attrs.frozen
class CronSchedule:
    """One ``TriggerCron`` of a function, validated."""

    #: As written (the ``cron`` of the tick's event data).
    cron: str
    #: The five fields, without the zone prefix.
    fields: str
    zone: str | None
    jitter_ms: int
    #: The jitter as written (for the bridge to the SDK).
    jitter: str | None = None

    def next_after(self, ms: int) -> int:
        """The first tick strictly after ``ms`` (epoch milliseconds)."""
        from cronsim import CronSim

        tz: datetime.tzinfo = UTC if self.zone is None else zoneinfo.ZoneInfo(self.zone)
        # Ticks are whole minutes: start from the next second boundary after ``ms``.
        start = ms_to_datetime(ms - ms % 1000).astimezone(tz)
        for tick in CronSim(self.fields, start):
            tick_ms = datetime_to_ms(tick.astimezone(UTC))
            if tick_ms > ms:
                return tick_ms
        raise AssertionError("unreachable: a cron schedule never ends")  # pragma: no cover


def check_cron(fn_id: str, trigger: Any) -> CronSchedule:
    """Validate a ``TriggerCron`` (eventbus's or the SDK's) as Inngest does at
    registration; raise FunctionConfigError naming the problem."""
    cron = getattr(trigger, "cron", None)
    if not isinstance(cron, str) or not cron.strip():
        raise FunctionConfigError(
            f"{fn_id!r}: TriggerCron(cron=...) must be a cron string like '0 9 * * 1-5', "
            f"got {cron!r}"
        )
    if len(cron) > MAX_CRON_LENGTH:
        raise FunctionConfigError(
            f"{fn_id!r}: the cron {cron[:40]!r}... is longer than {MAX_CRON_LENGTH} characters"
        )
    text = cron.strip()
    zone = None
    for prefix in ("TZ=", "CRON_TZ="):
        if text.startswith(prefix):
            zone, _, text = text[len(prefix) :].partition(" ")
            text = text.strip()
            try:
                zoneinfo.ZoneInfo(zone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise FunctionConfigError(
                    f"{fn_id!r}: cron {cron!r} names the time zone {zone!r}, which is not an "
                    "IANA zone (write it like TZ=Europe/Paris)"
                ) from None
            break
    if len(text.split()) != 5:
        raise FunctionConfigError(
            f"{fn_id!r}: cron {cron!r} must have five fields (minute hour day-of-month month "
            "day-of-week), as Inngest takes it; seconds and @descriptors are not accepted"
        )
    try:
        from cronsim import CronSim, CronSimError
    except ImportError:
        raise FunctionConfigError(
            f"{fn_id!r}: cron triggers need the cron extra: pip install 'eventbus[cron]'"
        ) from None
    try:
        CronSim(text, datetime.datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        raise FunctionConfigError(f"{fn_id!r}: cron {cron!r} is not valid: {exc}") from None
    jitter_ms = 0
    jitter = getattr(trigger, "jitter", None)
    if jitter is not None:
        jitter_ms = check_period_ms(fn_id, "cron jitter", jitter, MIN_JITTER_MS, MAX_JITTER_MS)
    return CronSchedule(cron, text, zone, jitter_ms, None if jitter is None else str(jitter))


def scheduled_id(ms: int) -> str:
    """A tick's event id (and idempotency key): its time in RFC 3339, UTC, as Inngest."""
    return ms_to_datetime(ms).strftime("%Y-%m-%dT%H:%M:%SZ")
