"""The command line: output, --json contracts and exit codes."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ldapsync.cli import main

CLEAN = ("[+Staff]\nalice@example.com=Alice\nbob@example.com=Bob\n"
         "[Team]\nalice@example.com=Alice\ncarol@example.com=Carol\n")


@pytest.fixture
def files(tmp_path):
    def write(name: str, text: str):
        path = tmp_path / name
        path.write_bytes(text.encode("utf-8"))
        return str(path)

    return write


@pytest.fixture
def config_file(tmp_path):
    """A valid config (mode 0600, in a directory only this user can write)
    whose directory server is unreachable; keyword arguments set sections."""

    def write(**sections) -> str:
        data = {"ldap": {"servers": ["ldap://127.0.0.1:1"], "connect_timeout": 1, "timeout": 2},
                "users": {"base": "ou=people,dc=example,dc=com"}, "groups": {"base": "ou=groups,dc=example,dc=com"},
                "outputs": [{"path": str(tmp_path / "groups.txt")}],
                "state": {"path": str(tmp_path / "state.json")}, **sections}
        path = tmp_path / "ldapsync.yaml"
        path.write_text(yaml.safe_dump(data))
        path.chmod(0o600)
        return str(path)

    return write


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_explains_every_command(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for word in ("check", "preview", "diff", "Exit codes", "78"):
        assert word in out
    for command in ("check", "preview", "diff"):
        code, out, _ = run(capsys, command, "--help")
        assert code == 0 and "Usage: ldapsync " + command in out


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "ldapsync", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("ldapsync, version ")


def test_check_clean_file(capsys, files):
    code, out, _ = run(capsys, "check", files("g.txt", CLEAN))
    assert code == 0
    assert "clean; 2 groups, 4 member lines" in out


def test_check_reports_each_problem_line(capsys, files):
    path = files("g.txt", "\ufeff[Team]\r\nalice@example.com\r\n# comment\n@bad=Bad\n")
    code, out, _ = run(capsys, "check", path)
    assert code == 1
    assert f"{path}:1: warning:" in out and "[bom]" in out
    assert f"{path}:2: warning:" in out and "[nameless]" in out
    assert f"{path}:3: warning:" in out and "[comment]" in out
    assert f"{path}:4: error: Prosody skips this line" in out
    code, out, _ = run(capsys, "check", "--json", path)
    report = json.loads(out)
    assert code == 1 and report["clean"] is False
    assert {"line": 4, "severity": "error", "code": "invalid-jid"}.items() <= report["diagnostics"][-1].items()


def test_check_config_json_names_the_config(capsys, config_file):
    path = config_file()
    code, out, _ = run(capsys, "check", "-c", path, "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"] is True
    assert report["config"] == path and report["notes"][0] == f"{path}: configuration valid"


def test_check_missing_file(capsys, tmp_path):
    code, _, err = run(capsys, "check", str(tmp_path / "nope"))
    assert code == 66 and "no such file" in err


def test_preview_json_contract(capsys, files):
    path = files("g.txt", CLEAN + "[Team]\ndave@example.com\n")
    code, out, _ = run(capsys, "preview", "--groups-file", path, "ALICE@EXAMPLE.COM", "--json")
    assert code == 0
    assert json.loads(out) == [
        {"jid": "bob@example.com", "name": "Bob", "subscription": "both", "groups": ["Staff"]},
        {"jid": "carol@example.com", "name": "Carol", "subscription": "both", "groups": ["Team"]},
        {"jid": "dave@example.com", "name": "", "subscription": "both", "groups": ["Team"]},
    ]


def test_preview_table_and_host(capsys, files):
    path = files("g.txt", CLEAN)
    code, out, _ = run(capsys, "preview", "--groups-file", path, "--host", "example.com", "carol")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["JID", "NAME", "SUBSCRIPTION", "GROUPS"]
    assert lines[1].split() == ["alice@example.com", "Alice", "both", "Staff,", "Team"]
    assert "carol@example.com: 2 contacts" in out


def test_preview_with_personal_roster(capsys, files):
    path = files("g.txt", CLEAN)
    personal = files("r.json", json.dumps([
        {"jid": "bob@example.com", "name": "Bobby", "subscription": "none", "groups": ["Friends"]},
        {"jid": "zed@example.com", "name": None, "subscription": "to", "groups": []},
    ]))
    code, out, _ = run(capsys, "preview", "--groups-file", path, "--roster", personal, "carol@example.com", "--json")
    items = {i["jid"]: i for i in json.loads(out)}
    assert items["bob@example.com"] == {"jid": "bob@example.com", "name": "Bob", "subscription": "both",
                                        "groups": ["Friends", "Staff"]}
    assert items["zed@example.com"]["subscription"] == "to"


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["a@b@c"], 64, "not a user's bare JID"),
        (["example.com"], 64, "not a user's bare JID"),
        (["--host", "example.org", "alice@example.com"], 64, "not a user of host"),
    ],
)
def test_preview_usage_errors(capsys, files, argv, code, message):
    path = files("g.txt", CLEAN)
    got, _, err = run(capsys, "preview", "--groups-file", path, *argv)
    assert got == code and message in err


def test_preview_bad_personal_roster(capsys, files):
    code, _, err = run(capsys, "preview", "--groups-file", files("g.txt", CLEAN), "--roster",
                       files("r.json", "{"), "alice@example.com")
    assert code == 65 and "cannot read the personal roster" in err


def test_unknown_command_and_option_are_usage_errors(capsys):
    assert run(capsys, "frobnicate")[0] == 64
    assert run(capsys, "check", "--frob", "x")[0] == 64


def test_diff_exit_codes_and_output(capsys, files):
    old = files("old.txt", CLEAN)
    new = files("new.txt", CLEAN.replace("carol@example.com=Carol", "carol@example.com=Carol\ndave@example.com=Dave"))
    assert run(capsys, "diff", old, old)[0] == 0
    code, out, _ = run(capsys, "diff", old, new)
    assert code == 1
    assert "~ group 'Team': 1 added" in out
    assert "    + dave@example.com = Dave" in out
    assert "alice@example.com gains 1 contact" in out
    assert "dave@example.com gains 1 contact, sees 1 contact change groups, joins 'Team'" in out
    assert out.rstrip().splitlines()[-1].startswith("Summary: 0 groups added, 0 removed, 1 changed")


def test_diff_of_a_missing_file_names_it(capsys, files, tmp_path):
    """The old file is read by a worker process: its errors still come out as the user's."""
    there = files("g.txt", CLEAN)
    for old, new in ((str(tmp_path / "gone.txt"), there), (there, str(tmp_path / "gone.txt"))):
        code, out, err = run(capsys, "diff", old, new)
        assert (code, out) == (66, "")
        assert err.strip() == f"ldapsync: error: {tmp_path / 'gone.txt'}: no such file"


def test_diff_json(capsys, files):
    old = files("old.txt", CLEAN)
    new = files("new.txt", CLEAN.replace("bob@example.com=Bob", "bob@example.com=Robert"))
    code, out, _ = run(capsys, "diff", "--json", old, new)
    data = json.loads(out)
    assert code == 1 and data["changed"] is True
    assert data["groups"][0]["renamed"] == [{"jid": "bob@example.com", "before": "Bob", "after": "Robert"}]
    assert data["others"] == {"user": None, "gained": 0, "lost": 0, "renamed": 1, "regrouped": 0,
                              "joined": [], "left": []}
    assert data["totals"]["contacts_renamed"] == 2  # alice and carol see Bob renamed


def test_diff_limit(capsys, files):
    many = "[T]\n" + "".join(f"u{i}@example.com=U{i}\n" for i in range(30))
    code, out, _ = run(capsys, "diff", files("a.txt", "[T]\n"), files("b.txt", many))
    assert "... and 10 more users (--limit 0 shows all)" in out
    code, out, _ = run(capsys, "diff", "--limit", "0", files("c.txt", "[T]\n"), files("d.txt", many))
    assert "more users" not in out


def test_the_readme_examples(capsys):
    """The files under examples/ give what the README shows."""
    from pathlib import Path

    examples = Path(__file__).resolve().parent.parent / "examples"
    code, out, _ = run(capsys, "check", str(examples / "groups.txt"))
    assert code == 0 and "clean; 2 groups, 6 member lines" in out
    code, out, _ = run(capsys, "check", str(examples / "problems.txt"))
    assert code == 1 and "10 problems (2 lines Prosody skips" in out
    code, out, _ = run(capsys, "diff", str(examples / "groups.old.txt"), str(examples / "groups.txt"))
    assert code == 1 and "dave@example.com sees 2 contacts change groups, joins 'Team'" in out


@pytest.mark.parametrize("max_age", ["nan", "NaNh", "inf", "1e400", "-inf", "-5m", "0", "0s", "garbage", "26x", ""])
def test_status_max_age_must_be_a_positive_finite_duration(capsys, config_file, max_age):
    config = config_file()
    assert run(capsys, "run", "-c", config)[0] == 69  # a failed run recorded: status gets as far as its output
    code, out, err = run(capsys, "status", "-c", config, "--max-age", max_age)
    assert code == 64, out + err
    assert f"Invalid value for '--max-age': {max_age!r} is not a duration such as 26h" in err
    assert "Traceback" not in err and out == ""


@pytest.mark.parametrize("max_age", ["26h", "90m", "3600", "1.5d", "1e300d"])
def test_status_max_age_takes_seconds_and_units(capsys, config_file, max_age):
    config = config_file()
    assert run(capsys, "run", "-c", config)[0] == 69
    code, out, _ = run(capsys, "status", "-c", config, "--max-age", max_age)
    assert code == 2 and out.startswith("LDAPSYNC CRITICAL - last run failed (exit 69)")


def test_rollback_0_and_diff_limit_minus_1_are_usage_errors(capsys, config_file, files):
    code, out, err = run(capsys, "rollback", "0", "-c", config_file())
    assert code == 64 and "Invalid value for '[VERSION]': 0 is not in the range x>=1" in err
    code, out, err = run(capsys, "diff", "--limit", "-1", files("a.txt", CLEAN), files("b.txt", "[T]\n"))
    assert code == 64 and "Invalid value for '--limit': -1 is not in the range x>=0" in err
    assert out == "" and "Traceback" not in err


def test_a_second_serve_whose_metrics_port_is_taken_exits_69_with_one_line(config_file):
    """The port is held as a first 'ldapsync serve' would hold it; the second
    stops before any sync (its directory is unreachable anyway)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        config = config_file(metrics={"listen": listen}, schedule={"cron": "0 3 * * *"})
        done = subprocess.run([sys.executable, "-m", "ldapsync", "serve", "-c", config], capture_output=True,
                              text=True, timeout=60, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 69, done.stderr
    assert done.stderr.splitlines() == [f"ldapsync: error: metrics.listen: cannot listen on {listen}: "
                                        "Address already in use"]
    assert done.stdout == ""


@pytest.mark.parametrize("argv", [["check", ""], ["diff", "", ""], ["preview", "--groups-file", " ", "a@example.com"],
                                  ["preview", "--groups-file", "x", "--roster", "", "a@example.com"]])
def test_an_empty_file_argument_is_a_usage_error(capsys, argv):
    """'' named the current directory: 'cannot read: Is a directory', exit 66."""
    code, _, err = run(capsys, *argv)
    assert code == 64 and "the path is empty" in err
