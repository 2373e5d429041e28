"""``status``: the last run, judged as a monitoring check (Nagios/Icinga
plugin style: OK, CRITICAL or UNKNOWN, with performance data)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from ldapsync import state as statelib
from ldapsync.config import Config

OK, CRITICAL, UNKNOWN = 0, 2, 3

@dataclass
class Status:
    code: int  # OK, CRITICAL or UNKNOWN: the plugin's exit status
    problems: list[str] = field(default_factory=list)
    unknown: str | None = None  # why there is nothing to judge
    state: statelib.State | None = None
    age: float | None = None  # seconds since the last success

    @property
    def word(self) -> str:
        return {OK: "OK", CRITICAL: "CRITICAL"}.get(self.code, "UNKNOWN")

    def as_json(self) -> dict:
        return {"status": self.word, "problems": self.problems,
                "last_success_age_seconds": None if self.age is None else round(self.age),
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
    return Status(CRITICAL if problems else OK, problems, None, state, age)


def ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
