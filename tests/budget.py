"""How hard the property tests try.

By default, and always in CI, every property test runs its full number of
examples.  ``LDAPSYNC_QUICK=1`` runs a tenth of them (and exhaustive sweeps
with a stride), so that the fast layer (the tests that need no server)
runs in well under a minute while you work; run the full budget before you
commit."""

from __future__ import annotations

import os

QUICK = os.environ.get("LDAPSYNC_QUICK") == "1"


def examples(full: int) -> int:
    """The number of hypothesis examples to run for a test whose full budget is ``full``."""
    return max(20, full // 10) if QUICK else full


def stride() -> int:
    """Step through exhaustive sweeps (every code point) one value in this many."""
    return 13 if QUICK else 1
