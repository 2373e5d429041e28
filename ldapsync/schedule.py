"""Cron expressions for ``ldapsync serve``, read by APScheduler 3."""

from __future__ import annotations

import re

from apscheduler.triggers.cron import CronTrigger

_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# numbers in the weekday field, but not step sizes ("*/2")
_WEEKDAY_NUMBER = re.compile(r"(?<![/\d])\d+")


def _cron_weekdays(field: str) -> str:
    """cron counts weekdays from Sunday (0 or 7); APScheduler from Monday.
    Numbers become names, which mean the same to both."""
    return _WEEKDAY_NUMBER.sub(lambda m: _WEEKDAYS[int(m.group()) % 7], field)


def cron_trigger(expression: str, timezone: str | None, jitter: int = 0) -> CronTrigger:
    """A trigger from five cron fields (minute hour day month weekday), or six
    with seconds in front.  Raises ValueError with the reason."""
    fields = expression.split()
    if len(fields) == 5:
        minute, hour, day, month, weekday = fields
        second = "0"
    elif len(fields) == 6:
        second, minute, hour, day, month, weekday = fields
    else:
        raise ValueError(f"{expression!r} has {len(fields)} fields; expected 5 (minute hour day month weekday)")
    try:
        return CronTrigger(second=second, minute=minute, hour=hour, day=day, month=month,
                           day_of_week=_cron_weekdays(weekday), timezone=timezone, jitter=jitter or None)
    except ValueError as exc:
        raise ValueError(f"{expression!r}: {exc}") from None
