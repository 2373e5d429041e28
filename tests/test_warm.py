"""A run that starts from what the last run of its process left in memory
(serve's poller, :mod:`ldapsync.warm`) ends exactly as a run that starts
from nothing: the same file, findings, counts and diff, after every step
of a seeded random walk over an in-memory directory.  The walk goes
through what makes mapping global: duplicate and lookalike JIDs, names two
groups claim (held as the file has them), a static group, public groups,
nesting, disabled accounts, names that need cleaning and a JID with two
names (which render refuses).

The memory directory offers only a change marker, so each changed step is
a full read; it hands out the same object for an entry that did not
change, as the snapshot of an incremental run does.  Reading only the changes, with the snapshot kept in memory,
is tested against a real slapd (tests/ldap/test_incremental.py)."""

from __future__ import annotations

import os
import random

import pytest
import yaml

from ldapsync import config as configlib
from ldapsync import groupsfile, modelcache, sync
from ldapsync.errors import UserError
from ldapsync.warm import Warm
from tests.limits import NO_LIMITS
from tests.memory_directory import MemoryDirectory
from tests.test_pipeline import GROUPS, PEOPLE, group, person

SEED = int(os.environ.get("LDAPSYNC_WARM_SEED", "7"))
STEPS = int(os.environ.get("LDAPSYNC_WARM_STEPS", "150"))
CONTEXT = "dc=example,dc=com"


def config_for(tmp_path, name: str, public: str = "Public*"):
    data = {
        "ldap": {"servers": ["ldap://directory.invalid"]},
        "users": {"base": PEOPLE, "disabled": "389ds"},
        "groups": {"base": GROUPS, "public": [public], "exclude": ["Hidden*"]},
        "mapping": {"jid": "{{ uid }}@example.com", "name": "{{ displayName }}",
                    "group_name": "{{ description or cn }}"},
        "static_groups": [{"name": "Helpdesk", "members": {"help@example.com": "Help Desk"}}],
        "outputs": [{"path": str(tmp_path / f"groups-{name}.txt"), "backups": 0, "safety": NO_LIMITS}],
        "state": {"path": str(tmp_path / f"state-{name}.json")},
    }
    return configlib.parse(yaml.safe_dump(data))


class Walk:
    """Random changes to an in-memory directory, each named for the failure message."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.data: dict[str, dict] = {CONTEXT: {"objectClass": ["domain"]},
                                      PEOPLE: {"objectClass": ["organizationalUnit"]},
                                      GROUPS: {"objectClass": ["organizationalUnit"]}}
        self.serial = 0
        self.kept: dict = {}
        for _ in range(30):
            self.add_user()
        for _ in range(8):
            self.add_group()

    def users(self) -> list[str]:
        return sorted(dn for dn in self.data if dn.endswith(PEOPLE) and dn != PEOPLE)

    def groups(self) -> list[str]:
        return sorted(dn for dn in self.data if dn.endswith(GROUPS) and dn != GROUPS)

    def add_user(self) -> str:
        self.serial += 1
        dn, attrs = person(f"u{self.serial}", f"User {self.serial}")
        self.data[dn] = attrs
        return f"add {dn}"

    def add_group(self) -> str:
        self.serial += 1
        users = self.users()
        prefix = self.rng.choice(["Team", "Public", "Hidden"])
        dn, attrs = group(f"{prefix} {self.serial}", *self.rng.sample(users, min(len(users), self.rng.randint(0, 8))))
        self.data[dn] = attrs
        return f"add {dn}"

    def step(self) -> str:
        rng, users, groups = self.rng, self.users(), self.groups()
        kind = rng.choice(["name", "name", "uid", "lock", "member", "member", "nest", "rename-group",
                           "delete-user", "add-user", "delete-group", "add-group", "hostile", "none"])
        if kind == "add-user" or (not users and kind != "add-group"):
            return self.add_user()
        if kind == "add-group" or not groups:
            return self.add_group()
        user, grp = rng.choice(users), rng.choice(groups)
        if kind == "name":
            self.data[user]["displayName"] = [rng.choice(["Alice", "Bob", f"User {rng.randint(0, 99)}", ""])]
        elif kind == "uid":
            # another's uid (a duplicate JID), or a lookalike of it (a zero-width space)
            other = self.data[rng.choice(users)]["uid"][0].replace("\u200b", "")
            self.data[user]["uid"] = [rng.choice([other, other + "\u200b", f"n{rng.randint(0, 99)}"])]
        elif kind == "lock":
            attrs = self.data[user]
            if attrs.pop("nsAccountLock", None) is None:
                attrs["nsAccountLock"] = ["TRUE"]
        elif kind == "member":
            members = self.data[grp]["member"]
            if user in members:
                members.remove(user)
            else:
                members.append(user)
        elif kind == "nest":
            self.data[grp]["member"].append(rng.choice(groups))
        elif kind == "rename-group":
            # sometimes onto another group's name: the name is then held as the file has it
            other = self.data[rng.choice(groups)]["cn"][0]
            self.data[grp]["description"] = [rng.choice([other, f"Team {rng.randint(0, 99)}", "Public x"])]
        elif kind == "delete-user":
            del self.data[user]
        elif kind == "delete-group":
            del self.data[grp]
        elif kind == "hostile":
            self.data[user]["displayName"] = [rng.choice(["a\nb", "x]y", "a=b", "\x07bell", " pad ",
                                                          "Help Desk"])]
            if rng.random() < 0.3:
                # the static group's JID under another name, which render refuses: one name per JID
                self.data[user]["uid"] = ["help"]
                self.data[grp]["member"].append(user)
        return f"{kind} {user if kind not in ('nest', 'rename-group', 'delete-group') else grp}"

    def directory(self) -> MemoryDirectory:
        return KeptEntries(self.data, context=CONTEXT, kept=self.kept)


class KeptEntries(MemoryDirectory):
    """Hands out the same Entry object for an entry that did not change, as
    the snapshot of an incremental run does; a changed one is a new object."""

    def __init__(self, *args, kept: dict, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.kept = kept

    def _paged_search(self, *args, **kwargs):
        for entry in super()._paged_search(*args, **kwargs):
            key = (entry.dn, repr(sorted(entry.attrs.items())))
            yield self.kept.setdefault(key, entry)


def outcome(config, directory, warm: Warm | None = None):
    """What a run gives: its file, findings, counts and diff; or the error it stops with."""
    try:
        result = sync.run(config, directory, warm=warm)
    except UserError as exc:
        return ("refused", str(exc).replace(str(config.outputs[0].path), "OUTPUT")), None
    counts = result.counts.as_dict()
    del counts["fetch_seconds"]
    out = result.outputs[0]
    return (config.outputs[0].path.read_bytes(), [str(f) for f in result.findings], counts,
            None if out.diff is None else out.diff.as_json(), out.changed), result


def test_a_warm_run_ends_as_a_cold_one_after_random_changes(tmp_path):
    rng = random.Random(SEED)
    walk = Walk(rng)
    warm_config, cold_config = config_for(tmp_path, "warm"), config_for(tmp_path, "cold")
    warm = Warm()
    history: list[str] = []
    reused = 0
    for step in range(STEPS):
        history.append(f"step {step}: " + "; ".join(walk.step() for _ in range(rng.randint(1, 3))))
        got, result = outcome(warm_config, walk.directory(), warm)
        expected, _ = outcome(cold_config, walk.directory())
        where = f"seed {SEED} (LDAPSYNC_WARM_SEED), after:\n" + "\n".join(history[-6:])
        assert got == expected, where
        if result is not None and result.read.warm:
            state = warm._state
            assert state is not None
            counts = result.counts
            reused += state.mapping.misses[0] < counts.users_read - counts.users_left_out.get("disabled", 0)
        if result is not None and result.outputs[0].changed:
            # the cache a warm run leaves describes the file it wrote, as a cold run's does
            path = warm_config.outputs[0].path
            cached = modelcache.load(modelcache.path_for(warm_config.state.path, path), path.read_bytes())
            assert cached is not None, where
            reading = groupsfile.read(path)
            assert cached.groups() == [(name, name in reading.public_names, dict(members))
                                       for name, members in reading.visible_groups().items()], where
    # the walk went through the memo, not around it
    assert reused > STEPS // 2, f"only {reused} of {STEPS} runs reused what the last one mapped"


def test_a_failed_run_leaves_nothing_for_the_next(tmp_path):
    walk = Walk(random.Random(SEED))
    config = config_for(tmp_path, "warm")
    warm = Warm()
    sync.run(config, walk.directory(), warm=warm)
    assert sync.run(config, walk.directory(), warm=warm).read.warm
    with pytest.raises(UserError):
        sync.run(config, MemoryDirectory(walk.data, context=CONTEXT, unreachable=True), warm=warm)
    walk.add_user()
    assert not sync.run(config, walk.directory(), warm=warm).read.warm


def test_another_config_starts_cold(tmp_path):
    walk = Walk(random.Random(SEED))
    warm = Warm()
    sync.run(config_for(tmp_path, "one"), walk.directory(), warm=warm)
    other = config_for(tmp_path, "one", public="Team*")
    assert not sync.run(other, walk.directory(), warm=warm).read.warm
