"""Live updates with mod_groups_live: clients stay connected while the groups
file changes, and the roster each one keeps from the pushes it received must
equal ``ldapsync preview --json`` of the new file for that user."""

from __future__ import annotations

import json

import pytest

from tests.prosody.live import ClientLoop, LiveClient
from tests.prosody.server import preview

pytestmark = pytest.mark.prosody

USERS = ["alice", "bob", "carol", "dave", "erin", "frank"]

# alice's own contacts: one a shared group overrides while bob is shared,
# and one no group touches
PERSONAL_ALICE = [
    {"jid": "bob@example.com", "name": "My Bob", "subscription": "none", "groups": ["Friends"]},
    {"jid": "zed@example.org", "name": "Zed", "subscription": "to", "groups": []},
]

# Each step is a new file; the comment says what it changes for whom.
STEPS = [
    # the start: two private groups
    "[Ops]\ndave@example.com=Dave\nerin@example.com=Erin\n"
    "[Team]\nalice@example.com=Alice\nbob@example.com=Bob\ncarol@example.com=Carol\n",
    # bob renamed, dave added to Team, carol moved from Team to Ops
    "[Ops]\ncarol@example.com=Carol\ndave@example.com=Dave\nerin@example.com=Erin\n"
    "[Team]\nalice@example.com=Alice\nbob@example.com=Robert\ndave@example.com=Dave\n",
    # a public group appears: everyone gets frank and erin
    "[+Everyone]\nerin@example.com=Erin\nfrank@example.com=Frank\n"
    "[Ops]\ncarol@example.com=Carol\ndave@example.com=Dave\nerin@example.com=Erin\n"
    "[Team]\nalice@example.com=Alice\nbob@example.com=Robert\ndave@example.com=Dave\n",
    # the public group goes, and bob leaves every group
    "[Ops]\ncarol@example.com=Carol\ndave@example.com=Dave\nerin@example.com=Erin\n"
    "[Team]\nalice@example.com=Alice\ndave@example.com=Dave\n",
]


@pytest.fixture(scope="module")
def live(prosody):
    """The session's Prosody running mod_groups_live, and a loop for clients."""
    prosody.use_module("groups_live")
    loop = ClientLoop()
    yield prosody, loop
    loop.close()
    prosody.use_module("groups")


@pytest.fixture
def clients():
    """Clients opened by a test, closed after it whatever happened."""
    opened: list[LiveClient] = []
    yield opened
    for client in opened:
        client.close()




def assert_rosters_follow(capsys, prosody, clients, personal_files, step) -> None:
    for client in clients:
        user = client.jid.split("@")[0]
        expected = preview(capsys, prosody.groups_file, user, personal_files.get(user))
        assert client.wait_for(lambda c, e=expected: c.items() == e), f"step {step}: roster of {client.jid}"


def test_connected_clients_follow_every_change_through_pushes(live, clients, capsys, tmp_path):
    prosody, loop = live
    prosody.register(*USERS)
    for user in USERS:
        prosody.set_personal_roster(user, [])
    prosody.set_personal_roster("alice", PERSONAL_ALICE)
    personal_files = {"alice": tmp_path / "alice.json"}
    personal_files["alice"].write_text(json.dumps(PERSONAL_ALICE))
    prosody.load_groups(STEPS[0])

    def connect(user, resource="live"):
        client = LiveClient(loop, prosody.port, user, resource).connect()
        clients.append(client)
        return client

    alice = connect("alice", "phone")
    alice_laptop = connect("alice", "laptop")  # a second session of the same user
    others = {user: connect(user) for user in USERS[1:]}
    assert_rosters_follow(capsys, prosody, clients, personal_files, 0)
    assert alice.wait_for(lambda c: "bob@example.com" in c.available())

    for step, text in enumerate(STEPS[1:], start=1):
        prosody.load_groups(text)
        assert_rosters_follow(capsys, prosody, clients, personal_files, step)
        if step == 1:  # dave joined alice's Team: his presence follows, and hers reaches him
            assert alice.wait_for(lambda c: "dave@example.com" in c.available())
            assert others["dave"].wait_for(lambda c: "alice@example.com" in c.available())
            assert others["carol"].wait_for(lambda c: "alice@example.com" not in c.available())
        if step == 3:  # bob left every group: alice no longer sees him online
            assert alice.wait_for(lambda c: "bob@example.com" not in c.available())
    assert all(c.pushes for c in clients if c.jid.startswith(("alice", "bob", "carol")))

    # alice's own contacts survived; bob is hers again, as she named him
    final_items = alice_laptop.items()
    final = {item["jid"]: item for item in final_items}
    assert final["bob@example.com"] == {"jid": "bob@example.com", "name": "My Bob", "subscription": "none",
                                        "groups": ["Friends"]}
    assert final["zed@example.org"]["name"] == "Zed"
    # a session opened now gets the same roster from Prosody
    again = connect("alice", "tablet")
    assert again.items() == alice.items() == alice_laptop.items()
    # and so does one after every session of hers ended (her roster read anew)
    for client in (alice, alice_laptop, again):
        client.close()
    assert connect("alice", "phone").items() == final_items


@pytest.mark.parametrize("module", ["groups", "groups_live"])
def test_a_roster_cached_while_offline_gets_the_new_groups_at_login(live, module):
    """Prosody keeps the rosters of offline users it loaded (for a contact's
    presence probe, or an admin tool) in a cache a reload does not clear.
    mod_groups then gives the old groups at the next login; mod_groups_live
    drops the cache."""
    prosody, loop = live
    prosody.register("alice", "olga", "frank")
    for user in ("alice", "olga", "frank"):
        prosody.set_personal_roster(user, [])
    prosody.use_module(module)
    try:
        prosody.load_groups("[Team]\nalice@example.com=Alice\nolga@example.com=Olga\n")
        prosody.load_roster_while_offline("olga")
        prosody.load_groups("[Ops]\nfrank@example.com=Frank\nolga@example.com=Olga\n[Team]\nalice@example.com=Alice\n")
        olga = [item["jid"] for item in prosody.fetch_roster("olga")]
    finally:
        prosody.use_module("groups_live")
    if module == "groups":
        assert olga == ["alice@example.com"]  # stale: why mod_groups_live drops the cache
    else:
        assert olga == ["frank@example.com"]
