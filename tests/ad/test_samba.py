"""Active Directory for real: ldapsync against a Samba AD domain controller.

One DC per session (tests/ad/conftest.py), read-only for the tests; each
test writes its own flavour: ad config and runs the CLI.  Nesting through
ldapsync and through the server's in-chain rule, range retrieval of a
2,001-member group, the disabled preset, TLS, paging, JIDs and the whole
chain to a preview.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.ad.conftest import HOST
from tests.ad.directory import BASE, BULK_USERS, STAFF
from tests.ldap.conftest import run
from tests.ldap.test_sync import findings, groups_of, sync_json


def jids(*names: str) -> set[str]:
    return {f"{n}@{HOST}" for n in names}


# What the shared groups of OU=Groups hold with users.base OU=Staff ("big" left out).
STAFF_GROUPS = {
    "engineering": jids("alice", "bob", "carol"),  # carol through platform
    "platform": jids("alice", "bob", "carol"),  # the cycle closes both ways
    "support": jids("grace"),  # three levels down
    "support-l2": jids("grace"),
    "support-l3": jids("grace"),
    "sales": jids("carol"),  # dave is disabled
    "R&D, Europe": jids("alice", "erin"),  # erin through "Ops (Berlin)*"
    "Ops (Berlin)*": jids("erin"),
}


def test_nesting_by_ldapsync_and_by_the_in_chain_rule_agree(capsys, ad_config, tmp_path):
    results = {}
    for nested in ("client", "in_chain"):
        target = tmp_path / f"{nested}.txt"
        config = ad_config(users={"base": STAFF}, groups={"nested": nested, "exclude": ["big"]},
                           outputs=[{"path": str(target), "host": HOST}])
        code, report = sync_json(capsys, config)
        assert code == 0, report
        results[nested] = (report, {name: set(members) for name, members in groups_of(target).items()})
    (client_report, client), (chain_report, chain) = results["client"], results["in_chain"]
    assert client == STAFF_GROUPS
    assert chain == STAFF_GROUPS
    cycle = findings(client_report, "nesting-cycle")
    assert len(cycle) == 1 and "CN=engineering," in cycle[0] and "CN=platform," in cycle[0]
    assert client_report["counts"]["ldap_searches"] == 2
    # one more search per selected group: eight, none for the excluded "big"
    assert chain_report["counts"]["ldap_searches"] == 2 + len(STAFF_GROUPS)


def test_nesting_off_takes_direct_members_only(capsys, ad_config, tmp_path):
    code, _ = sync_json(capsys, ad_config(users={"base": STAFF}, groups={"nested": False, "exclude": ["big"]}))
    assert code == 0
    groups = groups_of(tmp_path / "groups.txt")
    assert set(groups["engineering"]) == jids("alice", "bob")
    assert groups["support"] == {}


def test_a_group_of_2001_members_is_read_through_ranges(capsys, ad_config, tmp_path):
    config = ad_config(groups={"range_size": 500, "include": ["big", "engineering"]})
    code, report = sync_json(capsys, config)
    assert code == 0
    ranged = groups_of(tmp_path / "groups.txt")
    assert len(ranged["big"]) == BULK_USERS + 1
    assert {"alice@example.test", "bulk0001@example.test", "bulk1500@example.test",
            "bulk1501@example.test", "bulk2000@example.test"} <= set(ranged["big"])
    # 0-499 came with the group; 500-999, 1000-1499, 1500-1999 and 2000-* followed
    assert report["counts"]["ldap_range_searches"] == 4
    assert report["counts"]["ldap_searches"] == 2 + 4
    assert set(ranged["engineering"]) == jids("alice", "bob", "carol")  # small groups: member;range=0-*

    # Samba sends all 2,001 values at once when not asked for ranges: the same groups
    (tmp_path / "groups.txt").unlink()
    code, report = sync_json(capsys, ad_config(groups={"include": ["big", "engineering"]}))
    assert code == 0
    assert report["counts"]["ldap_range_searches"] == 0 and report["counts"]["ldap_searches"] == 2
    assert groups_of(tmp_path / "groups.txt") == ranged


def test_range_follow_ups_are_logged_with_their_ldapsearch_command(capsys, ad_config, samba):
    code, out, err = run(capsys, "-vv", "run", "-c", ad_config(groups={"range_size": 1500, "include": ["big"]}),
                         "--dry-run")
    assert code == 0, err
    assert "read 2001 member values of CN=big," in err and "with 1 more searches" in err
    assert (f"range: ldapsearch -LLL -H {samba.url} -x -D CN=ldapsync,OU=Services,OU=Corp,DC=example,DC=test "
            "-W -s base -b CN=big,OU=Groups,OU=Corp,DC=example,DC=test '(objectClass=*)' 'member;range=1500-2999'"
            ) in err


def test_disabled_accounts_are_left_out_by_the_ad_preset(capsys, ad_config, tmp_path):
    code, report = sync_json(capsys, ad_config(users={"base": STAFF}, groups={"include": ["sales"]}))
    assert code == 0
    assert set(groups_of(tmp_path / "groups.txt")["sales"]) == jids("carol")
    assert report["counts"]["users_left_out"]["disabled"] == 1
    (tmp_path / "groups.txt").unlink()
    code, report = sync_json(capsys, ad_config(users={"base": STAFF, "disabled": "none"},
                                               groups={"include": ["sales"]}))
    assert code == 0
    assert set(groups_of(tmp_path / "groups.txt")["sales"]) == jids("carol", "dave")


@pytest.mark.parametrize("how", ["ldaps", "start_tls"])
def test_tls_with_the_dcs_ca(capsys, ad_config, tmp_path, samba, how):
    server = samba.ldaps_url if how == "ldaps" else samba.url
    tls = {"servers": [server], "start_tls": how == "start_tls"}
    code, report = sync_json(capsys, ad_config(ldap={**tls, "ca_file": str(samba.ca_file)},
                                               users={"base": STAFF}, groups={"include": ["engineering"]}))
    assert code == 0
    assert set(groups_of(tmp_path / "groups.txt")["engineering"]) == jids("alice", "bob", "carol")
    # without the DC's CA the system store does not trust it
    code, out, err = run(capsys, "run", "-c", ad_config(ldap=tls, users={"base": STAFF}))
    assert code == 69
    assert "TLS failed" in err


def test_a_paged_search_over_the_whole_domain(capsys, ad_config, tmp_path):
    """users.base is the domain: 2,011 persons in pages of 300 (Samba answers
    at most 1,000 entries to a search that is not paged), and the DC's
    computer account (objectClass user too) is not one of them."""
    code, report = sync_json(capsys, ad_config(ldap={"page_size": 300}, users={"base": BASE},
                                               groups={"include": ["big"]}))
    assert code == 0
    # 2,000 bulk, 6 staff, ldapsync, and Administrator, Guest, krbtgt, dns-dc1 from provisioning
    assert report["counts"]["users_read"] == BULK_USERS + 6 + 1 + 4
    assert report["counts"]["users_left_out"]["disabled"] == 3  # dave, Guest, krbtgt
    assert report["counts"]["ldap_searches"] == 2
    assert len(groups_of(tmp_path / "groups.txt")["big"]) == BULK_USERS + 1


def test_without_the_domain_scope_control_the_domain_root_gives_referrals(capsys, ad_config, tmp_path):
    """A subtree search from the domain's root ends in continuation references
    to the Configuration partition; flavour: ad sends the control that asks
    the DC not to make them, and without it the sync fails rather than
    guess whether the referral held users."""
    code, out, err = run(capsys, "run", "-c", ad_config(ldap={"domain_scope": False}, users={"base": BASE}))
    assert code == 69
    assert "referral" in err and "CN=Configuration,DC=example,DC=test" in err
    assert not (tmp_path / "groups.txt").exists()


@pytest.mark.parametrize(("jid", "grace"), [
    ("{{ sAMAccountName | lower }}@example.test", "grace@example.test"),
    ("{{ mail | lower }}", "grace@mail.example.test"),
    (None, "grace@example.test"),  # the flavour's default: userPrincipalName, then mail
])
def test_jids_from_samaccountname_mail_or_the_upn(capsys, ad_config, tmp_path, jid, grace):
    code, _ = sync_json(capsys, ad_config(users={"base": STAFF}, groups={"include": ["support"]},
                                          mapping={"jid": jid}))
    assert code == 0
    assert groups_of(tmp_path / "groups.txt")["support"] == {grace: "Grace Hopper"}


def test_samba_to_groups_file_to_preview(ad_config, tmp_path):
    """The CLI as a sysadmin runs it, in its own processes."""
    config = ad_config(users={"base": STAFF}, groups={"exclude": ["big"]})
    ldapsync = [sys.executable, "-m", "ldapsync"]
    done = subprocess.run([*ldapsync, "run", "-c", str(config)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "groups.txt: written (8 groups" in done.stdout
    text = (tmp_path / "groups.txt").read_text()
    assert "[engineering]\nalice@example.test=Alice Liddell\n" in text
    assert "dave@example.test" not in text
    done = subprocess.run([*ldapsync, "preview", "-c", str(config), "Carol@Example.Test", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    roster = {item["jid"]: item for item in json.loads(done.stdout)}
    assert roster == {
        "alice@example.test": {"jid": "alice@example.test", "name": "Alice Liddell", "subscription": "both",
                               "groups": ["engineering", "platform"]},
        "bob@example.test": {"jid": "bob@example.test", "name": "Bob Builder", "subscription": "both",
                             "groups": ["engineering", "platform"]},
    }


def test_explain_shows_the_nesting_path_with_in_chain_too(capsys, ad_config):
    """With nested: in_chain the server decides membership; explain still
    shows the path through the groups' member values."""
    config = ad_config(users={"base": STAFF}, groups={"nested": "in_chain", "include": ["engineering", "sales"]})
    code, out, err = run(capsys, "explain", "-c", config, "carol@example.test")
    assert code == 0, err
    assert "in group 'engineering'" in out
    assert "through CN=engineering,OU=Groups,OU=Corp,DC=example,DC=test -> CN=platform," in out
    assert "in group 'sales'" in out
    code, out, err = run(capsys, "explain", "-c", config, "dave@example.test")
    assert code == 1  # in no group
    assert "disabled (userAccountControl 514 has the ACCOUNTDISABLE bit)" in out + err
