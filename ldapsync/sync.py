"""One sync: directory -> memberships -> shared groups -> verified files.

The same pipeline serves ``run``, ``run --dry-run``, ``diff``, ``preview``,
``explain`` and ``check --connect``: they differ only in what they do with
the result, so what a dry run shows is what a real run writes.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache as cache_result
from functools import partial
from operator import attrgetter
from pathlib import Path
from typing import Any, TypeVar

from ldapsync import diff as difflib
from ldapsync import dn as dnlib
from ldapsync import groupsfile, modelcache, safety
from ldapsync.apply import Applied, apply
from ldapsync.commands import CommandResult
from ldapsync.config import Config, Output
from ldapsync.directory import Directory, Entry, ranges
from ldapsync.directory.changes import Query
from ldapsync.directory.in_chain import users_in_chain
from ldapsync.errors import ExitCode, UserError
from ldapsync.incremental import Reader, ReadInfo, config_hash
from ldapsync.mapping import (
    Mapped,
    directory_size,
    held_for,
    map_directory,
    model_for,
    selected_groups,
    with_held,
)
from ldapsync.membership import PRESET_ATTRIBUTES, Finding, Memberships, apply_in_chain, resolve
from ldapsync.model import GroupsModel
from ldapsync.speed import ChildFailed, Handover, Parallel, without_cycle_collector
from ldapsync.templates import Templates
from ldapsync.warm import OutputMemo, State, Warm
from ldapsync.writer import WriteResult, read_current

log = logging.getLogger(__name__)
T = TypeVar("T")
changes_log = logging.getLogger("ldapsync.changes")


@dataclass(frozen=True)
class Counts:
    """The figures a run reports: in its summary, its JSON and the state file
    (``as_dict()``, whose keys are a documented contract)."""

    users_read: int
    groups_read: int
    users_in_groups: int
    shared_groups: int
    users_left_out: dict[str, int]  # by LeftOutKind
    ldap_searches: int
    ldap_range_searches: int  # of the searches: follow-ups for ranged member values
    fetch_seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Fetched:
    """What the directory says, mapped: the input of every command."""

    config: Config
    templates: Templates
    members: Memberships
    mapped: Mapped
    searches: int
    fetch_seconds: float
    range_searches: int = 0  # of the searches: follow-ups for ranged member values

    @property
    def findings(self) -> list[Finding]:
        return [*self.members.findings, *self.mapped.findings]

    _counts: Counts | None = field(default=None, init=False, repr=False)

    def shed(self) -> None:
        """Let go of the entries and memberships once the shared groups are
        made: a run needs only its counts and findings from here on, and on
        a large directory they are a good part of its memory."""
        self._counts = self.counts()
        # dropped, not cleared: serve's poller keeps some of them for its next run (ldapsync.warm)
        m = self.members
        m.users, m.groups, m.direct_users, m.subgroups, m.members = {}, {}, {}, {}, {}
        self.mapped.people = {}

    def counts(self) -> Counts:
        """The figures a run reports (summary, --json, state file)."""
        if self._counts is not None:
            return self._counts
        m = self.mapped
        reasons = Counter(str(r.kind) for r in m.left_out.values())
        return Counts(len(self.members.users), len(self.members.groups), len(m.in_a_group), len(m.groups),
                      dict(sorted(reasons.items())), self.searches, self.range_searches,
                      round(self.fetch_seconds, 3))


# Findings that are the directory working as intended: shown with -vv.
_QUIET_FINDINGS = {"disabled"}


def log_findings(every: list[Finding], limit: int = 20, level: int = logging.WARNING) -> None:
    """Warn about what the directory holds that ldapsync left out or
    changed (at most ``limit`` lines; ``run --json`` lists all).  ``level``:
    serve's polls say it at info, since each would repeat the same lines."""
    findings = [f for f in every if f.kind not in _QUIET_FINDINGS]
    for f in every:
        if f.kind in _QUIET_FINDINGS:
            log.debug("%s", f)
    for f in findings[:limit]:
        log.log(level, "%s", f)
    if len(findings) > limit:
        kinds = Counter(f.kind for f in findings)
        log.log(level, "... %d more findings (%s); 'ldapsync run --json' lists all", len(findings) - limit,
                ", ".join(f"{n} {k}" for k, n in kinds.most_common()))


@dataclass
class OutputResult:
    output: Output
    model: GroupsModel | None  # None: nothing changed since the last run, which left ``sizes``
    data: bytes | None  # the file's content (None as for model)
    changed: bool
    diff: difflib.Diff | None = None
    applied: Applied | None = None  # what writing it did (None: not written, a dry run)
    # modelcache.encode() of the verified file, to save (or what makes it, once the file is in place)
    cache: bytes | Callable[[], bytes] | None = field(default=None, repr=False)
    kept_sizes: tuple[int, int] = (0, 0)  # groups and member lines, when there is no model

    @property
    def sizes(self) -> tuple[int, int]:
        """The file's groups and member lines."""
        return self.kept_sizes if self.model is None else (len(self.model.groups), self.model.member_count)

    @property
    def written(self) -> WriteResult | None:
        return None if self.applied is None else self.applied.written

    @property
    def command(self) -> CommandResult | None:
        return None if self.applied is None else self.applied.command

    def after_write_problem(self) -> str | None:
        """What went wrong after the file was written (see :meth:`Applied.problem`)."""
        return None if self.applied is None else self.applied.problem()

    def _shape(self) -> dict[str, Any]:
        """What both the run's JSON and the state file say of the output."""
        groups, member_lines = self.sizes
        return {"path": str(self.output.path), "written": bool(self.written and self.written.changed),
                "groups": groups, "member_lines": member_lines}

    def as_json(self) -> dict[str, Any]:
        """The output in ``run --json``."""
        return {**self._shape(), "changed": self.changed, "diff": self.diff.as_json() if self.diff else None,
                "post_change_command": None if self.command is None else {
                    "ok": self.command.ok, "returncode": self.command.returncode,
                    "summary": self.command.describe()}}

    def record(self) -> dict[str, Any]:
        """The output in the state file (what ``status`` and the metrics read)."""
        totals = self.diff.totals if self.diff else {}
        return {**self._shape(), "member_lines_added": totals.get("members_added", 0),
                "member_lines_removed": totals.get("members_removed", 0),
                "summary": self.diff.summary() if self.diff else "unchanged"}


@dataclass
class RunResult:
    counts: Counts
    findings: list[Finding]
    read: ReadInfo
    outputs: list[OutputResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def exit_code(self) -> ExitCode:
        if any(o.after_write_problem() for o in self.outputs):
            return ExitCode.POST_CHANGE_FAILED
        return ExitCode.OK

    def as_json(self, dry_run: bool) -> dict[str, Any]:
        """The run in ``run --json``."""
        return {
            "dry_run": dry_run,
            "exit_code": int(self.exit_code),
            "seconds": round(self.seconds, 3),
            "counts": self.counts.as_dict(),
            "read": self.read.as_json(),
            "outputs": [o.as_json() for o in self.outputs],
            "findings": [{"kind": f.kind, "subject": f.subject, "message": f.message}
                         for f in self.findings],
        }


def queries_for(config: Config, templates: Templates, id_attribute: str = "") -> list[Query]:
    """The searches a sync makes: users, groups, and the disabled users
    when ``users.disabled_filter`` is set; each also asks for
    ``id_attribute`` (the name change tracking keeps entries by)."""
    us, gs = config.users, config.groups
    user_attrs = {*templates.user_attributes, *us.attributes, *PRESET_ATTRIBUTES[us.disabled], us.uid_attribute}
    group_attrs = {*templates.group_attributes, *gs.attributes, "objectClass"}
    if gs.membership == "memberOf":
        user_attrs.add("memberOf")
        group_attrs.add("memberOf")
    else:
        member = "member" if gs.range_size is None else ranges.first_request("member", gs.range_size)
        group_attrs |= {member, "uniqueMember", "memberUid"}
    extra = {id_attribute} if id_attribute else set()
    queries = [Query("users", us.base, us.filter, us.scope, tuple(sorted(user_attrs | extra))),
               Query("groups", gs.base, gs.filter, gs.scope, tuple(sorted(group_attrs | extra)))]
    if us.disabled_filter:
        both = f"(&{us.filter}{us.disabled_filter})"  # both in parentheses since the config loaded
        queries.append(Query("disabled", us.base, both, us.scope, tuple(sorted(extra))))
    return queries


def fetch(config: Config, directory: Directory) -> Fetched:
    """Read the whole directory and map it (see :func:`_fetch`): what
    ``check``, ``diff``, ``preview`` and ``explain`` show."""
    fetched = _fetch(config, directory, None)
    assert fetched is not None  # only a reader finds nothing changed
    return fetched


@without_cycle_collector
def _fetch(config: Config, directory: Directory, reader: Reader | None,
           memo: State | None = None) -> Fetched | None:
    """Read users and groups (two paged searches, three with a custom
    disabled filter; plus one per group whose member values come in ranges,
    per further range, and with nested: in_chain one per selected group)
    and map them.  ``directory`` is connected here and closed once read.

    With a ``reader`` (``ldapsync run``), the entries may come from the
    snapshot and the changes since (see :mod:`ldapsync.incremental`);
    None then means that nothing changed since the last run.  ``memo``:
    what the last run of this process mapped (see :mod:`ldapsync.warm`)."""
    templates = Templates(config.mapping)
    started = time.monotonic()
    with directory:
        queries = partial(queries_for, config, templates)
        read_all = partial(_read_all, directory)
        entries = read_all(queries()) if reader is None else reader.read(directory, queries, read_all)
        if entries is None:
            return None
        users, groups = _in_dn_order(entries["users"]), _in_dn_order(entries["groups"])
        disabled = None if "disabled" not in entries else {dnlib.normalize(e.dn) for e in entries["disabled"]}
        del entries
        chains = None
        if config.groups.nested == "in_chain":
            chosen = [g.dn for g in selected_groups(config, templates, groups)]
            us = config.users
            chains = users_in_chain(directory, us.base, us.filter, us.scope, chosen)
        searches, range_searches = directory.searches, directory.range_searches
    fetch_seconds = time.monotonic() - started
    log.info("read %d users and %d groups in %.1f s", len(users), len(groups), fetch_seconds)
    # Handed over: resolve() then holds the only references, and lets go of
    # each group's member values once they are resolved.
    fetched = {"users": users, "groups": groups}
    del users, groups
    members = resolve(fetched.pop("users"), fetched.pop("groups"), config.users, config.groups, disabled,
                      None if memo is None else memo.resolve)
    if chains is not None:
        apply_in_chain(members, chains)
    mapped = map_directory(config, templates, members, None if memo is None else memo.mapping)
    return Fetched(config, templates, members, mapped, searches, fetch_seconds, range_searches)


def _in_dn_order(entries: list[Entry]) -> list[Entry]:
    """Entries ordered by DN, so that the output never depends on the order
    the server sent them in (a full read's and a snapshot's may differ)
    where two entries claim the same uid or JID."""
    entries.sort(key=attrgetter("dn"))
    return entries


def _read_all(directory: Directory, queries: Sequence[Query]) -> dict[str, list[Entry]]:
    """Every query's entries, read in full from a connected ``directory``."""
    by_name = {q.name: q for q in queries}
    users, groups = by_name["users"], by_name["groups"]
    # With ldap3, whose decoding in Python keeps the client busy for
    # seconds on a large directory, a worker process reads the groups over
    # its own connection to the server this one found, while this one
    # reads the users.  (python-ldap decodes in C: there a worker only
    # competes with the server for the cores.)
    groups_job = None
    if directory.decodes_in_python and Parallel.forks():
        groups_job = Parallel(partial(_search_groups, directory.sibling(), groups))
    try:
        found = {"users": list(directory.search(users.base, users.filter, users.attributes, users.scope, "users"))}
    except BaseException:
        if groups_job is not None:
            groups_job.discard()
        raise
    if groups_job is None:
        found["groups"] = list(directory.search(groups.base, groups.filter, groups.attributes, groups.scope,
                                                "groups"))
    else:
        found["groups"], (extra_searches, extra_ranges, extra_entries) = _groups_from(groups_job)
        directory.searches += extra_searches
        directory.range_searches += extra_ranges
        directory.entries_sent += extra_entries
        log.debug("the groups were read by a worker process, beside the users")
    if "disabled" in by_name:
        q = by_name["disabled"]
        found["disabled"] = list(directory.search(q.base, q.filter, q.attributes, q.scope, "disabled users"))
    return found


def _search_groups(directory: Directory, q: Query) -> tuple:
    """The groups search, in a worker: the entries and (searches, range searches, entries)."""
    with directory:
        groups = list(directory.search(q.base, q.filter, q.attributes, q.scope, "groups"))
        return groups, (directory.searches, directory.range_searches, directory.entries_sent)


def _groups_from(job: Parallel) -> tuple[list, tuple[int, int, int]]:
    try:
        return job.result()
    except ChildFailed as exc:
        raise UserError(f"reading the groups failed: {exc}", ExitCode.SOFTWARE) from None


def render_output(output: Output, snapshot: Fetched) -> tuple[GroupsModel, str]:
    """The groups and the verified text of one output file, as a run would write them."""
    model = output_model(output, snapshot.mapped, lambda: _reading(current_bytes(output), None))
    return model, render_model(output, model)


def output_model(output: Output, mapped: Mapped, current: Callable[[], groupsfile.GroupsFile]) -> GroupsModel:
    """The groups one output file gets: its selection of the directory's and
    the config's groups, and each held name (two directory groups claim it,
    see :attr:`Mapped.held`) as the current file has it; ``current`` reads
    that file, only when a name is held."""
    model = model_for(output, mapped)
    held = held_for(output, mapped)
    return with_held(model, held, current()) if held else model


def _reading(data: bytes | None, cached: modelcache.Cached | None) -> groupsfile.GroupsFile:
    """The current file as Prosody reads it (from its cache when there is
    one); an empty reading when there is no file."""
    if cached is not None:
        return groupsfile.GroupsFile.of_groups(cached.groups())
    return groupsfile.parse("" if data is None else data.decode("utf-8", "surrogateescape"))


def render_model(output: Output, model: GroupsModel) -> str:
    return _guard(output, groupsfile.render, model)


def _guard(output: Output, step: Callable[[GroupsModel], T], model: GroupsModel) -> T:
    """A writer step whose refusal becomes a user error naming the output."""
    try:
        return step(model)
    except groupsfile.RenderError as exc:
        raise UserError(f"{output.path}: {exc}", ExitCode.DATAERR) from None


def current_bytes(output: Output) -> bytes | None:
    """The output file as it is now; None when there is none yet.  Read as
    the writer reads it: a link or anything but a regular file is refused."""
    return read_current(output.path)


def current_text(output: Output) -> str | None:
    data = current_bytes(output)
    return None if data is None else data.decode("utf-8", "surrogateescape")


@without_cycle_collector
def run(config: Config, directory: Directory, *, dry_run: bool = False, force: str | None = None,
        full: bool = False, full_reason: str | None = None, warm: Warm | None = None) -> RunResult:
    """Fetch, map, render, verify and check every output against its safety
    limits; then write each file that changed (keeping a backup of the old
    one) and run its post-change command.  A dry run stops before writing.
    When a limit is exceeded nothing is written, unless ``force`` gives the
    reason to go ahead.

    The directory is read incrementally when it can be (see
    :mod:`ldapsync.incremental`); ``full`` reads it all (``full_reason``
    says why, for the record), and so does a dry run.  ``warm``: what the
    last run of this process left in memory (see :mod:`ldapsync.warm`),
    used and then refreshed."""
    started = time.monotonic()
    state = None if warm is None or dry_run else warm.take(config_hash(config))
    reader = Reader(config, full=full or dry_run, reason=full_reason or ("a dry run" if dry_run else None),
                    kept=state.snapshot if state else None, keep_entries=state is not None)
    reader.info.warm = bool(state and state.used)
    fetched = _fetch(config, directory, reader, state)
    if fetched is None:
        result = _unchanged(config, reader, directory, started)
        reader.keep()  # the new marker, when the directory changed in what ldapsync does not read
        if warm is not None and state is not None:
            state.snapshot = reader.saved or reader.kept  # the one saved now, or the one on disk still
            warm.put(state)
        return result
    result = RunResult(fetched.counts(), fetched.findings, reader.info)
    if state is not None and state.used:
        users, groups = state.mapping.misses
        log.debug("started from what the last run left in memory: %d users and %d groups mapped again",
                  users, groups)
    fetched.shed()
    static_names = frozenset(s.name for s in config.static_groups)
    plans = [_plan(output, fetched.mapped, dry_run, modelcache.path_for(config.state.path, output.path),
                   static_names, None if state is None else state.outputs.get(str(output.path)), state is not None)
             for output in config.outputs]
    problems = [problem for plan in plans for problem in plan.refusals]
    if problems:
        if force is None:
            raise safety.Refused(problems)
        log.warning("going past the safety limits (--force): %s; the limits: %s", force, "; ".join(problems))
    for plan in plans:
        out = plan.out
        if not dry_run:
            assert out.data is not None  # a plan always has the content
            out.applied = apply(out.output, out.data, plan.expected, plan.cache, out.cache)
        result.outputs.append(out)
    if not dry_run and result.exit_code == ExitCode.OK:
        reader.keep(result.counts.as_dict(), {str(o.output.path): o.sizes for o in result.outputs})
        if warm is not None and state is not None:
            state.snapshot = reader.saved
            state.outputs = {str(plan.out.output.path): plan.memo for plan in plans if plan.memo is not None}
            for memo in state.outputs.values():
                memo.interned.prime(memo.reading)  # the file is written: for the next poll's diff
            warm.put(state)
    result.seconds = time.monotonic() - started
    return result


def _unchanged(config: Config, reader: Reader, directory: Directory, started: float) -> RunResult:
    """The result of a run that found nothing changed: the last run's
    figures, this run's searches."""
    assert reader.header is not None
    kept = reader.header.counts
    try:
        counts = Counts(**{**kept["counts"], "ldap_searches": directory.searches,
                           "ldap_range_searches": directory.range_searches, "fetch_seconds": 0.0})
        sizes = {path: (int(g), int(m)) for path, (g, m) in kept["sizes"].items()}
    except (KeyError, TypeError, ValueError):
        counts, sizes = Counts(0, 0, 0, 0, {}, directory.searches, directory.range_searches, 0.0), {}
    outputs = [OutputResult(o, None, None, False, kept_sizes=sizes.get(str(o.path), (0, 0))) for o in config.outputs]
    return RunResult(counts, [], reader.info, outputs, time.monotonic() - started)


@dataclass
class Plan:
    """What a run means to do with one output, before anything is written."""

    out: OutputResult  # the new content, whether it changed, the diff
    expected: bytes | None  # the file as it was when planned (None: no file): written only if still so
    cache: Path | None  # where the cache of the verified groups goes
    refusals: list[str] = field(default_factory=list)  # the safety limits exceeded
    memo: OutputMemo | None = None  # the file as the next run of serve's poller finds it (ldapsync.warm)


def _plan(output: Output, mapped: Mapped, dry_run: bool, cache: Path | None, static_names: frozenset[str],
          memo: OutputMemo | None = None, remember: bool = False) -> Plan:
    """What to do with one output: its new content, whether it changed, the
    diff and the safety limits it exceeds; and the current content.

    When the file is still what an earlier run wrote, its groups come from
    the cache (see :mod:`ldapsync.modelcache`) instead of reading it: the
    same groups mean the same file, without rendering it again.  An
    unchanged file is not written, so it needs no reading back.  A changed
    one is read back as Prosody reads it, on the other core while the old
    file is read and the diff worked out, and must mean exactly the model,
    whose reading the diff uses meanwhile.

    ``memo`` (serve's poller): the file as the last run of this process
    wrote it; while the file is still that, only the groups that changed
    are rendered, verified and compared (see :func:`_plan_warm`).
    ``remember``: the plan keeps such a memo of the file for the next run."""
    old_bytes = current_bytes(output)
    if memo is not None and old_bytes is not None and old_bytes == memo.data:
        planned = _plan_warm(output, mapped, dry_run, cache, static_names, memo)
        if planned is not None:
            return planned
    cached = modelcache.load(cache, old_bytes)
    current = cache_result(partial(_reading, old_bytes, cached))  # read once, only when needed
    model = output_model(output, mapped, current)
    if cached is not None and cached.means(model):
        assert old_bytes is not None  # a cache is only ever loaded for a file
        log.debug("%s: the same groups as the last file written", output.path)
        # the cache is saved only for a file that was verified, and describes these very bytes
        return Plan(OutputResult(output, model, old_bytes, False), old_bytes, cache,
                    memo=OutputMemo.of_verified(model, old_bytes, current()) if remember else None)
    # The text is large for a large directory: handed over to the worker, which
    # frees it once read, and let go of here once the worker has it.  A plan
    # that remembers the file keeps each group's text for the next run.
    texts = _guard(output, groupsfile.render_groups, model) if remember else None
    text = Handover("".join(texts) if texts is not None else _guard(output, groupsfile.render_unverified, model))
    data = text.value.encode("utf-8")
    out = OutputResult(output, model, data, old_bytes != data)
    if not out.changed:
        return Plan(out, old_bytes, cache, memo=OutputMemo.of_file(data, current()) if remember else None)
    check = Parallel(partial(_verified, text, model, data, cache is not None and not dry_run))
    text.release()
    try:
        # read now unless a held name needed it: with a cache, its members
        # loaded only now, the worker need not carry them
        old_file = current()
        del current, cached
        new_file = groupsfile.GroupsFile.of_model(model)
        out.diff = difflib.diff(old_file, new_file)
        refusals = safety.check(output.path, output.safety, None if old_bytes is None else old_file, out.diff,
                                directory_size(output, mapped), static_names)
    except BaseException:
        check.discard()
        raise
    try:
        failed, out.cache = check.result()
    except ChildFailed as exc:
        failed = [f"verification failed: {exc}"]
    if failed:
        raise UserError(f"{output.path}: {groupsfile.RenderError(failed)}", ExitCode.DATAERR)
    _log_change(output, out, dry_run)
    return Plan(out, old_bytes, cache, refusals,
                OutputMemo.of_verified(model, data, new_file, texts) if remember else None)


def _plan_warm(output: Output, mapped: Mapped, dry_run: bool, cache: Path | None, static_names: frozenset[str],
               memo: OutputMemo) -> Plan | None:
    """:func:`_plan` for a file that is still as this process's last run
    wrote it (``memo``): the groups that did not change keep their text,
    already verified, and the diff compares only the groups that changed.
    None when a changed group's text fails a check: the caller then plans
    the whole file, and says why."""
    model = output_model(output, mapped, lambda: memo.reading)
    changed = memo.changed_names(model)
    if not changed:
        log.debug("%s: the same groups as the last file written", output.path)
        return Plan(OutputResult(output, model, memo.data, False), memo.data, cache, memo=memo)
    rendered = memo.render(model)
    if rendered is None:
        return None
    data, blocks = rendered
    new_file = memo.reading.updated(model, changed)
    out = OutputResult(output, model, data, data != memo.data)
    after = OutputMemo(data, new_file, {g.name: g for g in model.groups}, blocks, interned=memo.interned)
    diff = difflib.diff(memo.reading, new_file, memo.interned) if out.changed else None
    memo.interned.keep_only(new_file)
    if diff is None:
        return Plan(out, memo.data, cache, memo=after)
    out.diff = diff
    refusals = safety.check(output.path, output.safety, memo.reading, out.diff, directory_size(output, mapped),
                            static_names)
    if cache is not None and not dry_run:
        out.cache = partial(modelcache.encode, new_file, data)  # made once the file is written
    _log_change(output, out, dry_run)
    return Plan(out, memo.data, cache, refusals, after)


def _log_change(output: Output, out: OutputResult, dry_run: bool) -> None:
    assert out.diff is not None
    verb = "Would write" if dry_run else "Write"
    changes_log.log(CHANGE, "%s %s: %s", verb, output.path, out.diff.summary())


def _verified(text: Handover[str], model: GroupsModel, data: bytes,
              cached: bool) -> tuple[list[str], bytes | None]:
    """In the worker: why the text does not mean the model (nothing: it
    does), and the cache of what it means if that is wanted."""
    back = groupsfile.parse(text.take())
    problems = groupsfile.reading_problems(back, model)
    return problems, (modelcache.encode(back, data) if cached and not problems else None)


# Changes are logged at their own level, between INFO and WARNING, so that
# they stand out in a journal and can be filtered on.
CHANGE = 25
logging.addLevelName(CHANGE, "CHANGE")
