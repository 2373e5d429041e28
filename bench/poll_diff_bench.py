"""Benchmark of what a warm poll's diff costs: two large readings that differ in a few groups.

Builds the seeded company of ``groupsfile_bench.py`` (100,000 users in
5,000 groups), then a next model in which a few groups (``--changed``,
default 15, none of them All Staff) each lose two members and gain two,
sharing every other group with the first model as a warm run does. It
prints, medians of ``--repeat``:

- the new model's reading: ``GroupsFile.of_model`` over every group, and
  ``GroupsFile.updated`` from the last reading and the changed groups'
  names (where the code has it);
- ``diff.diff`` of the last reading against the new one (the updated one
  where the code has it);
- the same after 10 users were renamed too (every group holding them
  changes, All Staff included: every user sees it).

Run it with older code (a checkout whose ``bench/`` holds this script) to
compare: the rows the older code lacks print "-".

    python bench/poll_diff_bench.py [--users 100000] [--groups 5000] [--changed 15] [--all-staff private]
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from groupsfile_bench import build, timed, to_model  # noqa: E402

from ldapsync import diff  # noqa: E402
from ldapsync.groupsfile import GroupsFile  # noqa: E402
from ldapsync.model import GroupsModel, SharedGroup  # noqa: E402


def next_model(model: GroupsModel, jids: list[str], names: dict[str, str], changed: int, renamed: int,
               rng: random.Random) -> tuple[GroupsModel, set[str]]:
    """``model`` with ``changed`` groups (not All Staff) each losing two
    members and gaining two, and ``renamed`` users named anew in every group
    that holds them; every other group the same object.  Also the names of
    the groups that differ."""
    groups = {g.name: g for g in model.groups}
    names = dict(names)
    for jid in rng.sample(jids, renamed):
        names[jid] = f"Renamed {names[jid]}"
    renamed_jids = {jid for jid in names if names[jid].startswith("Renamed ")}
    picked = rng.sample([n for n in groups if n != "All Staff"], changed)
    differ = set()
    for name, group in groups.items():
        members = dict(group.members)
        if name in picked:
            for jid in rng.sample(list(members), min(2, len(members))):
                del members[jid]
            for jid in rng.sample(jids, 2):
                members[jid] = names[jid]
        elif renamed_jids.isdisjoint(members):
            continue
        for jid in renamed_jids.intersection(members):
            members[jid] = names[jid]
        groups[name] = SharedGroup(name, members, group.public)
        differ.add(name)
    return GroupsModel.of(groups.values()), differ


def warm_diff(last: GroupsFile, old: GroupsFile, new: GroupsFile, repeat: int) -> str:
    """The diff as serve's poll process makes it: with the ids and bitmaps
    that the last poll's diff (``last`` to ``old``) left; "-" for code
    without them."""
    interned_type = getattr(diff, "Interned", None)
    if interned_type is None:
        return "-"

    def one() -> None:
        interned = interned_type()
        diff.diff(last, old, interned)
        interned.keep_only(old)
        start = time.perf_counter()
        diff.diff(old, new, interned)
        spent.append(time.perf_counter() - start)

    spent: list[float] = []
    for _ in range(repeat):
        one()
    return f"{statistics.median(spent):.3f} s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--groups", type=int, default=5_000)
    ap.add_argument("--changed", type=int, default=15)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--all-staff", choices=("public", "private"), default="public")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    jids, names, members = build(args.users, args.groups, rng)
    old_model = to_model(names, members, args.all_staff == "public")
    del members
    old = GroupsFile.of_model(old_model)
    can_update = hasattr(GroupsFile, "updated")

    def reading(model: GroupsModel, changed: set[str]) -> GroupsFile:
        return old.updated(model, changed) if can_update else GroupsFile.of_model(model)

    # the file the poll before wrote: another user renamed (in All Staff: every user's roster changed)
    last = old.updated(*next_model(old_model, jids, names, 1, 1, random.Random(args.seed + 1)))
    rows = []
    for label, renamed in (("", 0), (", 10 users renamed", 10)):
        new_model, changed = next_model(old_model, jids, names, args.changed, renamed, rng)
        of_model_s, _ = timed(lambda m=new_model: GroupsFile.of_model(m), args.repeat)
        updated_s, new = timed(lambda m=new_model, c=changed: reading(m, c), args.repeat)
        diff_s, result = timed(lambda n=new: diff.diff(old, n), args.repeat)
        t = result.totals
        rows += [
            (f"new reading, of_model{label}", f"{of_model_s:.3f} s"),
            (f"new reading, updated{label}", f"{updated_s:.3f} s" if can_update else "-"),
            (f"diff.diff{label} ({len(changed)} groups changed, {t['users_affected']} rosters change)",
             f"{diff_s:.3f} s"),
            (f"diff.diff{label}, bitmaps kept from the last poll's diff", warm_diff(last, old, new, args.repeat)),
        ]
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "no git"
    print(f"# warm poll diff benchmark, {date.today()}, {platform.node() or 'unknown host'}, code {commit}")
    print(f"# {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          f"{args.users} users, {args.groups} groups, All Staff {args.all_staff}, "
          f"{old_model.member_count} member lines, median of {args.repeat}")
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name.ljust(width)}  {value:>9}")


if __name__ == "__main__":
    main()
