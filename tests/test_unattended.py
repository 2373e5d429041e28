"""Running unattended, without a server: recorded runs, the state file and
metrics they leave, how they read the directory, rollback through the
same apply step, and serve's retries and polls, over an in-memory
directory."""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import datetime

import pytest
import yaml

from ldapsync import config as configlib
from ldapsync import snapshot as snapshotlib
from ldapsync import state as statelib
from ldapsync.actions.rollback import rollback
from ldapsync.cli import main
from ldapsync.errors import ExitCode
from ldapsync.service import Service, recorded_run
from tests.memory_directory import MemoryDirectory
from tests.test_pipeline import company


@pytest.fixture
def config_path(tmp_path):
    data = {
        "ldap": {"servers": ["ldap://directory.invalid"]},
        "users": {"base": "ou=people,dc=example,dc=com", "disabled": "389ds"},
        "groups": {"base": "ou=groups,dc=example,dc=com", "public": ["Staff"]},
        "mapping": {"jid": "{{ uid }}@example.com", "name": "{{ displayName }}"},
        "outputs": [{"path": str(tmp_path / "groups.txt"), "backups": 3,
                     "post_change_command": ["sh", "-c", f"echo reloaded >> {tmp_path / 'reloads'}"]}],
        "state": {"path": str(tmp_path / "state.json")},
        "metrics": {"textfile": str(tmp_path / "ldapsync.prom")},
        "schedule": {"cron": "0 3 * * *", "retries": 2, "retry_delay": 60},
    }
    path = tmp_path / "ldapsync.yaml"
    path.write_text(yaml.safe_dump(data))
    path.chmod(0o600)
    return path


def directory_of(staff: int = 10, **failure):
    return lambda config: MemoryDirectory(company(staff), **failure)


def test_runs_are_recorded_with_their_counts_and_failures(config_path):
    config = configlib.load(config_path)
    assert recorded_run(config, directory=directory_of()).exit_code == ExitCode.OK
    failed = recorded_run(config, directory=directory_of(unreachable=True))
    assert failed.exit_code == ExitCode.UNAVAILABLE and "can't contact" in failed.error
    state = statelib.load(config.state.path)
    assert (state.result, state.runs_total, state.failures_total, state.consecutive_failures) == ("failed", 2, 1, 1)
    assert state.counts["users_in_groups"] == 10  # a failed run keeps the counts of the last success
    assert "ldapsync_consecutive_failures 1.0" in (config_path.parent / "ldapsync.prom").read_text()


def test_a_dry_run_is_not_recorded(config_path):
    config = configlib.load(config_path)
    assert recorded_run(config, dry_run=True, directory=directory_of()).exit_code == ExitCode.OK
    assert not config.state.path.exists() and not config.outputs[0].path.exists()


def test_rollback_goes_through_the_apply_step_and_is_recorded(config_path, tmp_path):
    config = configlib.load(config_path)
    output = config.outputs[0]
    recorded_run(config, directory=directory_of(10))
    ten = output.path.read_bytes()
    recorded_run(config, directory=directory_of(9))
    nine = output.path.read_bytes()
    done = rollback(config, output, 1)
    assert done.restored and done.exit_code == ExitCode.OK and output.path.read_bytes() == ten
    assert (tmp_path / "reloads").read_text().count("reloaded") == 3  # two runs and the rollback
    state = statelib.load(config.state.path)
    assert state.rollbacks_total == 1 and state.last_rollback["output"] == str(output.path)
    assert (state.result, state.runs_total) == ("success", 2)  # the record of the last sync stays
    assert "ldapsync_rollbacks_total 1.0" in (tmp_path / "ldapsync.prom").read_text()
    # the file replaced by the rollback is kept too: rolling back again undoes it
    assert rollback(config, output, 1).restored and output.path.read_bytes() == nine
    # backup 2 is the file replaced by the first rollback, which is there now: nothing done, nothing recorded
    assert not rollback(config, output, 2).restored and output.path.read_bytes() == nine
    assert statelib.load(config.state.path).rollbacks_total == 2


def test_the_next_run_after_a_rollback_writes_the_directory_view_again(config_path):
    config = configlib.load(config_path)
    output = config.outputs[0]
    recorded_run(config, directory=directory_of(10))
    recorded_run(config, directory=directory_of(9))
    nine = output.path.read_bytes()
    rollback(config, output, 1)
    again = recorded_run(config, directory=directory_of(9))
    assert again.result.outputs[0].written.changed and output.path.read_bytes() == nine
    # the run that follows keeps the record of the rollback
    state = statelib.load(config.state.path)
    assert state.rollbacks_total == 1 and state.last_rollback["output"] == str(output.path)


def unreachable_directory(config):
    """For serve, whose syncs run in a child process: a function it can send there."""
    return MemoryDirectory(company(), unreachable=True)


def reachable_directory(config):
    return MemoryDirectory(company())


def test_serve_retries_a_failed_run_with_backoff_then_gives_up(config_path):
    service = Service(str(config_path), directory=unreachable_directory)
    delays = []

    def add_job(*args, run_date, **kwargs):  # the scheduler is not started: the retries are only noted
        delays.append(round((run_date - datetime.now().astimezone()).total_seconds()))

    service.scheduler.add_job = add_job
    for _ in range(3):
        service.scheduled_run()
    assert delays == [60, 120] and service.attempt == 0  # two retries, doubling the delay, then it gave up
    service.directory = reachable_directory
    service.attempt = 1
    service.scheduled_run()
    assert service.attempt == 0 and len(delays) == 2  # a success resets the count, no retry
    assert statelib.load(service.config.state.path).consecutive_failures == 0


CONTEXT = "dc=example,dc=com"


def tracked_directory(staff: int = 10, **failure):
    """A directory whose contextCSN changes with its data: a run can find nothing changed."""
    return lambda config: MemoryDirectory(company(staff), context=CONTEXT, **failure)


def test_runs_record_how_they_read_and_when_each_kind_last_succeeded(config_path):
    config = configlib.load(config_path)
    prom = config_path.parent / "ldapsync.prom"
    first = recorded_run(config, directory=tracked_directory()).state
    assert first.read["kind"] == "full" and first.read["reason"] == "there is no snapshot yet"
    assert first.last_full_read == first.finished and first.last_incremental_read is None
    again = recorded_run(config, directory=tracked_directory()).state
    assert (again.read["kind"], again.read["method"]) == ("unchanged", "contextcsn")
    assert again.last_full_read == first.finished and again.last_incremental_read == again.finished
    text = prom.read_text()
    assert 'ldapsync_last_run_read{kind="unchanged"} 1.0' in text and 'kind="full"} 0.0' in text
    # the contextCSN: one entry, not the directory
    assert "ldapsync_directory_entries_read 1.0" in text
    assert metric(text, "ldapsync_last_full_read_timestamp_seconds") == first.last_full_read_at()
    assert metric(text, "ldapsync_last_incremental_read_timestamp_seconds") == again.last_incremental_read_at()
    # the directory changed: contextCSN tells that, not what; everything is read again
    changed = recorded_run(config, full=None, directory=tracked_directory(9)).state
    assert changed.read["kind"] == "full" and "cannot tell which entries" in changed.read["reason"]
    assert changed.read["entries"] > 10 and changed.last_incremental_read == again.finished
    # a run that failed before reading has no read; the last good ones stay
    failed = recorded_run(config, directory=tracked_directory(unreachable=True)).state
    assert failed.read is None and failed.last_full_read == changed.finished
    assert failed.last_incremental_read == again.finished
    assert "ldapsync_directory_entries_read 0.0" in prom.read_text()
    forced = recorded_run(config, full="asked", directory=tracked_directory(9)).state
    assert forced.read["kind"] == "full" and forced.read["reason"] == "asked"


def metric(text: str, name: str) -> float | None:
    return next((float(line.split()[1]) for line in text.splitlines() if line.startswith(name + " ")), None)


def test_a_state_file_from_before_the_reads_were_recorded_still_loads(config_path, capsys):
    config = configlib.load(config_path)
    old = {"started": "2025-01-01T03:00:00+00:00", "finished": "2025-01-01T03:00:05+00:00", "result": "success",
           "exit_code": 0, "error": None, "counts": {"shared_groups": 2}, "outputs": [],
           "last_success": "2025-01-01T03:00:05+00:00", "last_duration": 5.0, "runs_total": 4,
           "failures_total": 0, "refusals_total": 0, "consecutive_failures": 0, "rollbacks_total": 0,
           "last_rollback": None}
    config.state.path.write_text(json.dumps(old))
    state = statelib.load(config.state.path)
    assert state.runs_total == 4 and state.read is None and state.last_full_read is None
    assert main(["status", "-c", str(config_path), "--max-age", "100000d"]) == 0
    out = capsys.readouterr().out
    assert "last full read never, last incremental never; no snapshot" in out and "snapshot_age=Us" in out
    new = recorded_run(config, directory=directory_of()).state
    assert new.runs_total == 5 and new.last_full_read == new.finished


@pytest.mark.parametrize(("read", "says"), [
    ({"kind": "partial", "entries": 3}, "read.kind is not one of full, incremental, unchanged"),
    ({"kind": "full", "entries": -1}, "read.entries is not a count"),
    ({"kind": "full", "entries": "3"}, "read.entries is not a count"),
])
def test_a_damaged_read_record_is_damage(config_path, read, says):
    config = configlib.load(config_path)
    config.state.path.write_text(json.dumps({"read": read}))
    state, problem = statelib.read(config.state.path)
    assert state is None and says in problem


def test_a_last_read_that_is_no_date_is_damage(config_path):
    config = configlib.load(config_path)
    config.state.path.write_text(json.dumps({"last_full_read": "yesterday"}))
    assert "is damaged" in statelib.read(config.state.path)[1]


def test_status_shows_the_last_reads_and_the_snapshot_age(config_path, capsys):
    config = configlib.load(config_path)
    recorded_run(config, directory=tracked_directory())
    snapshot = snapshotlib.path_for(config.state.path)
    saved = snapshotlib.read_header(snapshot).saved_at
    time.sleep(2.1)
    recorded_run(config, directory=tracked_directory())  # nothing changed: confirms the snapshot, saves nothing
    assert snapshotlib.read_header(snapshot).saved_at == saved
    assert main(["status", "-c", str(config_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    full, incremental = data["last_full_read_age_seconds"], data["last_incremental_read_age_seconds"]
    assert incremental <= 1 and full >= incremental + 1
    # its age is that of the run that confirmed it, not of the one that saved it
    assert data["snapshot"]["age_seconds"] == incremental and data["snapshot"]["method"] == "contextcsn"
    assert data["snapshot"]["path"] == str(snapshot) and data["state"]["read"]["kind"] == "unchanged"
    assert main(["status", "-c", str(config_path)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"; last full read \d s ago, last incremental \d s ago; snapshot \d s old \| ", out), out
    assert re.search(r" snapshot_age=\ds$", out.strip()), out
    snapshot.write_bytes(b"not a snapshot")
    assert main(["status", "-c", str(config_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["snapshot"]["age_seconds"] is None
    assert data["snapshot"]["problem"].startswith(f"{snapshot} is not a snapshot ldapsync wrote")


def tracked(config):
    """For serve's child processes: the directory as a function they can be sent."""
    return MemoryDirectory(company(), context=CONTEXT)


def tracked_unreachable(config):
    return MemoryDirectory(company(), context=CONTEXT, unreachable=True)


def with_schedule(config_path, **schedule):
    data = yaml.safe_load(config_path.read_text())
    data["schedule"].update(schedule)
    config_path.write_text(yaml.safe_dump(data))


def test_serve_cron_runs_read_everything_and_polls_only_the_changes(config_path):
    with_schedule(config_path, poll="60s")
    service = Service(str(config_path), directory=tracked)
    service.poll_run()  # no snapshot yet: the poll reads everything, and says why
    state = statelib.load(service.config.state.path)
    assert (state.read["kind"], state.read["reason"]) == ("full", "there is no snapshot yet")
    service.poll_run()
    assert statelib.load(service.config.state.path).read["kind"] == "unchanged"
    service.scheduled_run()
    state = statelib.load(service.config.state.path)
    assert (state.read["kind"], state.read["reason"]) == ("full", "the scheduled full read (schedule.cron)")
    assert state.runs_total == 3


def test_a_failed_poll_is_not_retried(config_path):
    with_schedule(config_path, poll="60s")
    service = Service(str(config_path), directory=tracked_unreachable)
    added = []
    service.scheduler.add_job = lambda *args, **kwargs: added.append(kwargs)
    service.poll_run()
    state = statelib.load(service.config.state.path)
    assert (state.result, state.exit_code) == ("failed", ExitCode.UNAVAILABLE)
    assert added == [] and service.attempt == 0  # the next poll tries again
    service.scheduled_run()
    assert [a["id"] for a in added] == ["retry"]  # the cron run is retried


def test_a_poll_is_skipped_while_a_run_is_under_way_and_the_cron_run_waits_for_a_poll(config_path):
    from ldapsync.service import CRON, POLL

    with_schedule(config_path, poll="60s")
    service = Service(str(config_path), directory=tracked)
    for holder in (CRON, POLL):
        assert service._take(holder)
        service.poll_run()  # returns at once, without a run
        assert not config_path.with_name("state.json").exists()
        service._release()
    # the cron run finds a poll under way: it waits for it, then runs
    assert service._take(POLL)
    cron = threading.Thread(target=service.scheduled_run)
    cron.start()
    time.sleep(0.5)
    assert cron.is_alive() and not config_path.with_name("state.json").exists()
    service._release()
    cron.join(30)
    assert statelib.load(service.config.state.path).read["reason"] == "the scheduled full read (schedule.cron)"
    # a cron run under way: a second one (a retry due at the same time) is skipped
    assert service._take(CRON)
    service.scheduled_run()
    assert statelib.load(service.config.state.path).runs_total == 1
    service._release()


def test_a_poll_finds_the_lock_taken_and_is_skipped_without_waiting(config_path):
    with_schedule(config_path, poll="60s")
    service = Service(str(config_path), directory=tracked)
    with statelib.locked(service.config.lock_path, 0):
        started = time.monotonic()
        service.poll_run()
        assert time.monotonic() - started < 10  # state.lock_timeout is 60 s
    assert not config_path.with_name("state.json").exists()  # not a run: nothing recorded


def test_sighup_adds_changes_and_removes_the_poll_job(config_path):
    service = Service(str(config_path), directory=tracked)
    service.scheduler.start(paused=True)
    service._schedule(service.config)
    assert service.scheduler.get_job("poll") is None
    for poll, seconds in (("5m", 300), ("90s", 90), ("90", 90)):
        with_schedule(config_path, poll=poll)
        service.reload()
        assert service.scheduler.get_job("poll").trigger.interval.total_seconds() == seconds
    with_schedule(config_path, poll=None)
    service.reload()
    assert service.scheduler.get_job("poll") is None and service.scheduler.get_job("sync") is not None
    with_schedule(config_path, poll="1s")  # below the floor: refused, the old config stays
    service.reload()
    assert service.config.schedule.poll is None and service.scheduler.get_job("poll") is None
    service.scheduler.shutdown(wait=False)


def test_polls_share_one_process_that_sighup_replaces_and_removing_poll_stops(config_path):
    with_schedule(config_path, poll="60s")
    service = Service(str(config_path), directory=tracked)
    service.scheduler.start(paused=True)
    service.poll_run()
    first = service.poller.process
    service.poll_run()
    assert service.poller.process is first and first.is_alive()
    service.reload()  # a new config never meets the old one's memory
    assert service.poller is None and first.exitcode == 0
    service.poll_run()
    second = service.poller.process
    assert second.pid != first.pid and statelib.load(service.config.state.path).runs_total == 3
    with_schedule(config_path, poll=None)
    service.reload()
    assert service.poller is None and second.exitcode == 0
    service.scheduler.shutdown(wait=False)


def hanging(config):
    """A directory that never answers, for serve's poll process."""
    time.sleep(3600)


def test_shutdown_kills_a_poll_under_way_past_the_timeout(config_path):
    with_schedule(config_path, poll="60s", shutdown_timeout=0.5)
    service = Service(str(config_path), directory=tracked)
    service.scheduler.start(paused=True)
    service.poll_run()  # the poll process, kept
    service.directory = hanging
    poll = threading.Thread(target=service.poll_run)
    poll.start()
    wait = time.monotonic() + 10
    while service.child is None and time.monotonic() < wait:
        time.sleep(0.05)
    poller = service.child
    assert poller is not None
    service.stop_requested.set()
    assert service.shutdown() == ExitCode.BUSY
    poll.join(10)
    assert not poll.is_alive() and poller.exitcode == -9 and service.poller is None


def test_a_signal_handler_never_waits_for_a_lock_the_main_thread_may_hold(config_path):
    """serve's signal handlers run in the main thread between two of its
    steps, perhaps while it holds the lock of the Event it waits on: a
    handler that took that lock (Event.set) would hang serve for good, and
    SIGTERM would never stop it. Here the handlers run while that lock is
    held, as the race would have it; they must return at once."""
    service = Service(str(config_path), directory=lambda config: MemoryDirectory(company()))

    def race() -> None:
        with service.stop_requested._cond:  # the main thread inside Event.wait
            service._on_reload_signal()
            service._on_stop_signal()

    handler = threading.Thread(target=race, daemon=True)
    handler.start()
    handler.join(5)
    assert not handler.is_alive(), "a signal handler waited for the lock its own thread holds"
    assert service.stop_signalled and service.reload_signalled
