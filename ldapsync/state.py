"""What the last runs did, kept in a small JSON file for ``status`` and monitoring,
and the lock that keeps two runs from writing at once."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ldapsync.errors import ExitCode, UserError
from ldapsync.writer import write_if_changed


@dataclass
class State:
    """The record ``run`` and ``serve`` leave after every run."""

    started: str | None = None  # ISO 8601, UTC
    finished: str | None = None
    result: str = "never"  # "success", "failed", "refused" (a safety limit) or "never"
    exit_code: int | None = None
    error: str | None = None
    counts: dict = field(default_factory=dict)
    outputs: list[dict] = field(default_factory=list)
    last_success: str | None = None
    last_duration: float | None = None
    runs_total: int = 0
    failures_total: int = 0
    refusals_total: int = 0
    consecutive_failures: int = 0

    def finished_at(self) -> float | None:
        return _epoch(self.finished)

    def last_success_at(self) -> float | None:
        return _epoch(self.last_success)


def _epoch(text: str | None) -> float | None:
    return None if text is None else datetime.fromisoformat(text).timestamp()


def now_iso(at: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if at is None else at, timezone.utc).isoformat(timespec="seconds")


def load(path: Path) -> State | None:
    """The state at ``path``; None when no run has written it yet."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read the state file {path}: {exc}", ExitCode.NOINPUT) from None
    known = {k: v for k, v in data.items() if k in State.__dataclass_fields__}
    return State(**known)


def save(path: Path, state: State) -> None:
    """Replace the state file atomically (never a half-written record)."""
    data = json.dumps(asdict(state), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    write_if_changed(path, data.encode("utf-8"), mode=0o644)


def record(path: Path, started: float, finished: float, exit_code: int, error: str | None,
           counts: dict, outputs: list[dict]) -> State:
    """Add one run to the state file and return the new state."""
    previous = load(path) or State()
    ok = exit_code == 0
    refused = exit_code == ExitCode.REFUSED
    state = State(
        started=now_iso(started), finished=now_iso(finished),
        result="success" if ok else "refused" if refused else "failed",
        # a failed run has no counts of its own: keep those of the last one
        exit_code=exit_code, error=error, counts=counts or (previous.counts if not ok else {}), outputs=outputs,
        last_success=now_iso(finished) if ok else previous.last_success,
        last_duration=round(finished - started, 3),
        runs_total=previous.runs_total + 1,
        failures_total=previous.failures_total + (0 if ok else 1),
        refusals_total=previous.refusals_total + refused,
        consecutive_failures=0 if ok else previous.consecutive_failures + 1,
    )
    save(path, state)
    return state


class Busy(UserError):
    """Another ldapsync holds the lock."""

    def __init__(self, path: Path, waited: float) -> None:
        super().__init__(f"another ldapsync run holds the lock {path} (waited {waited:.0f} s); nothing done",
                         ExitCode.BUSY)


@contextmanager
def locked(path: Path, timeout: float) -> Iterator[None]:
    """Hold an exclusive lock on ``path``, waiting at most ``timeout`` seconds.

    flock locks belong to the open file: they go away with the process, so a
    crashed run never leaves a stale lock behind.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise UserError(f"cannot open the lock file {path}: {exc.strerror}", ExitCode.CANTCREAT) from None
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise UserError(f"cannot lock {path}: {exc.strerror}", ExitCode.CANTCREAT) from None
                if time.monotonic() >= deadline:
                    raise Busy(path, timeout) from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)
