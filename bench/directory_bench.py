"""End-to-end benchmark: a company-sized directory in a throwaway slapd,
``ldapsearch`` against ``ldapsync run``, side by side in one run.

Generates a seeded directory (default 100,000 users, 5,000 groups:
groupOfNames, groupOfUniqueNames and posixGroup; an all-staff group of
every user, public or (``--all-staff private``) an ordinary shared group;
divisions, departments and teams; nested groups with a cycle;
non-ASCII names; 1% disabled accounts), loads it offline into a throwaway
slapd, then measures:

- the ``ldapsearch`` dump of the entries and attributes ldapsync needs;
- ``ldapsync run`` end to end as a fresh process, with a state file as in
  production: a first run writing the file, a second run with nothing
  changed, a third after 1% of the memberships changed (applied online with
  ldapmodify; each repeat starts from the file the second run left);
- each run's peak RSS and the LDAP search operations it issued (from
  slapd's stats log).

With ``--incremental`` slapd runs the syncprov overlay and the runs are
those of ``ldapsync serve``'s poll process: a worker process that imports
what serve's fork server preloads, then runs one run per line on its stdin
as serve's poller runs a poll, keeping one ``Warm`` across them; each run
is timed from the call to its end.  The first run (a full read, which keeps
the snapshot) runs in a fresh worker each repeat; the last of these workers
then runs the polls: with nothing changed, and after the display name of 10
users and the members of 5 groups changed online (each repeat changes
others, from where the last poll left the file and snapshot), so those are
warm; then the changed poll once more as the first poll of a new worker
(cold, as after serve starts or a SIGHUP).  For each: the entries slapd
sent (the ``nentries`` of its search results), those the run counted
(``read.entries``), when the file was written, whether the run started
warm (``read.warm``) and the worker's resident memory after the run (what a
poll process holds between polls).  ``--py-spy FILE`` profiles one more
changed poll: a new worker under ``py-spy record`` runs a cold poll, then
the profiled warm one, and only the samples of that one are counted.
``--tracking timestamp`` measures the same polls with the timestamp method
(ldap.change_tracking: timestamp; slapd also runs its monitor database, the
clock the method reads, and the entries say they were written in 2020): a
poll can then never stop at the probe, and lists every entry's id.

    python bench/directory_bench.py [--users 100000] [--groups 5000] [--repeat 3] [--all-staff private]
    python bench/directory_bench.py --incremental --backend python-ldap [--tracking timestamp] [--py-spy FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ldapsync.config import Config
    from ldapsync.warm import Warm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devtools.slapd import ADMIN_DN, ADMIN_PASSWORD, BASE, SYNC_DN, SYNC_PASSWORD, Slapd  # noqa: E402

PEOPLE = f"ou=people,{BASE}"
GROUPS = f"ou=groups,{BASE}"
FIRST = ["Anna", "Björn", "Chloé", "Dmitri", "Eve", "Fatima", "Grégoire", "Hiro", "Inés", "Jürgen", "Kofi", "Łucja"]
LAST = ["Smith", "Müller", "García", "Nakamura", "O'Brien", "Kowalski", "Dubois", "Rossi", "Nguyen", "Østergård"]
USER_ATTRS = ["uid", "displayName", "cn", "nsAccountLock"]
GROUP_ATTRS = ["cn", "description", "objectClass", "member", "uniqueMember", "memberUid"]
PY_SPY_RATE = 250  # samples a second
_NENTRIES = re.compile(rb" SEARCH RESULT .*? nentries=(\d+)")


def _b64_if_needed(name: str, value: str) -> str:
    import base64

    if value.isascii() and not value.startswith((" ", ":", "<")):
        return f"{name}: {value}"
    return f"{name}:: {base64.b64encode(value.encode()).decode()}"


# what --tracking timestamp's entries say: written long before the margin
# the timestamp method asks again, as most of a real directory is
WRITTEN_LONG_AGO = "20200101000000Z"


def generate(users: int, groups: int, seed: int,
             written: str | None = None) -> tuple[str, dict[str, tuple[str, list[str]]]]:
    """The directory as LDIF, and the groups as name -> (kind, member uids);
    ``written``: a GeneralizedTime every entry says it was created and
    last modified at (else slapadd's now)."""
    rng = random.Random(seed)
    uids = [f"user{i:06d}" for i in range(users)]
    out = [f"dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n",
           f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n",
           f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups\n",
           f"dn: ou=services,{BASE}\nobjectClass: organizationalUnit\nou: services\n",
           f"dn: {SYNC_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: ldapsync\n"
           f"userPassword: {SYNC_PASSWORD}\n"]
    for i, uid in enumerate(uids):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        disabled = rng.random() < 0.01
        lines = [f"dn: uid={uid},{PEOPLE}", "objectClass: inetOrgPerson"]
        if disabled:
            lines.append("objectClass: ldapsyncTestAccount")
        lines += [f"uid: {uid}", _b64_if_needed("cn", f"{first} {last}"), _b64_if_needed("sn", last),
                  _b64_if_needed("displayName", f"{first} {last} {i}"), f"mail: {uid}@example.com"]
        if disabled:
            lines.append("nsAccountLock: TRUE")
        out.append("\n".join(lines) + "\n")
    members: dict[str, tuple[str, list[str]]] = {"all-staff": ("groupOfNames", list(uids))}
    divisions, per_division = 20, 10
    weights = [1.0 / k for k in range(1, divisions + 1)]
    for uid in uids:
        d = rng.choices(range(divisions), weights)[0]
        members.setdefault(f"division-{d:02d}", ("groupOfUniqueNames", []))[1].append(uid)
        members.setdefault(f"department-{d:02d}-{rng.randrange(per_division)}", ("posixGroup", []))[1].append(uid)
    teams = [f"team-{k:04d}" for k in range(groups - len(members))]
    for t in teams:
        members[t] = ("groupOfNames", [])
    for uid in uids:
        for t in rng.sample(teams, rng.choice((2, 2, 3, 3))):
            members[t][1].append(uid)
    nested = {teams[0]: [teams[1]], teams[1]: [teams[0]],  # a cycle
              teams[2]: [teams[3], teams[4]]}
    for gid, (name, (kind, uids_in)) in enumerate(members.items(), 10000):
        lines = [f"dn: cn={name},{GROUPS}", f"objectClass: {kind}", f"cn: {name}",
                 _b64_if_needed("description", "All Staff" if name == "all-staff" else name.replace("-", " ").title())]
        if kind == "posixGroup":
            lines.append(f"gidNumber: {gid}")
            lines += [f"memberUid: {u}" for u in uids_in]
        else:
            attr = "member" if kind == "groupOfNames" else "uniqueMember"
            lines += [f"{attr}: uid={u},{PEOPLE}" for u in uids_in]
            lines += [f"{attr}: cn={sub},{GROUPS}" for sub in nested.get(name, [])]
        out.append("\n".join(lines) + "\n")
    if written is not None:
        out = [f"{entry}createTimestamp: {written}\nmodifyTimestamp: {written}\n" for entry in out]
    return "\n".join(out), members


def changes(members: dict[str, tuple[str, list[str]]], users: int, fraction: float, seed: int) -> str:
    """An ldapmodify LDIF that removes and adds ``fraction`` of all memberships."""
    rng = random.Random(seed + 1)
    names = [n for n in members if n != "all-staff"]
    weights = [len(members[n][1]) for n in names]
    total = sum(weights)
    ops = []
    for _ in range(int(total * fraction / 2)):
        name = rng.choices(names, weights)[0]
        kind, uids = members[name]
        if len(uids) > 2:
            victim = uids.pop(rng.randrange(len(uids)))
            ops.append((name, kind, "delete", victim))
        name = rng.choices(names, weights)[0]
        kind, uids = members[name]
        newcomer = f"user{rng.randrange(users):06d}"
        if newcomer not in uids:
            uids.append(newcomer)
            ops.append((name, kind, "add", newcomer))
    blocks = []
    for name, kind, op, uid in ops:
        if kind == "posixGroup":
            attr, value = "memberUid", uid
        else:
            attr = "member" if kind == "groupOfNames" else "uniqueMember"
            value = f"uid={uid},{PEOPLE}"
        blocks.append(f"dn: cn={name},{GROUPS}\nchangetype: modify\n{op}: {attr}\n{attr}: {value}\n-\n")
    return "\n".join(blocks)


def timed_process(argv: list[str], env: dict | None = None) -> tuple[float, float, int, str]:
    """Seconds, peak RSS (MiB) and exit code of a fresh process, and its stderr."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    return seconds, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status), err


def import_seconds(argv: list[str], env: dict) -> tuple[float, list[tuple[str, float]]]:
    """What a run spends importing (python -X importtime): the total, and
    the top-level imports by cumulative time, heaviest first."""
    err = timed_process(argv, env)[3]
    top = []
    for line in err.splitlines():
        parts = line.split("|")
        if line.startswith("import time:") and len(parts) == 3 and parts[1].strip().isdigit():
            name = parts[2].rstrip()
            if not name.startswith("  "):  # imported by the program itself, not by another module
                top.append((name.strip(), int(parts[1]) / 1e6))
    return sum(sec for _, sec in top), sorted(top, key=lambda t: -t[1])


def entries_sent(slapd: Slapd, since: int) -> int:
    """How many entries slapd sent since ``slapd.mark()``: the sum of its
    search results' ``nentries`` (content sync included)."""
    time.sleep(0.1)  # slapd logs the result just after the client has it
    with slapd.log_path.open("rb") as log:
        log.seek(since)
        return sum(int(n) for n in _NENTRIES.findall(log.read()))


def worker(config_path: str) -> None:
    """serve's poll process, for the benchmark: after importing what serve's
    fork server preloads, one run per line read on stdin, each as serve's
    poller runs a poll (one Warm kept across them), answered with one JSON
    line: the run's own time, its read, the process's peak RSS and its
    resident memory after the run.  A line ``profile`` runs it under
    :func:`_profiled_run`, the frame that marks it in a py-spy profile."""
    import importlib
    import json
    import logging

    from ldapsync import config as configlib
    from ldapsync import logs, service
    from ldapsync.warm import Warm

    for module in service._PRELOADED:
        importlib.import_module(module)
    logs.configure(logging.INFO, "text")
    config = configlib.load(config_path)
    warm = Warm()
    for line in sys.stdin:
        run = _profiled_run if line.strip() == "profile" else _measured_run
        print(json.dumps(run(config, warm)), flush=True)
        service._set_aside()  # as the poll process does after each poll


def _measured_run(config: Config, warm: Warm) -> dict:
    import resource

    from ldapsync import service
    from ldapsync.directory import configured_directory

    wall = time.time()
    started = time.perf_counter()
    outcome = service._run_and_log(config, configured_directory, service.POLL, warm)
    seconds = time.perf_counter() - started
    result = outcome.result
    return {"seconds": seconds, "started": wall, "exit_code": outcome.exit_code, "error": outcome.error,
            "read": None if result is None else result.read.as_json(),
            "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rss_now": _resident_mib()}


def _profiled_run(config: Config, warm: Warm) -> dict:
    return _measured_run(config, warm)


def _resident_mib() -> float | None:
    """This process's resident memory now (Linux), in MiB."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return None


class Worker:
    """A :func:`worker` process, from the benchmark's side."""

    def __init__(self, config: Path, env: dict, log: Path, prefix: tuple[str, ...] = ()) -> None:
        self.started: float | None = time.perf_counter()  # until its first run
        self.log = log
        self.proc = subprocess.Popen([*prefix, sys.executable, str(Path(__file__).resolve()), "--worker", str(config)],
                                     env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=log.open("a"), text=True)

    def run(self, label: str, command: str = "run") -> tuple[dict, float]:
        """One run: its JSON answer, and the seconds from the command (or the
        start of the worker, for its first run) to the answer."""
        import json

        started = time.perf_counter() if self.started is None else self.started
        self.started = None
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:
            if line.startswith("{"):  # py-spy, when the worker runs under it, writes its own lines too
                return json.loads(line), time.perf_counter() - started
        self.close()
        raise SystemExit(f"{label}: the worker exited {self.proc.returncode}:\n{self.log_tail()}")

    def log_tail(self) -> str:
        """The end of what the workers logged (the log goes with the temporary directory)."""
        return "".join(self.log.read_text().splitlines(keepends=True)[-30:])

    def close(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        self.proc.wait()


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def poll_changes(members: dict[str, tuple[str, list[str]]], users: int, round_: int, seed: int) -> list:
    """The online changes between two polls: the displayName of 10 users,
    and in 5 groups one member removed and one added, as (dn, ldap3 changes)."""
    from ldap3 import MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE

    rng = random.Random(seed * 1000 + round_)
    ops = [(f"uid=user{i:06d},{PEOPLE}", {"displayName": [(MODIFY_REPLACE, [f"Renamed User {i} ({round_})"])]})
           for i in rng.sample(range(users), 10)]
    for name in rng.sample([n for n in members if n != "all-staff"], 5):
        kind, uids = members[name]
        gone = uids.pop(rng.randrange(len(uids)))
        new = next(u for u in (f"user{rng.randrange(users):06d}" for _ in iter(int, 1)) if u not in uids)
        uids.append(new)
        attr = {"posixGroup": "memberUid", "groupOfUniqueNames": "uniqueMember"}.get(kind, "member")
        value = (lambda uid: uid) if kind == "posixGroup" else (lambda uid: f"uid={uid},{PEOPLE}")
        ops.append((f"cn={name},{GROUPS}", {attr: [(MODIFY_DELETE, [value(gone)]), (MODIFY_ADD, [value(new)])]}))
    return ops


def write_config(tmp: Path, slapd: Slapd, backend: str, public: str, tracking: str = "auto") -> Path:
    config = tmp / "ldapsync.yaml"
    config.write_text(f"""
ldap: {{servers: ["{slapd.url}"], bind_dn: "{SYNC_DN}", bind_password_env: LDAPSYNC_BIND_PASSWORD,
       backend: {backend}, change_tracking: {tracking}}}
users: {{base: "{PEOPLE}", disabled: 389ds}}
groups: {{base: "{GROUPS}", public: {public}}}
mapping: {{jid: "{{{{ uid }}}}@example.com", name: "{{{{ displayName or cn }}}}"}}
state: {{path: "{tmp / 'state.json'}"}}
outputs: [{{path: "{tmp / 'groups.txt'}", backups: 1}}]
""")
    return config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--groups", type=int, default=5_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--backend", choices=["auto", "ldap3", "python-ldap"], default="auto")
    ap.add_argument("--all-staff", choices=("public", "private"), default="public",
                    help="public: All Staff is a public group; private: an ordinary group holding every user")
    ap.add_argument("--incremental", action="store_true",
                    help="slapd with the syncprov overlay; measure the polls of serve (runs in one process)")
    ap.add_argument("--tracking", choices=("auto", "timestamp"), default="auto",
                    help="with --incremental: ldap.change_tracking (timestamp: slapd also runs the monitor "
                         "database for its clock, and the entries were written long ago)")
    ap.add_argument("--py-spy", metavar="FILE", type=Path,
                    help="with --incremental: one more changed poll under py-spy (the second poll of a new "
                         "worker), the worker's stacks (raw) to FILE")
    ap.add_argument("--worker", metavar="CONFIG", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker)
        return
    public = '["All Staff"]' if args.all_staff == "public" else "[]"
    if args.py_spy and not py_spy():
        raise SystemExit("--py-spy needs py-spy beside this Python or on PATH (pip install py-spy)")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        ldif, members = generate(args.users, args.groups, args.seed,
                                 WRITTEN_LONG_AGO if args.tracking == "timestamp" else None)
        (tmp / "directory.ldif").write_text(ldif, encoding="utf-8")
        member_values = sum(len(m) for _, m in members.values())
        generate_s = time.perf_counter() - started
        slapd = Slapd(tmp / "slapd", [tmp / "directory.ldif"], syncprov=args.incremental,
                      monitor=args.tracking == "timestamp")
        started = time.perf_counter()
        slapd.start()
        load_s = time.perf_counter() - started
        try:
            config = write_config(tmp, slapd, args.backend, public, args.tracking)
            env = {**os.environ, "LDAPSYNC_BIND_PASSWORD": SYNC_PASSWORD}
            ldapsearch = ["ldapsearch", "-x", "-LLL", "-H", slapd.url, "-D", SYNC_DN, "-w", SYNC_PASSWORD,
                          "-E", "pr=1000/noprompt"]
            dumps = []
            mark = slapd.mark()
            for _ in range(args.repeat):
                u = timed_process([*ldapsearch, "-b", PEOPLE, "(objectClass=inetOrgPerson)", *USER_ATTRS])
                g = timed_process([*ldapsearch, "-b", GROUPS, "(objectClass=*)", *GROUP_ATTRS])
                dumps.append(u[0] + g[0])
            floor = statistics.median(dumps)
            dump_entries = entries_sent(slapd, mark) // args.repeat
            heading = (f"# directory benchmark, {date.today()}, {platform.node()}, {platform.machine()}, "
                       f"Python {platform.python_version()}, {os.cpu_count()} cores, backend {args.backend}, "
                       f"All Staff {args.all_staff}, change_tracking {args.tracking}")
            sizes = (f"# {args.users} users, {args.groups} groups, {member_values} member values; generated in "
                     f"{generate_s:.1f} s, loaded with slapadd and started in {load_s:.1f} s")
            if args.incremental:
                incremental(args, tmp, slapd, config, env, members, floor, dump_entries, heading, sizes)
            else:
                whole_runs(args, tmp, slapd, config, env, members, floor, heading, sizes)
        finally:
            slapd.stop()


def whole_runs(args: argparse.Namespace, tmp: Path, slapd: Slapd, config: Path, env: dict,
               members: dict[str, tuple[str, list[str]]], floor: float, heading: str, sizes: str) -> None:
    """``ldapsync run`` as a fresh process: first, nothing changed, 1% changed."""
    ldapsync = [sys.executable, "-m", "ldapsync", "run", "-c", str(config)]
    rows = []

    def measure(label: str, runs: int, before: Callable[[], None] | None = None) -> None:
        results = []
        for _ in range(runs):
            if before is not None:
                before()
            mark = slapd.mark()
            seconds, rss, code, err = timed_process(ldapsync, env)
            if code != 0:
                raise SystemExit(f"{label}: ldapsync exited {code}: {err}")
            results.append((seconds, rss, slapd.search_count(mark)))
        seconds = statistics.median(r[0] for r in results)
        rows.append((label, seconds, max(r[1] for r in results), results[0][2]))

    def fresh() -> None:
        (tmp / "groups.txt").unlink(missing_ok=True)

    measure("ldapsync run, first (writes the file)", args.repeat, fresh)
    measure("ldapsync run, nothing changed", args.repeat)
    modify = changes(members, args.users, 0.01, args.seed)
    (tmp / "changes.ldif").write_text(modify)
    started = time.perf_counter()
    subprocess.run(["ldapmodify", "-x", "-H", slapd.url, "-D", ADMIN_DN, "-w", ADMIN_PASSWORD, "-f",
                    str(tmp / "changes.ldif")], check=True, stdout=subprocess.DEVNULL)
    modify_s = time.perf_counter() - started
    # each changed run starts from the file (and the cache beside the
    # state file) that the no-change runs left
    kept = {path: path.read_bytes() for path in [tmp / "groups.txt", *tmp.glob("state.json.*.model")]}

    def unchanged_file() -> None:
        for path, data in kept.items():
            path.write_bytes(data)

    measure("ldapsync run, 1% of memberships changed", args.repeat, unchanged_file)
    imports = import_seconds([sys.executable, "-X", "importtime", *ldapsync[1:]], env)
    startup = statistics.median(timed_process([sys.executable, "-m", "ldapsync", "--version"])[0]
                                for _ in range(args.repeat))

    print(heading)
    print(f"{sizes}; {modify.count('changetype')} changes applied in {modify_s:.1f} s; medians of {args.repeat}")
    heaviest = ", ".join(f"{name} {sec:.2f} s" for name, sec in imports[1][:4])
    print(f"# interpreter start and CLI (ldapsync --version): {startup:.2f} s; imports of a run: "
          f"{imports[0]:.2f} s ({heaviest})")
    width = max(len(r[0]) for r in rows + [("ldapsearch dump (users + groups)",)])
    print(f"{'measure'.ljust(width)}  {'seconds':>8}  {'x ldapsearch':>12}  {'peak RSS':>9}  searches")
    print(f"{'ldapsearch dump (users + groups)'.ljust(width)}  {floor:8.2f}  {1:12.1f}  {'-':>9}  2")
    for label, seconds, rss, searches in rows:
        print(f"{label.ljust(width)}  {seconds:8.2f}  {seconds / floor:12.1f}  {rss:6.0f} MiB  {searches}")


def incremental(args: argparse.Namespace, tmp: Path, slapd: Slapd, config: Path, env: dict,
                members: dict[str, tuple[str, list[str]]], floor: float, dump_entries: int,
                heading: str, sizes: str) -> None:
    """The runs of ``serve``'s poll process against a slapd with syncprov,
    each timed inside the worker that runs it (see the module's docstring)."""
    output = tmp / "groups.txt"
    log = tmp / "worker.log"
    rows = []
    kept: list[Worker] = []

    def one_run(label: str, kind: str, worker: Worker, command: str = "run") -> dict:
        mark = slapd.mark()
        run, process_s = worker.run(label, command)
        if run["exit_code"] != 0 or run["read"]["kind"] != kind:
            raise SystemExit(f"{label}: exit {run['exit_code']}, read {run['read']} (expected {kind}): "
                             f"{run['error']}\n{worker.log_tail()}")
        run["process_s"] = process_s
        run["sent"] = entries_sent(slapd, mark)
        run["searches"] = slapd.search_count(mark)
        run["written_s"] = output.stat().st_mtime - run["started"]
        return run

    def new_worker() -> Worker:
        for w in kept:
            w.close()
        kept[:] = [Worker(config, env, log)]
        return kept[0]

    def measure(label: str, kind: str, before: Callable[[], None] | None = None, fresh_worker: bool = False) -> list:
        runs = []
        for _ in range(args.repeat):
            if before is not None:
                before()
            runs.append(one_run(label, kind, new_worker() if fresh_worker or not kept else kept[0]))
        rows.append((label, runs))
        return runs

    def fresh() -> None:
        output.unlink(missing_ok=True)
        (tmp / "state.json.snapshot").unlink(missing_ok=True)

    rounds = iter(range(1, 1000))
    applied = []

    def change() -> None:
        started = time.perf_counter()
        with slapd.admin_connection() as admin:
            for dn, mods in poll_changes(members, args.users, next(rounds), args.seed):
                admin.modify(dn, mods)
        applied.append(time.perf_counter() - started)

    try:
        measure("first run (full read, writes the file)", "full", fresh, fresh_worker=True)
        # the polls, in the worker that made the last first run, as serve's poller
        measure("poll, nothing changed", "unchanged")
        changed = measure("poll, 10 users and 5 groups changed", "incremental", change)
        measure("the same, as a new poll process's first poll", "incremental", change, fresh_worker=True)
    finally:
        for w in kept:
            w.close()
    profile = None
    if args.py_spy:
        profiler = Worker(config, env, log, (py_spy(), "record", "--idle", "--format", "raw", "--rate",
                                             str(PY_SPY_RATE), "--output", str(args.py_spy), "--"))
        try:
            change()
            one_run("the poll before the profiled one", "incremental", profiler)
            change()
            profiled = one_run("profiled poll", "incremental", profiler, "profile")
        finally:
            profiler.close()  # py-spy writes the profile as the worker ends
        profile = stages(args.py_spy, PY_SPY_RATE)

    print(heading)
    overlays = "syncprov, monitor" if args.tracking == "timestamp" else "syncprov"
    print(f"{sizes} ({overlays}); online changes applied in {statistics.median(applied):.2f} s; "
          f"medians of {args.repeat}; each run timed inside its worker (serve's poll process), which imported "
          f"what serve preloads; \"process\": from the command, or the worker's start for its first run, to the "
          f"answer; peak RSS: the worker's so far; RSS after: what it holds after the run")
    _poll_table(rows, floor, dump_entries)
    _targets(args, statistics.median(r["written_s"] for r in changed), dump_entries)
    if profile is not None:
        total = sum(seconds for _, seconds, _ in profile)
        print(f"# one more changed poll under py-spy ({args.py_spy}; the second poll of a new worker, warm: "
              f"{profiled['read'].get('warm')}): {profiled['seconds']:.2f} s, {total:.2f} s sampled in the run, "
              f"by stage (busiest lines):")
        for stage, seconds, busiest in profile:
            where = "; ".join(f"{frame} {n / PY_SPY_RATE:.2f} s" for frame, n in busiest)
            print(f"#   {stage:<44} {seconds:6.2f} s  {100 * seconds / total:4.1f}%  {where}")


def _targets(args: argparse.Namespace, poll_s: float, dump_entries: int) -> None:
    """Issue 15's targets for the polls, and the freshness they give."""
    print(f"# targets: nothing changed <= 10 entries and <= 0.2x the dump; changed <= {dump_entries / 100:.0f} "
          f"entries (1% of the dump's) and the file written within 1x the dump")
    if args.tracking == "timestamp":
        print("# (those targets are content sync's: the timestamp method cannot stop at its probe, so every poll "
              "lists every entry's id, and sends again what was written in the last five minutes)")
    print(f"# freshness with poll: 60s: a change is in the file at most 60 s + {poll_s:.2f} s = "
          f"{60 + poll_s:.1f} s after it was made (the next poll starts within 60 s; target 70 s)")


def _poll_table(rows: list[tuple[str, list[dict]]], floor: float, dump_entries: int) -> None:
    """The table of the incremental runs, beside the dump."""
    label_w = max(len(label) for label, _ in rows)
    print(f"{'measure'.ljust(label_w)}  {'seconds':>8}  {'x dump':>6}  {'written':>8}  {'process':>8}  "
          f"{'peak RSS':>9}  {'RSS after':>9}  {'searches':>8}  {'sent':>7}  {'warm':>5}  read.entries")
    print(f"{'ldapsearch dump (users + groups)'.ljust(label_w)}  {floor:8.2f}  {1:6.2f}  {'-':>8}  {floor:8.2f}  "
          f"{'-':>9}  {'-':>9}  {2:8d}  {dump_entries:7d}  {'-':>5}  -")
    for label, runs in rows:
        med = partial(_median, runs)
        written = f"{med('written_s'):8.2f}" if label != "poll, nothing changed" else f"{'-':>8}"
        sent = "/".join(sorted({str(r["sent"]) for r in runs}))
        read = "/".join(sorted({str(r["read"]["entries"]) for r in runs}))
        warm = "/".join(sorted({"yes" if r["read"].get("warm") else "no" for r in runs}))
        after = max(r["rss_now"] or 0 for r in runs)
        print(f"{label.ljust(label_w)}  {med('seconds'):8.2f}  {med('seconds') / floor:6.2f}  {written}  "
              f"{med('process_s'):8.2f}  {max(r['rss'] for r in runs):6.0f} MiB  {after:6.0f} MiB  "
              f"{runs[0]['searches']:8d}  {sent:>7}  {warm:>5}  {read}")


# The stages of a run, each known by a function on the stack: a sample goes
# to the stage of the innermost one it holds.
STAGES = (
    ("imports during the run", ("_find_and_load",)),
    ("LDAP: connect, probe, content sync", ("ldapsync/directory/",)),
    ("snapshot: read, checksum, unmarshal", ("load (ldapsync/snapshot.py",)),
    ("snapshot: Entry objects", ("load.<locals>",)),
    ("snapshot: changes applied", ("Snapshot.apply",)),
    ("entries sorted by DN", ("_in_dn_order",)),
    ("templates compiled", ("Templates.__init__",)),
    ("memberships resolved", ("resolve (ldapsync/membership.py",)),
    ("mapping", ("map_directory",)),
    ("the old file's groups (model cache)", ("current_bytes", "load (ldapsync/modelcache.py", "_reading",
                                             "Cached.means")),
    ("the output's model", ("output_model",)),
    ("render", ("render_unverified",)),
    ("verification: worker started, waited for", ("Parallel.",)),
    ("the new groups, as the diff reads them", ("GroupsFile.of_model",)),
    ("diff", ("diff (ldapsync/diff.py",)),
    ("safety limits", ("check (ldapsync/safety.py",)),
    ("file written (with its backup)", ("apply (ldapsync/apply.py",)),
    ("snapshot saved", ("Reader.keep",)),
    ("state file and metrics", ("keep_record",)),
)


def py_spy() -> str:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy") or ""


def _stage(frames: list[str]) -> str:
    if frames[-1].startswith("without_cycle_collector"):  # returning: reference counts drop to zero
        return "memory freed as the run returns"
    for frame in reversed(frames):
        for name, marks in STAGES:
            if any(m in frame for m in marks):
                return name
    return "other"


def stages(path: Path, rate: int) -> list[tuple[str, float, list[tuple[str, int]]]]:
    """A py-spy profile (raw, with idle samples) of a worker, as the seconds
    of each stage of its profiled run, longest first, with the stage's
    busiest lines."""
    from collections import Counter, defaultdict

    totals: Counter[str] = Counter()
    lines: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = stack.split(";")
        inside = [i for i, f in enumerate(frames) if f.startswith("_profiled_run ")]
        if not inside:  # interpreter start, imports, config and the worker's other runs
            continue
        stage = _stage(frames[inside[0]:])
        totals[stage] += int(n)
        lines[stage][frames[-1]] += int(n)
    return [(stage, n / rate, lines[stage].most_common(2)) for stage, n in totals.most_common()]

if __name__ == "__main__":
    main()
