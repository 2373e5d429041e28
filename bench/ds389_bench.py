"""What a throwaway 389 Directory Server (devtools/ds389.py) costs a test session.

REPEAT times: create the instance
(dscreate, with the plugins FreeIPA turns on), start ns-slapd until its port
answers, add 100 entries online (2 organizational units, 90 users, 8 groups;
with --passwords each user has a userPassword, which the server hashes with
PBKDF2), stop it with SIGTERM. Prints the seconds of each step, median of the
repeats. Needs root and the Debian package 389-ds-base.

    python bench/ds389_bench.py [--repeat 3] [--passwords] [--db-lib bdb|mdb]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devtools import ds389  # noqa: E402

USERS = 90
GROUPS = 8


def entries_ldif(passwords: bool) -> str:
    """100 entries: ou=people, ou=groups, USERS users and GROUPS groups,
    groupOfNames and groupOfUniqueNames in turn, each user in one group."""
    base = ds389.BASE
    parts = [f"dn: ou=people,{base}\nobjectClass: organizationalUnit\nou: people\n",
             f"dn: ou=groups,{base}\nobjectClass: organizationalUnit\nou: groups\n"]
    for i in range(USERS):
        password = f"userPassword: pw-{i:03d}-secret\n" if passwords else ""
        parts.append(f"dn: uid=u{i:03d},ou=people,{base}\nobjectClass: inetOrgPerson\nuid: u{i:03d}\n"
                     f"cn: User {i}\nsn: User\n{password}")
    for g in range(GROUPS):
        oc, attr = ("groupOfNames", "member") if g % 2 == 0 else ("groupOfUniqueNames", "uniqueMember")
        members = "".join(f"{attr}: uid=u{i:03d},ou=people,{base}\n" for i in range(g, USERS, GROUPS))
        parts.append(f"dn: cn=g{g},ou=groups,{base}\nobjectClass: {oc}\ncn: g{g}\n{members}")
    return "\n".join(parts)


def one_round(db_lib: str, ldif: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="ds389-bench-") as tmp:
        server = ds389.DS389(Path(tmp), db_lib=db_lib, plugins=("memberof", "refint", "contentsync"))
        seconds = {}
        start = time.perf_counter()
        server._create()
        seconds["create"] = time.perf_counter() - start
        server._loaded = True  # only the read ACI is left out, and it costs one write
        try:
            start = time.perf_counter()
            server.start()
            seconds["start"] = time.perf_counter() - start
            start = time.perf_counter()
            server.load_ldif(text=ldif)
            seconds["add 100"] = time.perf_counter() - start
        finally:
            start = time.perf_counter()
            server.stop()
            seconds["stop"] = time.perf_counter() - start
        return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--passwords", action="store_true", help="give every user a userPassword")
    parser.add_argument("--db-lib", choices=("bdb", "mdb"), default="bdb")
    args = parser.parse_args()
    reason = ds389.missing()
    if reason:
        print(reason, file=sys.stderr)
        return 2
    ldif = entries_ldif(args.passwords)
    print(f"389-ds ({args.db_lib}), 100 entries{' with passwords' if args.passwords else ''}, "
          f"median of {args.repeat}")
    rounds = [one_round(args.db_lib, ldif) for _ in range(args.repeat)]
    print(", ".join(f"{step} {statistics.median(r[step] for r in rounds):.2f} s" for step in rounds[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
