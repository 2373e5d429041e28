"""Running an output's commands: no shell, a minimal environment, a time
limit for the whole process group, and a result instead of an exception."""

from __future__ import annotations

import os
import sys
import time

import pytest

from ldapsync import commands
from ldapsync.commands import CommandResult, run_post_change, split_command
from ldapsync.errors import ExitCode, UserError


def test_command_success():
    result = run_post_change(["true"])
    assert isinstance(result, CommandResult)
    assert result.ok and result.returncode == 0
    assert result.command == ("true",)
    assert result.stdout == result.stderr == ""
    assert result.duration >= 0
    assert result.describe().startswith("'true' succeeded")


def test_command_failure_with_stderr():
    result = run_post_change(["sh", "-c", "echo out; echo boom >&2; echo more >&2; exit 3"])
    assert not result.ok and result.returncode == 3
    assert result.stdout == "out\n" and result.stderr == "boom\nmore\n"
    assert result.describe() == """"sh -c 'echo out; echo boom >&2; echo more >&2; exit 3'" exited 3: boom"""


def test_failure_without_stderr_mentions_stdout_or_nothing():
    assert run_post_change("sh -c 'echo why; exit 1'").describe().endswith("exited 1: why")
    assert run_post_change("false").describe() == "'false' exited 1"


def test_describe_is_one_line_with_the_example_format():
    result = CommandResult(
        ("prosodyctl", "shell", "module", "reload", "groups", "example.com"), 1, "",
        "\n  Error: no such host\nmore\n", 0.1, False,
    )
    assert result.describe() == "'prosodyctl shell module reload groups example.com' exited 1: Error: no such host"
    noisy = CommandResult(("x",), 2, "", "a\tb\x1b[31m" + "z" * 500, 0.1, False)
    assert "\n" not in noisy.describe() and "\x1b" not in noisy.describe() and len(noisy.describe()) < 250


def test_a_signal_is_named():
    result = run_post_change(["sh", "-c", "kill -TERM $$"])
    assert result.returncode == -15 and not result.ok
    assert "killed by SIGTERM" in result.describe()


def test_timeout_kills_and_returns_quickly():
    start = time.monotonic()
    result = run_post_change("sleep 5", timeout=0.5)
    assert time.monotonic() - start < 3
    assert not result.ok and result.timed_out and result.returncode is None
    assert result.describe() == "'sleep 5' timed out after 0.5 s"


def test_timeout_kills_the_whole_process_group():
    # The grandchild holds the pipes open: without killing the group this
    # would wait for it (30 s) or for the 5 s grace after killing sh alone.
    start = time.monotonic()
    result = run_post_change(["sh", "-c", "echo started; sleep 30 & wait"], timeout=0.5)
    assert time.monotonic() - start < 3
    assert result.timed_out and result.stdout == "started\n"
    assert "timed out after 0.5 s: started" in result.describe()


def test_missing_executable_is_a_result_not_an_exception():
    result = run_post_change("/nonexistent/prosodyctl shell module reload groups example.com")
    assert not result.ok and result.returncode is None and not result.timed_out
    assert result.describe() == "'/nonexistent/prosodyctl shell module reload groups example.com' not found"
    assert run_post_change(["no-such-command-ldapsync"]).describe() == "'no-such-command-ldapsync' not found"


def test_not_executable(tmp_path):
    script = tmp_path / "reload"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o644)
    result = run_post_change([str(script)])
    if os.geteuid() == 0 and os.access(script, os.X_OK):
        pytest.skip("root may run it")
    assert not result.ok and result.returncode is None
    assert "cannot be run: Permission denied" in result.describe()


def test_a_string_is_split_like_a_shell_but_not_run_by_one():
    result = run_post_change("""printf '%s|' "two words" 'single $HOME' plain""")
    assert result.command == ("printf", "%s|", "two words", "single $HOME", "plain")
    assert result.ok and result.stdout == "two words|single $HOME|plain|"
    # no shell: ; and > are plain arguments
    result = run_post_change("echo a ; echo b > /dev/null")
    assert result.stdout == "a ; echo b > /dev/null\n"


def test_a_list_is_used_as_is():
    result = run_post_change(("echo", "$HOME", "a b"))
    assert result.command == ("echo", "$HOME", "a b")
    assert result.stdout == "$HOME a b\n"


def test_stdin_is_closed():
    start = time.monotonic()
    result = run_post_change(["cat"], timeout=5)
    assert result.ok and result.stdout == ""
    assert time.monotonic() - start < 3


def test_the_command_gets_a_minimal_environment_plus_env(monkeypatch):
    """The bind password's variable (or anything else of ldapsync's
    environment that may hold a secret) never reaches the command."""
    monkeypatch.setenv("LDAPSYNC_BIND_PASSWORD", "hunter2")
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.setenv("PATH", os.environ.get("PATH", "/usr/bin:/bin"))
    result = run_post_change(["sh", "-c", "env"], env={"LDAPSYNC_CHANGED": "1"})
    seen = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    assert "hunter2" not in result.stdout and "LDAPSYNC_BIND_PASSWORD" not in seen
    assert seen["LDAPSYNC_CHANGED"] == "1" and seen["LANG"] == "C.UTF-8" and seen["PATH"] == os.environ["PATH"]
    assert set(seen) <= {*commands.COMMAND_ENVIRONMENT, "LDAPSYNC_CHANGED", "PWD", "SHLVL", "_"}


def test_a_command_finds_programs_without_path(monkeypatch):
    monkeypatch.delenv("PATH")
    assert run_post_change(["sh", "-c", "echo ok"]).stdout == "ok\n"


def test_output_that_is_not_utf8_is_replaced():
    result = run_post_change([sys.executable, "-c",
                              "import sys; sys.stderr.buffer.write(b'bad \\xff byte'); sys.exit(2)"])
    assert result.stderr == "bad \ufffd byte"
    assert result.describe().endswith("exited 2: bad \ufffd byte")


@pytest.mark.parametrize("command", ["", "   ", [], "echo 'unbalanced", [""]])
def test_malformed_commands_are_configuration_errors(command):
    with pytest.raises(UserError) as exc:
        run_post_change(command)
    assert exc.value.exit_code == ExitCode.CONFIG
    with pytest.raises(UserError):
        split_command(command)


def test_split_command():
    assert split_command("prosodyctl shell module reload groups 'example.com'") == (
        "prosodyctl", "shell", "module", "reload", "groups", "example.com",
    )
    assert split_command(["a b", "c"]) == ("a b", "c")
