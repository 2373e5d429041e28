"""What the throwaway servers of the tests (slapd, the Samba DC, 389-ds) share: a
child process with a log file, started, waited for and stopped the same way."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    import ldap3

START_TIMEOUT = 30.0


def which(tool: str) -> str | None:
    """A server tool, also where Debian installs them (/usr/sbin is not on a user's PATH)."""
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/usr/local/sbin:/usr/bin")


class ServerProcess:
    """A server run as a child process whose output goes to ``log_path``."""

    name = "server"

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        raise NotImplementedError

    def launch(self, argv: Sequence[str], cwd: Path | None = None) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, cwd=cwd)

    def wait_for_ports(self, address: str, ports: Sequence[int], timeout: float = START_TIMEOUT) -> None:
        """Until every port accepts connections; stops the server and raises,
        with the end of its log, if it exits or does not answer in time."""
        assert self.proc is not None, "launch() first"
        deadline = time.monotonic() + timeout
        waiting = list(ports)
        while waiting and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                raise RuntimeError(f"{self.name} exited at startup:\n{self.log_tail()}")
            try:
                socket.create_connection((address, waiting[0]), timeout=0.2).close()
                waiting.pop(0)
            except OSError:
                time.sleep(0.02)
        if waiting:
            self.stop()
            raise RuntimeError(f"{self.name} did not answer on {address}:{waiting[0]} within {timeout:.0f} s:\n"
                               f"{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_bytes()[-chars:].decode("utf-8", "replace")
        except OSError:
            return ""


class LdapServer(ServerProcess):
    """A throwaway LDAP server (slapd, 389-ds): its URL and the account that
    may change anything, for tests to change data online."""

    url = ""
    admin_dn = ""
    admin_password = ""

    def admin_connection(self) -> ldap3.Connection:
        """An ldap3 Connection bound as the server's administrator."""
        import ldap3  # imported here so that `serve` needs only the standard library

        return ldap3.Connection(ldap3.Server(self.url, get_info=ldap3.NONE), self.admin_dn, self.admin_password,
                                auto_bind=True, raise_exceptions=True)


def stop_on_signals() -> list[int]:
    """SIGTERM and SIGINT from now on append to the list returned, and do
    nothing else: a handler runs between two steps of the main thread, and
    one that took a lock (threading.Event.set) could wait for ever for the
    lock that thread holds."""
    received: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda number, _frame: received.append(number))
    return received


def serve_until_stopped(server: ServerProcess, received: list[int]) -> int:
    """Until a signal comes (``received``, from :func:`stop_on_signals`): 0;
    or until the server exits first: 1, with the end of its log."""
    while not received:
        if server.proc is None or server.proc.poll() is not None:
            print(f"{server.name} exited:\n{server.log_tail()}", file=sys.stderr)
            return 1
        time.sleep(0.5)
    return 0
