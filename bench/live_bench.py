"""Benchmark of live roster updates: mod_groups_live with many connected users.

Starts a throwaway Prosody on 127.0.0.1 running deploy/prosody/mod_groups_live.lua,
logs in N users with slixmpp (all in one asyncio loop, each fetching its roster
and sending presence), then changes the groups file in a way that touches every
user and reloads the module as ldapsync's post_change_command would. Prints,
for each change: the time from the file's write to the reload command's end and
to the last roster push received by any client, the pushes received, and the
CPU time Prosody spent (from /proc, user + system) until the reload command
returned (the time Prosody's event loop is busy with the update) and until
the last push arrived (adding the clients' acknowledgements and presence).
A reload of an unchanged file gives the cost of prosodyctl itself.

The users are in teams of 10 (private groups). The changes:
- rename: every team gets a new name (each user's 9 contacts are regrouped);
- public: a public group of 10 appears (every user gains 10 contacts, and
  presence follows);
- public gone: it goes again.

Accounts use Prosody's internal_plain storage so that 1,000 logins take
seconds, not the minutes SCRAM's key derivation would on this side.

    python bench/live_bench.py [--users 1000]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.prosody import server  # noqa: E402
from tests.prosody.live import ClientLoop, LiveClient  # noqa: E402

TEAM = 10


def user(i: int) -> str:
    return f"u{i:05d}"


def groups_file(users: int, team_prefix: str, public: bool) -> str:
    lines = []
    if public:
        lines.append("[+Announcements]")
        lines += [f"{user(i)}@{server.HOST}=User {i}" for i in range(TEAM)]
    for start in range(0, users, TEAM):
        lines.append(f"[{team_prefix} {start // TEAM:04d}]")
        lines += [f"{user(i)}@{server.HOST}=User {i}" for i in range(start, min(start + TEAM, users))]
    return "\n".join(lines) + "\n"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def start_prosody(directory: Path) -> server.Prosody:
    """The test harness's Prosody, with plain-text accounts and mod_groups_live."""
    accounts = directory / "data" / server.HOST.replace(".", "%2e") / "accounts"
    accounts.mkdir(parents=True)
    config = server.CONFIG.replace('authentication = "internal_hashed"', 'authentication = "internal_plain"')
    config = config.replace('modules_enabled = {{ "groups" }}', 'modules_enabled = {{ "groups_live" }}')
    original = server.CONFIG
    server.CONFIG = config
    try:
        prosody = server.Prosody(directory)
    finally:
        server.CONFIG = original
    prosody.module = "groups_live"
    return prosody


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1000)
    args = parser.parse_args()
    n = args.users

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        prosody = start_prosody(directory)
        loop = ClientLoop()
        try:
            accounts = directory / "data" / server.HOST.replace(".", "%2e") / "accounts"
            for i in range(n):
                (accounts / f"{user(i)}.dat").write_text(f'return {{ ["password"] = "{server.PASSWORD}"; }};\n')
            prosody.load_groups(groups_file(n, "Team", public=False))

            started = time.monotonic()
            clients = [LiveClient(loop, prosody.port, user(i)) for i in range(n)]
            LiveClient.connect_many(clients)
            logins = time.monotonic() - started
            time.sleep(2)  # let initial presence settle
            print(f"Prosody 0.12 (Debian), {n} users logged in with slixmpp in {logins:.1f} s")
            print(f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
                  f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC")

            changes = [("none (the same file again)", groups_file(n, "Team", public=False)),
                       ("rename every team", groups_file(n, "Squad", public=False)),
                       ("a public group of 10 appears", groups_file(n, "Squad", public=True)),
                       ("the public group goes", groups_file(n, "Squad", public=False))]
            print("| change | pushes | write -> reload done | write -> last push | Prosody CPU: reload | "
                  "Prosody CPU: to last push |")
            print("|---|---|---|---|---|---|")
            for label, text in changes:
                before = {id(c): c.pushes for c in clients}
                cpu0 = cpu_seconds(prosody.proc.pid)
                t0 = time.monotonic()
                prosody.write_groups(text)
                subprocess.run(prosody.reload_command(), check=True, capture_output=True)
                reloaded = time.monotonic() - t0
                cpu1 = cpu_seconds(prosody.proc.pid)
                # pushes still in flight: wait until no client got one for two seconds
                while time.monotonic() - max(t0, *(c.last_push for c in clients)) < 2.0:
                    time.sleep(0.1)
                pushes = sum(c.pushes - before[id(c)] for c in clients)
                touched = sum(c.pushes > before[id(c)] for c in clients)
                last = f"{max(c.last_push for c in clients) - t0:.2f} s" if pushes else "-"
                cpu2 = cpu_seconds(prosody.proc.pid)
                print(f"| {label} | {pushes} to {touched} users | {reloaded:.2f} s | {last} | "
                      f"{cpu1 - cpu0:.2f} s | {cpu2 - cpu0:.2f} s |", flush=True)
            for c in clients:
                c.client.disconnect()
        finally:
            loop.close()
            prosody.stop()


if __name__ == "__main__":
    main()
