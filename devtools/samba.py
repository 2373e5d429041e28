"""A throwaway Samba Active Directory domain controller for tests and demos.

Everything lives in one directory: ``samba-tool domain provision`` writes
the domain there (about 5 s), devtools/samba_seed.py fills it through
Samba's own Python bindings in one transaction (thousands of users in
seconds), and ``samba -i -M single`` serves LDAP from it (needs root).
Samba's LDAP ports are fixed (389, 636, 3268, 3269), so the DC listens on
its own loopback address (127.0.0.2, or the next one with the ports free)
and never meets the slapd of other tests on 127.0.0.1.

TLS: Samba's self-made certificate names only ``DC1.<realm>`` in its subject
(no subjectAltName), which a client connecting to 127.0.0.2 must refuse;
so the DC is given a certificate for its address from a throwaway CA
(devtools.slapd.make_certificates), and ``ca_file`` names that CA.

    python -m devtools.samba serve --dir DIR      # the test directory, until Ctrl-C
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from devtools.process import ServerProcess, which
from devtools.slapd import make_certificates, tls_missing

REALM = "EXAMPLE.TEST"
DOMAIN = "EXAMPLE"
BASE = "DC=example,DC=test"
ADMIN_PASSWORD = "Admin-Secret-1"
SYNC_DN = f"CN=ldapsync,OU=Services,OU=Corp,{BASE}"
SYNC_PASSWORD = "Sync-Secret-1"
# Debian's python3, which has Samba's bindings (python3-samba); a virtualenv's does not.
SYSTEM_PYTHON = "/usr/bin/python3"
SEED_SCRIPT = Path(__file__).with_name("samba_seed.py")
PORTS = (389, 636, 3268, 3269)
START_TIMEOUT = 30.0


def missing() -> str | None:
    """None when a Samba DC can run here, else the reason it cannot."""
    if os.geteuid() != 0:
        return "a Samba AD DC needs root"
    for tool in ("samba", "samba-tool"):
        if which(tool) is None:
            return (f"{tool} is not installed (Debian packages samba samba-dsdb-modules samba-vfs-modules "
                    "samba-ad-provision)")
    if not Path(SYSTEM_PYTHON).exists() or subprocess.run(
            [SYSTEM_PYTHON, "-c", "import samba.samdb"], capture_output=True).returncode != 0:
        return f"{SYSTEM_PYTHON} cannot import Samba's Python bindings (Debian package python3-samba)"
    if tls_missing():
        return tls_missing()
    if free_address() is None:
        return ("no loopback address 127.0.0.2-127.0.0.30 has the ports 389, 636, 3268 and 3269 free; a system "
                "slapd or samba listening on every address takes them (see: ss -ltnp 'sport = :389'; "
                "systemctl stop slapd)")
    return None


def _port_free(address: str, port: int) -> bool:
    with socket.socket() as s:
        # as samba binds: connections of a DC just stopped (TIME_WAIT) do not count
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((address, port))
        except OSError:
            return False
    return True


def free_address() -> str | None:
    """A loopback address other than 127.0.0.1 whose LDAP ports are free."""
    for last in range(2, 31):
        address = f"127.0.0.{last}"
        if all(_port_free(address, port) for port in PORTS):
            return address
    return None


def user(sam: str, ou: str, *, display: str | None = None, disabled: bool = False, mail: str | None = None,
         **extra: str) -> dict:
    """A user entry for seed(): sAMAccountName, userPrincipalName sam@realm
    (lower-cased domain), displayName, mail, userAccountControl 512 or 514."""
    entry = {"dn": f"CN={sam},{ou}", "objectClass": "user", "sAMAccountName": sam,
             "userPrincipalName": f"{sam}@{REALM.lower()}",
             "userAccountControl": "514" if disabled else "512", **extra}
    if display:
        entry["displayName"] = display
    if mail:
        entry["mail"] = mail
    return entry


def group(dn: str, members: list[str], **extra: str) -> dict:
    cn = dn.split(",", 1)[0].split("=", 1)[1]
    # sAMAccountName holds none of " / \ [ ] : ; | = , + * ? < > @
    entry = {"dn": dn, "objectClass": "group", "sAMAccountName": re.sub(r"[^A-Za-z0-9._-]", "", cn)[:20], **extra}
    if members:
        entry["member"] = members
    return entry


def ou(dn: str) -> dict:
    return {"dn": dn, "objectClass": "organizationalUnit"}


class SambaDC(ServerProcess):
    """One samba process serving a domain provisioned into ``directory``."""

    name = "samba"

    def __init__(self, directory: Path, entries: list[dict], passwords: dict[str, str] | None = None,
                 links: Sequence[tuple[str, str]] = ()) -> None:
        self.dir = Path(directory)
        self.entries = entries
        self.passwords = passwords or {}
        self.links = [list(link) for link in links]
        self.address = free_address() or "127.0.0.2"
        self.url = f"ldap://{self.address}"
        self.ldaps_url = f"ldaps://{self.address}"
        self.conf = self.dir / "etc" / "smb.conf"
        self.ca_file = self.dir / "tls" / "ca.pem"
        super().__init__(self.dir / "samba.log")

    def _run(self, argv: list[str], what: str, **kwargs) -> str:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=300, **kwargs)
        if out.returncode != 0:
            raise RuntimeError(f"{what} failed (exit {out.returncode}):\n{out.stdout[-3000:]}{out.stderr[-3000:]}")
        return out.stdout

    def provision(self) -> None:
        d = self.dir
        d.mkdir(parents=True, exist_ok=True)
        options = {
            "interfaces": f"{self.address}/8",
            "bind interfaces only": "yes",
            "server services": "ldap",
            "pid directory": d / "run",
            "log file": d / "log.samba",
            "winbindd socket directory": d / "winbindd",
            "ntp signd socket directory": d / "ntp",
        }
        self._run([which("samba-tool"), "domain", "provision", "--use-rfc2307", f"--realm={REALM}",
                   f"--domain={DOMAIN}", "--server-role=dc", "--dns-backend=NONE",
                   # a long container host name would not do as a NetBIOS name
                   "--host-name=dc1", f"--adminpass={ADMIN_PASSWORD}", f"--targetdir={d}",
                   *(f"--option={k} = {v}" for k, v in options.items())], "samba-tool domain provision")
        tls = d / "tls"
        make_certificates(tls, [self.address, "localhost"])
        extra = {
            # provision drops this one; without it a simple bind over plain
            # ldap:// is refused (StartTLS and ldaps work either way)
            "ldap server require strong auth": "no",
            "tls enabled": "yes",
            "tls keyfile": tls / "server.key",
            "tls certfile": tls / "server.pem",
            "tls cafile": tls / "ca.pem",
        }
        text = self.conf.read_text()
        lines = "".join(f"\t{k} = {v}\n" for k, v in extra.items())
        self.conf.write_text(text.replace("[global]\n", f"[global]\n{lines}", 1))

    def seed(self) -> None:
        spec = json.dumps({"entries": self.entries, "links": self.links, "passwords": self.passwords})
        # -I: not the script's directory on sys.path, where devtools/samba.py would hide Samba's own package
        self._run([SYSTEM_PYTHON, "-I", str(SEED_SCRIPT), str(self.conf)], "seeding the domain", input=spec)

    def start(self) -> None:
        """Provision and seed on the first start, then serve."""
        if not self.conf.exists():
            self.provision()
            self.seed()
        self.launch([which("samba"), "-i", "-M", "single", "-s", str(self.conf)])
        self.wait_for_ports(self.address, [389, 636], START_TIMEOUT)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.samba", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="provision a DC with a sync account into DIR and serve it until Ctrl-C")
    serve.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args(argv)
    reason = missing()
    if reason:
        print(f"cannot run a Samba DC here: {reason}", file=sys.stderr)
        return 1
    corp = f"OU=Corp,{BASE}"
    entries = [ou(corp), ou(f"OU=Services,{corp}"), user("ldapsync", f"OU=Services,{corp}")]
    with SambaDC(args.dir, entries, {SYNC_DN: SYNC_PASSWORD}) as dc:
        print(f"Samba AD DC on {dc.url} and {dc.ldaps_url} (CA {dc.ca_file}); bind as {SYNC_DN} "
              f"with {SYNC_PASSWORD}", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
        try:
            while True:
                signal.pause()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
