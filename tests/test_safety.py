"""The safety limits as pure functions: what a change from one file to another exceeds."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from ldapsync.config import Safety
from ldapsync.diff import diff
from ldapsync.groupsfile import GroupsFile, parse
from ldapsync.safety import check, public_contacts
from tests.budget import examples

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


def test_a_new_public_group_needs_force_once():
    old = "[Eng]\na@x=A\nb@x=B\n[+All]\na@x=A\nb@x=B\nc@x=C\n"
    renamed = "[+All]\na@x=A\nb@x=B\nc@x=C\n[+All Eng]\na@x=A\nb@x=B\n"
    assert exceeded(old, renamed, **REMOVALS_OFF) == [
        "/g.txt: 1 group would become visible to every user ('All Eng'); the limit is 0 "
        "(safety.max_public_groups_added)"]
    assert exceeded(old, renamed, max_public_groups_added=1, **REMOVALS_OFF) == []
    assert exceeded(old, renamed, max_public_groups_added=None, **REMOVALS_OFF) == []
    # a group turned public counts too; one that stays public does not
    turned = "[+Eng]\na@x=A\nb@x=B\n[+All]\na@x=A\nb@x=B\nc@x=C\n"
    assert "1 group would become visible to every user ('Eng')" in exceeded(old, turned, **REMOVALS_OFF)[0]
    assert exceeded(turned, turned, **REMOVALS_OFF) == []
    # no current file (the first run), or one without groups: nothing to compare with
    assert exceeded(None, renamed, **REMOVALS_OFF) == []
    assert exceeded("", renamed, **REMOVALS_OFF) == []
    many = "".join(f"[+G{i}]\nu{i}@x=U\n" for i in range(7))
    assert "7 groups would become visible to every user ('G0', 'G1', 'G2', 'G3', 'G4', ...)" in exceeded(
        "[Old]\nz@x=Z\n", many, max_public_contacts_gained_percent=None, **REMOVALS_OFF)[0]


def test_what_every_user_gains_through_the_public_groups():
    old = "[+All]\n" + "".join(f"u{i}@x=U\n" for i in range(10))
    grown = old + "[+Extra]\nu1@x=U\nn1@x=N\nn2@x=N\n[Team]\nn3@x=N\n"  # n1 and n2 are new to everyone
    limits = dict(max_public_groups_added=None, **REMOVALS_OFF)
    assert exceeded(old, grown, **limits) == []  # 2 of 10: 20%, within the default 20%
    assert exceeded(old, grown, max_public_contacts_gained_percent=19, **limits) == [
        "/g.txt: every user would gain 2 contacts through the public groups, which gave 10 before (20%); "
        "the limit is 19% (safety.max_public_contacts_gained_percent)"]
    assert exceeded(old, grown, max_public_contacts_gained=1, max_public_contacts_gained_percent=None, **limits) == [
        "/g.txt: every user would gain 2 contacts through the public groups; the limit is 1 "
        "(safety.max_public_contacts_gained)"]
    # public groups that gave nothing before: any gain exceeds a percentage
    assert exceeded("[Team]\na@x=A\n", "[Team]\na@x=A\n[+All]\na@x=A\n", **limits) == [
        "/g.txt: every user would gain 1 contact through the public groups, which gave none before; the limit "
        "is 20% (safety.max_public_contacts_gained_percent)"]
    assert exceeded(old, grown, max_public_contacts_gained_percent=None, **limits) == []


def test_contacts_gained_by_the_users_listed():
    old = "[Team]\na@x=A\nb@x=B\n"
    new = "[Team]\na@x=A\nb@x=B\nc@x=C\nd@x=D\n"  # a and b gain 2 each, c and d 3 each
    assert exceeded(old, new, max_contacts_gained=10, **REMOVALS_OFF) == []
    assert exceeded(old, new, max_contacts_gained=9, **REMOVALS_OFF) == [
        "/g.txt: 10 contacts would be added to users' rosters; the limit is 9 (safety.max_contacts_gained)"]


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


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(st.lists(st.sampled_from([f"u{i}@x" for i in range(12)]), max_size=8), max_size=5),
       st.lists(st.booleans(), min_size=5, max_size=5))
def test_public_contacts_is_the_size_of_the_union(groups, public):
    text = "".join(f"[{'+' if public[i] else ''}G{i}]\n" + "".join(f"{m}=M\n" for m in members)
                   for i, members in enumerate(groups))
    reading = parse(text + text)  # repeated headers: Prosody merges them
    expected = set().union(*(members for i, members in enumerate(groups) if public[i]))
    assert public_contacts(reading) == len(expected)
    assert public_contacts(GroupsFile.of_groups([])) == 0
