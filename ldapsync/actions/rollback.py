"""Put back an earlier version of a groups file, through the same apply step
as a run (atomic write, backup of the file replaced, post-change command and
reload check), and record it in the state file and metrics."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from ldapsync import backups, groupsfile, modelcache
from ldapsync import state as statelib
from ldapsync.apply import Applied, apply
from ldapsync.config import Config, Output
from ldapsync.errors import ExitCode
from ldapsync.service import keep_record
from ldapsync.writer import read_current

log = logging.getLogger(__name__)


@dataclass
class RolledBack:
    """The outcome of a rollback: the backup chosen, the groups it holds,
    and what applying it did (None: the file already held it)."""

    output: Output
    version: int
    backup: backups.Backup
    groups: int
    applied: Applied | None
    exit_code: ExitCode = ExitCode.OK
    state_problem: str | None = None  # the rollback could not be recorded

    @property
    def restored(self) -> bool:
        return self.applied is not None


def rollback(config: Config, output: Output, version: int) -> RolledBack:
    """Restore backup ``version`` (1: the newest) of ``output``, under the lock."""
    with statelib.locked(config.lock_path, config.state.lock_timeout):
        # chosen under the lock: a run that finished meanwhile has made a newer backup
        chosen = backups.pick(output, version)
        data = backups.read(chosen)
        reading = groupsfile.parse(data.decode("utf-8", "surrogateescape"))
        groups = len(reading.to_model().groups)
        current = read_current(output.path)
        if current == data:
            return RolledBack(output, version, chosen, groups, None)
        # the cache of what the restored file means, so that the next run compares with it
        cache = modelcache.path_for(config.state.path, output.path)
        applied = apply(output, data, current, cache, modelcache.encode(reading, data) if cache else None)
        taken = chosen.taken.isoformat(timespec="seconds")
        log.warning("rolled %s back to the backup of %s", output.path, taken)
        result = RolledBack(output, version, chosen, groups, applied,
                            ExitCode.POST_CHANGE_FAILED if applied.problem() else ExitCode.OK)
        _record(config, result, taken)
    return result


def _record(config: Config, result: RolledBack, taken: str) -> None:
    """The rollback in the state file and metrics (when there is a state file)."""
    path = config.state.path
    if path is None:
        return
    error = result.applied.problem() if result.applied is not None else None
    _, result.state_problem = keep_record(config, "rollback", lambda: statelib.record_rollback(
        path, time.time(), result.output.path, taken, int(result.exit_code), error))
    if result.state_problem is not None and result.exit_code == ExitCode.OK:
        result.exit_code = ExitCode.STATE_NOT_SAVED
