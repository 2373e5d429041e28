"""Running unattended: one recorded run (lock, sync, state, metrics) and ``serve``.

``ldapsync run`` and every run of ``ldapsync serve`` go through
:func:`recorded_run`: both take the same lock, so they never write at once,
and both leave the same state file and metrics, so monitoring does not care
which of them a site uses.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import multiprocessing.connection
import multiprocessing.util
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ldapsync import config as configlib
from ldapsync import logs
from ldapsync import state as statelib
from ldapsync.directory import Directory, configured_directory
from ldapsync.errors import ExitCode, UserError

if TYPE_CHECKING:  # loaded only when a run or the metrics need them
    from multiprocessing.connection import Connection
    from multiprocessing.context import ForkServerContext
    from multiprocessing.process import BaseProcess

    from apscheduler.triggers.base import BaseTrigger

    from ldapsync.metrics import Metrics
    from ldapsync.sync import RunResult
    from ldapsync.warm import Warm

log = logging.getLogger(__name__)


@dataclass
class Recorded:
    """The outcome of one recorded run."""

    exit_code: int
    result: RunResult | None  # when the sync got that far
    error: str | None
    state: statelib.State | None


def recorded_run(config: configlib.Config, *, dry_run: bool = False, force: str | None = None,
                 full: str | None = None, lock_timeout: float | None = None,
                 directory: Callable[[configlib.Config], Directory] = configured_directory,
                 warm: Warm | None = None) -> Recorded:
    """Lock, sync, then record the outcome in the state file and metrics
    (a dry run records nothing).  Never raises for a failed sync: the error
    is in the result, with its exit code.  ``full``: why the whole
    directory must be read (None: only its changes when it can be).
    ``lock_timeout``: how long to wait for the lock (None: state.lock_timeout).
    ``directory`` gives the directory to read (tests hand in one of their own).
    ``warm``: what the last run of this process left in memory (serve's poller)."""
    started = time.time()
    wait = config.state.lock_timeout if lock_timeout is None else lock_timeout
    try:
        with statelib.locked(config.lock_path, wait):
            # the record is written under the lock too: two runs never race for it
            return _sync_and_record(config, started, dry_run, force, full, directory, warm)
    except statelib.Busy as exc:
        # not a run: another one is under way and will leave its own record
        return Recorded(exc.exit_code, None, str(exc), None)
    except UserError as exc:  # the lock itself could not be taken
        return Recorded(int(exc.exit_code), None, str(exc), None)


def _sync_and_record(config: configlib.Config, started: float, dry_run: bool, force: str | None,
                     full: str | None, directory: Callable[[configlib.Config], Directory],
                     warm: Warm | None = None) -> Recorded:
    from ldapsync import sync  # ldap3 and jinja2 load only when a sync runs

    result = None
    error = None
    try:
        result = sync.run(config, directory(config), dry_run=dry_run, force=force, full=full is not None,
                          full_reason=full, warm=warm)
        exit_code = int(result.exit_code)
        if exit_code:
            error = "; ".join(problem for o in result.outputs if (problem := o.after_write_problem()))
    except UserError as exc:
        exit_code, error = int(exc.exit_code), str(exc)
    if dry_run or config.state.path is None:
        return Recorded(exit_code, result, error, None)
    counts = result.counts.as_dict() if result is not None else {}
    outputs = [o.record() for o in result.outputs] if result is not None else []
    read = result.read.as_json() if result is not None else None
    path = config.state.path
    new_state, problem = keep_record(config, "run", lambda: statelib.record(
        path, started, time.time(), exit_code, error, counts, outputs, read))
    if problem is not None:
        # Whatever was written stays written: a run that succeeded says so
        # with its own exit code (74), a failed one keeps its own.
        if exit_code == ExitCode.OK:
            return Recorded(ExitCode.STATE_NOT_SAVED, result, problem, None)
        return Recorded(exit_code, result, f"{error}; {problem}", None)
    return Recorded(exit_code, result, error, new_state)


def keep_record(config: configlib.Config, what: str,
                record: Callable[[], statelib.State]) -> tuple[statelib.State | None, str | None]:
    """Add ``what`` (a run, a rollback) to the state file with ``record`` and
    publish the new state to the metrics: the new state, or why it could
    not be saved (logged; what was written stays written)."""
    try:
        new_state = record()
    except UserError as exc:
        log.error("cannot record the %s in the state file: %s", what, exc)
        return None, f"the state file could not be saved: {exc}"
    publish(config, new_state)
    return new_state, None


_metrics: Metrics | None = None


def metrics() -> Metrics:
    global _metrics
    if _metrics is None:
        from ldapsync.metrics import Metrics

        _metrics = Metrics()
    return _metrics


def publish(config: configlib.Config, state: statelib.State) -> None:
    """Update the metrics from ``state`` and write the textfile, if configured."""
    if config.metrics.textfile is None and config.metrics.listen is None:
        return
    m = metrics()
    m.update(state)
    if config.metrics.textfile is not None:
        try:
            m.write_textfile(config.metrics.textfile)
        except UserError as exc:
            log.error("cannot write the metrics file: %s", exc)


# Each cron run of ``serve`` runs in a child process forked from a fork
# server (a process with no threads, started once and kept): the child
# takes exactly the path of ``ldapsync run`` (it may fork its own workers,
# which a process with the scheduler's threads may not), a sync that hangs
# can be stopped by killing it, and the memory of a large run goes back to
# the system when it ends.  The polls all run in one poll process forked
# from the same server and kept (see :class:`_Poller`): each poll starts
# from what the last one left in memory, which is what makes a poll after
# a few changes cheap; it can be killed the same way.
# Imported once by the fork server, not by each sync.  The python-ldap
# backend (with its content-sync consumer) is half of a poll that finds
# nothing changed when each poll imports it; without python-ldap the fork
# server skips it (an ImportError in a preload is ignored).
_PRELOADED = ["ldapsync.service", "ldapsync.sync", "ldapsync.directory.pyldap_backend"]


# Why the cron runs of serve read the whole directory: they are the safety
# net under the polls, which read only its changes.
CRON_FULL_READ = "the scheduled full read (schedule.cron)"


@dataclass(frozen=True)
class Job:
    """What one run of ``serve`` is: the cron run (a full read, retried
    when it fails) or a poll (only the changes, skipped when another run
    holds the lock, never retried: the next poll tries again)."""

    name: str  # "sync" or "poll", as the log says it
    full: str | None  # why the whole directory is read (None: only its changes)
    lock_timeout: float | None  # None: state.lock_timeout


CRON = Job("sync", CRON_FULL_READ, None)
POLL = Job("poll", None, 0)


def _run_and_log(config: configlib.Config, directory: Callable[[configlib.Config], Directory], job: Job,
                 warm: Warm | None = None) -> Recorded:
    """One recorded run of ``job``, its outcome logged as serve logs it."""
    outcome = recorded_run(config, full=job.full, lock_timeout=job.lock_timeout, directory=directory, warm=warm)
    if outcome.result is not None:
        from ldapsync.sync import log_findings  # loaded by the run already

        # the cron runs' full reads warn about them; a poll every minute would repeat them
        log_findings(outcome.result.findings, level=logging.INFO if job == POLL else logging.WARNING)
    if outcome.exit_code == ExitCode.OK:
        read = outcome.result.read if outcome.result is not None else None
        if job == POLL and read is not None and read.kind == "unchanged":
            log.info("poll finished: nothing changed")
        else:
            log.info("%s finished", job.name)
    elif job == POLL and outcome.exit_code == ExitCode.BUSY:
        log.info("poll skipped: %s", outcome.error)
    elif job == POLL:
        log.warning("poll failed (exit %d): %s; the next poll tries again", outcome.exit_code, outcome.error)
    else:
        log.error("sync failed (exit %d): %s", outcome.exit_code, outcome.error)
    return outcome


def _child_sync(config: configlib.Config, directory: Callable[[configlib.Config], Directory],
                log_settings: tuple[int, str], job: Job = CRON) -> None:
    """In the child: one recorded run, logged as serve logs; the run's exit code is the child's."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # serve decides when a sync is stopped
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logs.configure(*log_settings)
    outcome = _run_and_log(config, directory, job)
    logging.shutdown()
    sys.exit(int(outcome.exit_code))


def _poller_main(jobs: Connection) -> None:
    """In the poll process: the polls serve sends, one after the other, each
    run as :func:`_child_sync` runs a sync but starting from the
    :class:`~ldapsync.warm.Warm` the previous one left; each is answered
    with its exit code.  Ends when serve closes its end of the pipe (or is
    gone)."""
    from ldapsync.warm import Warm

    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # serve decides when a poll is stopped
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    warm = Warm()
    while True:
        try:
            config, directory, log_settings, job = jobs.recv()
        except EOFError:
            return
        logs.configure(*log_settings)
        outcome = _run_and_log(config, directory, job, warm)
        try:
            jobs.send(int(outcome.exit_code))
        except OSError:  # serve is gone
            return
        _set_aside()


def _set_aside() -> None:
    """Take what a poll leaves in memory out of the cycle collector's sight.
    The poll process keeps millions of objects (the directory as the last
    poll left it), which a full collection would walk, for most of a
    second, in the middle of a poll.  What the poll made and dropped in
    cycles is collected first; what stays is frozen: still freed when no
    longer referenced, never walked again."""
    gc.collect(1)
    gc.freeze()


class _Poller:
    """serve's poll process, from serve's side: started from the fork server
    on the first poll and kept, so that what a poll leaves in memory is
    there for the next.  It belongs to the config it was started for: a
    reloaded config gets a new one, so new settings never meet old memory."""

    def __init__(self, fork_server: ForkServerContext, config: configlib.Config) -> None:
        self.config = config
        self.jobs, their_end = fork_server.Pipe()
        self.process = fork_server.Process(target=_poller_main, args=(their_end,), name="ldapsync poller")
        self.process.start()
        their_end.close()  # so that its death reads as the end of the pipe
        # at exit, before multiprocessing waits for its children: an idle poller ends when the pipe closes
        self._end = multiprocessing.util.Finalize(self, _end_poller, args=(self.jobs, self.process),
                                                  exitpriority=10)
        log.info("poll process %d started: it keeps what each poll read in memory for the next one",
                 self.process.pid)

    def run(self, config: configlib.Config, directory: Callable[[configlib.Config], Directory],
            job: Job) -> int | None:
        """The exit code of ``job`` run in the poll process; None when the
        process ended without answering (killed, out of memory, a bug)."""
        try:
            self.jobs.send((config, directory, logs.settings, job))
        except OSError:  # it ended since serve last looked
            self.process.join()
            return None
        multiprocessing.connection.wait([self.jobs, self.process.sentinel])
        if self.jobs.poll():
            try:
                return int(self.jobs.recv())
            except EOFError:
                pass
        self.process.join()
        return None

    def stop(self) -> None:
        """Tell it to end and wait for it (killed if it does not end)."""
        self._end()


def _end_poller(jobs: Connection, process: BaseProcess) -> None:
    """Close the poll process's pipe (it ends when idle) and wait for it;
    killed if it does not end (a poll still under way)."""
    jobs.close()
    process.join(5)
    if process.exitcode is None:
        process.kill()
        process.join()


def _ended(process: BaseProcess) -> str:
    code = process.exitcode
    return f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"


class Service:
    """``ldapsync serve``: APScheduler runs the sync on the config's cron
    schedule and, with ``schedule.poll``, a poll for changes between; one
    run at a time; signals stop it cleanly or reload the config."""

    def __init__(self, config_path: str,
                 directory: Callable[[configlib.Config], Directory] = configured_directory) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        self.directory = directory
        self.fork_server = multiprocessing.get_context("forkserver")
        self.fork_server.set_forkserver_preload(_PRELOADED)
        self.child: BaseProcess | None = None  # the sync under way
        self.poller: _Poller | None = None  # kept between polls; used only while holding ``running``
        self.config_path = config_path
        self.config = configlib.load(config_path)
        self.stop_requested = threading.Event()  # set by the main loop, for the other threads to see
        # What the signal handlers say, as plain flags: a handler runs in the
        # main thread between two of its steps, maybe while that thread holds
        # the lock of an Event it waits on, so taking that lock there (Event.set)
        # could hang serve for good.
        self.stop_signalled = False
        self.reload_signalled = False
        self.idle = threading.Event()
        self.idle.set()
        self.running = threading.Lock()
        self.under_way: Job | None = None  # what holds ``running``
        self.attempt = 0
        zone = self.config.schedule.timezone
        self.scheduler = BackgroundScheduler(timezone=zone) if zone else BackgroundScheduler()

    def _trigger(self, config: configlib.Config) -> BaseTrigger:
        from ldapsync.schedule import cron_trigger

        s = config.schedule
        return cron_trigger(s.cron, s.timezone, s.jitter)

    def _schedule(self, config: configlib.Config) -> None:
        """Add or change the cron job and the poll job to match ``config``."""
        if self.scheduler.get_job("sync") is None:
            self.scheduler.add_job(self.scheduled_run, self._trigger(config), id="sync", max_instances=1,
                                   coalesce=True, misfire_grace_time=config.schedule.misfire_grace_time)
        else:
            self.scheduler.reschedule_job("sync", trigger=self._trigger(config))
        self._schedule_polls(config)

    def _schedule_polls(self, config: configlib.Config) -> None:
        """Add, change or remove the poll job to match ``schedule.poll``."""
        from apscheduler.triggers.interval import IntervalTrigger

        poll = config.schedule.poll
        job = self.scheduler.get_job("poll")
        if poll is None:
            if job is not None:
                self.scheduler.remove_job("poll")
            return
        if job is not None and job.trigger.interval == timedelta(seconds=poll):
            return
        trigger = IntervalTrigger(seconds=poll)
        if job is not None:
            self.scheduler.reschedule_job("poll", trigger=trigger)
            return
        # Two instances: a poll that fires while the last one still runs
        # returns at once (see poll_run) instead of APScheduler warning
        # that it skipped it.  A late poll is still worth running once.
        self.scheduler.add_job(self.poll_run, trigger, id="poll", max_instances=2, coalesce=True,
                               misfire_grace_time=None)

    def serve(self) -> int:
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGHUP, self._on_reload_signal)
        s = self.config.schedule
        self._schedule(self.config)
        if self.config.metrics.listen:
            metrics().serve_http(self.config.metrics.listen)
            log.info("metrics on http://%s/metrics", self.config.metrics.listen)
        previous = statelib.load(self.config.state.path) if self.config.state.path else None
        if previous is not None:
            metrics_needed = self.config.metrics.textfile or self.config.metrics.listen
            if metrics_needed:
                metrics().update(previous)
        self.scheduler.start()
        polls = f"; a poll for changes every {s.poll:g} s" if s.poll else ""
        log.info("ldapsync serve started (schedule %r, %s%s)", s.cron, s.timezone or "local time", polls)
        if s.run_at_start:
            self.scheduler.add_job(self.scheduled_run, id="start", max_instances=1)
        else:
            self._log_next()
        while not self.stop_signalled:
            if self.reload_signalled:
                self.reload_signalled = False
                self.reload()
            time.sleep(0.2)
        self.stop_requested.set()
        return self.shutdown()

    def _on_stop_signal(self, *_: object) -> None:
        self.stop_signalled = True

    def _on_reload_signal(self, *_: object) -> None:
        self.reload_signalled = True

    def shutdown(self) -> int:
        """Stop within ``shutdown_timeout`` whatever the sync is doing: after
        it, a sync still under way (a directory that stopped answering) is
        abandoned by killing its process.  Nothing is half-written: files
        are replaced by a rename, and the lock dies with the process."""
        self.scheduler.pause()
        timeout = self.config.schedule.shutdown_timeout
        if not self.idle.is_set():
            log.info("stopping: waiting up to %.0f s for the sync under way", timeout)
        finished = self.idle.wait(timeout)
        if not finished:
            log.error("stopping after %.0f s (schedule.shutdown_timeout) with a sync still under way: it is "
                      "abandoned; the groups file is the old or the new one, never half-written", timeout)
            child = self.child
            if child is not None:
                child.kill()  # its lock goes with it
            self.idle.wait(10)
            self._stop_poller()
            self.scheduler.shutdown(wait=False)
            return ExitCode.BUSY
        self._stop_poller()
        self.scheduler.shutdown(wait=False)
        log.info("ldapsync serve stopped")
        return ExitCode.OK

    def reload(self) -> None:
        """SIGHUP: use the new config if it is valid, else keep the old one."""
        try:
            new = configlib.load(self.config_path)
            from ldapsync.templates import Templates

            Templates(new.mapping)
        except UserError as exc:
            log.error("SIGHUP: the new configuration is not used, the old one stays in force: %s", exc)
            return
        self.config = new
        self._schedule(new)
        if self.running.acquire(blocking=False):  # else the run under way does it as it ends
            try:
                self._retire_poller()
            finally:
                self.running.release()
        poll = new.schedule.poll
        log.info("SIGHUP: configuration reloaded from %s (%s)", self.config_path,
                 f"a poll for changes every {poll:g} s" if poll else "no polls")
        self._log_next()

    def scheduled_run(self) -> None:
        """The cron run (also at start, and its retries): a full read.  It
        waits for a poll under way, and is skipped when another cron run
        is (a retry and the scheduled run coming together)."""
        if not self._take(CRON):
            return
        try:
            config = self.config
            code = self._sync_in_child(config, CRON)
            self._refresh_metrics(config)
            if code == ExitCode.OK:
                self.attempt = 0
            elif not self.stop_requested.is_set():
                self._retry_later(config)
        except Exception:  # noqa: BLE001 - the service must outlive any one run
            log.exception("sync failed with an internal error")
            self._retry_later(self.config)
        finally:
            self._release()
        self._log_next()

    def poll_run(self) -> None:
        """A poll: a run that reads only the changes, skipped when any run
        is under way; a failed one is not retried (the next poll is)."""
        if not self._take(POLL):
            under_way = self.under_way
            log.debug("poll skipped: a %s is under way", under_way.name if under_way is not None else "run")
            return
        try:
            config = self.config
            if config.schedule.poll is None:  # removed by a reload after this one was due
                return
            self._sync_in_poller(config)
            self._refresh_metrics(config)
        except Exception:  # noqa: BLE001 - the service must outlive any one run
            log.exception("poll failed with an internal error")
        finally:
            self._release()

    def _take(self, job: Job) -> bool:
        """Whether ``job`` may run now, holding ``running`` if so: a poll
        only when nothing runs, the cron run also after a poll under way."""
        while not self.stop_requested.is_set():
            if self.running.acquire(timeout=0.2):
                self.under_way = job
                self.idle.clear()
                return True
            under_way = self.under_way
            if job == POLL or (under_way is not None and under_way == CRON):
                return False
        return False

    def _release(self) -> None:
        self._retire_poller()
        self.under_way = None
        self.running.release()
        self.idle.set()

    def _sync_in_child(self, config: configlib.Config, job: Job) -> int:
        """One recorded run in a child process (see :func:`_child_sync`); its exit code."""
        child = self.fork_server.Process(target=_child_sync, args=(config, self.directory, logs.settings, job),
                                         name=f"ldapsync {job.name}")
        child.start()
        self.child = child
        try:
            child.join()
        finally:
            self.child = None
        code = child.exitcode
        if code is None or code < 0:
            log.error("the %s process ended with signal %s", job.name, None if code is None else -code)
            return ExitCode.SOFTWARE
        return code

    def _sync_in_poller(self, config: configlib.Config) -> int:
        """One poll in the poll process (see :func:`_poller_main`), started
        first when there is none alive; its exit code."""
        poller = self._poller_for(config)
        self.child = poller.process  # killed as a child is at shutdown
        try:
            code = poller.run(config, self.directory, POLL)
        finally:
            self.child = None
        if code is None:
            log.error("the poll process ended with %s", _ended(poller.process))
            poller.stop()
            self.poller = None  # the next poll starts another
            return ExitCode.SOFTWARE
        return code

    def _poller_for(self, config: configlib.Config) -> _Poller:
        """The poll process for ``config``: the one kept, or a new one when it
        ended since the last poll (killed, out of memory) or was started for
        another config."""
        poller = self.poller
        if poller is not None and not poller.process.is_alive():
            log.warning("the poll process %s ended with %s since the last poll; a new one takes the polls",
                        poller.process.pid, _ended(poller.process))
            poller.stop()
            poller = None
        elif poller is not None and poller.config is not config:
            poller.stop()
            poller = None
        if poller is None:
            poller = self.poller = _Poller(self.fork_server, config)
        return poller

    def _retire_poller(self) -> None:
        """Stop the poll process when the config in force is not the one it
        was started for (a SIGHUP): a new config never meets the memory of
        the old one, and with ``schedule.poll`` removed nothing is kept.
        Only while holding ``running``."""
        poller = self.poller
        if poller is not None and poller.config is not self.config:
            poller.stop()
            self.poller = None
            log.debug("poll process %s stopped: the configuration was reloaded", poller.process.pid)

    def _stop_poller(self) -> None:
        poller, self.poller = self.poller, None
        if poller is not None:
            poller.stop()

    def _refresh_metrics(self, config: configlib.Config) -> None:
        """The HTTP metrics of this process, from the record the child left."""
        if config.metrics.listen and config.state.path is not None:
            state = statelib.load(config.state.path)
            if state is not None:
                metrics().update(state)

    def _retry_later(self, config: configlib.Config) -> None:
        s = config.schedule
        if self.attempt >= s.retries:
            log.error("giving up after %d retries until the next scheduled run", self.attempt)
            self.attempt = 0
            return
        delay = s.retry_delay * (2 ** self.attempt)
        self.attempt += 1
        when = datetime.now().astimezone() + timedelta(seconds=delay)
        job = self.scheduler.get_job("sync")
        if job is not None and job.next_run_time is not None and job.next_run_time <= when:
            log.info("not retrying: the next scheduled run comes first")
            self.attempt = 0
            return
        log.info("retry %d of %d in %.0f s", self.attempt, s.retries, delay)
        self.scheduler.add_job(self.scheduled_run, "date", run_date=when, id="retry", replace_existing=True,
                               max_instances=1)

    def _log_next(self) -> None:
        """The next cron run or retry (polls are too many to log each)."""
        jobs = [j for j in self.scheduler.get_jobs() if j.next_run_time is not None and j.id != "poll"]
        if jobs:
            nxt = min(j.next_run_time for j in jobs)
            log.info("next sync at %s", nxt.isoformat(timespec="seconds"))
