"""Prometheus metrics from the state file: a node_exporter textfile and an HTTP endpoint."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, generate_latest, start_http_server

from ldapsync.errors import ExitCode, UserError
from ldapsync.state import READ_KINDS, State
from ldapsync.writer import write_if_changed


class Metrics:
    """Gauges that mirror the last run; the totals come from the state file,
    so that a one-shot ``run`` reports them too."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.last_success = Gauge("ldapsync_last_success_timestamp_seconds",
                                  "When the last successful sync finished (Unix time).", registry=r)
        self.last_run = Gauge("ldapsync_last_run_timestamp_seconds", "When the last sync finished (Unix time).",
                              registry=r)
        self.duration = Gauge("ldapsync_last_run_duration_seconds", "How long the last sync took.", registry=r)
        self.result = Gauge("ldapsync_last_run_success", "1 when the last sync succeeded, else 0.", registry=r)
        self.exit_code = Gauge("ldapsync_last_run_exit_code", "The exit code of the last sync (see README).",
                               registry=r)
        self.groups = Gauge("ldapsync_groups", "Shared groups in the last sync.", registry=r)
        self.users = Gauge("ldapsync_users", "Users in the shared groups in the last sync.", registry=r)
        self.members = Gauge("ldapsync_member_lines", "Member lines written in the last sync, all outputs.",
                             registry=r)
        self.changed = Gauge("ldapsync_last_run_changed_files", "Files the last sync changed.", registry=r)
        self.added = Gauge("ldapsync_last_run_member_lines_added", "Member lines the last sync added.", registry=r)
        self.removed = Gauge("ldapsync_last_run_member_lines_removed", "Member lines the last sync removed.",
                             registry=r)
        self.runs = Gauge("ldapsync_runs_total", "Syncs recorded in the state file.", registry=r)
        self.failures = Gauge("ldapsync_failures_total", "Failed syncs recorded in the state file.", registry=r)
        self.consecutive = Gauge("ldapsync_consecutive_failures", "Failed syncs since the last success.",
                                 registry=r)
        self.refusals = Gauge("ldapsync_refusals_total", "Syncs a safety limit stopped (nothing written).",
                              registry=r)
        self.refused = Gauge("ldapsync_last_run_refused", "1 when a safety limit stopped the last sync.",
                             registry=r)
        self.rollbacks = Gauge("ldapsync_rollbacks_total", "Rollbacks recorded in the state file.", registry=r)
        self.last_rollback = Gauge("ldapsync_last_rollback_timestamp_seconds",
                                   "When the last rollback finished (Unix time; 0: none recorded).", registry=r)
        self.last_full_read = Gauge("ldapsync_last_full_read_timestamp_seconds",
                                    "When the last successful sync that read the whole directory finished "
                                    "(Unix time; 0: none recorded).", registry=r)
        self.last_incremental_read = Gauge("ldapsync_last_incremental_read_timestamp_seconds",
                                           "When the last successful sync that read only the directory's changes "
                                           "(or found none) finished (Unix time; 0: none recorded).", registry=r)
        self.entries_read = Gauge("ldapsync_directory_entries_read",
                                  "Entries the directory server sent in the last sync.", registry=r)
        self.read_kind = Gauge("ldapsync_last_run_read", "1 for how the last sync read the directory: full, "
                               "incremental (only the changes) or unchanged (nothing had changed).", ["kind"],
                               registry=r)

    def update(self, state: State) -> None:
        if (last_success := state.last_success_at()) is not None:
            self.last_success.set(last_success)
        if (finished := state.finished_at()) is not None:
            self.last_run.set(finished)
        self.duration.set(state.last_duration or 0)
        self.result.set(1 if state.result == "success" else 0)
        self.exit_code.set(state.exit_code or 0)
        if state.result == "success":
            self.groups.set(state.counts.get("shared_groups", 0))
            self.users.set(state.counts.get("users_in_groups", 0))
            self.members.set(sum(o.get("member_lines", 0) for o in state.outputs))
        self.changed.set(sum(1 for o in state.outputs if o.get("written")))
        self.added.set(sum(o.get("member_lines_added", 0) for o in state.outputs))
        self.removed.set(sum(o.get("member_lines_removed", 0) for o in state.outputs))
        self.runs.set(state.runs_total)
        self.failures.set(state.failures_total)
        self.consecutive.set(state.consecutive_failures)
        self.refusals.set(state.refusals_total)
        self.refused.set(1 if state.result == "refused" else 0)
        self.rollbacks.set(state.rollbacks_total)
        self.last_rollback.set(state.last_rollback_at() or 0)
        self.last_full_read.set(state.last_full_read_at() or 0)
        self.last_incremental_read.set(state.last_incremental_read_at() or 0)
        self.entries_read.set(0 if state.read is None else state.read.get("entries", 0))
        for kind in READ_KINDS:
            self.read_kind.labels(kind).set(1 if state.read_kind == kind else 0)

    def write_textfile(self, path: Path) -> None:
        """node_exporter's textfile collector reads this: written atomically,
        as ldapsync writes every file (prometheus_client's own writer uses a
        predictable temporary name, and follows a link planted there)."""
        write_if_changed(path, generate_latest(self.registry), mode=0o644, kind="state")

    def serve_http(self, listen: str) -> None:
        """Serve /metrics on ``listen``; a port another process holds (a
        second serve) is a clear error, not a traceback."""
        host, _, port = listen.rpartition(":")
        try:
            start_http_server(int(port), addr=host.strip("[]") or "127.0.0.1", registry=self.registry)
        except OSError as exc:
            raise UserError(f"metrics.listen: cannot listen on {listen}: {exc.strerror or exc}",
                            ExitCode.UNAVAILABLE) from None
