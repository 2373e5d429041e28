"""From directory entries to shared groups, through the config's templates
(:mod:`ldapsync.templates`): each user's JID and name, each group's name,
duplicate and lookalike JIDs, names two groups claim, static groups, and
each output's selection."""

from __future__ import annotations

import fnmatch
import logging
import stringprep
import unicodedata
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from itertools import chain
from operator import attrgetter
from typing import NamedTuple

from jinja2 import TemplateError

from ldapsync import jid as jidlib
from ldapsync.config import Config, GroupSettings, Output, StaticGroup
from ldapsync.directory import Entry
from ldapsync.directory.base import changed_in_place
from ldapsync.errors import ExitCode, UserError
from ldapsync.groupsfile import GroupsFile, clean_text, writable_jid
from ldapsync.invisible import describe, escaped, has_invisible, surely_visible
from ldapsync.membership import Finding, Memberships
from ldapsync.model import GroupsModel, SharedGroup
from ldapsync.templates import Templates

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Person:
    """A directory user as the groups file sees them."""

    key: str
    dn: str
    jid: str
    name: str | None


class LeftOutKind(StrEnum):
    """Why a directory user is in no groups file (the keys of the run's counts)."""

    DISABLED = "disabled"
    DUPLICATE_JID = "duplicate JID"
    LOOKALIKE_JID = "lookalike JID"
    BAD_JID = "bad JID"
    TEMPLATE_ERROR = "template error"
    NO_GROUP = "in no selected group"


class LeftOut(NamedTuple):
    """A user left out: the kind, and the sentence that says why."""

    kind: LeftOutKind
    why: str


@dataclass
class Mapped:
    """The shared groups the directory implies, before choosing outputs."""

    groups: dict[str, SharedGroup]  # shared name -> group
    sources: dict[str, list[str]]  # shared name -> group DNs behind it ("config" for static groups)
    people: dict[str, Person]  # user DN key -> person
    left_out: dict[str, LeftOut]  # user DN key -> why the user is in no group file
    findings: list[Finding] = field(default_factory=list)
    in_a_group: set[str] = field(default_factory=set)  # the JIDs of every member of a shared group
    # shared name -> the group DNs that all map to it (on_name_collision: refuse): the name is held as the
    # current file has it, and is in no output's groups from the directory
    held: dict[str, list[str]] = field(default_factory=dict)
    # shared name -> the member lines the directory itself gives it (static_groups not counted; groups
    # made only by static_groups absent): what safety.refuse_empty judges
    from_directory: dict[str, int] = field(default_factory=dict)


def map_directory(config: Config, templates: Templates, members: Memberships,
                  memo: MappingMemo | None = None) -> Mapped:
    """Shared groups from resolved memberships, as the config maps them.
    ``memo`` (serve's poller, see :mod:`ldapsync.warm`) gives back what the
    last run mapped for the users and groups that did not change."""
    findings: list[Finding] = []
    left_out = {key: LeftOut(LeftOutKind.DISABLED, why) for key, why in members.disabled.items()}
    people, reshaped, collisions = _people(templates, members, left_out, findings, memo)
    _settle_collisions(collisions, reshaped, members, people, left_out, findings)
    groups, sources, held, held_members = _shared_groups(config.groups, templates, members, people, findings, memo)
    from_directory = {name: len(g.members) for name, g in groups.items()}
    for name, dns in held.items():
        from_directory[name] = len(held_members[name])
        listed = sorted(dns)
        findings.append(Finding(
            "group-collision", name,
            f"{', '.join(listed[:-1])} and {listed[-1]} all map to this shared group name; the name is held as "
            "it is in the current file while the other groups sync (change mapping.group_name or a group's "
            "name, or set groups.on_name_collision: merge)"))
    _add_static_groups(config.static_groups, groups, sources, held, findings)
    in_a_group = set().union(*(g.members for g in groups.values()), *held_members.values())
    for key, person in people.items():
        if person.jid not in in_a_group:
            left_out.setdefault(key, LeftOut(LeftOutKind.NO_GROUP, "in no selected group"))
    return Mapped(groups, sources, people, left_out, findings, in_a_group, held, from_directory)


def _people(templates: Templates, members: Memberships, left_out: dict[str, LeftOut], findings: list[Finding],
            memo: MappingMemo | None = None) -> tuple[dict[str, Person], dict[str, str], dict[str, list[str]]]:
    """Every enabled user who has a JID Prosody accepts, by user key; the
    users whose rendered JID preparation changes beyond case (user key -> the
    rendered JID); and the JIDs several users give (JID -> their keys)."""
    enabled = [(key, entry) for key, entry in members.users.items() if key not in members.disabled]
    compute = partial(_people_outcomes, templates)
    made = people_of(enabled, compute(enabled)) if memo is None else memo.people(enabled, compute)
    left_out.update(made.left_out)
    findings += made.findings
    return made.people, made.reshaped, made.collisions


class People(NamedTuple):
    """The users mapped, before duplicate JIDs are settled (see :func:`_people`)."""

    people: dict[str, Person]
    reshaped: dict[str, str]
    collisions: dict[str, list[str]]
    left_out: dict[str, LeftOut]
    findings: list[Finding]


def people_of(enabled: Sequence[tuple[str, Entry]], outcomes: Iterable[PersonOutcome]) -> People:
    """The users mapped from each one's outcome, in order."""
    made = People({}, {}, {}, {}, [])
    people, collisions = made.people, made.collisions
    by_jid: dict[str, str] = {}  # JID -> the first user key that gives it
    for (key, _), (person, why, given, found) in zip(enabled, outcomes, strict=True):
        if why is not None:
            made.left_out[key] = why
        if given is not None:
            made.reshaped[key] = given
        if found:
            made.findings.extend(found)
        if person is None:
            continue
        people[key] = person
        first = by_jid.setdefault(person.jid, key)
        if first is not key:
            collisions.setdefault(person.jid, [first]).append(key)
    return made


class PersonOutcome(NamedTuple):
    """What mapping one user gives, on its own: the person (None: left
    out), why they are left out, the JID they render when preparation
    reshapes it, and the findings.  The same entry always gives the same."""

    person: Person | None
    left_out: LeftOut | None
    reshaped: str | None
    findings: tuple[Finding, ...]


def _people_outcomes(templates: Templates, users: Sequence[tuple[str, Entry]]) -> list[PersonOutcome]:
    """Each user mapped on its own (their templates rendered in batches)."""
    rendered = templates.render_people([entry for _, entry in users])
    out = []
    for (key, entry), both in zip(users, rendered, strict=True):
        left_out: dict[str, LeftOut] = {}
        reshaped: dict[str, str] = {}
        findings: list[Finding] = []
        person = _person(templates, key, entry, both, left_out, reshaped, findings)
        out.append(PersonOutcome(person, left_out.get(key), reshaped.get(key), tuple(findings)))
    return out


def _person(templates: Templates, key: str, entry: Entry, both: tuple[str, str] | None, left_out: dict[str, LeftOut],
            reshaped: dict[str, str], findings: list[Finding]) -> Person | None:
    """One user as the groups file sees them, from their rendered JID and
    name (``both``; None when the batch render failed); None, with the
    reason in ``left_out``, when the JID is not one Prosody accepts."""
    raw_name: str | None
    if both is not None:
        raw_jid, raw_name = both
    else:
        try:
            raw_jid = templates.render("jid", entry, templates.user_attributes)
        except TemplateError as exc:
            left_out[key] = LeftOut(LeftOutKind.TEMPLATE_ERROR, f"mapping.jid failed: {exc}")
            findings.append(Finding("template-error", entry.dn, left_out[key].why))
            return None
        raw_name = None  # rendered again below, to report a failure
    prepared = jidlib.prep(raw_jid)
    # is_prepared: a JID must read back as itself ("\xad@x" prepares to "@x", which does not)
    if (prepared is None or "@" not in prepared or "/" in prepared or not jidlib.is_prepared(prepared)
            or not writable_jid(prepared)):
        left_out[key] = LeftOut(LeftOutKind.BAD_JID,
                                f"mapping.jid gives {raw_jid!r}, which is not a user JID Prosody accepts")
        findings.append(Finding("bad-jid", entry.dn, left_out[key].why))
        return None
    if not surely_visible(prepared) and has_invisible(prepared):
        left_out[key] = LeftOut(LeftOutKind.BAD_JID,
                                f"mapping.jid gives {escaped(raw_jid)}, which Prosody reads as "
                                f"{escaped(prepared)}: a JID with {describe(prepared)} looks like another")
        findings.append(Finding("bad-jid", entry.dn, left_out[key].why))
        return None
    if raw_jid != prepared and not only_case(raw_jid, prepared):
        reshaped[key] = raw_jid
    name: str | None
    if raw_name and raw_name.isprintable() and raw_name[0] != " " and raw_name[-1] != " " and (
            len(raw_name) <= MAX_NAME) and (raw_name.isascii() or surely_visible(raw_name)):
        name = raw_name  # nothing to clean (the common case, checked quickly)
    else:
        name = _display_name(templates, entry, prepared, raw_name, findings)
    return Person(key, entry.dn, prepared, name)


def _settle_collisions(collisions: dict[str, list[str]], reshaped: dict[str, str], members: Memberships,
                       people: dict[str, Person], left_out: dict[str, LeftOut], findings: list[Finding]) -> None:
    """Of the users who give the same JID, the one who gives it as it is
    keeps it; when none or several do, all of them are left out.  Then a
    finding for each remaining user whose JID preparation reshaped."""
    for jid, keys in collisions.items():
        exact = [k for k in keys if k not in reshaped]
        if len(exact) == 1:
            _keep_the_exact_one(jid, exact[0], keys, members, people, left_out, reshaped, findings)
            continue
        dns = "; ".join(sorted(members.users[k].dn + (f" ({escaped(reshaped[k])})" if k in reshaped else "")
                               for k in keys))
        for k in keys:
            del people[k]
            left_out[k] = LeftOut(LeftOutKind.DUPLICATE_JID, f"several entries give the JID {jid}: {dns}")
        findings.append(Finding("jid-collision", jid, f"several entries give this JID, all left out: {dns}"))
    for key, given in reshaped.items():
        if key in people:
            findings.append(Finding("jid-prepared", people[key].dn, f"mapping.jid gives {escaped(given)}, which "
                                    f"Prosody reads as {people[key].jid}{_how_prepared(given)}"))


def _shared_groups(gs: GroupSettings, templates: Templates, members: Memberships, people: dict[str, Person],
                   findings: list[Finding], memo: MappingMemo | None = None
                   ) -> tuple[dict[str, SharedGroup], dict[str, list[str]], dict[str, list[str]], dict[str, set[str]]]:
    """The shared groups the directory's groups map to, and the group DNs
    behind each; the names held on a collision (see :attr:`Mapped.held`),
    with the group DNs and the members behind each."""
    named = {key: (p.jid, p.name) for key, p in people.items()} if memo is None else memo.named(people)
    groups: dict[str, SharedGroup] = {}
    sources: dict[str, list[str]] = {}
    held: dict[str, list[str]] = {}
    held_members: dict[str, set[str]] = {}
    each = [(key, entry, members.members.get(key) or set()) for key, entry in members.groups.items()]
    compute = partial(_group_outcomes, gs, templates, named.get)
    outcomes = compute(each) if memo is None else memo.groups(each, compute)
    for (_, entry, _), (group, found) in zip(each, outcomes, strict=True):
        if found:
            findings += found
        if group is None:
            continue
        shared = group.name
        if shared in held:
            held[shared].append(entry.dn)
            held_members[shared].update(group.members)
            continue
        if shared in groups and gs.on_name_collision == "refuse":
            # Anyone who may create a group must not be able to stop every roster update: the name
            # stays as it is in the current file, and every other group syncs.
            held[shared] = [*sources.pop(shared), entry.dn]
            held_members[shared] = {*groups.pop(shared).members, *group.members}
            continue
        if shared in groups:
            findings.append(Finding("group-merged", shared, f"{entry.dn} merged with {', '.join(sources[shared])}"))
            group = SharedGroup(shared, {**groups[shared].members, **group.members}, group.public)
        groups[shared] = group
        sources.setdefault(shared, []).append(entry.dn)
    return groups, sources, held, held_members


class GroupOutcome(NamedTuple):
    """What mapping one directory group gives, on its own: the shared
    group (None: not selected, or its name cannot be written) and the
    findings.  The same entry, users and people always give the same."""

    group: SharedGroup | None
    findings: tuple[Finding, ...]


def _group_outcomes(gs: GroupSettings, templates: Templates,
                    jid_and_name: Callable[[str], tuple[str, str | None] | None],
                    each: Sequence[tuple[str, Entry, set[str]]]) -> list[GroupOutcome]:
    """Each group mapped on its own (their names rendered in batches)."""
    names = templates.render_group_names([entry for _, entry, _ in each])
    out = []
    for (_, entry, users), raw in zip(each, names, strict=True):
        findings: list[Finding] = []
        group = _shared_group(gs, templates, entry, raw, users, jid_and_name, findings)
        out.append(GroupOutcome(group, tuple(findings)))
    return out


def _shared_group(gs: GroupSettings, templates: Templates, entry: Entry, raw: str | None, users: Iterable[str],
                  jid_and_name: Callable[[str], tuple[str, str | None] | None],
                  findings: list[Finding]) -> SharedGroup | None:
    """The shared group one directory group maps to, with its ``users`` who
    have a JID; None when the config does not select it or its name cannot
    be written (a finding says why)."""
    if raw is None:
        try:
            raw = templates.render("group_name", entry, templates.group_attributes)
        except TemplateError as exc:
            findings.append(Finding("template-error", entry.dn, f"mapping.group_name failed: {exc}"))
            return None
    shared = cleaned_name(raw)
    if shared != raw:
        findings.append(Finding("name-cleaned", entry.dn, f"group name {escaped(_short(raw))} cleaned to "
                                                          f"{escaped(_short(shared))}"))
    if not shared:
        findings.append(Finding("group-name-empty", entry.dn, "mapping.group_name gives an empty name; group "
                                                              "left out"))
        return None
    if not selected(shared, gs.include, gs.exclude):
        return None
    group = SharedGroup(shared, dict(filter(None, map(jid_and_name, users))),
                        any(fnmatch.fnmatchcase(shared, p) for p in gs.public))
    if shared.startswith("+") and not group.public:
        findings.append(Finding("group-name", entry.dn, f"a private group cannot be named {shared!r} "
                                                        "(a leading '+' makes a group public); left out"))
        return None
    return group


def _add_static_groups(static_groups: list[StaticGroup], groups: dict[str, SharedGroup],
                       sources: dict[str, list[str]], held: dict[str, list[str]], findings: list[Finding]) -> None:
    """The config's static_groups, merged into the directory's groups of the
    same name (a held name stays as the current file has it)."""
    for static in static_groups:
        extra = {}
        for raw, name in static.members.items():
            prepared = jidlib.prep(raw)
            if prepared is None:
                raise UserError(f"static_groups: {static.name!r}: {raw!r} is not a valid JID", ExitCode.CONFIG)
            if has_invisible(prepared):
                raise UserError(f"static_groups: {static.name!r}: {escaped(raw)} holds {describe(prepared)}: "
                                "invisible characters make it look like another JID", ExitCode.CONFIG)
            clean = clean_text(name)
            if clean != name:
                findings.append(Finding("name-cleaned", f"static_groups {static.name!r}",
                                        f"the name {escaped(_short(name))} of {prepared} cleaned to "
                                        f"{escaped(_short(clean))}"))
            extra[prepared] = clean or None
        if static.name in held:
            continue  # held whole, static members included, as the current file has it
        base = groups.get(static.name)
        merged = {**(base.members if base else {}), **extra}
        groups[static.name] = SharedGroup(static.name, merged, static.public or bool(base and base.public))
        sources.setdefault(static.name, []).append("config (static_groups)")


def _display_name(templates: Templates, entry: Entry, jid: str, raw: str | None,
                  findings: list[Finding]) -> str | None:
    if raw is None:  # rendering the name failed
        try:
            raw = templates.render("name", entry, templates.user_attributes)
        except TemplateError as exc:
            findings.append(Finding("template-error", entry.dn, f"mapping.name failed: {exc}"))
            raw = ""
    name = cleaned_name(raw)
    if name != raw:
        findings.append(Finding("name-cleaned", entry.dn, f"display name {escaped(_short(raw))} cleaned to "
                                                          f"{escaped(_short(name))}"))
    if name:
        return name
    node = jid.split("@", 1)[0]
    try:
        fallback = templates.render("name_fallback", entry, templates.user_attributes, jid=jid, jid_node=node)
    except TemplateError as exc:
        findings.append(Finding("template-error", entry.dn, f"mapping.name_fallback failed: {exc}"))
        fallback = node
    return cleaned_name(fallback) or node


MAX_NAME = 256  # characters: a display name reaches every roster that holds the user


def cleaned_name(raw: str) -> str:
    """A rendered name as the groups file gets it: invisible and bidi
    characters, control characters and line breaks cleaned away, at most
    MAX_NAME characters."""
    text = clean_text(raw)
    # cut again: the cut may leave a joiner at the end, where it hides
    return text if len(text) <= MAX_NAME else clean_text(text[:MAX_NAME])


def only_case(raw: str, prepared: str) -> bool:
    """Whether Prosody's preparation of ``raw`` changed nothing but the case
    of letters (Unicode case folding: "JSmith", "STRASSE"/"Straße", a Greek
    final sigma).  Anything else (an invisible character dropped, a
    fullwidth or ligature form normalised, a domain's trailing dot) makes
    two different directory values one JID."""
    return raw.lower() == prepared or raw.casefold() == prepared


def _how_prepared(raw: str) -> str:
    dropped = [f"U+{ord(c):04X} {unicodedata.name(c, 'unassigned')}"
               for c in dict.fromkeys(raw) if stringprep.in_table_b1(c)]
    if dropped:
        return f", dropping {', '.join(dropped)}"
    return ", normalised beyond case"


def _keep_the_exact_one(jid: str, owner: str, keys: list[str], members: Memberships, people: dict[str, Person],
                        left_out: dict[str, LeftOut], reshaped: dict[str, str], findings: list[Finding]) -> None:
    """Several entries give ``jid`` and one of them gives it as it is (up to
    case): that one keeps it, the lookalikes are left out.  A uid with a
    zero-width space must not take the real user out of every roster."""
    owner_dn = members.users[owner].dn
    for k in keys:
        if k == owner:
            continue
        del people[k]
        dn, raw = members.users[k].dn, reshaped.pop(k)
        why = f"lookalike of {owner_dn}: mapping.jid gives {escaped(raw)}, which Prosody reads as {jid}"
        left_out[k] = LeftOut(LeftOutKind.LOOKALIKE_JID, why)
        findings.append(Finding("jid-lookalike", dn, f"{why}{_how_prepared(raw)}: left out, {owner_dn} "
                                                     "keeps the JID"))


def _short(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."


def selected(name: str, include: list[str], exclude: list[str]) -> bool:
    """Whether shell patterns ``include`` and not ``exclude`` select a shared group name."""
    return any(fnmatch.fnmatchcase(name, p) for p in include) and not any(
        fnmatch.fnmatchcase(name, p) for p in exclude)


def selected_groups(config: Config, templates: Templates, groups: Iterable[Entry]) -> list[Entry]:
    """The groups whose shared name groups.include/exclude select (those the
    server is asked about with nested: in_chain).  A group whose name cannot
    be rendered is kept: the mapping reports it."""
    gs = config.groups
    chosen = []
    for entry in groups:
        try:
            name = cleaned_name(templates.render("group_name", entry, templates.group_attributes))
        except TemplateError:
            chosen.append(entry)
            continue
        if selected(name, gs.include, gs.exclude):
            chosen.append(entry)
    return chosen


def model_for(output: Output, mapped: Mapped) -> GroupsModel:
    """The groups one output file holds from the directory and the config:
    its own selection of the groups (held names apart, see :func:`with_held`)."""
    return GroupsModel.of(g for name, g in mapped.groups.items() if selected(name, output.include, output.exclude))


def held_for(output: Output, mapped: Mapped) -> list[str]:
    """The held names (see :attr:`Mapped.held`) that this output selects."""
    return [name for name in mapped.held if selected(name, output.include, output.exclude)]


def with_held(model: GroupsModel, names: Collection[str], current: GroupsFile) -> GroupsModel:
    """``model`` with each of ``names`` as the current file has it, members
    and public flag; a name the file lacks stays out.  A member the model
    has too gets the model's name for them, so that the file keeps one name
    per JID when the directory renamed someone.

    What the file holds passes the rules every other group passes, or a hold
    could stop every roster update: a JID that cannot be written is
    dropped, a name is cleaned as directory names are (a line without one,
    or one that cleans to nothing, gets the JID's user part), and a JID
    keeps one name across the held groups."""
    public = current.public_names
    visible = current.visible_groups()
    kept = [(name, visible[name]) for name in names if name in visible]
    if not kept:
        return model
    names_now: dict[str, str | None] = {}
    for group in model.groups:
        names_now.update(group.members)
    held = []
    for name, members in kept:
        named: dict[str, str | None] = {}
        for jid, old in members.items():
            if not jidlib.is_prepared(jid) or not writable_jid(jid) or has_invisible(jid):
                log.warning("held group %s: member %s left out: the JID cannot be written", escaped(name),
                            escaped(jid))
                continue
            if jid not in names_now:
                names_now[jid] = cleaned_name(old) or jid.partition("@")[0]
            named[jid] = names_now[jid]
        held.append(SharedGroup(name, named, name in public))
    return GroupsModel.of([*model.groups, *held])


def directory_size(output: Output, mapped: Mapped) -> tuple[int, int]:
    """The groups and member lines the directory itself gives this output,
    static_groups not counted: a config's own groups must not make an empty
    answer look full."""
    names = [name for name in mapped.from_directory if selected(name, output.include, output.exclude)]
    return len(names), sum(mapped.from_directory[name] for name in names)


class MappingMemo:
    """What mapping gave each user and each group last time, to give again
    where nothing it depends on changed.

    A user's outcome depends on their entry only (the templates are the
    config's, and a Warm is dropped when the config changes).  A group's
    depends on its entry, its users, and each of those users' JID and name
    after duplicate JIDs are settled: a group is mapped again when its
    entry or users differ, and its members are renamed in place when only
    some of its users' names or JIDs did.  ``is`` finds the entries a
    snapshot kept; ``==`` those read again in full (ldap3, a fallback)."""

    def __init__(self) -> None:
        self._people: dict[str, tuple[Entry, PersonOutcome]] = {}
        self._groups: dict[str, tuple[Entry, set[str], GroupOutcome]] = {}
        self._entries: list[Entry] | None = None  # the enabled users of the last run, in order
        self._outcomes: list[PersonOutcome] = []
        self._made: People | None = None
        self._changed: list[str] | None = None  # the users whose outcome this run changed (None: not known)
        self._named: dict[str, tuple[str, str | None]] = {}
        self._named_before: dict[str, tuple[str, str | None]] = {}
        self._renamed: set[str] = set()
        self.misses = [0, 0]  # users and groups mapped again in the last run

    def people(self, enabled: Sequence[tuple[str, Entry]],
               compute: Callable[[Sequence[tuple[str, Entry]]], list[PersonOutcome]]) -> People:
        """The users mapped (mapping.people_of), computing only those whose
        entry changed.  When no user was added, removed or renamed and the
        changed ones keep their JID, the last run's result is patched
        instead of built again."""
        entries = [entry for _, entry in enabled]
        changed = changed_in_place(self._entries, entries)
        if changed is not None and self._made is not None:
            fresh = compute([enabled[i] for i in changed])
            if all(_same_place(self._outcomes[i], outcome) for i, outcome in zip(changed, fresh, strict=True)):
                # the memo's own lists, patched in place: it hands out copies only (a failed run drops it)
                outcomes, people = self._outcomes, self._made.people
                for i, outcome in zip(changed, fresh, strict=True):
                    key = enabled[i][0]
                    outcomes[i] = outcome
                    people[key] = outcome.person  # type: ignore[assignment]  # _same_place: a person
                    self._people[key] = (entries[i], outcome)
                made = People(people, self._made.reshaped, self._made.collisions, self._made.left_out,
                              list(chain.from_iterable(map(attrgetter("findings"), outcomes))))
                self._remember(entries, outcomes, made, [enabled[i][0] for i in changed])
                self.misses[0] = len(changed)
                return _copy(made)
        outcomes = self._by_key(enabled, compute)
        made = people_of(enabled, outcomes)
        self._remember(entries, outcomes, made, None)
        return _copy(made)

    def _remember(self, entries: list[Entry], outcomes: list[PersonOutcome], made: People,
                  changed: list[str] | None) -> None:
        self._entries, self._outcomes, self._made, self._changed = entries, outcomes, made, changed

    def _by_key(self, enabled: Sequence[tuple[str, Entry]],
                compute: Callable[[Sequence[tuple[str, Entry]]], list[PersonOutcome]]) -> list[PersonOutcome]:
        """The outcome of each of ``enabled`` (user key, entry), computing
        only those whose entry changed."""
        known = self._people
        out: list[PersonOutcome | None] = []
        missing: list[int] = []
        for i, (key, entry) in enumerate(enabled):
            hit = known.get(key)
            if hit is not None and (hit[0] is entry or hit[0] == entry):
                out.append(hit[1])
            else:
                out.append(None)
                missing.append(i)
        for i, outcome in zip(missing, compute([enabled[i] for i in missing]), strict=True):
            out[i] = outcome
        done: list[PersonOutcome] = out  # type: ignore[assignment]  # every None filled above
        self._people = {key: (entry, outcome) for (key, entry), outcome in zip(enabled, done, strict=True)}
        self.misses[0] = len(missing)
        return done

    def named(self, people: dict[str, Person]) -> dict[str, tuple[str, str | None]]:
        """Each user's JID and name once duplicate JIDs are settled; the
        users whose JID or name changed since the last run are noted for
        :meth:`groups`."""
        changed = self._changed
        self._named_before = self._named
        if changed is None:
            named = {key: (p.jid, p.name) for key, p in people.items()}
            self._renamed = {key for key, _ in self._named.items() ^ named.items()}
        else:
            named = dict(self._named)
            self._renamed = set()
            for key in changed:
                person = people.get(key)
                now = None if person is None else (person.jid, person.name)
                if named.get(key) != now:
                    self._renamed.add(key)
                    if now is None:
                        del named[key]
                    else:
                        named[key] = now
        self._named = named
        return named

    def groups(self, each: Sequence[tuple[str, Entry, set[str]]],
               compute: Callable[[Sequence[tuple[str, Entry, set[str]]]], list[GroupOutcome]]) -> list[GroupOutcome]:
        """The outcome of each of ``each`` (group key, entry, its users),
        computing only the groups whose entry or users changed; a group
        whose users are the same but some renamed (:meth:`named`) gets
        their new JIDs and names in place."""
        renamed, known = self._renamed, self._groups
        out: list[GroupOutcome | None] = []
        missing: list[int] = []
        for i, (key, entry, users) in enumerate(each):
            hit = known.get(key)
            if hit is None or not (hit[0] is entry or hit[0] == entry) or not (hit[1] is users or hit[1] == users):
                out.append(None)
                missing.append(i)
            elif renamed.isdisjoint(users) or hit[2].group is None:
                out.append(hit[2])
            else:
                out.append(self._renamed_in(hit[2], users))
        for i, outcome in zip(missing, compute([each[i] for i in missing]), strict=True):
            out[i] = outcome
        done: list[GroupOutcome] = out  # type: ignore[assignment]  # every None filled above
        self._groups = {key: (entry, users, outcome) for (key, entry, users), outcome in zip(each, done, strict=True)}
        self.misses[1] = len(missing)
        return done

    def _renamed_in(self, outcome: GroupOutcome, users: set[str]) -> GroupOutcome:
        """``outcome`` with the new JID and name of each of its users renamed
        since: a JID is one user's only (duplicates are settled before), so
        a renamed user's old JID goes and their new one comes."""
        group = outcome.group
        assert group is not None
        # a SharedGroup's members are a read-only view of a dict: its copy is a dict copy, in C
        members: dict[str, str | None] = group.members.copy()  # type: ignore[attr-defined]
        before = self._named_before
        for key in self._renamed.intersection(users):
            old, new = before.get(key), self._named.get(key)
            if old is not None and (new is None or new[0] != old[0]):  # a new name only: the line stays in place
                members.pop(old[0], None)
            if new is not None:
                members[new[0]] = new[1]
        return outcome._replace(group=SharedGroup(group.name, members, group.public))


def _same_place(old: PersonOutcome, new: PersonOutcome) -> bool:
    """Whether a user's new outcome leaves everything but their name where
    it was: a person both times, with the same JID, rendered as it is."""
    return (old.person is not None and new.person is not None and old.person.jid == new.person.jid
            and old.reshaped is None and new.reshaped is None and old.left_out is None and new.left_out is None)


def _copy(made: People) -> People:
    """Copies of what settling duplicate JIDs changes (people, reshaped, left_out)."""
    return made._replace(people=dict(made.people), reshaped=dict(made.reshaped), left_out=dict(made.left_out),
                         findings=list(made.findings))
