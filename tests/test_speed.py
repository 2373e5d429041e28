"""The worker process that verifies a file while the diff is worked out."""

from __future__ import annotations

import logging
import os
import threading

import pytest

from ldapsync.errors import ExitCode, UserError
from ldapsync.speed import ChildFailed, Handover, Parallel


def test_the_value_comes_from_a_child_process():
    parent = os.getpid()
    job = Parallel(lambda: [os.getpid(), "done"])
    pid, word = job.result()
    assert word == "done" and pid != parent


def test_a_child_that_dies_or_raises_gives_no_value(capfd):
    with pytest.raises(ChildFailed, match="ended with 5"):
        Parallel(lambda: os._exit(5)).result()

    def fail():
        raise ValueError("boom")

    with pytest.raises(ChildFailed, match="ended with 1"):
        Parallel(fail).result()
    assert "ValueError: boom" in capfd.readouterr().err


def test_a_user_error_in_the_child_is_raised_here_as_it_was(capfd):
    def refuse():
        raise UserError("old.txt: no such file", ExitCode.NOINPUT)

    job = Parallel(refuse)
    assert job._pid is not None  # it did run in a child
    with pytest.raises(UserError, match="^old.txt: no such file$") as raised:
        job.result()
    assert raised.value.exit_code == ExitCode.NOINPUT
    assert "Traceback" not in capfd.readouterr().err  # the user's error, not a bug


def test_with_threads_running_it_runs_in_this_process():
    stop = threading.Event()
    helper = threading.Thread(target=stop.wait)
    helper.start()
    try:
        assert Parallel(os.getpid).result() == os.getpid()
    finally:
        stop.set()
        helper.join()


def test_discard_stops_the_child():
    job = Parallel(lambda: threading.Event().wait(60))
    pid = job._pid
    assert pid is not None
    job.discard()
    with pytest.raises(ChildProcessError):  # killed and reaped: no child of that number is left
        os.waitpid(pid, 0)


def test_what_the_child_logs_is_logged_here_when_the_result_is_taken(caplog):
    log = logging.getLogger("ldapsync.test")

    def work():
        log.warning("from the worker: %d", 42)
        return os.getpid()

    with caplog.at_level(logging.INFO, logger="ldapsync.test"):
        job = Parallel(work)
        assert caplog.records == []  # not yet
        pid = job.result()
    assert pid != os.getpid()
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        ("ldapsync.test", "WARNING", "from the worker: 42")]


def test_a_handed_over_value_is_held_by_the_worker_alone():
    text = Handover("x" * 1000)
    job = Parallel(lambda: len(text.take()))
    text.release()  # this process lets go once the worker has it
    assert job.result() == 1000
    with pytest.raises(AssertionError, match="already taken or released"):
        _ = text.value
    here = Handover("abc")
    assert here.take() == "abc"
    with pytest.raises(AssertionError):
        here.take()
