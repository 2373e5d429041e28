"""The YAML configuration, validated into typed, immutable values.

pydantic does the type checking; this module adds what a sysadmin needs from
the messages: every problem at once, each with its path
(``groups.name_template: ...``), unknown keys with a "did you mean", and
the rules that span keys (a password in a file others can read, templates
that name attributes nobody fetches).
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import shlex
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from ldapsync import safeio
from ldapsync.errors import ExitCode, UserError

__all__ = ["Config", "ConfigError", "load", "parse"]


class ConfigError(UserError):
    """The configuration cannot be used; ``problems`` lists every reason."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        text = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"invalid configuration {source}:\n{text}", ExitCode.CONFIG)


class _Strict(BaseModel):
    # allow_inf_nan: .inf and .nan are valid YAML floats, but no timeout,
    # delay or percentage means anything with them
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: Any, info: ValidationInfo) -> Any:
        """A NUL byte cannot be part of a path, a command argument, a user
        name or an LDAP string: refused in every value, at load.  A section
        (a nested model) checks its own keys, so that the message names the
        key that holds it."""
        assert info.field_name is not None  # a field validator always has its field
        if not _holds_model(cls.model_fields[info.field_name].annotation) and _holds_nul(value):
            raise ValueError("holds a NUL byte (\\0), which no path, command, name or LDAP value can carry")
        return value


def _holds_model(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(_holds_model(a) for a in getattr(annotation, "__args__", ()))


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\0" in value
    if isinstance(value, bytes):
        return b"\0" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(map(_holds_nul, value))
    return False


def _path_value(value: Any, *, names_a_file: bool) -> Any:
    """What every path key refuses before it becomes a Path: an empty one
    (Path("") is the current directory), and for a file a name that can
    only be a directory ("." or ".." or a trailing "/", which Path drops).
    A NUL byte is refused in every value (``_Strict._no_nul``)."""
    if not isinstance(value, (str, Path)):
        raise ValueError("expected a path")
    text = str(value)
    if not text.strip():
        raise ValueError("the path is empty")
    if names_a_file and (text.endswith("/") or text.rsplit("/", 1)[-1] in (".", "..")):
        raise ValueError(f"{text!r} names a directory; give the path of a file")
    return value


FilePath = Annotated[Path, BeforeValidator(lambda v: _path_value(v, names_a_file=True))]
DirPath = Annotated[Path, BeforeValidator(lambda v: _path_value(v, names_a_file=False))]

# Upper bounds on times in seconds: far beyond any sensible setting, and small
# enough for every socket, timer and date computation they end up in.
HOUR = 3600
DAY = 86400
WEEK = 7 * DAY


DisabledPreset = Literal["none", "ad", "389ds", "freeipa", "shadow"]
Scope = Literal["base", "one", "sub"]

# Filters that find disabled accounts, by directory type.
DISABLED_FILTERS = {
    "ad": "(userAccountControl:1.2.840.113556.1.4.803:=2)",
    "389ds": "(nsAccountLock=TRUE)",
    "freeipa": "(nsAccountLock=TRUE)",
}


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


def _server_problem(url: str) -> str | None:
    """What is wrong with a server URL, checked here since ldap3 ends in a
    traceback on a port that is no number, a path or a half IPv6 address."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # "Port out of range 0-65535", "Invalid IPv6 URL"
        return str(exc).lower()
    if parts.username is not None or parts.password is not None:
        return "no user name or password in it (bind_dn and bind_password_* say who binds)"
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return "no base, filter or other part after the host (they are users.base and groups.base)"
    if not parts.hostname or not _host_name_or_address(parts.hostname):
        return "no host name or IP address ([::1] for IPv6)"
    if port == 0:
        return "port 0"
    return None


def _loopback(url: str) -> bool:
    """Whether an LDAP URL points at this machine."""
    import ipaddress
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _ldap_filter(value: str | None) -> str | None:
    """An LDAP search filter (RFC 4515), with the outer parentheses configs
    often leave out added, so that both backends read it alike; one that is
    empty or does not parse is refused when the config loads, not at 3 a.m.
    (python-ldap takes an empty filter as "everything", ldap3 refuses it)."""
    if value is None:
        return None
    from ldap3.core.exceptions import LDAPException
    from ldap3.operation.search import parse_filter

    value = value.strip()
    if not value:
        raise ValueError("an empty filter; leave the key out for the default")
    if not value.startswith("("):  # RFC 4515 requires them; configs often leave them out
        value = f"({value})"
    try:
        parse_filter(value, None, auto_escape=True, auto_encode=True, validator=None, check_names=False)
    except LDAPException:
        raise ValueError(f"{value!r} is not a valid LDAP filter (RFC 4515), e.g. (objectClass=person)") from None
    return value


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


Percent = Annotated[float, Field(ge=0, le=100)]
# growth may pass 100% (a public group that doubles), but not without bound
GrowthPercent = Annotated[float, Field(ge=0, le=10000, allow_inf_nan=False)]


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
    safety: Safety = Safety()
    # Previous versions kept for 'ldapsync rollback' (0: none), in
    # backup_dir or beside the file.
    backups: Annotated[int, Field(ge=0, le=1000)] = 5
    backup_dir: DirPath | None = None

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


_HOST_NAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")


def _host_name_or_address(host: str) -> bool:
    """Whether ``host`` is an IP address (IPv6 in brackets or not) or a host
    name (looked up when it is used)."""
    import ipaddress

    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return len(host) <= 253 and _HOST_NAME.fullmatch(host) is not None


# What "flavour: ad" sets, for each key the config leaves out.
FLAVOURS: dict[str, dict[str, dict[str, Any]]] = {
    "generic": {},
    "ad": {
        "ldap": {"domain_scope": True},
        "users": {
            "filter": "(&(objectClass=user)(objectCategory=person))",
            "disabled": "ad",
            "uid_attribute": "sAMAccountName",
        },
        "groups": {"filter": "(objectClass=group)"},
        "mapping": {
            "jid": "{{ (userPrincipalName or mail) | lower }}",
            "name": "{{ displayName or cn }}",
            "group_name": "{{ cn }}",
        },
    },
}


class Config(_Strict):
    # A directory type whose usual settings become the defaults: "ad"
    # (Active Directory, Samba AD) or "generic" (the defaults below).
    flavour: Literal["generic", "ad"] = "generic"
    ldap: LdapSettings
    users: UserSettings
    groups: GroupSettings
    mapping: MappingSettings = MappingSettings()
    static_groups: list[StaticGroup] = Field(default_factory=list)
    outputs: Annotated[list[Output], Field(min_length=1)]
    schedule: ScheduleSettings = ScheduleSettings()
    state: StateSettings = StateSettings()
    metrics: MetricsSettings = MetricsSettings()

    @model_validator(mode="before")
    @classmethod
    def _flavour_defaults(cls, data: Any) -> Any:
        """The flavour's settings for every key the config leaves out; what it
        sets itself stays as it is."""
        if not isinstance(data, dict) or not isinstance(data.get("flavour"), str):
            return data
        defaults = FLAVOURS.get(data["flavour"])
        if not defaults:
            return data  # "generic", or a flavour pydantic then reports as unknown
        data = dict(data)
        for section, values in defaults.items():
            given = data.get(section, {})
            if isinstance(given, dict):  # anything else is reported as it is
                data[section] = {**values, **given}
        return data

    @model_validator(mode="after")
    def _ad_features_need_ad(self) -> Config:
        # Other servers ignore a ranged attribute and the in-chain rule and
        # answer with no members: groups would be emptied without an error.
        if self.flavour != "ad":
            if self.groups.range_size is not None:
                raise ValueError("groups.range_size: member ranges are an Active Directory feature (other servers "
                                 "answer with no members); set flavour: ad, or leave range_size out")
            if self.groups.nested == "in_chain":
                raise ValueError("groups.nested: in_chain is an Active Directory rule (other servers answer with no "
                                 "members); set flavour: ad, or use nested: client")
        return self

    @model_validator(mode="after")
    def _metrics_need_state(self) -> Config:
        if (self.metrics.textfile or self.metrics.listen) and self.state.path is None:
            raise ValueError("metrics come from the state file: set state.path too")
        return self

    @model_validator(mode="after")
    def _distinct_outputs(self) -> Config:
        paths = [str(o.path) for o in self.outputs]
        for p in paths:
            if paths.count(p) > 1:
                raise ValueError(f"two outputs write {p}")
        return self

    @property
    def lock_path(self) -> Path:
        """The lock file: configured, else beside the state file (a directory
        only ldapsync's account should write), else hidden beside the first
        output file."""
        if self.state.lock_path is not None:
            return self.state.lock_path
        if self.state.path is not None:
            return self.state.path.with_name(f"{self.state.path.name}.lock")
        first = self.outputs[0].path
        return first.with_name(f".{first.name}.ldapsync.lock")

    def bind_password(self) -> str | None:
        """The bind password from wherever the config says it is."""
        ldap = self.ldap
        if ldap.bind_password_env:
            value = os.environ.get(ldap.bind_password_env)
            if value is None:
                raise UserError(f"ldap.bind_password_env: the environment variable {ldap.bind_password_env} "
                                "is not set", ExitCode.CONFIG)
            return value
        if ldap.bind_password_file:
            data = _read_trusted(ldap.bind_password_file, "password", "ldap.bind_password_file", secret=True)
            try:
                return data.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise UserError(f"ldap.bind_password_file: {ldap.bind_password_file} is not UTF-8 text: {exc}",
                                ExitCode.CONFIG) from None
        return ldap.bind_password


def _read_trusted(path: Path, kind: str, key: str, *, secret: bool = False) -> bytes:
    """A file whose content decides what ldapsync does, as :mod:`safeio`
    reads it; any problem is a configuration error naming ``key``."""
    try:
        return safeio.read_bytes(path, kind, follow=True, trusted=True, secret=secret)
    except FileNotFoundError:
        raise UserError(f"{key}: {path}: no such file", ExitCode.CONFIG) from None
    except safeio.UnsafeFile as exc:
        raise UserError(f"{key}: {exc}", ExitCode.CONFIG) from None
    except OSError as exc:
        raise UserError(f"{key}: cannot read {path}: {exc.strerror or exc}", ExitCode.CONFIG) from None


def load(path: str | Path) -> Config:
    """Read and validate the config file at ``path``: a regular file that
    only root or ldapsync's own account can change (it names the commands
    ldapsync runs), and that others cannot read when it holds the password."""
    path = Path(path)
    try:
        fd = safeio.open_regular(path, follow=True)
    except FileNotFoundError:
        raise UserError(f"{path}: no such configuration file", ExitCode.CONFIG) from None
    except (OSError, safeio.UnsafeFile) as exc:
        raise UserError(f"{path}: cannot read the configuration: {getattr(exc, 'strerror', None) or exc}",
                        ExitCode.CONFIG) from None
    try:
        st = os.fstat(fd)
        problem = safeio.trust_problem(path, st)
        if problem:
            raise UserError(f"refusing the configuration {path}: {problem}", ExitCode.CONFIG)
        try:
            text = safeio.read_fd(fd, safeio.LIMITS["config"], path).decode("utf-8")
        except safeio.UnsafeFile as exc:
            raise UserError(f"{path}: cannot read the configuration: {exc}", ExitCode.CONFIG) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"{path}: cannot read the configuration: {exc}", ExitCode.CONFIG) from None
    finally:
        os.close(fd)
    config = parse(text, source=str(path))
    if config.ldap.bind_password is not None:
        problem = safeio.trust_problem(path, st, secret=True)
        if problem:
            raise UserError(f"ldap.bind_password: {problem}", ExitCode.CONFIG)
    if config.ldap.bind_password_file is not None:
        _read_trusted(config.ldap.bind_password_file, "password", "ldap.bind_password_file", secret=True)
    return config


def parse(text: str, source: str = "<config>") -> Config:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(source, [f"not valid YAML: {exc}"]) from None
    except RecursionError:
        raise ConfigError(source, ["not a configuration: values nested thousands of levels deep"]) from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise ConfigError(source, [f"not valid YAML: {str(exc).split(';')[0]}"]) from None
    if not isinstance(data, dict):
        raise ConfigError(source, ["expected a mapping of settings at the top level"])
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, [_describe(error) for error in exc.errors()]) from None


_KEY_FIRST = re.compile(r"[a-z_]+(\.[a-z_]+)+: ")


def _describe(error: ErrorDetails) -> str:
    loc = [str(p) for p in error["loc"]]
    path = ".".join(p if not p.isdigit() else f"[{p}]" for p in loc).replace(".[", "[") or "(top level)"
    if error["type"] == "extra_forbidden":
        parent_model = _model_at(error["loc"][:-1])
        suggestion = ""
        if parent_model is not None:
            close = difflib.get_close_matches(loc[-1], list(parent_model.model_fields), n=1)
            if close:
                suggestion = f"; did you mean {close[0]!r}?"
        return f"{path}: unknown key{suggestion}"
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    if not loc and _KEY_FIRST.match(message):
        return message  # a rule across sections that names its key itself
    if error["type"] == "missing":
        message = "required, but missing"
    return f"{path}: {message}"


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    model: Any = Config
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return None
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        candidates = [annotation, *args]
        for a in list(candidates):
            candidates.extend(getattr(a, "__args__", ()))
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return None
    return model
