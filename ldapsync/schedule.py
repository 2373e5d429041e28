"""Cron expressions for ``ldapsync serve``, read by APScheduler 3.

The fields are checked and expanded here with cron's rules, not
APScheduler's: APScheduler counts weekdays from Monday (so cron's "0-4",
Sunday to Thursday, would be an error) and reads a name field only up to the
first character it does not expect ("mon-fri/2" would mean "mon-fri"), and
runs only on days that match both the day of month and the weekday, where
cron runs on days that match either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names for low, low + 1, ...


_SECOND = _Field("second", 0, 59)
_FIVE = (_Field("minute", 0, 59), _Field("hour", 0, 23), _Field("day of month", 1, 31),
         _Field("month", 1, 12, _MONTHS), _Field("day of week", 0, 7, _WEEKDAYS))
# one item of a list: *, a number or name, or a range; each with an optional /step
_ITEM = re.compile(r"(?P<first>\*|\w+)(?:-(?P<last>\w+))?(?:/(?P<step>\d+))?", re.ASCII)


def _number(field: _Field, text: str) -> int:
    if text.isdigit():
        value = int(text)
    elif text.lower() in field.names:
        value = field.low + field.names.index(text.lower())
    else:
        known = f" or a name ({field.names[0]}, {field.names[1]}, ...)" if field.names else ""
        raise ValueError(f"{text!r} is not a number{known}")
    if not field.low <= value <= field.high:
        raise ValueError(f"{value} is out of range ({field.low}-{field.high})")
    return value


def _values(field: _Field, text: str) -> list[int]:
    """The values a cron field selects (cron's rules), or ValueError
    naming the field and what is wrong with it."""
    chosen: set[int] = set()
    for item in text.split(","):
        match = _ITEM.fullmatch(item)
        try:
            if match is None:
                raise ValueError(f"{item!r} is not *, a number, a range (1-5) or a step (*/15)")
            first, last, step = match["first"], match["last"], match["step"]
            if first == "*":
                if last is not None:
                    raise ValueError(f"{item!r} is not *, a number, a range (1-5) or a step (*/15)")
                start, end = field.low, field.high
            else:
                start = _number(field, first)
                # "5/15" means from 5 on; "sat-sun" ends on Sunday as 7
                end = field.high if last is None and step else start
                if last is not None:
                    end = _number(field, last)
                    if field.names is _WEEKDAYS and end == 0 and start > 0:
                        end = 7
                if end < start:
                    raise ValueError(f"the range {item!r} runs backwards")
            if step is not None and not 0 < int(step) <= field.high - field.low:
                raise ValueError(f"the step in {item!r} must be from 1 to {field.high - field.low}")
        except ValueError as exc:
            raise ValueError(f"the {field.name} field {text!r}: {exc}") from None
        chosen.update(range(start, end + 1, int(step or 1)))
    return sorted(chosen)


def _apscheduler_field(field: _Field, text: str) -> str:
    values = _values(field, text)
    if text == "*":
        return "*"
    if field.names is _WEEKDAYS:  # cron's 0 and 7 are Sunday; names mean the same to APScheduler
        return ",".join(_WEEKDAYS[v % 7] for v in sorted({v % 7 for v in values}))
    return ",".join(map(str, values))


def cron_trigger(expression: str, timezone: str | None, jitter: int = 0) -> BaseTrigger:
    """A trigger from five cron fields (minute hour day month weekday), or six
    with seconds in front.  Raises ValueError with the reason."""
    texts = expression.split()
    if len(texts) == 5:
        texts.insert(0, "0")
    elif len(texts) != 6:
        raise ValueError(f"{expression!r} has {len(texts)} fields; expected 5 (minute hour day month weekday)")
    try:
        second, minute, hour, day, month, weekday = (
            _apscheduler_field(f, t) for f, t in zip((_SECOND, *_FIVE), texts, strict=True))

        def trigger(day: str, weekday: str, jitter: int | None) -> CronTrigger:
            return CronTrigger(second=second, minute=minute, hour=hour, day=day, month=month,
                               day_of_week=weekday, timezone=timezone, jitter=jitter)

        if texts[3].startswith("*") or texts[5].startswith("*"):
            return trigger(day, weekday, jitter or None)
        # cron runs on the days that match either field when both are given
        # ("0 3 1 * mon": the 1st and every Monday); APScheduler on those
        # that match both.
        return OrTrigger([trigger(day, "*", None), trigger("*", weekday, None)], jitter=jitter or None)
    except ValueError as exc:
        raise ValueError(f"{expression!r}: {exc}") from None
