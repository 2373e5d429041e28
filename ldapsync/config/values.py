"""The value rules every section of the configuration shares: strict models
(no unknown keys, no NUL bytes, no infinite numbers), paths, durations,
LDAP server URLs and filters, host names, percentages."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from ldapsync.errors import ExitCode, UserError


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

_UNITS = {"s": 1, "m": 60, "h": HOUR, "d": DAY}


def duration(text: str) -> float | None:
    """Seconds from "26h", "90m", "60s" or "3600": a positive, finite number
    (nan, inf and -5m would make every age OK, or every age CRITICAL); None
    when ``text`` is no such duration."""
    unit = text[-1:].lower()
    number = text[:-1] if unit in _UNITS else text
    try:
        seconds = float(number) * _UNITS.get(unit, 1)
    except ValueError:
        return None
    return seconds if 0 < seconds < math.inf else None


def _duration_value(value: Any) -> Any:
    """A duration as YAML gives it: "60s", "5m", or a number of seconds."""
    if isinstance(value, str):
        seconds = duration(value.strip())
        if seconds is None:
            raise ValueError(f"{value!r} is not a duration such as 60s, 5m or 1h (a positive number of seconds, "
                             "or of s, m, h or d)")
        return seconds
    return value


# Between two polls of ``serve``: often enough for "minutes, not nights",
# seldom enough that the polls (a run each, recorded in the state file)
# never crowd the directory or the disk.
POLL_MIN, POLL_MAX = 5, DAY
PollInterval = Annotated[float, BeforeValidator(_duration_value), Field(ge=POLL_MIN, le=POLL_MAX)]


DisabledPreset = Literal["none", "ad", "389ds", "freeipa", "shadow"]
Scope = Literal["base", "one", "sub"]

# Filters that find disabled accounts, by directory type.
DISABLED_FILTERS = {
    "ad": "(userAccountControl:1.2.840.113556.1.4.803:=2)",
    "389ds": "(nsAccountLock=TRUE)",
    "freeipa": "(nsAccountLock=TRUE)",
}


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


Percent = Annotated[float, Field(ge=0, le=100)]
# growth may pass 100% (a public group that doubles), but not without bound
GrowthPercent = Annotated[float, Field(ge=0, le=10000, allow_inf_nan=False)]


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
