"""Incremental sync equals a full sync, byte for byte, on a real slapd with
syncprov, after random sequences of real directory changes; and the faults
in between leave the file as it was or fall back to a full read.

Config A keeps a state file (and so a snapshot) and reads only the changes;
config B always reads everything (run --full). Both write their own file from
the same directory, so any difference is the incremental path's doing.

The sequence of changes comes from a seed: LDAPSYNC_INCREMENTAL_SEED=N picks
another one; a failure names the seed and the steps that led to it.
"""

from __future__ import annotations

import difflib
import json
import os
import random
from pathlib import Path

import pytest
import yaml

from devtools import slapd as harness
from ldapsync import config as configlib
from ldapsync.service import recorded_run
from ldapsync.warm import Warm
from tests.ldap.conftest import HOST, run
from tests.ldap.directory import SYNC_DN, SYNC_PASSWORD
from tests.ldap.mutations import Mutator
from tests.ldap.syncprov_directory import GROUPS, PEOPLE, USERS_FILTER, user_dn
from tests.limits import NO_LIMITS

SEED = int(os.environ.get("LDAPSYNC_INCREMENTAL_SEED", "15"))
STEPS = int(os.environ.get("LDAPSYNC_INCREMENTAL_STEPS", "150"))
# The timestamp method walks fewer steps: it shares all but the asking with
# the others, and each of its runs lists every entry's id.
TIMESTAMP_STEPS = max(1, STEPS // 3)


@pytest.fixture(scope="module")
def loaded_backup(syncprov_slapd, tmp_path_factory) -> Path:
    """The syncprov directory as loaded, to put back before each test."""
    path = tmp_path_factory.mktemp("backup") / "loaded.ldif"
    syncprov_slapd.backup(path)
    return path


@pytest.fixture
def directory(syncprov_slapd, loaded_backup):
    """The syncprov slapd with its data as loaded, whatever earlier tests
    changed: a seed then always gives the same sequence of changes."""
    syncprov_slapd.restore(loaded_backup)
    return syncprov_slapd


def write_config(tmp_path: Path, server: harness.Slapd, backend: str, name: str, *, state: bool,
                 users_filter: str = USERS_FILTER, change_tracking: str = "auto") -> Path:
    secret = tmp_path / "bind.password"
    secret.write_text(SYNC_PASSWORD + "\n")
    secret.chmod(0o600)
    data = {
        "ldap": {"servers": [server.url], "bind_dn": SYNC_DN, "bind_password_file": str(secret),
                 "backend": backend, "page_size": 50, "change_tracking": change_tracking},
        "users": {"base": PEOPLE, "filter": users_filter},
        "groups": {"base": GROUPS, "public": ["Team 01", "renamed*"]},
        "mapping": {"jid": "{{ uid | lower }}@example.com", "name": "{{ displayName or cn }}",
                    "group_name": "{{ description or cn }}"},
        "outputs": [{"path": str(tmp_path / f"groups-{name}.txt"), "host": HOST, "backups": 0,
                     "safety": NO_LIMITS}],
    }
    if state:
        data["state"] = {"path": str(tmp_path / f"state-{name}" / "state.json")}
        (tmp_path / f"state-{name}").mkdir(mode=0o700)
    path = tmp_path / f"ldapsync-{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    path.chmod(0o600)
    return path


def output(config: Path) -> Path:
    return Path(yaml.safe_load(config.read_text())["outputs"][0]["path"])


def run_json(capsys, *argv) -> dict:
    code, out, err = run(capsys, "run", *argv, "--json")
    assert code == 0, f"ldapsync run {' '.join(map(str, argv))} exited {code}:\n{out}\n{err}"
    return json.loads(out)


def full_run(capsys, config: Path) -> bytes:
    code, out, err = run(capsys, "run", "--full", "-c", config)
    assert code == 0, f"ldapsync run --full exited {code}:\n{out}\n{err}"
    return output(config).read_bytes()


def file_diff(incremental: bytes, full: bytes) -> str:
    return "".join(difflib.unified_diff(full.decode().splitlines(True), incremental.decode().splitlines(True),
                                        "full read", "incremental read"))


def warm_run(config: Path, warm: Warm) -> dict:
    """A run as serve's poll process makes it, keeping ``warm`` between runs."""
    outcome = recorded_run(configlib.load(str(config)), warm=warm)
    assert outcome.exit_code == 0 and outcome.result is not None, outcome.error
    return outcome.result.as_json(dry_run=False)


def test_incremental_equals_full_after_random_changes(capsys, tmp_path, directory, backend):
    """After each of STEPS rounds of 1-3 random changes, A's incremental file is
    B's full file, byte for byte; and A read incrementally (python-ldap) or
    only probed before a full read (ldap3, which has no content-sync consumer).
    C runs as serve's poll process does, starting each run from what the last
    left in memory (ldapsync.warm): its file is B's too, and its findings and
    counts are A's."""
    walk(capsys, tmp_path, directory, backend, "auto", STEPS, incremental=backend == "python-ldap")


def test_timestamps_equal_full_after_random_changes(capsys, tmp_path, directory, backend, monkeypatch):
    """The same walk with change_tracking: timestamp on the same slapd (its
    monitor database tells the time): both backends read incrementally.  Runs
    follow the changes within the same second, without sleeping.  No margin
    at all: an entry the method fails to ask for then shows at once, where
    the margin would send it again for minutes (a margin only adds entries,
    which the reader compares; the other timestamp tests keep it)."""
    from ldapsync.directory import changes as changes_module

    monkeypatch.setattr(changes_module, "MARGIN", changes_module.timedelta(0))
    walk(capsys, tmp_path, directory, backend, "timestamp", TIMESTAMP_STEPS, incremental=True,
         unresolved_may_lag=True)


def walk(capsys, tmp_path: Path, directory: harness.Slapd, backend: str, change_tracking: str, steps: int, *,
         incremental: bool, unresolved_may_lag: bool = False) -> None:
    """``unresolved_may_lag``: the findings on member values that name no
    entry read may differ between A and C, and so may whether a run found
    a changed entry or none.  When such an entry is renamed, moved or
    deleted while outside every search, refint rewrites the groups naming
    it unmarked, and no method hears of it: a group keeps the old value
    until it is read again for another reason, which for timestamps depends
    on which second each run's marker fell in.  The files stay equal: such
    values name no one either way."""
    seed = SEED + (backend == "python-ldap")
    rng = random.Random(seed)
    mutator = Mutator(directory.admin_connection(), rng)
    configs = {name: write_config(tmp_path, directory, backend, name, state=name != "B",
                                  change_tracking=change_tracking) for name in "ABC"}
    incremental_config, full, warm_config, warm = configs["A"], configs["B"], configs["C"], Warm()

    first = run_json(capsys, "-c", incremental_config)
    assert first["read"]["kind"] == "full"
    assert output(incremental_config).read_bytes() == full_run(capsys, full)
    assert not warm_run(warm_config, warm)["read"]["warm"]

    history: list[str] = []
    kinds: dict[str, int] = {}
    for step in range(1, steps + 1):
        changes = [mutator.step() for _ in range(rng.randint(0, 3))]
        history.append(f"step {step}: " + ("; ".join(changes) or "no change"))
        where = f"seed {seed} (LDAPSYNC_INCREMENTAL_SEED={SEED}), backend {backend}, {change_tracking}, after:\n" \
            + "\n".join(history[-8:])

        cold = run_json(capsys, "-c", incremental_config)
        read = cold["read"]
        expected = full_run(capsys, full)
        got = output(incremental_config).read_bytes()
        assert got == expected, f"incremental != full; {where}\n{file_diff(got, expected)}"
        kept = warm_run(warm_config, warm)
        got = output(warm_config).read_bytes()
        assert got == expected, f"warm != full; {where}\n{file_diff(got, expected)}"
        assert kept["read"]["warm"], f"{kept['read']}; {where}"
        same_kind = kept["read"]["kind"] == read["kind"]
        if unresolved_may_lag:
            assert {kept["read"]["kind"], read["kind"]} <= {"incremental", "unchanged"}, f"{kept['read']}; {where}"
        else:
            assert same_kind, f"{kept['read']}; {where}"
        if same_kind:  # a run that finds nothing changed reports no findings
            assert _findings(kept, unresolved_may_lag) == _findings(cold, unresolved_may_lag), where
        assert _same_counts(kept["counts"], cold["counts"]), where
        kinds[read["kind"]] = kinds.get(read["kind"], 0) + 1
        if incremental:
            assert read["kind"] in ("incremental", "unchanged"), f"read {read}; {where}"
            if not changes:
                assert read["kind"] == "unchanged", f"read {read}; {where}"
        elif changes:
            assert read["kind"] == "full" and read["reason"], f"read {read}; {where}"
        else:
            assert read["kind"] == "unchanged", f"read {read}; {where}"
    print(f"seed {seed}, {change_tracking}, {steps} steps: {kinds}")


def _findings(result: dict, unresolved_may_lag: bool) -> list[dict]:
    lagging = ("member-not-found", "member-outside-base") if unresolved_may_lag else ()
    return [f for f in result["findings"] if f["kind"] not in lagging]


def _same_counts(a: dict, b: dict) -> bool:
    """The same figures, but for how the directory was read (time, searches)."""
    how = {"fetch_seconds", "ldap_searches", "ldap_range_searches"}
    return {k: v for k, v in a.items() if k not in how} == {k: v for k, v in b.items() if k not in how}


# --- faults: each leaves the file as it was, or reads everything and says why ---


def two_configs(tmp_path: Path, server: harness.Slapd, backend: str, **kwargs) -> tuple[Path, Path]:
    return (write_config(tmp_path, server, backend, "A", state=True, **kwargs),
            write_config(tmp_path, server, backend, "B", state=False, **kwargs))


def snapshot_of(config: Path) -> Path:
    state = Path(yaml.safe_load(config.read_text())["state"]["path"])
    return state.with_name(state.name + ".snapshot")


def assert_same_as_full(capsys, incremental: Path, full: Path, what: str) -> None:
    expected = full_run(capsys, full)
    got = output(incremental).read_bytes()
    assert got == expected, f"{what}:\n{file_diff(got, expected)}"


def test_a_damaged_snapshot_means_a_full_read(capsys, tmp_path, directory, backend):
    incremental, full = two_configs(tmp_path, directory, backend)
    run_json(capsys, "-c", incremental)
    snapshot = snapshot_of(incremental)
    data = bytearray(snapshot.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 4] = bytes(b ^ 0xFF for b in data[middle:middle + 4])
    snapshot.write_bytes(bytes(data))
    change = Mutator(directory.admin_connection(), random.Random(SEED)).step()

    read = run_json(capsys, "-c", incremental)["read"]
    assert read["kind"] == "full" and read["reason"], read
    assert_same_as_full(capsys, incremental, full, f"after a damaged snapshot and {change}")
    assert run_json(capsys, "-c", incremental)["read"]["kind"] == "unchanged"


def test_a_snapshot_of_another_config_means_a_full_read(capsys, tmp_path, directory, backend):
    """The disabled users come in when users.filter stops excluding them: the
    snapshot, read with the old filter, lacks them."""
    everyone = "(objectClass=inetOrgPerson)"
    incremental = write_config(tmp_path, directory, backend, "A", state=True)
    run_json(capsys, "-c", incremental)
    config = yaml.safe_load(incremental.read_text())
    config["users"]["filter"] = everyone
    incremental.write_text(yaml.safe_dump(config))
    (tmp_path / "B").mkdir()
    full = write_config(tmp_path / "B", directory, backend, "B", state=False, users_filter=everyone)

    read = run_json(capsys, "-c", incremental)["read"]
    assert read["kind"] == "full" and read["reason"], read
    assert_same_as_full(capsys, incremental, full, "after users.filter changed")


def test_a_directory_restored_from_a_backup_means_a_full_read(capsys, tmp_path, directory, backend):
    """Restored from last night's backup, the directory is behind the cookie and
    the contextCSN the snapshot holds: slapd refuses the cookie (unwilling to
    perform); the run must read everything, not keep the changes it lost."""
    incremental, full = two_configs(tmp_path, directory, backend)
    backup = tmp_path / "backup.ldif"
    directory.backup(backup)
    run_json(capsys, "-c", incremental)
    mutator = Mutator(directory.admin_connection(), random.Random(SEED))
    changes = [mutator.step() for _ in range(5)]
    run_json(capsys, "-c", incremental)
    directory.restore(backup)

    read = run_json(capsys, "-c", incremental)["read"]
    assert read["kind"] == "full" and read["reason"], read
    assert_same_as_full(capsys, incremental, full, f"after a restore that undid {changes}")


def test_deletions_before_a_restart_are_not_lost(capsys, tmp_path, directory, backend):
    """slapd keeps its session log in memory: after a restart it answers an
    older cookie with a present phase (every entry still there) instead of
    the deletions; users deleted before the restart must still go."""
    incremental, full = two_configs(tmp_path, directory, backend)
    run_json(capsys, "-c", incremental)
    mutator = Mutator(directory.admin_connection(), random.Random(SEED))
    changes = [mutator.delete_user() for _ in range(3)] + [mutator.delete_group(), mutator.toggle_disabled()]
    directory.restart()

    read = run_json(capsys, "-c", incremental)["read"]
    assert read["kind"] in (("incremental", "full") if backend == "python-ldap" else ("full",)), read
    assert_same_as_full(capsys, incremental, full, f"after a restart following {changes}")


@pytest.mark.parametrize("change_tracking", ["auto", "timestamp"])
@pytest.mark.parametrize("move", [False, True], ids=["rename", "move"])
def test_a_renamed_member_stays_in_its_groups(capsys, tmp_path, directory, backend, move, change_tracking):
    """refint rewrites the member values naming a renamed (or moved) user, but
    gives the groups no new entryCSN and no new modifyTimestamp: syncprov, or
    a search by modifyTimestamp, sends the user, not the groups."""
    incremental, full = two_configs(tmp_path, directory, backend, change_tracking=change_tracking)
    run_json(capsys, "-c", incremental)
    conn = directory.admin_connection()
    old = user_dn(1)
    if move:
        conn.modify_dn(old, old.split(",", 1)[0], new_superior=PEOPLE)
        new = f"{old.split(',', 1)[0]},{PEOPLE}"
    else:
        conn.modify_dn(old, "uid=user001-renamed")
        new = f"uid=user001-renamed,{old.split(',', 1)[1]}"
    Mutator(conn, random.Random(SEED)).wait_for_refint(old)
    conn.search(GROUPS, f"(member={new})", attributes=["entryCSN"])
    assert conn.entries, f"no group names {new}: the test shows nothing"

    run_json(capsys, "-c", incremental)
    assert_same_as_full(capsys, incremental, full, f"after {old} became {new}")


@pytest.mark.parametrize("backend", ["python-ldap"])
def test_slapd_gone_mid_increment_leaves_file_and_snapshot(capsys, tmp_path, directory, backend, monkeypatch):
    """slapd stops after the change probe, before the changes are read: the run
    fails, the file and the snapshot stay as they were, and the next run
    (slapd back) catches up."""
    pytest.importorskip("ldap")
    from ldapsync.directory import changes as changes_module

    incremental, full = two_configs(tmp_path, directory, backend)
    run_json(capsys, "-c", incremental)
    before_file, before_snapshot = output(incremental).read_bytes(), snapshot_of(incremental).read_bytes()
    mutator = Mutator(directory.admin_connection(), random.Random(SEED))
    changes = [mutator.step() for _ in range(3)]
    original = changes_module.ContentSync.changes

    def stop_then_ask(self, *args, **kwargs):
        directory.stop()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(changes_module.ContentSync, "changes", stop_then_ask)
    code, out, err = run(capsys, "run", "-c", incremental, "--json")
    assert code != 0, out
    assert output(incremental).read_bytes() == before_file
    assert snapshot_of(incremental).read_bytes() == before_snapshot

    monkeypatch.setattr(changes_module.ContentSync, "changes", original)
    directory.start()
    read = run_json(capsys, "-c", incremental)["read"]
    assert read["kind"] == "incremental", read
    assert_same_as_full(capsys, incremental, full, f"after slapd came back, following {changes}")


def test_a_snapshot_that_cannot_be_saved_costs_a_full_read_never_the_file(capsys, tmp_path, directory, backend):
    """Saving the snapshot fails (here: a directory stands at its path, as a
    full disk would fail the write): the run still writes the groups file and
    exits 0 with a warning; the next run reads everything."""
    incremental, full = two_configs(tmp_path, directory, backend)
    snapshot_of(incremental).mkdir()
    code, out, err = run(capsys, "run", "-c", incremental)
    assert code == 0, err
    assert "cannot save the snapshot" in err
    assert_same_as_full(capsys, incremental, full, "after a snapshot that could not be saved")
    change = Mutator(directory.admin_connection(), random.Random(SEED)).step()
    read = run_json(capsys, "-c", incremental)["read"]
    assert read["kind"] == "full" and "not a regular file" in read["reason"], read
    assert_same_as_full(capsys, incremental, full, f"after {change}")


def test_a_snapshot_others_could_change_is_not_used(capsys, tmp_path, directory, backend):
    incremental, full = two_configs(tmp_path, directory, backend)
    run_json(capsys, "-c", incremental)
    snapshot_of(incremental).chmod(0o660)
    read = run_json(capsys, "-c", incremental)["read"]
    assert read["kind"] == "full" and "can be changed by other users" in read["reason"], read
    assert oct(snapshot_of(incremental).stat().st_mode & 0o777) == "0o600"  # replaced by the full read's


def test_change_tracking_off_and_dry_runs_keep_no_snapshot(capsys, tmp_path, directory, backend):
    incremental = write_config(tmp_path, directory, backend, "A", state=True)
    code, out, err = run(capsys, "run", "--dry-run", "-c", incremental)
    assert code == 0, err
    assert not snapshot_of(incremental).exists()
    run_json(capsys, "-c", incremental)
    assert snapshot_of(incremental).exists()
    config = yaml.safe_load(incremental.read_text())
    config["ldap"]["change_tracking"] = "off"
    incremental.write_text(yaml.safe_dump(config))
    for _ in range(2):
        read = run_json(capsys, "-c", incremental)["read"]
        assert read["kind"] == "full" and read["method"] == "off", read
        assert not snapshot_of(incremental).exists()


def test_check_connect_says_how_runs_will_read(capsys, tmp_path, directory, slapd, backend):
    incremental = write_config(tmp_path, directory, backend, "A", state=True)
    code, out, err = run(capsys, "check", "-c", incremental, "--connect")
    assert code == 0, out + err
    method = "syncrepl" if backend == "python-ldap" else "contextcsn"
    assert f"change tracking: {method} (the contextCSN of dc=example,dc=com)" in out
    (tmp_path / "plain").mkdir()
    plain = write_config(tmp_path / "plain", slapd, backend, "P", state=True)
    code, out, err = run(capsys, "check", "-c", plain, "--connect")
    assert "change tracking: none, every run reads everything (the server offers no change marker" in out, out


@pytest.mark.parametrize("backend", ["python-ldap"])
def test_a_change_to_what_ldapsync_does_not_read_writes_nothing(capsys, tmp_path, directory, backend):
    """A password change moves the contextCSN and the server sends the user
    again, as it was: the run maps nothing and keeps the new cookie, so the
    next run is unchanged at the probe."""
    incremental, full = two_configs(tmp_path, directory, backend)
    run_json(capsys, "-c", incremental)
    before = snapshot_of(incremental).read_bytes()
    import ldap3

    conn = directory.admin_connection()
    conn.modify(user_dn(2), {"userPassword": [(ldap3.MODIFY_REPLACE, ["a new secret"])]})
    read = run_json(capsys, "-c", incremental)["read"]
    assert read["kind"] == "unchanged" and read["changed"] == 0 and read["entries"] > 1, read
    assert snapshot_of(incremental).read_bytes() != before  # the new cookie
    again = run_json(capsys, "-c", incremental)["read"]
    assert again["kind"] == "unchanged" and again["entries"] == 1, again
    assert_same_as_full(capsys, incremental, full, "after a password change")


# --- the timestamp method: what only it can get wrong ---


def edit_marker(config: Path, **probe) -> None:
    """Change the snapshot's marker in place, as another run or server would
    have left it (the header is not checksummed; the entries are)."""
    path = snapshot_of(config)
    blob = path.read_bytes()
    magic_end = blob.index(b"\n") + 1
    head_end = blob.index(b"\n", magic_end)
    header = json.loads(blob[magic_end:head_end])
    header["marker"]["probe"].update(probe)
    head = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    path.write_bytes(blob[:magic_end] + head + blob[head_end:])


def test_timestamps_see_deleted_renamed_and_moved_users(capsys, tmp_path, directory, backend):
    """Deletions and users gone out of the base leave no modifyTimestamp: the
    list of ids tells them; a rename or a move comes back under its id."""
    incremental, full = two_configs(tmp_path, directory, backend, change_tracking="timestamp")
    assert run_json(capsys, "-c", incremental)["read"]["method"] == "timestamp"
    mutator = Mutator(directory.admin_connection(), random.Random(SEED))
    changes = [mutator.delete_user(), mutator.delete_user(), mutator.rename_user(), mutator.move_user(),
               mutator.move_user(), mutator.delete_group()]
    read = run_json(capsys, "-c", incremental)["read"]
    assert read["kind"] == "incremental" and read["changed"] >= 4, f"{read} after {changes}"
    assert_same_as_full(capsys, incremental, full, f"after {changes}")


def test_timestamps_a_marker_ahead_of_the_server_clock_means_a_full_read(capsys, tmp_path, directory, backend):
    """A server clock set back (or a marker from a server whose clock ran
    ahead): writes made since may carry times before the marker."""
    incremental, full = two_configs(tmp_path, directory, backend, change_tracking="timestamp")
    run_json(capsys, "-c", incremental)
    edit_marker(incremental, time="20991231235959Z")
    change = Mutator(directory.admin_connection(), random.Random(SEED)).change_display_name()
    read = run_json(capsys, "-c", incremental)["read"]
    assert read["kind"] == "full" and "went back" in read["reason"], read
    assert_same_as_full(capsys, incremental, full, f"after {change}")
    assert run_json(capsys, "-c", incremental)["read"]["kind"] == "unchanged"


def test_timestamps_another_id_attribute_means_a_full_read(capsys, tmp_path, directory, backend, monkeypatch):
    """A server that names its entries by another attribute than the snapshot
    does (389-ds once its entryUUID plugin is on): entries cannot be matched
    with the snapshot's, so everything is read again and kept by the new one.
    Here the snapshot is kept by entryDN, which OpenLDAP's entries carry too."""
    from ldapsync.directory import changes as changes_module

    incremental, full = two_configs(tmp_path, directory, backend, change_tracking="timestamp")
    monkeypatch.setattr(changes_module, "ID_ATTRIBUTES", ("entryDN",))
    run_json(capsys, "-c", incremental)
    monkeypatch.undo()
    change = Mutator(directory.admin_connection(), random.Random(SEED)).change_display_name()
    read = run_json(capsys, "-c", incremental)["read"]
    assert read["kind"] == "full" and "kept by entryDN" in read["reason"] and "now has entryUUID" in read["reason"], \
        read
    assert_same_as_full(capsys, incremental, full, f"after a change of id attribute and {change}")
    assert run_json(capsys, "-c", incremental)["read"]["kind"] == "unchanged"


def test_auto_does_not_go_on_from_a_timestamp_snapshot(capsys, tmp_path, directory, backend):
    incremental = write_config(tmp_path, directory, backend, "A", state=True, change_tracking="timestamp")
    run_json(capsys, "-c", incremental)
    config = yaml.safe_load(incremental.read_text())
    config["ldap"]["change_tracking"] = "auto"
    incremental.write_text(yaml.safe_dump(config))
    read = run_json(capsys, "-c", incremental)["read"]
    assert read["kind"] == "full" and "snapshot was made with timestamp" in read["reason"], read
    assert read["method"] in ("syncrepl", "contextcsn"), read


def test_timestamps_need_the_server_clock(capsys, tmp_path, slapd, directory, backend):
    """Without a clock ldapsync can read (the shared slapd has no monitor
    database), there are no timestamp runs: this machine's clock cannot tell
    when the server's is behind it."""
    plain = write_config(tmp_path, slapd, backend, "P", state=True, change_tracking="timestamp")
    read = run_json(capsys, "-c", plain)["read"]
    assert read["kind"] == "full" and "the server's time cannot be read" in read["reason"], read
    assert not snapshot_of(plain).exists()
    code, out, err = run(capsys, "check", "-c", plain, "--connect")
    assert "change tracking: none, every run reads everything (ldap.change_tracking is timestamp, but the " \
           "server's time cannot be read" in out, out
    (tmp_path / "monitor").mkdir()
    with_clock = write_config(tmp_path / "monitor", directory, backend, "M", state=True, change_tracking="timestamp")
    code, out, err = run(capsys, "check", "-c", with_clock, "--connect")
    assert code == 0, out + err
    assert ("change tracking: timestamp (modifyTimestamp by the server's clock, monitorTimestamp of "
            "cn=Current,cn=Time,cn=Monitor; entries by entryUUID); runs read only the changes") in out, out
