"""The merge engine: each rule of mod_groups' roster-load hook, and mod_groups.lua itself as judge."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ldapsync.groupsfile import parse
from ldapsync.roster import PersonalRosterError, RosterItem, build_roster, load_personal_roster, sorted_items
from tests.budget import examples


def roster(text: str, user: str, personal=()) -> dict[str, tuple]:
    return {j: (i.name, i.subscription, i.groups) for j, i in build_roster(parse(text), user, personal).items()}


def test_own_groups_then_public_groups():
    text = "[Team]\nalice@x=Alice\nbob@x=Bob\n[+Staff]\ncarol@x=Carol\n[Other]\ndave@x=Dave\n"
    assert roster(text, "alice@x") == {
        "bob@x": ("Bob", "both", ("Team",)),
        "carol@x": ("Carol", "both", ("Staff",)),
    }
    # a user in no group still gets the public groups
    assert roster(text, "zed@x") == {"carol@x": ("Carol", "both", ("Staff",))}


def test_only_the_exact_bare_jid_is_skipped():
    text = "[Team]\nalice@x=Alice\nalice@x/phone=Phone\n"
    assert roster(text, "alice@x") == {"alice@x/phone": ("Phone", "both", ("Team",))}


def test_the_group_applied_last_names_the_contact():
    text = "[A]\nu@x=U\nc@x=From A\n[B]\nu@x=U\nc@x=From B\n"
    assert roster(text, "u@x")["c@x"] == ("From B", "both", ("A", "B"))
    # the order is the user's member lines, not the headers
    text = "[A]\nc@x=From A\n[B]\nu@x=U\nc@x=From B\n[A]\nu@x=U\n"
    assert roster(text, "u@x")["c@x"][0] == "From A"


def test_an_empty_name_wins_too():
    text = "[A]\nu@x=U\nc@x=Carol\n[B]\nu@x=U\nc@x\n"
    assert roster(text, "u@x")["c@x"][0] == ""


def test_public_groups_apply_again_after_own_groups():
    # u's own groups: Staff (public) then Team; then Staff again as a public group
    text = "[+Staff]\nu@x=U\nc@x=Staff name\n[Team]\nu@x=U\nc@x=Team name\n"
    assert roster(text, "u@x")["c@x"] == ("Staff name", "both", ("Staff", "Team"))
    # a public group listed twice is applied twice, in header order
    text = "[+P]\nc@x=P\n[+Q]\nc@x=Q\n[+P]\n"
    assert roster(text, "zed@x")["c@x"][0] == "P"


def test_shared_groups_override_the_personal_roster():
    personal = [
        RosterItem("c@x", "My Carol", "none", ("Friends",)),
        RosterItem("d@x", "Dave", "to", ()),
    ]
    got = roster("[Team]\nu@x=U\nc@x=Carol\n", "u@x", personal)
    assert got == {
        "c@x": ("Carol", "both", ("Friends", "Team")),  # name replaced, subscription both, groups kept
        "d@x": ("Dave", "to", ()),  # untouched
    }


@pytest.mark.parametrize("subscription", ["none", "from", "to", "both"])
def test_subscription_is_always_both(subscription):
    got = roster("[T]\nu@x=U\nc@x=C\n", "u@x", [RosterItem("c@x", None, subscription, ())])
    assert got["c@x"][1] == "both"


def test_user_not_in_any_group_and_no_public_groups_keeps_the_personal_roster():
    personal = [RosterItem("c@x", "C", "from", ("G",))]
    assert roster("[T]\na@x=A\n", "u@x", personal) == {"c@x": ("C", "from", ("G",))}


def test_sorted_items_and_json_shape():
    items = sorted_items(build_roster(parse("[T]\nu@x=U\nb@x=B\na@x\n"), "u@x"))
    assert [i.as_json() for i in items] == [
        {"jid": "a@x", "name": "", "subscription": "both", "groups": ["T"]},
        {"jid": "b@x", "name": "B", "subscription": "both", "groups": ["T"]},
    ]


def test_load_personal_roster(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps([{"jid": "C@X", "name": None, "subscription": "to", "groups": ["b", "a"]}]))
    assert load_personal_roster(path) == [RosterItem("c@x", None, "to", ("a", "b"))]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("{}", "expected a JSON array"),
        ("[1]", "expected an object"),
        ('[{"jid": "@x"}]', "not a valid JID"),
        ('[{"jid": "a@x", "subscription": "maybe"}]', "subscription"),
        ('[{"jid": "a@x", "groups": "G"}]', "groups"),
        ('[{"jid": "a@x", "colour": "red"}]', "unknown keys"),
        ("not json", "cannot read"),
    ],
)
def test_bad_personal_rosters_are_refused(tmp_path, data, message):
    path = tmp_path / "r.json"
    path.write_text(data)
    with pytest.raises(PersonalRosterError, match=message):
        load_personal_roster(path)


# --- mod_groups.lua itself decides ---------------------------------------------------

USERS = ["alice", "bob", "carol", "Älice", "dave"]
LINE = st.one_of(
    st.builds(lambda p, n, s: f"{s}[{p}{n}]{s}", st.sampled_from(["", "+", "++", " +"]),
              st.sampled_from(["Team", "Staff", "team", " Ops ", "", "A=B"]), st.sampled_from(["", " ", "\r"])),
    st.builds(lambda u, host, sep, name, tail: f"{u}@{host}{sep}{name}{tail}",
              st.sampled_from(USERS + ["ALICE", "Bob", "x y", "#", "al:ice"]),
              st.sampled_from(["example.com", "EXAMPLE.com", "example.com/phone"]),
              st.sampled_from(["=", "", " =", "=="]),
              st.sampled_from(["", "Alice", "Bob Smith", " Padded ", "a=b", "Name # x"]),
              st.sampled_from(["", "\r", " "])),
    st.sampled_from(["", "   ", "# comment", "; a=b", "\ufeff[Team]", "[Team] # note", "=Nobody", "@x=Bad"]),
)


@settings(max_examples=examples(150), deadline=None)
@given(st.lists(LINE, max_size=14))
def test_rosters_match_mod_groups_lua(oracle, tmp_path_factory, lines):
    """The file is loaded by the real mod_groups.lua; for each user, its
    roster-load hook and build_roster must agree on every contact."""
    text = "\n".join(lines) + "\n"
    path = tmp_path_factory.mktemp("g") / "groups.txt"
    path.write_bytes(text.encode("utf-8"))
    parsed = parse(text)
    for username in USERS:
        user = f"{username.lower()}@example.com"
        expected = oracle.roster(path, username.lower(), "example.com")
        got = [i.as_json() for i in sorted_items(build_roster(parsed, user))]
        assert got == expected, (text, user)


@settings(max_examples=examples(150), deadline=None)
@given(st.lists(LINE, max_size=14))
def test_mod_groups_live_injects_what_mod_groups_lua_injects(oracle, tmp_path_factory, lines):
    """ldapsync's companion module must read the file and fill a roster at
    load exactly as Prosody's own module does, for any file."""
    from tests.prosody.server import PLUGIN_DIR

    text = "\n".join(lines) + "\n"
    path = tmp_path_factory.mktemp("g") / "groups.txt"
    path.write_bytes(text.encode("utf-8"))
    for username in USERS:
        expected = oracle.roster(path, username.lower(), "example.com")
        assert oracle.roster(path, username.lower(), "example.com", PLUGIN_DIR / "mod_groups_live.lua") == expected, (
            text, username)
