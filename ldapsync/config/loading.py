"""The whole configuration: the top-level ``Config``, ``load()`` and
``parse()``, and messages a sysadmin can act on.

pydantic does the type checking; this module adds what a sysadmin needs from
the messages: every problem at once, each with its path
(``groups.name_template: ...``), unknown keys with a "did you mean", and
the rules that span keys (a password in a file others can read, templates
that name attributes nobody fetches).
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails

from ldapsync import safeio
from ldapsync.config.sections import (
    GroupSettings,
    LdapSettings,
    MappingSettings,
    MetricsSettings,
    Output,
    ScheduleSettings,
    StateSettings,
    StaticGroup,
    UserSettings,
)
from ldapsync.config.values import ConfigError, _Strict
from ldapsync.errors import ExitCode, UserError

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
