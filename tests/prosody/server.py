"""A throwaway Prosody on 127.0.0.1 for tests, and a real XMPP client for it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

HOST = "example.com"
PROSODY_LIB_OK = Path(os.environ.get("PROSODY_LIB", "/usr/lib/prosody"), "modules", "mod_groups.lua").exists()
PASSWORD = "secret-Passw0rd"
#: ldapsync's companion module (mod_groups_live), found by Prosody through plugin_paths.
PLUGIN_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prosody"
#: The two modules that can read the groups file: Prosody's own and ldapsync's drop-in.
GROUPS_MODULES = ("groups", "groups_live")

CONFIG = """\
-- Written by the ldapsync test suite.
pidfile = "{dir}/prosody.pid"
data_path = "{dir}/data"
plugin_paths = {{ "{plugins}" }}
certificates = "{dir}"
run_as_root = true
log = {{ info = "{dir}/prosody.log"; error = "{dir}/prosody.err" }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {port} }}
c2s_interfaces = {{ "127.0.0.1" }}
s2s_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
c2s_direct_tls_ports = {{ }}
admin_socket = "{dir}/admin.sock"
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_hashed"
storage = "internal"
modules_enabled = {{ "roster"; "saslauth"; "disco"; "admin_shell" }}
modules_disabled = {{ "s2s"; "tls"; "offline"; "c2s_timeout" }}

VirtualHost "{host}"
    modules_enabled = {{ "groups" }}
    groups_file = "{dir}/groups.txt"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prosody:
    """One Prosody process for the whole test session; tests swap the groups
    file and reload mod_groups instead of restarting the server."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.port = free_port()
        self.config = directory / "prosody.cfg.lua"
        self.groups_file = directory / "groups.txt"
        self.registered: set[str] = set()
        (directory / "data").mkdir(parents=True, exist_ok=True)
        self.groups_file.write_text("")
        self.module = "groups"  # the module the host runs now (see use_module)
        self.config.write_text(CONFIG.format(dir=directory, port=self.port, host=HOST, plugins=PLUGIN_DIR))
        self.proc = subprocess.Popen(
            ["prosody", "-F", "--config", str(self.config)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=directory,
        )
        self._wait_for_port()

    def _wait_for_port(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prosody exited: {self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                if (self.dir / "admin.sock").exists():
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"prosody did not start: {self.log()}")

    def log(self) -> str:
        parts = [p.read_text(errors="replace") for p in (self.dir / "prosody.log", self.dir / "prosody.err")
                 if p.exists()]
        return "\n".join(parts)[-4000:]

    def prosodyctl(self, *args: str) -> str:
        out = subprocess.run(
            ["prosodyctl", "--config", str(self.config), *args],
            capture_output=True, text=True, timeout=60,
        )
        if out.returncode != 0:
            raise RuntimeError(f"prosodyctl {' '.join(args)} failed: {out.stdout}{out.stderr}")
        return out.stdout

    def register(self, *usernames: str) -> None:
        for user in usernames:
            if user not in self.registered:
                self.prosodyctl("register", user, HOST, PASSWORD)
                self.registered.add(user)

    def use_module(self, module: str) -> None:
        """Make the host read the groups file with ``module`` (one of
        GROUPS_MODULES) instead of the other, as an admin would switch."""
        if module == self.module:
            return
        self.prosodyctl("shell", "module", "unload", self.module, HOST)
        self.prosodyctl("shell", "module", "load", module, HOST)
        listing = self.prosodyctl("shell", "module", "list", HOST)
        if not re.search(rf"(?m)^\s*{module}\s*$", listing):
            raise RuntimeError(f"mod_{module} did not load: {listing}\n{self.log()}")
        self.module = module

    def write_groups(self, text: str | bytes) -> None:
        """Replace the groups file atomically, as ldapsync does."""
        data = text.encode("utf-8") if isinstance(text, str) else text
        tmp = self.groups_file.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, self.groups_file)

    def reload_command(self) -> list[str]:
        """The post_change_command that makes the current module re-read the file."""
        return ["prosodyctl", "--config", str(self.config), "shell", "module", "reload", self.module, HOST]

    def load_groups(self, text: str | bytes) -> None:
        """Install a groups file and make the current module read it (module reload)."""
        self.write_groups(text)
        out = self.prosodyctl(*self.reload_command()[3:])
        if "1 host" not in out and "Reloaded" not in out and "reloaded" not in out:
            raise RuntimeError(f"mod_{self.module} reload failed: {out}")

    def set_personal_roster(self, username: str, items: list[dict]) -> None:
        """Store a personal roster the way Prosody's internal storage keeps it."""
        store = self.dir / "data" / HOST.replace(".", "%2e") / "roster"
        store.mkdir(parents=True, exist_ok=True)
        path = store / f"{username}.dat"
        if not items:
            path.unlink(missing_ok=True)
            return
        lines = ["return {"]
        for item in items:
            groups = "".join(f"[{_lua(g)}] = true; " for g in item.get("groups", []))
            name = f"name = {_lua(item['name'])}; " if item.get("name") is not None else ""
            lines.append(
                f"  [{_lua(item['jid'])}] = {{ subscription = {_lua(item['subscription'])}; "
                f"{name}groups = {{ {groups}}}; }};"
            )
        lines.append("};")
        path.write_text("\n".join(lines) + "\n")

    def load_roster_while_offline(self, username: str) -> None:
        """Make Prosody load a user's roster without a session (as a contact's
        probe or an admin tool does), which puts it in the host's roster cache."""
        user, host, bare = _lua(username), _lua(HOST), _lua(f"{username}@{HOST}")
        out = self.prosodyctl("shell", f">require'core.rostermanager'.load_roster({user}, {host}) "
                              f"return prosody.hosts[{host}].roster_cache:get({bare}) ~= nil")
        if "Result: true" not in out:
            raise RuntimeError(f"the roster of {username} is not in Prosody's cache: {out}")

    def fetch_roster(self, username: str, timeout: float = 15) -> list[dict]:
        """Log in as username@HOST with slixmpp and return the roster Prosody sends."""
        return asyncio.run(_fetch_roster(f"{username}@{HOST}", PASSWORD, self.port, timeout))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _lua(text: str) -> str:
    """A Lua string literal for any text (decimal escapes for every byte)."""
    return '"' + "".join(f"\\{b}" for b in text.encode("utf-8")) + '"'


async def _fetch_roster(jid: str, password: str, port: int, timeout: float) -> list[dict]:
    import slixmpp  # test dependency

    client = slixmpp.ClientXMPP(jid, password)
    client.enable_starttls = False
    client.enable_direct_tls = False
    client.enable_plaintext = True
    client.plugin["feature_mechanisms"].unencrypted_plain = True
    loop = asyncio.get_running_loop()
    result: asyncio.Future = loop.create_future()

    async def on_session_start(_event) -> None:
        try:
            iq = client.make_iq_get(queryxmlns="jabber:iq:roster")
            reply = await iq.send(timeout=timeout)
            if not result.done():
                result.set_result(_roster_items(reply.xml))
        except Exception as exc:  # surfaced to the test below
            if not result.done():
                result.set_exception(exc)

    def on_failure(event) -> None:
        if not result.done():
            result.set_exception(RuntimeError(f"XMPP login of {jid} failed: {event}"))

    client.add_event_handler("session_start", on_session_start)
    client.add_event_handler("failed_all_auth", on_failure)
    client.add_event_handler("connection_failed", on_failure)
    client.connect("127.0.0.1", port)
    try:
        return await asyncio.wait_for(result, timeout + 15)
    finally:
        client.disconnect()
        with contextlib.suppress(TimeoutError, Exception):
            await asyncio.wait_for(client.disconnected, 10)


def _roster_items(xml) -> list[dict]:
    ns = "{jabber:iq:roster}"
    items = []
    for item in xml.iter(f"{ns}item"):
        items.append({
            "jid": item.get("jid"),
            "name": item.get("name"),
            "subscription": item.get("subscription", "none"),
            "groups": sorted(g.text or "" for g in item.findall(f"{ns}group")),
        })
    return sorted(items, key=lambda i: i["jid"])


def available() -> str | None:
    """None when a real Prosody can run here, else the reason it cannot."""
    for tool in ("prosody", "prosodyctl", "lua5.4"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian package prosody)"
    try:
        import slixmpp  # noqa: F401
    except ImportError:
        return "slixmpp is not installed (pip install -e '.[test]')"
    return None


def preview(capsys, groups_file, user, personal_file=None) -> list[dict]:
    """The roster ldapsync predicts for ``user`` from ``groups_file`` (and a
    personal roster), as ``ldapsync preview --json`` prints it."""
    from ldapsync.cli import main

    argv = ["preview", "--groups-file", str(groups_file), f"{user}@{HOST}", "--json"]
    if personal_file:
        argv += ["--roster", str(personal_file)]
    assert main(argv) == 0
    out, _ = capsys.readouterr()
    return json.loads(out)
