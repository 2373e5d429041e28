"""Errors a user can fix, and the exit codes ldapsync promises (sysexits style)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Stable exit codes; the README lists them for monitoring and scripts."""

    OK = 0
    CHANGES = 1  # diff: changes pending; check: problems found
    USAGE = 64  # bad command line
    DATAERR = 65  # bad input data (a file or argument that cannot be used)
    NOINPUT = 66  # an input file does not exist or cannot be read
    UNAVAILABLE = 69  # the directory cannot be reached, or serve cannot listen on its metrics port
    SOFTWARE = 70  # a bug in ldapsync
    CANTCREAT = 73  # the output cannot be written
    STATE_NOT_SAVED = 74  # the output was written (and reloaded), but the state file could not be saved
    BUSY = 75  # another ldapsync run holds the lock (try again later)
    POST_CHANGE_FAILED = 76  # the file was written, but the post-change command or its check failed
    REFUSED = 77  # a safety limit stopped the write (nothing written); --force overrides
    CONFIG = 78  # the configuration is invalid


class UserError(Exception):
    """A problem the user can fix: shown as one line, no traceback."""

    def __init__(self, message: str, exit_code: ExitCode = ExitCode.DATAERR) -> None:
        super().__init__(message)
        self.exit_code = exit_code
