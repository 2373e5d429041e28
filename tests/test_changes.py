"""The pure helpers of the timestamp change tracking: GeneralizedTime as
servers write it, and the filter a run asks the changes with."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from ldapsync.directory.changes import MARGIN, generalized_time, parse_generalized_time, written_after


@pytest.mark.parametrize(("value", "expected"), [
    ("20261202074600Z", datetime(2026, 12, 2, 7, 46, 0, tzinfo=UTC)),  # OpenLDAP, 389-ds
    ("20261202074600.123Z", datetime(2026, 12, 2, 7, 46, 0, 123000, tzinfo=UTC)),
    ("20261202074600.0Z", datetime(2026, 12, 2, 7, 46, 0, tzinfo=UTC)),  # Active Directory
    ("20261202074600,5Z", datetime(2026, 12, 2, 7, 46, 0, 500000, tzinfo=UTC)),
    ("202612020746Z", datetime(2026, 12, 2, 7, 46, 0, tzinfo=UTC)),
    ("2026120207.5Z", datetime(2026, 12, 2, 7, 30, 0, tzinfo=UTC)),  # a fraction of the last unit given
    ("20261202084600+0100", datetime(2026, 12, 2, 7, 46, 0, tzinfo=UTC)),
    ("20261202061600-0130", datetime(2026, 12, 2, 7, 46, 0, tzinfo=UTC)),
    ("20261202074600+01", datetime(2026, 12, 2, 6, 46, 0, tzinfo=UTC)),
])
def test_generalized_time_forms(value, expected):
    assert parse_generalized_time(value) == expected


@pytest.mark.parametrize("value", ["", "2026-12-02T07:46:00Z", "20261202074600", "20261302074600Z",
                                   "20261202074600Zjunk", "20261202074600.Z"])
def test_anything_else_is_refused(value):
    with pytest.raises(ValueError):
        parse_generalized_time(value)


def test_filters_compare_whole_seconds_in_utc():
    moment = datetime(2026, 12, 2, 9, 46, 0, 999999, tzinfo=timezone(timedelta(hours=1)))
    assert generalized_time(moment) == "20261202084600Z"
    assert parse_generalized_time(generalized_time(moment)) == moment.replace(microsecond=0)


def test_changes_are_asked_from_the_marker_less_the_margin():
    """Rounded down: the marker's own second is asked again, whatever the margin."""
    assert timedelta(seconds=60) <= MARGIN
    since = datetime(2026, 12, 2, 7, 46, 0, tzinfo=UTC) - MARGIN
    assert written_after("20261202074600.999Z") == f"(modifyTimestamp>={since:%Y%m%d%H%M%S}Z)"
    assert written_after("20261202074600Z") == written_after("20261202074600.999Z")
