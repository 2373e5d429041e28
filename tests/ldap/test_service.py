"""ldapsync serve as a real process against a real slapd: schedule, signals,
failures and recovery, state, status, metrics, the shared lock, and polls
for changes against a slapd with the syncprov overlay."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import ldap3
import pytest
import yaml

from devtools import slapd as harness
from tests.conftest import need
from tests.ldap.conftest import run
from tests.ldap.directory import LDIF, PEOPLE

EVERY_SECOND = "* * * * * *"


@pytest.fixture(scope="module")
def own_slapd(tmp_path_factory):
    """A slapd of this module's own, since these tests stop and start it."""
    need(harness.missing())
    server = harness.Slapd(tmp_path_factory.mktemp("slapd-service"), [LDIF])
    server.start()
    yield server
    server.stop()


@pytest.fixture
def service_config(make_config, tmp_path, own_slapd):
    def make(*, schedule=None, outputs=None, state=None, metrics=True, **kwargs) -> Path:
        path = make_config(ldap={"servers": [own_slapd.url], "connect_timeout": 2, "timeout": 5},
                           outputs=outputs, **kwargs)
        data = yaml.safe_load(path.read_text())
        data["schedule"] = {"cron": EVERY_SECOND, "retries": 0, "shutdown_timeout": 30, **(schedule or {})}
        data["state"] = {"path": str(tmp_path / "state.json"), "lock_timeout": 30, **(state or {})}
        if metrics:
            data["metrics"] = {"textfile": str(tmp_path / "ldapsync.prom")}
        path.write_text(yaml.safe_dump(data, allow_unicode=True))
        return path

    return make


class Serve:
    """``ldapsync -v serve`` as a subprocess, its log in a file."""

    def __init__(self, config: Path, log: Path) -> None:
        self.log_path = log
        self.proc = subprocess.Popen([sys.executable, "-m", "ldapsync", "-v", "serve", "-c", str(config)],
                                     stdout=log.open("w"), stderr=subprocess.STDOUT,
                                     cwd=Path(__file__).resolve().parents[2])

    def log(self) -> str:
        return self.log_path.read_text()

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 40) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


@pytest.fixture
def serve(tmp_path):
    started = []

    def start(config: Path) -> Serve:
        s = Serve(config, tmp_path / f"serve{len(started)}.log")
        started.append(s)
        return s

    yield start
    for s in started:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()


def wait_for(predicate, timeout: float = 20, what: str = "condition", log=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}" + (f"; log:\n{log()}" if log else ""))


def state_of(tmp_path: Path) -> dict:
    try:
        return json.loads((tmp_path / "state.json").read_text())
    except (FileNotFoundError, ValueError):
        return {}


def metric(tmp_path: Path, name: str) -> float | None:
    try:
        text = (tmp_path / "ldapsync.prom").read_text()
    except FileNotFoundError:
        return None
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def test_serve_syncs_on_schedule_and_records_state_and_metrics(capsys, service_config, serve, tmp_path):
    config = service_config()
    s = serve(config)
    wait_for(lambda: state_of(tmp_path).get("result") == "success", what="a successful run", log=s.log)
    assert "Engineering" in (tmp_path / "groups.txt").read_text()
    state = state_of(tmp_path)
    assert state["counts"]["shared_groups"] == 22 and state["outputs"][0]["written"] is True
    # the state file is written first, the metrics right after it
    wait_for(lambda: metric(tmp_path, "ldapsync_last_run_success") == 1.0, what="the metrics", log=s.log)
    assert metric(tmp_path, "ldapsync_groups") == 22.0
    assert abs(metric(tmp_path, "ldapsync_last_success_timestamp_seconds") - time.time()) < 30
    code, out, _ = run(capsys, "status", "-c", config)
    assert code == 0 and out.startswith("LDAPSYNC OK - last success") and "| age=" in out
    wait_for(lambda: state_of(tmp_path).get("runs_total", 0) >= 2, what="a second run", log=s.log)
    assert state_of(tmp_path)["outputs"][0]["written"] is False  # nothing changed
    assert s.stop() == 0
    log = s.log()
    assert "next sync at" in log and "ldapsync serve stopped" in log
    # findings reach the journal, as they reach the terminal of 'ldapsync run'
    assert "memberUid 'ghostuid' matches no user's uid" in log


def test_sighup_with_a_broken_config_keeps_serving(service_config, serve, tmp_path):
    config = service_config()
    s = serve(config)
    wait_for(lambda: (tmp_path / "groups.txt").exists(), what="the first run", log=s.log)
    good = config.read_text()
    config.write_text(good + "\nunknown_section: {}\n")
    s.signal(signal.SIGHUP)
    wait_for(lambda: "the old one stays in force" in s.log(), what="the reload to be refused", log=s.log)
    assert "unknown_section: unknown key" in s.log()
    (tmp_path / "groups.txt").unlink()
    wait_for(lambda: (tmp_path / "groups.txt").exists(), what="a run with the old config", log=s.log)
    config.write_text(good)
    s.signal(signal.SIGHUP)
    wait_for(lambda: "configuration reloaded" in s.log(), what="the reload", log=s.log)
    assert s.proc.poll() is None
    assert s.stop() == 0


def test_sigterm_lets_the_sync_under_way_finish(service_config, serve, tmp_path):
    marker = tmp_path / "reloaded"
    outputs = [{"path": str(tmp_path / "groups.txt"),
                "post_change_command": ["sh", "-c", f"sleep 2; echo done > {marker}"]}]
    s = serve(service_config(outputs=outputs))
    wait_for(lambda: (tmp_path / "groups.txt").exists(), what="the file", log=s.log)
    assert not marker.exists()  # the post-change command is still sleeping
    started = time.monotonic()
    assert s.stop() == 0
    assert marker.read_text() == "done\n"
    assert time.monotonic() - started > 0.5
    assert state_of(tmp_path)["result"] == "success"
    assert "waiting up to 30 s for the sync under way" in s.log()


def test_a_directory_outage_fails_runs_then_they_recover(capsys, service_config, serve, tmp_path, own_slapd):
    config = service_config()
    s = serve(config)
    wait_for(lambda: state_of(tmp_path).get("result") == "success", what="a first success", log=s.log)
    before = (tmp_path / "groups.txt").read_bytes()
    own_slapd.stop()
    try:
        wait_for(lambda: state_of(tmp_path).get("result") == "failed", what="a failed run", log=s.log)
        state = state_of(tmp_path)
        assert "directory unavailable" in state["error"] and state["exit_code"] == 69
        code, out, _ = run(capsys, "status", "-c", config)
        assert code == 2 and out.startswith("LDAPSYNC CRITICAL - last run failed (exit 69)")
        wait_for(lambda: metric(tmp_path, "ldapsync_last_run_success") == 0.0, what="the metrics", log=s.log)
        assert (tmp_path / "groups.txt").read_bytes() == before  # the file is left alone
        assert s.proc.poll() is None  # the service lives on
    finally:
        own_slapd.start()
    wait_for(lambda: state_of(tmp_path).get("result") == "success", what="recovery", log=s.log)
    assert run(capsys, "status", "-c", config)[0] == 0
    assert state_of(tmp_path)["consecutive_failures"] == 0
    assert s.stop() == 0


def test_a_manual_run_waits_for_the_lock_or_gives_up(capsys, service_config, serve, tmp_path):
    marker = tmp_path / "reloaded"
    outputs = [{"path": str(tmp_path / "groups.txt"),
                "post_change_command": ["sh", "-c", f"sleep 3; echo done > {marker}"]}]
    config = service_config(outputs=outputs)
    s = serve(config)
    wait_for(lambda: (tmp_path / "groups.txt").exists(), what="the service's run", log=s.log)
    impatient = service_config(outputs=outputs, state={"lock_timeout": 0.5})
    code, _, err = run(capsys, "run", "-c", impatient)
    assert code == 75 and "another ldapsync run holds the lock" in err
    assert s.stop() == 0
    patient = service_config(outputs=outputs, state={"lock_timeout": 30})
    s = serve(patient)
    (tmp_path / "groups.txt").unlink()
    wait_for(lambda: (tmp_path / "groups.txt").exists(), what="the service's run", log=s.log)
    s.signal(signal.SIGTERM)  # no more scheduled runs once this one ends
    code, out, _ = run(capsys, "run", "-c", patient)
    assert code == 0 and "unchanged" in out  # it waited, then found nothing to do
    assert s.proc.wait(40) == 0


def test_failed_runs_are_retried_before_the_next_slot(service_config, serve, tmp_path, own_slapd):
    config = service_config(schedule={"cron": "0 3 1 1 *", "run_at_start": True, "retries": 2,
                                      "retry_delay": 0.5})
    own_slapd.stop()
    try:
        s = serve(config)
        wait_for(lambda: state_of(tmp_path).get("runs_total", 0) >= 3, what="the first run and 2 retries",
                 log=s.log)
        # serve decides on a retry once the sync's process has ended, just after it recorded the run
        wait_for(lambda: "giving up after 2 retries until the next scheduled run" in s.log(), what="giving up",
                 log=s.log)
        log = s.log()
        assert "retry 1 of 2 in 0 s" in log or "retry 1 of 2 in 1 s" in log
        assert state_of(tmp_path)["runs_total"] == 3
    finally:
        own_slapd.start()
    assert s.stop() == 0


def test_status_without_state_and_when_stale(capsys, service_config, tmp_path):
    config = service_config()
    code, out, _ = run(capsys, "status", "-c", config)
    assert code == 3 and out.startswith("LDAPSYNC UNKNOWN - no run recorded yet")
    assert run(capsys, "run", "-c", config)[0] == 0
    time.sleep(1.1)
    code, out, _ = run(capsys, "status", "-c", config, "--max-age", "1s")
    assert code == 2 and "last success" in out and "more than 1s" in out
    code, out, _ = run(capsys, "status", "-c", config, "--max-age", "1h", "--json")
    data = json.loads(out)
    assert code == 0 and data["status"] == "OK" and data["state"]["runs_total"] == 1


def test_json_logs(service_config, tmp_path):
    out = subprocess.run([sys.executable, "-m", "ldapsync", "-v", "--log-format", "json", "run", "-c",
                          str(service_config()), "--dry-run"], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2], env={**os.environ})
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stderr.splitlines()]
    assert any(r["level"] == "change" and "Would write" in r["message"] for r in records)
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)


def test_metrics_over_http(service_config, serve, tmp_path):
    import urllib.request

    port = harness.free_port()
    config = service_config()
    data = yaml.safe_load(config.read_text())
    data["metrics"]["listen"] = f"127.0.0.1:{port}"
    config.write_text(yaml.safe_dump(data, allow_unicode=True))
    s = serve(config)
    wait_for(lambda: state_of(tmp_path).get("result") == "success", what="a run", log=s.log)

    def scrape() -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
                return response.read().decode()
        except OSError:
            return ""

    body = wait_for(lambda: "ldapsync_last_run_success 1.0" in scrape() and scrape(), what="the metrics",
                    log=s.log)
    assert "ldapsync_groups 22.0" in body and "ldapsync_runs_total" in body
    assert s.stop() == 0


@pytest.fixture(scope="module")
def syncprov_own_slapd(tmp_path_factory):
    """The shared test directory on a slapd of this module's own with the
    syncprov overlay (contextCSN, content sync), which these tests change."""
    need(harness.missing())
    server = harness.Slapd(tmp_path_factory.mktemp("slapd-poll"), [LDIF], syncprov=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def poll_config(make_config, tmp_path, syncprov_own_slapd):
    """A config polling syncprov_own_slapd every 5 s, with no cron run: every run of serve is a poll."""

    def make(**kwargs) -> Path:
        path = make_config(ldap={"servers": [syncprov_own_slapd.url], "connect_timeout": 2, "timeout": 5}, **kwargs)
        data = yaml.safe_load(path.read_text())
        # the cron run comes on 1 January only
        data["schedule"] = {"cron": "0 3 1 1 *", "poll": "5s", "retries": 0, "shutdown_timeout": 30}
        data["state"] = {"path": str(tmp_path / "state.json"), "lock_timeout": 30}
        data["metrics"] = {"textfile": str(tmp_path / "ldapsync.prom")}
        path.write_text(yaml.safe_dump(data, allow_unicode=True))
        return path

    return make


def test_polls_bring_a_directory_change_into_the_file_without_the_cron_run(capsys, poll_config, serve, tmp_path,
                                                                           syncprov_own_slapd, backend):
    path = poll_config()
    groups = tmp_path / "groups.txt"
    assert run(capsys, "run", "-c", path)[0] == 0  # the full read the polls start from
    full = state_of(tmp_path)
    assert full["read"]["kind"] == "full" and "alice@example.com=Alice Liddell\n" in groups.read_text()
    s = serve(path)
    wait_for(lambda: state_of(tmp_path).get("runs_total") == 2, what="the first poll", log=s.log)
    assert state_of(tmp_path)["read"]["kind"] == "unchanged"
    admin = syncprov_own_slapd.admin_connection()
    try:
        assert admin.modify(f"uid=alice,{PEOPLE}", {"displayName": [(ldap3.MODIFY_REPLACE, ["Alice Pleasance"])]})
        changed = time.monotonic()
        wait_for(lambda: "alice@example.com=Alice Pleasance\n" in groups.read_text(), timeout=20,
                 what="the change in the groups file", log=s.log)
        # at most one poll interval and a run
        assert time.monotonic() - changed < 10
        # the record comes right after the file
        state = wait_for(lambda: (st := state_of(tmp_path)) and st["outputs"] and st["outputs"][0]["written"] and st,
                         what="the record of the poll that wrote", log=s.log)
        if backend == "python-ldap":  # content sync: the changed entry only
            assert (state["read"]["kind"], state["read"]["method"], state["read"]["changed"]) == (
                "incremental", "syncrepl", 1)
            assert state["read"]["entries"] < 10
        else:  # ldap3 has no content-sync consumer: contextCSN says that something changed, not what
            assert state["read"]["kind"] == "full"
            assert "the contextcsn method cannot tell which entries" in state["read"]["reason"]
        # no cron run: the only full read is the one before serve started
        assert state["last_full_read"] == (full["finished"] if backend == "python-ldap" else state["finished"])
        assert state["last_incremental_read"] == (state["finished"] if backend == "python-ldap"
                                                  else state["last_incremental_read"])
        assert "scheduled full read" not in json.dumps(state)
        code, out, _ = run(capsys, "status", "-c", path)
        assert code == 0 and "last incremental" in out and "snapshot" in out
        wait_for(lambda: metric(tmp_path, "ldapsync_last_incremental_read_timestamp_seconds"), what="the metrics",
                 log=s.log)
    finally:
        admin.modify(f"uid=alice,{PEOPLE}", {"displayName": [(ldap3.MODIFY_REPLACE, ["Alice Liddell"])]})
        admin.unbind()
    assert s.stop() == 0
    log = s.log()
    assert "a poll for changes every 5 s" in log and "poll finished: nothing changed" in log
    assert "warning" not in log.split("poll finished: nothing changed")[0].rsplit("ldapsync serve started", 1)[1]


def with_pid_recorder(tmp_path: Path) -> list[dict]:
    """An output whose post-change command notes the pid of the process
    that ran the sync (the shell's parent) in ``pids``."""
    return [{"path": str(tmp_path / "groups.txt"), "host": "example.com",
             "post_change_command": ["sh", "-c", f"echo $PPID >> {tmp_path / 'pids'}"]}]


def pids_of(tmp_path: Path) -> list[int]:
    try:
        return [int(line) for line in (tmp_path / "pids").read_text().split()]
    except FileNotFoundError:
        return []


def poll_processes(log: str) -> list[int]:
    """The pids of the poll processes serve started, from its log."""
    return [int(pid) for pid in re.findall(r"^poll process (\d+) started", log, re.MULTILINE)]


def ended(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX"
    except FileNotFoundError:
        return True


def rename_alice(slapd, name: str) -> None:
    admin = slapd.admin_connection()
    try:
        assert admin.modify(f"uid=alice,{PEOPLE}", {"displayName": [(ldap3.MODIFY_REPLACE, [name])]})
    finally:
        admin.unbind()


@pytest.mark.parametrize("backend", ["python-ldap"], indirect=True)
def test_successive_polls_run_in_one_poll_process(capsys, poll_config, serve, tmp_path, syncprov_own_slapd,
                                                  backend):
    path = poll_config(outputs=with_pid_recorder(tmp_path))
    groups = tmp_path / "groups.txt"
    assert run(capsys, "run", "-c", path)[0] == 0  # the snapshot the polls start from
    (tmp_path / "pids").unlink()
    s = serve(path)
    try:
        for count, name in enumerate(("Alice One", "Alice Two"), 1):
            rename_alice(syncprov_own_slapd, name)
            wait_for(lambda name=name: f"alice@example.com={name}\n" in groups.read_text(), timeout=20,
                     what=f"{name} in the groups file", log=s.log)
            wait_for(lambda count=count: len(pids_of(tmp_path)) == count, what="the post-change command", log=s.log)
        # both writes were made by the one poll process serve started
        poller = poll_processes(s.log())
        assert len(poller) == 1 and pids_of(tmp_path) == poller * 2, s.log()
    finally:
        rename_alice(syncprov_own_slapd, "Alice Liddell")
    assert s.stop() == 0
    assert ended(poller[0])  # a clean stop ends it too


@pytest.mark.parametrize("backend", ["python-ldap"], indirect=True)
def test_a_poll_process_killed_between_polls_is_replaced(poll_config, serve, tmp_path, syncprov_own_slapd, backend):
    s = serve(poll_config(outputs=with_pid_recorder(tmp_path)))
    groups = tmp_path / "groups.txt"
    # the first poll finds no snapshot and reads everything
    wait_for(lambda: state_of(tmp_path).get("result") == "success", what="the first poll", log=s.log)
    killed = wait_for(lambda: poll_processes(s.log()), what="the poll process", log=s.log)[0]
    assert pids_of(tmp_path) == [killed]
    # killed between polls, not before it answered serve: it records the run, logs it, then answers
    wait_for(lambda: "poll finished" in s.log(), what="the first poll's end", log=s.log)
    time.sleep(1)
    os.kill(killed, signal.SIGKILL)
    try:
        rename_alice(syncprov_own_slapd, "Alice Again")
        wait_for(lambda: "alice@example.com=Alice Again\n" in groups.read_text(), timeout=20,
                 what="the change in the groups file", log=s.log)
        wait_for(lambda: len(pids_of(tmp_path)) == 2, what="the post-change command", log=s.log)
    finally:
        rename_alice(syncprov_own_slapd, "Alice Liddell")
    log = s.log()
    assert f"the poll process {killed} ended with signal 9 since the last poll; a new one takes the polls" in log
    first, second = poll_processes(log)
    assert first == killed and pids_of(tmp_path) == [killed, second] and second != killed
    assert state_of(tmp_path)["result"] == "success"
    assert s.stop() == 0
