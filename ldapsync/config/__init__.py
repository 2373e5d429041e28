"""The YAML configuration, validated into typed, immutable values: the
value rules all sections share (:mod:`.values`), the sections
(:mod:`.sections`), and the whole config with its loading and messages
(:mod:`.loading`)."""

from ldapsync.config.loading import FLAVOURS, Config, load, parse
from ldapsync.config.sections import (
    GroupSettings,
    LdapSettings,
    MappingSettings,
    MetricsSettings,
    Output,
    Safety,
    ScheduleSettings,
    StateSettings,
    StaticGroup,
    UserSettings,
    path_tag,
)
from ldapsync.config.values import DISABLED_FILTERS, ConfigError

__all__ = [
    "DISABLED_FILTERS",
    "FLAVOURS",
    "Config",
    "ConfigError",
    "GroupSettings",
    "LdapSettings",
    "MappingSettings",
    "MetricsSettings",
    "Output",
    "Safety",
    "ScheduleSettings",
    "StateSettings",
    "StaticGroup",
    "UserSettings",
    "load",
    "parse",
    "path_tag",
]
