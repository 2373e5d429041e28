"""Reading the directory: the one boundary between ldapsync and LDAP.

The sync pipeline is handed a :class:`Directory` and reads it through
:meth:`Directory.search`; it never imports a backend.  :func:`directory_for`
picks the backend the config asks for: python-ldap (C, over the same libldap
as ``ldapsearch``) or ldap3 (pure Python).  Nothing in this package imports
the pipeline.

Every failure ends the sync with a :class:`DirectoryError` saying what failed
and where: an unreachable server, a refused bind, a size, time or admin
limit, a referral, a dropped connection.  A partial answer is never treated
as the directory's content, because a truncated directory would wipe
contacts from everyone's roster.
"""

from __future__ import annotations

from ldapsync.config import Config, LdapSettings
from ldapsync.directory.base import Directory, DirectoryError, Entry
from ldapsync.errors import ExitCode, UserError

__all__ = ["Directory", "DirectoryError", "Entry", "configured_directory", "directory_for"]


def configured_directory(config: Config) -> Directory:
    """The directory a config names, with its bind password (not yet connected)."""
    return directory_for(config.ldap, config.bind_password())


def directory_for(settings: LdapSettings, password: str | None, *, progress: bool | None = None) -> Directory:
    """The configured backend, not yet connected (entering it connects):
    python-ldap when ``backend`` says so, or with ``auto`` when it is
    installed; else ldap3.  ``progress``: count entries on stderr (default:
    when stderr is a terminal)."""
    if settings.backend in ("auto", "python-ldap"):
        try:
            from ldapsync.directory.pyldap_backend import PythonLdapDirectory
        except ImportError:
            if settings.backend == "python-ldap":
                raise UserError("ldap.backend: python-ldap is not installed (pip install 'ldapsync[fast]')",
                                ExitCode.CONFIG) from None
        else:
            return PythonLdapDirectory(settings, password, progress=progress)
    from ldapsync.directory.ldap3_backend import Ldap3Directory  # ldap3 loads only when it is the backend

    return Ldap3Directory(settings, password, progress=progress)
