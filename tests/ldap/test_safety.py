"""Never lose or corrupt a roster: safety limits, backups and rollback, and
every way the directory can fail, injected against the real slapd."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import threading
from pathlib import Path

import pytest
import yaml

from ldapsync.config import ConfigError, parse
from ldapsync.groupsfile import read
from tests.ldap.conftest import run
from tests.ldap.directory import BULK, SYNC_PASSWORD

OLD = b"[Old]\nkeep@example.com=Keep me\n"
# An unrelated old file replaced by the whole directory: past every limit
NO_LIMITS = {"max_groups_removed_percent": None, "max_members_removed_percent": None,
             "max_public_groups_added": None, "max_public_contacts_gained_percent": None}


def write_old(tmp_path: Path) -> Path:
    target = tmp_path / "groups.txt"
    target.write_bytes(OLD)
    return target


def state(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "state.json").read_text())


@pytest.fixture
def config_with_state(make_config, tmp_path):
    def make(**kwargs) -> Path:
        path = make_config(**kwargs)
        data = yaml.safe_load(path.read_text())
        data["state"] = {"path": str(tmp_path / "state.json")}
        data["metrics"] = {"textfile": str(tmp_path / "ldapsync.prom")}
        path.write_text(yaml.safe_dump(data, allow_unicode=True))
        return path

    return make


# --- safety limits ---------------------------------------------------------------------


def test_a_filter_that_drops_40_percent_of_members_is_refused_and_force_passes(capsys, config_with_state,
                                                                              tmp_path):
    target = tmp_path / "groups.txt"
    assert run(capsys, "run", "-c", config_with_state())[0] == 0
    before = target.read_bytes()
    # a narrower user filter: everyone but alice, bob and carol drops out of every group
    narrow = config_with_state(users={"filter": "(|(uid=alice)(uid=bob)(uid=carol))"})
    code, out, err = run(capsys, "run", "-c", narrow)
    assert code == 77
    assert "refused to write, a safety limit was exceeded (nothing written)" in err
    assert "member lines removed" in err and "the limit is 20% (safety.max_members_removed_percent)" in err
    assert target.read_bytes() == before
    assert state(tmp_path)["result"] == "refused" and state(tmp_path)["refusals_total"] == 1
    assert "ldapsync_last_run_refused 1.0" in (tmp_path / "ldapsync.prom").read_text()
    code, out, err = run(capsys, "run", "-c", narrow, "--dry-run")
    assert code == 77  # a dry run says so too
    assert run(capsys, "run", "-c", narrow, "--force")[0] == 64  # --force needs a reason
    code, out, err = run(capsys, "-v", "run", "-c", narrow, "--force", "--reason", "contractors moved out")
    assert code == 0
    assert "going past the safety limits (--force): contractors moved out" in err
    assert target.read_bytes() != before
    assert state(tmp_path)["result"] == "success"


def test_the_empty_result_guard(capsys, make_config, tmp_path):
    target = write_old(tmp_path)
    code, _, err = run(capsys, "run", "-c", make_config(groups={"filter": "(cn=no-such-group)"}))
    assert code == 77 and "the directory gives no groups at all; the current file has 1" in err
    assert target.read_bytes() == OLD
    code, _, err = run(capsys, "run", "-c", make_config(users={"filter": "(uid=nobody)"},
                                                       groups={"include": ["Engineering"]}))
    assert code == 77 and "the directory gives no members at all" in err
    assert target.read_bytes() == OLD


def test_the_first_run_on_a_missing_file_is_allowed(capsys, make_config, tmp_path):
    assert run(capsys, "run", "-c", make_config(groups={"include": ["Engineering"]}))[0] == 0
    assert (tmp_path / "groups.txt").exists()


def test_absolute_limits(capsys, make_config, tmp_path):
    outputs = [{"path": str(tmp_path / "groups.txt"),
                "safety": {"max_groups_removed": 0, "max_members_removed_percent": None,
                           "max_groups_removed_percent": None}}]
    assert run(capsys, "run", "-c", make_config(outputs=outputs))[0] == 0
    code, _, err = run(capsys, "run", "-c", make_config(outputs=outputs, groups={"exclude": ["chain*"]}))
    assert code == 77 and "12 groups removed; the limit is 0 (safety.max_groups_removed)" in err
    outputs[0]["safety"] = {"max_contacts_lost": 10, "max_groups_removed_percent": None,
                            "max_members_removed_percent": None}
    code, _, err = run(capsys, "run", "-c", make_config(outputs=outputs, groups={"exclude": ["All Staff"]}))
    assert code == 77 and "contacts would disappear from users' rosters; the limit is 10" in err


# --- safety that cannot be bypassed from inside the directory ---------------------------

# someone creates a group named like sales (here: ghosts, given that name), and alice is renamed
CLAIMED = {"group_name": "{{ 'sales' if cn == 'ghosts' else (description or cn) }}",
           "name": "{{ 'Alice L.' if uid == 'alice' else (displayName or (givenName ~ ' ' ~ sn)) }}"}
GHOSTS, SALES = "cn=ghosts,ou=groups,dc=example,dc=com", "cn=sales,ou=groups,dc=example,dc=com"


def section(data: bytes, name: str) -> bytes:
    """A group's header and member lines, as the file has them."""
    start = data.index(f"[{name}]\n".encode())
    end = data.find(b"\n[", start)
    return data[start:] if end < 0 else data[start:end + 1]


def test_a_group_named_like_another_is_held_and_the_rest_syncs(capsys, config_with_state, tmp_path):
    target = tmp_path / "groups.txt"
    assert run(capsys, "run", "-c", config_with_state(groups={"exclude": ["ghosts"]}))[0] == 0
    before = target.read_bytes()
    claimed = config_with_state(mapping=CLAIMED)
    # diff and preview show what the run does
    code, out, err = run(capsys, "diff", "-c", claimed, "--json")
    assert code == 1, err
    [change] = json.loads(out)
    assert {g["group"] for g in change["groups"]} == {"All Staff", "Engineering", "R&D, Europe", "disabled-mix",
                                                      "ops", "platform"}  # alice renamed; sales as it is
    code, out, _ = run(capsys, "preview", "-c", claimed, "carol@example.com", "--json")
    assert code == 0 and "sales" in {g for item in json.loads(out) for g in item["groups"]}
    code, out, _ = run(capsys, "check", "-c", claimed, "--connect")
    assert code == 1 and f"problem: groups: sales: {GHOSTS} and {SALES} all map to this shared group name" in out
    # the run (its groups from the cache of the last file): the held group as it was, the rest synced
    code, out, err = run(capsys, "run", "-c", claimed, "--json")
    assert code == 0, err
    assert f"sales: {GHOSTS} and {SALES} all map to this shared group name; the name is held as it is in the " \
           "current file" in err
    assert [f["kind"] for f in json.loads(out)["findings"]].count("group-collision") == 1
    after = target.read_bytes()
    assert section(after, "sales") == section(before, "sales") == (
        b"[sales]\ncarol@example.com=Carol Danvers\njmueller@example.com=J\xc3\xbcrgen M\xc3\xbcller\n")
    assert b"alice@example.com=Alice L.\n" in after and b"Alice Liddell" not in after
    assert json.loads(out)["outputs"][0]["diff"]["groups"] == change["groups"]
    # from the file itself (no cache): the same, and nothing more to do
    target.with_name("state.json").unlink()
    for cache in tmp_path.glob("state.json.*.model"):
        cache.unlink()
    code, out, _ = run(capsys, "run", "-c", claimed, "--json")
    assert code == 0 and not json.loads(out)["outputs"][0]["changed"]
    assert target.read_bytes() == after


def test_a_name_held_on_the_first_run_stays_out(capsys, make_config, tmp_path):
    code, _, err = run(capsys, "run", "-c", make_config(mapping=CLAIMED))
    assert code == 0 and f"{GHOSTS} and {SALES} all map to this shared group name" in err
    groups = read(tmp_path / "groups.txt").groups
    assert "sales" not in groups and "ghosts" not in groups and "Engineering" in groups


def test_a_group_renamed_into_a_public_pattern_needs_force(capsys, make_config, tmp_path):
    target = tmp_path / "groups.txt"
    public = {"public": ["All *"]}
    assert run(capsys, "run", "-c", make_config(groups=public))[0] == 0
    before = target.read_bytes()
    renamed = make_config(groups=public,
                          mapping={"group_name": "{{ 'All Sales' if cn == 'sales' else (description or cn) }}"})
    code, _, err = run(capsys, "run", "-c", renamed)
    assert code == 77, err
    assert "1 group would become visible to every user ('All Sales'); the limit is 0 " \
           "(safety.max_public_groups_added)" in err
    assert target.read_bytes() == before
    code, _, err = run(capsys, "run", "-c", renamed, "--force", "--reason", "sales is for everyone now")
    assert code == 0, err
    assert read(target).public == ["All Sales", "All Staff"]
    assert run(capsys, "run", "-c", renamed)[0] == 0  # public already: nothing new


def test_limits_on_contacts_gained(capsys, make_config, tmp_path):
    target = tmp_path / "groups.txt"
    few = {"filter": "(&(objectClass=inetOrgPerson)(!(uid=alice))(!(uid=bob)))"}
    assert run(capsys, "run", "-c", make_config(users=few))[0] == 0
    before = target.read_bytes()
    assert len(read(target).groups["All Staff"]) == 7
    # alice and bob come back: every user's public groups give 2 contacts more than the 7 they gave
    code, _, err = run(capsys, "run", "--dry-run", "-c", make_config())
    assert code == 77
    assert "every user would gain 2 contacts through the public groups, which gave 7 before (29%); the limit " \
           "is 20% (safety.max_public_contacts_gained_percent)" in err
    outputs = [{"path": str(target), "safety": {"max_public_contacts_gained": 1,
                                                "max_public_contacts_gained_percent": None}}]
    code, _, err = run(capsys, "run", "--dry-run", "-c", make_config(outputs=outputs))
    assert code == 77 and "the limit is 1 (safety.max_public_contacts_gained)" in err
    outputs[0]["safety"] = {"max_public_contacts_gained_percent": 30, "max_contacts_gained": 5}
    code, out, err = run(capsys, "run", "--dry-run", "--json", "-c", make_config(outputs=outputs))
    assert code == 77
    assert "contacts would be added to users' rosters; the limit is 5 (safety.max_contacts_gained)" in err
    assert "max_public_contacts_gained_percent" not in err
    assert target.read_bytes() == before
    outputs[0]["safety"] = {"max_public_contacts_gained_percent": 30}
    assert run(capsys, "run", "-c", make_config(outputs=outputs))[0] == 0
    assert len(read(target).groups["All Staff"]) == 9


def test_static_groups_do_not_make_an_empty_answer_look_full(capsys, make_config, tmp_path):
    target = tmp_path / "groups.txt"
    static = [{"name": "Helpdesk", "members": {"help@example.com": "Help Desk"}},
              {"name": "Engineering", "members": {"oncall@example.com": "On call"}}]
    outputs = [{"path": str(target), "safety": {"max_groups_removed_percent": None,
                                                "max_members_removed_percent": None}}]
    assert run(capsys, "run", "-c", make_config(static_groups=static, outputs=outputs))[0] == 0
    before = target.read_bytes()
    code, _, err = run(capsys, "run", "-c", make_config(static_groups=static, outputs=outputs,
                                                        groups={"filter": "(cn=no-such-group)"}))
    assert code == 77 and "the directory gives no groups at all; the current file has 21 besides static_groups " \
                          "(safety.refuse_empty)" in err
    assert target.read_bytes() == before
    # a static group merged with a directory group counts by its directory members only
    code, _, err = run(capsys, "run", "-c", make_config(static_groups=static, outputs=outputs,
                                                        users={"filter": "(uid=nobody)"}))
    assert code == 77 and "the directory gives no members at all" in err
    assert target.read_bytes() == before
    # an output of static groups only is no empty answer
    only = [{"path": str(tmp_path / "helpdesk.txt"), "include": ["Helpdesk"]}]
    for _ in range(2):
        assert run(capsys, "run", "-c", make_config(static_groups=static, outputs=only))[0] == 0


# --- backups and rollback --------------------------------------------------------------


def test_backups_are_kept_and_rollback_restores_one(capsys, make_config, tmp_path):
    target = write_old(tmp_path)
    outputs = [{"path": str(target), "backups": 2, "mode": "0600", "safety": NO_LIMITS,
                "post_change_command": ["sh", "-c", f"echo reloaded >> {tmp_path / 'reloads'}"]}]
    assert run(capsys, "run", "-c", make_config(outputs=outputs))[0] == 0
    full = target.read_bytes()
    assert run(capsys, "run", "-c", make_config(outputs=outputs, groups={"include": ["Engineering"]}))[0] == 0
    assert run(capsys, "run", "-c", make_config(outputs=outputs, groups={"include": ["sales"]}))[0] == 0
    backups = sorted(tmp_path.glob("groups.txt.*.bak"))
    assert len(backups) == 2  # only the newest two are kept
    assert all(b.stat().st_mode & 0o777 == 0o600 for b in backups)
    code, out, _ = run(capsys, "rollback", "-c", make_config(outputs=outputs), "--list")
    assert code == 0 and out.splitlines()[0].split() == ["VERSION", "TAKEN", "BYTES", "FILE"]
    code, out, _ = run(capsys, "rollback", "-c", make_config(outputs=outputs), "2")
    assert code == 0 and "restored backup 2" in out
    assert target.read_bytes() == full
    assert (tmp_path / "reloads").read_text().count("reloaded") == 4  # three runs and the rollback
    code, _, err = run(capsys, "rollback", "-c", make_config(outputs=outputs), "9")
    assert code == 64 and "no backup number 9" in err


# --- the cache of the written groups ----------------------------------------------------


def test_the_cache_of_the_written_groups_answers_as_reading_the_file_would(capsys, config_with_state, make_config,
                                                                           tmp_path):
    target = tmp_path / "groups.txt"
    assert run(capsys, "run", "-c", config_with_state())[0] == 0
    caches = list(tmp_path.glob("state.json.groups.txt.*.model"))
    assert len(caches) == 1
    written = target.read_bytes()
    code, _, err = run(capsys, "-vv", "run", "-c", config_with_state())
    assert code == 0 and "the same groups as the last file written" in err
    # a change worked out from the cache, and from reading the file (no state file: no cache)
    plain = make_config(groups={"exclude": ["sales"]})
    code, out, err = run(capsys, "run", "--dry-run", "--json", "-c", plain)
    assert code == 0, err
    without = json.loads(out)["outputs"][0]
    code, out, err = run(capsys, "-vv", "run", "--dry-run", "--json", "-c",
                         config_with_state(groups={"exclude": ["sales"]}))
    cached = json.loads(out)["outputs"][0]
    assert code == 0 and "not what ldapsync wrote last" not in err
    assert cached["diff"]["totals"]["groups_removed"] > 0 and cached["diff"] == without["diff"]
    assert target.read_bytes() == written and caches[0].exists()
    # edited by hand: the file is read, and the run puts it back
    target.write_bytes(written + b"[Extra]\nx@example.com=X\n")
    code, out, err = run(capsys, "-v", "run", "--json", "-c", config_with_state())
    assert code == 0 and "not what ldapsync wrote last" in err
    assert json.loads(out)["outputs"][0]["diff"]["totals"]["groups_removed"] == 1
    assert target.read_bytes() == written
    # damaged: said, and the file is read instead
    blob = caches[0].read_bytes()
    caches[0].write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
    code, out, err = run(capsys, "run", "--json", "-c", config_with_state())
    assert code == 0 and "is damaged" in err and not json.loads(out)["outputs"][0]["changed"]


# --- the directory failing in every way ------------------------------------------------


class CuttingProxy:
    """A TCP proxy to slapd that drops both connections after passing
    ``limit`` bytes from the server: a connection reset in the middle of a
    paged search, at a byte count the test chooses."""

    def __init__(self, target_port: int, limit: int) -> None:
        self.target_port, self.limit = target_port, limit
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pipe, args=(client, server, None), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, self.limit), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket, limit: int | None) -> None:
        passed = 0
        try:
            while True:
                data = src.recv(4096)
                if not data:
                    break
                if limit is not None and passed + len(data) > limit:
                    dst.sendall(data[: limit - passed])
                    break
                passed += len(data)
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        """Stop accepting (shutdown wakes the blocked accept; close alone
        does not) and wait for the thread: later tests count on no threads."""
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.thread.join(timeout=10)


def test_a_connection_dropped_in_the_middle_of_a_paged_search(capsys, make_config, tmp_path, slapd):
    target = write_old(tmp_path)
    proxy = CuttingProxy(slapd.port, limit=20_000)  # the bind passes; the 600 bulk users do not
    try:
        config = make_config(ldap={"servers": [f"ldap://127.0.0.1:{proxy.port}"], "page_size": 50,
                                   "timeout": 5}, users={"base": BULK})
        code, _, err = run(capsys, "run", "-c", config)
    finally:
        proxy.close()
    assert code == 69
    assert "search for users under 'ou=bulk,dc=example,dc=com' failed after" in err
    assert target.read_bytes() == OLD
    assert list(tmp_path.glob(".groups.txt.*.tmp")) == []


def test_a_server_that_accepts_but_never_answers(capsys, make_config, tmp_path):
    target = write_old(tmp_path)
    silent = socket.create_server(("127.0.0.1", 0))
    accepted = []
    threading.Thread(target=lambda: accepted.append(silent.accept()), daemon=True).start()
    try:
        config = make_config(ldap={"servers": [f"ldap://127.0.0.1:{silent.getsockname()[1]}"],
                                   "connect_timeout": 1, "timeout": 2})
        code, _, err = run(capsys, "run", "-c", config)
    finally:
        silent.close()
    assert code == 69 and "directory unavailable" in err
    assert target.read_bytes() == OLD


def test_wrong_password_does_not_leak_and_keeps_the_file(capsys, config_with_state, tmp_path):
    target = write_old(tmp_path)
    secret = "S3cret-that-must-not-leak"
    code, out, err = run(capsys, "-vv", "run", "-c", config_with_state(password=secret))
    assert code == 69 and "invalid credentials" in err
    assert target.read_bytes() == OLD
    for text in (out, err, (tmp_path / "state.json").read_text(), (tmp_path / "ldapsync.prom").read_text()):
        assert secret not in text and SYNC_PASSWORD not in text


def test_a_full_disk_leaves_the_old_file(capsys, make_config, tmp_path):
    disk = tmp_path / "tiny"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        target = disk / "groups.txt"
        target.write_bytes(OLD)
        filler = disk / "filler"
        filler.write_bytes(b"x" * 4096)
        config = make_config(outputs=[{"path": str(target), "backups": 0, "safety": NO_LIMITS}])
        code, _, err = run(capsys, "run", "-c", config)
        assert code == 73 and "No space left on device" in err and str(target) in err
        assert target.read_bytes() == OLD
        assert sorted(p.name for p in disk.iterdir()) == [".groups.txt.ldapsync.lock", "filler", "groups.txt"]
    finally:
        subprocess.run(["umount", str(disk)])


@pytest.mark.parametrize("failure", ["problem", "crash"])
def test_a_file_that_fails_verification_is_not_written(capsys, make_config, tmp_path, monkeypatch, failure):
    """The text is read back in a worker process while the diff is worked out:
    a problem it finds, or the worker dying, stops the write."""
    import os

    from ldapsync import groupsfile

    parent = os.getpid()

    def broken(reading, model, **_):
        if failure == "crash":
            if os.getpid() == parent:  # never kill the test run itself
                raise RuntimeError(f"the check ran in the test process, not in a worker (threads running: "
                                   f"{threading.enumerate()})")
            os._exit(3)
        return ["verification failed: injected"]

    monkeypatch.setattr(groupsfile, "reading_problems", broken)
    target = write_old(tmp_path)
    config = make_config(outputs=[{"path": str(target), "safety": {"max_groups_removed_percent": None,
                                                                   "max_members_removed_percent": None}}])
    code, _, err = run(capsys, "run", "-c", config)
    assert code == 65 and str(target) in err, err
    assert ("verification failed: injected" if failure == "problem" else "worker process ended with 3") in err
    assert target.read_bytes() == OLD


# --- security ---------------------------------------------------------------------------


def test_a_clear_text_password_to_another_host_is_refused():
    base = """
ldap:
  servers: [{url}]
  bind_dn: cn=x
  bind_password_env: PW
{extra}
users: {{base: ou=people}}
groups: {{base: ou=groups}}
outputs: [{{path: /tmp/g.txt}}]
"""
    with pytest.raises(ConfigError, match="would cross the network in clear text to ldap://ldap.example.com"):
        parse(base.format(url="ldap://ldap.example.com", extra=""))
    parse(base.format(url="ldap://127.0.0.1:389", extra=""))  # loopback is fine
    parse(base.format(url="ldaps://ldap.example.com", extra=""))
    parse(base.format(url="ldap://ldap.example.com", extra="  start_tls: true"))
    parse(base.format(url="ldap://ldap.example.com", extra="  allow_insecure: true"))


def test_a_frozen_slapd_times_out(capsys, make_config, tmp_path, tmp_path_factory):
    """A real slapd that accepts connections but never answers (SIGSTOP)."""
    import os
    import signal

    from devtools import slapd as harness
    from tests.ldap.directory import LDIF

    target = write_old(tmp_path)
    frozen = harness.Slapd(tmp_path_factory.mktemp("frozen"), [LDIF])
    frozen.start()
    try:
        os.kill(frozen.proc.pid, signal.SIGSTOP)
        config = make_config(ldap={"servers": [frozen.url], "connect_timeout": 1, "timeout": 2})
        code, _, err = run(capsys, "run", "-c", config)
    finally:
        os.kill(frozen.proc.pid, signal.SIGCONT)
        frozen.stop()
    assert code == 69 and "directory unavailable" in err and frozen.url in err
    assert target.read_bytes() == OLD
