"""End to end: a real Prosody loads a groups file, a real client logs in, and the
roster it receives must equal ``ldapsync preview --json`` for the same user."""

from __future__ import annotations

import json

import pytest

from ldapsync.cli import main
from tests.prosody.server import GROUPS_MODULES, preview

pytestmark = pytest.mark.prosody


@pytest.fixture(scope="module", params=GROUPS_MODULES)
def prosody(request, prosody):
    """The session's Prosody reading the file with Prosody's mod_groups, then
    with ldapsync's mod_groups_live: every rule here must hold for both."""
    prosody.use_module(request.param)
    yield prosody
    prosody.use_module("groups")

USERS = ["alice", "bob", "carol", "älice", "dave", "erin"]

MIXED = (
    "alice@example.com=Alice before any header\n"
    "[Team]\n"
    "ALICE@EXAMPLE.COM=Alice A.\n"
    "bob@example.com=Bob = the Builder\n"
    "Carol@Example.com\n"
    "# a comment that is a JID\n"
    "; also=not a comment\n"
    "[+Staff]\n"
    "bob@example.com=Bob in Staff\n"
    "ÄLICE@example.com=Älice Ünicode\n"
    "carol@example.com=  Carol padded  \n"
    "[Team]\n"
    "dave@example.com=Dave\n"
    "[T2] # trailing text makes this a member\n"
    "[ Ops ]\n"
    "dave@example.com=Dave in Ops\n"
    "erin@example.com=\n"
    "@invalid=skipped\n"
)

SCENARIOS = {
    "mixed": MIXED,
    "crlf": MIXED.replace("\n", "\r\n"),
    "bom": "\ufeff" + MIXED,
    "bom-before-header": "\ufeff[Team]\nalice@example.com=Alice\nbob@example.com=Bob\n",
    "public-only": "[+Everyone]\nalice@example.com=Alice\nbob@example.com=Bob\ncarol@example.com=Carol\n",
    "several-groups-names": (
        "[A]\nalice@example.com=A\nbob@example.com=Bob from A\ncarol@example.com=Carol\n"
        "[B]\nalice@example.com=A\nbob@example.com\ncarol@example.com=C\n"
        "[+P]\ncarol@example.com=Carol public\n[A]\ndave@example.com=D\n[+P]\n"
    ),
    "duplicate-sections": (
        "[G]\nalice@example.com=A1\n[H]\nbob@example.com=B\n[G]\nalice@example.com=A2\ncarol@example.com=C\n"
    ),
}

PERSONAL = {
    # a personal contact that a shared group overrides (name, subscription),
    # and one that no group touches
    "alice": [
        {"jid": "bob@example.com", "name": "My Bob", "subscription": "none", "groups": ["Friends"]},
        {"jid": "zed@example.org", "name": "Zed", "subscription": "to", "groups": []},
    ],
    "carol": [{"jid": "alice@example.com", "name": None, "subscription": "from", "groups": ["Old"]}],
}




@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_prosody_sends_the_roster_preview_predicts(prosody, capsys, tmp_path, scenario):
    prosody.register(*USERS)
    prosody.load_groups(SCENARIOS[scenario])
    for user in USERS:
        personal = PERSONAL.get(user, [])
        prosody.set_personal_roster(user, personal)
        personal_file = None
        if personal:
            personal_file = tmp_path / f"{user}.json"
            personal_file.write_text(json.dumps(personal))
        expected = preview(capsys, prosody.groups_file, user, personal_file)
        received = prosody.fetch_roster(user)
        assert received == expected, f"{scenario}: roster of {user}"


def test_the_scenarios_exercise_what_they_claim(prosody, capsys, tmp_path):
    """Guard against a vacuous end-to-end test: the mixed file really gives
    names with '=', empty names, non-ASCII JIDs and overridden personal items."""
    prosody.register(*USERS)
    prosody.load_groups(MIXED)
    prosody.set_personal_roster("alice", PERSONAL["alice"])
    got = {i["jid"]: i for i in prosody.fetch_roster("alice")}
    assert got["bob@example.com"] == {"jid": "bob@example.com", "name": "Bob in Staff", "subscription": "both",
                                      "groups": ["Friends", "Staff", "Team"]}
    assert got["carol@example.com"]["name"] == "  Carol padded  "
    assert got["älice@example.com"]["name"] == "Älice Ünicode"
    assert got["#"]["name"] == ""
    assert got[";"]["name"] == "not a comment"
    assert got["[t2]"]["groups"] == ["Team"]
    assert got["zed@example.org"] == {"jid": "zed@example.org", "name": "Zed", "subscription": "to", "groups": []}
    assert "alice@example.com" not in got
    erin = {i["jid"]: i for i in prosody.fetch_roster("erin")}
    # erin is only in "[ Ops ]" (name kept with its spaces) and gets the public group
    assert set(erin) == {"bob@example.com", "älice@example.com", "carol@example.com", "dave@example.com"}
    assert erin["dave@example.com"]["groups"] == [" Ops "]


def test_a_control_character_in_a_name_breaks_the_roster_and_ldapsync_says_so(prosody, capsys):
    """Prosody refuses to put a control character into XML: the roster request
    of every user who gets that contact fails.  check and preview predict it."""
    prosody.register("alice")
    prosody.load_groups("[Team]\nalice@example.com=Alice\nbob@example.com=B\x01ob\n")
    from slixmpp.exceptions import IqTimeout

    with pytest.raises(IqTimeout):  # Prosody never answers the roster request
        prosody.fetch_roster("alice", timeout=3)
    assert main(["check", str(prosody.groups_file)]) == 1
    out, _ = capsys.readouterr()
    assert "error: the name 'B\\x01ob' holds characters XML cannot carry" in out
    assert main(["preview", "--groups-file", str(prosody.groups_file), "alice@example.com"]) == 65
    _, err = capsys.readouterr()
    assert "Prosody cannot send alice@example.com a roster" in err
