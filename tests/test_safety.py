"""The safety limits as pure functions: what a change from one file to another exceeds."""

from __future__ import annotations

from pathlib import Path

from ldapsync.config import Safety
from ldapsync.diff import diff
from ldapsync.groupsfile import parse
from ldapsync.safety import check

PATH = Path("/g.txt")
# the limits on removals off, to see the others alone
REMOVALS_OFF = {"max_groups_removed_percent": None, "max_members_removed_percent": None}


def exceeded(old: str | None, new: str, given: tuple[int, int] | None = None, static: tuple[str, ...] = (),
             **limits) -> list[str]:
    """The limits a change from the file ``old`` (None: no file) to ``new``
    exceeds; by default everything in ``new`` comes from the directory."""
    before, after = (parse(old or ""), parse(new))
    if given is None:
        given = after.size()
    return check(PATH, Safety(**limits), None if old is None else before, diff(before, after), given, static)


def test_the_empty_answer_is_judged_on_what_the_directory_gives():
    old = "[Eng]\na@x=A\nb@x=B\n[Helpdesk]\nh@x=H\n"
    static_only = "[Helpdesk]\nh@x=H\n"
    # the static group alone: the directory gave nothing
    assert exceeded(old, static_only, given=(0, 0), static=("Helpdesk",), **REMOVALS_OFF) == [
        "/g.txt: the directory gives no groups at all; the current file has 1 besides static_groups "
        "(safety.refuse_empty)"]
    assert exceeded(old, static_only, given=(0, 0), static=("Helpdesk",), refuse_empty=False, **REMOVALS_OFF) == []
    # a static group merged with a directory group counts by its directory members only
    merged = "[Eng]\noncall@x=O\n[Helpdesk]\nh@x=H\n"
    assert exceeded(old, merged, given=(1, 0), static=("Helpdesk", "Eng"), **REMOVALS_OFF) == []  # it held only those
    old_with_more = old + "[Ops]\no@x=O\n"
    assert exceeded(old_with_more, merged, given=(1, 0), static=("Helpdesk", "Eng"), **REMOVALS_OFF) == [
        "/g.txt: the directory gives no members at all; the current file has 1 besides static_groups "
        "(safety.refuse_empty)"]
    # a file of static groups only is no full file to protect
    assert exceeded(static_only, static_only, given=(0, 0), static=("Helpdesk",)) == []
    # without static groups, as before
    assert exceeded(old, "", given=(0, 0))[0] == ("/g.txt: the directory gives no groups at all; the current "
                                                   "file has 2 (safety.refuse_empty)")
