"""Running unattended, without a server: recorded runs, the state file and
metrics they leave, rollback through the same apply step, and serve's
retries, over an in-memory directory."""

from __future__ import annotations

from datetime import datetime

import pytest
import yaml

from ldapsync import config as configlib
from ldapsync import state as statelib
from ldapsync.actions.rollback import rollback
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
