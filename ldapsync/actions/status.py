"""``status``: the last run, judged as a monitoring check (Nagios/Icinga
plugin style: OK, CRITICAL or UNKNOWN, with performance data)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ldapsync import snapshot as snapshotlib
from ldapsync import state as statelib
from ldapsync.config import Config

OK, CRITICAL, UNKNOWN = 0, 2, 3

@dataclass
class SnapshotStatus:
    """The copy of the directory incremental runs start from, as status sees it."""

    path: Path | None
    age: float | None = None  # seconds since a successful run last saved or confirmed it
    method: str | None = None  # the change tracking it was made with
    full_read_at: float | None = None  # the full read behind it
    problem: str | None = None  # why there is none to use (None: there is one)

    def as_json(self) -> dict:
        return {"path": None if self.path is None else str(self.path),
                "age_seconds": None if self.age is None else round(self.age), "method": self.method,
                "full_read": None if self.full_read_at is None else statelib.now_iso(self.full_read_at),
                "problem": self.problem}


@dataclass
class Status:
    code: int  # OK, CRITICAL or UNKNOWN: the plugin's exit status
    problems: list[str] = field(default_factory=list)
    unknown: str | None = None  # why there is nothing to judge
    state: statelib.State | None = None
    age: float | None = None  # seconds since the last success
    snapshot: SnapshotStatus | None = None

    def read_age(self, kind: str) -> float | None:
        """Seconds since the last successful ``full`` or ``incremental`` read."""
        if self.state is None:
            return None
        at = self.state.last_full_read_at() if kind == "full" else self.state.last_incremental_read_at()
        return None if at is None else max(0.0, time.time() - at)

    @property
    def word(self) -> str:
        return {OK: "OK", CRITICAL: "CRITICAL"}.get(self.code, "UNKNOWN")

    def as_json(self) -> dict:
        full, incremental = self.read_age("full"), self.read_age("incremental")
        return {"status": self.word, "problems": self.problems,
                "last_success_age_seconds": None if self.age is None else round(self.age),
                "last_full_read_age_seconds": None if full is None else round(full),
                "last_incremental_read_age_seconds": None if incremental is None else round(incremental),
                "snapshot": None if self.snapshot is None else self.snapshot.as_json(),
                "state": None if self.state is None else asdict(self.state)}


def status(config: Config, max_age: float, max_age_text: str) -> Status:
    """CRITICAL when the last run failed or the last success is older than
    ``max_age`` seconds (``max_age_text`` as the user wrote it)."""
    if config.state.path is None:
        return Status(UNKNOWN, unknown="no state.path in the configuration: runs are not recorded")
    state, problem = statelib.read(config.state.path)
    if state is None:
        return Status(UNKNOWN, unknown=problem or f"no run recorded yet in {config.state.path}")
    success_at = state.last_success_at()
    age = None if success_at is None else time.time() - success_at
    problems = []
    if state.result != "success":
        problems.append(f"last run failed (exit {state.exit_code}): {state.error}")
    if age is None:
        problems.append("no successful run recorded")
    elif age > max_age:
        problems.append(f"last success {ago(age)} ago, more than {max_age_text}")
    return Status(CRITICAL if problems else OK, problems, None, state, age, snapshot(config, state))


def snapshot(config: Config, state: statelib.State) -> SnapshotStatus:
    """The snapshot beside the state file: its age is the time since the last
    successful run that saved it, or that found nothing changed since it
    (which confirms it without saving it again)."""
    path = snapshotlib.path_for(config.state.path)
    if path is None or not path.exists():
        return SnapshotStatus(path, problem="no snapshot: the next run reads the whole directory")
    try:
        header = snapshotlib.read_header(path)
    except snapshotlib.Unusable as exc:
        return SnapshotStatus(path, problem=f"{exc}: the next run reads the whole directory")
    confirmed = max(header.saved_at, state.last_incremental_read_at() or 0)
    return SnapshotStatus(path, max(0.0, time.time() - confirmed), header.method, header.full_read_at)


def ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
