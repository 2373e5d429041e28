"""Where ldapsync's log goes: stderr, as text for people or one JSON object a
line for journald and ELK.  Set once by the command line and set again, the
same way, in the process ``serve`` runs each sync in."""

from __future__ import annotations

import json
import logging
import sys

#: The level and format last configured, for a child process to use the same.
settings: tuple[int, str] = (logging.WARNING, "text")


def configure(level: int, log_format: str) -> None:
    """Log ldapsync's messages of ``level`` and above to stderr in ``log_format`` ("text" or "json")."""
    global settings
    settings = (level, log_format)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if log_format == "json" else _PlainFormatter())
    root = logging.getLogger("ldapsync")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"), "level": record.levelname.lower(),
                "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            data["traceback"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


class _PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            return f"ldapsync: {record.levelname.lower()}: {message}"
        return message
