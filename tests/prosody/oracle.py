"""Prosody's own Lua code (util.jid, mod_groups.lua) as a test oracle."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ORACLE = Path(__file__).with_name("oracle.lua")
PROSODY_LIB = Path(os.environ.get("PROSODY_LIB", "/usr/lib/prosody"))


def _x(value: bytes | str) -> str:
    raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    return raw.hex()


def _unx(word: str) -> str:
    return bytes.fromhex(word[1:]).decode("utf-8", "surrogateescape")


class LuaOracle:
    """A long-running ``lua5.4`` that answers with the installed Prosody's code."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            ["lua5.4", str(ORACLE)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )

    def prep_many(self, jids: list[str]) -> list[str | None]:
        """Batched ``util.jid.prep``; None where Prosody rejects the JID."""
        data = "".join(f"prep {_x(j)}\n" for j in jids)
        out = subprocess.run(["lua5.4", str(ORACLE)], input=data, capture_output=True, text=True, check=True)
        answers = out.stdout.split("\n")[: len(jids)]
        return [None if a == "-" else bytes.fromhex(a).decode("utf-8", "surrogateescape") for a in answers]

    def prep(self, jid: str) -> str | None:
        self.proc.stdin.write(f"prep {_x(jid)}\n")
        answer = self.proc.stdout.readline().rstrip("\n")
        return None if answer == "-" else bytes.fromhex(answer).decode("utf-8", "surrogateescape")

    def roster(self, groups_file: Path, username: str, host: str, module: Path | None = None) -> list[dict]:
        """The roster mod_groups.lua itself (or the module file ``module``,
        such as mod_groups_live.lua) injects for username@host."""
        extra = f" {_x(str(module))}" if module else ""
        self.proc.stdin.write(f"roster {_x(str(groups_file))} {_x(username)} {_x(host)}{extra}\n")
        items = []
        while True:
            line = self.proc.stdout.readline().rstrip("\n")
            if line == "end":
                return items
            _, contact, name, subscription, groups = line.split(" ")
            items.append({
                "jid": _unx(contact),
                "name": None if name == "-" else _unx(name),
                "subscription": subscription,
                "groups": [] if groups == "-" else sorted(_unx(g) for g in groups.split(",")),
            })

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=10)
