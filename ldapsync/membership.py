"""Who is in which directory group: member attributes, nesting, disabled accounts.

Works on the two result sets of a sync (users, groups) without asking the
directory anything more, so that the number of searches does not grow with
the number of groups or members.  Everything that is left out is reported,
never fatal: a member DN that points nowhere, an account that is disabled,
a nesting cycle, nesting deeper than the limit.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import cast

from ldapsync import dn as dnlib
from ldapsync.config import GroupSettings, UserSettings
from ldapsync.directory import Entry
from ldapsync.directory.base import changed_in_place

MEMBER_ATTRIBUTES = ("member", "uniquemember", "memberuid")


@dataclass(frozen=True)
class Finding:
    """Something left out or worth a look, with the entry it is about."""

    kind: str
    subject: str
    message: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.message}"


@dataclass
class Memberships:
    """The resolved directory: users by DN key, groups by DN key, and for each
    group its users (direct and through nested groups)."""

    users: dict[str, Entry]
    disabled: dict[str, str]  # user DN key -> why
    groups: dict[str, Entry]
    direct_users: dict[str, set[str]]
    subgroups: dict[str, list[str]]
    members: dict[str, set[str]]
    findings: list[Finding] = field(default_factory=list)

    def path(self, group: str, user: str, max_depth: int) -> list[str] | None:
        """The nesting path from ``group`` down to the group that lists
        ``user`` directly (group DN keys), or None."""
        parents: dict[str, str | None] = {group: None}
        queue = deque([(group, 0)])
        while queue:
            g, depth = queue.popleft()
            if user in self.direct_users.get(g, ()):
                chain = [g]
                parent = parents[g]
                while parent is not None:
                    chain.append(parent)
                    parent = parents[parent]
                return list(reversed(chain))
            if depth >= max_depth:
                continue
            for sub in self.subgroups.get(g, ()):
                if sub not in parents:
                    parents[sub] = g
                    queue.append((sub, depth + 1))
        return None


def disabled_reason(entry: Entry, preset: str, today: int | None = None) -> str | None:
    """Why a preset considers ``entry`` disabled, or None."""
    if preset == "ad":
        raw = entry.first("userAccountControl")
        if raw.lstrip("-").isdigit() and int(raw) & 2:
            return f"disabled (userAccountControl {raw} has the ACCOUNTDISABLE bit)"
    elif preset in ("389ds", "freeipa"):
        if entry.first("nsAccountLock").strip().lower() == "true":
            return "disabled (nsAccountLock: TRUE)"
    elif preset == "shadow":
        raw = entry.first("shadowExpire")
        days = today if today is not None else int(time.time() // 86400)
        if raw.lstrip("-").isdigit() and 0 <= int(raw) <= days:
            return f"disabled (shadowExpire {raw} is in the past)"
    return None


PRESET_ATTRIBUTES = {"ad": ["userAccountControl"], "389ds": ["nsAccountLock"], "freeipa": ["nsAccountLock"],
                     "shadow": ["shadowExpire"], "none": []}


def resolve(users: Iterable[Entry], groups: Iterable[Entry], user_settings: UserSettings,
            group_settings: GroupSettings, disabled_by_filter: set[str] | None = None,
            memo: ResolveMemo | None = None) -> Memberships:
    """Index users and groups and work out every group's users.  ``memo``
    (serve's poller, see :mod:`ldapsync.warm`): what the last run resolved,
    reused where the entries are the same (:func:`_reused`)."""
    findings: list[Finding] = []
    if memo is not None and group_settings.membership != "memberOf":
        return _reused(list(users), list(groups), user_settings, group_settings, disabled_by_filter, memo)
    user_index, disabled, seen, by_uid = _index_users(list(users), user_settings, disabled_by_filter, findings)

    group_index: dict[str, Entry] = {}
    for entry in groups:
        group_index[dnlib.normalize(entry.dn)] = entry
    del groups  # a caller that hands its list over frees each group's member values as they are resolved

    if group_settings.membership == "memberOf":
        direct_users, subgroups = _from_member_of(user_index, disabled, group_index)
    else:
        direct_users, subgroups = _from_member_values(user_index, disabled, group_index, seen, by_uid,
                                                      user_settings, findings)
    return _nested(user_index, disabled, group_index, direct_users, subgroups, group_settings, findings)


def _nested(user_index: dict[str, Entry], disabled: dict[str, str], group_index: dict[str, Entry],
            direct_users: dict[str, set[str]], subgroups: dict[str, list[str]], group_settings: GroupSettings,
            findings: list[Finding]) -> Memberships:
    """The memberships once each group's direct users and subgroups are known."""

    if group_settings.nested == "off":
        subgroups = {k: [] for k in subgroups}
    if group_settings.nested == "in_chain":
        # the server expands nesting (ldapsync.directory.in_chain); subgroups stay for explain's paths
        members = {k: set(v) for k, v in direct_users.items()}
    else:
        members = _expand(direct_users, subgroups, group_settings.max_depth, group_index, findings)
    return Memberships(user_index, disabled, group_index, direct_users, subgroups, members, findings)


def _reused(users: list[Entry], groups: list[Entry], user_settings: UserSettings, group_settings: GroupSettings,
            disabled_by_filter: set[str] | None, memo: ResolveMemo) -> Memberships:
    """:func:`resolve` (member values) that reuses what the last run gave.

    Entries come in DN order, so when no entry was added, removed or
    renamed the lists line up, and an entry that changed sits where its
    old self was.  The users' index is then reused when the changed users
    keep their uids and whether they are disabled (what member values
    resolve to), and each group is resolved again only when its own entry
    changed.  Anything else indexes and resolves everything, as a cold run."""
    findings: list[Finding] = []
    index = memo.index if memo.disabled_by_filter == disabled_by_filter else None
    if index is not None and len(index[0]) != len(memo.users or ()):
        index = None  # two users with one DN key: the plain way settles which one counts
    before = memo.users
    changed_users = changed_in_place(before, users)
    if index is not None and before is not None and changed_users is not None and all(
            _resolves_alike(before[i], users[i], user_settings, disabled_by_filter, index[1])
            for i in changed_users):
        user_index = index[0]
        for i in changed_users:
            user_index[dnlib.normalize(users[i].dn)] = users[i]
        user_findings = memo.user_findings
        changed_groups = changed_in_place(memo.groups, groups)
    else:
        index = _index_users(users, user_settings, disabled_by_filter, user_findings := [])
        changed_groups = None
    user_index, disabled, seen, by_uid = index
    if changed_groups is None:  # everything resolved again
        keys = dnlib.normalize_many([g.dn for g in groups])
        if len(set(keys)) != len(keys):  # two spellings of one DN: the plain way settles which one counts
            memo.forget()
            return resolve(users, groups, user_settings, group_settings, disabled_by_filter)
        stripped: list[Entry | None] = [None] * len(groups)
        per_group: list[tuple[set[str], list[str], list[Finding]] | None] = [None] * len(groups)
        changed_groups = list(range(len(groups)))
    else:
        keys, stripped, per_group = memo.group_keys, list(memo.stripped), list(memo.per_group)
    group_index = {key: (entry if entry is not None else groups[i]) for i, (key, entry) in
                   enumerate(zip(keys, stripped, strict=True))}
    values_of = _MemberValues(user_index, disabled, group_index, seen, by_uid, user_settings, [])
    for i in changed_groups:
        values_of.findings = []
        per_group[i] = _direct(values_of, groups[i])
        stripped[i] = _stripped(groups[i])
    direct_users: dict[str, set[str]] = {}
    subgroups: dict[str, list[str]] = {}
    for i, key in enumerate(keys):
        group_index[key] = stripped[i]  # type: ignore[assignment]  # every None filled above
        direct_users[key], subgroups[key], found = per_group[i]  # type: ignore[misc]
        findings += found
    memo.remember(users, groups, disabled_by_filter, index, user_findings, keys, stripped, per_group)
    return _nested(user_index, disabled, group_index, direct_users, subgroups, group_settings,
                   [*user_findings, *findings])


def _resolves_alike(old: Entry, new: Entry, user_settings: UserSettings, disabled_by_filter: set[str] | None,
                    disabled: dict[str, str]) -> bool:
    """Whether member values resolve to ``new`` as they did to ``old`` (the
    same DN): the same uids, and disabled (for the same reason) or not."""
    uid = user_settings.uid_attribute.lower()
    if old.attrs.get(uid) != new.attrs.get(uid):
        return False
    reason = disabled_reason(new, user_settings.disabled)
    if reason is None and disabled_by_filter is not None and dnlib.normalize(new.dn) in disabled_by_filter:
        reason = "disabled (matches users.disabled_filter)"
    return reason == disabled.get(dnlib.normalize(old.dn))


def _index_users(users: list[Entry], user_settings: UserSettings, disabled_by_filter: set[str] | None,
                 findings: list[Finding]) -> tuple[dict[str, Entry], dict[str, str], dict[str, str], dict[str, str]]:
    """The users by DN key; the disabled ones (key -> why); and each user's
    own DN and each uid (lower-cased) resolved to their key, or to "" for a
    disabled user."""
    user_index: dict[str, Entry] = {}
    disabled: dict[str, str] = {}
    # Member values resolved so far, as spelled: to the user's key, or to ""
    # for a disabled user.  Most groups spell a member DN the way the
    # directory returns the user's own DN, so that spelling is known up front.
    seen: dict[str, str] = {}
    by_uid: dict[str, str] = {}  # memberUid values, lower-cased, likewise
    uid_attr = user_settings.uid_attribute.lower()
    for entry, key in zip(users, dnlib.normalize_many([entry.dn for entry in users]), strict=True):
        user_index[key] = entry
        reason = disabled_reason(entry, user_settings.disabled)
        if reason is None and disabled_by_filter is not None and key in disabled_by_filter:
            reason = "disabled (matches users.disabled_filter)"
        if reason is not None:
            disabled[key] = reason
            findings.append(Finding("disabled", entry.dn, reason))
        resolved = key if reason is None else ""
        seen.setdefault(entry.dn, resolved)
        for uid in entry.attrs.get(uid_attr, ()):
            by_uid.setdefault(uid.lower(), resolved)
    return user_index, disabled, seen, by_uid


def _from_member_of(user_index: dict[str, Entry], disabled: dict[str, str],
                    group_index: dict[str, Entry]) -> tuple[dict[str, set[str]], dict[str, list[str]]]:
    """Each group's direct users and subgroups from the memberOf values of
    users and groups (groups.membership: memberOf)."""
    direct_users: dict[str, set[str]] = {}
    subgroups: dict[str, list[str]] = {}
    for key in group_index:
        direct_users[key] = set()
        subgroups[key] = []
    for key, entry in user_index.items():
        if key in disabled:
            continue
        for value in entry.attrs.get("memberof", ()):
            gkey = dnlib.normalize(value)
            if gkey in direct_users:
                direct_users[gkey].add(key)
    for key, entry in group_index.items():
        for value in entry.attrs.get("memberof", ()):
            parent = dnlib.normalize(value)
            if parent in subgroups:
                subgroups[parent].append(key)
    return direct_users, subgroups


def _from_member_values(user_index: dict[str, Entry], disabled: dict[str, str], group_index: dict[str, Entry],
                        seen: dict[str, str], by_uid: dict[str, str], user_settings: UserSettings,
                        findings: list[Finding]) -> tuple[dict[str, set[str]], dict[str, list[str]]]:
    """Each group's direct users and subgroups from its member, uniqueMember
    and memberUid values, which are then dropped from ``group_index``."""
    values_of = _MemberValues(user_index, disabled, group_index, seen, by_uid, user_settings, findings)
    direct_users: dict[str, set[str]] = {}
    subgroups: dict[str, list[str]] = {}
    for key, entry in list(group_index.items()):
        direct_users[key], subgroups[key], _ = _direct(values_of, entry)
        # the member values are resolved: keep the group's other attributes only
        group_index[key] = _stripped(entry)
    return direct_users, subgroups


def _direct(values_of: _MemberValues, entry: Entry) -> tuple[set[str], list[str], list[Finding]]:
    """One group's direct users and subgroups from its member values, and
    the findings about them (also added to ``values_of.findings``)."""
    users: set[str] = set()
    subgroups: list[str] = []
    start = len(values_of.findings)
    for attr in ("member", "uniquemember"):
        values = entry.attrs.get(attr)
        if values:
            users |= values_of.dns(entry.dn, values, subgroups)
    values = entry.attrs.get("memberuid")
    if values:
        users |= values_of.uids(entry.dn, values)
    return users, subgroups, values_of.findings[start:]


def _stripped(entry: Entry) -> Entry:
    """A group without its member values, once they are resolved."""
    return Entry(entry.dn, {a: v for a, v in entry.attrs.items() if a not in MEMBER_ATTRIBUTES})


class _MemberValues:
    """Groups' member values resolved to user keys, each spelling of a member
    DN looked up once (see :func:`_index_users` for ``seen`` and ``by_uid``)."""

    def __init__(self, user_index: dict[str, Entry], disabled: dict[str, str], group_index: dict[str, Entry],
                 seen: dict[str, str], by_uid: dict[str, str], user_settings: UserSettings,
                 findings: list[Finding]) -> None:
        self.user_index, self.disabled, self.group_index = user_index, disabled, group_index
        self.seen, self.by_uid = seen, by_uid
        self.users_base = dnlib.normalize(user_settings.base)
        self.uid_attribute = user_settings.uid_attribute
        self.findings = findings

    def dns(self, group_dn: str, values: list[str], subgroups: list[str]) -> set[str]:
        """The enabled users that member DNs name; the groups they name are
        added to ``subgroups``, and the rest reported."""
        seen = self.seen
        found = set(map(seen.get, values))
        if None in found:  # spellings not seen yet: subgroups, other spellings, unknown DNs
            found.discard(None)
            for value in values:
                if value in seen:
                    continue
                key = dnlib.normalize(dnlib.strip_uid_suffix(value))
                if key in self.user_index:
                    seen[value] = resolved = "" if key in self.disabled else key
                    found.add(resolved)
                elif key in self.group_index:
                    subgroups.append(key)
                elif dnlib.is_under(key, self.users_base):
                    self.findings.append(Finding("member-not-found", group_dn,
                                                 f"member {value!r} is not a user ldapsync found (missing, or not "
                                                 "matched by users.filter)"))
                else:
                    self.findings.append(Finding("member-outside-base", group_dn,
                                                 f"member {value!r} is outside users.base and not a group ldapsync "
                                                 "read"))
        found.discard("")
        return cast("set[str]", found)  # None discarded above

    def uids(self, group_dn: str, values: list[str]) -> set[str]:
        """The enabled users that memberUid values name; the rest reported."""
        by_uid = self.by_uid
        found = {by_uid.get(uid.lower()) for uid in values}
        if None in found:
            found.discard(None)
            for uid in values:
                if uid.lower() not in by_uid:
                    self.findings.append(Finding("member-not-found", group_dn,
                                                 f"memberUid {uid!r} matches no user's {self.uid_attribute}"))
        found.discard("")
        return cast("set[str]", found)  # None discarded above


def _expand(direct: dict[str, set[str]], subgroups: dict[str, list[str]], max_depth: int,
            groups: dict[str, Entry], findings: list[Finding]) -> dict[str, set[str]]:
    """Every group's users through nesting, breadth first up to ``max_depth``
    levels; each cycle and each cut-off is reported once."""
    members: dict[str, set[str]] = {}
    for cycle in _cycles(subgroups):
        names = "; ".join(groups[g].dn for g in cycle)
        findings.append(Finding("nesting-cycle", groups[cycle[0]].dn,
                                f"these groups contain each other (a nesting cycle): {names}"))
    cut: set[tuple[str, str]] = set()
    for group in direct:
        if not subgroups.get(group):
            members[group] = direct[group]
            continue
        found = set(direct[group])
        seen = {group}
        frontier = [group]
        for _ in range(max_depth):
            nxt = []
            for g in frontier:
                for sub in subgroups.get(g, ()):
                    if sub not in seen:
                        seen.add(sub)
                        nxt.append(sub)
                        found |= direct.get(sub, set())
            frontier = nxt
            if not frontier:
                break
        else:
            for g in frontier:
                for sub in subgroups.get(g, ()):
                    if sub not in seen and (g, sub) not in cut:
                        cut.add((g, sub))
                        findings.append(Finding(
                            "nesting-too-deep", groups[group].dn,
                            f"nested group {groups[sub].dn} is more than {max_depth} levels down "
                            "(groups.max_depth); its members are left out here"))
        members[group] = found
    return members


def _cycles(subgroups: dict[str, list[str]]) -> list[list[str]]:
    """The nesting cycles (strongly connected components with a loop), each
    once, found with Tarjan's algorithm (iterative: nesting can be deep)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []
    counter = 0
    for root in subgroups:
        if root in index:
            continue
        work = [(root, iter(subgroups.get(root, ())))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(subgroups.get(child, ()))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1 or node in subgroups.get(node, ()):
                    cycles.append(sorted(component))
    return cycles


def apply_in_chain(members: Memberships, found: dict[str, set[str]]) -> None:
    """Put the server's in-chain answers (see :mod:`ldapsync.directory.in_chain`)
    in ``members``: each group's users are those the search found (disabled
    ones left out) and those it lists directly (memberUid, for one).  Groups
    not asked about keep their direct users."""
    keys = {k: k for k in members.users}
    for group, users in found.items():
        if group not in members.members:
            continue
        chained = {keys[u] for u in users if u in keys and u not in members.disabled}
        members.members[group] = chained | members.direct_users.get(group, set())


class ResolveMemo:
    """What resolving memberships gave last time, for serve's poll process
    (:mod:`ldapsync.warm`; see :func:`_reused`):
    the entries it was given, the users' index, and each group's direct
    users, subgroups and findings, by position in DN order."""

    def __init__(self) -> None:
        self.forget()

    def forget(self) -> None:
        self.users: list[Entry] | None = None
        self.groups: list[Entry] | None = None
        self.disabled_by_filter: set[str] | None = None
        self.index: tuple[dict[str, Entry], dict[str, str], dict[str, str], dict[str, str]] | None = None
        self.user_findings: list[Finding] = []
        self.group_keys: list[str] = []
        self.stripped: list[Entry | None] = []
        self.per_group: list[tuple[set[str], list[str], list[Finding]] | None] = []

    def remember(self, users: list[Entry], groups: list[Entry], disabled_by_filter: set[str] | None,
                 index: tuple[dict[str, Entry], dict[str, str], dict[str, str], dict[str, str]],
                 user_findings: list[Finding], group_keys: list[str], stripped: list[Entry | None],
                 per_group: list[tuple[set[str], list[str], list[Finding]] | None]) -> None:
        self.users, self.groups, self.disabled_by_filter, self.index = users, groups, disabled_by_filter, index
        self.user_findings, self.group_keys, self.stripped, self.per_group = (user_findings, group_keys, stripped,
                                                                              per_group)
