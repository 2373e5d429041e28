"""ldapsync: keep Prosody's shared contact groups (mod_groups) in step with a directory."""

__version__ = "0.1.0"
