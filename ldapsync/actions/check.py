"""``check``: lint a groups file, or check that a configuration can work."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ldapsync import groupsfile, safeio
from ldapsync.actions.inputs import read_groups
from ldapsync.commands import split_command
from ldapsync.errors import UserError

if TYPE_CHECKING:
    from ldapsync.config import Config
    from ldapsync.directory import Directory
    from ldapsync.sync import Counts


@dataclass
class FileCheck:
    """What Prosody would make of a groups file, line by line."""

    path: str
    reading: groupsfile.GroupsFile

    @property
    def diagnostics(self) -> tuple[groupsfile.Diagnostic, ...]:
        return self.reading.diagnostics

    @property
    def errors(self) -> int:
        """Lines Prosody skips, or that break rosters."""
        return sum(d.severity == "error" for d in self.diagnostics)

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.path,
            "clean": not self.diagnostics,
            "groups": len(self.reading.visible_groups()),
            "diagnostics": [{"line": d.line, "severity": d.severity, "code": d.code, "message": d.message}
                            for d in self.diagnostics],
        }


def check_file(path: str) -> FileCheck:
    return FileCheck(path, read_groups(path))


@dataclass
class ConfigCheck:
    """Problems that would stop or spoil a run, and what was found to work."""

    path: str
    problems: list[str]
    notes: list[str]
    counts: Counts | None = None  # with --connect: what the directory holds

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        return {"config": self.path, "ok": self.ok, "problems": self.problems, "notes": self.notes,
                "counts": None if self.counts is None else self.counts.as_dict()}


def check_config(path: str, config: Config, connect: bool) -> ConfigCheck:
    """The config at ``path`` (loaded as ``config``): templates, outputs,
    state and lock directories; with ``connect``, the directory itself."""
    from ldapsync.templates import Templates

    Templates(config.mapping)  # raises ConfigError naming the template
    report = ConfigCheck(path, [], [f"{path}: configuration valid"])
    try:
        password = config.bind_password()
    except UserError as exc:
        report.problems.append(str(exc))
        password = None
    _check_outputs(config, report)
    for key, where in (("state.path", config.state.path), ("the lock", config.lock_path)):
        problem = where and safeio.folder_problem(where.parent, where)
        if problem:
            report.problems.append(f"{key}: {problem}")
    if connect and not report.problems:
        from ldapsync.directory import directory_for

        _check_directory(config, directory_for(config.ldap, password), report)
    return report


def _check_outputs(config: Config, report: ConfigCheck) -> None:
    for output in config.outputs:
        folder = output.path.parent
        if not folder.is_dir():
            report.problems.append(f"outputs: {output.path}: the directory {folder} does not exist")
        elif not os.access(folder, os.W_OK):
            report.problems.append(f"outputs: {output.path}: the directory {folder} is not writable")
        else:
            report.notes.append(f"{output.path}: directory writable")
        command = output.post_change_command
        if command:
            argv = split_command(command)  # valid: the config checked it
            if shutil.which(argv[0]) is None:
                report.problems.append(f"outputs: {output.path}: post_change_command: {argv[0]!r} not found")
            else:
                report.notes.append(f"{output.path}: post-change command {argv[0]} found")


def _check_directory(config: Config, directory: Directory, report: ConfigCheck) -> None:
    from ldapsync import sync

    snapshot = sync.fetch(config, directory)
    sync.log_findings(snapshot.findings)
    counts = report.counts = snapshot.counts()
    report.notes.append(f"bind as {config.ldap.bind_dn or 'anonymous'} works; {counts.users_read} users, "
                        f"{counts.groups_read} groups; {counts.shared_groups} shared groups with "
                        f"{counts.users_in_groups} users")
    if not counts.users_read:
        report.problems.append(f"users: no entries under {config.users.base!r} match {config.users.filter!r}")
    if not counts.groups_read:
        report.problems.append(f"groups: no entries under {config.groups.base!r} match {config.groups.filter!r}")
    # a run goes on past a collision, holding the name: here it is something to fix
    report.problems += [f"groups: {f}" for f in snapshot.findings if f.kind == "group-collision"]
    for key in snapshot.templates.user_attributes:
        if not any(e.attrs.get(key.lower()) for e in snapshot.members.users.values()):
            report.problems.append(f"mapping: the attribute {key!r} is used by a template but no user has it")
    _check_change_tracking(config, directory, report)


def _check_change_tracking(config: Config, directory: Directory, report: ConfigCheck) -> None:
    """Whether runs can read only the changes (docs/incremental.md)."""
    from ldapsync.directory.changes import NotIncremental, tracker_for

    setting = config.ldap.change_tracking
    try:
        with directory.sibling() as again:
            tracker = tracker_for(again, setting, config.users.base)
    except NotIncremental as exc:
        (report.problems if setting not in ("auto", "off") else report.notes).append(
            f"change tracking: none, every run reads everything ({exc})")
        return
    how = "only the changes" if tracker.incremental else "nothing when nothing changed, everything otherwise"
    report.notes.append(f"change tracking: {tracker.describe()}; runs read {how}"
                        + ("" if config.state.path else ", once state.path is set"))
