"""Group changes and per-user roster impact, checked against rosters built one by one."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ldapsync import rosterdiff
from ldapsync.diff import RosterChange, diff, group_changes, roster_changes
from ldapsync.groupsfile import GroupsFile, parse
from ldapsync.roster import build_roster
from tests.budget import examples
from tests.test_groupsfile import model_chains


def naive_counts(old, new, user):
    """Gained, lost, renamed, regrouped contacts of one user, from two full rosters."""
    a, b = build_roster(old, user), build_roster(new, user)
    counts = [0, 0, 0, 0]
    for contact in a.keys() | b.keys():
        x, y = a.get(contact), b.get(contact)
        if x is None:
            counts[0] += 1
        elif y is None:
            counts[1] += 1
        else:
            counts[2] += x.name != y.name
            counts[3] += x.groups != y.groups
    return counts


def test_group_changes():
    old = parse("[A]\na@x=A\nb@x=B\n[B]\nc@x=C\n[+P]\n")
    new = parse("[A]\na@x=Anna\nd@x=D\n[+B]\nc@x=C\n[Q]\n")
    changes = {g.group: g for g in group_changes(old, new)}
    assert changes["A"].added == (("d@x", "D"),) and changes["A"].removed == ("b@x",)
    assert changes["A"].renamed == (("a@x", "A", "Anna"),)
    assert (changes["B"].public_before, changes["B"].public_after) == (False, True)
    assert changes["P"].status == "removed" and changes["Q"].status == "added"
    assert group_changes(old, old) == []


def test_identical_files_have_no_diff():
    text = "[+Staff]\na@x=A\nb@x=B\n[T]\na@x=A\n"
    result = diff(parse(text), parse(text))
    assert not result.changed and result.summary() == "no changes"


def test_roster_impact_sentences():
    old = parse("[Team]\nalice@x=Alice\nbob@x=Bob\n")
    new = parse("[Team]\nalice@x=Alice\nbob@x=Bob\ncarol@x=Carol\ndave@x=Dave\nerin@x=Erin\n")
    users = {c.user: c for c in diff(old, new).users}
    assert users["alice@x"].sentence() == "alice@x gains 3 contacts"
    assert users["carol@x"].sentence() == "carol@x gains 4 contacts, joins 'Team'"
    assert RosterChange("u@x", lost=1, renamed=2).sentence() == "u@x loses 1 contact, sees 2 contacts renamed"


def test_public_group_changes_reach_every_other_user():
    old = parse("[+Staff]\na@x=A\n")
    new = parse("[+Staff]\na@x=A\nb@x=B\n")
    result = diff(old, new)
    assert result.others == RosterChange(None, gained=1)
    assert result.others.sentence() == "every other user of the host gains 1 contact"
    assert diff(parse("[T]\na@x=A\n"), parse("[T]\na@x=A\nb@x=B\n")).others is None


def test_large_groups_are_counted_exactly():
    staff = "".join(f"u{i}@x=U{i}\n" for i in range(3000))
    old = parse(f"[Staff]\n{staff}[Team]\nu1@x=U1\nu2@x=U2\n")
    new = parse(f"[Staff]\n{staff.replace('u5@x=U5', 'u5@x=Five')}new@x=New\n[Team]\nu1@x=U1\nu2@x=U2\nu3@x=U3\n")
    changes = {c.user: c for c in roster_changes(old, new)[0]}
    for user in ("u1@x", "u3@x", "u5@x", "new@x", "u100@x"):
        c = changes[user]
        assert [c.gained, c.lost, c.renamed, c.regrouped] == naive_counts(old, new, user), user
    assert changes["new@x"].gained == 3000
    assert len(changes) == 3001


USERS = "abcdefg"
LINES = st.one_of(
    st.builds(lambda p, g: f"[{p}{g}]", st.sampled_from(["", "+"]), st.sampled_from("ABCD")),
    st.builds(lambda u, eq, n: f"{u}@x{eq}{n}", st.sampled_from(USERS), st.sampled_from(["=", ""]),
              st.sampled_from(["", "N", "M"])),
)


@st.composite
def everyone(draw):
    """Maybe a group holding every user ("All Staff"), public or not, named like the others or not."""
    if not draw(st.booleans()):
        return []
    header = draw(st.sampled_from(["[All]", "[+All]", "[A]", "[+A]"]))
    name = draw(st.sampled_from(["=N", "=M", ""]))
    return [header, *(f"{u}@x{name}" for u in USERS)]


@st.composite
def files(draw):
    lines = draw(st.lists(LINES, max_size=20))
    at = draw(st.integers(0, len(lines)))
    return parse("\n".join(lines[:at] + draw(everyone()) + lines[at:]))


FILES = files()
# Groups at least this large count as big in the diff (a matter of speed
# only): every group small, every group big, and the cut in between.
BIG = st.sampled_from([0, 2, 5, 10**9])


@settings(max_examples=examples(1500), deadline=None)
@given(FILES, FILES, BIG)
def test_roster_impact_equals_rosters_built_one_by_one(old, new, big):
    saved, rosterdiff._BIG = rosterdiff._BIG, big
    try:
        changes, others = roster_changes(old, new)
    finally:
        rosterdiff._BIG = saved
    got = {c.user: [c.gained, c.lost, c.renamed, c.regrouped] for c in changes}
    for user in sorted(old.memberships.keys() | new.memberships.keys()):
        expected = naive_counts(old, new, user)
        assert got.get(user, [0, 0, 0, 0]) == expected, user
    outsider = naive_counts(old, new, "nobody@elsewhere")
    if others is None:
        assert outsider == [0, 0, 0, 0]
    else:
        assert [others.gained, others.lost, others.renamed, others.regrouped] == outsider


def _edited(draw, ops: list[str], most: int, added) -> tuple[GroupsFile, GroupsFile]:
    """A drawn file (maybe with a group of everyone) and the same after up to
    ``most`` edits of the kinds ``ops``: a line dropped, one ``added`` (a
    strategy) put in, one replaced, a private header put in, a header made
    public or not."""
    lines = draw(st.lists(LINES, max_size=30))
    at = draw(st.integers(0, len(lines)))
    lines[at:at] = draw(everyone())
    edited = list(lines)
    private = st.builds(lambda g: f"[{g}]", st.sampled_from("ABCDE"))
    for _ in range(draw(st.integers(0, most))):
        op = draw(st.sampled_from(ops))
        at = draw(st.integers(0, len(edited)))
        headers = [i for i, line in enumerate(edited) if line.startswith("[")]
        if op == "add":
            edited.insert(at, draw(added))
        elif op == "header":
            edited.insert(at, draw(private))
        elif op == "flip" and headers:  # a group made public, or no longer
            i = draw(st.sampled_from(headers))
            edited[i] = "[" + (edited[i][2:] if edited[i].startswith("[+") else "+" + edited[i][1:])
        elif edited and at < len(edited):
            if op == "drop":
                del edited[at]
            elif op == "replace":
                edited[at] = draw(LINES)
    return parse("\n".join(lines)), parse("\n".join(edited))


@st.composite
def related_files(draw):
    """An old file and a new one a few edits away: most users keep their groups,
    which is the common nightly case and a path of its own in the code."""
    return _edited(draw, ["drop", "add", "replace"], 3, LINES)


@settings(max_examples=examples(1500), deadline=None)
@given(related_files(), BIG)
def test_roster_impact_of_small_edits_equals_rosters_built_one_by_one(pair, big):
    test_roster_impact_equals_rosters_built_one_by_one.hypothesis.inner_test(*pair, big)


def test_the_pairwise_union_equals_one_union_of_all_parts():
    """rosterdiff._union joins a few bitmaps pairwise and many in one call:
    both ways give the plain union, and an empty list gives an empty bitmap."""
    from pyroaring import BitMap

    parts = [BitMap(range(i, 70_000, 997 + i)) for i in range(12)]
    for n in range(len(parts) + 1):
        assert rosterdiff._union(parts[:n]) == BitMap().union(*parts[:n])


# --- only the users a change can reach ---------------------------------------------------


def plain_roster_changes(old, new):
    """roster_changes over every user of both files, each user's view made of
    all their groups: as if no user, and no group of theirs, could be left out."""
    return rosterdiff._roster_changes(rosterdiff._Rosters(old, new), old, new, rosterdiff._everyone(old, new),
                                      leave_quiet_out=False)


MEMBER_LINES = LINES.filter(lambda line: not line.startswith("["))


@st.composite
def private_edits(draw):
    """An old file and a new one that differ in a few groups, most often no
    public one (the case where only some users are looked at): lines of the
    private groups edited, a group added or removed or made public, users
    gone from every group or new, names changed, several names for one JID."""
    return _edited(draw, ["drop", "add", "header", "flip", "replace"], 4, MEMBER_LINES)


@st.composite
def sections_reordered(draw):
    """The same sections (a header and its member lines) in another order,
    some of them repeated: often the same groups, with a user's groups
    listed in another order or twice, which changes the name a contact
    gets from the group applied last."""
    member = st.builds(lambda u, n: f"{u}@x{n}", st.sampled_from("abc"), st.sampled_from(["=N", "=M", ""]))
    sections = draw(st.lists(st.tuples(st.sampled_from(["[A]", "[B]", "[C]", "[+P]"]),
                                       st.lists(member, max_size=4)), max_size=5))
    order = draw(st.permutations(range(len(sections))))
    again = draw(st.lists(st.sampled_from(range(len(sections))), max_size=2)) if sections else []

    def text(indices):
        return "\n".join(line for i in indices for line in [sections[i][0], *sections[i][1]])

    return parse(text(range(len(sections)))), parse(text([*order, *again]))


FEW = st.builds(lambda u, n: f"{u}@x{n}", st.sampled_from("abc"), st.sampled_from(["=N", "=M", ""]))


@st.composite
def few_people(draw):
    """A file of a few people in a few groups, and the same with a line
    renamed, added or dropped, or a group made public or not: most people
    keep their groups, and the groups they keep often hold someone whose
    name or groups change."""
    sections = draw(st.lists(st.tuples(st.sampled_from(["A", "B", "C", "+P"]),
                                       st.lists(FEW, min_size=1, max_size=4)), min_size=2, max_size=4))
    edited = [(header, list(lines)) for header, lines in sections]
    for _ in range(draw(st.integers(1, 2))):
        header, lines = edited[i := draw(st.integers(0, len(edited) - 1))]
        op = draw(st.sampled_from(["flip", "rename", "rename", "add", "drop"]))
        if op == "flip":
            edited[i] = (header[1:] if header.startswith("+") else "+" + header, lines)
        elif op == "add":
            lines.insert(draw(st.integers(0, len(lines))), draw(FEW))
        elif lines:
            at = draw(st.integers(0, len(lines) - 1))
            if op == "drop":
                del lines[at]
            else:
                lines[at] = lines[at].partition("=")[0] + draw(st.sampled_from(["=N", "=M", "=O", ""]))

    def text(parts):
        return "\n".join(line for header, lines in parts for line in [f"[{header}]", *lines])

    return parse(text(sections)), parse(text(edited))


@settings(max_examples=examples(1500), deadline=None)
@given(st.one_of(private_edits(), related_files(), st.tuples(FILES, FILES)), BIG)
def test_the_users_a_change_can_reach_have_every_roster_change(pair, big):
    """roster_changes looks only at the members of the groups that differ
    (everyone when a public group does): it finds what looking at every
    user finds, in the same order."""
    old, new = pair
    saved, rosterdiff._BIG = rosterdiff._BIG, big
    try:
        assert roster_changes(old, new) == plain_roster_changes(old, new)
    finally:
        rosterdiff._BIG = saved


@settings(max_examples=examples(1500), deadline=None)
@given(few_people(), BIG)
def test_the_people_who_keep_their_groups_have_every_roster_change(pair, big):
    test_the_users_a_change_can_reach_have_every_roster_change.hypothesis.inner_test(pair, big)


@settings(max_examples=examples(1000), deadline=None)
@given(sections_reordered(), BIG)
def test_the_users_whose_groups_come_in_another_order_have_every_roster_change(pair, big):
    test_the_users_a_change_can_reach_have_every_roster_change.hypothesis.inner_test(pair, big)


@settings(max_examples=examples(500), deadline=None)
@given(model_chains(one_name_each=True), BIG)
def test_the_diff_of_an_updated_reading_is_that_of_the_model(chain, big):
    """A warm run diffs the last reading against one updated from it, which
    shares the unchanged groups, and keeps the groups' bitmaps from one diff
    to the next: the same diff as against of_model's without them, and
    the same roster changes as looking at every user gives, which are those
    of rosters built one by one."""
    first, (second, changed), (third, changed_next) = chain
    old = GroupsFile.of_model(first)
    new = old.updated(second, changed)
    newer = new.updated(third, changed_next)
    saved, rosterdiff._BIG = rosterdiff._BIG, big
    try:
        # serve's poll process makes the big groups' bitmaps once a file is
        # written, and keeps those of one diff for the next
        interned = rosterdiff.Interned()
        interned.prime(old)
        assert diff(old, new, interned) == diff(old, GroupsFile.of_model(second))
        interned.keep_only(new)
        assert diff(new, newer, interned) == diff(GroupsFile.of_model(second), GroupsFile.of_model(third))
        for a, b in ((old, new), (new, newer)):
            changes, others = roster_changes(a, b)
            assert (changes, others) == plain_roster_changes(a, b)
            got = {c.user: [c.gained, c.lost, c.renamed, c.regrouped] for c in changes}
            for user in a.memberships.keys() | b.memberships.keys():
                assert got.get(user, [0, 0, 0, 0]) == naive_counts(a, b, user), user
    finally:
        rosterdiff._BIG = saved


@st.composite
def one_name_each(draw):
    """Two files in which each contact has one name (as in every file
    ldapsync writes), often with a public group of everyone and
    everyone in big groups: a few contacts renamed, members added to or
    dropped from groups, a group made public or not.  The users who keep
    their groups and hold only quiet and big ones are sorted out by set
    operations (rosterdiff._by_big_groups): this holds that to the plain
    computation."""
    names = {u: draw(st.sampled_from("NMO")) for u in USERS}
    sections = draw(st.lists(st.tuples(st.sampled_from(["A", "B", "C", "D", "E", "+P"]),
                                       st.lists(st.sampled_from(USERS), unique=True, max_size=5)),
                             min_size=1, max_size=7))
    if draw(st.booleans()):
        sections.insert(draw(st.integers(0, len(sections))), (draw(st.sampled_from(["+All", "All"])), list(USERS)))
    renamed = dict(names)
    for u in draw(st.lists(st.sampled_from(USERS), max_size=2)):
        renamed[u] = draw(st.sampled_from("NMOR"))
    edited = [(header, list(members)) for header, members in sections]
    for _ in range(draw(st.integers(0, 2))):
        i = draw(st.integers(0, len(edited) - 1))
        header, members = edited[i]
        op = draw(st.sampled_from(["add", "drop", "flip"]))
        if op == "flip":
            edited[i] = (header[1:] if header.startswith("+") else "+" + header, members)
        elif op == "add":
            members.append(draw(st.sampled_from(USERS)))
        elif members:
            del members[draw(st.integers(0, len(members) - 1))]

    def text(parts, naming):
        return "\n".join(line for header, members in parts
                         for line in [f"[{header}]", *(f"{u}@x={naming[u]}" for u in members)])

    return parse(text(sections, names)), parse(text(edited, renamed))


@settings(max_examples=examples(1500), deadline=None)
@given(one_name_each(), BIG)
def test_users_sorted_out_by_their_big_groups_have_every_roster_change(pair, big):
    """With one name per contact the order of a user's groups does not
    matter, and the users who keep their groups and hold no small group
    that a change stirs are sorted out by their big groups in bitmaps: the
    changes of looking at every user, and those of rosters built one by one."""
    old, new = pair
    saved, rosterdiff._BIG = rosterdiff._BIG, big
    try:
        changes, others = roster_changes(old, new)
        assert (changes, others) == plain_roster_changes(old, new)
    finally:
        rosterdiff._BIG = saved
    got = {c.user: [c.gained, c.lost, c.renamed, c.regrouped] for c in changes}
    for user in old.memberships.keys() | new.memberships.keys():
        assert got.get(user, [0, 0, 0, 0]) == naive_counts(old, new, user), user


def test_an_all_staff_rename_is_worked_out_once_for_those_who_share_their_big_groups():
    """Someone renamed in a public all-staff group reaches every roster; the
    users in no group the rename stirs are worked out by their big groups,
    a few views for thousands of users, and counted exactly."""
    staff = [f"u{i}@x" for i in range(3000)]
    division = staff[:1500]
    teams = "".join(f"[Team {k}]\n" + "".join(f"{u}=Name {u}\n" for u in staff[k * 10:k * 10 + 10])
                    for k in range(300))

    def text(renamed: str) -> str:
        line = "".join(f"{u}={renamed if u == 'u7@x' else 'Name ' + u}\n" for u in staff)
        part = "".join(f"{u}={renamed if u == 'u7@x' else 'Name ' + u}\n" for u in division)
        return f"[+All Staff]\n{line}[Division]\n{part}" + teams.replace("u7@x=Name u7@x", f"u7@x={renamed}")

    old, new = parse(text("Name u7@x")), parse(text("Seven"))
    rosters = rosterdiff._Rosters(old, new)
    views = rosterdiff._views(rosters, old, new, rosterdiff._everyone(old, new), True)
    assert sum(len(v) for v in views.values()) <= 4  # per big groups: the division, or none; and Team 0
    changes, others = roster_changes(old, new)
    assert len(changes) == 2999 and others == RosterChange(None, renamed=1)
    assert changes.totals() == (0, 0, 2999, 0)
    assert [c.user for c in changes] == sorted(u for u in staff if u != "u7@x")
    assert all(c.renamed == 1 for c in changes) and "u7@x" not in {c.user for c in changes}
    assert (changes, others) == plain_roster_changes(old, new)


def test_roster_changes_shared_by_many_users_read_as_one_each():
    """RosterChanges keeps users who see the same change as one record:
    read, counted, sliced and compared as one change per user, by JID."""
    shared = RosterChange(None, gained=2, renamed=1)
    changes = rosterdiff.RosterChanges([RosterChange("b@x", lost=1)], [(shared, ["c@x", "a@x"])])
    every = [RosterChange("a@x", gained=2, renamed=1), RosterChange("b@x", lost=1),
             RosterChange("c@x", gained=2, renamed=1)]
    assert len(changes) == 3 and changes.totals() == (4, 1, 2, 0)
    assert list(changes) == every and changes[1:] == every[1:] and changes[0] == every[0]
    assert changes == every and changes == tuple(every) and changes != every[:2]
    assert not rosterdiff.RosterChanges() and rosterdiff.RosterChanges() == []


def test_a_change_to_private_groups_reaches_only_their_members():
    old = parse("[+All]\na@x=A\nb@x=B\nc@x=C\nd@x=D\n[T]\na@x=A\nb@x=B\n[U]\nc@x=C\n")
    new = parse("[+All]\na@x=A\nb@x=B\nc@x=C\nd@x=D\n[T]\na@x=A\n[U]\nc@x=C\n")
    rosters = rosterdiff._Rosters(old, new)
    assert set(rosterdiff._who_may_see_a_change(rosters, old, new)) == {"a@x", "b@x"}
    assert roster_changes(old, new)[0] == [RosterChange("a@x", regrouped=1),
                                           RosterChange("b@x", regrouped=1, left=("T",))]
    # a public group changed: everyone
    new = parse("[+All]\na@x=A\nb@x=B\nc@x=C\n[T]\na@x=A\nb@x=B\n[U]\nc@x=C\n")
    assert set(rosterdiff._who_may_see_a_change(rosterdiff._Rosters(old, new), old, new)) == {
        "a@x", "b@x", "c@x", "d@x"}


@pytest.mark.parametrize(("old", "new", "expected"), [
    # c is named by G, applied after H: renaming c in H changes nothing for u
    ("[H]\nu@x=U\nc@x=X\n[G]\nu@x=U\nc@x=Y\n", "[H]\nu@x=U\nc@x=Z\n[G]\nu@x=U\nc@x=Y\n", []),
    # P made public: u, who had c through G, now has c through P too
    ("[P]\nc@x=C\n[G]\nu@x=U\nc@x=C\n", "[+P]\nc@x=C\n[G]\nu@x=U\nc@x=C\n",
     [RosterChange("u@x", regrouped=1)]),
])
def test_an_unchanged_group_that_holds_a_changed_contact_counts(old, new, expected):
    """Users who keep their groups are grouped by those of their groups that
    can matter: G is the same in both files, but it holds a contact whose
    name or groups change, so it is one of them."""
    old, new = parse(old), parse(new)
    changes = roster_changes(old, new)[0]
    assert changes == plain_roster_changes(old, new)[0] == expected
    for user in old.memberships.keys() | new.memberships.keys():
        got = next(([c.gained, c.lost, c.renamed, c.regrouped] for c in changes if c.user == user), [0, 0, 0, 0])
        assert got == naive_counts(old, new, user)


def test_a_user_whose_same_groups_come_in_another_order_is_looked_at():
    """No group differs, but u's groups are applied in another order: the
    contact that each group names differently is renamed for u."""
    old = parse("[A]\nu@x=U\nc@x=Name in A\n[B]\nu@x=U\nc@x=Name in B\n")
    new = parse("[B]\nu@x=U\nc@x=Name in B\n[A]\nu@x=U\nc@x=Name in A\n")
    assert old.groups == new.groups
    changes = roster_changes(old, new)
    assert changes == plain_roster_changes(old, new)
    assert changes[0] == [RosterChange("u@x", renamed=1)]
