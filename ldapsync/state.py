"""What the last runs did, kept in a small JSON file for ``status`` and monitoring,
and the lock that keeps two runs from writing at once."""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ConfigDict, TypeAdapter, ValidationError

from ldapsync import safeio
from ldapsync.errors import ExitCode, UserError
from ldapsync.writer import write_if_changed

log = logging.getLogger(__name__)


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
    # rollbacks are recorded beside the runs, not as runs: the fields above
    # describe the last sync of the directory, which monitoring judges
    rollbacks_total: int = 0
    last_rollback: dict | None = None  # {"finished", "output", "backup_taken", "exit_code", "error"}
    # how the last run read the directory (ldapsync.incremental.ReadInfo;
    # None: it failed before reading), and when the last successful run of
    # each kind finished ("unchanged" counts as incremental)
    read: dict | None = None
    last_full_read: str | None = None
    last_incremental_read: str | None = None

    # read back with pydantic, strictly: a string where a number belongs is damage
    __pydantic_config__ = ConfigDict(strict=True)

    def finished_at(self) -> float | None:
        return _epoch(self.finished)

    def last_success_at(self) -> float | None:
        return _epoch(self.last_success)

    def last_rollback_at(self) -> float | None:
        return None if self.last_rollback is None else _epoch(self.last_rollback["finished"])

    def last_full_read_at(self) -> float | None:
        return _epoch(self.last_full_read)

    def last_incremental_read_at(self) -> float | None:
        return _epoch(self.last_incremental_read)

    @property
    def read_kind(self) -> str | None:
        """How the last run read the directory: full, incremental, unchanged (None: not recorded)."""
        return None if self.read is None else self.read["kind"]

    def __post_init__(self) -> None:
        for key in ("started", "finished", "last_success", "last_full_read", "last_incremental_read"):
            _epoch(getattr(self, key))  # a date that does not parse is damage
        if self.read is not None:
            if self.read.get("kind") not in READ_KINDS:
                raise ValueError(f"read.kind is not one of {', '.join(READ_KINDS)}")
            entries = self.read.get("entries", 0)
            if isinstance(entries, bool) or not isinstance(entries, int) or entries < 0:
                raise ValueError("read.entries is not a count")
        if self.last_rollback is not None and not isinstance(self.last_rollback.get("finished"), str):
            raise ValueError("last_rollback.finished is not a date")
        self.last_rollback_at()
        for key in ("runs_total", "failures_total", "refusals_total", "consecutive_failures", "rollbacks_total"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key} is negative")
        # what status and the metrics add up must be numbers
        for where, record, keys in (("counts", self.counts, _COUNTED),
                                    *((f"outputs[{i}]", o, _OUTPUT_COUNTED) for i, o in enumerate(self.outputs))):
            for key in keys:
                value = record.get(key, 0)
                if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
                    raise ValueError(f"{where}.{key} is not a number")


READ_KINDS = ("full", "incremental", "unchanged")  # as ldapsync.incremental names them
_COUNTED = ("shared_groups", "users_in_groups", "users_read", "groups_read")
_OUTPUT_COUNTED = ("groups", "member_lines", "member_lines_added", "member_lines_removed")


def _epoch(text: str | None) -> float | None:
    return None if text is None else datetime.fromisoformat(text).timestamp()


def now_iso(at: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if at is None else at, UTC).isoformat(timespec="seconds")


_shape = TypeAdapter(State)


def read(path: Path) -> tuple[State | None, str | None]:
    """The state at ``path`` and, when it cannot be used, why.  (None, None):
    no run has written it yet.  The file is input like any other: a link, a
    FIFO, a huge file, text that is not JSON or JSON of another shape is a
    problem to report, never a crash, and never trusted."""
    try:
        data = safeio.read_bytes(path, "state")
    except FileNotFoundError:
        return None, None
    except (OSError, safeio.UnsafeFile) as exc:
        return None, f"the state file {path} cannot be used ({_why(exc)})"
    try:
        return _shape.validate_json(data), None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        return None, f"the state file {path} is damaged ({where}: {first['msg']})"


def load(path: Path) -> State | None:
    """The state at ``path``; None when no run has written it yet or it is
    damaged (a warning says so: the next run starts a new record)."""
    state, problem = read(path)
    if problem:
        log.warning("%s; starting a new record", problem)
    return state


def _why(exc: Exception) -> str:
    return str(exc.strerror or exc) if isinstance(exc, OSError) else str(exc)


def save(path: Path, state: State) -> None:
    """Replace the state file atomically (never a half-written record)."""
    data = json.dumps(asdict(state), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    write_if_changed(path, data.encode("utf-8"), mode=0o644, kind="state")


def record(path: Path, started: float, finished: float, exit_code: int, error: str | None,
           counts: dict, outputs: list[dict], read: dict | None = None) -> State:
    """Add one run to the state file and return the new state.  ``read``:
    how the run read the directory (None: it did not get that far)."""
    previous = load(path) or State()
    ok = exit_code == 0
    refused = exit_code == ExitCode.REFUSED
    kind = None if read is None else read["kind"]
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
        rollbacks_total=previous.rollbacks_total, last_rollback=previous.last_rollback,
        read=read,
        last_full_read=now_iso(finished) if ok and kind == "full" else previous.last_full_read,
        last_incremental_read=(now_iso(finished) if ok and kind in ("incremental", "unchanged")
                               else previous.last_incremental_read),
    )
    save(path, state)
    return state


def record_rollback(path: Path, finished: float, output: Path, backup_taken: str, exit_code: int,
                    error: str | None) -> State:
    """Add one rollback to the state file and return the new state; the
    record of the last sync stays as it was."""
    previous = load(path) or State()
    state = replace(previous, rollbacks_total=previous.rollbacks_total + 1, last_rollback={
        "finished": now_iso(finished), "output": str(output), "backup_taken": backup_taken,
        "exit_code": exit_code, "error": error})
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
    crashed run never leaves a stale lock behind.  The lock file is opened
    without following a link and must be a regular file of this account
    with one name, so that writing the PID into it can never reach another
    file; a lock in a directory other accounts can write is warned about
    (they could delete it and so let two runs in).
    """
    problem = safeio.folder_problem(path.parent, path)
    if problem:
        log.warning("the lock %s is not safe from other accounts: %s; set state.path (the lock goes beside it) "
                    "or state.lock_path to a directory only ldapsync's account can write", path, problem)
    try:
        fd = safeio.open_regular(path, os.O_RDWR | os.O_CREAT)
    except (OSError, safeio.UnsafeFile) as exc:
        raise UserError(f"cannot open the lock file {path}: {_why(exc)}", ExitCode.CANTCREAT) from None
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or st.st_nlink != 1:
            raise UserError(f"cannot use the lock file {path}: it belongs to another account or has other names "
                            "(hard links); remove it", ExitCode.CANTCREAT)
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
