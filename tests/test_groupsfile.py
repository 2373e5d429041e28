"""The groups file: every reading rule of docs/prosody.md, the diagnostics, the writer."""

from __future__ import annotations

from types import MappingProxyType

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from ldapsync.groupsfile import (
    GroupsFile,
    RenderError,
    group_text,
    lines_differing,
    parse,
    render,
    sanitise,
    unrepresentable,
    with_lines_renamed,
)
from ldapsync.groupsfile.reading import _Reader
from ldapsync.groupsfile.writing import _member_problems
from ldapsync.model import GroupsModel, SharedGroup
from tests.budget import examples


def codes(text: str) -> list[tuple[int, str]]:
    return [(d.line, d.code) for d in parse(text).diagnostics]


# --- reading: headers -------------------------------------------------------------------


def test_member_lines_before_any_header_belong_to_default():
    f = parse("alice@x=Alice\n[Team]\nbob@x=Bob\n")
    assert dict(f.groups["default"]) == {"alice@x": "Alice"}
    assert (1, "default-group") in codes("alice@x=Alice\n")


def test_default_group_exists_but_is_not_in_the_model_when_empty():
    f = parse("[Team]\nbob@x=Bob\n")
    assert "default" in f.groups
    assert [g.name for g in f.to_model().groups] == ["Team"]


@pytest.mark.parametrize(
    ("line", "name"),
    [
        ("[Team]", "Team"),
        ("  [Team]  ", "Team"),  # white space outside the brackets is ignored
        ("[Team]\r", "Team"),  # so is a CRLF file's \r
        ("\t[Team]\v\f", "Team"),
        ("[  X  ]", "  X  "),  # the name is verbatim
        ("[]", ""),
        ("[a]b]", "a]b"),  # between the first [ and the last ]
        ("[[x]]", "[x]"),
        ("[R&D = Europe]", "R&D = Europe"),
    ],
)
def test_header_names(line, name):
    f = parse(line + "\nm@x=M\n")
    assert f.groups[name] == {"m@x": "M"}


@pytest.mark.parametrize("line", ["[T2] # note", "\ufeff[Team]", "[Team] x", "x [Team]"])
def test_lines_that_look_like_headers_but_are_member_lines(line):
    f = parse(line + "\n")
    assert set(f.groups) == {"default"}


def test_header_with_trailing_text_is_read_as_a_member_and_reported():
    f = parse("[T2] # note\n")
    assert dict(f.groups["default"]) == {"[t2]": ""}
    assert (1, "header-trailing-text") in codes("[T2] # note\n")
    assert (1, "extra-text") in codes("[T2] # note\n")


def test_bom_before_a_header_makes_a_member_line():
    text = "\ufeff[Team]\nalice@x=A\n"
    f = parse(text)
    assert "Team" not in f.groups
    assert f.groups["default"] == {"[team]": "", "alice@x": "A"}
    assert (1, "bom") in codes(text)


@pytest.mark.parametrize(
    ("header", "name", "public"),
    [("[+Staff]", "Staff", True), ("[++Staff]", "+Staff", True), ("[ +Staff]", " +Staff", False),
     ("[+]", "", True), ("[Staff]", "Staff", False)],
)
def test_plus_marks_public_groups(header, name, public):
    f = parse(f"{header}\na@x=A\n")
    assert f.groups[name] == {"a@x": "A"}
    assert (name in f.public) is public


def test_public_belongs_to_the_name_and_repeated_headers_merge():
    f = parse("[Ops]\na@x=A\n[Dev]\nb@x=B\n[+Ops]\nc@x=C\n")
    assert f.groups["Ops"] == {"a@x": "A", "c@x": "C"}
    assert list(f.public) == ["Ops"]
    model = f.to_model()
    assert model.group("Ops").public and not model.group("Dev").public
    found = codes("[Ops]\na@x=A\n[Dev]\nb@x=B\n[+Ops]\nc@x=C\n")
    assert (5, "duplicate-header") in found and (5, "public-later") in found


def test_group_names_are_case_sensitive():
    f = parse("[ops]\na@x=A\n[Ops]\nb@x=B\n")
    assert f.groups["ops"] == {"a@x": "A"} and f.groups["Ops"] == {"b@x": "B"}


def test_public_order_keeps_repeats():
    f = parse("[+A]\n[+B]\n[+A]\n")
    assert list(f.public) == ["A", "B", "A"]


# --- reading: member lines -------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "jid", "name"),
    [
        ("alice@x=Alice", "alice@x", "Alice"),
        ("alice@x=A=B", "alice@x", "A=B"),  # split at the first =
        ("alice@x= Alice Smith ", "alice@x", " Alice Smith "),  # untrimmed
        ("alice@x=Al\tice # not a comment", "alice@x", "Al\tice # not a comment"),
        ("alice@x=Alice\r", "alice@x", "Alice\r"),  # a CRLF line keeps \r in the name
        ("alice@x", "alice@x", ""),  # no = : the name "", never "no name"
        ("alice@x\r", "alice@x", ""),
        ("alice@x=", "alice@x", ""),
        ("  alice@x  =Alice", "alice@x", "Alice"),
        ("alice@x bob@x=Alice", "alice@x", "Alice"),  # only the first token
        ("a=b@x", "a", "b@x"),  # a JID cannot contain =
        ("ALICE@X=Alice", "alice@x", "Alice"),  # prepared
        ("# a comment", "#", ""),  # no comments
        ("; a=b", ";", "b"),
    ],
)
def test_member_lines(line, jid, name):
    f = parse("[G]\n" + line + "\n")
    assert f.groups["G"] == {jid: name}
    assert list(f.memberships[jid]) == ["G"]


def test_last_line_for_a_jid_sets_its_name_even_a_nameless_one():
    f = parse("[G]\nalice@x=Alice\nalice@x\n")
    assert f.groups["G"] == {"alice@x": ""}
    assert list(f.memberships["alice@x"]) == ["G", "G"]
    assert (3, "duplicate-member") in codes("[G]\nalice@x=Alice\nalice@x\n")


def test_invalid_jids_and_blank_lines_are_skipped():
    text = "[G]\n\n   \n@x=Nobody\na@b@x=Two ats\nal:ice@x\n=Only a name\nok@x=OK\n"
    f = parse(text)
    assert f.groups["G"] == {"ok@x": "OK"}
    errors = [(d.line, d.code) for d in f.diagnostics if d.severity == "error"]
    assert errors == [(4, "invalid-jid"), (5, "invalid-jid"), (6, "invalid-jid"), (7, "invalid-jid")]


def test_lines_split_on_newline_only():
    f = parse("[G]\ra@x=A\rB\nb@x=B")  # \r is no line break: line 1 is a member line
    assert f.groups["default"] == {"[g]": "A\rB", "b@x": "B"}  # and the unterminated last line counts
    assert parse("[G]\na@x=A\rstill the name\n").groups["G"] == {"a@x": "A\rstill the name"}
    assert parse("[G]\nb@x=B").groups["G"] == {"b@x": "B"}


def test_invalid_utf8_jid_is_skipped_with_a_reason():
    raw = b"[G]\n\xff@x=Bad\nok@x=\xffName\n".decode("utf-8", "surrogateescape")
    f = parse(raw)
    assert list(f.groups["G"]) == ["ok@x"]
    messages = [d.message for d in f.diagnostics]
    assert any("not valid UTF-8" in m for m in messages)
    assert any(d.code == "breaks-roster" for d in f.diagnostics)


def test_memberships_follow_member_line_order():
    f = parse("[B]\nu@x=U\n[A]\nu@x=U\n[B]\nu@x=U\n")
    assert list(f.memberships["u@x"]) == ["B", "A", "B"]
    assert f.applied_groups("u@x") == ["B", "A", "B"]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("[G]\n# comment\n", "comment"),
        ("[G]\nAlice@X=A\n", "unprepared-jid"),
        ("[G]\na@x\n", "nameless"),
        ("[G]\na@x=\n", "nameless"),
        ("[G]\na@x= A\n", "untrimmed-name"),
        ("[G]\na@x=A\x07\n", "breaks-roster"),
        ("[G]\na@x=A\tB\n", "control-char"),
        ("[G]\na@x=A\u2028B\n", "control-char"),
        ("[G]\na@x=A\r\n", "crlf"),
        ("[G]\r\n", "crlf"),
        ("[G]\na@x=A\n[H]\na@x=B\n", "name-conflict"),
        ("[ G ]\n", "header-spaces"),
        ("[]\n", "empty-group-name"),
        ("[G\x01]\n", "breaks-roster"),
        ("[G]\na@x=Alice\u202egpj.exe\n", "invisible-characters"),
        ("[G]\na@x=Al\u200bice\n", "invisible-characters"),
        ("[G]\na@x=\u3164\nb@x=B\n", "invisible-characters"),  # printable to Python, yet shows nothing
        ("[G\u200b]\n", "invisible-characters"),
        ("[\u3164]\n", "invisible-characters"),
    ],
)
def test_diagnostics(text, code):
    assert code in [c for _, c in codes(text)]


def test_a_clean_file_has_no_diagnostics():
    assert parse("[+Staff]\nalice@example.com=Alice\n[Team]\nbob@example.com=Bob\n").diagnostics == ()
    assert parse("").diagnostics == ()
    # the joiners scripts and emoji need are no invisible characters
    assert parse("[G]\na@x=\u062d\u0633\u06cc\u0646\u200c\u0632\u0627\u062f\u0647\n"
                 "b@x=I \u2764\ufe0f \U0001f468\u200d\U0001f469\n").diagnostics == ()


def test_invisible_characters_are_named_but_read_as_prosody_reads_them():
    f = parse("[Team]\na@x=Alice\u202egpj.exe\n")
    assert f.groups["Team"] == {"a@x": "Alice\u202egpj.exe"}  # what Prosody holds, verbatim
    [d] = f.diagnostics
    assert d.message == ("the name 'Alice\\u202egpj.exe' of a@x holds U+202E RIGHT-TO-LEFT OVERRIDE: invisible or "
                         "bidi characters hide or reorder what users see")


# --- writing ---------------------------------------------------------------------------


def model(*groups: SharedGroup) -> GroupsModel:
    return GroupsModel.of(groups)


def test_render_is_sorted_lf_and_without_bom():
    m = model(
        SharedGroup("Team", {"zed@x": "Zed", "al@x": "Al"}),
        SharedGroup("All Staff", {"al@x": "Al"}, public=True),
    )
    text = render(m)
    assert text == "[+All Staff]\nal@x=Al\n[Team]\nal@x=Al\nzed@x=Zed\n"
    assert render(GroupsModel.of(reversed(m.groups))) == text  # same model, same bytes
    assert not text.startswith("\ufeff") and "\r" not in text


def test_render_of_an_empty_model_is_empty():
    assert render(GroupsModel()) == ""


@pytest.mark.parametrize(
    ("group", "why"),
    [
        (SharedGroup("Team", {"a@x": "Line\nbreak"}), "control characters or line breaks"),
        (SharedGroup("Team", {"a@x": "Tab\there"}), "control characters"),
        (SharedGroup("Team", {"a@x": " padded"}), "white space"),
        (SharedGroup("Team", {"A@x": "A"}), "not in prepared form"),
        (SharedGroup("Team", {"a=b@x": "A"}), "'='"),
        (SharedGroup("Team", {"a@exa mple": "A"}), "white space"),
        (SharedGroup("Team", {"@x": "A"}), "not a valid JID"),
        (SharedGroup("Team", {"a@x": None}), "no name"),
        (SharedGroup("+Team", {"a@x": "A"}), "cannot start with '+'"),
        (SharedGroup("Te\nam", {"a@x": "A"}), "control characters"),
        (SharedGroup(" Team", {"a@x": "A"}), "white space"),
        (SharedGroup("", {"a@x": "A"}), "needs a name"),
        (SharedGroup("Team", {"a@x": "Alice\u202egpj.exe"}), "invisible or bidi characters (U+202E RIGHT-TO-LEFT"),
        (SharedGroup("Team", {"a@x": "Al\u3164ice", "b@x": "B"}), "invisible or bidi characters (U+3164"),
        (SharedGroup("Te\u200bam", {"a@x": "A"}), "invisible or bidi characters (U+200B"),
    ],
)
def test_render_refuses_what_prosody_cannot_read_back(group, why):
    with pytest.raises(RenderError) as err:
        render(model(group))
    assert why in str(err.value)


def test_render_refuses_two_names_for_one_jid():
    m = model(SharedGroup("A", {"u@x": "One"}), SharedGroup("B", {"u@x": "Two"}))
    assert any("named 'Two' here but 'One'" in p for p in unrepresentable(m))


def test_nameless_members_only_when_allowed():
    m = model(SharedGroup("G", {"a@x": None, "b@x": "B"}))
    text = render(m, allow_nameless=True)
    assert text == "[G]\na@x\nb@x=B\n"
    assert parse(text).to_model() == m


def test_a_member_line_never_looks_like_a_header():
    with pytest.raises(RenderError, match="like a group header"):
        render(model(SharedGroup("G", {"[x]": "X"})))


def test_public_group_whose_name_starts_with_plus():
    m = model(SharedGroup("+1 Team", {"a@x": "A"}, public=True))
    assert render(m) == "[++1 Team]\na@x=A\n"


def test_sanitise_cleans_names_and_drops_unwritable_members():
    m = model(SharedGroup("Team\n", {"a@x": "Al\r\nice ", "b@x": "\x00", "B@x": "Bad"}))
    clean, messages = sanitise(m)
    assert clean == model(SharedGroup("Team", {"a@x": "Al ice", "b@x": None}))
    assert len(messages) == 4
    assert render(clean, allow_nameless=True)


def test_sanitise_removes_invisible_characters():
    m = model(SharedGroup("\u2066Team\u2069", {"a@x": "Alice\u202egpj.exe", "b@x": "\u3164", "c@x": "C\u200b"}))
    clean, messages = sanitise(m)
    assert clean == model(SharedGroup("Team", {"a@x": "Alicegpj.exe", "b@x": None, "c@x": "C"}))
    assert len(messages) == 4


# --- properties ------------------------------------------------------------------------

NAME_CHARS = st.sampled_from(list("aZ09 =#[]+-.'\"&;\\/") + ["é", "ß", "Ä", "\u05d0", "\u0627", "中", "\u00a0",
                                                             "\t", "\r", "\n", "\x00", "\x1b", "\u2028", "\ufeff", "😀",
                                                             "\u200b", "\u200c", "\u202e", "\u3164", "\ufe0f"])
names = st.lists(NAME_CHARS, max_size=12).map("".join)
jids = st.one_of(
    st.from_regex(r"[a-z0-9._-]{1,8}@(example\.com|ex\.org)", fullmatch=True),
    st.lists(st.sampled_from(list("abcAB09.=@/ ") + ["é", "É", "ß", "\u05d0", "中", "\x01"]), min_size=1,
             max_size=10).map("".join),
)


@st.composite
def models(draw):
    people = draw(st.lists(jids, max_size=8, unique=True))
    display = {p: draw(st.one_of(st.none(), names)) for p in people}
    groups = []
    for group_name in draw(st.lists(names, max_size=5, unique=True)):
        members = draw(st.lists(st.sampled_from(people), unique=True)) if people else []
        groups.append(SharedGroup(group_name, {m: display[m] for m in members}, draw(st.booleans())))
    return GroupsModel.of(groups)


@settings(max_examples=examples(400), deadline=None)
@given(models(), st.booleans())
def test_what_the_writer_accepts_reads_back_identically(m, allow_nameless):
    try:
        text = render(m, allow_nameless=allow_nameless)
    except RenderError:
        assume(False)
    back = parse(text)
    assert back.to_model() == m
    assert back.means(m)
    assert text.encode("utf-8") == render(m, allow_nameless=allow_nameless).encode("utf-8")


@settings(max_examples=examples(400), deadline=None)
@given(models(), st.booleans())
def test_members_checked_in_bulk_are_checked_like_one_by_one(m, allow_nameless):
    """unrepresentable() checks most members in bulk: it must find a problem
    exactly where checking every member line on its own finds one."""
    one_by_one = [p for g in m.groups for jid, name in g.members.items()
                  for p in _member_problems(f"group {g.name!r}", jid, name, allow_nameless)]
    first_name: dict = {}
    for g in m.groups:
        for jid, name in g.members.items():
            if first_name.setdefault(jid, name) != name:
                one_by_one.append(f"{jid} has two names")
    member_problems = [p for p in unrepresentable(m, allow_nameless=allow_nameless) if ": member " in p]
    assert bool(member_problems) == bool(one_by_one)
    assert {p for p in member_problems if "here but" not in p} <= set(one_by_one)


@settings(max_examples=examples(400), deadline=None)
@given(models())
def test_the_reading_of_a_model_is_what_parsing_its_file_gives(m):
    try:
        text = render(m, allow_nameless=True)
    except RenderError:
        assume(False)
    read, built = parse(text), GroupsFile.of_model(m)
    assert read.size() == (len(m.groups), m.member_count)
    assert list(built.groups.items()) == list(read.groups.items())
    assert built.memberships == read.memberships and list(built.public) == list(read.public)
    assert built.declared == read.declared and built.several_names == read.several_names


@settings(max_examples=examples(300), deadline=None)
@given(models(), models())
def test_means_agrees_with_comparing_models(a, b):
    for m in (a, b):
        try:
            text = render(m, allow_nameless=True)
        except RenderError:
            continue
        back = parse(text)
        assert back.means(a) == (back.to_model() == a)
        assert back.means(b) == (back.to_model() == b)


# A few people and names, so that groups share members and a change meets them
PEOPLE = ["a@x", "b@x", "c@x", "d@x", "e@x"]
DISPLAY = st.one_of(st.none(), st.sampled_from(["A", "B", "Bee"]))
GROUP_NAMES = st.one_of(st.sampled_from(["default", "Team", "Ops", "ops", "+x"]), names)


def a_group(draw, name: str, naming: dict | None, public: bool | None = None) -> SharedGroup:
    """A group of some of PEOPLE, named by ``naming`` (each line its own name when None)."""
    people = draw(st.lists(st.sampled_from(PEOPLE), unique=True, max_size=5))
    members = {p: draw(DISPLAY) if naming is None else naming[p] for p in people}
    return SharedGroup(name, members, draw(st.booleans()) if public is None else public)


def next_model(draw, old: GroupsModel, naming: dict | None) -> tuple[GroupsModel, set[str], dict | None]:
    """The model after ``old`` as a warm run has it (most groups the same
    objects, some equal copies, some with other members, made public or
    not, gone, or new; with ``naming``, some people renamed in every group
    that holds them), the names of the groups that differ, and the naming."""
    renamed: dict = {}
    if naming is not None:
        renamed = draw(st.dictionaries(st.sampled_from(PEOPLE), DISPLAY, max_size=2))
        naming = {**naming, **renamed}
    groups = []
    for g in old.groups:
        if not renamed.keys().isdisjoint(g.members):
            g = SharedGroup(g.name, {p: naming[p] if p in renamed else n for p, n in g.members.items()}, g.public)
        fate = draw(st.sampled_from(["same", "copy", "members", "public", "gone"]))
        if fate == "same":
            groups.append(g)
        elif fate == "copy":
            groups.append(SharedGroup(g.name, dict(g.members), g.public))
        elif fate == "members":
            groups.append(a_group(draw, g.name, naming, g.public))
        elif fate == "public":
            groups.append(SharedGroup(g.name, g.members, not g.public))
    taken = {g.name for g in old.groups}
    for name in draw(st.lists(GROUP_NAMES.filter(lambda n: n not in taken), unique=True, max_size=2)):
        groups.append(a_group(draw, name, naming))
    new = GroupsModel.of(groups)
    before, after = {g.name: g for g in old.groups}, {g.name: g for g in new.groups}
    return new, {n for n in before.keys() | after.keys() if before.get(n) != after.get(n)}, naming


@st.composite
def model_chains(draw, one_name_each: bool = False):
    """Three models in a row, each with the names of the groups that differ
    from the one before; with ``one_name_each``, every JID has one name in
    a model, as in every model the writer accepts."""
    naming = {p: draw(DISPLAY) for p in PEOPLE} if one_name_each else None
    first = GroupsModel.of(a_group(draw, n, naming) for n in draw(st.lists(GROUP_NAMES, unique=True, max_size=6)))
    second, changed, naming = next_model(draw, first, naming)
    third, changed_next, _ = next_model(draw, second, naming)
    if draw(st.booleans()):  # naming a group that did not change, or none at all, is harmless
        changed |= set(draw(st.lists(st.sampled_from(["Team", "nowhere", *(g.name for g in first.groups)]))))
    return first, (second, changed), (third, changed_next)


def contents(f: GroupsFile) -> tuple:
    """All a reading holds, copied: to see that nothing changed it."""
    return (list((name, dict(members)) for name, members in f.groups.items()),
            {jid: list(own) for jid, own in f.memberships.items()}, list(f.public), f.declared)


@settings(max_examples=examples(1000), deadline=None)
@given(st.one_of(model_chains(), model_chains(one_name_each=True)))
def test_a_reading_updated_from_the_last_one_is_that_of_the_model(chain):
    """GroupsFile.updated gives what of_model gives, built from the last
    reading and the groups that changed: it shares the unchanged groups and
    the lists of the JIDs no changed group holds, and leaves the last
    reading as it was."""
    first, *steps = chain
    last = GroupsFile.of_model(first)
    for model, changed in steps:
        kept = contents(last)
        got, want = last.updated(model, changed), GroupsFile.of_model(model)
        assert list(got.groups.items()) == list(want.groups.items())
        assert got.memberships == want.memberships  # each JID's groups, in order
        assert list(got.public) == list(want.public) and got.declared == want.declared
        assert got.several_names == want.several_names and got.diagnostics == want.diagnostics
        assert contents(last) == kept
        for name in last.groups.keys() & got.groups.keys() - changed:
            assert got.groups[name] is last.groups[name]
        untouched = last.memberships.keys() - {j for n in changed for f in (last, got) for j in f.groups.get(n, {})}
        for jid in untouched:
            assert got.memberships[jid] is last.memberships[jid]
        last = got


@settings(max_examples=examples(300), deadline=None)
@given(models())
def test_sanitised_models_always_render(m):
    try:
        clean, _ = sanitise(m)
    except RenderError as exc:
        assert "both clean to" in str(exc)
        assume(False)
    names_by_jid: dict = {}
    for g in clean.groups:
        for j, n in g.members.items():
            names_by_jid.setdefault(j, set()).add(n)
    assume(all(len(v) == 1 for v in names_by_jid.values()))
    assume(all(g.name and (g.public or not g.name.startswith("+")) for g in clean.groups))
    text = render(clean, allow_nameless=True)
    assert parse(text).to_model() == clean


@settings(max_examples=examples(500), deadline=None)
@given(st.text())
def test_the_parser_never_raises_on_any_text(text):
    read = parse(text)
    model = read.to_model()
    assert read.size() == (len(model.groups), model.member_count)


@settings(max_examples=examples(300), deadline=None)
@given(st.binary())
def test_the_parser_never_raises_on_any_bytes(data):
    parse(data.decode("utf-8", "surrogateescape"))


def read_line_by_line(text: str) -> GroupsFile:
    """parse() without its bulk reading of member runs: every line on its own."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    reader = _Reader()
    reader.lines(lines, 0, len(lines))
    return reader.result()


# Lines a real file holds, and the near misses the bulk reading must hand back
member_lines = st.one_of(
    st.tuples(st.sampled_from(["a@x", "b@x", "c@x", "d@y", "A@X", "é@x", "e@x/r", "a@x ", "=", "", " a@x"]),
              st.sampled_from(["=Al", "=Bo", "=Al=x", "=", "", "= Al", "=Al ", "=Al\r", "=\x01", "=\u3164",
                               "=Al\u200b", "=\u0627\u200c\u0627", "=\u2764\ufe0f", "=\ufe0f"]))
    .map("".join),
    st.sampled_from(["[T]", "[+T]", "[U]", " [T]", "[T] x", "\ufeffa@x=Al"]),
    st.text(max_size=6),
)


@settings(max_examples=examples(1500), deadline=None)
@given(st.lists(member_lines, max_size=25), st.booleans())
@example(["A@X=Al", "[U]", "a@x=Al"], True)  # a JID first seen in another spelling
@example(["a@x=Al", "[U]", "b@x=Bo", "a@x=Bo"], True)  # a JID named differently before
def test_bulk_reading_reads_exactly_like_line_by_line(lines, headed):
    text = "\n".join((["[G]"] if headed else []) + lines) + "\n"
    bulk, one_by_one = parse(text), read_line_by_line(text)
    assert list(bulk.groups.items()) == list(one_by_one.groups.items())
    assert list(bulk.memberships.items()) == list(one_by_one.memberships.items())
    assert bulk.public == one_by_one.public and bulk.declared == one_by_one.declared
    assert bulk.diagnostics == one_by_one.diagnostics and bulk.several_names == one_by_one.several_names


def test_bulk_reading_takes_the_runs_of_a_clean_file():
    """Guards the test above against a bulk path that never runs."""
    text = "[A]\na@x=Al\nb@x=Bo\n[B]\na@x=Al\nc@x=Cy\n"
    reader = _Reader()
    lines = text.split("\n")[:-1]
    reader.lines(lines, 0, 1)
    assert reader.member_run(lines, 1, 3)
    reader.lines(lines, 3, 4)
    assert reader.member_run(lines, 4, 6)
    assert reader.result().groups == read_line_by_line(text).groups
    assert not _Reader().member_run(lines, 1, 3)  # before any header: line by line


def test_a_jid_that_looks_like_another_is_named():
    # U+2066 was unassigned in Unicode 3.2: JID preparation keeps it
    f = parse("[G]\nalice\u2066@x=Alice\nalice@x=Alice\n")
    assert set(f.groups["G"]) == {"alice\u2066@x", "alice@x"}
    assert [(d.line, d.code) for d in f.diagnostics] == [(2, "invisible-characters")]
    with pytest.raises(RenderError, match="invisible or bidi characters"):
        render(model(SharedGroup("G", {"alice\u2066@x": "Alice"})))
    assert sanitise(model(SharedGroup("G", {"alice\u2066@x": "Alice"})))[0] == model(SharedGroup("G", {}))


@settings(max_examples=examples(500), deadline=None)
@given(st.dictionaries(st.sampled_from("abcdef"), st.sampled_from(["N", "M", ""]), max_size=6),
       st.dictionaries(st.sampled_from("abcdef"), st.sampled_from(["N", "M", ""]), max_size=6), st.booleans())
def test_lines_differing_is_every_line_the_old_group_lacks(old, new, same_order):
    """lines_differing compares names side by side when both groups list
    the same JIDs in the same order: it finds what looking each up finds."""
    if same_order:
        new = {j: new.get(j, "N") for j in old}
    plain = [j for j, n in new.items() if (j, n) not in old.items()]
    assert lines_differing(MappingProxyType(old), MappingProxyType(new)) == plain


JIDS = st.text(st.sampled_from("aé𝒜z.-_"), min_size=1, max_size=4).map(lambda local: f"{local}@x")
NAMES = st.one_of(st.none(), st.text(st.sampled_from("AZé 𝒜="), min_size=1, max_size=4))


@settings(max_examples=examples(500), deadline=None)
@given(st.dictionaries(JIDS, NAMES, max_size=12), st.data(), st.booleans())
def test_a_group_text_with_lines_renamed_is_the_text_made_anew(members, data, public):
    """with_lines_renamed patches the last text of a group whose members
    kept their JIDs: the very bytes group_text gives for the group now."""
    renamed = data.draw(st.lists(st.sampled_from(sorted(members)), unique=True) if members else st.just([]))
    after = dict(members, **{j: data.draw(NAMES) for j in renamed})
    before, group = SharedGroup("G", members, public), SharedGroup("G", after, public)
    patched = with_lines_renamed(group_text(before).encode("utf-8"), group, renamed)
    assert patched == group_text(group).encode("utf-8")
    if members:  # a JID without a line is refused, never written somewhere
        assert with_lines_renamed(group_text(before).encode("utf-8"), group, ["zz@y"]) is None
