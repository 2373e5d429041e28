"""Benchmark of the groups-file engine on a company-sized file.

Builds a seeded file of 100,000 users in 5,000 groups (about 550,000 member
lines: an all-staff group of every user, public or with ``--all-staff
private`` an ordinary shared group; divisions, departments and teams), a
second version with 1% of the member lines changed (removed and added at
random, so large groups change most), and prints: render (with its
verification) and parse times, a one-user roster preview, the per-user
roster diff of the change, against an empty file (a first run) and after
making a division public, ``ldapsync diff`` of the files as a whole command,
and peak memory.

    python bench/groupsfile_bench.py [--users 100000] [--groups 5000] [--repeat 3] [--all-staff private]
"""

from __future__ import annotations

import argparse
import functools
import gc
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ldapsync import diff, groupsfile, roster  # noqa: E402
from ldapsync.model import GroupsModel, SharedGroup  # noqa: E402

FIRST = ["Anna", "Björn", "Chloé", "Dmitri", "Eve", "Fatima", "Grégoire", "Hiro", "Ines", "Jürgen", "Kofi", "Lena"]
LAST = ["Smith", "Müller", "García", "Nakamura", "O'Brien", "Kowalski", "Dubois", "Rossi", "Nguyen", "Øster"]


def build(users: int, groups: int, rng: random.Random) -> tuple[list[str], dict[str, str], dict[str, list[str]]]:
    """A company: everyone in the public "All Staff", in one of 20 divisions
    (a few large, many small), in one department of their division (10 a
    division), and in one or two of the remaining teams (5 to 100 people)."""
    jids = [f"user{i:06d}@example.com" for i in range(users)]
    names = {j: f"{rng.choice(FIRST)} {rng.choice(LAST)} {i}" for i, j in enumerate(jids)}
    members: dict[str, list[str]] = {"All Staff": list(jids)}
    divisions, per_division = 20, 10
    weights = [1.0 / k for k in range(1, divisions + 1)]
    for j in jids:
        d = rng.choices(range(divisions), weights)[0]
        members.setdefault(f"Division {d:02d}", []).append(j)
        members.setdefault(f"Département {d:02d}-{rng.randrange(per_division)}", []).append(j)
    teams = [f"Team {k:04d}" for k in range(groups - len(members))]
    for t in teams:
        members[t] = []
    for j in jids:
        for t in rng.sample(teams, rng.choice((2, 2, 3, 3))):
            members[t].append(j)
    return jids, names, members


def to_model(names, members, public_staff: bool = True) -> GroupsModel:
    return GroupsModel.of(
        SharedGroup(g, {j: names[j] for j in m}, public=(public_staff and g == "All Staff"))
        for g, m in members.items()
    )


def change(jids, members, fraction: float, rng: random.Random) -> dict[str, list[str]]:
    """Remove and add random member lines: ``fraction`` of all of them in total."""
    changed = {g: list(m) for g, m in members.items()}
    present = {g: set(m) for g, m in members.items()}
    names = list(changed)
    weights = [len(changed[g]) for g in names]
    for _ in range(int(sum(weights) * fraction / 2)):
        g = rng.choices(names, weights)[0]
        if changed[g]:
            i = rng.randrange(len(changed[g]))
            changed[g][i], changed[g][-1] = changed[g][-1], changed[g][i]
            present[g].discard(changed[g].pop())
        g = rng.choices(names, weights)[0]
        j = rng.choice(jids)
        if j not in present[g]:
            present[g].add(j)
            changed[g].append(j)
    return changed


def _cli(*argv) -> None:
    """Run the ldapsync command line in a fresh interpreter, as a sysadmin would."""
    code = subprocess.run([sys.executable, "-m", "ldapsync", *map(str, argv), "--limit", "5"],
                          stdout=subprocess.DEVNULL, cwd=Path(__file__).resolve().parent.parent).returncode
    if code not in (0, 1):
        raise SystemExit(f"ldapsync {' '.join(map(str, argv))} exited {code}")


def timed(fn, repeat: int):
    times, result = [], None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--groups", type=int, default=5_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--all-staff", choices=("public", "private"), default="public",
                    help="public: [+All Staff], every user sees it; private: [All Staff], the same users in it")
    args = ap.parse_args()
    public_staff = args.all_staff == "public"
    rng = random.Random(args.seed)

    jids, names, members = build(args.users, args.groups, rng)
    old_model = to_model(names, members, public_staff)
    new_model = to_model(names, change(jids, members, 0.01, rng), public_staff)
    del members
    render_s, old_text = timed(functools.partial(groupsfile.render, old_model), args.repeat)
    new_text = groupsfile.render(new_model)
    del old_model, new_model
    with tempfile.TemporaryDirectory() as tmp:
        old_path, new_path = Path(tmp, "old.txt"), Path(tmp, "new.txt")
        old_path.write_text(old_text, encoding="utf-8")
        new_path.write_text(new_text, encoding="utf-8")
        lines = old_text.count("\n")
        del old_text, new_text
        parse_s, old = timed(lambda: groupsfile.read(old_path), args.repeat)
        new = groupsfile.read(new_path)
        empty_path = Path(tmp, "empty.txt")
        empty_path.write_text("")
        # the command a sysadmin runs, start to end (parsing both files included)
        cli_s, _ = timed(lambda: _cli("diff", old_path, new_path), args.repeat)
        cli_first_s, _ = timed(lambda: _cli("diff", empty_path, new_path), args.repeat)
    rss_parsed = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    sample = rng.sample(jids, 20)
    preview_times, full_times = [], []
    for user in sample:
        start = time.perf_counter()
        result = roster.build_roster(old, user)
        contacts = len(result)
        preview_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        roster.received_items(result)
        full_times.append(time.perf_counter() - start)
    preview_s = statistics.median(preview_times)
    full_s = statistics.median(full_times)

    diff_s, result_diff = timed(lambda: diff.diff(old, new), args.repeat)
    empty = groupsfile.parse("")
    first_s, result_first = timed(lambda: diff.diff(empty, new), args.repeat)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = result_diff.totals

    # Another kind of change: one division becomes public (after the memory
    # figure, since it builds a third file).
    division = max((g for g in old.groups if g.startswith("Division")), key=lambda g: len(old.groups[g]))
    flipped = old.to_model()
    flipped = GroupsModel.of(SharedGroup(g.name, g.members, g.public or g.name == division) for g in flipped.groups)
    public_file = groupsfile.parse(groupsfile.render(flipped))
    del flipped
    public_s, result_public = timed(lambda: diff.diff(old, public_file), args.repeat)

    print(f"# groups-file engine benchmark, {date.today()}, {platform.node() or 'unknown host'}")
    print(f"# {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          f"{args.users} users, {args.groups} groups, All Staff {args.all_staff}, {lines} lines in the file, "
          f"median of {args.repeat}")
    rows = [
        ("render + verify (parse back)", f"{render_s:.2f} s", "-"),
        ("parse (read file + diagnostics)", f"{parse_s:.2f} s", "< 1.5 s"),
        (f"preview one user ({contacts} contacts)", f"{preview_s * 1000:.0f} ms", "< 50 ms"),
        ("  then every item built and sorted", f"{full_s * 1000:.0f} ms", "-"),
        ("diff with 1% memberships changed", f"{diff_s:.2f} s", "-"),
        ("diff against an empty file (a first run)", f"{first_s:.2f} s", "-"),
        ("'ldapsync diff OLD NEW', whole command", f"{cli_s:.2f} s", "<= 3 s"),
        ("'ldapsync diff EMPTY NEW', whole command", f"{cli_first_s:.2f} s", "<= 3 s"),
        (f"diff after making {division} public", f"{public_s:.2f} s", "-"),
        ("peak memory (RSS) after parsing two files", f"{rss_parsed:.0f} MiB", "-"),
        ("peak memory (RSS) overall", f"{peak:.0f} MiB", "< 500 MiB"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure'.ljust(width)}  {'result':>10}  target")
    for name, value, target in rows:
        print(f"{name.ljust(width)}  {value:>10}  {target}")
    print(f"# diff: {t['members_added']} member lines added, {t['members_removed']} removed; "
          f"{t['users_affected']} users affected, {t['contacts_gained']} contacts gained, {t['contacts_lost']} lost")
    t = result_public.totals
    print(f"# public {division}: {t['users_affected']} users affected, {t['contacts_regrouped']} contacts regrouped")
    t = result_first.totals
    print(f"# first run: {t['users_affected']} users affected, {t['contacts_gained']} contacts gained")


if __name__ == "__main__":
    main()
