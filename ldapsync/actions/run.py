"""``run``: one sync, recorded: the lock, the pipeline (:func:`ldapsync.sync.run`),
the state file and metrics (:func:`ldapsync.service.recorded_run`, the same
path each sync of ``serve`` takes)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ldapsync.errors import ExitCode, UserError

if TYPE_CHECKING:
    from ldapsync.config import Config
    from ldapsync.service import Recorded


def run(config: Config, *, dry_run: bool = False, force: str | None = None, full: bool = False) -> Recorded:
    """The recorded outcome of one sync, with its result; a sync that did not
    get as far as a result (the lock, the directory, a safety limit) raises
    a :class:`UserError` with its exit code, after it was recorded."""
    from ldapsync import sync
    from ldapsync.service import recorded_run

    outcome = recorded_run(config, dry_run=dry_run, force=force, full="--full" if full else None)
    if outcome.result is None:
        raise UserError(outcome.error or "the sync failed", ExitCode(outcome.exit_code))
    sync.log_findings(outcome.result.findings)
    return outcome
