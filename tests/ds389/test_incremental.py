"""Incremental runs on a real 389 Directory Server with the Content
Synchronization plugin (python-ldap): after random sequences of real
changes (tests/ldap/mutations.py: additions, deletions, renames, moves out
of and into the users' base, accounts disabled and enabled, members
changed, groups nested, created, renamed and deleted), the file a run
writes from its snapshot and the changes is the one a full read writes.

389-ds names entries in content sync by their nsUniqueId, not their
entryUUID, sends deletions (and moves out of the base) one by one, but
nothing for an entry changed so that the filter no longer matches it.

The sequence comes from a seed: LDAPSYNC_INCREMENTAL_SEED=N picks another.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import ldap3
import pytest
import yaml

from ldapsync import config as configlib
from ldapsync import snapshot as snapshotlib
from ldapsync.directory import changes, directory_for
from tests.ds389 import directory as data
from tests.ds389.test_end_to_end import write_config
from tests.ldap.mutations import Mutator
from tests.ldap.syncprov_directory import GROUPS, USERS_FILTER
from tests.ldap.test_incremental import file_diff, full_run, output, run_json

SEED = int(os.environ.get("LDAPSYNC_INCREMENTAL_SEED", "389"))
STEPS = int(os.environ.get("LDAPSYNC_DS389_STEPS", "40"))


@pytest.fixture
def python_ldap():
    pytest.importorskip("ldap", reason="python-ldap is not installed (pip install -e '.[test]')")
    return "python-ldap"


def walk_config(tmp_path: Path, server, name: str, *, state: bool, tracking: str = "auto") -> Path:
    """The random walk's directory as tests/ldap/test_incremental.py reads it."""
    path = write_config(tmp_path, server, "python-ldap", name, state=state, users_filter=USERS_FILTER,
                        disabled="none")
    config = yaml.safe_load(path.read_text())
    config["groups"] = {"base": GROUPS, "public": ["Team 01", "renamed*"]}
    config["ldap"]["change_tracking"] = tracking
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize(("tracking", "method"), [("auto", "syncrepl-389ds"), ("timestamp", "timestamp")])
def test_incremental_equals_full_after_random_changes(capsys, tmp_path, walk, python_ldap, monkeypatch, tracking,
                                                      method):
    """Content sync, and the timestamp method: 389-ds tells its time in
    cn=monitor and names entries by nsUniqueId (its suffix entry has no
    entryUUID). The walk's runs come seconds apart, so the timestamp
    method runs without its margin: an entry it failed to ask for would
    show at once."""
    monkeypatch.setattr("ldapsync.directory.changes.MARGIN", timedelta(0))
    rng = random.Random(SEED)
    mutator = Mutator(walk.admin_connection(), rng)
    incremental = walk_config(tmp_path, walk, "A", state=True, tracking=tracking)
    full = walk_config(tmp_path, walk, "B", state=False)

    first = run_json(capsys, "-c", incremental)
    assert first["read"]["kind"] == "full"
    assert first["read"]["method"] == method, first["read"]
    assert output(incremental).read_bytes() == full_run(capsys, full)

    history: list[str] = []
    kinds: dict[str, int] = {}
    for step in range(1, STEPS + 1):
        changes = [mutator.step() for _ in range(rng.randint(0, 3))]
        history.append(f"step {step}: " + ("; ".join(changes) or "no change"))
        where = f"seed {SEED}, after:\n" + "\n".join(history[-8:])
        read = run_json(capsys, "-c", incremental)["read"]
        expected = full_run(capsys, full)
        got = output(incremental).read_bytes()
        assert got == expected, f"incremental != full; {where}\n{file_diff(got, expected)}"
        assert read["kind"] in ("incremental", "unchanged"), f"read {read}; {where}"
        if not changes:
            assert read["kind"] == "unchanged", f"read {read}; {where}"
        kinds[read["kind"]] = kinds.get(read["kind"], 0) + 1
    print(f"seed {SEED}, {STEPS} steps: {kinds}")


# --- the site of test_end_to_end: what a 389-ds/FreeIPA site changes, one change a run ---

def _site_changes(admin: ldap3.Connection) -> list[tuple[str, Callable[[], object]]]:
    people, groups = data.PEOPLE, data.GROUPS
    return [
        ("lock user01 (nsAccountLock, an operational attribute)",
         lambda: admin.modify(data.site_user(1), {"nsAccountLock": [(ldap3.MODIFY_ADD, ["TRUE"])]})),
        ("rename user02 (refint rewrites staff)", lambda: admin.modify_dn(data.site_user(2), "uid=user02b")),
        ("move user03 out of the users' base",
         lambda: admin.modify_dn(data.site_user(3), "uid=user03", new_superior=f"ou=elsewhere,{data.BASE}")),
        ("delete user05 (refint rewrites staff and ops)", lambda: admin.delete(data.site_user(5))),
        ("ops: add user10, remove user06",
         lambda: admin.modify(f"cn=ops,{groups}", {"uniqueMember": [(ldap3.MODIFY_ADD, [data.site_user(10)]),
                                                                    (ldap3.MODIFY_DELETE, [data.site_user(6)])]})),
        ("unlock user07", lambda: admin.modify(data.site_user(7), {"nsAccountLock": [(ldap3.MODIFY_DELETE, [])]})),
        ("everyone no longer holds ops",
         lambda: admin.modify(f"cn=everyone,{groups}", {"member": [(ldap3.MODIFY_DELETE, [f"cn=ops,{groups}"])]})),
        ("a new user in staff", lambda: (
            admin.add(f"uid=newbie,{people}", ["inetOrgPerson"], {"uid": "newbie", "cn": "New Bie", "sn": "Bie"}),
            admin.modify(f"cn=staff,{groups}", {"member": [(ldap3.MODIFY_ADD, [f"uid=newbie,{people}"])]}))),
    ]


def test_each_change_of_a_site_reaches_the_file_incrementally(capsys, tmp_path, site, python_ldap):
    incremental = write_config(tmp_path, site, "python-ldap", "A", state=True)
    full = write_config(tmp_path, site, "python-ldap", "B")
    assert run_json(capsys, "-c", incremental)["read"]["method"] == "syncrepl-389ds"
    before = output(incremental).read_bytes()
    admin = site.admin_connection()
    for what, change in _site_changes(admin):
        change()
        read = run_json(capsys, "-c", incremental)["read"]
        expected = full_run(capsys, full)
        got = output(incremental).read_bytes()
        assert got == expected, f"incremental != full after: {what}\n{file_diff(got, expected)}"
        assert read["kind"] == "incremental" and read["changed"] > 0, f"{what}: {read}"
    assert output(incremental).read_bytes() != before
    # Nothing changed since: nothing read changed. (389-ds's refint left ops's value for user05,
    # which carries the #'...'B suffix: its DN stays watched for a while, so the run may still
    # read the groups naming it rather than end at the probe.)
    last = run_json(capsys, "-c", incremental)["read"]
    assert last["kind"] in ("unchanged", "incremental") and last["changed"] == 0, last


# --- faults: each reads everything, says why, and writes what a full read writes ---

def snapshot_of(config: Path) -> Path:
    state = Path(yaml.safe_load(config.read_text())["state"]["path"])
    return state.with_name(state.name + ".snapshot")


def edit_header(path: Path, edit) -> None:
    """Change the snapshot's JSON header in place (its entries keep their checksum)."""
    blob = path.read_bytes()
    end = blob.index(b"\n", len(snapshotlib._MAGIC))
    header = json.loads(blob[len(snapshotlib._MAGIC):end])
    edit(header)
    path.write_bytes(snapshotlib._MAGIC + json.dumps(header).encode() + blob[end:])


def test_a_cookie_from_the_future_means_a_full_read(capsys, tmp_path, site, python_ldap):
    """As after the server was restored from a backup older than the
    snapshot: its changelog has not reached the cookies' change number, and
    389-ds refuses them."""
    incremental = write_config(tmp_path, site, "python-ldap", "A", state=True)
    full = write_config(tmp_path, site, "python-ldap", "B")
    run_json(capsys, "-c", incremental)

    def ahead(header: dict) -> None:
        cookies = header["marker"]["cookies"]
        for name, cookie in cookies.items():
            rest, number = cookie.rsplit("#", 1)
            cookies[name] = f"{rest}#{int(number) + 1000}"

    edit_header(snapshot_of(incremental), ahead)
    site.admin_connection().delete(data.site_user(2))
    read = run_json(capsys, "-c", incremental)["read"]
    assert read["kind"] == "full" and "refused" in read["reason"], read
    assert output(incremental).read_bytes() == full_run(capsys, full)
    site.admin_connection().delete(data.site_user(3))
    assert run_json(capsys, "-c", incremental)["read"]["kind"] == "incremental"
    assert output(incremental).read_bytes() == full_run(capsys, full)


def test_with_ldap3_a_run_stops_at_the_change_number_when_nothing_changed(capsys, tmp_path, site):
    """ldap3 has no content-sync consumer: on 389-ds a run still stops at
    the retro changelog's lastchangenumber when nothing changed, and reads
    everything when something did."""
    incremental = write_config(tmp_path, site, "ldap3", "A", state=True)
    full = write_config(tmp_path, site, "ldap3", "B")
    first = run_json(capsys, "-c", incremental)["read"]
    assert first["kind"] == "full" and first["method"] == "changenumber", first
    assert run_json(capsys, "-c", incremental)["read"]["kind"] == "unchanged"
    site.admin_connection().delete(data.site_user(2))
    read = run_json(capsys, "-c", incremental)["read"]
    assert read["kind"] == "full" and read["method"] == "changenumber", read
    assert output(incremental).read_bytes() == full_run(capsys, full)


def test_a_tracker_keeping_entries_by_entryuuid_reads_everything_on_389ds(tmp_path, site, python_ldap):
    """What ldapsync did before it knew 389-ds (entries by entryUUID): the
    server names them by nsUniqueId, and sends them without their entryUUID,
    so a deletion would never match; the refresh must end in a full read."""
    config = configlib.load(str(write_config(tmp_path, site, "python-ldap", state=True)))
    users = changes.Query("users", data.PEOPLE, "(objectClass=person)", "sub", ("uid", "entryUUID", "nsUniqueId"))
    with directory_for(config.ldap, data.SYNC_PASSWORD) as conn:
        right = changes.tracker_for(conn, "auto", data.PEOPLE)
        assert isinstance(right, changes.ContentSync389)
        marker = right.start([users])
        site.admin_connection().modify(data.site_user(9), {"cn": [(ldap3.MODIFY_REPLACE, ["Renamed Nine"])]})
        answers, _ = right.changes([users], marker, right.probe())
        (nine,) = answers["users"].changed.values()
        assert answers["users"].changed == {right.entry_id(nine): nine} and nine.dn == data.site_user(9)
        wrong = changes.ContentSync(conn, right.context)
        with pytest.raises(changes.NotIncremental, match="entryUUID"):
            wrong.changes([users], marker, right.probe())


def test_nsuniqueid_and_the_sync_uuid_convert_both_ways():
    tracker = changes.ContentSync389(None, data.BASE)
    assert tracker.key("789dbc99-ee2511f1-bb769795-aad1892d") == "789dbc99-ee25-11f1-bb76-9795aad1892d"
    assert tracker.id_filter("789dbc99-ee25-11f1-bb76-9795aad1892d") == \
        "(nsUniqueId=789dbc99-ee2511f1-bb769795-aad1892d)"
    assert tracker.key("not-an-id") == "not-an-id"
