"""Templates rendered many entries at a time give what one render per entry
gives, whatever the data and whatever the template does."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ldapsync.config import MappingSettings, parse
from ldapsync.directory import Entry
from ldapsync.errors import UserError
from ldapsync.groupsfile import GroupsFile, render
from ldapsync.groupsfile import parse as parse_file
from ldapsync.invisible import has_invisible
from ldapsync.mapping import (
    MAX_NAME,
    cleaned_name,
    directory_size,
    held_for,
    map_directory,
    model_for,
    with_held,
)
from ldapsync.membership import resolve
from ldapsync.model import SharedGroup
from ldapsync.templates import _RECORD, _SEPARATOR, Templates
from tests.budget import examples

TEMPLATES = [
    ("{{ uid | lower }}@example.com", "{{ displayName or cn }}"),
    ("{% set node = uid | lower %}{{ node }}@example.com", "{% if displayName %}{{ displayName }}{% endif %}"),
    ("{{ attrs.mail[0] if attrs.mail else uid }}", "{{ dn.split(',')[0] }} {{ cn | upper }}"),
    ("{{ uid[2] }}@example.com", "{{ cn }}"),  # fails for a uid shorter than 3 characters
    ("{% for c in uid %}{{ c }}{% endfor %}@x", "{{ displayName | replace('a', '=') }}\n"),
    ("{{ uid }}", "{{ displayName ~ loop_count | default('') }}"),
]

VALUES = st.one_of(
    st.text(max_size=8),
    st.sampled_from(["", "a", "alice", "Åsa", _SEPARATOR, _RECORD, f"x{_RECORD}y", "\n", "{{ 7*7 }}", "]"]),
)
ENTRY = st.builds(
    lambda i, uid, name, cn, mail: Entry(
        f"uid=u{i},ou=people,dc=example,dc=com",
        {k: v for k, v in {"uid": uid, "displayname": name, "cn": cn, "mail": mail}.items() if v}),
    st.integers(0, 10**6),
    *[st.lists(VALUES, max_size=2)] * 4,
)


def one_by_one(templates: Templates, entry: Entry, key: str) -> str | None:
    try:
        return templates.render(key, entry, templates.user_attributes)
    except Exception:  # noqa: BLE001 - any failure means: not rendered
        return None


@settings(max_examples=examples(150), deadline=None)
@given(st.sampled_from(TEMPLATES), st.lists(ENTRY, max_size=30))
def test_batches_render_like_single_entries(pair, entries):
    jid, name = pair
    templates = Templates(MappingSettings(jid=jid, name=name))
    batch = templates.render_people(entries)
    assert len(batch) == len(entries)
    singles = [(one_by_one(templates, e, "jid"), one_by_one(templates, e, "name")) for e in entries]
    # an entry that fails or holds a separator sends its chunk (here: all) to single renders
    held = any(_SEPARATOR in v or _RECORD in v for e in entries for vs in e.attrs.values() for v in vs)
    trouble = held or any(None in single for single in singles)
    for both, single in zip(batch, singles, strict=True):
        assert both == single or (both is None and trouble)
    assert trouble or None not in batch


def test_a_failing_entry_is_reported_and_the_others_mapped():
    config = parse("""
ldap: {servers: ["ldap://127.0.0.1"]}
users: {base: "dc=x"}
groups: {base: "dc=x"}
mapping: {jid: "{{ uid[1] }}.{{ uid }}@example.com", name: "{{ cn }}"}
outputs: [{path: /tmp/unused.txt}]
""")
    users = [Entry(f"uid={u}{i},dc=x", {"uid": [f"{u}{i}" if u != "x" else u], "cn": [u.title()]})
             for i in range(1500) for u in ("alice", "x", "bob")]  # the failures span chunks
    team = Entry("cn=team,dc=x", {"cn": ["team"], "member": [u.dn for u in users]})
    mapped = map_directory(config, Templates(config.mapping), resolve(users, [team], config.users, config.groups))
    assert (mapped.people["uid=alice7,dc=x"].jid, mapped.people["uid=alice7,dc=x"].name) == (
        "l.alice7@example.com", "Alice")
    assert mapped.groups["team"].members["o.bob1499@example.com"] == "Bob"
    assert "mapping.jid failed" in mapped.left_out["uid=x7,dc=x"].why
    assert sum(f.kind == "template-error" for f in mapped.findings) == 1500


def test_python_errors_in_a_template_are_reported_per_entry_like_jinja2_errors():
    """{{ 1/0 }} or {{ uid + 1 }} raised ZeroDivisionError or TypeError out
    of the sync (a traceback); now the entry is left out with the reason."""
    config = parse("""
ldap: {servers: ["ldap://127.0.0.1"]}
users: {base: "dc=x"}
groups: {base: "dc=x"}
mapping: {jid: "{{ uid }}@example.com", name: "{{ cn }} ({{ 100 // (employeeNumber | int) }})",
          group_name: "{{ cn | truncate(description | int) }}"}
outputs: [{path: /tmp/unused.txt}]
""")
    users = [Entry("uid=alice,dc=x", {"uid": ["alice"], "cn": ["Alice"], "employeenumber": ["4"]}),
             Entry("uid=bob,dc=x", {"uid": ["bob"], "cn": ["Bob"], "employeenumber": ["0"]})]
    team = Entry("cn=team,dc=x", {"cn": ["team"], "description": ["10"], "member": [u.dn for u in users]})
    odd = Entry("cn=odd,dc=x", {"cn": ["odd"], "description": ["-1"], "member": [users[0].dn]})
    mapped = map_directory(config, Templates(config.mapping), resolve(users, [team, odd], config.users, config.groups))
    assert mapped.groups["team"].members == {"alice@example.com": "Alice (25)", "bob@example.com": "bob"}
    assert "odd" not in mapped.groups
    failed = {f.subject: f.message for f in mapped.findings if f.kind == "template-error"}
    assert failed == {"uid=bob,dc=x": "mapping.name failed: ZeroDivisionError: integer division or modulo by zero",
                      "cn=odd,dc=x": "mapping.group_name failed: AssertionError: expected length >= 3, got -1"}


def test_group_names_in_batches():
    templates = Templates(MappingSettings(group_name="{{ description or cn }}"))
    groups = [Entry("cn=a,dc=x", {"cn": ["a"], "description": ["Team A"]}), Entry("cn=b,dc=x", {"cn": ["b"]})]
    assert templates.render_group_names(groups) == ["Team A", "b"]
    hostile = Entry("cn=c,dc=x", {"cn": [f"c{_RECORD}"]})
    assert templates.render_group_names([*groups, hostile]) == [None] * 3  # each rendered on its own


COLLIDING = parse("""
ldap: {servers: ["ldap://127.0.0.1"]}
users: {base: "dc=x"}
groups: {base: "dc=x", public: ["All"]}
mapping: {jid: "{{ uid }}@example.com", name: "{{ cn }}", group_name: "{{ description or cn }}"}
static_groups:
  - {name: Team, members: {help@example.com: Help}}
  - {name: Desk, members: {help@example.com: Help}}
outputs: [{path: /tmp/unused.txt, exclude: [Other]}]
""")


def colliding_directory():
    users = [Entry(f"uid={u},dc=x", {"uid": [u], "cn": [u.title()]}) for u in ("alice", "bob", "carol", "dave")]
    groups = [Entry("cn=team,dc=x", {"cn": ["team"], "description": ["Team"], "member": ["uid=alice,dc=x"]}),
              Entry("cn=new,dc=x", {"cn": ["new"], "description": ["Team"], "member": ["uid=bob,dc=x"]}),
              Entry("cn=third,dc=x", {"cn": ["third"], "description": ["Team"], "member": ["uid=bob,dc=x"]}),
              Entry("cn=ops,dc=x", {"cn": ["ops"], "member": ["uid=carol,dc=x"]})]
    members = resolve(users, groups, COLLIDING.users, COLLIDING.groups)
    return map_directory(COLLIDING, Templates(COLLIDING.mapping), members)


def test_a_name_several_groups_claim_is_held_and_reported():
    mapped = colliding_directory()
    assert mapped.held == {"Team": ["cn=team,dc=x", "cn=new,dc=x", "cn=third,dc=x"]}
    assert set(mapped.groups) == {"ops", "Desk"}  # the static group of a held name is held with it
    [finding] = [f for f in mapped.findings if f.kind == "group-collision"]
    assert str(finding) == ("Team: cn=new,dc=x, cn=team,dc=x and cn=third,dc=x all map to this shared group name; "
                            "the name is held as it is in the current file while the other groups sync (change "
                            "mapping.group_name or a group's name, or set groups.on_name_collision: merge)")
    assert mapped.from_directory == {"ops": 1, "Team": 2}  # Desk is the config's alone
    assert "uid=bob,dc=x" not in mapped.left_out  # in a group, if a held one
    output = COLLIDING.outputs[0]
    assert held_for(output, mapped) == ["Team"]
    assert directory_size(output, mapped) == (2, 3)
    assert held_for(output.model_copy(update={"exclude": ["Team"]}), mapped) == []


def test_a_held_name_takes_its_group_from_the_current_file():
    mapped = colliding_directory()
    model = model_for(COLLIDING.outputs[0], mapped)
    current = parse_file("[+Team]\nalice@example.com=Alice (old name)\nzed@example.com=Zed\n[ops]\nx@example.com=X\n")
    held = with_held(model, ["Team"], current)
    # members and public flag as the file has them; a member the directory names elsewhere gets that name
    assert held.group("Team") == SharedGroup("Team", {"alice@example.com": "Alice (old name)",
                                                      "zed@example.com": "Zed"}, True)
    assert held.group("ops") == model.group("ops")
    renamed = parse_file("[Team]\ncarol@example.com=Carol (old name)\n")
    assert with_held(model, ["Team"], renamed).group("Team").members == {"carol@example.com": "Carol"}
    assert with_held(model, ["Team"], parse_file("[Other]\na@example.com=A\n")) == model  # absent: absent
    assert with_held(model, ["Team"], parse_file("[Team]\n")).group("Team") == SharedGroup("Team")


def test_a_held_group_is_cleaned_like_any_other_and_renders():
    """What the current file holds (an older release's names, a hand edit)
    must not make every run fail once its name is held."""
    model = model_for(COLLIDING.outputs[0], colliding_directory())
    current = parse_file("[Team]\nhid@example.com=Hid\u200bden\nbare@example.com\ntwice@example.com=One\n"
                         "[Ops]\ntwice@example.com=Two\n")
    held = with_held(model, ["Team", "Ops"], current)
    assert held.group("Team").members == {"hid@example.com": "Hidden", "bare@example.com": "bare",
                                          "twice@example.com": "One"}
    assert held.group("Ops").members == {"twice@example.com": "One"}  # one name per JID
    render(held)  # raises RenderError if anything held could not be written
    unwritable = GroupsFile.of_groups([("Team", False, {"a b@example.com": "A", "c@example.com": "C"})])
    assert with_held(model, ["Team"], unwritable).group("Team").members == {"c@example.com": "C"}


# --- lookalike identities ----------------------------------------------------------


def mapped_from(users: list[Entry], *, jid: str = "{{ uid | lower }}@example.com", static: str = "",
                group_name: str = "{{ cn }}"):
    config = parse(f"""
ldap: {{servers: ["ldap://127.0.0.1"]}}
users: {{base: "dc=x"}}
groups: {{base: "dc=x"}}
mapping: {{jid: "{jid}", name: "{{{{ displayName }}}}", group_name: "{group_name}"}}
outputs: [{{path: /tmp/unused.txt}}]
{static}""")
    team = Entry("cn=team,dc=x", {"cn": ["team"], "member": [u.dn for u in users]})
    return map_directory(config, Templates(config.mapping), resolve(users, [team], config.users, config.groups))


def user(rdn: str, uid: str, name: str = "Alice Liddell") -> Entry:
    return Entry(f"{rdn},dc=x", {"uid": [uid], "displayname": [name]})


def kinds(mapped) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in mapped.findings:
        out.setdefault(f.kind, []).append(str(f))
    return out


ALICE = user("uid=alice", "alice")
LOOKALIKE = user("cn=fake", "alice\u200b")


@pytest.mark.parametrize("order", [[ALICE, LOOKALIKE], [LOOKALIKE, ALICE]])
def test_a_lookalike_uid_never_evicts_the_user_it_imitates(order):
    mapped = mapped_from(order)
    assert mapped.groups["team"].members == {"alice@example.com": "Alice Liddell"}
    assert [p.dn for p in mapped.people.values()] == ["uid=alice,dc=x"]
    assert mapped.left_out["cn=fake,dc=x"].why == ("lookalike of uid=alice,dc=x: mapping.jid gives "
                                               "'alice\\u200b@example.com', which Prosody reads as alice@example.com")
    assert mapped.left_out["cn=fake,dc=x"].kind == "lookalike JID"
    assert kinds(mapped) == {"jid-lookalike": [
        ("cn=fake,dc=x: lookalike of uid=alice,dc=x: mapping.jid gives 'alice\\u200b@example.com', which Prosody "
         "reads as alice@example.com, dropping U+200B ZERO WIDTH SPACE: left out, uid=alice,dc=x keeps the JID")]}


def test_the_exact_jid_is_up_to_case():
    # sAMAccountName-style capitals: "JSmith" is JSmith's JID, "JSmith" plus a soft hyphen is not
    mapped = mapped_from([user("cn=a", "JS\u00admith"), user("cn=b", "JSmith"), user("cn=c", "ＪＳｍｉｔｈ")],
                         jid="{{ uid }}@Example.com")
    assert mapped.groups["team"].members == {"jsmith@example.com": "Alice Liddell"}
    assert sorted(mapped.left_out) == ["cn=a,dc=x", "cn=c,dc=x"]
    assert [f.subject for f in mapped.findings if f.kind == "jid-lookalike"] == ["cn=a,dc=x", "cn=c,dc=x"]


@pytest.mark.parametrize("uids", [["alice", "ALICE", "al\u200bice"], ["al\u200bice", "al\u00adice"]])
def test_without_exactly_one_exact_entry_all_are_left_out(uids):
    mapped = mapped_from([user(f"cn=u{i}", u) for i, u in enumerate(uids)], jid="{{ uid }}@example.com")
    assert mapped.groups["team"].members == {}
    assert {r.kind for r in mapped.left_out.values()} == {"duplicate JID"}
    [collision] = kinds(mapped)["jid-collision"]
    assert "cn=u1,dc=x" in collision and "'al\\u200bice@example.com'" in collision


def test_a_jid_that_preparation_changes_beyond_case_is_reported():
    mapped = mapped_from([user("cn=a", "ｂｏｂ"), user("cn=b", "car\u200bol"), user("cn=c", "Dave"),
                          user("cn=d", "Straße"), user("cn=e", "ΟΔΥΣΣΕΥΣ"), user("cn=f", "erin.")],
                         jid="{{ uid }}@example.com")
    assert set(mapped.groups["team"].members) == {
        "bob@example.com", "carol@example.com", "dave@example.com", "strasse@example.com", "οδυσσευσ@example.com",
        "erin.@example.com"}
    assert kinds(mapped) == {"jid-prepared": [
        ("cn=a,dc=x: mapping.jid gives 'ｂｏｂ@example.com', which Prosody reads as bob@example.com, normalised "
         "beyond case"),
        ("cn=b,dc=x: mapping.jid gives 'car\\u200bol@example.com', which Prosody reads as carol@example.com, "
         "dropping U+200B ZERO WIDTH SPACE")]}


def test_a_bidi_display_name_is_cleaned_and_reported():
    mapped = mapped_from([user("uid=m", "m", "Alice\u202egpj.exe"), user("uid=f", "f", "\u3164"),
                          user("uid=z", "z", "Al\u3164ice")])
    assert mapped.groups["team"].members == {"m@example.com": "Alicegpj.exe", "f@example.com": "f",
                                             "z@example.com": "Alice"}
    assert kinds(mapped)["name-cleaned"] == [
        "uid=m,dc=x: display name 'Alice\\u202egpj.exe' cleaned to 'Alicegpj.exe'",
        "uid=f,dc=x: display name '\\u3164' cleaned to ''",
        "uid=z,dc=x: display name 'Al\\u3164ice' cleaned to 'Alice'"]


def test_group_and_static_member_names_are_cleaned_and_reported():
    static = 'static_groups: [{name: Desk, members: {"help@example.com": "Help\\u200b Desk"}}]'
    mapped = mapped_from([ALICE], static=static, group_name="{{ cn }}\u202e")
    assert set(mapped.groups) == {"team", "Desk"}
    assert mapped.groups["Desk"].members == {"help@example.com": "Help Desk"}
    assert kinds(mapped)["name-cleaned"] == [
        "cn=team,dc=x: group name 'team\\u202e' cleaned to 'team'",
        "static_groups 'Desk': the name 'Help\\u200b Desk' of help@example.com cleaned to 'Help Desk'"]


def test_a_long_name_is_never_cut_after_a_joiner():
    name = "\u0627" * (MAX_NAME - 1) + "\u200c" + "\u0632" * 10
    assert not has_invisible(name)
    assert cleaned_name(name) == "\u0627" * (MAX_NAME - 1)


def test_a_jid_that_keeps_an_invisible_character_is_left_out():
    # JID preparation drops zero-width spaces but keeps what Unicode 3.2 did not know (U+2066) and fillers
    mapped = mapped_from([ALICE, user("cn=b", "alice\u2066"), user("cn=c", "\u3164")])
    assert mapped.groups["team"].members == {"alice@example.com": "Alice Liddell"}
    assert {k: r.kind for k, r in mapped.left_out.items()} == {"cn=b,dc=x": "bad JID", "cn=c,dc=x": "bad JID"}
    assert kinds(mapped)["bad-jid"][0] == (
        "cn=b,dc=x: mapping.jid gives 'alice\\u2066@example.com', which Prosody reads as 'alice\\u2066@example.com': "
        "a JID with U+2066 LEFT-TO-RIGHT ISOLATE looks like another")


def test_a_static_member_whose_jid_hides_a_character_is_a_config_error():
    static = 'static_groups: [{name: Desk, members: {"help\\u2066@example.com": "Help Desk"}}]'
    with pytest.raises(UserError, match=r"static_groups: 'Desk': 'help\\u2066@example.com' holds U\+2066"):
        mapped_from([ALICE], static=static)
