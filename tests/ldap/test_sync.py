"""The main job against a real slapd: directory -> verified groups file.

The shared directory is read-only for these tests; what varies is the
config (templates, presets, accounts), written per test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ldapsync.groupsfile import read
from tests.ldap.conftest import HOST, run
from tests.ldap.directory import BASE, BULK, LIMITED_DN, LIMITED_PASSWORD, PEOPLE, SYNC_DN, SYNC_PASSWORD


def sync_json(capsys, config) -> tuple[int, dict]:
    code, out, err = run(capsys, "run", "-c", config, "--json")
    assert out, err
    return code, json.loads(out)


def groups_of(path: Path) -> dict[str, dict[str, str]]:
    parsed = read(path)
    assert parsed.diagnostics == ()
    return {name: dict(members) for name, members in parsed.groups.items() if members or name in parsed.declared}


def findings(report: dict, kind: str) -> list[str]:
    return [f"{f['subject']}: {f['message']}" for f in report["findings"] if f["kind"] == kind]


EVERYONE = {"alice", "bob", "carol", "dave", "erin", "frank", "jmueller", "grace", "jsmith"}


def jids(*names: str) -> set[str]:
    return {f"{n}@{HOST}" for n in names}


def test_run_writes_the_groups_the_directory_implies(capsys, make_config, tmp_path):
    config = make_config()
    code, report = sync_json(capsys, config)
    assert code == 0
    groups = groups_of(tmp_path / "groups.txt")
    assert set(groups["Engineering"]) == jids("alice", "bob", "carol")  # carol through the nested platform
    assert set(groups["platform"]) == jids("alice", "bob", "carol")  # the cycle closes both ways
    assert set(groups["sales"]) == jids("carol", "jmueller")  # uniqueMember with #'0101'B
    assert set(groups["ops"]) == jids("alice", "grace")  # posixGroup memberUid, case-insensitive
    assert set(groups["R&D, Europe"]) == jids("alice", "bob", "jsmith")  # odd member spellings
    assert set(groups["Développement"]) == jids("jmueller", "grace")
    assert set(groups["All Staff"]) == jids(*EVERYONE)
    assert groups["empty"] == {}
    names = groups["All Staff"]
    assert names["bob@example.com"] == "Bob Builder"  # givenName ~ ' ' ~ sn
    assert names["jmueller@example.com"] == "Jürgen Müller"
    assert names["jsmith@example.com"] == "John Smith"
    text = (tmp_path / "groups.txt").read_text()
    assert "[+All Staff]\n" in text and "[Engineering]\n" in text
    assert oct((tmp_path / "groups.txt").stat().st_mode & 0o777) == "0o640"
    assert report["counts"]["ldap_searches"] == 2
    assert report["outputs"][0]["written"] is True


def test_nesting_cycles_and_depth_are_reported_once(capsys, make_config, tmp_path):
    code, report = sync_json(capsys, make_config())
    assert code == 0
    cycles = findings(report, "nesting-cycle")
    assert len(cycles) == 1 and "cn=engineering" in cycles[0] and "cn=platform" in cycles[0]
    deep = findings(report, "nesting-too-deep")
    assert len(deep) == 1 and deep[0].startswith("cn=chain01,") and "cn=chain12," in deep[0]
    groups = groups_of(tmp_path / "groups.txt")
    assert "jmueller@example.com" not in groups["chain01"]  # 11 levels down: cut at max_depth 10
    assert set(groups["chain02"]) == jids("jmueller")
    (tmp_path / "groups.txt").unlink()  # each config below makes a different file from scratch
    code, report = sync_json(capsys, make_config(groups={"public": [], "max_depth": 11}))
    assert findings(report, "nesting-too-deep") == []
    assert set(groups_of(tmp_path / "groups.txt")["chain01"]) == jids("jmueller")
    (tmp_path / "groups.txt").unlink()
    code, report = sync_json(capsys, make_config(groups={"nested": False}))
    assert groups_of(tmp_path / "groups.txt")["Engineering"].keys() == jids("alice", "bob")


def test_member_dns_that_lead_nowhere_are_reported_not_fatal(capsys, make_config, tmp_path):
    code, report = sync_json(capsys, make_config())
    assert code == 0
    missing = findings(report, "member-not-found")
    assert any("uid=ghost,ou=people" in m for m in missing)
    assert any("memberUid 'ghostuid'" in m for m in missing)
    outside = findings(report, "member-outside-base")
    assert any("uid=heidi,ou=contractors" in m for m in outside)
    assert set(groups_of(tmp_path / "groups.txt")["ghosts"]) == jids("alice")


@pytest.mark.parametrize(("preset", "gone"), [("389ds", "dave"), ("freeipa", "dave"), ("ad", "erin"),
                                              ("shadow", "frank"), ("none", None)])
def test_disabled_accounts_by_preset(capsys, make_config, tmp_path, preset, gone):
    code, report = sync_json(capsys, make_config(users={"disabled": preset}))
    assert code == 0
    mix = set(groups_of(tmp_path / "groups.txt")["disabled-mix"])
    expected = jids("dave", "erin", "frank", "alice") - (jids(gone) if gone else set())
    assert mix == expected
    assert report["counts"]["users_left_out"].get("disabled", 0) == (1 if gone else 0)


def test_custom_disabled_filter_costs_one_more_search(capsys, make_config, tmp_path, slapd):
    mark = slapd.mark()
    code, report = sync_json(capsys, make_config(users={"disabled_filter": "(|(uid=bob)(uid=carol))"}))
    assert code == 0
    assert set(groups_of(tmp_path / "groups.txt")["Engineering"]) == jids("alice")
    assert report["counts"]["ldap_searches"] == 3
    assert slapd.search_count(mark) == 3


def test_membership_from_memberof(capsys, make_config, tmp_path):
    code, _ = sync_json(capsys, make_config(groups={"membership": "memberOf", "nested": False}))
    assert code == 0
    groups = groups_of(tmp_path / "groups.txt")
    assert set(groups["Engineering"]) == jids("alice", "bob")  # memberOf lists direct groupOfNames only
    assert set(groups["All Staff"]) == jids(*EVERYONE)


def test_freeipa_conventions_memberof_with_nesting_and_nsaccountlock(capsys, make_config, tmp_path):
    """389-ds/FreeIPA: membership from the users' memberOf, nested groups
    through the groups' own memberOf, locked accounts by nsAccountLock."""
    code, report = sync_json(capsys, make_config(users={"disabled": "freeipa"}, groups={"membership": "memberOf"}))
    assert code == 0
    groups = groups_of(tmp_path / "groups.txt")
    assert set(groups["Engineering"]) == jids("alice", "bob", "carol")  # carol through platform's memberOf
    assert set(groups["disabled-mix"]) == jids("erin", "frank", "alice")  # dave: nsAccountLock TRUE
    assert "dave@example.com" not in groups["All Staff"]
    assert findings(report, "nesting-cycle")  # engineering and platform hold each other here too


def test_templates_public_and_static_groups(capsys, make_config, tmp_path):
    config = make_config(
        mapping={"jid": "{{ mail | lower }}", "name": "{{ displayName }}", "name_fallback": "{{ uid }} (no name)",
                 "group_name": "{{ cn | upper }}"},
        groups={"public": ["SALES"], "include": ["SALES", "OPS", "ENGINEERING"]},
        static_groups=[{"name": "Helpdesk", "public": True, "members": {"Help@Example.com": "Help Desk"}},
                       {"name": "OPS", "members": {"oncall@example.com": "On call"}}],
    )
    code, _ = sync_json(capsys, config)
    assert code == 0
    parsed = read(tmp_path / "groups.txt")
    assert set(parsed.groups) - {"default"} == {"SALES", "OPS", "ENGINEERING", "Helpdesk"}
    assert set(parsed.public) == {"SALES", "Helpdesk"}
    assert parsed.groups["Helpdesk"] == {"help@example.com": "Help Desk"}
    assert parsed.groups["OPS"] == {"alice@example.com": "Alice Liddell", "grace@example.com": "Grace Hopper",
                                    "oncall@example.com": "On call"}
    assert parsed.groups["ENGINEERING"]["bob@example.com"] == "bob (no name)"


def test_two_groups_with_one_name_are_held_or_merged(capsys, make_config, tmp_path):
    config = make_config(mapping={"group_name": "{{ cn[:5] }}"}, groups={"include": ["chain"]})
    code, report = sync_json(capsys, config)
    assert code == 0  # a first run: the held name is in no file, so it stays out
    [held] = findings(report, "group-collision")
    assert held.startswith("chain: cn=chain01,ou=groups,dc=example,dc=com, cn=chain02,")
    assert "and cn=chain12,ou=groups,dc=example,dc=com all map to this shared group name" in held
    assert groups_of(tmp_path / "groups.txt") == {}
    config = make_config(mapping={"group_name": "{{ cn[:5] }}"},
                         groups={"include": ["chain"], "on_name_collision": "merge"})
    code, report = sync_json(capsys, config)
    assert code == 0
    assert len(findings(report, "group-merged")) == 11
    assert set(groups_of(tmp_path / "groups.txt")["chain"]) == jids("jmueller")


def test_bad_and_colliding_jids_are_reported_with_their_entries(capsys, make_config, tmp_path):
    config = make_config(mapping={"jid": "{% if uid == 'bob' %}bob@@example.com{% elif uid in ('alice', 'carol') "
                                        "%}same@example.com{% else %}{{ uid | lower }}@example.com{% endif %}"})
    code, report = sync_json(capsys, config)
    assert code == 0
    bad = findings(report, "bad-jid")
    assert bad == ["uid=bob,ou=people,dc=example,dc=com: mapping.jid gives 'bob@@example.com', which is not a "
                   "user JID Prosody accepts"]
    collision = findings(report, "jid-collision")
    assert len(collision) == 1 and "uid=alice," in collision[0] and "uid=carol," in collision[0]
    staff = set(groups_of(tmp_path / "groups.txt")["All Staff"])
    assert staff == jids("dave", "erin", "frank", "jmueller", "grace", "jsmith")


def test_several_outputs(capsys, make_config, tmp_path):
    outputs = [
        {"path": str(tmp_path / "a.txt"), "host": HOST, "include": ["Engineering", "All Staff"]},
        {"path": str(tmp_path / "b.txt"), "host": "other.example", "exclude": ["chain*", "All Staff"]},
    ]
    code, report = sync_json(capsys, make_config(outputs=outputs))
    assert code == 0
    assert set(groups_of(tmp_path / "a.txt")) == {"Engineering", "All Staff"}
    b = set(groups_of(tmp_path / "b.txt"))
    assert "Engineering" in b and "All Staff" not in b and not any(g.startswith("chain") for g in b)
    assert [o["written"] for o in report["outputs"]] == [True, True]


def test_unchanged_runs_do_not_touch_the_file_and_the_command_runs_only_on_change(capsys, make_config, tmp_path):
    marker = tmp_path / "reloaded"
    outputs = [{"path": str(tmp_path / "groups.txt"),
                "post_change_command": ["sh", "-c", f"echo reload >> {marker}"]}]
    config = make_config(outputs=outputs)
    assert run(capsys, "run", "-c", config)[0] == 0
    first = (tmp_path / "groups.txt").stat()
    assert marker.read_text() == "reload\n"
    code, out, _ = run(capsys, "run", "-c", config)
    assert code == 0 and "unchanged" in out
    second = (tmp_path / "groups.txt").stat()
    assert (first.st_mtime_ns, first.st_ino) == (second.st_mtime_ns, second.st_ino)
    assert marker.read_text() == "reload\n"  # not run again


def test_a_failing_post_change_command_sets_the_exit_status(capsys, make_config, tmp_path):
    outputs = [{"path": str(tmp_path / "groups.txt"), "post_change_command": ["sh", "-c", "echo no >&2; exit 3"]}]
    code, out, err = run(capsys, "run", "-c", make_config(outputs=outputs))
    assert code == 76
    assert "exited 3" in out + err
    assert (tmp_path / "groups.txt").exists()  # written; only the reload failed


def test_dry_run_and_diff_write_nothing(capsys, make_config, tmp_path):
    config = make_config()
    code, out, _ = run(capsys, "run", "-c", config, "--dry-run")
    assert code == 0 and "would change" in out
    assert not (tmp_path / "groups.txt").exists()
    code, out, _ = run(capsys, "diff", "-c", config)
    assert code == 1 and "+ group 'Engineering': 3 members" in out
    run(capsys, "run", "-c", config)
    code, out, _ = run(capsys, "diff", "-c", config)
    assert code == 0 and "no changes" in out


def test_the_default_size_limit_fails_the_sync_and_keeps_the_old_file(capsys, make_config, tmp_path):
    target = tmp_path / "groups.txt"
    target.write_bytes(b"[Old]\nkeep@example.com=Keep me\n")
    before = target.read_bytes()
    config = make_config(ldap={"bind_dn": LIMITED_DN}, password=LIMITED_PASSWORD, users={"base": BULK})
    code, _, err = run(capsys, "run", "-c", config)
    assert code == 69
    assert "size limit" in err and "limits" in err
    assert target.read_bytes() == before


def test_wrong_password_and_unreachable_servers(capsys, make_config, tmp_path, slapd):
    code, _, err = run(capsys, "run", "-c", make_config(password="wrong"))
    assert code == 69 and "invalid credentials" in err and "wrong" not in err
    dead = "ldap://127.0.0.1:1"
    code, _, err = run(capsys, "run", "-c", make_config(ldap={"servers": [dead], "connect_timeout": 2}))
    assert code == 69 and "directory unavailable" in err and "127.0.0.1:1" in err
    code, _ = sync_json(capsys, make_config(ldap={"servers": [dead, slapd.url], "connect_timeout": 2}))
    assert code == 0  # failover to the second server


def test_anonymous_bind(capsys, make_config, tmp_path):
    config = make_config()
    data = yaml.safe_load(config.read_text())
    for key in ("bind_dn", "bind_password_file"):
        data["ldap"].pop(key)
    config.write_text(yaml.safe_dump(data))
    code, report = sync_json(capsys, config)
    assert code == 0
    assert set(groups_of(tmp_path / "groups.txt")["Engineering"]) == jids("alice", "bob", "carol")


def test_the_number_of_searches_does_not_depend_on_the_data(capsys, make_config, slapd, tmp_path):
    for n, groups in enumerate(({"include": ["Engineering"]}, {"include": ["*"]})):
        mark = slapd.mark()
        outputs = [{"path": str(tmp_path / f"groups{n}.txt")}]  # each a first run: no limit applies
        code, report = sync_json(capsys, make_config(groups=groups, outputs=outputs))
        assert code == 0 and slapd.search_count(mark) == 2


def test_preview_and_explain_from_the_directory(capsys, make_config):
    config = make_config(users={"disabled": "389ds"})
    code, out, _ = run(capsys, "preview", "-c", config, "alice@example.com", "--json")
    assert code == 0
    items = {i["jid"]: i for i in json.loads(out)}
    assert items["carol@example.com"]["groups"] == ["All Staff", "Engineering", "platform"]
    assert "dave@example.com" not in items  # disabled
    code, out, _ = run(capsys, "explain", "-c", config, "carol@example.com")
    assert code == 0
    assert "carol@example.com comes from uid=carol,ou=people,dc=example,dc=com, shown as Carol Danvers" in out
    assert "in group 'Engineering'" in out
    assert "through cn=engineering,ou=groups,dc=example,dc=com -> cn=platform,ou=groups,dc=example,dc=com" in out
    code, out, _ = run(capsys, "explain", "-c", config, "dave@example.com")
    assert code == 1
    assert "uid=dave,ou=people,dc=example,dc=com is left out: disabled (nsAccountLock: TRUE)" in out


def test_check_connect(capsys, make_config, tmp_path):
    code, out, _ = run(capsys, "check", "-c", make_config(), "--connect")
    assert code == 0, out
    assert f"bind as {SYNC_DN} works; 9 users" in out
    code, out, _ = run(capsys, "check", "-c", make_config(mapping={"name": "{{ dispalyName }}"}), "--connect")
    assert code == 1 and "'dispalyName' is used by a template but no user has it" in out
    code, out, _ = run(capsys, "check", "-c", make_config(users={"base": BASE, "filter": "(uid=nobody)"}),
                       "--connect")
    assert code == 1 and "no entries under" in out


def test_progress_and_ldapsearch_logging(capsys, make_config):
    code, _, err = run(capsys, "-vv", "run", "-c", make_config(), "--dry-run")
    assert code == 0
    assert "ldapsearch -LLL -H " in err and f"-D {SYNC_DN} -W" in err and f"-b {PEOPLE}" in err
    assert SYNC_PASSWORD not in err


def test_ldap3_reads_the_groups_in_a_worker_process(capsys, make_config, tmp_path, slapd, backend):
    """With ldap3 the groups are read by a worker beside the users: same file,
    the worker's errors and log lines as if read here, one failover warning."""
    import threading

    assert threading.active_count() == 1, f"threads left running by earlier tests: {threading.enumerate()}"
    dead = "ldap://127.0.0.1:1"
    config = make_config(ldap={"servers": [dead, slapd.url], "connect_timeout": 2})
    code, _, err = run(capsys, "-vv", "run", "-c", config)
    assert code == 0, err
    assert ("the groups were read by a worker process" in err) == (backend == "ldap3")
    assert err.count(f"cannot use {dead}") == 1  # the worker uses the server this process found
    assert "-b ou=groups,dc=example,dc=com" in err  # the worker's ldapsearch line, logged here
    assert set(groups_of(tmp_path / "groups.txt")["Engineering"]) == jids("alice", "bob", "carol")
    code, _, err = run(capsys, "run", "-c", make_config(groups={"base": f"ou=nowhere,{BASE}"}))
    assert code == 69 and "search for groups: the base 'ou=nowhere,dc=example,dc=com' does not exist" in err
