"""Cron expressions as cron reads them: ranges, weekday numbers and names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ldapsync.schedule import cron_trigger

# Wednesday, 1 January 2025, 12:00 UTC
START = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def fires(expression: str, count: int = 4, start: datetime = START) -> list[str]:
    """The next ``count`` fire times after ``start``, as 'Mon 2025-01-06 03:00'."""
    trigger = cron_trigger(expression, "UTC")
    found: list[str] = []
    previous = None
    now = start
    while len(found) < count:
        when = trigger.get_next_fire_time(previous, now)
        found.append(when.strftime("%a %Y-%m-%d %H:%M"))
        previous, now = when, when + timedelta(seconds=1)
    return found


def test_weekday_7_and_0_are_sunday():
    sundays = ["Sun 2025-01-05 03:00", "Sun 2025-01-12 03:00"]
    assert fires("0 3 * * 7", 2) == fires("0 3 * * 0", 2) == fires("0 3 * * sun", 2) == sundays


def test_weekday_ranges_count_from_sunday():
    # cron's 0-4 is Sunday to Thursday (APScheduler alone counts from Monday and refused it)
    assert fires("0 3 * * 0-4", 6) == ["Thu 2025-01-02 03:00", "Sun 2025-01-05 03:00", "Mon 2025-01-06 03:00",
                                       "Tue 2025-01-07 03:00", "Wed 2025-01-08 03:00", "Thu 2025-01-09 03:00"]
    assert fires("0 3 * * 5-7", 3) == ["Fri 2025-01-03 03:00", "Sat 2025-01-04 03:00", "Sun 2025-01-05 03:00"]
    assert fires("0 3 * * sat-sun", 3) == ["Sat 2025-01-04 03:00", "Sun 2025-01-05 03:00", "Sat 2025-01-11 03:00"]


def test_steps_apply_to_names_and_ranges():
    # APScheduler alone read mon-fri/2 as mon-fri
    assert fires("0 3 * * mon-fri/2", 4) == ["Fri 2025-01-03 03:00", "Mon 2025-01-06 03:00",
                                             "Wed 2025-01-08 03:00", "Fri 2025-01-10 03:00"]
    assert fires("*/20 13 * * *", 3) == ["Wed 2025-01-01 13:00", "Wed 2025-01-01 13:20", "Wed 2025-01-01 13:40"]
    assert fires("5/15 13 * * *", 4) == ["Wed 2025-01-01 13:05", "Wed 2025-01-01 13:20", "Wed 2025-01-01 13:35",
                                         "Wed 2025-01-01 13:50"]
    assert fires("0 0 1 jan,JUL *", 3) == ["Tue 2025-07-01 00:00", "Thu 2026-01-01 00:00", "Wed 2026-07-01 00:00"]
    assert fires("0 0 1 */5 *", 3) == ["Sun 2025-06-01 00:00", "Sat 2025-11-01 00:00",
                                       "Thu 2026-01-01 00:00"]


def test_a_sixth_field_in_front_is_seconds():
    trigger = cron_trigger("*/30 0 13 * * *", "UTC")
    first = trigger.get_next_fire_time(None, START)
    second = trigger.get_next_fire_time(first, first + timedelta(seconds=1))
    assert (first.hour, first.minute, first.second) == (13, 0, 0)
    assert (second.hour, second.minute, second.second) == (13, 0, 30)


@pytest.mark.parametrize(("expression", "says"), [
    ("0 3 * * 8", "the day of week field '8': 8 is out of range (0-7)"),
    ("60 3 * * *", "the minute field '60': 60 is out of range (0-59)"),
    ("0 24 * * *", "the hour field '24': 24 is out of range (0-23)"),
    ("0 3 0 * *", "the day of month field '0': 0 is out of range (1-31)"),
    ("0 3 32 * *", "the day of month field '32': 32 is out of range (1-31)"),
    ("0 3 * 13 *", "the month field '13': 13 is out of range (1-12)"),
    ("0 3 * 0 *", "the month field '0': 0 is out of range (1-12)"),
    ("60 0 3 * * *", "the second field '60': 60 is out of range (0-59)"),
    ("0 3 * * 1-8", "the day of week field '1-8': 8 is out of range (0-7)"),
    ("0 3 * * 99999999999999999999", "out of range (0-7)"),
    ("0 3 * * mon-frx", "the day of week field 'mon-frx': 'frx' is not a number or a name (sun, mon, ...)"),
    ("0 3 * mon *", "the month field 'mon': 'mon' is not a number or a name (jan, feb, ...)"),
    ("0 3 * * fri-mon", "the range 'fri-mon' runs backwards"),
    ("0 5-1 * * *", "the range '5-1' runs backwards"),
    ("*/0 3 * * *", "the step in '*/0' must be from 1 to 59"),
    ("0 */24 * * *", "the step in '*/24' must be from 1 to 23"),
    ("0 3 * * *-5", "is not *, a number, a range (1-5) or a step (*/15)"),
    ("0 3 1,,2 * *", "'' is not *, a number"),
    ("0 3 L * *", "'L' is not a number"),
    ("0 3 * * \u0661", "is not *, a number"),  # an Arabic-Indic digit one
    ("0 3 * *", "has 4 fields; expected 5"),
    ("0 0 0 3 * * *", "has 7 fields; expected 5"),
])
def test_a_field_out_of_range_is_refused_naming_the_field(expression, says):
    with pytest.raises(ValueError) as err:
        cron_trigger(expression, "UTC")
    assert says in str(err.value)
    assert str(err.value).startswith(repr(expression))


def test_day_of_month_and_weekday_both_given_mean_either():
    # cron: the 13th and every Friday, not only Friday the 13th
    assert fires("0 3 13 * fri", 4) == ["Fri 2025-01-03 03:00", "Fri 2025-01-10 03:00", "Mon 2025-01-13 03:00",
                                       "Fri 2025-01-17 03:00"]
    # a field that starts with * does not count as given: both must match
    assert fires("0 3 */2 * fri", 2) == ["Fri 2025-01-03 03:00", "Fri 2025-01-17 03:00"]
    assert fires("0 3 13 * *", 2) == ["Mon 2025-01-13 03:00", "Thu 2025-02-13 03:00"]
