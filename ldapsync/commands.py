"""Running the commands an output configures (the post-change command and
its reload check) safely: no shell, a minimal environment, a time limit
that ends the whole process group.

:func:`run_post_change` never raises for a command that fails, hangs or
does not exist: the file is already written by then, and the caller decides
how loud to be.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ldapsync.errors import ExitCode, UserError


@dataclass(frozen=True)
class CommandResult:
    """How the post-change command ended.

    ``returncode`` is None when the command did not run (``error`` says
    why) or was killed at the timeout (``timed_out``); negative when a
    signal ended it.
    """

    command: tuple[str, ...]
    returncode: int | None
    stdout: str
    stderr: str
    duration: float
    ok: bool
    timed_out: bool = False
    timeout: float | None = None
    error: str | None = None

    def describe(self) -> str:
        """One line for the log."""
        shown = repr(shlex.join(self.command))
        if self.error is not None:
            return f"{shown} {self.error}"
        if self.timed_out:
            return f"{shown} timed out after {self.timeout:g} s{_first_line(self)}"
        if self.returncode == 0:
            return f"{shown} succeeded in {self.duration:.2f} s"
        if self.returncode is not None and self.returncode < 0:
            try:
                name = signal.Signals(-self.returncode).name
            except ValueError:
                name = f"signal {-self.returncode}"
            return f"{shown} was killed by {name}{_first_line(self)}"
        return f"{shown} exited {self.returncode}{_first_line(self)}"


def _first_line(result: CommandResult, limit: int = 200) -> str:
    """': ' and the first non-blank line of stderr (else stdout), printable
    and short, so that describe() stays one line."""
    for text in (result.stderr, result.stdout):
        for line in text.splitlines():
            line = "".join(c if c.isprintable() else "?" for c in line.strip())
            if line:
                if len(line) > limit:
                    line = line[: limit - 1] + "…"
                return f": {line}"
    return ""


def split_command(command: str | Sequence[str]) -> tuple[str, ...]:
    """The argument vector of ``command``: a string is split like a shell
    would (``shlex.split``) but never given to one; a sequence is used as is.

    Raises :class:`UserError` (exit code 78) for an empty or unbalanced
    command, so that the configuration can be checked before any write.
    """
    if isinstance(command, str):
        try:
            argv = tuple(shlex.split(command))
        except ValueError as exc:
            raise UserError(f"post-change command {command!r}: {exc}", ExitCode.CONFIG) from None
    else:
        argv = tuple(command)
        if not all(isinstance(arg, str) for arg in argv):
            raise UserError(f"post-change command {argv!r}: every argument must be a string", ExitCode.CONFIG)
    if not argv or not argv[0]:
        raise UserError("the post-change command is empty", ExitCode.CONFIG)
    return argv


#: What a post-change command inherits of ldapsync's environment: enough to
#: find programs and speak the locale, and nothing that may hold a secret
#: (the bind password's variable above all).
COMMAND_ENVIRONMENT = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE",
                       "LC_MESSAGES", "TZ", "TMPDIR")
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def command_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a post-change command runs with: the few variables of
    :data:`COMMAND_ENVIRONMENT` that are set, then ``extra``."""
    environment = {k: os.environ[k] for k in COMMAND_ENVIRONMENT if k in os.environ}
    environment.setdefault("PATH", _DEFAULT_PATH)
    return {**environment, **(extra or {})}


def run_post_change(
    command: str | Sequence[str],
    *,
    timeout: float = 60.0,
    env: Mapping[str, str] | None = None,
) -> CommandResult:
    """Run ``command`` (no shell, stdin from /dev/null, output captured).

    The command gets a minimal environment (:func:`command_environment`),
    plus ``env``.  At the timeout the command's whole process group is
    killed.  A command that fails, hangs or does not exist gives
    ``ok=False``, never an exception; only a malformed command raises (see
    :func:`split_command`).
    """
    argv = split_command(command)
    if not timeout > 0:
        raise ValueError(f"timeout must be positive, not {timeout!r}")
    environment = command_environment(env)
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environment,
            encoding="utf-8",
            errors="replace",
            start_new_session=True,  # its own process group, to kill it whole
            close_fds=True,
        )
    except OSError as exc:
        why = "not found" if isinstance(exc, FileNotFoundError) else f"cannot be run: {exc.strerror or exc}"
        return CommandResult(argv, None, "", "", time.monotonic() - start, False, error=why)

    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        try:
            stdout, stderr = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            # Something outside the group still holds the pipes: give up on them.
            proc.kill()
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
            proc.wait()
            stdout = stderr = ""
        return CommandResult(
            argv, None, stdout or "", stderr or "", time.monotonic() - start, False,
            timed_out=True, timeout=timeout,
        )
    except BaseException:
        _kill_group(proc)
        proc.wait()
        raise
    code = proc.returncode
    return CommandResult(argv, code, stdout, stderr, time.monotonic() - start, code == 0)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
