"""What one run leaves in memory for the next run of the same process.

``ldapsync serve`` polls the directory every minute or so.  A poll that
finds changes reads only them (:mod:`ldapsync.incremental`), but from there
on a cold run works on the whole directory again: it loads the snapshot,
maps every user, renders, verifies and compares every group.  serve's
poller process keeps a :class:`Warm` between its runs instead, and each
run redoes only what the changes touch.

A :class:`Warm` is a cache of what the last successful run saved: it is
used only while the snapshot on disk, the config and the output files are
exactly as that run left them, and it is emptied at the start of every
run and filled again only when the run succeeded, so a run that fails
half-way can never leave it ahead of the disk.
"""

from __future__ import annotations


class Warm:
    """The last successful run's state, for the next run in this process."""
