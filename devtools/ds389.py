"""A throwaway 389 Directory Server on 127.0.0.1 for tests, demos and benchmarks.

Everything the instance writes (config, schema, database, logs, pid file,
LDAPI socket) lives in one directory, and nothing needs systemd:

- `dscreate from-file` reads its default paths from
  $PREFIX/share/dirsrv/inf/defaults.inf when PREFIX is set. The harness writes
  one there whose instance paths point into the directory and whose
  with_systemd is 0, so that dscreate starts and stops ns-slapd itself
  instead of calling systemctl. The instance is created with LDAP port 0
  (LDAPI only), so creating it opens no TCP port on any address.
- The port, the listen address (127.0.0.1 only) and the plugins asked for are
  then written into the stopped instance's dse.ldif, and ns-slapd runs in the
  foreground as a child process (`-d 0`), stopped with SIGTERM.

Data is added online (ldapmodify -a as Directory Manager), so the plugins
that are on (memberOf, referential integrity, retro changelog) see it as
they would see any client's writes.

    python -m devtools.ds389 serve --dir DIR --ldif FILE [--ldif FILE ...] [--port N] [--plugin NAME ...]
"""

from __future__ import annotations

import argparse
import grp
import os
import pwd
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from devtools.process import LdapServer, serve_until_stopped, stop_on_signals, which
from devtools.slapd import free_port

BASE = "dc=example,dc=com"
ADMIN_DN = "cn=Directory Manager"
# dscreate wants at least 8 characters.
ADMIN_PASSWORD = "admin-secret"
INSTANCE = "ldapsync"
START_TIMEOUT = 30.0

SYSTEM_DEFAULTS = Path("/usr/share/dirsrv/inf/defaults.inf")
SYSTEM_CONFIG = Path("/etc/dirsrv")
# A Unix socket path holds at most 107 bytes; the instance's LDAPI socket is
# DIR/run/slapd-ldapsync.socket and dscreate talks to the instance through it.
MAX_SOCKET_PATH = 107

# The plugins a test can turn on, by the cn of their entry under cn=plugins,cn=config.
# A fresh instance has them all off; FreeIPA turns them all on.
PLUGINS = {
    "memberof": "MemberOf Plugin",
    "refint": "referential integrity postoperation",
    "retrocl": "Retro Changelog Plugin",
    "contentsync": "Content Synchronization",
    "usn": "USN",
}
# Content synchronization (RFC 4533) reads the retro changelog, which must
# record each entry's nsUniqueId under the name targetUniqueId.
PLUGIN_NEEDS = {"contentsync": ("retrocl",)}
PLUGIN_SETTINGS = {
    "retrocl": {"nsslapd-attribute": "nsuniqueid:targetUniqueId"},
}

# What any bound account may read: everything but passwords, as on most
# production 389-ds and FreeIPA directories (anonymous binds read nothing
# but the root DSE and the suffix entry).
READ_ACI = ('(targetattr!="userPassword")(version 3.0; acl "ldapsync tests: bound users read"; '
            'allow (read, search, compare) userdn="ldap:///all";)')

CREATE_INF = """\
[general]
full_machine_name = localhost
start = False
systemd = False
selinux = False
strict_host_checking = False

[slapd]
instance_name = {instance}
user = {user}
group = {group}
port = 0
secure_port = 0
self_sign_cert = False
root_dn = {admin_dn}
root_password = {admin_password}
db_lib = {db_lib}

[backend-userroot]
suffix = {base}
create_suffix_entry = True
sample_entries = no
"""


# What _create makes under the instance directory (see prefixed_defaults).
INSTANCE_DIRS = ("etc", "share", "var", "run", "lib", "log", "db", "bak", "ldif", "tmpfiles.d")


def missing() -> str | None:
    """None when a 389 Directory Server can run here, else the reason it cannot."""
    for tool in ("ns-slapd", "dscreate"):
        if which(tool) is None:
            return f"{tool} is not installed (Debian package 389-ds-base)"
    if not SYSTEM_DEFAULTS.exists():
        return f"{SYSTEM_DEFAULTS} is missing (Debian package 389-ds-base)"
    if which("ldapmodify") is None:
        return "ldapmodify is not installed (Debian package ldap-utils)"
    if os.geteuid() != 0:
        # dscreate copies the shared schema and config from /etc/dirsrv, which
        # the package makes readable only to root and the dirsrv user.
        return "creating a 389-ds instance needs root (/etc/dirsrv is not readable)"
    return None


def prefixed_defaults(system_defaults: str, root: Path) -> str:
    """The system defaults.inf with every per-instance path moved under root
    and systemd off; the programs, plugins and system schema stay where the
    package put them."""
    moved = {
        "sysconf_dir": "etc", "initconfig_dir": "etc/default", "config_dir": "etc/dirsrv/slapd-{instance_name}",
        "schema_dir": "etc/dirsrv/slapd-{instance_name}/schema", "cert_dir": "etc/dirsrv/slapd-{instance_name}",
        "local_state_dir": "var", "run_dir": "run", "ldapi": "run/slapd-{instance_name}.socket",
        "pid_file": "run/slapd-{instance_name}.pid", "inst_dir": "lib/slapd-{instance_name}",
        "tmpfiles_d": "tmpfiles.d", "lock_dir": "run/lock",
        "log_dir": "log", "access_log": "log/access", "audit_log": "log/audit", "error_log": "log/errors",
        "security_log": "log/security", "db_dir": "db", "db_home_dir": "db",
        "backup_dir": "bak", "ldif_dir": "ldif",
    }
    lines = []
    for line in system_defaults.splitlines():
        key = line.split("=", 1)[0].strip()
        if key in moved:
            line = f"{key} = {root / moved[key]}"
        elif key == "with_systemd":
            line = "with_systemd = 0"
        lines.append(line)
    return "\n".join(lines) + "\n"


def _unfold(ldif: str) -> str:
    """LDIF with continuation lines joined; ns-slapd reads lines of any length."""
    return re.sub(r"\r?\n ", "", ldif)


def edit_dse(dse: str, dn: str, replace: dict[str, str] | None = None,
             add: dict[str, str] | None = None) -> str:
    """dse.ldif text with one entry's attributes replaced (all values) or added."""
    blocks = _unfold(dse).split("\n\n")
    wanted = dn.lower()
    for i, block in enumerate(blocks):
        first = block.lstrip("\n").split("\n", 1)[0]
        if first.lower() != f"dn: {wanted}":
            continue
        body = block.rstrip("\n")
        lines = body.split("\n")
        for attr, value in (replace or {}).items():
            lines = [ln for ln in lines if ln.split(":", 1)[0].lower() != attr.lower()]
            lines.append(f"{attr}: {value}")
        for attr, value in (add or {}).items():
            lines.append(f"{attr}: {value}")
        blocks[i] = "\n".join(lines) + block[len(body):]
        return "\n\n".join(blocks)
    raise KeyError(f"no entry {dn} in dse.ldif")


class DS389(LdapServer):
    """One 389-ds instance whose files all live in `directory`. The first
    start() creates it and adds the LDIF files; later starts keep the data.

    plugins: names from PLUGINS to turn on before the first start
    (contentsync also turns on retrocl). db_lib: "bdb" (what Debian 12's
    dscreate and existing deployments use) or "mdb" (LMDB: smaller on disk and
    faster to stop, but with memberof and contentsync both on, 389-ds 2.3.1
    often refuses to add a group with members: object class violation)."""

    name = "ns-slapd"

    def __init__(
        self,
        directory: Path,
        ldif: Sequence[Path] = (),
        extra_ldif_text: str = "",
        port: int | None = None,
        *,
        plugins: Iterable[str] = (),
        db_lib: str = "bdb",
    ) -> None:
        self.dir = Path(directory).resolve()
        self.ldif = [Path(p) for p in ldif]
        self.extra_ldif_text = extra_ldif_text
        self.port = port or free_port()
        self.url = f"ldap://127.0.0.1:{self.port}"
        self.admin_dn, self.admin_password = ADMIN_DN, ADMIN_PASSWORD
        self.base = BASE
        unknown = set(plugins) - set(PLUGINS)
        if unknown:
            raise ValueError(f"unknown plugins {sorted(unknown)}; known: {sorted(PLUGINS)}")
        self.plugins = set(plugins)
        for plugin in list(self.plugins):
            self.plugins.update(PLUGIN_NEEDS.get(plugin, ()))
        if db_lib not in ("bdb", "mdb"):
            raise ValueError(f"db_lib must be bdb or mdb, not {db_lib!r}")
        self.db_lib = db_lib
        self.config_dir = self.dir / "etc" / "dirsrv" / f"slapd-{INSTANCE}"
        self.log_dir = self.dir / "log"
        super().__init__(self.dir / "ns-slapd.log")
        self._created = False
        self._loaded = False

    def start(self) -> None:
        if self.proc is not None:
            raise RuntimeError("ns-slapd is already running")
        if not self._created:
            self._create()
        self.launch([which("ns-slapd") or "ns-slapd", "-D", str(self.config_dir), "-d", "0"], cwd=self.dir)
        self.wait_for_ports("127.0.0.1", [self.port], START_TIMEOUT)
        if not self._loaded:
            try:
                self.load_ldif(text=f"dn: {BASE}\nchangetype: modify\nadd: aci\naci: {READ_ACI}\n")
                for path in self.ldif:
                    self.load_ldif(path)
                if self.extra_ldif_text:
                    self.load_ldif(text=self.extra_ldif_text)
            except BaseException:
                # The caller gets no server to stop: leave no ns-slapd behind.
                self.stop()
                raise
            self._loaded = True

    def restart(self) -> None:
        self.stop()
        self.start()

    def load_ldif(self, path: Path | None = None, *, text: str | None = None) -> None:
        """Add the entries of an LDIF file (or text) online as Directory Manager;
        change records (changetype: modify, delete, modrdn) apply as written."""
        if (path is None) == (text is None):
            raise ValueError("give either path or text")
        if path is None:
            path = self.dir / "load.ldif"
            path.write_text(text or "", encoding="utf-8")
        out = subprocess.run(
            [which("ldapmodify") or "ldapmodify", "-a", "-x", "-H", self.url, "-D", self.admin_dn,
             "-y", str(self._password_file()), "-f", str(path)],
            capture_output=True, text=True, timeout=600,
        )
        if out.returncode != 0:
            raise RuntimeError(f"ldapmodify -a {path} failed:\n{out.stdout[-2000:]}{out.stderr}")

    def _password_file(self) -> Path:
        """The admin password for ldapmodify -y: not on a command line, no newline."""
        path = self.dir / "admin.password"
        if not path.exists():
            path.touch(mode=0o600)
            path.write_text(self.admin_password)
        return path

    def _create(self) -> None:
        """dscreate an instance under self.dir, then set its port, its listen
        address and its plugins in dse.ldif while it is stopped."""
        socket_path = self.dir / "run" / f"slapd-{INSTANCE}.socket"
        if len(os.fsencode(socket_path)) > MAX_SOCKET_PATH:
            raise RuntimeError(f"{self.dir} is too long a path for the instance's LDAPI socket {socket_path}")
        # A fresh instance each time, as a fresh slapd database: nothing of an
        # earlier instance in the same directory survives.
        for leftover in INSTANCE_DIRS:
            shutil.rmtree(self.dir / leftover, ignore_errors=True)
        share = self.dir / "share" / "dirsrv" / "inf"
        share.mkdir(parents=True, exist_ok=True)
        (share / "defaults.inf").write_text(prefixed_defaults(SYSTEM_DEFAULTS.read_text(), self.dir))
        # dscreate copies the shared schema and config templates from sysconf_dir/dirsrv.
        shutil.copytree(SYSTEM_CONFIG, self.dir / "etc" / "dirsrv")
        inf = self.dir / "create.inf"
        inf.touch(mode=0o600)
        inf.write_text(CREATE_INF.format(
            instance=INSTANCE, user=pwd.getpwuid(os.geteuid()).pw_name, group=grp.getgrgid(os.getegid()).gr_name,
            admin_dn=ADMIN_DN, admin_password=ADMIN_PASSWORD, db_lib=self.db_lib, base=BASE,
        ))
        with (self.dir / "dscreate.log").open("wb") as log:
            out = subprocess.run(
                [which("dscreate") or "dscreate", "-v", "from-file", str(inf)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, timeout=300,
                env={**os.environ, "PREFIX": str(self.dir)}, cwd=self.dir,
            )
        if out.returncode != 0:
            tail = (self.dir / "dscreate.log").read_text(errors="replace")[-4000:]
            raise RuntimeError(f"dscreate failed (exit {out.returncode}):\n{tail}")
        dse_path = self.config_dir / "dse.ldif"
        dse = edit_dse(dse_path.read_text(), "cn=config",
                       replace={"nsslapd-port": str(self.port), "nsslapd-listenhost": "127.0.0.1"})
        for plugin in sorted(self.plugins):
            dse = edit_dse(dse, f"cn={PLUGINS[plugin]},cn=plugins,cn=config",
                           replace={"nsslapd-pluginEnabled": "on"}, add=PLUGIN_SETTINGS.get(plugin))
        dse_path.write_text(dse)
        self._created = True

    def log_tail(self, chars: int = 4000) -> str:
        """ns-slapd -d 0 prints little; its errors log says why it stopped."""
        try:
            errors = (self.log_dir / "errors").read_bytes()[-chars:].decode("utf-8", "replace")
        except OSError:
            errors = ""
        return super().log_tail(chars) + errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.ds389", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="create an instance, add LDIF, print its URL, run until SIGTERM/SIGINT")
    serve.add_argument("--dir", type=Path, required=True, help="instance directory (config, database, logs)")
    serve.add_argument("--ldif", type=Path, action="append", default=[], help="LDIF file to add (repeatable)")
    serve.add_argument("--port", type=int, help="port on 127.0.0.1 (default: a free one)")
    serve.add_argument("--plugin", action="append", default=[], choices=sorted(PLUGINS),
                       help="plugin to turn on (repeatable)")
    serve.add_argument("--db-lib", choices=("bdb", "mdb"), default="bdb", help="database library (default: bdb)")
    args = parser.parse_args(argv)

    reason = missing()
    if reason:
        print(reason, file=sys.stderr)
        return 2
    received = stop_on_signals()
    with DS389(args.dir, args.ldif, port=args.port, plugins=args.plugin, db_lib=args.db_lib) as server:
        print(server.url, flush=True)
        print(f"bind as {server.admin_dn!r} with password {server.admin_password!r}", file=sys.stderr, flush=True)
        return serve_until_stopped(server, received)


if __name__ == "__main__":
    sys.exit(main())
