"""Putting a file in place: the one write step of ``run`` and ``rollback``.

The new content replaces the file atomically and only if the file is still
what the caller planned on; the old content is kept as a backup (only once
the new one is ready), old backups are pruned, the cache of the verified
groups is saved beside the state file, and the output's post-change command
and reload check run.  Both commands take the lock before they come here.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ldapsync import backups, modelcache
from ldapsync.commands import CommandResult, run_post_change
from ldapsync.config import Output
from ldapsync.writer import WriteResult, write_if_changed

log = logging.getLogger(__name__)


@dataclass
class Applied:
    """What applying a file did."""

    written: WriteResult
    command: CommandResult | None = None  # the post-change command, when it ran
    check_problem: str | None = None  # the reload check found Prosody not as it should be

    def problem(self) -> str | None:
        """What went wrong after the file was written: the reload check's
        problem, else the post-change command's failure; None if nothing."""
        if self.check_problem:
            return self.check_problem
        if self.command is not None and not self.command.ok:
            return self.command.describe()
        return None


def apply(output: Output, data: bytes, expected: bytes | None, cache: Path | None = None,
          cache_blob: bytes | Callable[[], bytes] | None = None) -> Applied:
    """Write ``data`` to the output when it differs and the file still holds
    ``expected`` (None: no file), keeping a backup; then save ``cache_blob``
    (the verified groups of ``data``, or what makes it once the file is in
    place) at ``cache`` and run the hooks."""
    written = write_if_changed(output.path, data, mode=output.mode, owner=output.owner, group=output.group,
                               expected=expected, keep_previous=backups.saver(output))
    applied = Applied(written)
    if written.changed:
        backups.prune_quietly(output)
        modelcache.save(cache, cache_blob() if callable(cache_blob) else cache_blob)
        if output.post_change_command:
            applied.command, applied.check_problem = after_change(output)
    return applied


def after_change(output: Output) -> tuple[CommandResult, str | None]:
    """Run the output's post-change command and then, when it succeeded, its
    reload check: the command's result and the check's problem, if any."""
    assert output.post_change_command, "only for an output with a post-change command"
    command = run_post_change(output.post_change_command, timeout=output.post_change_timeout)
    log.log(logging.INFO if command.ok else logging.ERROR, "post-change command: %s", command.describe())
    problem = check_reload(output) if command.ok and output.reload_check_command else None
    return command, problem


def check_reload(output: Output) -> str | None:
    """Run the output's reload check; a problem sentence, or None when the
    output matches (e.g. mod_groups is still loaded after the reload)."""
    assert output.reload_check_command, "only for an output with a reload check"
    check = run_post_change(output.reload_check_command, timeout=output.post_change_timeout)
    if not check.ok:
        problem = f"reload check failed: {check.describe()}"
    elif re.search(output.reload_check_expect, check.stdout) is None:
        module = "groups_live" if output.live_updates else "groups"
        first = next((line.strip() for line in check.stdout.splitlines() if line.strip()), "(no output)")
        problem = (f"reload check: the output of {' '.join(check.command)!r} does not match "
                   f"{output.reload_check_expect!r} ({first!r}); is mod_{module} still loaded? "
                   "A reload while the groups file was missing unloads it")
    else:
        return None
    log.error("%s: %s", output.path, problem)
    return problem
