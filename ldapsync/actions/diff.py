"""``diff``: what changes between two groups files, or between each output
file and what the directory says now."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from ldapsync import diff as difflib
from ldapsync import groupsfile
from ldapsync.actions.inputs import read_both, read_groups

if TYPE_CHECKING:
    from ldapsync.config import Config
    from ldapsync.directory import Directory


def diff_files(old: str, new: str) -> difflib.Diff:
    return difflib.diff(*read_both(partial(read_groups, old), partial(read_groups, new)))


def diff_pending(config: Config, directory: Directory) -> list[tuple[str, difflib.Diff]]:
    """Each output's path and what a run would change in it now."""
    from ldapsync import sync  # the directory's modules load only for a diff against the directory

    snapshot = sync.fetch(config, directory)
    sync.log_findings(snapshot.findings)
    results = []
    for output in config.outputs:
        model, _ = sync.render_output(output, snapshot)  # rendered and verified: its reading is the model's
        old = groupsfile.parse(sync.current_text(output) or "")
        results.append((str(output.path), difflib.diff(old, groupsfile.GroupsFile.of_model(model))))
    return results
