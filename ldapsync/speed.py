"""Helpers for the hot paths that handle company-sized files."""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import os
import pickle
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Generic, ParamSpec, TypeVar

from ldapsync.errors import ExitCode, UserError

P = ParamSpec("P")
R = TypeVar("R")


def without_cycle_collector(fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn`` with the cycle collector paused.

    Fetching, mapping, parsing and diffing allocate millions of small
    objects and create no reference cycles; the collector's repeated passes
    over them take time and find nothing to free.  Memory is still freed
    by reference counting.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        enabled = gc.isenabled()
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            if enabled:
                gc.enable()

    return wrapper


T = TypeVar("T")


class Parallel(Generic[T]):
    """``fn()`` computed in a forked child process while the caller goes on:
    reading the groups, or verifying a large file, is work that the other
    core can take.  ``fn`` sees the caller's memory as it was at the fork
    and must return plain data (it is pickled back); what it logs is handed
    back too, and logged here when the result is taken.  Where forking is not
    safe (threads running, as in ``serve``) or not possible, ``fn`` runs
    right away in this process instead; the result is the same.  An
    exception in ``fn`` is a bug: raised here at once when ``fn`` runs here,
    a :class:`ChildFailed` from :meth:`result` (with the traceback on
    stderr) when it runs in a child.  A :class:`UserError` (a problem for
    the user, such as a file that cannot be read) is raised again from
    :meth:`result`, as if ``fn`` had run here."""

    @staticmethod
    def forks() -> bool:
        """Whether ``fn`` would run in a child (else it runs right away, here)."""
        return hasattr(os, "fork") and threading.active_count() == 1

    def __init__(self, fn: Callable[[], T]) -> None:
        self._pid: int | None = None
        if not self.forks():
            self._value = fn()
            return
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: compute, send, and leave without running any cleanup of the parent's
            status = 1
            try:
                os.close(read_end)
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle (it stops us)
                records = _keep_log_records()
                try:
                    value, error = fn(), None
                except UserError as exc:
                    value, error = None, (str(exc), int(exc.exit_code))
                with os.fdopen(write_end, "wb") as pipe:
                    pickle.dump((value, error, records), pipe, protocol=pickle.HIGHEST_PROTOCOL)
                status = 0
            except BaseException:
                traceback.print_exc()
                sys.stderr.flush()
            finally:
                os._exit(status)
        os.close(write_end)
        self._pid, self._read_end = pid, read_end

    def result(self) -> T:
        """The value of ``fn()``; raises :class:`ChildFailed` if the child
        died without giving one (killed, out of memory, an exception)."""
        if self._pid is None:
            return self._value
        with os.fdopen(self._read_end, "rb") as pipe:
            try:
                (value, error, records), sent = pickle.load(pipe), True  # as it arrives, not whole in memory
            except (EOFError, pickle.UnpicklingError):
                value, error, records, sent = None, None, [], False
        _, status = os.waitpid(self._pid, 0)
        self._pid = None
        code = os.waitstatus_to_exitcode(status)
        if code != 0 or not sent:
            raise ChildFailed(f"the worker process ended with {'signal ' + str(-code) if code < 0 else code}")
        for record in records:
            logging.getLogger(record.name).handle(record)
        if error is not None:
            raise UserError(error[0], ExitCode(error[1]))
        self._value = value
        return value

    def discard(self) -> None:
        """Stop the child and forget the result (the caller gave up)."""
        if self._pid is not None:
            with contextlib.suppress(OSError):
                os.kill(self._pid, signal.SIGKILL)
            os.waitpid(self._pid, 0)
            os.close(self._read_end)
            self._pid = None


def _keep_log_records() -> list[logging.LogRecord]:
    """In a worker: keep what is logged, formatted, instead of writing it."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            record.msg, record.args, record.exc_info, record.exc_text = record.getMessage(), None, None, None
            records.append(record)

    keep = Keep()
    logging.getLogger().handlers[:] = [keep]
    for logger in logging.Logger.manager.loggerDict.values():
        if isinstance(logger, logging.Logger) and logger.handlers:  # e.g. the CLI's "ldapsync"
            logger.handlers[:] = [keep]
            logger.propagate = False
    return records


V = TypeVar("V")


class Handover(Generic[V]):
    """A large value (a rendered file) handed to a :class:`Parallel` worker:
    the worker takes it and can free it once used, and the caller releases
    it once the worker started, so that neither process holds it longer
    than needed.  Where the worker runs in this process, taking it is what
    lets it go."""

    def __init__(self, value: V) -> None:
        self._value: V | None = value

    @property
    def value(self) -> V:
        assert self._value is not None, "already taken or released"
        return self._value

    def take(self) -> V:
        value = self.value
        self._value = None
        return value

    def release(self) -> None:
        self._value = None


class ChildFailed(RuntimeError):
    """A :class:`Parallel` worker gave no result."""
