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

    python bench/directory_bench.py [--users 100000] [--groups 5000] [--repeat 3] [--all-staff private]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devtools.slapd import ADMIN_DN, ADMIN_PASSWORD, BASE, SYNC_DN, SYNC_PASSWORD, Slapd  # noqa: E402

PEOPLE = f"ou=people,{BASE}"
GROUPS = f"ou=groups,{BASE}"
FIRST = ["Anna", "Björn", "Chloé", "Dmitri", "Eve", "Fatima", "Grégoire", "Hiro", "Inés", "Jürgen", "Kofi", "Łucja"]
LAST = ["Smith", "Müller", "García", "Nakamura", "O'Brien", "Kowalski", "Dubois", "Rossi", "Nguyen", "Østergård"]
USER_ATTRS = ["uid", "displayName", "cn", "nsAccountLock"]
GROUP_ATTRS = ["cn", "description", "objectClass", "member", "uniqueMember", "memberUid"]


def _b64_if_needed(name: str, value: str) -> str:
    import base64

    if value.isascii() and not value.startswith((" ", ":", "<")):
        return f"{name}: {value}"
    return f"{name}:: {base64.b64encode(value.encode()).decode()}"


def generate(users: int, groups: int, seed: int) -> tuple[str, dict[str, tuple[str, list[str]]]]:
    """The directory as LDIF, and the groups as name -> (kind, member uids)."""
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--groups", type=int, default=5_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--backend", choices=["auto", "ldap3", "python-ldap"], default="auto")
    ap.add_argument("--all-staff", choices=("public", "private"), default="public",
                    help="public: All Staff is a public group; private: an ordinary group holding every user")
    args = ap.parse_args()
    public = '["All Staff"]' if args.all_staff == "public" else "[]"

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        ldif, members = generate(args.users, args.groups, args.seed)
        (tmp / "directory.ldif").write_text(ldif, encoding="utf-8")
        member_values = sum(len(m) for _, m in members.values())
        generate_s = time.perf_counter() - started
        slapd = Slapd(tmp / "slapd", [tmp / "directory.ldif"])
        started = time.perf_counter()
        slapd.start()
        load_s = time.perf_counter() - started
        try:
            config = tmp / "ldapsync.yaml"
            config.write_text(f"""
ldap: {{servers: ["{slapd.url}"], bind_dn: "{SYNC_DN}", bind_password_env: LDAPSYNC_BIND_PASSWORD,
       backend: {args.backend}}}
users: {{base: "{PEOPLE}", disabled: 389ds}}
groups: {{base: "{GROUPS}", public: {public}}}
mapping: {{jid: "{{{{ uid }}}}@example.com", name: "{{{{ displayName or cn }}}}"}}
state: {{path: "{tmp / 'state.json'}"}}
outputs: [{{path: "{tmp / 'groups.txt'}", backups: 1}}]
""")
            env = {**os.environ, "LDAPSYNC_BIND_PASSWORD": SYNC_PASSWORD}
            ldapsearch = ["ldapsearch", "-x", "-LLL", "-H", slapd.url, "-D", SYNC_DN, "-w", SYNC_PASSWORD,
                          "-E", "pr=1000/noprompt"]
            dumps = []
            for _ in range(args.repeat):
                u = timed_process([*ldapsearch, "-b", PEOPLE, "(objectClass=inetOrgPerson)", *USER_ATTRS])
                g = timed_process([*ldapsearch, "-b", GROUPS, "(objectClass=*)", *GROUP_ATTRS])
                dumps.append(u[0] + g[0])
            floor = statistics.median(dumps)
            ldapsync = [sys.executable, "-m", "ldapsync", "run", "-c", str(config)]
            rows = []

            def measure(label: str, runs: int, before=None) -> None:
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
        finally:
            slapd.stop()

    print(f"# directory benchmark, {date.today()}, {platform.node()}, {platform.machine()}, "
          f"Python {platform.python_version()}, {os.cpu_count()} cores, backend {args.backend}, "
          f"All Staff {args.all_staff}")
    print(f"# {args.users} users, {args.groups} groups, {member_values} member values; generated in "
          f"{generate_s:.1f} s, loaded with slapadd and started in {load_s:.1f} s; "
          f"{modify.count('changetype')} changes applied in {modify_s:.1f} s; medians of {args.repeat}")
    heaviest = ", ".join(f"{name} {sec:.2f} s" for name, sec in imports[1][:4])
    print(f"# interpreter start and CLI (ldapsync --version): {startup:.2f} s; imports of a run: "
          f"{imports[0]:.2f} s ({heaviest})")
    width = max(len(r[0]) for r in rows + [("ldapsearch dump (users + groups)",)])
    print(f"{'measure'.ljust(width)}  {'seconds':>8}  {'x ldapsearch':>12}  {'peak RSS':>9}  searches")
    print(f"{'ldapsearch dump (users + groups)'.ljust(width)}  {floor:8.2f}  {1:12.1f}  {'-':>9}  2")
    for label, seconds, rss, searches in rows:
        print(f"{label.ljust(width)}  {seconds:8.2f}  {seconds / floor:12.1f}  {rss:6.0f} MiB  {searches}")


if __name__ == "__main__":
    main()
