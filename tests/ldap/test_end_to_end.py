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


def test_the_reload_is_checked_against_the_real_prosody(capsys, make_config, prosody):
    """After writing, ldapsync reloads mod_groups with prosodyctl and checks that
    the module is still loaded; a module that is gone is reported (exit 76)."""
    ctl = ["prosodyctl", "--config", str(prosody.config), "shell", "module"]
    prosody.groups_file.write_text("")
    outputs = [{"path": str(prosody.groups_file), "host": "example.com",
                "post_change_command": [*ctl, "reload", "groups", "example.com"],
                "reload_check_command": [*ctl, "list", "example.com"]}]
    code, out, err = run(capsys, "run", "-c", make_config(outputs=outputs))
    assert code == 0, out + err
    assert "succeeded" in out
    prosody.register("alice")
    assert any(i["jid"] == "carol@example.com" for i in prosody.fetch_roster("alice"))
    # mod_groups gone (as after a reload while the file was missing): the check says so
    prosody.prosodyctl("shell", "module", "unload", "groups", "example.com")
    try:
        outputs[0]["post_change_command"] = ["true"]
        prosody.groups_file.write_text("")
        code, out, err = run(capsys, "run", "-c", make_config(outputs=outputs))
        assert code == 76
        assert "is mod_groups still loaded?" in out + err
    finally:
        prosody.prosodyctl("shell", "module", "load", "groups", "example.com")


@pytest.fixture
def live_prosody(prosody):
    """The session's Prosody running mod_groups_live, and a loop for clients."""
    from tests.prosody.live import ClientLoop

    prosody.use_module("groups_live")
    loop = ClientLoop()
    yield prosody, loop
    loop.close()
    prosody.use_module("groups")


def test_a_run_with_live_updates_reaches_a_connected_client(capsys, make_config, live_prosody):
    """ldapsync run writes the file and reloads mod_groups_live: a client that
    stayed connected holds the roster preview predicts, and the run says so."""
    from tests.prosody.live import LiveClient

    prosody, loop = live_prosody
    ctl = ["prosodyctl", "--config", str(prosody.config), "shell", "module"]
    prosody.register("alice")
    prosody.set_personal_roster("alice", [])
    prosody.load_groups("")
    alice = LiveClient(loop, prosody.port, "alice").connect()
    try:
        assert alice.items() == []
        outputs = [{"path": str(prosody.groups_file), "host": "example.com", "live_updates": True,
                    "post_change_command": [*ctl, "reload", "groups_live", "example.com"],
                    "reload_check_command": [*ctl, "list", "example.com"]}]
        config = make_config(outputs=outputs)
        code, out, err = run(capsys, "run", "-c", config)
        assert code == 0, out + err
        assert "online users see it now" in out
        code, expected, _ = run(capsys, "preview", "-c", config, "alice@example.com", "--json")
        assert code == 0
        assert alice.wait_for(lambda c: c.items() == json.loads(expected))
        assert any(i["jid"] == "carol@example.com" for i in alice.items())
    finally:
        alice.close()


def test_check_connect_says_whether_mod_groups_live_is_active(capsys, make_config, live_prosody):
    prosody, _ = live_prosody
    ctl = ["prosodyctl", "--config", str(prosody.config), "shell", "module"]
    outputs = [{"path": str(prosody.groups_file), "host": "example.com", "live_updates": True,
                "post_change_command": [*ctl, "reload", "groups_live", "example.com"],
                "reload_check_command": [*ctl, "list", "example.com"]}]
    config = make_config(outputs=outputs)
    code, out, err = run(capsys, "check", "-c", config, "--connect")
    assert code == 0, out + err
    assert "mod_groups_live is active" in out
    prosody.use_module("groups")  # live_updates on, but Prosody runs its own mod_groups
    code, out, err = run(capsys, "check", "-c", config, "--connect")
    assert code != 0
    assert "has no line 'groups_live'" in out + err
    # and a run then promises nothing to online users
    prosody.groups_file.write_text("")
    code, out, err = run(capsys, "run", "-c", config)
    assert code == 76
    assert "is mod_groups_live still loaded?" in out + err
    assert "online users see it now" not in out
    assert "users see the change when they next log in" in out
