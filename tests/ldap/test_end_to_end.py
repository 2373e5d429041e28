"""The whole chain: a real slapd -> ldapsync run -> a real Prosody -> a real client."""

from __future__ import annotations

import json

import pytest

from tests.ldap.conftest import run

pytestmark = pytest.mark.prosody


def test_a_client_sees_the_contacts_and_names_the_directory_implies(capsys, make_config, tmp_path, prosody):
    config = make_config(users={"disabled": "389ds"})
    code, out, err = run(capsys, "run", "-c", config)
    assert code == 0, err
    prosody.register("alice", "carol", "jmueller")
    prosody.load_groups((tmp_path / "groups.txt").read_bytes())
    for user in ("alice", "carol", "jmueller"):
        prosody.set_personal_roster(user, [])
        received = prosody.fetch_roster(user)
        code, out, _ = run(capsys, "preview", "-c", config, f"{user}@example.com", "--json")
        assert code == 0
        assert received == json.loads(out), user
    alice = {i["jid"]: i for i in prosody.fetch_roster("alice")}
    assert alice["carol@example.com"] == {"jid": "carol@example.com", "name": "Carol Danvers",
                                          "subscription": "both", "groups": ["All Staff", "Engineering", "platform"]}
    assert alice["jmueller@example.com"]["name"] == "Jürgen Müller"
    assert alice["bob@example.com"]["name"] == "Bob Builder"
    assert "dave@example.com" not in alice  # disabled in the directory
    assert "alice@example.com" not in alice
