"""The sections of the configuration (``ldap``, ``users``, ``groups``,
``mapping``, ``static_groups``, ``outputs`` with their ``safety``,
``schedule``, ``state``, ``metrics``), each a frozen pydantic model with its
defaults and the checks its own keys need."""

from __future__ import annotations

import hashlib
import re
import shlex
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from ldapsync.config.values import (
    DAY,
    HOUR,
    WEEK,
    DirPath,
    DisabledPreset,
    FilePath,
    GrowthPercent,
    Percent,
    PollInterval,
    Scope,
    _host_name_or_address,
    _ldap_filter,
    _loopback,
    _server_problem,
    _Strict,
)


class LdapSettings(_Strict):
    """How to reach and bind to the directory."""

    servers: Annotated[list[str], Field(min_length=1)]
    # python-ldap (pip install ldapsync[fast]) decodes answers in C, ldap3 in
    # Python (docs/benchmarks.md compares them); auto uses python-ldap when installed.
    backend: Literal["auto", "ldap3", "python-ldap"] = "auto"
    start_tls: bool = False
    ca_file: FilePath | None = None
    verify_certificates: bool = True
    bind_dn: str | None = None
    bind_password: str | None = None
    bind_password_env: str | None = None
    bind_password_file: FilePath | None = None
    sasl_external: bool = False
    client_cert_file: FilePath | None = None
    client_key_file: FilePath | None = None
    # A password sent in clear text (simple bind over ldap:// without
    # start_tls) to a host other than this machine is refused unless true.
    allow_insecure: bool = False
    # seconds to reach a server (at most an hour), and for each answer (at most a day)
    connect_timeout: Annotated[float, Field(gt=0, le=HOUR)] = 10.0
    timeout: Annotated[float, Field(gt=0, le=DAY)] = 120.0
    page_size: Annotated[int, Field(ge=1, le=100_000)] = 1000
    # Active Directory: send the domain scope control (LDAP_SERVER_DOMAIN_SCOPE_OID)
    # with searches, so that a search from the domain's root does not end in
    # continuation references to the Configuration and DNS partitions (a
    # referral fails the sync).  flavour: ad turns it on.
    domain_scope: bool = False
    # How a run asks what changed since the last one (docs/incremental.md):
    # auto uses what the server offers (OpenLDAP's syncprov: content sync with
    # python-ldap, the contextCSN alone with ldap3; AD: uSNChanged);
    # timestamp (389-ds, FreeIPA, others) asks by modifyTimestamp and is never
    # picked by auto (it cannot see writes arriving late); off reads
    # everything each run.
    change_tracking: Literal["auto", "syncrepl", "usn", "timestamp", "off"] = "auto"

    @field_validator("servers")
    @classmethod
    def _urls(cls, servers: list[str]) -> list[str]:
        for url in servers:
            if not url.lower().startswith(("ldap://", "ldaps://")):
                raise ValueError(f"{url!r} is not an ldap:// or ldaps:// URL")
            problem = _server_problem(url)
            if problem:
                shown = re.sub(r"//[^/@]*@", "//...@", url)  # a password in the URL is not repeated
                raise ValueError(f"{shown!r} is not ldap://HOST[:PORT] or ldaps://HOST[:PORT]: {problem}")
        # ldap3 would take the "/" of "ldap://host/" (as ldap.conf writes it) for part of the host name
        return [url.removesuffix("/") for url in servers]

    @model_validator(mode="after")
    def _one_password_source(self) -> LdapSettings:
        given = [k for k in ("bind_password", "bind_password_env", "bind_password_file") if getattr(self, k)]
        if len(given) > 1:
            raise ValueError(f"give only one of {', '.join(given)}")
        if given and not self.bind_dn:
            raise ValueError(f"{given[0]} is set but bind_dn is not")
        if self.sasl_external and not (self.client_cert_file and self.client_key_file):
            raise ValueError("sasl_external needs client_cert_file and client_key_file")
        if given and not self.start_tls and not self.allow_insecure:
            exposed = [u for u in self.servers if u.lower().startswith("ldap://") and not _loopback(u)]
            if exposed:
                raise ValueError(
                    f"the bind password would cross the network in clear text to {', '.join(exposed)}; use "
                    "ldaps:// or start_tls: true (or, knowingly, allow_insecure: true)")
        return self


class UserSettings(_Strict):
    """Where the people are, and which of them count."""

    base: str
    filter: str = "(objectClass=inetOrgPerson)"
    scope: Scope = "sub"
    attributes: list[str] = Field(default_factory=list)
    disabled: DisabledPreset = "none"
    disabled_filter: str | None = None
    # posixGroup memberUid values name users by this attribute
    uid_attribute: str = "uid"

    _filters = field_validator("filter", "disabled_filter")(_ldap_filter)


class GroupSettings(_Strict):
    """Where the groups are, how they hold their members, and which to use."""

    base: str
    filter: str = "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup))"
    scope: Scope = "sub"

    _filter = field_validator("filter")(_ldap_filter)
    attributes: list[str] = Field(default_factory=list)
    # where membership is read from: member attributes on the groups (with
    # member/uniqueMember/memberUid as found), or memberOf on the users
    membership: Literal["group", "memberOf"] = "group"
    # Groups within groups: "client" resolves them from the member values
    # read (true means the same); "in_chain" asks Active Directory for each
    # shared group's users with the in-chain rule (one search per group);
    # "off" (false) takes direct members only.
    nested: Literal["client", "in_chain", "off"] = "client"
    max_depth: Annotated[int, Field(ge=1, le=100)] = 10
    # Active Directory: ask for member values in ranges of this many
    # (member;range=0-N-1) and fetch the rest with one search per range.  AD
    # ranges groups of more than 1,500 members by itself, and those are always
    # read completely; this makes ldapsync ask for ranges itself (Samba never
    # ranges unasked).  Unset: ask for member.
    range_size: Annotated[int, Field(ge=1, le=100_000)] | None = None
    include: list[str] = Field(default_factory=lambda: ["*"])
    exclude: list[str] = Field(default_factory=list)
    public: list[str] = Field(default_factory=list)
    on_name_collision: Literal["merge", "refuse"] = "refuse"

    @field_validator("nested", mode="before")
    @classmethod
    def _nested(cls, value: Any) -> Any:
        # true and false still mean client and off, for configs written that way (YAML reads off/no as false)
        if isinstance(value, bool):
            return "client" if value else "off"
        return value

    @model_validator(mode="after")
    def _ranges_need_member(self) -> GroupSettings:
        if self.range_size is not None and self.membership != "group":
            raise ValueError("range_size applies to the member values of groups (membership: group)")
        if self.nested == "in_chain" and self.membership != "group":
            raise ValueError("nested: in_chain works with membership: group")
        return self


class MappingSettings(_Strict):
    """jinja2 templates from directory entries to the groups file."""

    jid: str = "{{ uid | lower }}@example.com"
    name: str = "{{ displayName or cn }}"
    name_fallback: str = "{{ jid_node }}"
    group_name: str = "{{ description or cn }}"


class StaticGroup(_Strict):
    """A group kept in the config rather than the directory."""

    name: Annotated[str, Field(min_length=1)]
    public: bool = False
    members: dict[str, str] = Field(default_factory=dict)


class Safety(_Strict):
    """Limits that stop a write which would remove, or give, much at once: a
    wrong filter or a half-empty directory answer must not wipe rosters, and
    a group renamed into a public pattern must not give everyone new
    contacts unseen.  Counts are absolute, percentages are of what the
    current file holds; None turns a limit off.  ``ldapsync run --force
    --reason TEXT`` passes once."""

    max_groups_removed: Annotated[int, Field(ge=0)] | None = None
    max_groups_removed_percent: Percent | None = 20.0
    max_members_removed: Annotated[int, Field(ge=0)] | None = None
    max_members_removed_percent: Percent | None = 20.0
    max_contacts_lost: Annotated[int, Field(ge=0)] | None = None
    # groups that become visible to every user: by default each needs --force once
    max_public_groups_added: Annotated[int, Field(ge=0)] | None = 0
    # contacts every user gains through the public groups, against what they gave before
    max_public_contacts_gained: Annotated[int, Field(ge=0)] | None = None
    max_public_contacts_gained_percent: GrowthPercent | None = 20.0
    # contacts added to the rosters of the users the files list
    max_contacts_gained: Annotated[int, Field(ge=0)] | None = None
    # an answer in which the directory gives no groups, or no members (static_groups not counted),
    # never replaces a file that has them
    refuse_empty: bool = True


#: A line "groups_live" in prosodyctl's module list: ldapsync's companion module is loaded.
LIVE_MODULE_LINE = r"(?m)^\s*groups_live\s*$"


class Output(_Strict):
    """One groups file: typically one per Prosody VirtualHost."""

    path: FilePath
    host: str | None = None
    include: list[str] = Field(default_factory=lambda: ["*"])
    exclude: list[str] = Field(default_factory=list)
    # Permissions only (0000 to 0777); a file every user may write is refused.
    mode: int = 0o640
    owner: str | None = None
    group: str | None = None
    post_change_command: str | list[str] | None = None
    post_change_timeout: Annotated[float, Field(gt=0, le=DAY)] = 60.0  # seconds, at most a day
    # After the post-change command: a command whose output must match
    # reload_check_expect (a regular expression), e.g. that mod_groups is
    # still loaded: a reload while the file was missing unloads it.
    reload_check_command: str | list[str] | None = None
    reload_check_expect: str = r"(?m)^\s*groups\s*$"  # a line "groups" in prosodyctl's module list
    # Online users get a change at once, by roster pushes, when Prosody runs
    # ldapsync's deploy/prosody/mod_groups_live.lua instead of mod_groups
    # (docs/live-updates.md). Off by default: stock Prosody does not have it.
    live_updates: bool = False
    safety: Safety = Safety()
    # Previous versions kept for 'ldapsync rollback' (0: none), in
    # backup_dir or beside the file.
    backups: Annotated[int, Field(ge=0, le=1000)] = 5
    backup_dir: DirPath | None = None

    @model_validator(mode="before")
    @classmethod
    def _live_module_line(cls, data: Any) -> Any:
        """With live updates, the module the reload check looks for is
        groups_live (mod_groups' own line would not match it), unless told."""
        if isinstance(data, dict) and data.get("live_updates") is True and "reload_check_expect" not in data:
            return {**data, "reload_check_expect": LIVE_MODULE_LINE}
        return data

    @property
    def tag(self) -> str:
        """A stable id of this output's path, for the files kept about it
        (backups, the model cache): two outputs may share a file name."""
        return path_tag(self.path)

    @field_validator("post_change_command", "reload_check_command")
    @classmethod
    def _command(cls, value: str | list[str] | None) -> str | list[str] | None:
        if value is None:
            return value
        try:
            argv = shlex.split(value) if isinstance(value, str) else value
        except ValueError as exc:
            raise ValueError(f"cannot split the command: {exc}") from None
        if not argv or not argv[0]:
            raise ValueError("the command is empty")
        return value

    @field_validator("mode", mode="before")
    @classmethod
    def _octal(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return int(value, 8)
            except ValueError:
                raise ValueError(f"{value!r} is not an octal file mode such as '0640'") from None
        return value

    @field_validator("mode")
    @classmethod
    def _permissions(cls, mode: int) -> int:
        if not 0 <= mode <= 0o777:
            digits = str(mode)
            hint = (f"; YAML reads {digits} as a decimal number, write '0{digits}'"
                    if mode > 0 and set(digits) <= set("01234567") and int(digits, 8) <= 0o777 else "")
            raise ValueError(f"{mode:#o} is not a permission mode from 0000 to 0777 (no setuid, setgid or sticky "
                             f"bit){hint}")
        if mode & 0o002:  # written by others (stat.S_IWOTH)
            raise ValueError(f"{mode:04o} lets every user of the machine write the groups file, and so put "
                             "contacts in everyone's roster; use 0640 or 0644")
        return mode

    @field_validator("reload_check_expect")
    @classmethod
    def _pattern(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"{value!r} is not a regular expression: {exc}") from None
        return value


def path_tag(path: Path) -> str:
    """16 hex digits that name ``path`` (as an absolute path) and no other."""
    return hashlib.sha256(str(path.absolute()).encode("utf-8", "surrogateescape")).hexdigest()[:16]


class ScheduleSettings(_Strict):
    """When ``ldapsync serve`` syncs."""

    # Five cron fields (minute hour day month weekday); a sixth field in
    # front gives seconds, for tests.
    cron: str = "0 3 * * *"
    timezone: str | None = None  # default: the machine's
    jitter: Annotated[int, Field(ge=0, le=DAY)] = 0  # seconds of random delay, at most a day
    run_at_start: bool = False
    misfire_grace_time: Annotated[int, Field(ge=1, le=WEEK)] = 3600  # seconds, at most a week
    retries: Annotated[int, Field(ge=0, le=100)] = 3
    retry_delay: Annotated[float, Field(gt=0, le=DAY)] = 60.0  # seconds, doubled after each failure; at most a day
    # SIGTERM waits this long for a sync under way; at most a day
    shutdown_timeout: Annotated[float, Field(gt=0, le=DAY)] = 300.0
    # seconds between two runs that read only the directory's changes, between
    # the cron runs (which read everything); "60s", "5m"; None: no polls
    poll: PollInterval | None = None

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from datetime import UTC, datetime

        from ldapsync.schedule import cron_trigger  # apscheduler loads only with a schedule

        if cron_trigger(value, "UTC").get_next_fire_time(None, datetime.now(UTC)) is None:
            raise ValueError(f"{value!r} never comes: no month has that day")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {value!r} (e.g. Europe/Berlin, UTC)") from None
        return value


class StateSettings(_Strict):
    """Where runs leave their record (for ``status`` and metrics), and the
    lock that ``run`` and ``serve`` share."""

    path: FilePath | None = None  # e.g. /var/lib/ldapsync/state.json; no record when unset
    lock_path: FilePath | None = None  # default: beside the first output file
    lock_timeout: Annotated[float, Field(ge=0, le=DAY)] = 60.0  # seconds, at most a day


class MetricsSettings(_Strict):
    """Prometheus metrics: a node_exporter textfile, an HTTP endpoint, or both."""

    textfile: FilePath | None = None
    listen: str | None = None  # "127.0.0.1:9847"; serve only

    @field_validator("listen")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None:
            host, _, port = value.rpartition(":")
            if not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
                raise ValueError(f"{value!r} is not HOST:PORT, e.g. 127.0.0.1:9847")
            if host and not _host_name_or_address(host):
                raise ValueError(f"{value!r}: {host!r} is neither an IP address ([::1] for IPv6) nor a host name")
        return value
